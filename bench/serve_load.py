#!/usr/bin/env python3
"""Load test of `bertfit serve` with `hey` (loopback only; a fixed number of requests; stops by itself).

Starts the server on a free port, sends single-text /predict requests at 1, 8 and 64 concurrent clients
and at twice the admitted concurrency, and reports throughput, p50/p99 latency, status codes and the
server's peak RSS. In the same run, alternating with the load levels, it times `bertfit predict` on a
file of the same text repeated (rows/s, model loading excluded by timing two sizes) and reports the
server's 64-client throughput as a ratio of it (batching must keep up: the goal is >= 0.8).

usage: bench/serve_load.py --model runs/demo-rt/best [--threads 2] [--rounds 2] [--out bench/results-serve]
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "bertfit")
TEXT = ("An uneven but often moving portrait of grief, carried by two fine performances and a quiet, "
        "patient camera that trusts its actors more than its script.")


def start_server(model, threads, admitted):
    cmd = [BIN, "serve", "--model", model, "--threads", str(threads), "--port", "0",
           "--max-concurrent-requests", str(admitted), "--max-queue-ms", "60000"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    while True:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"serve exited: {proc.wait()}")
        m = re.search(r" on (http://\S+)", line)
        if m:
            return proc, m.group(1)


def hey(url, body_path, n, c):
    out = subprocess.run(["hey", "-n", str(n), "-c", str(c), "-m", "POST", "-T", "application/json",
                          "-D", body_path, "-t", "120", url + "/predict"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    pct = {p: float(v) * 1000 for p, v in re.findall(r"\s(\d+)%% in ([\d.]+) secs".replace("%%", "%"), out)}
    codes = {k: int(v) for k, v in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}
    errors = re.search(r"Error distribution:(.*)", out, re.S)
    return {"clients": c, "requests": n, "rps": rps, "p50_ms": pct.get("50"), "p99_ms": pct.get("99"),
            "codes": codes, "transport_errors": errors.group(1).strip() if errors else ""}


def predict_rate(model, threads, tmp):
    """Rows/s of `bertfit predict` on the text repeated, model loading excluded (two sizes, difference)."""
    times = {}
    for rows in (200, 2200):
        path = os.path.join(tmp, f"same-{rows}.jsonl")
        with open(path, "w") as f:
            for i in range(rows):
                f.write(json.dumps({"id": i, "text": TEXT}) + "\n")
        t = time.perf_counter()
        subprocess.run([BIN, "predict", "--model", model, "--data", path, "--output", os.path.join(tmp, "p.csv"),
                        "--threads", str(threads), "--quiet", "--restart"], check=True)
        times[rows] = time.perf_counter() - t
    return 2000 / (times[2200] - times[200])


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--admitted", type=int, default=64)
    ap.add_argument("--out")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    body = os.path.join(tmp, "body.json")
    with open(body, "w") as f:
        json.dump({"inputs": TEXT}, f)
    levels = [(1, 150), (8, 600), (64, 2000), (2 * args.admitted, 2000)]
    results = {c: [] for c, _ in levels}
    predict = []
    rss = []
    for r in range(args.rounds):
        predict.append(predict_rate(args.model, args.threads, tmp))
        proc, url = start_server(args.model, args.threads, args.admitted)
        try:
            hey(url, body, 50, 8)  # warm-up
            for c, n in levels:
                res = hey(url, body, n, c)
                results[c].append(res)
                print(f"round {r + 1}: {c:4d} clients: {res['rps']:8.1f} req/s  p50 {res['p50_ms']:.1f} ms  "
                      f"p99 {res['p99_ms']:.1f} ms  codes {res['codes']}", flush=True)
            rss.append(peak_rss_mb(proc.pid))
        finally:
            proc.terminate()
            code = proc.wait(timeout=60)
            print(f"round {r + 1}: predict {predict[-1]:.1f} rows/s; server peak RSS {rss[-1]:.0f} MB; exit {code}", flush=True)
    summary = {"threads": args.threads, "admitted": args.admitted, "predict_rows_per_s": predict, "peak_rss_mb": rss, "levels": {}}
    print("\nclients  req/s (median)  p50 ms  p99 ms  codes")
    for c, _ in levels:
        runs = results[c]
        med = statistics.median(x["rps"] for x in runs)
        codes = {}
        for x in runs:
            for k, v in x["codes"].items():
                codes[k] = codes.get(k, 0) + v
        summary["levels"][c] = {"rps": [x["rps"] for x in runs], "p50_ms": [x["p50_ms"] for x in runs],
                                "p99_ms": [x["p99_ms"] for x in runs], "codes": codes,
                                "transport_errors": [x["transport_errors"] for x in runs]}
        print(f"{c:7d}  {med:14.1f}  {statistics.median(x['p50_ms'] for x in runs):6.1f}  "
              f"{statistics.median(x['p99_ms'] for x in runs):6.1f}  {codes}")
    ratio = statistics.median(x["rps"] for x in results[64]) / statistics.median(predict)
    summary["ratio_64_clients_to_predict"] = ratio
    print(f"\nbertfit predict: {statistics.median(predict):.1f} rows/s (median of {predict})")
    print(f"server at 64 clients / predict: {ratio:.2f}")
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "serve_load.json"), "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
