#!/usr/bin/env bash
# The CPU demo as far as medrlvr goes today: show the data, filter MedMCQA dev questions with two packaged
# filter models (SmolLM2-135M-Instruct and the Gemma-3-270M base model), decontaminate against MedQA test and
# MMLU's medical subsets, select training sets (random and the paper's hard:easy ratio), train two GRPO steps
# with LoRA, evaluate the base model and the adapter on 100 MMLU medical questions, and write the report.
# Run directory: runs/demo (DEMO_RUN). A few minutes on 2 CPU cores.
#
#   bash scripts/demo.sh            # MEDRLVR_DATA_DIR defaults to ../shared/data
set -euo pipefail
cd "$(dirname "$0")/.."
export MEDRLVR_DATA_DIR="${MEDRLVR_DATA_DIR:-../shared/data}"
M=.venv/bin/medrlvr
N=${DEMO_QUESTIONS:-48}
RUN=${DEMO_RUN:-runs/demo}

$M data show mmlu --subjects medical
for model in smollm2-135m-instruct gemma-3-270m; do
  $M filter --model "$model" --pool medmcqa:dev --limit "$N" --max-new-tokens 128 --run-dir "$RUN"
done
$M select --strategy random --n 12 --pool medmcqa:dev --limit "$N" --run-dir "$RUN" --decontaminate medqa,mmlu:medical --parquet
# Models this small almost never box their answer, so the filter finds few or no easy questions:
# --allow-short takes what there is instead of stopping.
$M select --strategy ratio --filter-model smollm2-135m-instruct --hard 10 --easy 2 --allow-short \
  --pool medmcqa:dev --limit "$N" --run-dir "$RUN" --decontaminate medqa,mmlu:medical
$M train --config recipes/train-smollm2-cpu.yaml train_file="$RUN/select/ratio/train.jsonl" \
  output_dir="$RUN/train/ratio" max_steps=2 gradient_accumulation_steps=1 max_completion_length=64
$M eval --model smollm2-135m-instruct --benchmarks mmlu:medical --limit 100 --run-dir "$RUN"
$M eval --model "$RUN/train/ratio/adapter" --benchmarks mmlu:medical --limit 100 --run-dir "$RUN"
$M report --run-dir "$RUN"
echo "demo finished: $RUN (filter/, select/, train/, eval/, report/index.html)"
