"""The reference side of bench/run.py's shaped cases: PyTorch + transformers (or ONNX Runtime for
inference) on the batch layouts `bertfit bench-step` builds, step for step.

usage: python hf_cases.py SIZE MODE DTYPE [--batch B] [--seq T] [--layout anchor|full|rt]
                          [--lengths FILE] [--steps N] [--threads N] [--runtime torch|ort|ort-int8]
  SIZE    S (MiniLM-L12-H384 shape) | B (bert-base shape) | D (distilbert-base shape) | M (ModernBERT-base shape)
          | V (deberta-v3-base shape)
  MODE    train | infer
  DTYPE   f32 | bf16 (torch.autocast(cpu, bfloat16), f32 master weights; torch only)
  layout  anchor: the first half of the rows lose their last 16 tokens (hf_step.py's batch);
          full: no padding; rt: row lengths drawn from FILE (a JSON list of token counts, e.g. Rotten
          Tomatoes'), length of row r of batch i = L[(i * 1000003 + r * 7919) % len(L)] capped at T,
          the batch padded to its longest row (bench-step draws the same lengths).
Prints per-step lines `step|batch I ... X ms` and a RESULT line, as hf_step.py does.
"""
import argparse, json, os, statistics, tempfile, time

import torch
from transformers import (BertConfig, BertForSequenceClassification, DistilBertConfig, DistilBertForSequenceClassification,
                          ModernBertConfig, ModernBertForSequenceClassification, DebertaV2Config,
                          DebertaV2ForSequenceClassification)

p = argparse.ArgumentParser()
p.add_argument("size"); p.add_argument("mode"); p.add_argument("dtype")
p.add_argument("--batch", type=int, default=None)
p.add_argument("--seq", type=int, default=64)
p.add_argument("--layout", default="anchor", choices=["anchor", "full", "rt"])
p.add_argument("--lengths", default=None)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--runtime", default="torch", choices=["torch", "ort", "ort-int8"])
a = p.parse_args()
batch_size = a.batch or (32 if a.mode == "train" else 64)

torch.set_num_threads(a.threads)
torch.manual_seed(0)
hidden, inter = (384, 1536) if a.size == "S" else (768, 3072)
if a.size == "V":
    cfg = DebertaV2Config(vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                          intermediate_size=3072, max_position_embeddings=512, type_vocab_size=0, num_labels=2,
                          relative_attention=True, position_buckets=256, max_relative_positions=-1,
                          pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True,
                          position_biased_input=False, pooler_hidden_size=768, pooler_hidden_act="gelu",
                          pooler_dropout=0, layer_norm_eps=1e-7)
    model = DebertaV2ForSequenceClassification(cfg)
elif a.size == "M":
    cfg = ModernBertConfig(vocab_size=50368, hidden_size=768, num_hidden_layers=22, num_attention_heads=12,
                           intermediate_size=1152, max_position_embeddings=8192, pad_token_id=0, num_labels=2,
                           global_attn_every_n_layers=3, local_attention=128)
    model = ModernBertForSequenceClassification(cfg)
elif a.size == "D":
    cfg = DistilBertConfig(vocab_size=30522, dim=768, n_layers=6, n_heads=12, hidden_dim=3072,
                           max_position_embeddings=512, num_labels=2, seq_classif_dropout=0.1)
    model = DistilBertForSequenceClassification(cfg)
else:
    cfg = BertConfig(vocab_size=30522, hidden_size=hidden, num_hidden_layers=12, num_attention_heads=12,
                     intermediate_size=inter, max_position_embeddings=512, num_labels=2)
    cfg.classifier_dropout = 0.1
    model = BertForSequenceClassification(cfg)
lengths = json.load(open(a.lengths)) if a.layout == "rt" else None


def row_lengths(i):
    if a.layout == "rt":
        return [min(lengths[(i * 1000003 + r * 7919) % len(lengths)], a.seq) for r in range(batch_size)]
    if a.layout == "full":
        return [a.seq] * batch_size
    return [a.seq - 16 if r < batch_size // 2 else a.seq for r in range(batch_size)]


def batch(i, seed):
    lens = row_lengths(i)
    t = max(lens)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 30522, (batch_size, t), generator=g)
    mask = torch.zeros(batch_size, t, dtype=torch.long)
    for r, n in enumerate(lens):
        mask[r, :n] = 1
    return ids, mask, torch.arange(batch_size) % 2, sum(lens)


print(f"torch {torch.__version__} size={a.size} mode={a.mode} dtype={a.dtype} batch={batch_size} seq={a.seq} "
      f"layout={a.layout} runtime={a.runtime} threads={torch.get_num_threads()}", flush=True)
use_bf16 = a.dtype == "bf16"
warmup, steps = 2, a.steps
times = []
if a.mode == "train":
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    for i in range(warmup + steps):
        ids, mask, labels, _ = batch(i, i)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        l = out.loss.item()
        ms = (time.perf_counter() - t0) * 1e3
        print(f"step {i} loss {l:.4f} {ms:.1f} ms", flush=True)
        if i >= warmup:
            times.append(ms)
    print(f"RESULT torch {a.size} train {a.dtype} {a.layout} median_ms={statistics.median(times):.1f}")
else:
    model.eval()
    run = None
    if a.runtime != "torch":
        import onnxruntime as ort
        tmp = tempfile.mkdtemp(prefix="bertfit-ort-")
        path = os.path.join(tmp, "model.onnx")
        ids, mask, _, _ = batch(0, 0)
        torch.onnx.export(model, (ids, mask), path, input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "b", 1: "t"}, "attention_mask": {0: "b", 1: "t"}}, opset_version=17)
        if a.runtime == "ort-int8":
            from onnxruntime.quantization import QuantType, quantize_dynamic
            qpath = os.path.join(tmp, "model-int8.onnx")
            quantize_dynamic(path, qpath, weight_type=QuantType.QInt8)
            path = qpath
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        run = lambda ids, mask: sess.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    with torch.inference_mode():
        for i in range(warmup + steps):
            ids, mask, _, _ = batch(i, 1000 + i)
            t0 = time.perf_counter()
            if run is not None:
                logits = torch.from_numpy(run(ids, mask))
            else:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                    logits = model(input_ids=ids, attention_mask=mask).logits
            probs = torch.softmax(logits.float(), -1).tolist()
            ms = (time.perf_counter() - t0) * 1e3
            print(f"batch {i} {ms:.1f} ms", flush=True)
            if i >= warmup:
                times.append(ms)
    med = statistics.median(times)
    print(f"RESULT {a.runtime} {a.size} infer {a.dtype} {a.layout} median_ms={med:.1f} seq_per_s={batch_size / (med / 1e3):.1f}")
