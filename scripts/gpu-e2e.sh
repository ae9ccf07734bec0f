#!/usr/bin/env bash
# The CLI on a GPU, end to end (design M3): a random 4-layer BERT and a learnable task made on the spot
# (bench/gpu_task.py), then `bertfit train --device cuda` twice (same bits?), once killed mid-run and
# resumed (same bits as uninterrupted?), once on the CPU (accuracy), and `eval` of the GPU model on both
# devices; with gpu-assets/ (scripts/gpu-assets.sh) also all-MiniLM-L6-v2 on Rotten Tomatoes on both devices.
# Writes OUT/e2e.md. Called by scripts/gpu-check.sh with the unpacked binary:
#   bash scripts/gpu-e2e.sh BERTFIT_BINARY OUT_DIR
# GPU_E2E_DEVICE=cpu GPU_E2E_EPOCHS=1 makes a dry run of the script itself on a machine without a GPU.
set -uo pipefail
B=$1
O=$2
DEV=${GPU_E2E_DEVICE:-cuda}
EPOCHS=${GPU_E2E_EPOCHS:-3}
PAUSE=$((60 * EPOCHS))
W=$(mktemp -d)
python3 bench/gpu_task.py "$W" >/dev/null 2>&1 || { echo "gpu_task.py failed"; exit 1; }
common=(--model "$W/model" --train "$W/train.csv" --valid "$W/valid.csv" --test "$W/test.csv" --epochs "$EPOCHS"
        --batch-size 32 --lr 3e-4 --max-len 64 --save-every-steps 50 --quiet)
sha() { sha256sum "$1" 2>/dev/null | cut -c1-16; }
acc() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(f\"test accuracy {d['test']['accuracy']:.4f}, training {d['train_seconds']:.1f} s, {d['train_tokens_per_s']:.0f} tokens/s\")" "$1/summary.json" 2>/dev/null || echo "no summary"; }
timed() { local t0=$SECONDS; "$@"; echo $((SECONDS - t0)); }

{
echo "### End to end on the GPU (scripts/gpu-e2e.sh)"
echo
t_a=$(timed "$B" train "${common[@]}" --device "$DEV" --output "$W/a" 2>"$W/a.log" | tail -1)
echo "- train --device $DEV: $t_a s in all, $(acc "$W/a"), best/ sha256 $(sha "$W/a/best/model.safetensors"), $(grep -o '"device": "[^"]*"' "$W/a/run_config.json"), $(grep -o '"precision": "[^"]*"' "$W/a/run_config.json")"
tail -3 "$W/a.log" | sed 's/^/    /'
"$B" train "${common[@]}" --device "$DEV" --output "$W/b" 2>"$W/b.log"
echo "- the same run again: sha256 $(sha "$W/b/best/model.safetensors") ($( [ "$(sha "$W/a/best/model.safetensors")" = "$(sha "$W/b/best/model.safetensors")" ] && echo 'same bits' || echo 'DIFFERENT'))"
BERTFIT_PAUSE_AT=step:$PAUSE BERTFIT_PAUSE_SECS=60 "$B" train "${common[@]}" --device "$DEV" --output "$W/c" 2>"$W/c.log" &
pid=$!
for _ in $(seq 1 120); do grep -q "paused at" "$W/c.log" 2>/dev/null && break; sleep 0.5; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
"$B" train --resume "$W/c" 2>"$W/c2.log"
echo "- killed (SIGKILL) at step $PAUSE and resumed: sha256 $(sha "$W/c/best/model.safetensors") ($( [ "$(sha "$W/a/best/model.safetensors")" = "$(sha "$W/c/best/model.safetensors")" ] && echo 'same bits as uninterrupted' || echo 'DIFFERENT from uninterrupted'))"
grep -h "resuming from\|warning" "$W/c2.log" | head -2 | sed 's/^/    /'
t_d=$(timed "$B" train "${common[@]}" --device cpu --output "$W/d" 2>"$W/d.log" | tail -1)
echo "- train --device cpu (f32, $(nproc) cores): $t_d s in all, $(acc "$W/d")"
for dev in "$DEV" cpu; do
    "$B" eval --model "$W/a/best" --data "$W/test.csv" --device $dev --quiet >"$W/eval-$dev.txt" 2>&1
    echo "- eval of the GPU-trained model, --device $dev: $(grep -i -m1 'accuracy' "$W/eval-$dev.txt")"
done
# the real model, when scripts/gpu-assets.sh packed it (carry gpu-assets): the README demo's run on the
# GPU and on the CPU, from the same bf16-rounded all-MiniLM-L6-v2 folder
A=gpu-assets
if [ -d "$A/minilm-l6-bf16" ]; then
    real=(--model "$A/minilm-l6-bf16" --train "$A/rt/train.jsonl" --valid "$A/rt/valid.jsonl" --test "$A/rt/test.jsonl"
          --epochs 1 --batch-size 32 --lr 5e-5 --max-len 64 --quiet)
    t_g=$(timed "$B" train "${real[@]}" --device "$DEV" --output "$W/rt-gpu" 2>"$W/rt-gpu.log" | tail -1)
    echo "- all-MiniLM-L6-v2 (bf16 weights) on Rotten Tomatoes, 1 epoch, --device $DEV: $t_g s in all, $(acc "$W/rt-gpu")"
    t_c=$(timed "$B" train "${real[@]}" --device cpu --output "$W/rt-cpu" 2>"$W/rt-cpu.log" | tail -1)
    echo "- the same on --device cpu (f32, $(nproc) cores): $t_c s in all, $(acc "$W/rt-cpu")"
else
    echo "- no gpu-assets/ (scripts/gpu-assets.sh): the real-model run was left out"
fi
echo
} 2>&1 | tee "$O/e2e.md"
