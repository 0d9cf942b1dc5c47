#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The out-of-tree examples are separate distributions that prove the plug-in interface
# (tests/test_plugins.py). They are installed for the tests only, so a user's `mnist-bench backends`
# lists what they installed themselves.
STAMP=.venv/.mnist-bench-examples
WANT="$(cat examples/*/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    .venv/bin/python -m pip install --quiet --no-deps -e examples/torch-func -e examples/torch-func-wrong-order 2>&1 \
        | grep -v -e "^WARNING: Location" -e "BuildBackendWarning" -e "^\s*!!\s*$" -e "^\s*\*\{10,\}\s*$" \
                  -e "Please be careful with folders" -e "name as your package as they may take" \
                  -e "with strategy, WheelFile" -e "^\s*$" || true
    .venv/bin/python -c "import mnist_bench_torch_func, mnist_bench_wrong_order" && echo "$WANT" > "$STAMP"
fi
# The report's browser test needs Chromium; install it where we can.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "note: Chromium not found; the browser test will fail. Install it: sudo apt-get install chromium" >&2
    fi
fi
export MNIST_BENCH_DATA="${MNIST_BENCH_DATA:-$(cd .. && pwd)/shared/data}"
# Two workers, each on its own share of the CPUs (tests/machine_share.py: why, and how a test that
# needs the whole machine gets it); -n 0 runs every test in this one process.
WORKERS=$(( $(nproc) >= 2 ? 2 : 1 ))
exec .venv/bin/python -m pytest -n "$WORKERS" --dist loadgroup --no-loadscope-reorder "$@"
