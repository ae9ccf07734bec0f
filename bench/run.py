#!/usr/bin/env python3
"""bertfit vs PyTorch + transformers, side by side, on this machine.

usage: python3 bench/run.py [--cases S-train,S-infer,B-train,B-infer,S-train-bf16,S-infer-bf16-vs-f32]
                            [--rounds 3] [--steps 5]
                            [--threads 2] [--e2e] [--out bench/results]

For each synthetic case, runs `bertfit bench-step` and the reference `hf_step.py` (../shared/bench) in
alternation, `--rounds` times each, each run a fresh process doing 2 warm-up and `--steps` timed steps.
Reports per case: the median of all timed steps for each system, min-max spread, the ratio ours/reference,
and each system's peak RSS. `--e2e` adds the end-to-end case: fine-tune all-MiniLM-L6-v2 on Rotten Tomatoes
(1 epoch, same split files and hyperparameters) with `bertfit train` and with `hf_finetune.py`.
Writes RESULTS.json and RESULTS.md into --out. Needs: target/release/bertfit (cargo build --release),
the reference venv (scripts/setup-reference.sh) and, for --e2e, the assets (scripts/setup-assets.sh).
"""
import argparse, json, os, platform, re, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "bench")
CACHE = os.environ.get("BERTFIT_CACHE", os.path.expanduser("~/.cache/bertfit"))
REF_PY = os.path.join(CACHE, "ref-venv", "bin", "python")
BERTFIT = os.path.join(ROOT, "target", "release", "bertfit")


def run_rss(cmd, env=None):
    """Like run, but measures the child's peak RSS with wait4."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    chunks = []
    while True:
        b = proc.stdout.read(65536)
        if not b:
            break
        chunks.append(b)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = b"".join(chunks).decode(errors="replace")
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{out[-3000:]}")
    return out, usage.ru_maxrss / 1024.0


STEP = re.compile(r"^(?:step|batch) (\d+) .*?([\d.]+) ms", re.M)


def step_times(out, warmup=2):
    return [float(ms) for i, ms in STEP.findall(out) if int(i) >= warmup]


def synthetic(case, rounds, steps, threads):
    # SIZE-MODE[-DTYPE]: S-train, B-infer, S-train-bf16 (ours --precision bf16, reference bf16 autocast),
    # S-infer-bf16-vs-f32 (ours in bf16 against the reference in f32: the inference throughput target).
    parts = case.split("-")
    size, mode = parts[0], parts[1]
    ours_dtype = parts[2] if len(parts) > 2 else "f32"
    ref_dtype = parts[4] if len(parts) > 4 else ours_dtype
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    ours = [BERTFIT, "bench-step", size, mode, "--steps", str(steps), "--threads", str(threads), "--precision", ours_dtype]
    ref = [REF_PY, os.path.join(SHARED, "hf_step.py"), size, mode, ref_dtype, "--steps", str(steps)]
    res = {"ours": {"times": [], "rss": []}, "ref": {"times": [], "rss": []}}
    for r in range(rounds):
        for name, cmd in (("ours", ours), ("ref", ref)) if r % 2 == 0 else (("ref", ref), ("ours", ours)):
            out, rss = run_rss(cmd, env)
            t = step_times(out)
            res[name]["times"].extend(t)
            res[name]["rss"].append(rss)
            print(f"  {case} round {r + 1} {name}: median {statistics.median(t):.0f} ms, rss {rss:.0f} MB", flush=True)
    return summarize(case, res)


def summarize(case, res):
    row = {"case": case}
    for name in ("ours", "ref"):
        t = res[name]["times"]
        row[name] = {"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t), "n": len(t),
                     "peak_rss_mb": max(res[name]["rss"])}
    row["ratio"] = row["ours"]["median_ms"] / row["ref"]["median_ms"]
    return row


def e2e(threads, precision="f32"):
    data = os.path.join(CACHE, "data", "rotten-tomatoes")
    model = os.path.join(CACHE, "models", "all-MiniLM-L6-v2")
    hp = ["--epochs", "1", "--batch-size", "32", "--lr", "5e-5", "--max-len", "64", "--seed", "42"]
    tmp = tempfile.mkdtemp(prefix="bertfit-e2e-")
    ours = [BERTFIT, "train", "--model", model, "--train", f"{data}/train.jsonl", "--valid", f"{data}/valid.jsonl",
            "--test", f"{data}/test.jsonl", "--output", os.path.join(tmp, "run"), "--threads", str(threads),
            "--quiet", "--warmup-ratio", "0.1", "--weight-decay", "0.01", "--precision", precision] + hp
    ref_out = os.path.join(tmp, "ref.json")
    # Random sampling for the reference: its --group-by-length also reorders evaluation/prediction batches,
    # which its metric code does not undo (test labels would be compared against shuffled predictions).
    ref = [REF_PY, os.path.join(SHARED, "hf_finetune.py"), "--model", model, "--train", f"{data}/train.jsonl",
           "--valid", f"{data}/valid.jsonl", "--test", f"{data}/test.jsonl", "--threads", str(threads),
           "--out", ref_out] + hp + (["--bf16"] if precision == "bf16" else [])
    _, rss_ref = run_rss(ref)
    r = json.load(open(ref_out))
    _, rss_ours = run_rss(ours)
    s = json.load(open(os.path.join(tmp, "run", "summary.json")))
    shutil.rmtree(tmp, ignore_errors=True)
    return {"case": "e2e-rt-minilm-l6-1ep" + ("-bf16" if precision == "bf16" else ""),
            "ours": {"train_s": s["train_seconds"], "tokens_per_s": s["train_tokens_per_s"],
                     "test_accuracy": s["test"]["accuracy"], "peak_rss_mb": rss_ours},
            "ref": {"train_s": r["train_seconds"], "tokens_per_s": r["train_tokens_per_s_unpadded"],
                    "test_accuracy": r["test"]["accuracy"], "peak_rss_mb": rss_ref},
            "ratio": s["train_seconds"] / r["train_seconds"]}


def markdown(rows, meta):
    lines = [f"Measured {meta['date']} on {meta['machine']}, {meta['threads']} threads, {meta['reference']}.", "",
             "| case | bertfit median (min–max) | reference median (min–max) | ours/ref | peak RSS ours / ref |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r["case"].startswith("e2e"):
            o, f = r["ours"], r["ref"]
            lines.append(f"| {r['case']} | {o['train_s']:.0f} s, test acc {o['test_accuracy']:.4f} | "
                         f"{f['train_s']:.0f} s, test acc {f['test_accuracy']:.4f} | {r['ratio']:.2f} | "
                         f"{o['peak_rss_mb']:.0f} / {f['peak_rss_mb']:.0f} MB |")
        else:
            o, f = r["ours"], r["ref"]
            lines.append(f"| {r['case']} | {o['median_ms']:.0f} ms ({o['min_ms']:.0f}–{o['max_ms']:.0f}) | "
                         f"{f['median_ms']:.0f} ms ({f['min_ms']:.0f}–{f['max_ms']:.0f}) | {r['ratio']:.2f} | "
                         f"{o['peak_rss_mb']:.0f} / {f['peak_rss_mb']:.0f} MB |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="S-train,S-infer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--e2e", nargs="?", const="f32", default=None,
                    help="end-to-end fine-tune, for each listed precision (f32, bf16; default f32)")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()
    for path, hint in ((BERTFIT, "cargo build --release -p bertfit-cli"), (REF_PY, "bash scripts/setup-reference.sh")):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run {hint}")
    ver = subprocess.run([REF_PY, "-c", "import torch, transformers; print(torch.__version__, transformers.__version__)"],
                         capture_output=True, text=True).stdout.split()
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {os.cpu_count()} cores "
            f"({open('/proc/cpuinfo').read().split('model name')[1].split(':')[1].splitlines()[0].strip()})",
            "threads": a.threads, "reference": f"torch {ver[0]} + transformers {ver[1]}" if len(ver) == 2 else "torch"}
    rows = []
    for case in [c for c in a.cases.split(",") if c]:
        print(f"{case}:", flush=True)
        rows.append(synthetic(case, a.rounds, a.steps, a.threads))
    for precision in [p for p in (a.e2e or "").split(",") if p]:
        print(f"e2e {precision}:", flush=True)
        rows.append(e2e(a.threads, precision))
    os.makedirs(a.out, exist_ok=True)
    json.dump({"meta": meta, "rows": rows}, open(os.path.join(a.out, "RESULTS.json"), "w"), indent=1)
    md = markdown(rows, meta)
    open(os.path.join(a.out, "RESULTS.md"), "w").write(md)
    print(md)


if __name__ == "__main__":
    main()
