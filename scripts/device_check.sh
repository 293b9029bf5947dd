#!/usr/bin/env bash
# The one prepared run for a lent GPU machine (issue 5). From the repository root:
#
#     OUT=/some/dir scripts/device_check.sh
#
# 1. captures what the driver says (nvidia-smi plain, -q, -L, the wrapper's --query-gpu and the
#    brief's query, raw NVML values through pynvml) as fixture material;
# 2. runs the wrapper's own detection (detect_platform) under KERAS_BACKEND=jax and torch;
# 3. times a few training steps of payload.model's `small` config on the JAX backend at float32,
#    mixed_bfloat16 and mixed_float16 (scripts/bench/platform.py).
# Everything lands in $OUT/device_check.tgz (the device tool returns at most 8 files) and the log.
# Keras is not on the device image: wheels carried in .whl/ are installed to /tmp/site if needed.
set -u
OUT=${OUT:-$(mktemp -d)}
BENCH_BUDGET_S=${BENCH_BUDGET_S:-200}
WORK=$(mktemp -d)
CAP=$WORK/captures
mkdir -p "$CAP"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
PYTHON=${PYTHON:-python3}

capture() {  # capture NAME CMD...: stdout+stderr to NAME.txt, exit code to NAME.rc
    local name=$1; shift
    "$@" >"$CAP/$name.txt" 2>&1
    echo $? >"$CAP/$name.rc"
}

capture nvidia-smi nvidia-smi
capture nvidia-smi-q nvidia-smi -q
capture nvidia-smi-L nvidia-smi -L
capture query nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total,driver_version,compute_cap,mig.mode.current --format=csv,noheader,nounits
capture query-brief nvidia-smi --query-gpu=index,name,uuid,compute_cap,memory.total,driver_version,mig.mode.current --format=csv,noheader,nounits
capture query-header nvidia-smi --query-gpu=index,name,uuid,compute_cap,memory.total,driver_version,mig.mode.current --format=csv
capture query-kepler-fields nvidia-smi --query-gpu=index,name,pci.bus_id,memory.total,driver_version,no_such_field --format=csv,noheader,nounits

"$PYTHON" - >"$CAP/nvml.json" 2>"$CAP/nvml.err" <<'EOF'
import json
import pynvml as n

n.nvmlInit()
def opt(call):
    try:
        return call()
    except n.NVMLError as err:
        return {"error": str(err)}
gpus = []
for i in range(n.nvmlDeviceGetCount()):
    h = n.nvmlDeviceGetHandleByIndex(i)
    gpus.append({
        "name": n.nvmlDeviceGetName(h), "uuid": n.nvmlDeviceGetUUID(h),
        "cuda_compute_capability": list(n.nvmlDeviceGetCudaComputeCapability(h)),
        "memory_total_bytes": n.nvmlDeviceGetMemoryInfo(h).total,
        "mig_mode": opt(lambda: list(n.nvmlDeviceGetMigMode(h))),
        "pci_bus_id": n.nvmlDeviceGetPciInfo(h).busId,
        "max_mig_devices": opt(lambda: n.nvmlDeviceGetMaxMigDeviceCount(h)),
        "mig_devices": []})
print(json.dumps({"driver_version": n.nvmlSystemGetDriverVersion(),
                  "cuda_driver_version": n.nvmlSystemGetCudaDriverVersion(),
                  "nvml_version": n.nvmlSystemGetNVMLVersion(), "gpus": gpus}, indent=1))
n.nvmlShutdown()
EOF
echo "nvml exit $?"; cat "$CAP/nvml.json"

if ! "$PYTHON" -c "import keras" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=$PYTHONPATH:/tmp/site
fi
"$PYTHON" -c "import keras, jax, torch; print('keras', keras.__version__, 'jax', jax.__version__, 'torch', torch.__version__)"

for backend in jax torch; do
    KERAS_BACKEND=$backend "$PYTHON" - >"$CAP/platform_$backend.json" 2>"$CAP/platform_$backend.err" <<'EOF'
import json
import time
from wrapper.builds.selection import default_manifest, select_build
from wrapper.platform.detect import detect_platform, format_platform

t0 = time.perf_counter()
platform = detect_platform()
seconds = time.perf_counter() - t0
selection = select_build(platform, default_manifest(None, "small", 8))
print(format_platform(platform, selection), file=__import__("sys").stderr)
print(json.dumps({"platform": platform.to_report(), "build": selection.to_report(),
                  "detect_seconds": seconds}, indent=1))
EOF
    echo "detect_platform under $backend: exit $?"; cat "$CAP/platform_$backend.err"
done

PYTHONUNBUFFERED=1 KERAS_BACKEND=jax "$PYTHON" -m scripts.bench.platform --config small --batch 8 \
    --steps 20 --repeats 3 --warmup 3 --budget-s "$BENCH_BUDGET_S" --json "$CAP/bench_jax.json" 2>&1 \
    | grep -v -e '^W0000' -e '^I0000' | tee "$CAP/bench_jax.log"

tar -C "$WORK" -czf "$OUT/device_check.tgz" captures
echo "captures in $OUT/device_check.tgz"
