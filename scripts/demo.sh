#!/usr/bin/env bash
# The README's first command: a real small job on the embedded defaults (local files, CPU,
# synthetic events): simulate events, train the `tiny` network, run inference, draw an event.
# Everything lands in demo-job/ (or $1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup_env.sh" cpu
bin="$root/.venv/bin"
job="${1:-$root/demo-job}"
rm -rf "$job" && mkdir -p "$job/train" "$job/infer" "$job/evaluate"

echo "== 1. synthetic ProtoDUNE-SP events"
"$bin/dune-events" simulate --events 96 --seed 1 -o "$job/train/train.events.h5"
"$bin/dune-events" simulate --events 16 --seed 2 -o "$job/infer/test.events.h5"

echo "== 2. training job (as the pilot would run it, in its own job directory)"
(cd "$job/train" && "$bin/dune-payload" --mode=train --inputEventsFile=train.events.h5 \
    --modelConfig=tiny --epochs=3 --batchSize=8 --learningRate=3e-3 \
    --outputModelFile=model.demo.keras --outputMetricsFile=train.metrics.json \
    --outputPlotFile=train.curve.png)

echo "== 3. inference job"
cp "$job/train/model.demo.keras" "$job/infer/"
(cd "$job/infer" && "$bin/dune-payload" --mode=infer --inputEventsFile=test.events.h5 \
    --modelFile=model.demo.keras --modelConfig=tiny --outputPredFile=pred.000001.h5)

echo "== 4. evaluation job and an event display"
# Inputs arrive as symlinks, the way the pilot's copytools often stage them.
ln -s "$job/infer/test.events.h5" "$job/infer/model.demo.keras" "$job/evaluate/"
(cd "$job/evaluate" && "$bin/dune-payload" --mode=evaluate --inputEventsFile=test.events.h5 \
    --modelFile=model.demo.keras --modelConfig=tiny --outputMetricsFile=eval.metrics.json)
"$bin/dune-events" show "$job/infer/test.events.h5" --event 0 \
    --predictions "$job/infer/pred.000001.h5" -o "$job/infer/event0.png"

echo "== done: $job"
python3 - "$job" <<'PY'
import json, sys, pathlib
job = pathlib.Path(sys.argv[1])
for step in ("train", "infer", "evaluate"):
    rep = json.loads((job / step / "jobReport.json").read_text())
    outs = [s["name"] for f in rep["files"]["output"] for s in f["subFiles"]]
    print(f"{step}: exit {rep['exitCode']} {rep['exitAcronym']}, outputs {outs}")
metrics = json.loads((job / "evaluate" / "eval.metrics.json").read_text())["metrics"]
print("evaluation:", {k: round(v, 3) for k, v in metrics.items() if "iou" in k.lower()})
print("event display:", job / "infer" / "event0.png")
PY
