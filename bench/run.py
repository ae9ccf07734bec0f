#!/usr/bin/env python3
"""bertfit vs PyTorch + transformers, side by side, on this machine.

usage: python3 bench/run.py [--cases S-train,S-infer,S-train:rt,S-train@32x32,...] [--engines graph,fused]
                            [--rounds 3] [--steps 5] [--threads 2] [--ort] [--e2e [f32,bf16]] [--out DIR]

Case names: SIZE-MODE[-DTYPE[-vs-REFDTYPE]][@BxT][:LAYOUT]. SIZE S (MiniLM-L12-H384 shape), B (bert-base) or
D (distilbert-base: 6 layers of bert-base width, DistilBertForSequenceClassification on the reference side)
M (ModernBERT-base: 22 layers, ModernBertForSequenceClassification) or V (deberta-v3-base,
DebertaV2ForSequenceClassification); ours runs M and V on the candle graph;
MODE train (forward, loss, backward, clipping, AdamW) or infer; DTYPE f32 or bf16 (reference: bf16 autocast;
`S-infer-bf16-vs-f32` runs ours in bf16 against the reference in f32); @BxT the batch (default 32x64 train,
64x64 infer); LAYOUT anchor (hf_step.py's batch: half the rows 16 tokens shorter), full (no padding: the
packed engine gains nothing) or rt (row lengths drawn from bench/rt_lengths.json, the token counts of Rotten
Tomatoes' training texts under the MiniLM tokenizer, batch padded to its longest row; T caps them, 128).

For each case, runs `bertfit bench-step` once per engine in --engines and the reference bench/hf_cases.py
(the same batches, built the same way) in alternation, --rounds times each, each a fresh process doing 2
warm-up and --steps timed steps; --ort adds ONNX Runtime f32 and int8 (dynamic quantization) references to
inference cases. Reports per case and system the median of all timed steps, min-max spread, the ratio to the
reference and peak RSS, with the CPU model, core count and instruction-set flags. --e2e adds the end-to-end
case: fine-tune all-MiniLM-L6-v2 on Rotten Tomatoes (1 epoch, same split files and hyperparameters) with
`bertfit train` (each engine) and with hf_finetune.py --group-by-length (transformers' Trainer, its fastest
CPU setting). Writes RESULTS.json and RESULTS.md into --out. Needs: target/release/bertfit (cargo build
--release), the reference venv (scripts/setup-reference.sh; onnx and onnxruntime for --ort) and, for --e2e,
the assets (scripts/setup-assets.sh).
"""
import argparse, json, os, platform, re, shutil, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared", "bench")
CACHE = os.environ.get("BERTFIT_CACHE", os.path.expanduser("~/.cache/bertfit"))
REF_PY = os.path.join(CACHE, "ref-venv", "bin", "python")
BERTFIT = os.path.join(ROOT, "target", "release", "bertfit")
LENGTHS = os.path.join(ROOT, "bench", "rt_lengths.json")


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


def parse_case(case):
    """SIZE-MODE[-DTYPE[-vs-REFDTYPE]][@BxT][:LAYOUT] -> dict. Examples: S-train, S-infer-bf16-vs-f32,
    S-train@32x32, S-train:rt (Rotten Tomatoes lengths, capped at 128), B-infer@64x64:full."""
    name, layout = (case.split(":") + ["anchor"])[:2]
    name, shape = (name.split("@") + [""])[:2]
    parts = name.split("-")
    size, mode = parts[0], parts[1]
    ours_dtype = parts[2] if len(parts) > 2 else "f32"
    ref_dtype = parts[4] if len(parts) > 4 else ours_dtype
    batch, seq = (shape.split("x") + [""])[:2] if shape else ("", "")
    seq = seq or ("128" if layout == "rt" else "64")
    return {"size": size, "mode": mode, "ours_dtype": ours_dtype, "ref_dtype": ref_dtype,
            "batch": batch, "seq": seq, "layout": layout}


def synthetic(case, rounds, steps, threads, engines, ort):
    """One case: the reference (hf_cases.py: the same batches as bench-step) and each of our engines in
    alternation, each run a fresh process; with `ort`, ONNX Runtime f32 and int8 for inference cases."""
    c = parse_case(case)
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
    shape = ["--seq", c["seq"], "--layout", c["layout"]] + (["--batch", c["batch"]] if c["batch"] else [])
    if c["layout"] == "rt":
        shape += ["--lengths", LENGTHS]
    systems = [(f"ours-{e}", [BERTFIT, "bench-step", c["size"], c["mode"], "--steps", str(steps), "--threads", str(threads),
                              "--precision", c["ours_dtype"], "--engine", e] + shape) for e in engines]
    ref_base = [REF_PY, os.path.join(ROOT, "bench", "hf_cases.py"), c["size"], c["mode"], c["ref_dtype"], "--steps", str(steps),
                "--threads", str(threads)] + shape
    systems.append(("ref", ref_base))
    if ort and c["mode"] == "infer":
        systems += [("ort-f32", ref_base + ["--runtime", "ort"]), ("ort-int8", ref_base + ["--runtime", "ort-int8"])]
    res = {name: {"times": [], "rss": []} for name, _ in systems}
    for r in range(rounds):
        for name, cmd in (systems if r % 2 == 0 else systems[::-1]):
            out, rss = run_rss(cmd, env)
            t = step_times(out)
            res[name]["times"].extend(t)
            res[name]["rss"].append(rss)
            print(f"  {case} round {r + 1} {name}: median {statistics.median(t):.0f} ms, rss {rss:.0f} MB", flush=True)
    return summarize(case, res)


def summarize(case, res):
    row = {"case": case, "systems": {}}
    for name, v in res.items():
        t = v["times"]
        row["systems"][name] = {"median_ms": statistics.median(t), "min_ms": min(t), "max_ms": max(t), "n": len(t),
                                "peak_rss_mb": max(v["rss"])}
    ref = row["systems"]["ref"]["median_ms"]
    row["ratio"] = {name: s["median_ms"] / ref for name, s in row["systems"].items() if name != "ref"}
    return row


def cpu_meta():
    """CPU model, cores and the instruction-set flags that decide our kernels."""
    info = open("/proc/cpuinfo").read()
    model = info.split("model name")[1].split(":")[1].splitlines()[0].strip() if "model name" in info else platform.processor()
    flags = set(info.split("flags")[1].split(":")[1].splitlines()[0].split()) if "flags" in info else set()
    wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile"]
    return {"cpu": model, "cores": os.cpu_count(), "isa": [f for f in wanted if f in flags]}


def e2e(threads, precision="f32", engine="fused"):
    data = os.path.join(CACHE, "data", "rotten-tomatoes")
    model = os.path.join(CACHE, "models", "all-MiniLM-L6-v2")
    hp = ["--epochs", "1", "--batch-size", "32", "--lr", "5e-5", "--max-len", "64", "--seed", "42"]
    tmp = tempfile.mkdtemp(prefix="bertfit-e2e-")
    ours = [BERTFIT, "train", "--model", model, "--train", f"{data}/train.jsonl", "--valid", f"{data}/valid.jsonl",
            "--test", f"{data}/test.jsonl", "--output", os.path.join(tmp, "run"), "--threads", str(threads),
            "--quiet", "--warmup-ratio", "0.1", "--weight-decay", "0.01", "--precision", precision, "--engine", engine] + hp
    ref_out = os.path.join(tmp, "ref.json")
    # The reference in its fastest CPU setting: length-grouped batches (its metrics follow prediction order).
    ref = [REF_PY, os.path.join(SHARED, "hf_finetune.py"), "--model", model, "--train", f"{data}/train.jsonl",
           "--valid", f"{data}/valid.jsonl", "--test", f"{data}/test.jsonl", "--threads", str(threads),
           "--out", ref_out, "--group-by-length"] + hp + (["--bf16"] if precision == "bf16" else [])
    _, rss_ref = run_rss(ref)
    r = json.load(open(ref_out))
    _, rss_ours = run_rss(ours)
    s = json.load(open(os.path.join(tmp, "run", "summary.json")))
    shutil.rmtree(tmp, ignore_errors=True)
    return {"case": "e2e-rt-minilm-l6-1ep" + ("-bf16" if precision == "bf16" else "") + f"-{engine}",
            "ours": {"train_s": s["train_seconds"], "tokens_per_s": s["train_tokens_per_s"],
                     "test_accuracy": s["test"]["accuracy"], "peak_rss_mb": rss_ours},
            "ref": {"train_s": r["train_seconds"], "tokens_per_s": r["train_tokens_per_s_unpadded"],
                    "test_accuracy": r["test"]["accuracy"], "peak_rss_mb": rss_ref},
            "ratio": s["train_seconds"] / r["train_seconds"]}


def markdown(rows, meta):
    lines = [f"Measured {meta['date']} on {meta['machine']} (ISA: {' '.join(meta['isa']) or 'baseline'}), "
             f"{meta['threads']} threads, {meta['reference']}.", ""]
    synth = [r for r in rows if not r["case"].startswith("e2e")]
    if synth:
        names = [n for n in synth[0]["systems"] if n != "ref"]
        lines += ["| case | reference median (min–max) | " + " | ".join(f"{n} median (min–max), ×ref" for n in names) + " | peak RSS ref / " + " / ".join(names) + " |",
                  "|---|---|" + "---|" * len(names) + "---|"]
        for r in synth:
            sy = r["systems"]
            cell = lambda s: f"{s['median_ms']:.0f} ms ({s['min_ms']:.0f}–{s['max_ms']:.0f})"
            extra = " | ".join(f"{cell(sy[n])}, **{r['ratio'][n]:.2f}**" if n in sy else "–" for n in names)
            rss = " / ".join(f"{sy[n]['peak_rss_mb']:.0f}" for n in ["ref"] + names if n in sy)
            lines.append(f"| {r['case']} | {cell(sy['ref'])} | {extra} | {rss} MB |")
    for r in rows:
        if r["case"].startswith("e2e"):
            o, f = r["ours"], r["ref"]
            lines.append("")
            lines.append(f"{r['case']}: bertfit {o['train_s']:.0f} s ({o['tokens_per_s']:.0f} tokens/s), test acc {o['test_accuracy']:.4f}, "
                         f"peak RSS {o['peak_rss_mb']:.0f} MB; reference {f['train_s']:.0f} s ({f['tokens_per_s']:.0f} tokens/s), "
                         f"test acc {f['test_accuracy']:.4f}, {f['peak_rss_mb']:.0f} MB; time ratio {r['ratio']:.2f}")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="S-train,S-infer")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--e2e", nargs="?", const="f32", default=None,
                    help="end-to-end fine-tune, for each listed precision (f32, bf16; default f32)")
    ap.add_argument("--engines", default="graph,fused", help="our training paths to run (graph, fused)")
    ap.add_argument("--ort", action="store_true", help="add ONNX Runtime f32 and int8 references to inference cases")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    a = ap.parse_args()
    for path, hint in ((BERTFIT, "cargo build --release -p bertfit-cli"), (REF_PY, "bash scripts/setup-reference.sh")):
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run {hint}")
    ver = subprocess.run([REF_PY, "-c", "import torch, transformers; print(torch.__version__, transformers.__version__)"],
                         capture_output=True, text=True).stdout.split()
    cpu = cpu_meta()
    meta = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {cpu['cores']} cores ({cpu['cpu']})",
            "threads": a.threads, "reference": f"torch {ver[0]} + transformers {ver[1]}" if len(ver) == 2 else "torch", **cpu}
    engines = [e for e in a.engines.split(",") if e]
    rows = []
    for case in [c for c in a.cases.split(",") if c]:
        print(f"{case}:", flush=True)
        rows.append(synthetic(case, a.rounds, a.steps, a.threads, engines, a.ort))
    for precision in [p for p in (a.e2e or "").split(",") if p]:
        print(f"e2e {precision}:", flush=True)
        for engine in engines:
            rows.append(e2e(a.threads, precision, engine))
    os.makedirs(a.out, exist_ok=True)
    json.dump({"meta": meta, "rows": rows}, open(os.path.join(a.out, "RESULTS.json"), "w"), indent=1)
    md = markdown(rows, meta)
    open(os.path.join(a.out, "RESULTS.md"), "w").write(md)
    print(md)


if __name__ == "__main__":
    main()
