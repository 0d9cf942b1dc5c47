#!/usr/bin/env bash
# The short GPU check: versions, numerical parity on the GPU, and a 3-epoch comparison of the
# backends installed there. Run from the repo root on a CUDA machine; results go to $OUT (default
# ./gpu-check). Needs the datasets: DATA=<root holding mnist/> (default ../shared/data).
set -uo pipefail
OUT="${OUT:-gpu-check}"; DATA="${DATA:-../shared/data}"; PY="${PYTHON:-python3}"
BACKENDS="${BACKENDS:-torch,flax-linen,flax-nnx}"; EPOCHS="${EPOCHS:-3}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$PY" -c "import torch; print('torch', torch.__version__, torch.cuda.is_available())" 2>&1 | tail -1
  "$PY" -c "import jax; print('jax', jax.__version__, jax.devices())" 2>&1 | tail -1
  "$PY" docs/repro/torch_compile_zero_conv_grad.py --device cuda 2>&1 | tail -2
} | tee "$OUT/versions.txt"
"$PY" -m mnist_bench.bench.cli parity --backends "$BACKENDS" --modes all --device gpu --data-dir "$DATA" --out "$OUT" 2>&1 \
  | tail -30 | tee "$OUT/parity.txt"
"$PY" -m mnist_bench.bench.cli run --backends "$BACKENDS" --modes all --device gpu --epochs "$EPOCHS" --data-dir "$DATA" \
  --out "$OUT/run" --report 2>&1 | tail -40 | tee "$OUT/run.txt"
tar czf "$OUT/run.tgz" -C "$OUT" run && rm -rf "$OUT/run" "$OUT/parity-work"
