#!/usr/bin/env bash
# Packs a real model and dataset for the GPU machine, which reaches no package registry: all-MiniLM-L6-v2
# with its weights rounded to bf16 (45 MB, so the call's working tree stays under the device tool's 64 MiB)
# and Rotten Tomatoes, from the asset cache of scripts/setup-assets.sh, into gpu-assets/ (git-ignored;
# name it in the device call's carry list beside gpu-bundle). scripts/gpu-e2e.sh then fine-tunes the
# real model on the GPU and on the CPU from the same bf16 folder (the README demo's settings) and compares
# test accuracy and time.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE="${BERTFIT_CACHE:-$HOME/.cache/bertfit}"
PY="${BERTFIT_REF_PYTHON:-$CACHE/ref-venv/bin/python}"
bash scripts/setup-assets.sh >/dev/null
SRC="$CACHE/models/all-MiniLM-L6-v2"
OUT=gpu-assets
rm -rf "$OUT" && mkdir -p "$OUT/minilm-l6-bf16" "$OUT/rt"
cp "$SRC"/config.json "$SRC"/tokenizer.json "$SRC"/tokenizer_config.json "$SRC"/special_tokens_map.json "$SRC"/vocab.txt "$OUT/minilm-l6-bf16/"
"$PY" - "$SRC/model.safetensors" "$OUT/minilm-l6-bf16/model.safetensors" <<'PYEOF'
import sys
import torch
from safetensors.torch import load_file, save_file
tensors = load_file(sys.argv[1])
save_file({k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}, sys.argv[2], metadata={"format": "pt"})
PYEOF
cp "$CACHE"/data/rotten-tomatoes/{train,valid,test}.jsonl "$OUT/rt/"
du -sh "$OUT"
