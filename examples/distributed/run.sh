#!/usr/bin/env bash
# Runs the same prediction job plainly, under Ray Data and under PySpark (both local mode, installed from
# the Python package index into a virtual environment), and checks both against the plain run.
#
# usage: examples/distributed/run.sh MODEL_DIR DATA.jsonl [OUT_DIR]
#   e.g. examples/distributed/run.sh runs/demo-rt/best ~/.cache/bertfit/data/rotten-tomatoes/test.jsonl
# needs: a Java runtime for Spark (java on PATH); VENV (default ~/.cache/bertfit/dist-venv) is created
# with pyspark 3.5, ray[data], pandas and pyarrow when missing.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODEL="$(realpath "$1")"
DATA="$(realpath "$2")"
OUT="${3:-$ROOT/runs/distributed}"
VENV="${VENV:-$HOME/.cache/bertfit/dist-venv}"
mkdir -p "$OUT"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "pyspark==3.5.*" "ray[data]" pandas pyarrow
fi
(cd "$ROOT" && cargo build --release --locked -p bertfit-cli)
BIN="$ROOT/target/release/bertfit"

start=$(date +%s.%N)
"$BIN" predict --model "$MODEL" --data "$DATA" --output "$OUT/plain.jsonl" --threads 2 --quiet
echo "plain: $(wc -l < "$OUT/plain.jsonl") predictions in $(echo "$(date +%s.%N) - $start" | bc) s"

start=$(date +%s.%N)
"$VENV/bin/python" "$HERE/ray_predict.py" --bertfit "$BIN" --model "$MODEL" --data "$DATA" --out "$OUT/ray.jsonl"
echo "ray: $(echo "$(date +%s.%N) - $start" | bc) s (with Ray's start-up)"
"$VENV/bin/python" "$HERE/compare.py" "$OUT/plain.jsonl" "$OUT/ray.jsonl"

start=$(date +%s.%N)
"$VENV/bin/python" "$HERE/spark_predict.py" --bertfit "$BIN" --model "$MODEL" --data "$DATA" --out "$OUT/spark.jsonl"
echo "spark: $(echo "$(date +%s.%N) - $start" | bc) s (with Spark's start-up)"
"$VENV/bin/python" "$HERE/compare.py" "$OUT/plain.jsonl" "$OUT/spark.jsonl"
