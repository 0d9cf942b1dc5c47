#!/usr/bin/env bash
# Set up (if needed), run the default comparison, and write its report: every implementation in its fastest
# mode, once (README, "Two commands", says why). Extra arguments go to `mnist-bench run` and override these,
# e.g. --seeds 3, --modes default,fastest, or --device gpu --backends torch,flax-linen,flax-nnx.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mnist-bench run --modes fastest --report "$@"
