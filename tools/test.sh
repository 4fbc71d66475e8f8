#!/usr/bin/env bash
# Set up a virtual environment from scratch and run the test suite twice:
# once without the optional CHOLMOD extra (pure numpy/scipy path) and once with it.
set -euo pipefail
cd "$(dirname "$0")/.."

# CHOLMOD's headers and library for scikit-sparse (Debian/Ubuntu).
if command -v apt-get >/dev/null 2>&1 && ! dpkg -s libsuitesparse-dev >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libsuitesparse-dev >/dev/null
fi

python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[test,all]"
python -m pip uninstall -y -q scikit-sparse 2>/dev/null || true

echo "== tests without the cholmod extra"
python -m pytest -q -m "not cholmod" -p no:cacheprovider "$@"

python -m pip install -q -e ".[cholmod]"
echo "== tests with the cholmod extra"
python -m pytest -q -p no:cacheprovider "$@"
