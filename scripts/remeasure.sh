#!/usr/bin/env bash
# Re-measure every figure the project publishes, on a quiet machine, most important first.
# Run it with nothing else on the machine: no builds, tests, helpers or other jobs. Every step
# waits for a quiet machine and records what it saw; a record that says "contended" is not a figure.
# Usage: bash scripts/remeasure.sh [DATA_DIR]   (about 100 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${1:-${MNIST_BENCH_DATA:-$(cd .. && pwd)/shared/data}}"
DAY="$(date -u +%F)"
MACHINE="results/machine-cpu-$DAY"
bash scripts/setup.sh >/dev/null
PY=.venv/bin/python
mkdir -p "$MACHINE" results/overhead
step() { echo; echo "== $(date -u +%T) $*"; }

step "is the machine quiet? (30 one-second windows)"
$PY -m mnist_bench.common.contention --windows 30 | tee "$MACHINE/quiet-check.json"

step "harness against plain loops, default modes, 4 interleaved rounds"
$PY -m mnist_bench.bench.perf.overhead --backends torch,tensorflow,flax-linen,flax-nnx --modes default --rounds 4 --steps 160 \
    --data-dir "$DATA" --out results/overhead/default-modes.json | tee results/overhead/default-modes.txt

step "the reference comparison: tuned modes, 3 seeds, the default recipe"
bash scripts/compare.sh --data-dir "$DATA" --device cpu --seeds 3 --modes tuned --out results/reference-cpu --overwrite --quiet

step "the fp32 matmul peak and the GEMM-only ceiling"
$PY -m mnist_bench.common.peak | tee "$MACHINE/peak.json"
$PY -m mnist_bench.bench.perf.ceiling | tee "$MACHINE/ceiling.txt"

step "harness against plain loops, tuned modes, 3 interleaved rounds"
$PY -m mnist_bench.bench.perf.overhead --backends torch,tensorflow,flax-linen --modes tuned --rounds 3 --steps 160 \
    --data-dir "$DATA" --out results/overhead/tuned-modes.json | tee results/overhead/tuned-modes.txt
step "the benchmark suite: default and tuned modes, batch 64, 2 interleaved passes"
$PY -m mnist_bench.bench.benchmarks --modes default,tuned --batch-sizes 64 --rounds 5 --warmup-rounds 1 --repeat 2 \
    --data-dir "$DATA" --out "results/benchmarks/cpu-$DAY"
step "done"
