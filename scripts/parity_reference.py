#!/usr/bin/env python3
"""Reference numbers for bertfit's BERT port: transformers.BertModel on all-MiniLM-L6-v2, fp32, eval mode.

usage: "$(scripts/setup-reference.sh)" scripts/parity_reference.py [--model DIR] [--out FILE]

  --model  HF model folder (default: ${BERTFIT_CACHE:-~/.cache/bertfit}/models/all-MiniLM-L6-v2,
           made by scripts/setup-assets.sh)
  --out    default: crates/bertfit/tests/data/minilm_parity.json

Runs four inputs one at a time (no padding, so every attention_mask is all ones): a short sentence with
punctuation, a sentence with an uppercase word, a sentence pair (token_type_ids 1 on the second segment)
and a longer sentence (WordPiece continuations, an accented word). For each it stores the tokenizer's tokens, input_ids, token_type_ids,
attention_mask, the full last_hidden_state [seq][384] and the pooler_output [384], rounded to 7
significant digits. It also runs the four cases as one right-padded batch and checks the unpadded
positions agree with the one-by-one results (the largest difference is stored as
`padded_batch_max_abs_diff`): a Rust test can pad the same batch and compare against the same values.

Needs torch and transformers (scripts/setup-reference.sh makes a venv with them).
"""
import argparse
import hashlib
import json
import os
import sys

import torch
import transformers
from transformers import BertModel, BertTokenizerFast

CASES = [
    {"name": "short_punct", "text": "Hello, world!"},
    {"name": "uppercase", "text": "The film was NOT good: its plot dragged, and the ending felt rushed."},
    {"name": "pair", "text": "Is this review positive?",
     "text_pair": "Absolutely - a warm, funny (and surprisingly moving) film; 10/10."},
    {"name": "long", "text": "Although the first act takes its time, the score is hypnotically "
                             "unforgettable, and by the final scene I was won over by the café "
                             "owner's quiet honesty."},
]


def sig7(values):
    """Round a nested list of floats to 7 significant digits (shortest JSON repr of that rounding)."""
    if isinstance(values, list):
        return [sig7(v) for v in values]
    return float(f"{values:.7g}")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    default_model = os.path.join(os.environ.get("BERTFIT_CACHE", os.path.expanduser("~/.cache/bertfit")),
                                 "models", "all-MiniLM-L6-v2")
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=default_model)
    ap.add_argument("--out", default=os.path.join(repo_root, "crates", "bertfit", "tests", "data",
                                                  "minilm_parity.json"))
    args = ap.parse_args()
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        sys.exit(f"error: no model folder at {args.model} (run scripts/setup-assets.sh)")

    torch.manual_seed(0)
    tok = BertTokenizerFast.from_pretrained(args.model)
    model = BertModel.from_pretrained(args.model, torch_dtype=torch.float32, attn_implementation="eager")
    model.eval()

    out_cases = []
    singles = []
    with torch.no_grad():
        for case in CASES:
            enc = tok(case["text"], case.get("text_pair"), padding=False, truncation=False,
                      return_tensors="pt")
            res = model(input_ids=enc["input_ids"], token_type_ids=enc["token_type_ids"],
                        attention_mask=enc["attention_mask"])
            singles.append(res.last_hidden_state[0])
            entry = {"name": case["name"], "text": case["text"]}
            if "text_pair" in case:
                entry["text_pair"] = case["text_pair"]
            entry.update({
                "tokens": tok.convert_ids_to_tokens(enc["input_ids"][0].tolist()),
                "input_ids": enc["input_ids"][0].tolist(),
                "token_type_ids": enc["token_type_ids"][0].tolist(),
                "attention_mask": enc["attention_mask"][0].tolist(),
                "last_hidden_state": sig7(res.last_hidden_state[0].tolist()),
                "pooler_output": sig7(res.pooler_output[0].tolist()),
            })
            out_cases.append(entry)

        texts = [c["text"] for c in CASES]
        pairs = [c.get("text_pair") for c in CASES]
        # Mixed single texts and pairs: encode one by one, then right-pad into a batch.
        encs = [tok(t, p, padding=False, truncation=False) for t, p in zip(texts, pairs)]
        longest = max(len(e["input_ids"]) for e in encs)
        pad = lambda xs, v: xs + [v] * (longest - len(xs))
        batch = {k: torch.tensor([pad(e[k], tok.pad_token_id if k == "input_ids" else 0) for e in encs])
                 for k in ("input_ids", "token_type_ids", "attention_mask")}
        padded = model(**batch).last_hidden_state
        max_diff = max(float((padded[i, :len(e["input_ids"])] - singles[i]).abs().max())
                       for i, e in enumerate(encs))
    if max_diff > 1e-4:
        sys.exit(f"error: padded batch differs from one-by-one runs by {max_diff}")

    cfg = model.config
    doc = {
        "description": "transformers.BertModel (eval, fp32, eager attention) on all-MiniLM-L6-v2; "
                       "each case run alone, unpadded; values rounded to 7 significant digits. "
                       "Made by scripts/parity_reference.py.",
        "model": "all-MiniLM-L6-v2",
        "config_name_or_path": json.load(open(os.path.join(args.model, "config.json")))["_name_or_path"],
        "model_sha256": sha256_file(os.path.join(args.model, "model.safetensors")),
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "padded_batch_max_abs_diff": float(f"{max_diff:.3g}"),
        "cases": out_cases,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    n_tok = sum(len(c["input_ids"]) for c in out_cases)
    print(f"wrote {args.out}: {len(out_cases)} cases, {n_tok} tokens, {os.path.getsize(args.out)} bytes, "
          f"padded-batch max diff {max_diff:.2e}")


if __name__ == "__main__":
    main()
