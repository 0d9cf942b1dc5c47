#!/usr/bin/env bash
# Create .venv and install mnist-bench with all three frameworks at the tested versions.
# Idempotent and quiet: pip runs only when pyproject.toml or constraints.txt changed since the
# last install that succeeded, so the main command's terminal is left to the comparison.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
STAMP=.venv/.mnist-bench-installed
WANT="$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    rm -f "$STAMP"
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
    # setuptools' editable-install notice is advice for package authors, not for users of this command.
    .venv/bin/python -m pip install --quiet -c constraints.txt -e ".[all,test]" 2>&1 \
        | grep -v -e "^WARNING: Location" -e "BuildBackendWarning" -e "^\s*!!\s*$" -e "^\s*\*\{10,\}\s*$" \
                  -e "Please be careful with folders" -e "name as your package as they may take" \
                  -e "with strategy, WheelFile" -e "^\s*$" || true
fi
# pip's exit status is hidden by the filter above: prove the install instead.
.venv/bin/python - <<'PY'
import importlib.util, sys
missing = [m for m in ("torch", "tensorflow", "keras", "jax", "flax", "optax", "pytest", "xdist", "matplotlib",
                       "hypothesis", "scipy", "jsonschema", "submitit")
           if importlib.util.find_spec(m) is None]
from importlib.metadata import PackageNotFoundError, version
try:
    version("mnist-bench")
except PackageNotFoundError:
    missing.append("mnist-bench itself (pip install -e .)")
if missing:
    sys.exit(f"setup failed: not installed: {', '.join(missing)}")
PY
echo "$WANT" > "$STAMP"
