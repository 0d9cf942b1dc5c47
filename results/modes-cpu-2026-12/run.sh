#!/usr/bin/env bash
# Quiet-machine mode check (issue 12): which Keras jit_compile value is fastest on this CPU, and what
# idiomatic Flax (Linen compiled, every NNX mode) trains at. 200 steps a run, 2 seeds, modes interleaved
# per seed within each implementation. Run with nothing else on the machine.
set -euo pipefail
cd "$(dirname "$0")/../.."  # the repository root
OUT=results/modes-cpu-2026-12
R=(--device cpu --epochs 1 --set train_limit=12800 --seeds 2 --data-dir ../shared/data --quiet --report)
date -u +"start %FT%TZ"
.venv/bin/mnist-bench run --backends keras-torch --modes fit,fit-jit "${R[@]}" --out $OUT/keras-torch
.venv/bin/mnist-bench run --backends keras-tensorflow --modes all "${R[@]}" --out $OUT/keras-tensorflow
.venv/bin/mnist-bench run --backends flax-linen --modes compiled,tuned "${R[@]}" --out $OUT/flax-linen
.venv/bin/mnist-bench run --backends flax-nnx --modes all "${R[@]}" --out $OUT/flax-nnx
date -u +"end %FT%TZ"
