//! `bertfit bench-step`: the synthetic training-step and inference benchmark, the twin of the reference
//! `hf_step.py` (same shapes, same batch layout, same printed RESULT line). Driven by `bench/run.py`.

use std::time::Instant;

use anyhow::Result;
use bertfit::batch::Batch;
use bertfit::model::random::write_random_model;
use bertfit::model::{BertConfig, Classifier, Freeze, Inputs, LoadOptions, Mode, ModelFolder};
use bertfit::rng;
use bertfit::engine::backend::Backend;
use bertfit::engine::device::{backend_for, check_graph_on};
use bertfit::engine::timed::Timed;
use bertfit::engine::Engine;
use bertfit::runtime::{EnginePath, Runtime};
use bertfit::train::optimizer::{AdamW, AdamWConfig};
use bertfit::train::{trainer, TrainConfig};

use crate::args::{BenchArgs, BenchGemmArgs};

/// The model of a size: S (MiniLM-L12-H384), B (bert-base), D (distilbert-base: 6 layers of bert-base
/// width, no token types, DistilBERT's head) or M (ModernBERT-base: 22 layers, GeGLU 1152, every third
/// layer global, the others a 128-token window) or V (deberta-v3-base: 12 layers of bert-base width,
/// disentangled attention over 256 log buckets).
fn config(size: &str) -> Result<BertConfig> {
    let (model_type, layers, hidden, inter) = match size {
        "S" => ("bert", 12, 384, 1536),
        "B" => ("bert", 12, 768, 3072),
        "D" => ("distilbert", 6, 768, 3072),
        "M" => ("modernbert", 22, 768, 1152),
        "V" => ("deberta-v2", 12, 768, 3072),
        other => anyhow::bail!(bertfit::Error::config("size", format!("`{other}`: expected S (MiniLM-L12-H384), B (bert-base), D (distilbert-base), M (ModernBERT-base) or V (deberta-v3-base)"))),
    };
    let mut json = serde_json::json!({
        "model_type": model_type, "vocab_size": 30522, "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": 12, "intermediate_size": inter, "max_position_embeddings": 512, "type_vocab_size": 2,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "classifier_dropout": 0.1,
    });
    if size == "M" {
        // ModernBERT-base's own settings (its dropouts are 0)
        json = serde_json::json!({
            "model_type": model_type, "vocab_size": 50368, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": 12, "intermediate_size": inter, "max_position_embeddings": 8192, "pad_token_id": 0,
            "hidden_activation": "gelu", "global_attn_every_n_layers": 3, "local_attention": 128,
        });
    }
    if size == "V" {
        // deberta-v3-base's own settings
        json = serde_json::json!({
            "model_type": model_type, "vocab_size": 128100, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": 12, "intermediate_size": inter, "max_position_embeddings": 512, "type_vocab_size": 0,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1, "relative_attention": true,
            "position_buckets": 256, "max_relative_positions": -1, "pos_att_type": ["p2c", "c2p"], "norm_rel_ebd": "layer_norm",
            "share_att_key": true, "position_biased_input": false, "pooler_hidden_size": hidden, "pooler_hidden_act": "gelu",
            "pooler_dropout": 0, "layer_norm_eps": 1e-7,
        });
    }
    Ok(BertConfig::from_hf_json(json)?)
}

/// Row lengths of batch `i` (see `BenchArgs::layout`; bench/hf_cases.py draws the same).
fn row_lengths(a: &BenchArgs, rows: usize, i: usize, table: &[usize]) -> Vec<usize> {
    match a.layout.as_str() {
        "rt" => (0..rows).map(|r| table[(i * 1_000_003 + r * 7919) % table.len()].clamp(1, a.seq)).collect(),
        "full" => vec![a.seq; rows],
        _ => (0..rows).map(|r| if r < rows / 2 { a.seq - 16 } else { a.seq }).collect(),
    }
}

/// A batch of random ids with the given row lengths, right-padded to the longest.
fn batch(lengths: &[usize], seed: u64) -> Batch {
    let b = lengths.len();
    let t = lengths.iter().copied().max().unwrap_or(0);
    let mut s = rng::Stream::new(&[seed, rng::label("bench")]);
    let input_ids: Vec<u32> = (0..b * t).map(|_| s.below(30522) as u32).collect();
    let mut attention_mask = vec![0u32; b * t];
    for (row, &n) in lengths.iter().enumerate() {
        attention_mask[row * t..row * t + n].fill(1);
    }
    Batch {
        size: b,
        seq_len: t,
        tokens: lengths.iter().sum(),
        input_ids,
        type_ids: vec![0; b * t],
        attention_mask,
        labels: (0..b).map(|i| i % 2).collect(),
        targets: Vec::new(),
        indices: (0..b).collect(),
    }
}

/// Runs the benchmark on `rt` and prints per-step times and a `RESULT ... median_ms=` line. A training
/// step is the training loop's own [`trainer::step`] (forward, loss, backward, clipping at 1.0, AdamW).
pub fn run(a: &BenchArgs, rt: &Runtime) -> Result<()> {
    let cfg = config(&a.size)?;
    let dir = tempfile::tempdir()?;
    let vocab: Vec<String> = (0..cfg.vocab_size).map(|i| format!("[unused{i}]")).collect();
    write_random_model(dir.path(), &cfg, &vocab, 0)?;
    let model = Classifier::load(
        &ModelFolder::open(dir.path())?,
        LoadOptions { labels: Some(vec!["0".into(), "1".into()]), freeze: Freeze::default(), runtime: rt.clone(), ..Default::default() },
    )?;
    let params = model.params().num_params();
    let dtype = rt.precision().name();
    let path = a.engine.resolve(model.engine_covers());
    println!("bertfit size={} mode={} dtype={dtype} engine={} device={} params={params} threads={}", a.size, a.mode, path.name(), rt.accelerator().name(), rt.threads());
    // on a GPU each call is waited for when profiling, so the table shows each op's own time
    let timed = |b| if rt.accelerator().is_cuda() && a.profile { Timed::synced(b) } else { Timed::new(b) };
    let mut engine = match path {
        EnginePath::Fused if a.mode == "infer" => Some(Engine::for_inference(&model, timed(backend_for(rt)?))?),
        EnginePath::Fused => Some(Engine::new(&model, timed(backend_for(rt)?), AdamWConfig { weight_decay: 0.01, ..Default::default() })?),
        EnginePath::Graph | EnginePath::Auto => {
            check_graph_on(rt, "bench-step")?;
            None
        }
    };
    let (warmup, steps) = (2, a.steps);
    let table: Vec<usize> = match &a.lengths {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path).map_err(|e| bertfit::Error::io("cannot read", path, e))?)
            .map_err(|e| bertfit::Error::parse(bertfit::Location::file(path), "expected a JSON list of token counts", e))?,
        None => Vec::new(),
    };
    if a.layout == "rt" && table.is_empty() {
        anyhow::bail!(bertfit::Error::config("lengths", "the lengths file holds no token counts"));
    }
    let rows = a.batch.unwrap_or(if a.mode == "train" { 32 } else { 64 });
    let mut times = Vec::with_capacity(steps);
    match a.mode.as_str() {
        "train" => {
            let cfg = TrainConfig { seed: 0, grad_accum: 1, weight_decay: 0.01, ..Default::default() };
            let mut opt = AdamW::new(model.trainable(), AdamWConfig { weight_decay: cfg.weight_decay, ..Default::default() });
            for i in 0..warmup + steps {
                let b = batch(&row_lengths(a, rows, i, &table), i as u64);
                if let (Some(e), true) = (engine.as_mut(), i == warmup) {
                    e.backend_mut().reset();
                }
                let t0 = Instant::now();
                let l = match engine.as_mut() {
                    Some(e) => rt.install(|| -> bertfit::Result<f64> {
                        let out = e.train_micro(&b, Mode::train(cfg.seed, i as u64), &bertfit::objective::Objective::single(None), 1.0)?;
                        e.apply_update(2e-5, Some(cfg.max_grad_norm))?;
                        Ok(out.loss)
                    })?,
                    None => trainer::step(&model, &mut opt, &b, i as u64, &cfg, &bertfit::objective::Objective::single(None), Some(2e-5))?.loss,
                };
                if let Some(e) = engine.as_mut() {
                    e.backend_mut().sync()?;
                }
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                println!("step {i} loss {l:.4} {ms:.1} ms");
                if i >= warmup {
                    times.push(ms);
                }
            }
        }
        "infer" => {
            let view = model.inference_view()?;
            for i in 0..warmup + steps {
                let b = batch(&row_lengths(a, rows, i, &table), 1000 + i as u64);
                if let (Some(e), true) = (engine.as_mut(), i == warmup) {
                    e.backend_mut().reset();
                }
                let t0 = Instant::now();
                let probs = view.runtime().install(|| -> bertfit::Result<Vec<Vec<f32>>> {
                    if let Some(e) = engine.as_mut() {
                        return e.predict(&b);
                    }
                    let logits = view.forward(&Inputs::from_batch(&b, view.device())?, Mode::EVAL)?;
                    bertfit::infer::softmax_rows(&logits)
                })?;
                let ms = t0.elapsed().as_secs_f64() * 1e3;
                println!("batch {i} {ms:.1} ms ({} rows)", probs.len());
                if i >= warmup {
                    times.push(ms);
                }
            }
        }
        other => anyhow::bail!(bertfit::Error::config("mode", format!("`{other}`: expected train or infer"))),
    }
    if let (Some(e), true) = (engine.as_ref(), a.profile) {
        print_profile(e.backend(), times.iter().sum::<f64>(), times.len());
    }
    times.sort_by(|x, y| x.total_cmp(y));
    let med = if times.is_empty() { 0.0 } else if times.len() % 2 == 1 { times[times.len() / 2] } else { (times[times.len() / 2 - 1] + times[times.len() / 2]) / 2.0 };
    match a.mode.as_str() {
        "train" => println!("RESULT bertfit {} train {dtype} engine={} median_ms={med:.1}", a.size, path.name()),
        _ => println!("RESULT bertfit {} infer {dtype} engine={} median_ms={med:.1} seq_per_s={:.1}", a.size, path.name(), rows as f64 / (med / 1e3)),
    }
    Ok(())
}

/// The per-op table of the timed steps: ms per step, share of the step, calls per step, GFLOP/s.
fn print_profile<B: Backend>(t: &Timed<B>, total_ms: f64, steps: usize) {
    let steps = steps.max(1) as f64;
    let mut rows: Vec<_> = t.table().iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1.total));
    let ops_ms: f64 = rows.iter().map(|(_, o)| o.total.as_secs_f64() * 1e3).sum();
    println!("profile: {:.1} ms per step, {:.1} ms in backend calls", total_ms / steps, ops_ms / steps);
    println!("{:<34} {:>10} {:>7} {:>7} {:>9}", "op", "ms/step", "share", "calls", "GFLOP/s");
    for (name, o) in rows {
        let ms = o.total.as_secs_f64() * 1e3;
        let gflops = if o.flops > 0.0 { format!("{:.1}", o.flops / o.total.as_secs_f64() / 1e9) } else { String::new() };
        println!("{name:<34} {:>10.2} {:>6.1}% {:>7.0} {gflops:>9}", ms / steps, 100.0 * ms / total_ms.max(1e-9), o.calls as f64 / steps);
    }
}

/// `bench-gemm`: the FMA peak on one thread and on `--threads`, then each dense-layer product of the
/// shape (forward, input gradient, weight gradient) in f32 and bf16 on `--threads`, with its share of peak.
pub fn gemm_roofline(a: &BenchGemmArgs) -> Result<()> {
    use bertfit::model::kernels::roofline::{fma_peak_gflops, gemm_gflops, vector_unit};
    use bertfit::model::kernels::Precision;
    let (h, i) = match a.size.as_str() {
        "S" => (384, 1536),
        "B" => (768, 3072),
        other => anyhow::bail!(bertfit::Error::config("size", format!("`{other}`: expected S or B"))),
    };
    let one = Runtime::cpu().with_threads(1)?;
    let all = Runtime::cpu().with_threads(a.threads)?;
    let peak1 = one.install(|| fma_peak_gflops(0.5));
    let peak = all.install(|| fma_peak_gflops(0.5));
    println!("vector unit {}: f32 FMA peak {peak1:.1} GFLOP/s on 1 thread, {peak:.1} on {}", vector_unit(), a.threads);
    println!("{:<28} {:>10} {:>8} {:>10} {:>8}", "product (m x n x k)", "f32", "of peak", "bf16", "of peak");
    let n = a.tokens;
    for (name, m, nn, k) in [
        ("qkv fwd", n, 3 * h, h),
        ("ffn-in fwd", n, i, h),
        ("ffn-out fwd", n, h, i),
        ("ffn-in wgrad", i, h, n),
        ("ffn-out dgrad", n, i, h),
    ] {
        let f = all.install(|| gemm_gflops(m, nn, k, Precision::F32, 5))?;
        let b = all.install(|| gemm_gflops(m, nn, k, Precision::Bf16, 5))?;
        println!("{:<28} {f:>10.1} {:>7.0}% {b:>10.1} {:>7.0}%", format!("{name} {m}x{nn}x{k}"), 100.0 * f / peak, 100.0 * b / peak);
    }
    Ok(())
}
