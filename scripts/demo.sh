#!/usr/bin/env bash
# The CPU demo study, end to end with the packaged small models: `medrlvr run recipes/demo-cpu.yaml` (filter with
# SmolLM2-135M-Instruct and Gemma-3-270M, decontaminate, select random + 80:20 by each filter, train three GRPO +
# LoRA policies, evaluate the base model and the policies, write the report).
#
# Data: $MEDRLVR_DATA_DIR if set, else ../shared/data if it is there (MedMCQA dev pool; MedQA test and MMLU
# medical for evaluation), else the bundled sample of medrlvr's own questions. Extra arguments go to `medrlvr run`
# (e.g. eval.limit=50). A rerun continues where the last one stopped.
#
#   bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MEDRLVR_DATA_DIR:-}" ] && [ -f ../shared/data/README.md ]; then
  export MEDRLVR_DATA_DIR=../shared/data
fi
echo "demo data: ${MEDRLVR_DATA_DIR:-the bundled sample of our own questions (no data directory)}"
exec .venv/bin/medrlvr run recipes/demo-cpu.yaml "$@"
