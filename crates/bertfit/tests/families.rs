//! Every encoder family against transformers: tiny random `*ForSequenceClassification` models made by
//! `scripts/family_reference.py` (committed under `tests/data/families/`, with their reference logits).
//! For each family: the tokenizer gives transformers' ids; the graph's logits and first-token hidden
//! state, one batch padded, match within 1e-4; the engine gives the same
//! probabilities; a saved folder has exactly the tensors and architecture transformers wrote and reloads
//! to the same bits; training lowers the loss and reaches every trainable tensor. A PyTorch zip
//! checkpoint and a sharded masked-LM checkpoint load like safetensors.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bertfit::batch::collate;
use bertfit::engine::cpu::CpuBackend;
use bertfit::engine::Engine;
use bertfit::model::{Classifier, Inputs, LoadOptions, Mode, ModelFolder};
use bertfit::tokenize::TextTokenizer;
use bertfit::train::loss::cross_entropy;
use bertfit::train::optimizer::{AdamW, AdamWConfig};
use candle_core::{Device, Tensor};
use serde::Deserialize;

const FAMILIES: &[&str] =
    &["bert", "roberta", "xlm-roberta", "distilbert", "electra", "electra-projected", "modernbert", "modernbert-mean-biases", "deberta-v3", "deberta-v2-options"];
const TOL: f32 = 1e-4;
/// Training steps on the six reference cases, and their learning rate.
const STEPS: u64 = 20;
const LR: f64 = 5e-3;

#[derive(Deserialize)]
struct Reference {
    architecture: String,
    tensors: Vec<String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    text: String,
    text_pair: Option<String>,
    input_ids: Vec<u32>,
    token_type_ids: Vec<u32>,
    /// Absent for encoder-only references.
    #[serde(default)]
    logits: Vec<f32>,
    first_hidden: Vec<f32>,
}

fn fixture(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/families").join(family)
}

fn reference(family: &str) -> Reference {
    let text = std::fs::read_to_string(fixture(family).join("reference.json")).expect("reference.json");
    serde_json::from_str(&text).expect("reference")
}

fn load(dir: &Path, labels: Option<Vec<String>>) -> Classifier {
    Classifier::load(&ModelFolder::open(dir).expect("folder"), LoadOptions { labels, seed: 5, ..Default::default() }).expect("classifier")
}

/// The reference cases tokenized by our tokenizer, as one padded batch.
fn encode(model: &Classifier, dir: &Path, r: &Reference) -> (bertfit::batch::Batch, Vec<bertfit::tokenize::Encoded>) {
    let tok = TextTokenizer::for_folder(&ModelFolder::open(dir).expect("folder"), 64).expect("tokenizer");
    let texts: Vec<(&str, Option<&str>)> = r.cases.iter().map(|c| (c.text.as_str(), c.text_pair.as_deref())).collect();
    let enc = tok.encode_all(&texts).expect("encode");
    let idx: Vec<usize> = (0..enc.len()).collect();
    let labels: Vec<usize> = (0..enc.len()).map(|i| i % 3).collect();
    (collate(&enc, &idx, Some(&labels), model.config.pad_token_id), enc)
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2().expect("rows")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn softmax(l: &[f32]) -> Vec<f32> {
    let m = l.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = l.iter().map(|v| (v - m).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn every_family_matches_transformers() {
    for family in FAMILIES {
        let dir = fixture(family);
        let r = reference(family);
        let model = load(&dir, None);
        assert_eq!(model.labels, vec!["negative", "neutral", "positive"], "{family}");
        assert!(model.load_report.missing.is_empty() && model.load_report.unexpected.is_empty(), "{family}: {:?}", model.load_report);
        let (b, enc) = encode(&model, &dir, &r);
        for (case, e) in r.cases.iter().zip(&enc) {
            assert_eq!(e.ids, case.input_ids, "{family} {}: token ids", case.name);
            assert_eq!(e.type_ids, case.token_type_ids, "{family} {}: token types", case.name);
        }
        let inputs = Inputs::from_batch(&b, &Device::Cpu).expect("inputs");
        let logits = rows(&model.forward(&inputs, Mode::EVAL).expect("forward"));
        let (hidden, _) = model.hidden_states(&inputs, Mode::EVAL).expect("hidden");
        let first: Vec<Vec<f32>> = rows(&hidden.narrow(1, 0, 1).and_then(|t| t.squeeze(1)).expect("first token"));
        let mut worst = 0f32;
        for (i, case) in r.cases.iter().enumerate() {
            let d = max_diff(&logits[i], &case.logits).max(max_diff(&first[i], &case.first_hidden));
            assert!(d < TOL, "{family} {}: logits {:?} vs transformers {:?} ({d:e})", case.name, logits[i], case.logits);
            worst = worst.max(d);
        }
        eprintln!("{family}: graph max abs diff {worst:e} over {} cases", r.cases.len());
        // the engine computes every BERT-layout family; ModernBERT and DeBERTa run on the graph
        let own_encoder = family.starts_with("modernbert") || family.starts_with("deberta");
        assert_eq!(model.engine_covers(), !own_encoder, "{family}");
        if !model.engine_covers() {
            let err = Engine::for_inference(&model, CpuBackend::new()).err().map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains(&format!("does not cover `{}`", model.config.model_type)) && err.contains("--engine graph"), "{err}");
            continue;
        }
        let mut engine = Engine::for_inference(&model, CpuBackend::new()).expect("engine");
        let probs = engine.predict(&b).expect("predict");
        for (case, p) in r.cases.iter().zip(&probs) {
            let d = max_diff(p, &softmax(&case.logits));
            assert!(d < TOL, "{family} {}: engine probabilities {p:?} ({d:e})", case.name);
        }
    }
}

#[test]
fn a_saved_folder_has_the_family_layout_and_reloads_to_the_same_bits() {
    for family in FAMILIES {
        let dir = fixture(family);
        let r = reference(family);
        let model = load(&dir, None);
        let out = tempfile::tempdir().expect("tmp");
        model.save(out.path(), 64).expect("save");
        std::fs::copy(dir.join("tokenizer.json"), out.path().join("tokenizer.json")).expect("tokenizer");
        let saved = candle_core::safetensors::load(out.path().join("model.safetensors"), &Device::Cpu).expect("weights");
        let names: BTreeSet<&str> = saved.keys().map(String::as_str).collect();
        let expected: BTreeSet<&str> = r.tensors.iter().map(String::as_str).collect();
        assert_eq!(names, expected, "{family}: saved tensor names");
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).expect("config")).expect("json");
        let original: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).expect("config")).expect("json");
        assert_eq!(config["architectures"][0], r.architecture.as_str(), "{family}");
        // every key transformers wrote comes back under the same name and value (bertfit adds its own)
        for (key, value) in original.as_object().expect("object") {
            assert_eq!(&config[key], value, "{family}: config key `{key}`");
        }
        if *family == "distilbert" {
            assert!(config.get("hidden_size").is_none() && config.get("type_vocab_size").is_none(), "{config}");
        }
        let again = load(out.path(), None);
        let (b, _) = encode(&model, &dir, &r);
        let inputs = Inputs::from_batch(&b, &Device::Cpu).expect("inputs");
        let bits = |m: &Classifier| -> Vec<u32> {
            rows(&m.forward(&inputs, Mode::EVAL).expect("logits")).concat().iter().map(|v| v.to_bits()).collect()
        };
        assert_eq!(bits(&model), bits(&again), "{family}: reloaded logits");
    }
}

#[test]
fn every_family_trains_every_tensor_and_lowers_the_loss() {
    for family in FAMILIES {
        let dir = fixture(family);
        let r = reference(family);
        // new labels: a fresh head on the pretrained encoder, as `bertfit train` does
        let model = load(&dir, Some(vec!["a".into(), "b".into(), "c".into()]));
        assert!(model.head_initialised, "{family}");
        let (b, _) = encode(&model, &dir, &r);
        let inputs = Inputs::from_batch(&b, &Device::Cpu).expect("inputs");
        let trainable = model.trainable();
        assert_eq!(trainable.len(), model.params().vars().len(), "{family}: everything trains by default");
        let mut opt = AdamW::new(trainable.clone(), AdamWConfig::default());
        let mut losses = Vec::new();
        for step in 0..STEPS {
            let logits = model.forward(&inputs, Mode::train(1, step)).expect("forward");
            let loss = cross_entropy(&logits, &b.labels, None, 1.0).expect("loss");
            let grads = loss.backward().expect("backward");
            if step == 0 {
                for (name, var) in &trainable {
                    let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("{family}: no gradient for {name}"));
                    let norm: f32 = g.sqr().and_then(|t| t.sum_all()).and_then(|t| t.to_scalar()).expect("norm");
                    assert!(norm > 0.0, "{family}: zero gradient for {name}");
                }
            }
            assert!(opt.accumulate(&grads).expect("accumulate").is_empty());
            opt.apply(LR, Some(1.0)).expect("update");
            losses.push(loss.to_scalar::<f32>().expect("loss"));
        }
        let tail = losses[STEPS as usize - 3..].iter().sum::<f32>() / 3.0;
        assert!(tail < 0.5 * losses[0], "{family}: loss {losses:?}");
        // the engine trains it too
        if model.engine_covers() {
            let fresh = load(&dir, Some(vec!["a".into(), "b".into(), "c".into()]));
            let mut engine = Engine::new(&fresh, CpuBackend::new(), AdamWConfig::default()).expect("engine");
            let mut ours = Vec::new();
            for step in 0..STEPS {
                ours.push(engine.train_micro(&b, Mode::train(1, step), &bertfit::objective::Objective::single(None), 1.0).expect("micro").loss as f32);
                engine.apply_update(LR, Some(1.0)).expect("update");
            }
            let tail = ours[STEPS as usize - 3..].iter().sum::<f32>() / 3.0;
            assert!(tail < 0.5 * ours[0], "{family}: engine loss {ours:?}");
        }
    }
}

/// First-token hidden states of the reference cases, through the graph.
fn first_hidden(model: &Classifier, dir: &Path, r: &Reference) -> Vec<Vec<f32>> {
    let (b, _) = encode(model, dir, r);
    let inputs = Inputs::from_batch(&b, &Device::Cpu).expect("inputs");
    let (hidden, _) = model.hidden_states(&inputs, Mode::EVAL).expect("hidden");
    rows(&hidden.narrow(1, 0, 1).and_then(|t| t.squeeze(1)).expect("first token"))
}

#[test]
fn pytorch_zip_and_sharded_checkpoints_load_like_safetensors() {
    // distilbert's weights saved by torch.save: the same logits as the safetensors reference
    let r = reference("distilbert");
    let dir = fixture("distilbert-bin");
    assert_eq!(ModelFolder::open(&dir).expect("folder").weights.format, bertfit::source::weights::Format::PyTorch);
    let model = load(&dir, None);
    let (b, _) = encode(&model, &dir, &r);
    let logits = rows(&model.forward(&Inputs::from_batch(&b, &Device::Cpu).expect("inputs"), Mode::EVAL).expect("forward"));
    for (case, l) in r.cases.iter().zip(&logits) {
        assert!(max_diff(l, &case.logits) < TOL, "{}: {l:?} vs {:?}", case.name, case.logits);
    }
    // a masked-LM checkpoint in three shards: the encoder loads, the MLM head is reported as ignored,
    // the pooler and the classifier (which it lacks) are initialised
    let dir = fixture("bert-mlm-sharded");
    let r: Reference = reference("bert-mlm-sharded");
    assert_eq!(ModelFolder::open(&dir).expect("folder").weights.files.len(), 3);
    let model = load(&dir, Some(vec!["a".into(), "b".into()]));
    let report = &model.load_report;
    assert_eq!(report.missing, vec!["pooler.dense.weight", "pooler.dense.bias"], "{report:?}");
    assert!(!report.unexpected.is_empty() && report.unexpected.iter().all(|n| n.starts_with("cls.predictions.")), "{report:?}");
    for (case, h) in r.cases.iter().zip(first_hidden(&model, &dir, &r)) {
        assert!(max_diff(&h, &case.first_hidden) < TOL, "{}: first-token hidden state", case.name);
    }
    for name in r.tensors.iter().filter(|n| !n.starts_with("cls.")) {
        assert!(model.params().contains(name.strip_prefix("bert.").unwrap_or(name)), "{name} not loaded");
    }
}

#[test]
fn a_checkpoint_that_disagrees_with_its_config_names_the_tensor_and_both_shapes() {
    let src = fixture("distilbert");
    let tmp = tempfile::tempdir().expect("tmp");
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).expect("copy");
    }
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).expect("config")).expect("json");
    config["hidden_dim"] = 40.into();
    std::fs::write(tmp.path().join("config.json"), config.to_string()).expect("write");
    let err = Classifier::load(&ModelFolder::open(tmp.path()).expect("folder"), LoadOptions::default()).expect_err("mismatch").to_string();
    assert!(err.contains("`distilbert.transformer.layer.0.ffn.lin1.weight`") && err.contains("[48, 32]") && err.contains("[40, 32]"), "{err}");
    // an unknown family names the supported ones
    config["model_type"] = "gpt2".into();
    std::fs::write(tmp.path().join("config.json"), config.to_string()).expect("write");
    let err = Classifier::load(&ModelFolder::open(tmp.path()).expect("folder"), LoadOptions::default()).expect_err("gpt2").to_string();
    assert!(err.contains("`gpt2`") && err.contains("distilbert, electra"), "{err}");
}
