"""PyTorch + transformers on a CUDA GPU: the baseline bertfit's CUDA backend is measured against.

Random-init BertForSequenceClassification (throughput only), the same batches bertfit's GPU bench uses:
`--cases NAME:BATCH[:nopad]`, NAME in {bert-base, minilm} (minilm = MiniLM-L12-H384 widths), sequence
length 128 unless `--seq`. Padded cases mask the last quarter of every second row (12.5 % padding, as
the design's anchor); `nopad` cases have none.

Train step = forward + cross-entropy + backward + clip_grad_norm_(1.0) + fused AdamW + zero_grad.
Inference = forward under no_grad. Modes: bf16 autocast eager (`--eager`) and bf16 autocast +
torch.compile (`--compile`). Each timing is the median of `--iters` steps after `--warmup` steps,
CUDA events around each step; peak memory is torch.cuda.max_memory_allocated over the timed steps.

Writes one JSON list (`--json`) and prints one line per row. Run it in the same call as bertfit's own
GPU bench: GPUs differ (H100, H200) and only numbers from one run are compared.
"""
import argparse
import json
import os
import sys
import time

import torch
from transformers import BertConfig, BertForSequenceClassification

WIDTHS = {
    "bert-base": dict(num_hidden_layers=12, hidden_size=768, num_attention_heads=12, intermediate_size=3072),
    "minilm": dict(num_hidden_layers=12, hidden_size=384, num_attention_heads=12, intermediate_size=1536),
}


def parse_case(text, seq):
    parts = text.split(":")
    if len(parts) not in (2, 3) or parts[0] not in WIDTHS or (len(parts) == 3 and parts[2] != "nopad"):
        raise SystemExit(f"bad case {text!r}: expected NAME:BATCH[:nopad] with NAME in {sorted(WIDTHS)}")
    return dict(name=parts[0], batch=int(parts[1]), seq=seq, pad=len(parts) == 2)


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2], times[0], times[-1], torch.cuda.max_memory_allocated()


def batch_tensors(case):
    g = torch.Generator(device="cpu").manual_seed(0)
    b, s = case["batch"], case["seq"]
    ids = torch.randint(1000, 30000, (b, s), generator=g)
    mask = torch.ones(b, s, dtype=torch.long)
    if case["pad"]:
        mask[::2, -(s // 4):] = 0
    labels = torch.randint(0, 2, (b,), generator=g)
    return ids.cuda(), mask.cuda(), labels.cuda()


def run_case(case, compile_, args):
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, max_position_embeddings=512, num_labels=2, **WIDTHS[case["name"]])
    model = BertForSequenceClassification(cfg).cuda()
    ids, mask, labels = batch_tensors(case)
    tokens = int(mask.sum())
    label = f"{case['name']} b{case['batch']} s{case['seq']}{'' if case['pad'] else ' nopad'}"
    mode = "bf16+compile" if compile_ else "bf16 eager"
    rows = []
    if compile_:
        # each case compiles afresh: without a reset, graphs of earlier cases count towards dynamo's
        # recompile limit and later cases silently fall back to eager
        torch._dynamo.reset()
    runner = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, fused=True)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = runner(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    def infer():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            runner(input_ids=ids, attention_mask=mask)

    for what, fn, train in (("train", step, True), ("infer", infer, False)):
        model.train(train)
        t0 = time.time()
        try:
            ms, lo, hi, peak = median_ms(fn, args.warmup, args.iters)
            rows.append(dict(case=label, what=what, mode=mode, ms=ms, min_ms=lo, max_ms=hi,
                             samples_s=case["batch"] / ms * 1e3, tokens_s=tokens / ms * 1e3,
                             peak_mib=peak / 2**20, wall_s=time.time() - t0))
        except Exception as e:  # one failing mode must not lose the others
            rows.append(dict(case=label, what=what, mode=mode, error=str(e)[:300]))
        print(json.dumps(rows[-1]), flush=True)
    del model, opt, runner
    torch.cuda.empty_cache()
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default="bert-base:128,bert-base:128:nopad,minilm:128,bert-base:32")
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--eager", action="store_true", help="bf16 autocast, eager")
    p.add_argument("--compile", action="store_true", help="bf16 autocast + torch.compile")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if not (args.eager or args.compile):
        args.eager = True
    torch.backends.cuda.matmul.allow_tf32 = True
    cases = [parse_case(c, args.seq) for c in args.cases.split(",") if c]
    import transformers
    header = dict(device=torch.cuda.get_device_name(), torch=torch.__version__,
                  transformers=transformers.__version__)
    print(json.dumps(header), flush=True)
    rows = []
    for compile_ in [False] * args.eager + [True] * args.compile:
        for case in cases:
            rows.extend(run_case(case, compile_, args))
            if args.json:  # written after every case, so a timeout keeps what was measured
                with open(args.json, "w") as f:
                    json.dump(dict(header, rows=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
