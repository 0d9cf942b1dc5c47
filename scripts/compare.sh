#!/usr/bin/env bash
# Set up (if needed), run the default comparison on every backend, and write its report.
# Extra arguments go to `mnist-bench run`, e.g. --seeds 3 or --device gpu --backends torch,flax-linen,flax-nnx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mnist-bench run --report "$@"
