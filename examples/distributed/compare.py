"""Checks that distributed predictions equal a plain `bertfit predict` run: the same ids in the same
order, the same labels, probabilities within 1e-6 (each written with six decimals; batches differ).

usage: python compare.py PLAIN.jsonl OTHER.jsonl
"""
import json
import sys


def rows(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> int:
    plain, other = rows(sys.argv[1]), rows(sys.argv[2])
    if len(plain) != len(other):
        print(f"{sys.argv[2]}: {len(other)} rows, the plain run has {len(plain)}")
        return 1
    worst = 0.0
    for i, (a, b) in enumerate(zip(plain, other)):
        if str(a.get("id")) != str(b.get("id")) or a["label"] != b["label"]:
            print(f"row {i}: {a} vs {b}")
            return 1
        for key, value in a.items():
            if key.startswith("prob_"):
                worst = max(worst, abs(float(value) - float(b[key])))
    if worst > 1e-6 + 1e-9:
        print(f"{sys.argv[2]}: probabilities differ by up to {worst:.2e}")
        return 1
    print(f"{sys.argv[2]}: {len(other)} rows equal to the plain run (ids, order, labels; probabilities within {worst:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
