"""One Markdown summary of a scripts/gpu-check.sh run: the device, bertfit's GPU self-test (checks, GEMM
TFLOP/s against the M0 target, copy bandwidth, random-draw rate) and the PyTorch + transformers baseline
measured in the same call, and the engine on the GPU (engine.json: GPU vs CPU engine checks, step times as
ratios to the same call's baseline, per-op profile). Usage: gpu_summary.py OUT_DIR (reads selftest*.json,
engine.json, hf*.json, device.txt)."""
import glob
import json
import os
import sys

M0_TFLOPS = 550.0


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print(f"- {os.path.basename(path)}: not available ({e})")
        return None


def main(out):
    # device.txt: the bundle's commit lines, then nvidia-smi's line
    lines = open(os.path.join(out, "device.txt")).read().strip().splitlines() if os.path.exists(os.path.join(out, "device.txt")) else []
    device = next((l for l in reversed(lines) if "," in l), "?")
    print(f"### GPU run: {device}\n")
    for path in sorted(glob.glob(os.path.join(out, "selftest*.json"))):
        selftest(load(path), os.path.basename(path))
    if os.path.exists(os.path.join(out, "engine.json")):
        engine(load(os.path.join(out, "engine.json")), out)
    if os.path.exists(os.path.join(out, "e2e.md")):
        print(open(os.path.join(out, "e2e.md")).read())
    hf_tables(out)


def baseline(out):
    """(case, what) -> {mode: samples/s} from the same call's hf*.json."""
    rows = {}
    for path in sorted(glob.glob(os.path.join(out, "hf*.json"))):
        hf = load(path)
        for r in (hf or {}).get("rows", []):
            if "samples_s" in r:
                rows.setdefault((r["case"], r["what"]), {})[r["mode"]] = r["samples_s"]
    return rows


def engine(e, out):
    if not e:
        return
    print(f"bertfit gpu-selftest --engine (engine.json), {e['wall_s']:.1f} s\n")
    print("| case | compared | max rel. | worst tensor | bound | |")
    print("|---|---|---|---|---|---|")
    for c in e["checks"]:
        print(f"| {c['case']} | {c['what']} | {c['max_rel']:.1e} | {c['worst']} | {c['tolerance']:.0e} | {'ok' if c['passed'] else 'FAIL'} |")
    for err in e.get("errors", []):
        print(f"\n- error: {err}")
    if e["steps"]:
        base = baseline(out)
        modes = sorted({m for v in base.values() for m in v})
        print("\n| case | what | precision | ms (min–max) | samples/s | " + " | ".join(f"× PyTorch {m}" for m in modes) + " |")
        print("|---|---|---|---|---|" + "---|" * len(modes))
        for r in e["steps"]:
            ref = base.get((r["case"], r["what"]), {})
            ratios = " | ".join(f"{r['samples_s'] / ref[m]:.2f}" if m in ref else "-" for m in modes)
            print(f"| {r['case']} | {r['what']} | {r['precision']} | {r['ms']:.2f} ({r['min_ms']:.2f}–{r['max_ms']:.2f}) | {r['samples_s']:.0f} | {ratios} |")
    if e["profile"]:
        total = sum(p["ms"] for p in e["profile"])
        print(f"\nProfile, {e['profile_case']} (each call waited for: {total:.1f} ms per step):\n")
        print("| op | ms per step | calls | share |")
        print("|---|---|---|---|")
        for p in e["profile"]:
            print(f"| {p['op']} | {p['ms']:.3f} | {p['calls']:.0f} | {100 * p['share']:.1f} % |")
    print()


def selftest(st, name):
    if st:
        d = st["device"]
        print(f"bertfit gpu-selftest ({name}): {d['name']}, {d['sm_count']} SMs, compute {d['compute_capability']}, "
              f"driver CUDA {d['driver_cuda']}, cuBLASLt {d['cublaslt']}, {st['wall_s']:.1f} s\n")
        for c in st["checks"]:
            print(f"- {'ok' if c['passed'] else 'FAIL'}: {c['name']} ({c['detail']})")
        print(f"- device copy {st['copy_gb_s']:.0f} GB/s (read + write); counter-based draws "
              f"{st['rng_draws_per_s'] / 1e9:.1f} G/s\n")
        print("| product | shape | ms | TFLOP/s | best algo TFLOP/s | equal bits | rel. error | M0 |")
        print("|---|---|---|---|---|---|---|---|")
        for g in st["gemms"]:
            best = max(g["algorithms_tflops"], default=g["tflops"])
            bf16_target = "bf16" in g["shape"].split(" ")[-1].split("->")[0] and not g["name"].startswith("minilm")
            verdict = ("met" if g["tflops"] >= M0_TFLOPS else "missed") if bf16_target else "-"
            print(f"| {g['name']} | {g['shape']} | {g['ms']:.3f} | {g['tflops']:.0f} | {best:.0f} | "
                  f"{'yes' if g['repeat_equal'] else 'NO'} | {g['max_rel_err']:.1e} (≤ {g['tolerance']:.0e}) | {verdict} |")
        print()


def hf_tables(out):
    for path in sorted(glob.glob(os.path.join(out, "hf*.json"))):
        hf = load(path)
        if not hf:
            continue
        print(f"PyTorch {hf['torch']} + transformers {hf['transformers']} on {hf['device']} ({os.path.basename(path)}):\n")
        print("| case | what | mode | ms | samples/s | peak MiB |")
        print("|---|---|---|---|---|---|")
        for r in hf["rows"]:
            if "error" in r:
                print(f"| {r['case']} | {r['what']} | {r['mode']} | error: {r['error'][:80]} | | |")
            else:
                print(f"| {r['case']} | {r['what']} | {r['mode']} | {r['ms']:.2f} | {r['samples_s']:.0f} | {r['peak_mib']:.0f} |")
        print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
