#!/usr/bin/env python3
"""Tiny random models of every BERT-layout encoder family, made by transformers, with reference logits.

usage: "$(scripts/setup-reference.sh)" scripts/family_reference.py [--out DIR] [--only NAME,...]

  --out   default: crates/bertfit/tests/data/families
  --only  rewrite only these folders (the others keep their tokenizers, which
          scripts/tokenizer_reference.py's reference depends on)

For each family (bert, roberta, xlm-roberta, distilbert, electra, electra with a narrower embedding than
its hidden size, as electra-small has, modernbert twice: default options with CLS pooling, and mean
pooling with every bias on, and deberta-v2 twice: DeBERTa-v3's settings, and the v2 options) this writes DIR/<name>/ as an ordinary Hugging Face folder
(`config.json`, `model.safetensors`, `tokenizer.json`, `tokenizer_config.json`,
`special_tokens_map.json`) of a `*ForSequenceClassification` with 3 labels, built from a fixed seed, and
DIR/<name>/reference.json with, for a handful of texts and text pairs run one at a time (eval mode,
fp32, eager attention): the tokenizer's ids, token types and the classifier's logits and first-token
hidden state, rounded to 7 significant digits.

Two more folders exercise the other checkpoint formats: DIR/distilbert-bin/ holds the distilbert model's
weights as a PyTorch zip `pytorch_model.bin` (no safetensors; its reference is distilbert's), and
DIR/bert-mlm-sharded/ a `BertForMaskedLM` (encoder without pooler, plus the `cls.predictions` head) saved
as sharded safetensors with `model.safetensors.index.json`; its reference.json holds the first-token
hidden states only.

Tokenizers are trained here on a small inline corpus with the `tokenizers` library: WordPiece for BERT,
DistilBERT and ELECTRA, byte-level BPE for RoBERTa, SentencePiece Unigram for XLM-R, each with its
family's special tokens and pair template. The weights use initializer_range 0.2 (not 0.02) so the
logits are of order one and a 1e-4 tolerance means something.

The weights are the same on every run (fixed seeds); the trained tokenizers are not byte-reproducible
(the trainers break ties in hash order), so a rerun rewrites tokenizer.json and reference.json together.

Needs torch, transformers and tokenizers (scripts/setup-reference.sh makes a venv with them).
"""
import argparse
import json
import os
import shutil

import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers, decoders

CORPUS = [
    "Hello, world! This is a tiny corpus for tiny tokenizers.",
    "The film was NOT good: its plot dragged, and the ending felt rushed.",
    "Absolutely - a warm, funny (and surprisingly moving) film; 10/10.",
    "Although the first act takes its time, the score is hypnotically unforgettable.",
    "By the final scene I was won over by the café owner's quiet honesty.",
    "Visit https://example.com/path?q=1 for more reviews and ratings.",
    "Crème brûlée, naïve façade, jalapeño: accents everywhere.",
    "東京は美しい都市です。 映画はとても良かった。",
    "I loved it 😍🔥 would watch again!!!",
    "Spam spam spam: win a FREE prize now, click here.",
    "Disaster tweets: fire near the station, everyone evacuated safely.",
    "Is this review positive? Is it negative? Nobody knows.",
    "The quick brown fox jumps over the lazy dog while the cat sleeps.",
    "Grammatical acceptability judgements are hard for small models.",
    "Topics: sports, politics, science, technology and the arts.",
]

CASES = [
    {"name": "short", "text": "Hello, world!"},
    {"name": "uppercase", "text": "The film was NOT good: its plot dragged."},
    {"name": "pair", "text": "Is this review positive?", "text_pair": "Absolutely - a warm, funny film; 10/10."},
    {"name": "accents_emoji", "text": "Crème brûlée 😍 at the café, https://example.com"},
    {"name": "cjk_pair", "text": "東京は美しい", "text_pair": "the quick brown fox"},
    {"name": "unseen_words", "text": "Zygomorphic quixotry befuddles lexicographers."},
]

HIDDEN, HEADS, LAYERS, INTER, POSITIONS = 32, 4, 2, 48, 64
LABELS = {0: "negative", 1: "neutral", 2: "positive"}


def sig7(values):
    if isinstance(values, list):
        return [sig7(v) for v in values]
    return float(f"{values:.7g}")


def wordpiece():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=240, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok.train_from_iterator(CORPUS, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    specials = dict(unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]", cls_token="[CLS]", mask_token="[MASK]")
    return tok, specials


def byte_bpe():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=330, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", pad_token="<pad>",
                    cls_token="<s>", mask_token="<mask>")
    return tok, specials


def unigram():
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC()])
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=260, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                      unk_token="<unk>")
    tok.train_from_iterator(CORPUS, trainer)
    s, e = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", s), ("</s>", e)])
    tok.decoder = decoders.Metaspace()
    specials = dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>", pad_token="<pad>",
                    cls_token="<s>", mask_token="<mask>")
    return tok, specials


def common(vocab, pad):
    return dict(vocab_size=vocab, max_position_embeddings=POSITIONS, pad_token_id=pad, initializer_range=0.2,
                num_labels=3, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})


def bert_like(tok, **extra):
    return dict(hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS, intermediate_size=INTER,
                **common(tok.get_vocab_size(), tok.token_to_id("[PAD]") if tok.token_to_id("[PAD]") is not None
                         else tok.token_to_id("<pad>")), **extra)


def families():
    wp, wp_special = wordpiece()
    bpe, bpe_special = byte_bpe()
    uni, uni_special = unigram()
    T = transformers
    return [
        ("bert", T.BertConfig(**bert_like(wp)), T.BertForSequenceClassification, wp, wp_special),
        ("roberta", T.RobertaConfig(**bert_like(bpe, type_vocab_size=1, bos_token_id=0, eos_token_id=2)),
         T.RobertaForSequenceClassification, bpe, bpe_special),
        ("xlm-roberta", T.XLMRobertaConfig(**bert_like(uni, type_vocab_size=1, bos_token_id=0, eos_token_id=2,
                                                       hidden_act="gelu_new")),
         T.XLMRobertaForSequenceClassification, uni, uni_special),
        ("distilbert", T.DistilBertConfig(dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS, hidden_dim=INTER,
                                          seq_classif_dropout=0.2, **common(wp.get_vocab_size(), 0)),
         T.DistilBertForSequenceClassification, wp, wp_special),
        ("electra", T.ElectraConfig(embedding_size=HIDDEN, **bert_like(wp)), T.ElectraForSequenceClassification,
         wp, wp_special),
        ("electra-projected", T.ElectraConfig(embedding_size=16, **bert_like(wp)), T.ElectraForSequenceClassification,
         wp, wp_special),
        # three layers: global, local, local; a window of 8 (±4 tokens), so the local masks cut real text
        ("modernbert", T.ModernBertConfig(**modernbert_like(wp)), T.ModernBertForSequenceClassification, wp, wp_special),
        ("modernbert-mean-biases", T.ModernBertConfig(**modernbert_like(wp), classifier_pooling="mean", norm_bias=True,
                                                      attention_bias=True, mlp_bias=True, classifier_bias=True,
                                                      classifier_activation="gelu_new", global_attn_every_n_layers=2),
         T.ModernBertForSequenceClassification, wp, wp_special),
        # DeBERTa-v3's settings: shared keys, log position buckets (8 buckets, so 39 tokens use them), no
        # absolute positions or token types; then v2-style options: own position projections, plain clamped
        # distances, absolute positions and token types, a narrower embedding, content-to-position only
        ("deberta-v3", T.DebertaV2Config(**bert_like(wp, type_vocab_size=0), relative_attention=True, position_buckets=8,
                                         max_relative_positions=16, pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm",
                                         share_att_key=True, position_biased_input=False, pooler_hidden_size=HIDDEN,
                                         pooler_hidden_act="gelu", layer_norm_eps=1e-7),
         T.DebertaV2ForSequenceClassification, wp, wp_special),
        ("deberta-v2-options", T.DebertaV2Config(**bert_like(wp, type_vocab_size=2), relative_attention=True,
                                                 position_buckets=-1, max_relative_positions=12, pos_att_type=["c2p"],
                                                 norm_rel_ebd="none", share_att_key=False, position_biased_input=True,
                                                 embedding_size=16, pooler_hidden_size=HIDDEN, pooler_hidden_act="tanh",
                                                 cls_dropout=0.2),
         T.DebertaV2ForSequenceClassification, wp, wp_special),
    ]


def modernbert_like(tok):
    return dict(hidden_size=HIDDEN, num_hidden_layers=3, num_attention_heads=HEADS, intermediate_size=INTER,
                local_attention=8, cls_token_id=tok.token_to_id("[CLS]"), sep_token_id=tok.token_to_id("[SEP]"),
                bos_token_id=tok.token_to_id("[CLS]"), eos_token_id=tok.token_to_id("[SEP]"),
                **common(tok.get_vocab_size(), tok.token_to_id("[PAD]")))


def main():
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(repo_root, "crates", "bertfit", "tests", "data", "families"))
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    only = [n for n in args.only.split(",") if n]
    for seed, (name, config, cls, tok, specials) in enumerate(families()):
        if only and name not in only:
            continue
        torch.manual_seed(seed)
        model = cls._from_config(config, attn_implementation="eager").eval()
        fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=POSITIONS, **specials)
        out = os.path.join(args.out, name)
        shutil.rmtree(out, ignore_errors=True)
        model.save_pretrained(out)
        fast.save_pretrained(out)
        wants_types = name in ("bert", "electra", "electra-projected", "deberta-v2-options")
        cases = []
        with torch.no_grad():
            for case in CASES:
                enc = fast(case["text"], case.get("text_pair"), return_tensors="pt", return_token_type_ids=True)
                kwargs = dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                if wants_types:
                    kwargs["token_type_ids"] = enc["token_type_ids"]
                res = model(**kwargs, output_hidden_states=True)
                entry = dict(case)
                entry.update({
                    "tokens": fast.convert_ids_to_tokens(enc["input_ids"][0].tolist()),
                    "input_ids": enc["input_ids"][0].tolist(),
                    "token_type_ids": enc["token_type_ids"][0].tolist(),
                    "logits": sig7(res.logits[0].tolist()),
                    "first_hidden": sig7(res.hidden_states[-1][0, 0].tolist()),
                })
                cases.append(entry)
        doc = {
            "description": f"transformers.{cls.__name__} (eval, fp32, eager attention), a tiny random model made "
                           "by scripts/family_reference.py; each case run alone, unpadded; values rounded to 7 "
                           "significant digits.",
            "family": name,
            "architecture": cls.__name__,
            "tensors": sorted(model.state_dict().keys()),
            "transformers_version": transformers.__version__,
            "torch_version": torch.__version__,
            "cases": cases,
        }
        with open(os.path.join(out, "reference.json"), "w") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
            f.write("\n")
        print(f"{name}: {sum(p.numel() for p in model.parameters())} weights, vocab {tok.get_vocab_size()} -> {out}")
        if name == "distilbert":
            write_bin_variant(out, os.path.join(args.out, "distilbert-bin"), model)
        if name == "bert":
            write_mlm_sharded(os.path.join(args.out, "bert-mlm-sharded"), config, fast, wants_types)


def write_bin_variant(src, out, model):
    """The same model as a PyTorch zip checkpoint only (torch.save of the state dict, as older Hub
    checkpoints ship), with the source's config and tokenizer."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(src, f), out)
    torch.save(model.state_dict(), os.path.join(out, "pytorch_model.bin"))
    print(f"distilbert-bin: pytorch_model.bin -> {out}")


def write_mlm_sharded(out, config, fast, wants_types):
    """A masked-LM checkpoint (no pooler, `cls.predictions` head) in several safetensors shards."""
    torch.manual_seed(100)
    mlm = transformers.BertForMaskedLM._from_config(config, attn_implementation="eager").eval()
    shutil.rmtree(out, ignore_errors=True)
    mlm.save_pretrained(out, max_shard_size="40KB")
    fast.save_pretrained(out)
    cases = []
    with torch.no_grad():
        for case in CASES:
            enc = fast(case["text"], case.get("text_pair"), return_tensors="pt", return_token_type_ids=True)
            res = mlm(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                      token_type_ids=enc["token_type_ids"], output_hidden_states=True)
            entry = dict(case)
            entry.update({"input_ids": enc["input_ids"][0].tolist(), "token_type_ids": enc["token_type_ids"][0].tolist(),
                          "first_hidden": sig7(res.hidden_states[-1][0, 0].tolist())})
            cases.append(entry)
    doc = {"description": "transformers.BertForMaskedLM (eval, fp32, eager attention), a tiny random model saved as "
                          "sharded safetensors by scripts/family_reference.py; first-token hidden states.",
           "family": "bert", "architecture": "BertForMaskedLM", "tensors": sorted(mlm.state_dict().keys()),
           "shards": sorted(f for f in os.listdir(out) if f.endswith(".safetensors")), "cases": cases}
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"bert-mlm-sharded: {len(doc['shards'])} shards -> {out}")


if __name__ == "__main__":
    main()
