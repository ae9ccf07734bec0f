"""Batch prediction under PySpark: bertfit is the per-partition worker through `RDD.pipe`.

Every partition's JSON lines go to one `bertfit predict --data - --output - --format jsonl` process on
its standard input; its standard output (one JSON line per input line, same order) becomes the
partition's result. Spark does the partitioning and scheduling. Runs in local mode here.

usage: python spark_predict.py --bertfit BIN --model MODEL_DIR --data IN.jsonl --out OUT.jsonl
"""
import argparse
import shlex

from pyspark.sql import SparkSession


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bertfit", required=True, help="the bertfit binary")
    ap.add_argument("--model", required=True, help="fine-tuned model folder (or cv/seeds run directory)")
    ap.add_argument("--data", required=True, help="JSON lines with `id` and `text`")
    ap.add_argument("--out", required=True, help="predictions, JSON lines, in input order")
    ap.add_argument("--partitions", type=int, default=4)
    args = ap.parse_args()

    spark = SparkSession.builder.master("local[2]").appName("bertfit-predict").config("spark.ui.enabled", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    command = shlex.join([
        args.bertfit, "predict", "--model", args.model, "--data", "-", "--output", "-",
        "--format", "jsonl", "--quiet", "--threads", "1",
    ])
    lines = spark.sparkContext.textFile(args.data, minPartitions=args.partitions)
    predictions = lines.pipe(command, checkCode=True).collect()
    with open(args.out, "w", encoding="utf-8") as f:
        for line in predictions:
            f.write(line + "\n")
    print(f"spark: {len(predictions)} predictions from {lines.getNumPartitions()} partitions -> {args.out}")
    spark.stop()


if __name__ == "__main__":
    main()
