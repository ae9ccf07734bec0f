#!/usr/bin/env python3
"""Tiny random masked language models made by transformers, with reference MLM logits, loss and gradients.

usage: "$(scripts/setup-reference.sh)" scripts/mlm_reference.py [--out DIR]

  --out   default: crates/bertfit/tests/data/mlm

For BERT (BertForMaskedLM), RoBERTa (RobertaForMaskedLM), DistilBERT (DistilBertForMaskedLM) and ELECTRA
(ElectraForMaskedLM, with an embedding size narrower than the hidden size) this writes DIR/<name>/ as an
ordinary Hugging Face folder (config.json, model.safetensors, tokenizer.json; the tokenizers are the
family test folders' of crates/bertfit/tests/data/families) built from a fixed seed, and
DIR/<name>/reference.json with, for a fixed batch of two texts with fixed masked positions (eval mode,
fp32, eager attention): the input ids (mask token at the masked positions), attention mask, the flat
masked positions (row * seq + column) and their original ids, the logits at those positions and the mean
cross-entropy loss (transformers' `labels` with -100 elsewhere), and the L2 norm of the loss's gradient
for a few tensors, among them the word embeddings, which the decoder shares (so both uses add up).
Values are rounded to 7 significant digits. initializer_range 0.2 keeps logits of order one.

Needs torch and transformers (scripts/setup-reference.sh makes a venv with them).
"""
import argparse
import json
import os
import shutil

import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
FAMILIES = os.path.join(HERE, "..", "crates", "bertfit", "tests", "data", "families")
TEXTS = ["The film was NOT good: its plot dragged.", "Hello, world! This is a tiny corpus for tiny tokenizers."]


def r7(x):
    return float(f"{float(x):.7g}")


def build(name, tokenizer_dir, cls, config):
    torch.manual_seed(16)
    model = cls(config).eval()
    tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(FAMILIES, tokenizer_dir, "tokenizer.json"))
    with open(os.path.join(FAMILIES, tokenizer_dir, "tokenizer_config.json")) as f:
        tc = json.load(f)
    for k in ["cls_token", "sep_token", "pad_token", "mask_token", "unk_token", "bos_token", "eos_token"]:
        if k in tc:
            setattr(tok, k, tc[k])
    return model, tok


def reference(model, tok, out):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    ids = enc["input_ids"].clone()
    mask = enc["attention_mask"]
    special = torch.tensor(
        [tok.get_special_tokens_mask(row.tolist(), already_has_special_tokens=True) for row in ids], dtype=torch.bool
    )
    labels = torch.full_like(ids, -100)
    b, s = ids.shape
    positions, targets = [], []
    for i in range(b):
        for j in range(s):
            # every third ordinary token of each row, starting at the second
            if mask[i, j] and not special[i, j] and j % 3 == 1:
                positions.append(i * s + j)
                targets.append(int(ids[i, j]))
                labels[i, j] = ids[i, j]
                ids[i, j] = tok.mask_token_id
    model.zero_grad()
    kwargs = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if "token_type_ids" in enc and model.config.model_type not in ("distilbert", "roberta"):
        kwargs["token_type_ids"] = torch.zeros_like(ids)
    res = model(**kwargs)
    res.loss.backward()
    logits = res.logits.reshape(b * s, -1)[positions]
    named = dict(model.named_parameters())
    word = [n for n in named if n.endswith("word_embeddings.weight")][0]
    grads = {n: r7(named[n].grad.norm()) for n in named if n == word or n.endswith("bias") and "encoder" not in n and "transformer" not in n}
    first_layer = [n for n in named if (".0.attention.self.query.weight" in n or ".0.attention.q_lin.weight" in n)][0]
    grads[first_layer] = r7(named[first_layer].grad.norm())
    ref = {
        "texts": TEXTS,
        "input_ids": ids.tolist(),
        "attention_mask": mask.tolist(),
        "positions": positions,
        "targets": targets,
        "logits": [[r7(v) for v in row] for row in logits.tolist()],
        "loss": r7(res.loss),
        "grad_norms": grads,
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "..", "crates", "bertfit", "tests", "data", "mlm"))
    args = ap.parse_args()
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, initializer_range=0.2, max_position_embeddings=64, attn_implementation="eager")
    cases = [
        ("bert", "bert", transformers.BertForMaskedLM, lambda v: transformers.BertConfig(vocab_size=v, **common)),
        ("roberta", "roberta", transformers.RobertaForMaskedLM, lambda v: transformers.RobertaConfig(vocab_size=v, pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1, **common)),
        ("distilbert", "distilbert", transformers.DistilBertForMaskedLM, lambda v: transformers.DistilBertConfig(vocab_size=v, dim=32, n_layers=2, n_heads=4, hidden_dim=48, initializer_range=0.2, max_position_embeddings=64, attn_implementation="eager")),
        ("electra", "electra", transformers.ElectraForMaskedLM, lambda v: transformers.ElectraConfig(vocab_size=v, embedding_size=16, **common)),
    ]
    for name, tok_dir, cls, make in cases:
        with open(os.path.join(FAMILIES, tok_dir, "tokenizer.json")) as f:
            vocab = len(json.load(f)["model"]["vocab"])
        model, tok = build(name, tok_dir, cls, make(vocab))
        out = os.path.join(args.out, name)
        if os.path.exists(out):
            shutil.rmtree(out)
        model.save_pretrained(out)
        for f in ["tokenizer.json", "tokenizer_config.json"]:
            shutil.copy(os.path.join(FAMILIES, tok_dir, f), os.path.join(out, f))
        reference(model, tok, out)
        print(name, "written")


if __name__ == "__main__":
    main()
