#!/usr/bin/env python3
"""The labeled subset for the pretraining measurement: 2,000 Rotten Tomatoes training snippets drawn with
random.Random(16) from CACHE/data/rotten-tomatoes/train.jsonl (labels are few; the other 8,248 snippets
serve as unlabeled text). usage: make_subset.py CACHE_DATA_DIR OUT.jsonl"""
import random
import sys

rows = open(sys.argv[1] + "/train.jsonl", encoding="utf-8").read().splitlines()
pick = sorted(random.Random(16).sample(range(len(rows)), 2000))
with open(sys.argv[2], "w", encoding="utf-8") as f:
    for i in pick:
        f.write(rows[i] + "\n")
