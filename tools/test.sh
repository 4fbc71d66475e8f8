#!/usr/bin/env bash
# Set up a virtual environment from scratch, lint, and run the test suite twice: once
# without the optional CHOLMOD extra (pure numpy/scipy path) and once with it, on
# OpenBLAS's Haswell kernel.
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

echo "== lint (ruff)"
python -m ruff check mixedmodels tests benchmarks tools
python -m ruff format --check mixedmodels tests benchmarks tools

echo "== tests without the cholmod extra (BLAS kernel as the machine sets it)"
python -m pytest -q -m "not cholmod" -p no:cacheprovider "$@"

python -m pip install -q -e ".[cholmod]"
# A second BLAS kernel for the second pass, so that a kernel-dependent failure is caught
# where it happens (OpenBLAS reads OPENBLAS_CORETYPE when it loads).
echo "== tests with the cholmod extra, OPENBLAS_CORETYPE=Haswell"
OPENBLAS_CORETYPE=Haswell python -m pytest -q -p no:cacheprovider "$@"
