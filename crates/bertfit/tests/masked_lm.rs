//! Masked language models against transformers: tiny random `*ForMaskedLM` models made by
//! `scripts/mlm_reference.py` (committed under `tests/data/mlm/`, with reference logits, loss and
//! gradient norms). For each family: the MLM logits at the masked positions and the loss match within
//! 1e-4; gradients reach every trainable tensor and their norms match transformers' (the word embeddings
//! get the sum of both uses, as the embedding table and as the tied decoder); a saved folder holds the
//! tensors transformers wrote and reloads to the same logits; a sentence encoder without an MLM head
//! gets a fresh head, and its pooler is carried through unchanged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bertfit::batch::Batch;
use bertfit::model::{Inputs, MaskedLm, Mode, ModelFolder};
use bertfit::runtime::Runtime;
use bertfit::train::loss::cross_entropy;
use serde::Deserialize;

const FAMILIES: &[&str] = &["bert", "roberta", "distilbert", "electra"];
const TOL: f32 = 1e-4;

#[derive(Deserialize)]
struct Reference {
    input_ids: Vec<Vec<u32>>,
    attention_mask: Vec<Vec<u32>>,
    positions: Vec<u32>,
    targets: Vec<u32>,
    logits: Vec<Vec<f32>>,
    loss: f32,
    grad_norms: BTreeMap<String, f32>,
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mlm").join(name)
}

fn reference(name: &str) -> Reference {
    serde_json::from_str(&std::fs::read_to_string(fixture(name).join("reference.json")).expect("reference.json")).expect("reference")
}

fn load(dir: &Path) -> MaskedLm {
    MaskedLm::load(&ModelFolder::open(dir).expect("folder"), Runtime::cpu(), 3).expect("masked LM")
}

fn batch(r: &Reference) -> Batch {
    let (b, s) = (r.input_ids.len(), r.input_ids[0].len());
    Batch {
        input_ids: r.input_ids.concat(),
        type_ids: vec![0; b * s],
        attention_mask: r.attention_mask.concat(),
        labels: Vec::new(),
        targets: Vec::new(),
        indices: (0..b).collect(),
        size: b,
        seq_len: s,
        tokens: r.attention_mask.iter().flatten().filter(|&&m| m == 1).count(),
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn tensor_names(path: &Path) -> Vec<String> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu).expect("safetensors").into_keys().collect()
}

/// The canonical name of a transformers parameter name (prefix and family renames stripped).
fn canonical(name: &str, model: &MaskedLm) -> String {
    bertfit::model::params::canonical_name(name, model.config.family()).expect("named tensor")
}

#[test]
fn mlm_logits_loss_and_gradients_match_transformers() {
    for name in FAMILIES {
        let r = reference(name);
        let model = load(&fixture(name));
        assert!(!model.head_initialised, "{name}: the checkpoint's head was not found");
        assert!(model.load_report.missing.is_empty(), "{name}: missing {:?}", model.load_report.missing);
        let inputs = Inputs::from_batch(&batch(&r), model.device()).expect("inputs");
        let logits = model.logits_at(&inputs, &r.positions, Mode::EVAL).expect("logits");
        let got: Vec<Vec<f32>> = logits.to_vec2().expect("rows");
        let d = max_diff(&got.concat(), &r.logits.concat());
        assert!(d < TOL, "{name}: MLM logits differ by {d}");
        // the full (batch, seq, vocab) logits agree with the gathered ones
        let full = model.logits(&inputs, Mode::EVAL).expect("full");
        let (_, s, v) = full.dims3().expect("dims");
        let flat: Vec<f32> = full.flatten_all().expect("flat").to_vec1().expect("vec");
        let first = r.positions[0] as usize;
        assert!(max_diff(&flat[first * v..(first + 1) * v], &got[0]) < 1e-5, "{name}: gathered and full logits differ (seq {s})");

        let labels: Vec<usize> = r.targets.iter().map(|&t| t as usize).collect();
        let loss = cross_entropy(&logits, &labels, None, 1.0).expect("loss");
        let value = loss.to_scalar::<f32>().expect("scalar");
        assert!((value - r.loss).abs() < TOL, "{name}: loss {value} vs {}", r.loss);
        let (nll, _) = bertfit::pretrain::run::masked_token_scores(&logits, &r.targets).expect("score");
        assert!(((nll / r.targets.len() as f64) as f32 - r.loss).abs() < TOL, "{name}: evaluation's loss differs");

        let grads = loss.backward().expect("backward");
        let trainable = model.trainable();
        let vars: BTreeMap<String, _> = trainable.iter().cloned().collect();
        for (n, var) in &trainable {
            assert!(grads.get(var.as_tensor()).is_some(), "{name}: no gradient reached {n}");
        }
        for (hf, want) in &r.grad_norms {
            let canon = canonical(hf, &model);
            let var = vars.get(&canon).unwrap_or_else(|| panic!("{name}: no trainable `{canon}` (transformers' {hf})"));
            let g = grads.get(var.as_tensor()).expect("gradient");
            let norm = g.sqr().expect("sq").sum_all().expect("sum").to_scalar::<f32>().expect("scalar").sqrt();
            assert!((norm - want).abs() <= TOL * want.max(1.0), "{name}: gradient norm of {hf}: {norm} vs {want}");
        }
    }
}

#[test]
fn a_saved_masked_lm_has_transformers_tensors_and_reloads_to_the_same_logits() {
    for name in FAMILIES {
        let r = reference(name);
        let model = load(&fixture(name));
        let dir = tempfile::tempdir().expect("tmp");
        model.save(dir.path()).expect("save");
        std::fs::copy(fixture(name).join("tokenizer.json"), dir.path().join("tokenizer.json")).expect("tokenizer");
        let names = |p: &Path| -> Vec<String> {
            let mut n: Vec<String> = tensor_names(p);
            n.sort();
            n
        };
        assert_eq!(names(&dir.path().join("model.safetensors")), names(&fixture(name).join("model.safetensors")), "{name}: saved tensor names");
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).expect("config")).expect("json");
        assert_eq!(config["architectures"][0], model.head_names().architecture, "{name}");
        assert!(config.get("id2label").is_none() && config.get("bertfit").is_none(), "{name}: classifier keys in a masked LM's config");
        let back = load(dir.path());
        let inputs = Inputs::from_batch(&batch(&r), back.device()).expect("inputs");
        let a: Vec<f32> = model.logits_at(&inputs, &r.positions, Mode::EVAL).expect("a").flatten_all().expect("f").to_vec1().expect("v");
        let b: Vec<f32> = back.logits_at(&inputs, &r.positions, Mode::EVAL).expect("b").flatten_all().expect("f").to_vec1().expect("v");
        assert_eq!(a, b, "{name}: reloaded logits differ");
    }
}

#[test]
fn an_encoder_without_an_mlm_head_gets_one_and_keeps_its_pooler() {
    // a BertForSequenceClassification: pooler and classifier, no masked-LM head
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/families/bert");
    let model = load(&dir);
    assert!(model.head_initialised);
    assert!(model.load_report.unexpected.iter().any(|n| n.starts_with("classifier.")), "{:?}", model.load_report.unexpected);
    assert!(model.params().contains("pooler.dense.weight"), "the pooler is carried");
    assert!(model.trainable().iter().all(|(n, _)| !n.starts_with("pooler.")), "the pooler does not train");
    let out = tempfile::tempdir().expect("tmp");
    model.save(out.path()).expect("save");
    let names = tensor_names(&out.path().join("model.safetensors"));
    assert!(names.iter().any(|n| n == "bert.pooler.dense.weight"), "{names:?}");
    assert!(names.iter().any(|n| *n == "cls.predictions.transform.dense.weight"));
    assert!(!names.iter().any(|n| n.starts_with("classifier")));

    // a family without a masked-LM head is refused, naming the ones that have one
    let err = MaskedLm::load(&ModelFolder::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/families/modernbert")).expect("folder"), Runtime::cpu(), 1)
        .expect_err("modernbert")
        .to_string();
    assert!(err.contains("model_type") && err.contains("modernbert") && err.contains("bert, roberta"), "{err}");
}

#[test]
fn head_warmup_steps_train_the_head_alone() {
    let tmp = tempfile::tempdir().expect("tmp");
    let corpus = tmp.path().join("corpus.txt");
    let lines = ["The film was NOT good: its plot dragged.", "Hello, world! This is a tiny corpus for tiny tokenizers.", "Is this review positive? Nobody knows."];
    std::fs::write(&corpus, lines.iter().cycle().take(24).map(|l| format!("{l}\n")).collect::<String>()).expect("corpus");
    let start = fixture("bert");
    let mut cfg = bertfit::pretrain::PretrainConfig::new(vec![corpus], start.to_string_lossy().into_owned(), tmp.path().join("run"));
    (cfg.max_steps, cfg.head_warmup_steps, cfg.batch_size, cfg.max_len, cfg.valid_fraction, cfg.lr) = (Some(2), 2, 4, 32, 0.0, 1e-2);
    let opts = bertfit::pretrain::PretrainOptions { overwrite: false, resume: false, cancel: None, runtime: Runtime::cpu() };
    bertfit::pretrain::run(&cfg, opts, &mut bertfit::train::Silent).expect("pretrain");
    let (before, after) = (load(&start), load(&tmp.path().join("run/best")));
    let bits = |m: &MaskedLm, n: &str| -> Vec<f32> { m.params().vars()[n].as_tensor().flatten_all().expect("flat").to_vec1().expect("vec") };
    let mut head_moved = 0;
    for name in before.params().vars().keys() {
        if before.is_head(name) {
            head_moved += usize::from(bits(&before, name) != bits(&after, name));
        } else {
            assert_eq!(bits(&before, name), bits(&after, name), "{name} changed during the head warm-up");
        }
    }
    assert!(head_moved >= 3, "the head trained: {head_moved} tensors moved");
}
