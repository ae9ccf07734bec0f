#!/usr/bin/env bash
# The run.sh pretraining on the training texts, with the fresh head trained alone for its first 30 of 65
# updates (--head-warmup-steps 30), then the same three fine-tunes.
# usage: bash bench/results-2026-12-08-mlm/run-warmup.sh WORK_DIR   (after run.sh, same WORK_DIR)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BIN="$HERE/../../target/debug/bertfit"
DATA="${BERTFIT_CACHE:-$HOME/.cache/bertfit}/data/rotten-tomatoes"
MODEL="${BERTFIT_CACHE:-$HOME/.cache/bertfit}/models/all-MiniLM-L6-v2"
W="$1"
T() { /usr/bin/time -f "%e s wall, %M KB max RSS" "$@"; }
T "$BIN" pretrain --data "$DATA/train.jsonl" --model "$MODEL" --output "$W/pt-warm" --epochs 1 --lr 1e-4 --head-warmup-steps 30 --quiet
T "$BIN" train --train "$W/train-2000.jsonl" --valid "$DATA/valid.jsonl" --test "$DATA/test.jsonl" --model "$W/pt-warm/best" \
  --output "$W/ft-pt-warm" --epochs 2 --batch-size 32 --lr 5e-5 --max-len 128 --seeds 1,2,3 --quiet
