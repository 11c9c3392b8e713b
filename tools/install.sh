#!/usr/bin/env bash
# Create .venv and install edgekd into it, choosing the CPU build of PyTorch where
# no NVIDIA GPU is present (a bare `torch` requirement would pull a multi-GB CUDA build).
# Usage: tools/install.sh [EXTRAS]   e.g. tools/install.sh openvino,coreml,dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-openvino,coreml}"
python="${PYTHON:-python3}"
torch_version="2.13.0"

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

if .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "torch already installed: $(.venv/bin/python -c 'import torch; print(torch.__version__)')"
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  echo "NVIDIA GPU found: installing torch==${torch_version} (CUDA build)"
  "${pip[@]}" "torch==${torch_version}"
else
  echo "no NVIDIA GPU: installing the CPU build torch==${torch_version}+cpu"
  # A local wheel (pip's find-links) is taken first; otherwise PyTorch's CPU index.
  "${pip[@]}" "torch==${torch_version}+cpu" 2>/dev/null \
    || "${pip[@]}" "torch==${torch_version}+cpu" --extra-index-url https://download.pytorch.org/whl/cpu
fi
"${pip[@]}" -e ".[${extras}]"
echo "edgekd installed in .venv ($(.venv/bin/edgekd --version))"
