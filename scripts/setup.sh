#!/usr/bin/env bash
# Creates .venv in the checkout and installs momentkit with everything it needs.
# Usage: bash scripts/setup.sh [EXTRAS]   e.g. bash scripts/setup.sh test
# torch comes from `pip install torch==2.13.0` when the environment has none (never unpinned:
# an unpinned torch pulls several GB of CUDA packages).
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
py=.venv/bin/python
if ! "$py" -c "import torch" >/dev/null 2>&1; then
    "$py" -m pip install -q --disable-pip-version-check torch==2.13.0
fi
spec="."
if [ -n "$extras" ]; then spec=".[$extras]"; fi
"$py" -m pip install -q --disable-pip-version-check -e "$spec"
