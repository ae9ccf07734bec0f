"""The 20 Newsgroups subset of README's long-documents measurement: seeded samples of the prepared
splits (scripts/setup-assets.sh writes ~/.cache/bertfit/data/20ng/{train,valid,test}.jsonl)."""
import json
import os
import random

src = os.path.expanduser("~/.cache/bertfit/data/20ng")
rng = random.Random(15)
for name, n in [("train", 2000), ("valid", 300), ("test", 1000)]:
    rows = [json.loads(line) for line in open(os.path.join(src, f"{name}.jsonl"))]
    rng.shuffle(rows)
    with open(f"{name}.jsonl", "w") as f:
        for row in rows[:n]:
            f.write(json.dumps(row) + "\n")
