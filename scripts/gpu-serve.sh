#!/usr/bin/env bash
# `bertfit serve` on the GPU (issue 14): a small classifier trained on the spot (bench/gpu_task.py, a few
# steps on the CPU), then on DEVICE: `predict` of its test file, the server's answers to the same texts
# (largest difference to predict), a bounded load at 1, 8 and 64 clients (bench/serve_client.py, standard
# library only), predict's rows/s on the same text, and SIGTERM with the exit code. Appends to OUT/e2e.md
# (a device call brings back at most 8 files; the summary prints e2e.md).
#   bash scripts/gpu-serve.sh BERTFIT_BINARY OUT_DIR       (GPU_SERVE_DEVICE=cpu: a dry run without a GPU)
set -uo pipefail
B=$1
O=$2
DEV=${GPU_SERVE_DEVICE:-cuda}
W=$(mktemp -d)
python3 bench/gpu_task.py "$W" >/dev/null 2>&1 || { echo "gpu_task.py failed"; exit 1; }
{
echo "### bertfit serve --device $DEV (scripts/gpu-serve.sh)"
echo
"$B" train --model "$W/model" --train "$W/train.csv" --valid "$W/valid.csv" --max-steps 5 --batch-size 32 --max-len 64 \
    --device cpu --output "$W/run" --quiet >"$W/train.log" 2>&1 || { echo "- training the classifier failed:"; tail -3 "$W/train.log"; exit 1; }
"$B" predict --model "$W/run/best" --data "$W/test.csv" --output "$W/pred.jsonl" --device "$DEV" --quiet 2>"$W/predict.log" \
    || { echo "- predict --device $DEV failed:"; tail -3 "$W/predict.log"; }
"$B" serve --model "$W/run/best" --device "$DEV" --port 0 --max-concurrent-requests 64 2>"$W/serve.log" &
pid=$!
url=""
for _ in $(seq 1 600); do
    url=$(grep -o 'http://[0-9.:]*' "$W/serve.log" | head -1)
    [ -n "$url" ] && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
done
if [ -z "$url" ]; then
    echo "- the server did not start:"; tail -5 "$W/serve.log"; exit 1
fi
echo "- $(head -1 "$W/serve.log")"
python3 - "$url" "$W/test.csv" "$W/pred.jsonl" <<'PYEOF'
import csv, json, sys, urllib.request
url, data, pred = sys.argv[1:4]
rows = list(csv.DictReader(open(data)))
expected = [json.loads(l) for l in open(pred)] if pred else []
worst, same_label, n = 0.0, 0, 0
for start in range(0, len(rows), 32):
    chunk = rows[start:start + 32]
    body = json.dumps({"inputs": [[r["text"]] for r in chunk], "truncate": True}).encode()
    req = urllib.request.Request(url + "/predict", data=body, headers={"content-type": "application/json"})
    answer = json.load(urllib.request.urlopen(req, timeout=120))
    for got, want in zip(answer, expected[start:start + 32]):
        scores = {p["label"]: p["score"] for p in got}
        worst = max(worst, max(abs(scores[k[5:]] - v) for k, v in want.items() if k.startswith("prob_")))
        same_label += got[0]["label"] == want["label"]
        n += 1
print(f"- {n} test texts through /predict in batches of 32: labels equal to predict's for {same_label}/{n}, largest probability difference {worst:.2e}")
info = json.load(urllib.request.urlopen(url + "/info", timeout=30))
print(f"- /info: device {info['device']}, dtype {info['model_dtype']}, max_input_length {info['max_input_length']}")
PYEOF
text=$(python3 -c "import csv,sys; print(next(csv.DictReader(open(sys.argv[1])))['text'])" "$W/test.csv")
python3 -c "import json,sys; json.dump({'inputs': sys.argv[1]}, open(sys.argv[2], 'w'))" "$text" "$W/body.json"
python3 bench/serve_client.py "$url/predict" "$W/body.json" 50 4 >/dev/null   # warm-up
for c in 1 8 64; do
    n=$(( c == 1 ? 200 : 2048 ))
    echo "- $c clients: $(python3 bench/serve_client.py "$url/predict" "$W/body.json" $n $c)"
done
kill -TERM $pid; wait $pid; echo "- SIGTERM: exit $?"
tail -1 "$W/serve.log" | sed 's/^/    /'
python3 -c "
import json,sys
t=sys.argv[1]
for n,p in ((200,sys.argv[2]+'/s200.jsonl'),(4200,sys.argv[2]+'/s4200.jsonl')):
    open(p,'w').write(''.join(json.dumps({'id':i,'text':t})+'\n' for i in range(n)))" "$text" "$W"
t0=$(date +%s.%N); "$B" predict --model "$W/run/best" --data "$W/s200.jsonl" --output "$W/s200.out.jsonl" --device "$DEV" --quiet 2>/dev/null
t1=$(date +%s.%N); "$B" predict --model "$W/run/best" --data "$W/s4200.jsonl" --output "$W/s4200.out.jsonl" --device "$DEV" --quiet 2>/dev/null
t2=$(date +%s.%N)
echo "- predict --device $DEV on the same text: $(python3 -c "import sys; a,b,c=map(float,sys.argv[1:]); print(f'{4000/((c-b)-(b-a)):.0f} rows/s (4,200 minus 200 rows)')" "$t0" "$t1" "$t2")"
echo
} 2>&1 | tee -a "$O/e2e.md"
