"""Batch prediction under Ray Data: bertfit is the per-batch worker.

Each batch of the dataset is handed to `bertfit predict --data - --output - --format jsonl` on its
standard input and the JSON-lines predictions come back on its standard output; Ray does the
partitioning, scheduling and (on a cluster) the placement. Runs in local mode here.

usage: python ray_predict.py --bertfit BIN --model MODEL_DIR --data IN.jsonl --out OUT.jsonl
"""
import argparse
import io
import subprocess

import pandas as pd
import ray


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bertfit", required=True, help="the bertfit binary")
    ap.add_argument("--model", required=True, help="fine-tuned model folder (or cv/seeds run directory)")
    ap.add_argument("--data", required=True, help="JSON lines with `id` and `text`")
    ap.add_argument("--out", required=True, help="predictions, JSON lines, in input order")
    ap.add_argument("--batch-rows", type=int, default=256)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True

    command = [
        args.bertfit, "predict", "--model", args.model, "--data", "-", "--output", "-",
        "--format", "jsonl", "--quiet", "--threads", "1",
    ]

    def predict(batch: pd.DataFrame) -> pd.DataFrame:
        payload = batch[["id", "text"]].to_json(orient="records", lines=True, force_ascii=False)
        done = subprocess.run(command, input=payload.encode("utf-8"), capture_output=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"bertfit failed ({done.returncode}): {done.stderr.decode(errors='replace')}")
        return pd.read_json(io.BytesIO(done.stdout), lines=True, dtype={"id": str})

    ds = ray.data.read_json(args.data)
    predictions = ds.map_batches(predict, batch_format="pandas", batch_size=args.batch_rows, concurrency=args.workers)
    table = predictions.to_pandas()
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(table.to_json(orient="records", lines=True, force_ascii=False))
    print(f"ray: {len(table)} predictions -> {args.out}")


if __name__ == "__main__":
    main()
