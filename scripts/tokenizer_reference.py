#!/usr/bin/env python3
"""Reference encodings for one tokenizer of each kind, by transformers' fast tokenizer.

usage: "$(scripts/setup-reference.sh)" scripts/tokenizer_reference.py [--out FILE]

  --out  default: crates/bertfit/tests/data/tokenizer_reference.json

Tokenizers: WordPiece (the real all-MiniLM-L6-v2 tokenizer.json from the assets cache, and the tiny one of
tests/data/families/bert), byte-level BPE (families/roberta) and SentencePiece Unigram
(families/xlm-roberta). Texts: 240 single texts and 60 pairs built deterministically from fragments
(accents, emoji, CJK, Arabic, URLs, e-mail addresses, numbers, punctuation runs, odd whitespace, casing,
long texts that must be truncated). Each is encoded with `truncation=True, max_length=24` (longest
first, as bertfit truncates) and no padding; the file stores the texts and, per tokenizer, the ids and
token types. Paths are relative to the repository, the MiniLM one to the assets cache.
"""
import argparse
import json
import os

import transformers

FRAGMENTS = [
    "Hello, world!", "The film was NOT good", "café crème brûlée", "naïve façade", "jalapeño", "Zürich",
    "😍🔥", "👍🏽 thumbs", "東京は美しい", "映画はとても良かった", "한국어 문장", "مرحبا بالعالم",
    "https://example.com/path?q=1&r=2", "mail me@example.org", "10/10", "3.14159", "1,000,000 dollars",
    "!!!???", "...", "(parenthesised)", "\"quoted\"", "it's", "don't", "e.g.", "#hashtag", "@user",
    "  extra   spaces  ", "tab\there", "UPPER lower MiXeD", "unbelievably", "antidisestablishmentarianism",
    "Ελληνικά", "русский текст", "Ünïcödé", "ﬁligature", "x²", "½ cup", "—dash—", "…ellipsis",
]


def texts():
    singles = []
    n = len(FRAGMENTS)
    for i in range(240):
        k = 1 + (i * 7) % 5
        parts = [FRAGMENTS[(i * 13 + j * 5) % n] for j in range(k)]
        text = " ".join(parts)
        if i % 17 == 0:
            text = " ".join([text] * 6)  # long: truncated at 24 tokens
        singles.append(text)
    pairs = []
    for i in range(60):
        a = singles[(i * 11) % 240]
        b = singles[(i * 29 + 3) % 240]
        pairs.append([a, b])
    return singles, pairs


def main():
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cache = os.environ.get("BERTFIT_CACHE", os.path.expanduser("~/.cache/bertfit"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(repo, "crates", "bertfit", "tests", "data", "tokenizer_reference.json"))
    args = ap.parse_args()
    families = os.path.join("crates", "bertfit", "tests", "data", "families")
    tokenizers = [
        ("wordpiece-minilm", "assets", os.path.join("models", "all-MiniLM-L6-v2")),
        ("wordpiece-tiny", "repo", os.path.join(families, "bert")),
        ("bpe-tiny", "repo", os.path.join(families, "roberta")),
        ("unigram-tiny", "repo", os.path.join(families, "xlm-roberta")),
    ]
    singles, pairs = texts()
    doc = {"description": __doc__.splitlines()[0] + " Made by scripts/tokenizer_reference.py.",
           "transformers_version": transformers.__version__, "max_length": 24,
           "singles": singles, "pairs": pairs, "tokenizers": []}
    for name, root, folder in tokenizers:
        base = cache if root == "assets" else repo
        tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(base, folder, "tokenizer.json"))
        out = {"name": name, "root": root, "folder": folder, "singles": [], "pairs": []}
        for t in singles:
            e = tok(t, truncation=True, max_length=24, return_token_type_ids=True)
            out["singles"].append([e["input_ids"], e["token_type_ids"]])
        for a, b in pairs:
            e = tok(a, b, truncation=True, max_length=24, return_token_type_ids=True)
            out["pairs"].append([e["input_ids"], e["token_type_ids"]])
        doc["tokenizers"].append(out)
        print(f"{name}: {len(singles)} texts, {len(pairs)} pairs")
    with open(args.out, "w") as f:
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
