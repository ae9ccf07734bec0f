#!/usr/bin/env python3
"""A masked LM pretrained by bertfit loads in transformers with the same predictions.

usage: "$(scripts/setup-reference.sh)" scripts/mlm_roundtrip.py [--bin target/debug/bertfit]

For each tiny *ForMaskedLM of crates/bertfit/tests/data/mlm (BERT, RoBERTa, DistilBERT, ELECTRA): runs
`bertfit pretrain` for a few steps on a small inline corpus, then `bertfit fill-mask --json --top-k 10` on
its best/ folder, loads the same folder with transformers' AutoModelForMaskedLM (which must report no
missing or unexpected weights besides the carried pooler) and compares, at every mask of every text, the
ten most likely tokens and their probabilities (max absolute difference; fails above 1e-4). Prints one
line per family.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
CORPUS = [
    "The film was NOT good: its plot dragged, and the ending felt rushed.",
    "Absolutely - a warm, funny (and surprisingly moving) film; 10/10.",
    "Although the first act takes its time, the score is hypnotically unforgettable.",
    "Is this review positive? Is it negative? Nobody knows.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps.",
    "Hello, world! This is a tiny corpus for tiny tokenizers.",
] * 4
TEXTS = ["The film was [MASK] good.", "Hello, [MASK]! This is a tiny [MASK] for tiny tokenizers."]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "debug", "bertfit"))
    args = ap.parse_args()
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w") as f:
            f.write("\n".join(CORPUS) + "\n")
        for name in ["bert", "roberta", "distilbert", "electra"]:
            fixture = os.path.join(ROOT, "crates", "bertfit", "tests", "data", "mlm", name)
            run = os.path.join(tmp, name)
            subprocess.run([args.bin, "pretrain", "--data", corpus, "--model", fixture, "--output", run, "--max-steps", "3",
                            "--batch-size", "4", "--max-len", "32", "--lr", "1e-3", "--valid-fraction", "0", "--threads", "1", "--quiet"],
                           check=True, capture_output=True)
            best = os.path.join(run, "best")
            out = subprocess.run([args.bin, "fill-mask", "--model", best, "--json", "--top-k", "10", "--threads", "1"]
                                 + [a for t in TEXTS for a in ("--text", t)], check=True, capture_output=True, text=True).stdout
            ours = [json.loads(l) for l in out.splitlines()]
            model, info = transformers.AutoModelForMaskedLM.from_pretrained(best, output_loading_info=True, attn_implementation="eager")
            model.eval()
            unexpected = [k for k in info["unexpected_keys"] if "pooler" not in k]
            if info["missing_keys"] or unexpected or info["mismatched_keys"]:
                sys.exit(f"{name}: transformers loading: {info}")
            tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(best, "tokenizer.json"))
            tok.truncation_side = "right"
            mask_token = "<mask>" if "<mask>" in tok.get_vocab() else "[MASK]"
            mask_id = tok.convert_tokens_to_ids(mask_token)
            i = 0
            diff = 0.0
            for text in TEXTS:
                enc = tok(text.replace("[MASK]", mask_token), return_tensors="pt")
                with torch.no_grad():
                    kwargs = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
                    if model.config.model_type not in ("distilbert", "roberta"):
                        kwargs["token_type_ids"] = torch.zeros_like(enc["input_ids"])
                    logits = model(**kwargs).logits[0]
                for pos in (enc["input_ids"][0] == mask_id).nonzero().flatten().tolist():
                    probs = torch.softmax(logits[pos], -1)
                    mine = ours[i]
                    i += 1
                    for c in mine["candidates"]:
                        diff = max(diff, abs(float(probs[c["id"]]) - c["probability"]))
                    top = torch.topk(probs, 10).indices.tolist()
                    got = [c["id"] for c in mine["candidates"]]
                    if top[:3] != got[:3]:
                        sys.exit(f"{name}: top tokens differ at {text!r}: transformers {top[:3]}, bertfit {got[:3]}")
            if i != len(ours):
                sys.exit(f"{name}: bertfit reported {len(ours)} masks, transformers found {i}")
            print(f"{name:<11} {len(ours)} masks, top-10 probabilities within {diff:.2e}")
            worst = max(worst, diff)
    if worst > 1e-4:
        sys.exit(f"max difference {worst:.2e} > 1e-4")
    print(f"all within {worst:.2e}")


if __name__ == "__main__":
    main()
