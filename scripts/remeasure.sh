#!/usr/bin/env bash
# Re-measure every figure the project publishes, on a quiet machine, most important first.
# Run it with nothing else on the machine: no builds, tests, helpers or other jobs. Every step
# waits for a quiet machine and records what it saw; a record that says "contended" is not a figure.
# Usage: bash scripts/remeasure.sh [DATA_DIR]   (about 9 hours on a 2-core CPU, most of it the reference run;
# stopped, REFERENCE=results/reference-cpu-<day> bash scripts/remeasure.sh continues that reference run)
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
$PY -m mnist_bench.bench.perf.overhead --modes default --rounds 4 --steps 160 \
    --data-dir "$DATA" --out results/overhead/default-modes.json | tee results/overhead/default-modes.txt

step "the reference comparison: every implementation, default and fastest modes, 3 seeds, the default recipe"
REFERENCE="${REFERENCE:-results/reference-cpu-$DAY}"
if [ -f "$REFERENCE/manifest.json" ]; then WHERE=(--resume "$REFERENCE"); else WHERE=(--out "$REFERENCE"); fi
bash scripts/compare.sh --data-dir "$DATA" --device cpu --seeds 3 --modes default,fastest "${WHERE[@]}" --quiet

step "the fp32 matmul peak and the GEMM-only ceiling"
$PY -m mnist_bench.common.peak | tee "$MACHINE/peak.json"
$PY -m mnist_bench.bench.perf.ceiling | tee "$MACHINE/ceiling.txt"

step "harness against plain loops, fastest modes, 3 interleaved rounds"
$PY -m mnist_bench.bench.perf.overhead --modes fastest --rounds 3 --steps 160 \
    --data-dir "$DATA" --out results/overhead/fastest-modes.json | tee results/overhead/fastest-modes.txt
step "the benchmark suite: default and fastest modes, batch 64, 2 interleaved passes"
$PY -m mnist_bench.bench.benchmarks --modes default,fastest --batch-sizes 64 --rounds 5 --warmup-rounds 1 --repeat 2 \
    --data-dir "$DATA" --out "results/benchmarks/cpu-$DAY"
step "done"
