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

# The browser test of `momentkit serve` drives Debian's chromium with chromium-driver (Selenium); they
# come from apt with the test extra, never downloaded by a test. Without apt (or root) the test skips.
if [[ ",$extras," == *",test,"* ]] && ! command -v chromedriver >/dev/null 2>&1; then
    apt=""
    if command -v apt-get >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ]; then apt="apt-get"; elif sudo -n true >/dev/null 2>&1; then apt="sudo -n apt-get"; fi
    fi
    if [ -n "$apt" ]; then
        export DEBIAN_FRONTEND=noninteractive
        $apt install -y -q chromium chromium-driver >/dev/null 2>&1 \
            || { $apt update -q >/dev/null 2>&1 && $apt install -y -q chromium chromium-driver >/dev/null 2>&1; } \
            || echo "setup.sh: chromium and chromium-driver could not be installed; the browser test will skip" >&2
    else
        echo "setup.sh: no apt-get (or no root); the browser test of momentkit serve will skip" >&2
    fi
fi
