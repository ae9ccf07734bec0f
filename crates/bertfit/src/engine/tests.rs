//! Engine vs candle graph (design 5.1): the same tiny random BERT trained by both for three AdamW updates —
//! losses, probabilities, every accumulated gradient before the first update and the gradient norms agree
//! within 1e-5 relative (max |Δ| / max |graph| per tensor; later updates' gradients within 1e-4, as the
//! weights then differ by rounding), and so do the weights at the end (see `run` for Adam's near-zero
//! gradients); frozen weights stay as loaded. Dropout is on (the same masks), batches have mixed lengths
//! (the engine packs them, the graph pads).

use super::backend::Region;
use super::cpu::CpuBackend;
use super::Engine;
use crate::batch::{collate, Batch};
use crate::model::random::{tiny_config, write_random_model};
use crate::model::{Activation, BertConfig, Classifier, Freeze, HeadConfig, Inputs, LoadOptions, Mode, ModelFolder, Pooling};
use crate::runtime::Runtime;
use crate::tokenize::Encoded;
use crate::train::loss::cross_entropy;
use crate::train::optimizer::{AdamW, AdamWConfig};

/// One feature combination.
#[derive(Debug, Clone)]
struct Case {
    head: HeadConfig,
    freeze: Freeze,
    /// The `model_type` (family) of the random model.
    family: &'static str,
    class_weights: Option<Vec<f32>>,
    grad_accum: usize,
    clip: Option<f64>,
    /// The graph on composed candle ops instead of our fused kernels.
    composed: bool,
    weight_decay: f64,
    /// The FFN activation, when not the config's erf GELU.
    act: Option<Activation>,
    /// ELECTRA's `embedding_size`, when not the hidden size.
    embedding_size: Option<usize>,
}

impl Default for Case {
    fn default() -> Self {
        Case { head: HeadConfig::default(), freeze: Freeze::default(), family: "bert", class_weights: None, grad_accum: 1, clip: None, composed: false, weight_decay: 0.0, act: None, embedding_size: None }
    }
}

const LABELS: usize = 3;

fn config(family: &str, act: Option<Activation>, embedding_size: Option<usize>) -> BertConfig {
    let mut cfg = tiny_config(40);
    if let Some(act) = act {
        cfg.hidden_act = act;
    }
    cfg.model_type = family.into();
    if let Some(e) = embedding_size {
        cfg.extra.insert("embedding_size".into(), e.into());
    }
    if cfg.roberta_positions() {
        cfg.pad_token_id = 1;
    }
    cfg
}

fn load(dir: &std::path::Path, case: &Case) -> Classifier {
    let cfg = config(case.family, case.act, case.embedding_size);
    let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].iter().map(|s| s.to_string()).chain((4..40).map(|i| format!("w{i}"))).collect();
    write_random_model(dir, &cfg, &vocab, 7).expect("model");
    let labels = Some((0..LABELS).map(|i| format!("c{i}")).collect());
    let runtime = Runtime::cpu().with_fused(!case.composed);
    Classifier::load(&ModelFolder::open(dir).expect("folder"), LoadOptions { labels, head: Some(case.head.clone()), freeze: case.freeze, seed: 11, runtime, problem: None })
        .expect("classifier")
}

/// Micro-batches of mixed lengths (2 to 13 tokens), with labels.
fn batches(count: usize, pad: u32) -> Vec<Batch> {
    let mut key = crate::rng::Stream::new(&[5]);
    (0..count)
        .map(|b| {
            let lengths: Vec<usize> = (0..4).map(|r| 2 + ((b * 7 + r * 5) % 12)).collect();
            let enc: Vec<Encoded> = lengths
                .iter()
                .map(|&n| Encoded {
                    ids: (0..n).map(|t| if t == 0 { 2 } else { 4 + key.below(36) as u32 }).collect(),
                    type_ids: (0..n).map(|t| u32::from(t >= n / 2)).collect(),
                    truncated: false,
                })
                .collect();
            let labels: Vec<usize> = (0..4).map(|r| (b + r) % LABELS).collect();
            collate(&enc, &[0, 1, 2, 3], Some(&labels), pad)
        })
        .collect()
}

fn values(t: &candle_core::Tensor) -> Vec<f32> {
    t.flatten_all().and_then(|t| t.to_vec1()).expect("f32 values")
}

/// max |a − b| / max |b| (absolute when `b` is all zeros).
fn rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs() as f64).fold(0.0, f64::max);
    if scale > 0.0 {
        diff / scale
    } else {
        diff
    }
}

const TOL: f64 = 1e-5;

fn run(case: &Case) {
    let dir = tempfile::tempdir().expect("dir");
    let model = load(dir.path(), case);
    let adam = AdamWConfig { weight_decay: case.weight_decay, ..Default::default() };
    let mut engine = Engine::new(&model, CpuBackend::new(), adam).expect("engine");
    let initial_vars: std::collections::BTreeMap<String, candle_core::Tensor> =
        model.params().vars().iter().map(|(n, v)| (n.clone(), v.as_tensor().copy().expect("copy"))).collect();
    let mut opt = AdamW::new(model.trainable(), adam);
    let data = batches(3 * case.grad_accum, model.config.pad_token_id);
    let cw = case.class_weights.as_deref();
    let scale = 1.0 / case.grad_accum as f64;
    let seed = 3;
    for update in 0..3 {
        for a in 0..case.grad_accum {
            let micro = update * case.grad_accum + a;
            let b = &data[micro];
            let mode = Mode::train(seed, micro as u64);
            let logits = model.forward(&Inputs::from_batch(b, model.device()).expect("inputs"), mode).expect("graph forward");
            let loss = cross_entropy(&logits, &b.labels, cw, scale).expect("loss");
            let grads = loss.backward().expect("backward");
            let missing = opt.accumulate(&grads).expect("accumulate");
            assert!(missing.is_empty(), "{case:?}: graph gradients missing for {missing:?}");
            let graph_loss = loss.to_scalar::<f32>().expect("loss") as f64;
            let out = engine.train_micro(b, mode, &crate::objective::Objective::single(cw.map(<[f32]>::to_vec)), scale).expect("engine micro-step");
            assert!((out.loss - graph_loss).abs() <= TOL * graph_loss.abs(), "{case:?}: loss {} vs graph {graph_loss} at micro {micro}", out.loss);
            let graph_probs = crate::infer::softmax_rows(&logits).expect("probs");
            assert!(rel(&out.probs.concat(), &graph_probs.concat()) < TOL, "{case:?}: probabilities at micro {micro}");
        }
        {
            let state = opt.state_vectors();
            let mut compared = 0;
            for seg in engine.layout().segments.clone() {
                let graph = state.iter().find(|(n, _)| *n == format!("{}.grad_acc", seg.name)).map(|(_, v)| v.to_vec());
                assert_eq!(graph.is_some(), seg.trainable, "{case:?}: trainability of {}", seg.name);
                let Some(graph) = graph else { continue };
                let ours = engine.tensor(Region::Grads, &seg.name).expect("gradient");
                // the key bias's true gradient is zero (softmax ignores a per-row constant): both sides hold
                // rounding noise, so it is measured against the scale of the value bias's gradient
                let r = match seg.name.strip_suffix("key.bias") {
                    Some(layer) => {
                        let value = state.iter().find(|(n, _)| *n == format!("{layer}value.bias.grad_acc")).map(|(_, v)| v.to_vec()).expect("value bias");
                        let diff = ours.iter().zip(&graph).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
                        diff / value.iter().map(|v| v.abs() as f64).fold(0.0, f64::max)
                    }
                    None => rel(&ours, &graph),
                };
                // from the second update on, the weights themselves differ by rounding: 10× looser
                let tol = if update == 0 { TOL } else { 10.0 * TOL };
                assert!(r < tol, "{case:?}: gradient of {} differs by {r:e} relative before update {update}", seg.name);
                compared += 1;
            }
            assert!(compared > 0 || case.freeze.head, "{case:?}: no gradient compared");
        }
        let lr = 1e-3 * (update + 1) as f64;
        let norm_graph = opt.apply(lr, case.clip).expect("graph update");
        let norm_engine = engine.apply_update(lr, case.clip).expect("engine update");
        assert!((norm_engine - norm_graph).abs() <= TOL * norm_graph, "{case:?}: grad norm {norm_engine} vs {norm_graph}");
    }
    let vars = model.params().vars();
    let lr_sum = 1e-3 + 2e-3 + 3e-3;
    for seg in engine.layout().segments.clone() {
        let initial = values(&initial_vars[&seg.name]);
        let graph = values(vars[&seg.name].as_tensor());
        let ours = engine.tensor(Region::Params, &seg.name).expect("weights");
        if seg.name.ends_with("key.bias") && seg.trainable {
            // Adam turns the key bias's zero-plus-noise gradient into steps of about ±lr on both paths:
            // only their size is comparable (the loss, which it cannot change, is checked above)
            let bound = 1.5 * (1e-3 + 2e-3 + 3e-3);
            assert!(ours.iter().chain(&graph).all(|w| w.abs() <= bound), "{case:?}: key bias beyond the Adam step bound");
            continue;
        }
        let r = rel(&ours, &graph);
        // Adam divides by √v, so elements with near-zero gradients amplify rounding differences; where the
        // relative check fails, the two updates must still agree within 0.1 % of the largest Adam move
        let update_gap = ours.iter().zip(&graph).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
        assert!(r < TOL || update_gap < 1e-3 * lr_sum, "{case:?}: weight {} differs by {r:e} relative ({update_gap:e} absolute) after 3 updates", seg.name);
        if !seg.trainable {
            assert_eq!(ours, initial, "{case:?}: frozen {} changed", seg.name);
        }
    }
}

#[test]
fn default_head_with_dropout_matches_the_graph() {
    run(&Case::default());
}

#[test]
fn accumulation_clipping_class_weights_and_decay_match_the_graph() {
    run(&Case { grad_accum: 3, clip: Some(0.05), class_weights: Some(vec![0.5, 2.0, 1.25]), weight_decay: 0.01, ..Case::default() });
}

#[test]
fn mean_pooling_and_custom_head_layers_match_the_graph() {
    run(&Case { head: HeadConfig { pooling: Pooling::Mean, hidden: vec![16], dropout: Some(0.2), activation: Activation::Relu }, ..Case::default() });
    run(&Case { head: HeadConfig { pooling: Pooling::Cls, hidden: vec![24, 8], dropout: None, activation: Activation::GeluErf }, ..Case::default() });
    run(&Case { head: HeadConfig { pooling: Pooling::Mean, hidden: vec![], dropout: None, activation: Activation::Tanh }, ..Case::default() });
}

#[test]
fn other_ffn_activations_match_the_graph() {
    run(&Case { act: Some(Activation::GeluTanh), ..Case::default() });
    run(&Case { act: Some(Activation::Relu), ..Case::default() });
}

#[test]
fn roberta_positions_and_head_match_the_graph() {
    run(&Case { family: "roberta", ..Case::default() });
    run(&Case { family: "xlm-roberta", head: HeadConfig { pooling: Pooling::Cls, hidden: vec![16], ..HeadConfig::default() }, ..Case::default() });
}

#[test]
fn distilbert_without_token_types_and_its_head_matches_the_graph() {
    // no segment table, no dropout on the attention output, no dropout before `pre_classifier`
    run(&Case { family: "distilbert", ..Case::default() });
    run(&Case { family: "distilbert", grad_accum: 2, freeze: Freeze { layers: 1, ..Freeze::default() }, ..Case::default() });
    run(&Case { family: "distilbert", head: HeadConfig { pooling: Pooling::Mean, ..HeadConfig::default() }, ..Case::default() });
}

#[test]
fn electra_and_its_head_match_the_graph() {
    run(&Case { family: "electra", class_weights: Some(vec![0.5, 2.0, 1.25]), ..Case::default() });
}

#[test]
fn electra_projected_embeddings_match_the_graph() {
    // embedding_size 8 < hidden 32: tables, LayerNorm and dropout at width 8, then `embeddings_project`
    run(&Case { family: "electra", embedding_size: Some(8), ..Case::default() });
    run(&Case { family: "electra", embedding_size: Some(8), freeze: Freeze { layers: 1, ..Freeze::default() }, ..Case::default() });
}

#[test]
fn frozen_layers_and_frozen_encoder_match_the_graph() {
    run(&Case { freeze: Freeze { layers: 1, ..Freeze::default() }, ..Case::default() });
    run(&Case { freeze: Freeze { layers: 2, ..Freeze::default() }, ..Case::default() });
    run(&Case { freeze: Freeze { encoder: true, ..Freeze::default() }, head: HeadConfig { hidden: vec![16], ..HeadConfig::default() }, ..Case::default() });
}

#[test]
fn the_engine_matches_the_composed_ops_too() {
    run(&Case { composed: true, grad_accum: 2, ..Case::default() });
}

#[test]
fn predictions_match_the_graph_and_do_not_depend_on_batching() {
    let dir = tempfile::tempdir().expect("dir");
    let model = load(dir.path(), &Case::default());
    let mut engine = Engine::new(&model, CpuBackend::new(), AdamWConfig::default()).expect("engine");
    let data = batches(2, 0);
    let view = model.inference_view().expect("view");
    for b in &data {
        let logits = view.forward(&Inputs::from_batch(b, model.device()).expect("inputs"), Mode::EVAL).expect("forward");
        let graph = crate::infer::softmax_rows(&logits).expect("probs");
        let ours = engine.predict(b).expect("predict");
        assert!(rel(&ours.concat(), &graph.concat()) < TOL);
    }
    // one row at a time: the packed engine gives the same probabilities as in a batch
    let b = &data[0];
    let whole = engine.predict(b).expect("predict");
    for (r, probs) in whole.iter().enumerate() {
        let len = b.attention_mask[r * b.seq_len..(r + 1) * b.seq_len].iter().filter(|&&m| m != 0).count();
        let enc = Encoded { ids: b.input_ids[r * b.seq_len..r * b.seq_len + len].to_vec(), type_ids: b.type_ids[r * b.seq_len..r * b.seq_len + len].to_vec(), truncated: false };
        let single = engine.predict(&collate(&[enc], &[0], None, 0)).expect("predict one");
        assert!(rel(&single[0], probs) < 1e-6, "row {r}");
    }
}

#[test]
fn the_training_engine_evaluates_with_the_bits_of_a_fresh_inference_engine() {
    // the trainer evaluates through its training engine (no weight copy); the result must be what the
    // inference engine built from the synced model gives, bit for bit, after training steps too
    let dir = tempfile::tempdir().expect("dir");
    let model = load(dir.path(), &Case::default());
    let mut engine = Engine::new(&model, CpuBackend::new(), AdamWConfig::default()).expect("engine");
    for (i, b) in batches(2, model.config.pad_token_id).iter().enumerate() {
        engine.train_micro(b, Mode::train(1, i as u64), &crate::objective::Objective::single(None), 1.0).expect("micro-step");
        engine.apply_update(1e-3, Some(1.0)).expect("update");
    }
    engine.export_params(model.params()).expect("sync");
    let enc: Vec<Encoded> = (0..7)
        .map(|r| {
            let n = 2 + (r * 3) % 11;
            Encoded { ids: (0..n).map(|t| if t == 0 { 2 } else { 4 + ((r * 7 + t) % 36) as u32 }).collect(), type_ids: vec![0; n], truncated: false }
        })
        .collect();
    let pad = model.config.pad_token_id;
    let ours = crate::infer::engine_probabilities(&mut engine, model.runtime(), pad, &enc, 3, &crate::objective::Objective::single(None), &mut |_, _| {}).expect("training engine");
    let fresh = crate::infer::probabilities(&model.inference_view().expect("view"), &enc, 3, &mut |_, _| {}).expect("inference engine");
    let bits = |p: &[Vec<f32>]| p.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(ours.len(), 7);
    assert_eq!(bits(&ours), bits(&fresh));
}

#[test]
fn a_batch_too_large_for_free_memory_names_the_flag_of_its_kind() {
    let shape = super::plan::Shape { hidden: 768, embedding: 768, intermediate: 3072, layers: 12, pooler: true, head: vec![768, 2] };
    let enc: Vec<Encoded> = (0..64).map(|_| Encoded { ids: vec![5; 128], type_ids: vec![0; 128], truncated: false }).collect();
    let idx: Vec<usize> = (0..64).collect();
    let b = collate(&enc, &idx, None, 0);
    for (train, flag, advice) in [(true, "batch-size", "try --batch-size"), (false, "eval-batch-size", "try --eval-batch-size")] {
        let plan = super::plan::Plan::new(&shape, 64 * 128, 64, 128, train);
        // 1 MB free: far too little
        let err = super::check_memory(&plan, 0, &b, Some(1 << 20), train).expect_err("too large");
        let text = err.to_string();
        assert!(text.contains(flag) && text.contains(advice) && text.contains("64 × 128"), "{text}");
        // plenty free: accepted; unknown free memory: accepted
        assert!(super::check_memory(&plan, 0, &b, Some(1 << 50), train).is_ok());
        assert!(super::check_memory(&plan, 0, &b, None, train).is_ok());
    }
}

/// The multi-label (binary cross-entropy with positive weights) and regression (standardised MSE and
/// Huber) losses: one micro-step on the graph ([`crate::train::trainer::step`], whose backward goes
/// through `Σ logits · g`) and on the engine (the gradient uploaded into the backward) agree in loss,
/// outputs and every accumulated gradient.
#[test]
fn multi_label_and_regression_losses_match_the_graph() {
    use crate::data::{ProblemType, Scaling};
    use crate::objective::{Objective, RegressionLoss};
    let cases = [
        (ProblemType::MultiLabel, Objective { problem: ProblemType::MultiLabel, weights: Some(vec![0.5, 3.0, 1.0]), ..Objective::single(None) }),
        (ProblemType::Regression, Objective { problem: ProblemType::Regression, scaling: Scaling { mean: 2.0, std: 1.5 }, ..Objective::single(None) }),
        (ProblemType::Regression, Objective { problem: ProblemType::Regression, loss: RegressionLoss::Huber, scaling: Scaling { mean: -1.0, std: 0.5 }, ..Objective::single(None) }),
    ];
    for (problem, objective) in cases {
        let dir = tempfile::tempdir().expect("dir");
        let cfg = config("bert", None, None);
        let vocab: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].iter().map(|s| s.to_string()).chain((4..40).map(|i| format!("w{i}"))).collect();
        write_random_model(dir.path(), &cfg, &vocab, 7).expect("model");
        let labels: Vec<String> = if problem == ProblemType::Regression { vec!["y".into()] } else { (0..LABELS).map(|i| format!("c{i}")).collect() };
        let width = labels.len();
        let opts = LoadOptions { labels: Some(labels), seed: 11, runtime: Runtime::cpu(), problem: Some(problem), ..LoadOptions::default() };
        let model = Classifier::load(&ModelFolder::open(dir.path()).expect("folder"), opts).expect("classifier");
        let mut engine = Engine::new(&model, CpuBackend::new(), AdamWConfig::default()).expect("engine");
        let mut opt = AdamW::new(model.trainable(), AdamWConfig::default());
        let mut b = batches(1, model.config.pad_token_id).remove(0);
        b.labels.clear();
        b.targets = (0..b.size * width).map(|i| if problem == ProblemType::Regression { 1.0 + i as f32 * 0.7 } else { ((i * 7) % 3 == 0) as u8 as f32 }).collect();
        let train = crate::train::TrainConfig { seed: 3, ..Default::default() };
        let graph = crate::train::trainer::step(&model, &mut opt, &b, 0, &train, &objective, None).expect("graph step");
        let ours = engine.train_micro(&b, Mode::train(3, 0), &objective, 1.0).expect("engine micro-step");
        assert!((ours.loss - graph.loss).abs() <= TOL * graph.loss.abs(), "{problem}: loss {} vs graph {}", ours.loss, graph.loss);
        assert!(rel(&ours.probs.concat(), &graph.probs.concat()) < TOL, "{problem}: outputs");
        let state = opt.state_vectors();
        let mut compared = 0;
        for seg in engine.layout().segments.clone() {
            let Some((_, g)) = state.iter().find(|(n, _)| *n == format!("{}.grad_acc", seg.name)) else { continue };
            if seg.name.ends_with("key.bias") {
                continue; // zero plus rounding noise on both paths (see `run`)
            }
            let r = rel(&engine.tensor(Region::Grads, &seg.name).expect("gradient"), g);
            assert!(r < TOL, "{problem}: gradient of {} differs by {r:e}", seg.name);
            compared += 1;
        }
        assert!(compared > 10, "{problem}: {compared} gradients compared");
    }
}
