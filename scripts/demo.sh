#!/usr/bin/env bash
# The README's first command: real jobs on the embedded defaults (local files, CPU, synthetic
# events). The packaged reference network (reference:small) classifies fresh events of a seed it
# was never trained on, is evaluated against their truth and draws event 0 (event0.png: the beam
# found); then a short training job shows its loss going down. Everything lands in demo-job/ (or $1).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup_env.sh" cpu
bin="$root/.venv/bin"
job="${1:-$root/demo-job}"
rm -rf "$job" && mkdir -p "$job/infer" "$job/evaluate" "$job/train"

echo "== 1. fresh synthetic ProtoDUNE-SP events (seed 2027: nobody trained on it)"
"$bin/dune-events" simulate --events 16 --seed 2027 -o "$job/infer/fresh.events.h5"
"$bin/dune-events" simulate --events 48 --seed 5 -o "$job/train/train.events.h5"

echo "== 2. inference job with the reference model (no --modelConfig: the file names its network)"
(cd "$job/infer" && "$bin/dune-payload" --mode=infer --inputEventsFile=fresh.events.h5 \
    --modelFile=reference:small --outputPredFile=pred.000001.h5)
"$bin/dune-events" show "$job/infer/fresh.events.h5" --event 0 \
    --predictions "$job/infer/pred.000001.h5" -o "$job/infer/event0.png"

echo "== 3. evaluation job against the truth labels"
# Inputs arrive as symlinks, the way the pilot's copytools often stage them.
ln -s "$job/infer/fresh.events.h5" "$job/evaluate/"
(cd "$job/evaluate" && "$bin/dune-payload" --mode=evaluate --inputEventsFile=fresh.events.h5 \
    --modelFile=reference:small --outputMetricsFile=eval.metrics.json)

echo "== 4. a short training job (as the pilot would run it, in its own job directory)"
(cd "$job/train" && "$bin/dune-payload" --mode=train --inputEventsFile=train.events.h5 \
    --modelConfig=tiny --epochs=3 --batchSize=8 --learningRate=3e-3 \
    --outputModelFile=model.demo.keras --outputMetricsFile=train.metrics.json \
    --outputPlotFile=train.curve.png)

echo "== done: $job"
"$bin/python" - "$job" <<'PY'
import json, sys, pathlib
job = pathlib.Path(sys.argv[1])
for step in ("infer", "evaluate", "train"):
    rep = json.loads((job / step / "jobReport.json").read_text())
    outs = [s["name"] for f in rep["files"]["output"] for s in f["subFiles"]]
    print(f"{step}: exit {rep['exitCode']} {rep['exitAcronym']}, outputs {outs}")
loss = json.loads((job / "train" / "train.metrics.json").read_text())["history"]["loss"]
print("training loss per epoch:", " -> ".join(f"{v:.3f}" for v in loss))
print("event display:", job / "infer" / "event0.png")
m = json.loads((job / "evaluate" / "eval.metrics.json").read_text())["metrics"]
fmt = lambda v: "null" if v is None else f"{v:.3f}"
print(f"reference:small on 16 fresh events: iou_beam {fmt(m['iou_beam'])}, iou_cosmic {fmt(m['iou_cosmic'])}, "
      f"mean_iou {fmt(m['mean_iou'])}")
PY
