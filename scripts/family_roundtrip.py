#!/usr/bin/env python3
"""Fine-tune each tiny family model with bertfit, then load its `best/` folder in transformers.

usage: "$(scripts/setup-reference.sh)" scripts/family_roundtrip.py [--bertfit PATH] [--out DIR]
                                                                     [--problem-type single_label|multi_label|regression|all]

  --bertfit       the bertfit binary (default: target/release/bertfit)
  --out           work folder (default: a temporary folder)
  --problem-type  which heads to check (default: all three). Multi-label trains on `|`-separated label
                  sets and compares transformers' per-label sigmoid probabilities (transformers reads
                  `problem_type: multi_label_classification`); regression trains on numbers and compares
                  transformers' raw output (one logit) with bertfit's predicted value, which checks that
                  the target scaling is folded into the saved weights.

For every model folder under crates/bertfit/tests/data/families/ (made by scripts/family_reference.py,
including the PyTorch-checkpoint and sharded masked-LM variants) this runs
`bertfit train` for two epochs on a small labelled CSV with new labels (so the head is freshly trained
and saved), then `bertfit predict` on the same texts, then loads `best/` with
`AutoModelForSequenceClassification.from_pretrained` (eval, fp32, eager attention) and the saved
`tokenizer.json`, and compares transformers' class probabilities with bertfit's. It fails when
transformers reports missing or unexpected weights, when the architecture differs from the family's,
or when any probability differs by more than 1e-4. One line per family is printed, with the largest
difference.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

import torch
import transformers

# label sets and scores for the multi-label and regression checks, one per text of TEXTS
SETS = ["happy|film", "film", "happy", "sad|film", "sad", "sad|plot", "happy", "", "", "happy", "sad|plot", "happy"]
SCORES = [4.5, 4.0, 3.5, 1.0, 1.5, 1.0, 4.0, 2.5, 2.0, 5.0, 1.5, 3.0]

TEXTS = [
    ("the movie was good and happy", "pos"), ("a great film, really nice", "pos"), ("fine acting, a happy plot", "pos"),
    ("the movie was bad and sad", "neg"), ("an awful film, really poor", "neg"), ("terrible acting, a sad plot", "neg"),
    ("Crème brûlée 😍 at the café", "pos"), ("東京は美しい", "neg"), ("visit https://example.com now", "neg"),
    ("Is this review positive? Absolutely.", "pos"), ("NOT good: the plot dragged", "neg"), ("quite nice", "pos"),
]


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bertfit", default=os.path.join(repo, "target", "release", "bertfit"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--problem-type", default="all", choices=["single_label", "multi_label", "regression", "all"])
    args = ap.parse_args()
    problems = ["single_label", "multi_label", "regression"] if args.problem_type == "all" else [args.problem_type]
    fixtures = os.path.join(repo, "crates", "bertfit", "tests", "data", "families")
    work = args.out or tempfile.mkdtemp(prefix="bertfit-roundtrip-")
    os.makedirs(work, exist_ok=True)
    failed = False
    for problem in problems:
        failed |= check(problem, args.bertfit, fixtures, work)
    sys.exit(1 if failed else 0)


HF_PROBLEM = {"single_label": "single_label_classification", "multi_label": "multi_label_classification", "regression": "regression"}


def check(problem, bertfit, fixtures, work):
    """Trains and compares every family for one problem type; True when one failed."""
    os.makedirs(os.path.join(work, problem), exist_ok=True)
    data = os.path.join(work, f"{problem}.csv")
    targets = {"single_label": [l for _, l in TEXTS], "multi_label": SETS, "regression": SCORES}[problem]
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i, ((t, _), y) in enumerate(zip(TEXTS, targets)):
            w.writerow([f"r{i}", t, y])
    extra = {"single_label": [], "multi_label": ["--label-separator", "|"], "regression": ["--problem-type", "regression"]}[problem]
    failed = False
    for family in sorted(os.listdir(fixtures)):
        model = os.path.join(fixtures, family)
        run = os.path.join(work, problem, family)
        subprocess.run([bertfit, "train", "--train", data, "--valid", data, "--model", model, "--output", run,
                        "--epochs", "2", "--batch-size", "4", "--lr", "1e-3", "--max-len", "64", "--overwrite"] + extra,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        best = os.path.join(run, "best")
        preds = os.path.join(work, problem, f"{family}-predictions.csv")
        subprocess.run([bertfit, "predict", "--model", best, "--data", data, "--output", preds], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(preds) as f:
            rows = list(csv.DictReader(f))
        hf, info = transformers.AutoModelForSequenceClassification.from_pretrained(
            best, attn_implementation="eager", output_loading_info=True)
        hf.eval()
        tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(best, "tokenizer.json"))
        # the fine-tuned folder is the family's sequence classifier, whatever the source checkpoint was
        arch = json.load(open(os.path.join(model, "config.json")))["architectures"][0].replace("ForMaskedLM", "ForSequenceClassification")
        labels = [hf.config.id2label[i] for i in range(hf.config.num_labels)]
        worst = 0.0
        with torch.no_grad():
            for (text, _), row in zip(TEXTS, rows):
                enc = tok(text, return_tensors="pt", return_token_type_ids=True)
                kwargs = dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                if "token_type_ids" in hf.forward.__code__.co_varnames:
                    kwargs["token_type_ids"] = enc["token_type_ids"]
                logits = hf(**kwargs).logits[0]
                if problem == "regression":
                    probs, ours = logits.tolist(), [float(row["prediction"])]
                elif problem == "multi_label":
                    probs, ours = torch.sigmoid(logits).tolist(), [float(row[f"prob_{l}"]) for l in labels]
                else:
                    probs, ours = torch.softmax(logits, -1).tolist(), [float(row[f"prob_{l}"]) for l in labels]
                worst = max(worst, max(abs(a - b) for a, b in zip(probs, ours)))
        problems = [f"missing {info['missing_keys']}" if info["missing_keys"] else "",
                    f"unexpected {info['unexpected_keys']}" if info["unexpected_keys"] else "",
                    f"architecture {type(hf).__name__}" if type(hf).__name__ != arch else "",
                    f"problem_type {hf.config.problem_type}" if (hf.config.problem_type or "single_label_classification") != HF_PROBLEM[problem] else "",
                    f"max |Δ| {worst:.2e} > 1e-4" if worst > 1e-4 else ""]
        problems = [p for p in problems if p]
        failed |= bool(problems)
        print(f"{problem:12s} {family:22s} {type(hf).__name__:38s} labels {labels}  max |Δ| {worst:.2e}  "
              f"{'FAIL: ' + '; '.join(problems) if problems else 'ok'}")
    return failed


if __name__ == "__main__":
    main()
