#!/usr/bin/env bash
# The GPU check (issue 25), for a lent device machine: about 3-6 minutes on an H100. Prepare the wheels
# here first (benchmarks/gpu_wheels.sh), then call the device tool with carry [".whl"] and the command
#   bash benchmarks/gpu_check.sh
# It installs the carried wheels beside the image's torch, runs `python -m benchmarks.gpu_check` on cuda
# and leaves its JSON in $OUT (when set). Exit 0: every section passed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_check: installing the carried wheels failed"; exit 1; }
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())'
timeout 480 python3 -m benchmarks.gpu_check --device "${GPU_CHECK_DEVICE:-cuda}" ${GPU_CHECK_QUICK:+--quick} \
  ${OUT:+--out "$OUT"}
