#!/usr/bin/env bash
# The GPU check, one command on a lent CUDA machine (about 12 minutes on an H200): versions, the CUDA builds'
# parity in every precision, a short comparison of every implementation in its default and fastest modes in
# fp32, tf32 and bf16, and the batch sweep in fp32 and bf16. Run from the repo root; results go to $OUT
# (default ./gpu-check) as a handful of files. Needs the datasets: DATA=<root holding mnist/> (default
# ../shared/data).
#
# Installs: INSTALL=1 installs the CUDA builds first (PyTorch's cu128 wheel, tensorflow[and-cuda],
# jax[cuda12]) from the registries; INSTALL=wheels installs them from ./.whl (wheels fetched beforehand on a
# machine that reaches the registries, for a GPU machine that does not); unset, it uses what is installed.
# Each step's time limit keeps one slow step from eating the others' minutes; a step that fails is
# recorded in steps.txt and the script goes on.
set -uo pipefail
OUT="${OUT:-gpu-check}"; DATA="${DATA:-../shared/data}"; PY="${PYTHON:-python3}"
ALL="torch,tensorflow,flax-linen,flax-nnx,keras-jax,keras-torch,keras-tensorflow"
BACKENDS="${BACKENDS:-$ALL}"; EPOCHS="${EPOCHS:-1}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MNIST_BENCH_DATA="$DATA"
: > "$OUT/steps.txt"

step() {  # step NAME SECONDS COMMAND...: run it with a time limit, log to $OUT/NAME.txt, note how it ended
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout --signal=TERM --kill-after=20 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  local code=$?
  echo "$name: exit $code after $((SECONDS - start)) s (limit $limit s)" | tee -a "$OUT/steps.txt"
}

case "${INSTALL:-}" in
  1) step install 400 bash -c "$PY -m pip install -q torch --index-url https://download.pytorch.org/whl/cu128 && \
       $PY -m pip install -q 'tensorflow[and-cuda]' 'jax[cuda12]' flax optax keras && $PY -m pip install -q -e '.[report]'" ;;
  wheels) step install 400 $PY -m pip install -q --no-index --find-links .whl torch tensorflow jax flax optax keras ;;
esac

step versions 120 bash -c "nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv; \
  $PY -c 'import torch; print(\"torch\", torch.__version__, torch.version.cuda, torch.cuda.is_available())'; \
  $PY -c 'import tensorflow as tf; print(\"tensorflow\", tf.__version__, tf.config.list_physical_devices(\"GPU\"))'; \
  $PY -c 'import jax; print(\"jax\", jax.__version__, jax.devices())'; \
  $PY docs/repro/torch_compile_zero_conv_grad.py --device cuda | tail -2"

# Parity: every mode in fp32 (pairwise and against float64), then the precisions below it against float64.
step parity-fp32 240 $PY -m mnist_bench.bench.cli parity --backends "$BACKENDS" --modes all --device gpu \
  --out "$OUT/parity-fp32"
step parity-reduced 240 $PY -m mnist_bench.bench.cli parity --backends "$BACKENDS" --modes default,fastest \
  --precision tf32,bf16 --device gpu --out "$OUT/parity-reduced"

# A short comparison: every implementation, default and fastest modes, three precisions, one seed.
step run 420 $PY -m mnist_bench.bench.cli run --backends "$BACKENDS" --modes default,fastest --device gpu \
  --precision fp32,tf32,bf16 --epochs "$EPOCHS" --no-require-quiet --out "$OUT/run" --report

# The batch sweep: where a GPU stops being idle (batch 64 is per-step overhead there).
step sweep 300 $PY -m mnist_bench.bench.benchmarks --backends "$BACKENDS" --modes fastest --device gpu \
  --precision fp32,bf16 --batch-sizes 64,256,1024,4096 --rounds 5 --no-require-quiet --out "$OUT/sweep"

for d in parity-fp32 parity-reduced run sweep; do
  [ -d "$OUT/$d" ] && rm -rf "$OUT/$d/parity-work" && tar czf "$OUT/$d.tgz" -C "$OUT" "$d" && rm -rf "${OUT:?}/$d"
done
cat "$OUT/steps.txt"
