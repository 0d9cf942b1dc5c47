#!/usr/bin/env bash
# Create .venv and install mnist-bench with all three frameworks at the tested versions.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[all,test]" 2>&1 | grep -v "^WARNING: Location" || true
# pip's exit status is hidden by the filter above: prove the install instead.
.venv/bin/python - <<'PY'
import importlib.util, sys
missing = [m for m in ("torch", "tensorflow", "keras", "jax", "flax", "optax", "pytest", "matplotlib", "hypothesis")
           if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"setup failed: not installed: {', '.join(missing)}")
PY
