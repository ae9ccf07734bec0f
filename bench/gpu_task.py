"""A small learnable text-classification task and a random BERT folder for the GPU end-to-end check
(scripts/gpu-e2e.sh), made where it runs (no model hub): `gpu_task.py DIR` writes DIR/model (random
BertModel, 4 layers, hidden 256, its vocab.txt) and DIR/{train,valid,test}.csv. The label is whether a
sentence holds more "good" words than "bad" ones, so a fine-tuned model should get close to 1.0."""
import os
import random
import sys

import torch
from transformers import BertConfig, BertModel


def main(out):
    rng = random.Random(0)
    good = ["good", "great", "fine", "superb", "lovely", "nice"]
    bad = ["bad", "awful", "poor", "dull", "boring", "weak"]
    filler = [f"w{i}" for i in range(400)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + good + bad + filler
    os.makedirs(os.path.join(out, "model"), exist_ok=True)
    with open(os.path.join(out, "model", "vocab.txt"), "w") as f:
        f.write("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(vocab), hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                     intermediate_size=1024, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(os.path.join(out, "model"), safe_serialization=True)

    def example():
        n = rng.randint(6, 40)
        words = [rng.choice(filler) for _ in range(n)]
        g, b = rng.randint(0, 4), rng.randint(0, 4)
        while g == b:
            b = rng.randint(0, 4)
        for w in [rng.choice(good) for _ in range(g)] + [rng.choice(bad) for _ in range(b)]:
            words.insert(rng.randint(0, len(words)), w)
        return " ".join(words), "pos" if g > b else "neg"

    for name, count in [("train", 4000), ("valid", 500), ("test", 1000)]:
        with open(os.path.join(out, f"{name}.csv"), "w") as f:
            f.write("text,label\n")
            for _ in range(count):
                text, label = example()
                f.write(f"{text},{label}\n")


if __name__ == "__main__":
    main(sys.argv[1])
