//! `bertfit gpu-selftest --engine`: the engine on the GPU against the engine on the CPU — same random
//! model, batches of mixed lengths, the same dropout masks, AdamW with clipping — in f32 and bf16, then
//! its train and inference step times at the batches of the PyTorch baseline (`bench/hf_gpu.py`: random
//! BERT widths, 128 tokens, padded cases mask the last quarter of every second row) and a per-op profile.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use super::backend::Region;
use super::cpu::CpuBackend;
use super::cuda::CudaBackend;
use super::timed::Timed;
use super::{Backend, Engine};
use crate::batch::{collate, Batch};
use crate::model::random::{tiny_config, write_random_model};
use crate::model::{BertConfig, Classifier, Freeze, LoadOptions, Mode, ModelFolder};
use crate::runtime::{Precision, Runtime};
use crate::tokenize::Encoded;
use crate::train::optimizer::AdamWConfig;
use crate::Result;

/// One comparison of the GPU engine against the CPU engine.
#[derive(Debug, Serialize)]
pub struct EngineCheck {
    /// Model and precision.
    pub case: String,
    /// What was compared.
    pub what: String,
    /// The worst max |gpu − cpu| / max |cpu| over the compared tensors.
    pub max_rel: f64,
    /// Which tensor it was.
    pub worst: String,
    /// The bound.
    pub tolerance: f64,
    /// Within the bound.
    pub passed: bool,
}

/// One timed configuration.
#[derive(Debug, Serialize)]
pub struct StepRow {
    /// Model, batch and padding, as `hf_gpu.py` names them.
    pub case: String,
    /// `train` (forward, loss, backward, clipped AdamW) or `infer` (forward and probabilities).
    pub what: String,
    /// bf16 or f32.
    pub precision: String,
    /// Median step time.
    pub ms: f64,
    /// Fastest step.
    pub min_ms: f64,
    /// Slowest step.
    pub max_ms: f64,
    /// Examples per second at the median.
    pub samples_s: f64,
    /// Real (unpadded) tokens per step.
    pub tokens: usize,
}

/// One op of the profiled step.
#[derive(Debug, Serialize)]
pub struct ProfileRow {
    /// Op (matrix products by shape class).
    pub op: String,
    /// Milliseconds per step.
    pub ms: f64,
    /// Calls per step.
    pub calls: f64,
    /// Share of the profiled step.
    pub share: f64,
}

/// What the engine part of the self-test found.
#[derive(Debug, Serialize, Default)]
pub struct EngineReport {
    /// Comparisons, in order.
    pub checks: Vec<EngineCheck>,
    /// Step times.
    pub steps: Vec<StepRow>,
    /// Per-op times of one configuration (each call waited for).
    pub profile_case: String,
    /// Its rows, slowest first.
    pub profile: Vec<ProfileRow>,
    /// Timings that could not run (the configuration and the error).
    pub errors: Vec<String>,
    /// Wall time, seconds.
    pub wall_s: f64,
}

impl EngineReport {
    /// True when every comparison passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed) && self.errors.is_empty()
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// CUDA device ordinal.
    pub device: usize,
    /// Timed steps per configuration (after 3 warm-up steps).
    pub steps: usize,
    /// Run the timings (off: comparisons only).
    pub timings: bool,
}

const LABELS: usize = 2;

/// BERT widths by the baseline's names (`hf_gpu.py` WIDTHS), or the tiny test model (`tiny`, and the
/// other families' layouts: `tiny-distilbert` without token types, `tiny-electra-projected` with
/// 16-wide embedding tables and `embeddings_project`).
fn config(name: &str) -> BertConfig {
    let mut c = tiny_config(30522);
    let (layers, hidden, inter) = match name {
        "bert-base" => (12, 768, 3072),
        "minilm" => (12, 384, 1536),
        "tiny-distilbert" => {
            let mut t = tiny_config(40);
            t.model_type = "distilbert".into();
            return t;
        }
        "tiny-electra-projected" => {
            let mut t = tiny_config(40);
            t.model_type = "electra".into();
            t.extra.insert("embedding_size".into(), 16.into());
            return t;
        }
        _ => return tiny_config(40),
    };
    c.num_hidden_layers = layers;
    c.hidden_size = hidden;
    c.intermediate_size = inter;
    c.num_attention_heads = 12;
    c.max_position_embeddings = 512;
    c
}

/// A random model of `cfg` written to a scratch folder and loaded for `precision`.
fn model(cfg: &BertConfig, precision: Precision, tag: &str) -> Result<Classifier> {
    let dir: PathBuf = std::env::temp_dir().join(format!("bertfit-gpu-engine-{}-{tag}", std::process::id()));
    let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].iter().map(|s| s.to_string()).chain((4..cfg.vocab_size).map(|i| format!("w{i}"))).collect();
    write_random_model(&dir, cfg, &vocab, 7)?;
    let labels = Some((0..LABELS).map(|i| format!("c{i}")).collect());
    let folder = ModelFolder::open(&dir)?;
    let loaded = Classifier::load(&folder, LoadOptions { labels, head: None, freeze: Freeze::default(), seed: 11, runtime: Runtime::cpu().with_precision(precision), problem: None });
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

/// `count` batches of `rows` examples; lengths from `len(batch, row)`; ids from a fixed stream.
fn batches(count: usize, rows: usize, vocab: usize, len: impl Fn(usize, usize) -> usize) -> Vec<Batch> {
    let mut key = crate::rng::Stream::new(&[17]);
    let lo = if vocab > 2000 { 1000 } else { 4 };
    (0..count)
        .map(|b| {
            let enc: Vec<Encoded> = (0..rows)
                .map(|r| {
                    let n = len(b, r);
                    Encoded { ids: (0..n).map(|t| if t == 0 { 2 } else { (lo + key.below((vocab - lo) as u64) as usize) as u32 }).collect(), type_ids: vec![0; n], truncated: false }
                })
                .collect();
            let labels: Vec<usize> = (0..rows).map(|r| (b + r) % LABELS).collect();
            let idx: Vec<usize> = (0..rows).collect();
            collate(&enc, &idx, Some(&labels), 0)
        })
        .collect()
}

/// The backend of a case named "…, bf16 attention".
fn attention_variant(b: CudaBackend, name: &str) -> CudaBackend {
    if name.ends_with("bf16 attention") {
        b.with_bf16_attention()
    } else {
        b
    }
}

/// The tiny model's data: 6 micro-batches of 4 examples, lengths 2..=13.
fn tiny_batches() -> Vec<Batch> {
    batches(6, 4, 40, |b, r| 2 + ((b * 7 + r * 5) % 12))
}

/// max |a − b| / max |b| (absolute when `b` is all zeros).
fn rel(a: &[f32], b: &[f32]) -> f64 {
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    if a.len() != b.len() {
        f64::INFINITY
    } else if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

/// Worst relative difference and where.
#[derive(Default)]
struct Worst(f64, String);

impl Worst {
    fn add(&mut self, v: f64, what: &str) {
        if v > self.0 || v.is_nan() || self.1.is_empty() {
            self.0 = if v.is_nan() { f64::INFINITY } else { v.max(self.0) };
            self.1 = what.to_string();
        }
    }
}

/// The CPU engine and an engine on `device` (the GPU's) trained side by side on `data` (`accum`
/// micro-batches per update, clipped AdamW); tolerances for loss and probabilities, gradients, gradient
/// norms and weights.
fn compare<B: Backend>(device: impl FnOnce() -> Result<B>, name: &str, precision: Precision, data: &[Batch], accum: usize, tol: [f64; 4], progress: &mut dyn FnMut(&str)) -> Result<Vec<EngineCheck>> {
    let case = format!("{name} {}", precision.name());
    progress(&format!("engine on the GPU vs the CPU: {case}, {} micro-batches", data.len()));
    let model = model(&config(name.split(',').next().unwrap_or(name)), precision, "compare")?;
    let adam = AdamWConfig { weight_decay: 0.01, ..Default::default() };
    let mut cpu = Engine::new(&model, CpuBackend::new(), adam)?;
    let mut gpu = Engine::new(&model, device()?, adam)?;
    let (mut loss, mut probs, mut grads, mut norms, mut weights) = (Worst::default(), Worst::default(), Worst::default(), Worst::default(), Worst::default());
    let scale = 1.0 / accum as f64;
    let segments = cpu.layout().segments.clone();
    for (micro, b) in data.iter().enumerate() {
        let mode = Mode::train(3, micro as u64);
        let c = cpu.train_micro(b, mode, &crate::objective::Objective::single(None), scale)?;
        let g = gpu.train_micro(b, mode, &crate::objective::Objective::single(None), scale)?;
        loss.add((c.loss - g.loss).abs() / c.loss.abs().max(1e-12), &format!("micro-batch {micro}"));
        probs.add(rel(&g.probs.concat(), &c.probs.concat()), &format!("micro-batch {micro}"));
        if (micro + 1) % accum != 0 {
            continue;
        }
        if micro + 1 == accum {
            for s in segments.iter().filter(|s| s.trainable) {
                // the key bias's true gradient is zero (softmax ignores a per-row constant): both hold noise
                if s.name.ends_with("attention.self.key.bias") {
                    continue;
                }
                grads.add(rel(&gpu.tensor(Region::Grads, &s.name)?, &cpu.tensor(Region::Grads, &s.name)?), &s.name);
            }
        }
        let (nc, ng) = (cpu.apply_update(1e-4, Some(1.0))?, gpu.apply_update(1e-4, Some(1.0))?);
        norms.add((nc - ng).abs() / nc.abs().max(1e-30), &format!("update {}", cpu.step));
    }
    let (mut all_c, mut all_g) = (Vec::new(), Vec::new());
    // Adam turns the key bias's noise-level gradients into full-size steps of either sign: left out
    for s in segments.iter().filter(|s| !s.name.ends_with("attention.self.key.bias")) {
        all_c.extend(cpu.tensor(Region::Params, &s.name)?);
        all_g.extend(gpu.tensor(Region::Params, &s.name)?);
    }
    weights.add(rel(&all_g, &all_c), "all but the key biases");
    let updates = data.len() / accum;
    let rows = [
        ("loss", loss, tol[0]),
        ("probabilities", probs, tol[0]),
        ("gradients before the first update (per tensor)", grads, tol[1]),
        ("gradient norms", norms, tol[2]),
        (&*format!("weights after {updates} updates (all tensors)"), weights, tol[3]),
    ]
    .map(|(what, w, tolerance)| EngineCheck { case: case.clone(), what: what.to_string(), max_rel: w.0, worst: w.1, tolerance, passed: w.0 <= tolerance });
    for r in &rows {
        progress(&format!("{}  {case}: {} max rel {:.2e} ({}) ≤ {:.0e}", if r.passed { "ok  " } else { "FAIL" }, r.what, r.max_rel, r.worst, r.tolerance));
    }
    Ok(rows.into_iter().collect())
}

/// Two engines on `device` trained on the same data: every weight and gradient must have the same bits
/// (fixed-order reductions, cached cuBLASLt algorithms, counter-based dropout).
fn repeat<B: Backend>(device: impl Fn() -> Result<B>, name: &str, precision: Precision, data: &[Batch], accum: usize, progress: &mut dyn FnMut(&str)) -> Result<EngineCheck> {
    let case = format!("{name} {}", precision.name());
    let model = model(&config(name), precision, "repeat")?;
    let adam = AdamWConfig { weight_decay: 0.01, ..Default::default() };
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut e = Engine::new(&model, device()?, adam)?;
        let mut state = Vec::new();
        for (micro, b) in data.iter().enumerate() {
            state.push(e.train_micro(b, Mode::train(3, micro as u64), &crate::objective::Objective::single(None), 1.0 / accum as f64)?.loss.to_bits());
            if (micro + 1) % accum == 0 {
                state.push(e.apply_update(1e-4, Some(1.0))?.to_bits());
            }
        }
        let mut bits = Vec::new();
        for s in e.layout().segments.clone() {
            bits.extend(e.tensor(Region::Params, &s.name)?.iter().map(|v| v.to_bits()));
        }
        runs.push((state, bits));
    }
    let differ = runs[0].1.iter().zip(&runs[1].1).filter(|(a, b)| a != b).count() + usize::from(runs[0].0 != runs[1].0);
    let check = EngineCheck { case, what: format!("two runs, same bits (losses, norms, {} weights)", runs[0].1.len()), max_rel: differ as f64, worst: format!("{differ} values differ"), tolerance: 0.0, passed: differ == 0 };
    progress(&format!("{}  {}: {}: {}", if check.passed { "ok  " } else { "FAIL" }, check.case, check.what, check.worst));
    Ok(check)
}

fn median(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Train and inference step times of one model, batch and padding on the GPU.
/// One timed configuration: model widths, batch rows, padding as the baseline's, precision, bf16 attention.
#[derive(Debug, Clone, Copy)]
struct Timing {
    name: &'static str,
    batch: usize,
    pad: bool,
    precision: Precision,
    half_attention: bool,
}

fn time_case(device: usize, t: Timing, steps: usize, progress: &mut dyn FnMut(&str)) -> Result<Vec<StepRow>> {
    let Timing { name, batch, pad, precision, half_attention } = t;
    let backend = || CudaBackend::new(device).map(|b| if half_attention { b.with_bf16_attention() } else { b });
    let label = if half_attention { format!("{}, bf16 attention", precision.name()) } else { precision.name().to_string() };
    let cfg = config(name);
    let model = model(&cfg, precision, name)?;
    // the baseline's padding: the last quarter of every second row
    let data = batches(4, batch, cfg.vocab_size, |_, r| if pad && r % 2 == 1 { 96 } else { 128 });
    let tokens = data[0].attention_mask.iter().filter(|&&m| m != 0).count();
    let case = format!("{name} b{batch} s128{}", if pad { "" } else { " nopad" });
    let mut rows = Vec::new();
    {
        let mut engine = Engine::new(&model, backend()?, AdamWConfig::default())?;
        let mut times = Vec::new();
        for i in 0..steps + 3 {
            let t0 = Instant::now();
            engine.train_micro(&data[i % data.len()], Mode::train(1, i as u64), &crate::objective::Objective::single(None), 1.0)?;
            engine.apply_update(5e-5, Some(1.0))?;
            engine.backend_mut().sync()?;
            if i >= 3 {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        let (ms, min_ms, max_ms) = median(times);
        rows.push(StepRow { case: case.clone(), what: "train".into(), precision: label.clone(), ms, min_ms, max_ms, samples_s: batch as f64 * 1e3 / ms, tokens });
    }
    {
        let mut engine = Engine::for_inference(&model, backend()?)?;
        let mut times = Vec::new();
        for i in 0..steps + 3 {
            let t0 = Instant::now();
            engine.predict(&data[i % data.len()])?;
            if i >= 3 {
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        let (ms, min_ms, max_ms) = median(times);
        rows.push(StepRow { case: case.clone(), what: "infer".into(), precision: label.clone(), ms, min_ms, max_ms, samples_s: batch as f64 * 1e3 / ms, tokens });
    }
    for r in &rows {
        progress(&format!("{:<28} {:<5} {:<4} {:8.2} ms (min {:.2}, max {:.2})  {:8.0} samples/s", r.case, r.what, r.precision, r.ms, r.min_ms, r.max_ms, r.samples_s));
    }
    Ok(rows)
}

/// Per-op times of a few training steps, each call waited for.
fn profile(device: usize, name: &str, batch: usize, precision: Precision, progress: &mut dyn FnMut(&str)) -> Result<Vec<ProfileRow>> {
    let cfg = config(name);
    let model = model(&cfg, precision, name)?;
    let data = batches(2, batch, cfg.vocab_size, |_, r| if r % 2 == 1 { 96 } else { 128 });
    let mut engine = Engine::new(&model, Timed::synced(CudaBackend::new(device)?), AdamWConfig::default())?;
    let steps = 3;
    for i in 0..steps + 2 {
        if i == 2 {
            engine.backend_mut().reset();
        }
        engine.train_micro(&data[i % 2], Mode::train(1, i as u64), &crate::objective::Objective::single(None), 1.0)?;
        engine.apply_update(5e-5, Some(1.0))?;
    }
    let table = engine.backend().table();
    let total: f64 = table.values().map(|t| t.total.as_secs_f64()).sum();
    let mut rows: Vec<ProfileRow> = table
        .iter()
        .map(|(op, t)| ProfileRow { op: op.clone(), ms: t.total.as_secs_f64() * 1e3 / steps as f64, calls: t.calls as f64 / steps as f64, share: t.total.as_secs_f64() / total.max(1e-12) })
        .collect();
    rows.sort_by(|a, b| b.ms.total_cmp(&a.ms));
    progress(&format!("profile of {name} b{batch} {} train (each call waited for): {:.2} ms per step", precision.name(), total * 1e3 / steps as f64));
    for r in &rows {
        progress(&format!("  {:<32} {:8.3} ms {:6.1} calls {:5.1} %", r.op, r.ms, r.calls, 100.0 * r.share));
    }
    Ok(rows)
}

/// The engine's GPU checks, then (with `timings`) its step times and a profile.
pub fn run(opts: &EngineOptions, progress: &mut dyn FnMut(&str)) -> Result<EngineReport> {
    let t0 = Instant::now();
    let mut report = EngineReport::default();
    // the tiny model: mixed lengths 2..=13, gradient accumulation 2, dropout on, 3 updates
    let tiny = tiny_batches();
    // bert-base widths: 8 sequences of 23..128 tokens, one update
    let base = batches(1, 8, 30522, |_, r| 128 - 15 * r);
    // bf16: the same rounded operands, but a last-bit difference upstream can flip a later rounding
    let cases: [(&str, Precision, &[Batch], usize, [f64; 4]); 7] = [
        ("tiny", Precision::F32, &tiny, 2, [1e-5, 1e-4, 1e-5, 1e-4]),
        // the other families' layouts: no segment table and the RoBERTa-style head; projected embeddings
        ("tiny-distilbert", Precision::F32, &tiny, 2, [1e-5, 1e-4, 1e-5, 1e-4]),
        ("tiny-electra-projected", Precision::F32, &tiny, 2, [1e-5, 1e-4, 1e-5, 1e-4]),
        ("tiny", Precision::Bf16, &tiny, 2, [1e-2, 5e-2, 1e-2, 2e-3]),
        ("bert-base", Precision::F32, &base, 1, [1e-4, 1e-3, 1e-4, 1e-4]),
        ("bert-base", Precision::Bf16, &base, 1, [1e-2, 5e-2, 1e-2, 2e-3]),
        // bf16 attention products (the CPU keeps them f32): looser
        ("bert-base, bf16 attention", Precision::Bf16, &base, 1, [2e-2, 1e-1, 2e-2, 2e-3]),
    ];
    // each case on its own: one failing does not hide what the others find
    for (name, precision, data, accum, tol) in cases {
        let device = || CudaBackend::new(opts.device).map(|b| attention_variant(b, name));
        match compare(device, name, precision, data, accum, tol, progress) {
            Ok(checks) => report.checks.extend(checks),
            Err(e) => {
                let line = format!("comparison {name} {}: {}", precision.name(), crate::error::causes(&e));
                progress(&line);
                report.errors.push(line);
            }
        }
    }
    for (name, precision, data, accum) in [("tiny", Precision::Bf16, &tiny, 2), ("bert-base", Precision::Bf16, &base, 1)] {
        match repeat(|| CudaBackend::new(opts.device), name, precision, data, accum, progress) {
            Ok(check) => report.checks.push(check),
            Err(e) => {
                let line = format!("repeat {name}: {}", crate::error::causes(&e));
                progress(&line);
                report.errors.push(line);
            }
        }
    }
    if opts.timings {
        for (name, batch, pad, precision, half) in [
            ("bert-base", 128, true, Precision::Bf16, false),
            ("bert-base", 128, true, Precision::Bf16, true),
            ("bert-base", 128, false, Precision::Bf16, false),
            ("minilm", 128, true, Precision::Bf16, false),
            ("minilm", 128, true, Precision::Bf16, true),
            ("bert-base", 32, true, Precision::Bf16, false),
            ("bert-base", 32, true, Precision::Bf16, true),
            ("bert-base", 128, true, Precision::F32, false),
        ] {
            let t = Timing { name, batch, pad, precision, half_attention: half };
            match time_case(opts.device, t, opts.steps, progress) {
                Ok(rows) => report.steps.extend(rows),
                Err(e) => {
                    let line = format!("timing {name} b{batch} {}: {}", precision.name(), crate::error::causes(&e));
                    progress(&line);
                    report.errors.push(line);
                }
            }
        }
        report.profile_case = "bert-base b128 s128 bf16 train".into();
        match profile(opts.device, "bert-base", 128, Precision::Bf16, progress) {
            Ok(rows) => report.profile = rows,
            Err(e) => {
                let line = format!("profile: {}", crate::error::causes(&e));
                progress(&line);
                report.errors.push(line);
            }
        }
    }
    report.wall_s = t0.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comparison_of_an_engine_with_itself_finds_equal_bits() {
        // the harness on the CPU against itself: every check runs and finds no difference (the engine is
        // deterministic), so a difference on the GPU is the GPU's
        for (name, precision) in [("tiny", Precision::F32), ("tiny", Precision::Bf16), ("tiny-distilbert", Precision::F32), ("tiny-electra-projected", Precision::F32)] {
            let checks = compare(|| Ok(CpuBackend::new()), name, precision, &tiny_batches(), 2, [0.0; 4], &mut |_| {}).expect("compare");
            assert_eq!(checks.len(), 5);
            for c in &checks {
                assert!(c.passed && c.max_rel == 0.0, "{c:?}");
            }
            assert!(checks[4].what.contains("after 3 updates"), "{:?}", checks[4]);
            let again = repeat(|| Ok(CpuBackend::new()), name, precision, &tiny_batches(), 2, &mut |_| {}).expect("repeat");
            assert!(again.passed && again.max_rel == 0.0, "{again:?}");
        }
    }
}
