#!/usr/bin/env bash
# Domain-/task-adaptive pretraining on Rotten Tomatoes, then fine-tuning on 2,000 labeled snippets.
# usage: bash bench/results-2026-12-08-mlm/run.sh WORK_DIR   (bertfit's dev-profile binary, 2 threads)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$HERE/../../target/debug/bertfit"
DATA="${BERTFIT_CACHE:-$HOME/.cache/bertfit}/data/rotten-tomatoes"
MODEL="${BERTFIT_CACHE:-$HOME/.cache/bertfit}/models/all-MiniLM-L6-v2"
W="$1"; mkdir -p "$W"
python3 "$HERE/make_subset.py" "$DATA" "$W/train-2000.jsonl"
T() { /usr/bin/time -f "%e s wall, %M KB max RSS" "$@"; }
finetune() {  # $1 model, $2 run dir
  T "$BIN" train --train "$W/train-2000.jsonl" --valid "$DATA/valid.jsonl" --test "$DATA/test.jsonl" --model "$1" \
    --output "$2" --epochs 2 --batch-size 32 --lr 5e-5 --max-len 128 --seeds 1,2,3 --quiet
}
# task-adaptive: every training snippet's text (labels ignored), one epoch
T "$BIN" pretrain --data "$DATA/train.jsonl" --model "$MODEL" --output "$W/pt-train" --epochs 1 --lr 1e-4 --quiet
finetune "$MODEL" "$W/ft-base"
finetune "$W/pt-train/best" "$W/ft-pt-train"
# plus the corpus's unlabeled plot descriptions
T "$BIN" pretrain --data "$DATA/train.jsonl" "$DATA/plot.jsonl" --model "$MODEL" --output "$W/pt-plot" --epochs 1 --lr 1e-4 --quiet
finetune "$W/pt-plot/best" "$W/ft-pt-plot"
