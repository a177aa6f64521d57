#!/usr/bin/env bash
# Set up ExtremeBERT's Python environment: a virtual environment at .venv (unless one is already active) with the
# pinned requirements. Idempotent: a second run only checks. Ends by importing every dependency.
set -euo pipefail
cd "$(dirname "$0")"

if [ -n "${VIRTUAL_ENV:-}" ]; then
  python="$VIRTUAL_ENV/bin/python"
  echo "install.sh: using the active virtual environment $VIRTUAL_ENV"
else
  if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
  fi
  python=.venv/bin/python
fi

stamp=".venv-requirements.sha256"
[ -n "${VIRTUAL_ENV:-}" ] && stamp="$VIRTUAL_ENV/.extremebert-requirements.sha256"
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$python" -m pip install --quiet --upgrade pip
  # torch first, on its own line: with no GPU this takes the CPU build; any other request pulls a CUDA build.
  "$python" -m pip install --quiet "$(grep -E '^torch==' requirements.txt)"
  "$python" -m pip install --quiet -r requirements.txt
  echo "$want" > "$stamp"
fi

"$python" - <<'PY'
import importlib
modules = ["torch", "deepspeed", "transformers", "accelerate", "datasets", "tokenizers", "huggingface_hub",
           "safetensors", "yaml", "yacs", "wandb", "tensorboard", "numpy", "h5py", "scipy", "sklearn", "seqeval",
           "ninja", "matplotlib", "psutil", "tqdm", "pytest", "xdist"]
for name in modules:
    importlib.import_module(name)
import shutil
import subprocess

import torch
print(f"install.sh: environment ready (torch {torch.__version__}, CUDA available: {torch.cuda.is_available()})")
smi = shutil.which("nvidia-smi")
if smi and not torch.cuda.is_available() and subprocess.run([smi, "-L"], capture_output=True).returncode == 0:
    print("install.sh: warning: this machine has an NVIDIA GPU but this torch cannot use it (a CPU-only build, or a"
          " driver too old for its CUDA); install a CUDA build of torch==2.13.0 into the environment")
PY
