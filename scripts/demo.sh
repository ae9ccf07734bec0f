#!/usr/bin/env bash
# The default example: fetch all-MiniLM-L6-v2 and Rotten Tomatoes (cached), fine-tune for one epoch on
# 2 threads, score the held-out test split, and classify a few sentences.
#
# usage: scripts/demo.sh [extra train flags...]     (run directory: runs/demo-rt)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="${BERTFIT_CACHE:-$HOME/.cache/bertfit}"
bash scripts/setup-assets.sh >/dev/null
cargo build --release --locked -p bertfit-cli
BIN=target/release/bertfit
DATA="$CACHE/data/rotten-tomatoes"
RUN=runs/demo-rt

$BIN train --model "$CACHE/models/all-MiniLM-L6-v2" \
  --train "$DATA/train.jsonl" --valid "$DATA/valid.jsonl" --test "$DATA/test.jsonl" \
  --output "$RUN" --overwrite --epochs 1 --batch-size 32 --lr 5e-5 --max-len 64 --threads 2 "$@"

echo
echo "== bertfit eval (test split) =="
$BIN eval --model "$RUN/best" --data "$DATA/test.jsonl" --threads 2 --quiet

echo "== bertfit predict =="
$BIN predict --model "$RUN/best" --threads 2 \
  --text "A gorgeous, witty, seductive movie." \
  --text "The plot is paper-thin and the jokes fall flat." \
  --text "An uneven but often moving portrait of grief." \
  --text "Two hours of my life I will never get back."
