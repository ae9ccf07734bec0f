//! Integration tests of the library on a tiny random BERT built here, plus parity with Hugging Face
//! transformers on the real all-MiniLM-L6-v2 checkpoint when the assets are present.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bertfit::batch;
use bertfit::data::{self, Columns};
use bertfit::model::random::{tiny_config, write_random_model};
use bertfit::model::{Classifier, Freeze, Inputs, LoadOptions, Mode, ModelFolder};
use bertfit::infer::Predictor;
use bertfit::runtime::Runtime;
use bertfit::tokenize::TextTokenizer;
use bertfit::train::loss::cross_entropy;
use bertfit::train::optimizer::{AdamW, AdamWConfig};
use bertfit::train::{self, DataConfig, RunConfig, RunOptions, Silent, TrainConfig};
use candle_core::{Device, Tensor};

mod common;
use common::require_assets;

const WORDS: &[&str] = &[
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "a", "film", "plot", "acting", "really", "good",
    "great", "fine", "nice", "happy", "bad", "awful", "poor", "sad", "terrible", "and", "very", "quite", ".", ",",
];

fn vocab() -> Vec<String> {
    WORDS.iter().map(|s| s.to_string()).collect()
}

/// A tiny random BERT folder.
fn tiny_model(dir: &Path, seed: u64) -> PathBuf {
    let path = dir.join("tiny-bert");
    write_random_model(&path, &tiny_config(WORDS.len()), &vocab(), seed).expect("write tiny model");
    path
}

/// 24 short sentences: positive words → pos, negative words → neg.
fn write_sentiment_csv(path: &Path) {
    let pos = ["good", "great", "fine", "nice", "happy", "really good"];
    let neg = ["bad", "awful", "poor", "sad", "terrible", "very bad"];
    let subjects = ["the movie was", "the plot was", "a film quite"];
    let mut rows = vec!["id,text,label".to_string()];
    let mut i = 0;
    for s in subjects {
        for (p, n) in pos.iter().zip(neg.iter()) {
            rows.push(format!("ex{i},{s} {p} .,pos"));
            rows.push(format!("ex{},{s} {n} .,neg", i + 1));
            i += 2;
        }
    }
    std::fs::write(path, rows.join("\n") + "\n").expect("write csv");
}

fn run_config(dir: &Path, model: &Path, out: &str, train: TrainConfig) -> RunConfig {
    let csv = dir.join("train.csv");
    write_sentiment_csv(&csv);
    RunConfig {
        model: model.display().to_string(),
        output: dir.join(out),
        data: DataConfig { train: csv.clone(), valid: Some(csv), valid_fraction: 0.0, ..Default::default() },
        train,
    }
}

fn fast_config() -> TrainConfig {
    TrainConfig { epochs: 40, batch_size: 8, lr: 2e-3, warmup_ratio: 0.0, max_len: 16, ..Default::default() }
}

fn newest_checkpoint(run_dir: &Path) -> PathBuf {
    bertfit::train::checkpoint::list(run_dir).into_iter().next().expect("a checkpoint")
}

fn read_tensors(path: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(path, &Device::Cpu).expect("load safetensors")
}

fn tensor_bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32").iter().map(|x| x.to_bits()).collect()
}

#[test]
fn training_lowers_loss_and_memorises_a_small_dataset() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 1);
    let cfg = run_config(dir.path(), &model, "run", fast_config());
    let summary = train::run(&cfg, RunOptions::default(), &mut Silent).expect("train");
    let lines = std::fs::read_to_string(cfg.output.join("metrics.jsonl")).expect("metrics");
    let records: Vec<serde_json::Value> = lines.lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    let train_losses: Vec<f64> =
        records.iter().filter(|r| r["split"] == "train").map(|r| r["loss"].as_f64().expect("loss")).collect();
    assert_eq!(train_losses.len(), 40);
    let first = train_losses[..3].iter().sum::<f64>() / 3.0;
    let last = train_losses[37..].iter().sum::<f64>() / 3.0;
    assert!(last < first * 0.3, "loss went {first} → {last}");
    for key in ["epoch", "step", "split", "loss", "accuracy", "f1_macro", "mcc", "learning_rate", "elapsed_s"] {
        assert!(records[0].get(key).is_some(), "metrics.jsonl lacks {key}");
    }
    // The best model predicts every training example right.
    let predictor = Predictor::load(&ModelFolder::open(&cfg.output.join("best")).expect("folder"), &Runtime::cpu(), None, None).expect("load best");
    let data = data::read_dataset(&cfg.data.train, &Columns::default(), true).expect("read");
    let eval = predictor.evaluate(&data, 7, &mut |_, _| {}).expect("eval");
    assert_eq!(eval.scores.accuracy, 1.0, "{:?}", eval.scores.confusion);
    assert_eq!(summary.labels, vec!["neg".to_string(), "pos".to_string()]);
    // Report material: one line per update, data statistics, the best model's scored validation set.
    let steps = std::fs::read_to_string(cfg.output.join("steps.jsonl")).expect("steps");
    assert_eq!(steps.lines().count(), summary.steps);
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.output.join("data_stats.json")).expect("stats")).expect("json");
    assert_eq!(stats["splits"]["train"]["token_lengths"].as_array().map(|a| a.len()), Some(36));
    assert_eq!(stats["splits"]["valid"]["label_counts"]["pos"], 18);
    let scored = std::fs::read_to_string(cfg.output.join("predictions/valid.csv")).expect("scored");
    assert_eq!(scored.lines().next(), Some("row,id,text,gold,pred,prob_neg,prob_pos"));
    assert_eq!(scored.lines().count(), 37);
    // The saved folder is a Hugging Face classifier.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(cfg.output.join("best/config.json")).expect("cfg")).expect("json");
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert_eq!(config["id2label"]["1"], "pos");
    assert_eq!(config["label2id"]["neg"], 0);
    let tensors = read_tensors(&cfg.output.join("best/model.safetensors"));
    assert!(tensors.contains_key("bert.embeddings.word_embeddings.weight"));
    assert!(tensors.contains_key("classifier.weight"));
    assert!(cfg.output.join("best/tokenizer.json").exists());
    let ckpt = newest_checkpoint(&cfg.output);
    assert!(ckpt.join("optimizer.safetensors").exists() && ckpt.join("manifest.json").exists());
    assert!(cfg.output.join("run_config.json").exists());
}

fn load_classifier(model: &Path, labels: Option<Vec<String>>, freeze: Freeze) -> Classifier {
    let folder = ModelFolder::open(model).expect("folder");
    Classifier::load(&folder, LoadOptions { labels, freeze, seed: 3, ..Default::default() }).expect("classifier")
}

fn tiny_batch(model: &Path) -> (bertfit::batch::Batch, Vec<bertfit::tokenize::Encoded>) {
    let folder = ModelFolder::open(model).expect("folder");
    let tok = TextTokenizer::for_folder(&folder, 16).expect("tokenizer");
    let enc = tok
        .encode_all(&[("the movie was good .", None), ("bad", None), ("a film , quite terrible and sad .", Some("the plot"))])
        .expect("encode");
    (batch::collate(&enc, &[0, 1, 2], Some(&[1, 0, 0]), 0), enc)
}

#[test]
fn every_trainable_tensor_gets_a_gradient() {
    let dir = tempfile::tempdir().expect("tmp");
    let model_dir = tiny_model(dir.path(), 2);
    let model = load_classifier(&model_dir, Some(vec!["neg".into(), "pos".into()]), Freeze::default());
    let (b, _) = tiny_batch(&model_dir);
    let logits = model.forward(&Inputs::from_batch(&b, &Device::Cpu).expect("inputs"), Mode::train(1, 0)).expect("fwd");
    let loss = cross_entropy(&logits, &b.labels, None, 1.0).expect("loss");
    let grads = loss.backward().expect("backward");
    let trainable = model.trainable();
    // 2 layers × 16 tensors + 5 embedding + 2 pooler + 2 classifier.
    assert_eq!(trainable.len(), 2 * 16 + 5 + 2 + 2);
    for (name, var) in &trainable {
        let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
        let norm: f32 = g.sqr().and_then(|t| t.sum_all()).and_then(|t| t.to_scalar()).expect("norm");
        assert!(norm > 0.0, "zero gradient for {name}");
    }
    let mut opt = AdamW::new(trainable, AdamWConfig::default());
    assert!(opt.accumulate(&grads).expect("accumulate").is_empty());
}

#[test]
fn frozen_encoder_gets_no_gradient_and_stays_bit_identical() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 4);
    let cfg = run_config(dir.path(), &model, "frozen", TrainConfig { epochs: 3, freeze_encoder: true, ..fast_config() });
    train::run(&cfg, RunOptions::default(), &mut Silent).expect("train");
    let before = read_tensors(&model.join("model.safetensors"));
    let after = read_tensors(&cfg.output.join("best/model.safetensors"));
    let mut compared = 0;
    for (name, t) in &before {
        let saved = after.get(&format!("bert.{name}")).unwrap_or_else(|| panic!("{name} not saved"));
        assert_eq!(tensor_bits(t), tensor_bits(saved), "{name} changed");
        compared += 1;
    }
    assert_eq!(compared, before.len());
    let head_before = load_classifier(&model, Some(vec!["neg".into(), "pos".into()]), Freeze::default());
    let w0 = head_before.params().vars()["classifier.weight"].as_tensor().clone();
    assert_ne!(tensor_bits(&w0), tensor_bits(&after["classifier.weight"]), "the head must train");
    // Freezing the first layer only: embeddings and layer 0 frozen, layer 1 trainable.
    let partial = load_classifier(&model, Some(vec!["a".into(), "b".into()]), Freeze { encoder: false, layers: 1, head: false });
    let names: Vec<String> = partial.trainable().into_iter().map(|(n, _)| n).collect();
    assert!(names.iter().all(|n| !n.starts_with("embeddings.") && !n.starts_with("encoder.layer.0.")));
    assert!(names.iter().any(|n| n.starts_with("encoder.layer.1.")));
}

#[test]
fn save_then_load_gives_identical_logits() {
    let dir = tempfile::tempdir().expect("tmp");
    let model_dir = tiny_model(dir.path(), 5);
    let model = load_classifier(&model_dir, Some(vec!["x".into(), "y".into(), "z".into()]), Freeze::default());
    let out = dir.path().join("saved");
    model.save(&out, 16).expect("save");
    std::fs::copy(model_dir.join("vocab.txt"), out.join("vocab.txt")).expect("vocab");
    let again = load_classifier(&out, None, Freeze::default());
    assert_eq!(again.labels, vec!["x", "y", "z"]);
    assert!(!again.head_initialised);
    let (b, _) = tiny_batch(&model_dir);
    let inputs = Inputs::from_batch(&b, &Device::Cpu).expect("inputs");
    let l1 = model.forward(&inputs, Mode::EVAL).expect("fwd");
    let l2 = again.forward(&inputs, Mode::EVAL).expect("fwd");
    assert_eq!(tensor_bits(&l1), tensor_bits(&l2));
    // The inference view shares the weights and computes the same logits without recording a graph.
    let view = model.inference_view().expect("view");
    assert!(view.trainable().is_empty());
    assert_eq!(tensor_bits(&view.forward(&inputs, Mode::EVAL).expect("fwd")), tensor_bits(&l1));
    // Training on the same labels keeps the head; other labels get a fresh one.
    let same = load_classifier(&out, Some(vec!["x".into(), "y".into(), "z".into()]), Freeze::default());
    assert!(!same.head_initialised);
    let other = load_classifier(&out, Some(vec!["p".into(), "q".into()]), Freeze::default());
    assert!(other.head_initialised);
}

#[test]
fn batched_and_one_by_one_predictions_agree() {
    let dir = tempfile::tempdir().expect("tmp");
    let model_dir = tiny_model(dir.path(), 6);
    let model = load_classifier(&model_dir, Some(vec!["neg".into(), "pos".into()]), Freeze::default());
    let (_, enc) = tiny_batch(&model_dir);
    let batched = bertfit::infer::probabilities(&model, &enc, 8, &mut |_, _| {}).expect("batched");
    for (i, e) in enc.iter().enumerate() {
        let single = bertfit::infer::probabilities(&model, std::slice::from_ref(e), 1, &mut |_, _| {}).expect("single");
        for (a, b) in batched[i].iter().zip(&single[0]) {
            assert!((a - b).abs() < 1e-5, "example {i}: {a} vs {b}");
        }
    }
}

#[test]
fn dropout_masks_are_seeded() {
    let dir = tempfile::tempdir().expect("tmp");
    let model_dir = tiny_model(dir.path(), 7);
    let model = load_classifier(&model_dir, Some(vec!["neg".into(), "pos".into()]), Freeze::default());
    let (b, _) = tiny_batch(&model_dir);
    let inputs = Inputs::from_batch(&b, &Device::Cpu).expect("inputs");
    let a = tensor_bits(&model.forward(&inputs, Mode::train(9, 3)).expect("fwd"));
    let a2 = tensor_bits(&model.forward(&inputs, Mode::train(9, 3)).expect("fwd"));
    let c = tensor_bits(&model.forward(&inputs, Mode::train(9, 4)).expect("fwd"));
    let e = tensor_bits(&model.forward(&inputs, Mode::EVAL).expect("fwd"));
    assert_eq!(a, a2);
    assert_ne!(a, c);
    assert_ne!(a, e);
}

#[test]
fn two_identical_runs_give_bit_identical_weights() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 8);
    let short = TrainConfig { epochs: 2, ..fast_config() };
    let a = run_config(dir.path(), &model, "a", short.clone());
    let b = run_config(dir.path(), &model, "b", short);
    train::run(&a, RunOptions::default(), &mut Silent).expect("a");
    train::run(&b, RunOptions::default(), &mut Silent).expect("b");
    let wa = std::fs::read(newest_checkpoint(&a.output).join("model.safetensors")).expect("a");
    let wb = std::fs::read(newest_checkpoint(&b.output).join("model.safetensors")).expect("b");
    assert!(wa == wb, "weights differ between identical runs");
}

#[test]
fn the_engine_path_trains_identically_twice_memorises_and_predicts_like_the_graph() {
    use bertfit::runtime::EnginePath;
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 9);
    let engine = TrainConfig { engine: EnginePath::Fused, ..fast_config() };
    let a = run_config(dir.path(), &model, "engine-a", engine.clone());
    let b = run_config(dir.path(), &model, "engine-b", TrainConfig { epochs: 2, ..engine.clone() });
    let b2 = run_config(dir.path(), &model, "engine-b2", TrainConfig { epochs: 2, ..engine });
    train::run(&a, RunOptions::default(), &mut Silent).expect("engine run");
    train::run(&b, RunOptions::default(), &mut Silent).expect("b");
    train::run(&b2, RunOptions::default(), &mut Silent).expect("b2");
    let wb = std::fs::read(newest_checkpoint(&b.output).join("model.safetensors")).expect("b");
    let wb2 = std::fs::read(newest_checkpoint(&b2.output).join("model.safetensors")).expect("b2");
    assert!(wb == wb2, "weights differ between identical engine runs");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.output.join("run_config.json")).expect("cfg")).expect("json");
    assert_eq!(saved["train"]["engine"], "fused");
    // the engine learns the small dataset as the graph does
    let best = ModelFolder::open(&a.output.join("best")).expect("folder");
    let data = data::read_dataset(&a.data.train, &Columns::default(), true).expect("read");
    let graph = Predictor::load(&best, &Runtime::cpu(), None, None).expect("graph");
    let fused = Predictor::load(&best, &Runtime::cpu().with_engine(EnginePath::Fused), None, None).expect("engine");
    let eval = fused.evaluate(&data, 7, &mut |_, _| {}).expect("eval");
    assert_eq!(eval.scores.accuracy, 1.0, "{:?}", eval.scores.confusion);
    // and predicts what the graph predicts from the same folder
    let (pg, pf) = (graph.predict_dataset(&data, 7, &mut |_, _| {}).expect("graph"), fused.predict_dataset(&data, 5, &mut |_, _| {}).expect("engine"));
    for (g, f) in pg.iter().zip(&pf) {
        for (x, y) in g.iter().zip(f) {
            assert!((x - y).abs() < 1e-5, "graph {g:?} vs engine {f:?}");
        }
    }
}

#[test]
fn an_existing_run_is_not_overwritten_without_asking() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 9);
    let cfg = run_config(dir.path(), &model, "run", TrainConfig { epochs: 1, ..fast_config() });
    train::run(&cfg, RunOptions::default(), &mut Silent).expect("first");
    let err = train::run(&cfg, RunOptions::default(), &mut Silent).expect_err("second must refuse");
    assert!(err.to_string().contains("already holds a training run"), "{err}");
    assert!(err.is_user_error());
    train::run(&cfg, RunOptions { overwrite: true, ..Default::default() }, &mut Silent).expect("overwrite");
}

// ---- parity with Hugging Face transformers on the real checkpoint ----

#[test]
fn minilm_forward_matches_transformers() {
    let Some(model_dir) = require_assets() else { return };
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm_parity.json")).expect("ref"),
    )
    .expect("json");
    let folder = ModelFolder::open(&model_dir).expect("folder");
    let model = Classifier::load(&folder, LoadOptions { labels: Some(vec!["a".into(), "b".into()]), ..Default::default() })
        .expect("load");
    assert!(model.load_report.missing.is_empty(), "missing: {:?}", model.load_report.missing);
    let tok = TextTokenizer::for_folder(&folder, 128).expect("tok");
    let cases = reference["cases"].as_array().expect("cases");
    let mut worst = 0f32;
    for case in cases {
        let ids: Vec<u32> = serde_json::from_value(case["input_ids"].clone()).expect("ids");
        let types: Vec<u32> = serde_json::from_value(case["token_type_ids"].clone()).expect("types");
        // Our tokenizer must produce the same ids.
        let text = case["text"].as_str().expect("text");
        let pair = case.get("text_pair").and_then(|p| p.as_str());
        let enc = tok.encode_all(&[(text, pair)]).expect("encode");
        assert_eq!(enc[0].ids, ids, "tokenization of {text:?}");
        assert_eq!(enc[0].type_ids, types);
        let b = batch::collate(&enc, &[0], None, 0);
        let (hidden, pooled) = model.hidden_states(&Inputs::from_batch(&b, &Device::Cpu).expect("in"), Mode::EVAL).expect("fwd");
        let got: Vec<f32> = hidden.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        let want: Vec<f32> = serde_json::from_value::<Vec<Vec<Vec<f32>>>>(case["last_hidden_state"].clone())
            .map(|v| v.into_iter().flatten().flatten().collect())
            .or_else(|_| serde_json::from_value::<Vec<Vec<f32>>>(case["last_hidden_state"].clone()).map(|v| v.into_iter().flatten().collect()))
            .expect("hidden");
        assert_eq!(got.len(), want.len());
        let pooled: Vec<f32> = pooled.expect("pooler").flatten_all().and_then(|t| t.to_vec1()).expect("pooled");
        let want_pooled: Vec<f32> = serde_json::from_value::<Vec<Vec<f32>>>(case["pooler_output"].clone())
            .map(|v| v.into_iter().flatten().collect())
            .or_else(|_| serde_json::from_value::<Vec<f32>>(case["pooler_output"].clone()))
            .expect("pooled");
        for (g, w) in got.iter().zip(&want).chain(pooled.iter().zip(&want_pooled)) {
            worst = worst.max((g - w).abs());
        }
    }
    eprintln!("parity: max abs diff {worst:e} over {} cases", cases.len());
    assert!(worst <= 1e-4, "max abs diff {worst}");

    // The engine, all cases packed into one batch: the same parity.
    let mut engine = bertfit::engine::Engine::for_inference(&model, bertfit::engine::cpu::CpuBackend::new()).expect("engine");
    let texts: Vec<(&str, Option<&str>)> =
        cases.iter().map(|c| (c["text"].as_str().expect("text"), c.get("text_pair").and_then(|p| p.as_str()))).collect();
    let enc = tok.encode_all(&texts).expect("encode");
    let b = batch::collate(&enc, &(0..enc.len()).collect::<Vec<_>>(), None, 0);
    let (hidden, pooled) = engine.hidden_states(&b).expect("engine forward");
    let pooled = pooled.expect("pooler");
    let (mut at, h, mut worst_engine) = (0usize, model.config.hidden_size, 0f32);
    for (i, case) in cases.iter().enumerate() {
        let want: Vec<f32> = serde_json::from_value::<Vec<Vec<Vec<f32>>>>(case["last_hidden_state"].clone())
            .map(|v| v.into_iter().flatten().flatten().collect())
            .or_else(|_| serde_json::from_value::<Vec<Vec<f32>>>(case["last_hidden_state"].clone()).map(|v| v.into_iter().flatten().collect()))
            .expect("hidden");
        let want_pooled: Vec<f32> = serde_json::from_value::<Vec<Vec<f32>>>(case["pooler_output"].clone())
            .map(|v| v.into_iter().flatten().collect())
            .or_else(|_| serde_json::from_value::<Vec<f32>>(case["pooler_output"].clone()))
            .expect("pooled");
        let got = &hidden[at..at + want.len()];
        at += want.len();
        for (g, w) in got.iter().zip(&want).chain(pooled[i * h..(i + 1) * h].iter().zip(&want_pooled)) {
            worst_engine = worst_engine.max((g - w).abs());
        }
    }
    assert_eq!(at, hidden.len(), "every packed token compared");
    eprintln!("engine parity (packed batch of {}): max abs diff {worst_engine:e}", cases.len());
    assert!(worst_engine <= 1e-4, "engine: max abs diff {worst_engine}");
}

#[test]
fn minilm_tokenizer_has_its_baked_in_padding_cleared() {
    let Some(model_dir) = require_assets() else { return };
    let folder = ModelFolder::open(&model_dir).expect("folder");
    let tok = TextTokenizer::for_folder(&folder, 64).expect("tok");
    let data = data::Dataset {
        path: "x".into(),
        id_column: None,
        label_column: None,
        examples: vec![data::Example { id: None, text: "Hello".into(), text_pair: None, label: None, label_set: None, line: 1 }],
    };
    let enc = tok.encode_dataset(&data).expect("encode");
    assert_eq!(enc[0].ids, vec![101, 7592, 102]);
}

#[test]
fn roberta_layout_saves_under_its_prefix_and_pads_positions_correctly() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = tiny_config(WORDS.len());
    cfg.model_type = "roberta".into();
    cfg.pad_token_id = 0;
    cfg.max_position_embeddings = 66;
    let model_dir = dir.path().join("tiny-roberta");
    write_random_model(&model_dir, &cfg, &vocab(), 12).expect("write");
    let model = load_classifier(&model_dir, Some(vec!["neg".into(), "pos".into()]), Freeze::default());
    // Padding must not change a sequence's result: positions count real tokens only.
    let (_, enc) = tiny_batch(&model_dir);
    let batched = bertfit::infer::probabilities(&model, &enc, 8, &mut |_, _| {}).expect("batched");
    let single = bertfit::infer::probabilities(&model, &enc[1..2], 1, &mut |_, _| {}).expect("single");
    for (a, b) in batched[1].iter().zip(&single[0]) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    let out = dir.path().join("saved");
    model.save(&out, 16).expect("save");
    let names = read_tensors(&out.join("model.safetensors"));
    assert!(names.contains_key("roberta.encoder.layer.0.attention.self.query.weight"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).expect("cfg")).expect("json");
    assert_eq!(config["architectures"][0], "RobertaForSequenceClassification");
}

// ---- cross-validation and ensembles ----

#[test]
fn cross_validation_covers_every_example_once_with_disjoint_stratified_folds() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 13);
    let mut cfg = run_config(dir.path(), &model, "cv", TrainConfig { epochs: 2, ..fast_config() });
    cfg.data.valid = None;
    let summary = bertfit::train::cv::cross_validate(&cfg, 3, RunOptions::default(), &mut Silent).expect("cv");
    assert_eq!(summary.runs.len(), 3);
    assert!(summary.valid["accuracy"].n == 3 && summary.valid["accuracy"].std >= 0.0);
    let oof = std::fs::read_to_string(cfg.output.join("oof.csv")).expect("oof");
    let mut lines = oof.lines();
    assert_eq!(lines.next(), Some("row,id,fold,gold,label,prob_neg,prob_pos"));
    let rows: Vec<Vec<String>> = lines.map(|l| l.split(',').map(String::from).collect()).collect();
    assert_eq!(rows.len(), 36, "one row per training example");
    let mut seen: Vec<usize> = rows.iter().map(|r| r[0].parse().expect("row")).collect();
    seen.sort();
    assert_eq!(seen, (0..36).collect::<Vec<_>>());
    // Each fold holds 12 examples, 6 per class, and the fold's model never saw them.
    for k in 0..3 {
        let in_fold: Vec<&Vec<String>> = rows.iter().filter(|r| r[2] == k.to_string()).collect();
        assert_eq!(in_fold.len(), 12);
        assert_eq!(in_fold.iter().filter(|r| r[3] == "pos").count(), 6);
        assert!(cfg.output.join(format!("fold-{k}/best/model.safetensors")).exists());
    }
    let md = std::fs::read_to_string(cfg.output.join("cv_summary.md")).expect("md");
    assert!(md.contains("| fold-2 |") && md.contains("mean ± std"), "{md}");
    // The top-level configuration records the device that ran (the default `auto` resolved), never `auto`.
    let top: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(cfg.output.join("run_config.json")).expect("config")).expect("json");
    assert_eq!(top["train"]["device"], bertfit::runtime::Accelerator::Auto.resolve().name());
    // The same seed gives the same folds.
    let again = run_config(dir.path(), &model, "cv2", TrainConfig { epochs: 1, ..fast_config() });
    let mut again = again;
    again.data.valid = None;
    bertfit::train::cv::cross_validate(&again, 3, RunOptions::default(), &mut Silent).expect("cv2");
    let folds = |p: &Path| -> Vec<String> {
        std::fs::read_to_string(p).expect("oof").lines().skip(1).map(|l| l.split(',').nth(2).unwrap_or("").to_string()).collect()
    };
    assert_eq!(folds(&cfg.output.join("oof.csv")), folds(&again.output.join("oof.csv")));
}

#[test]
fn ensembles_average_member_probabilities() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 14);
    let a = run_config(dir.path(), &model, "a", TrainConfig { epochs: 2, ..fast_config() });
    let b = run_config(dir.path(), &model, "b", TrainConfig { epochs: 2, seed: 7, ..fast_config() });
    train::run(&a, RunOptions::default(), &mut Silent).expect("a");
    train::run(&b, RunOptions::default(), &mut Silent).expect("b");
    let data = data::read_dataset(&a.data.train, &Columns::default(), true).expect("read");
    let spec = |c: &RunConfig| c.output.join("best").display().to_string();
    let pa = Predictor::load(&ModelFolder::open(Path::new(&spec(&a))).expect("a"), &Runtime::cpu(), None, None).expect("a").predict_dataset(&data, 8, &mut |_, _| {}).expect("pa");
    let pb = Predictor::load(&ModelFolder::open(Path::new(&spec(&b))).expect("b"), &Runtime::cpu(), None, None).expect("b").predict_dataset(&data, 8, &mut |_, _| {}).expect("pb");
    assert_ne!(pa, pb);
    let one = bertfit::infer::Ensemble::load(&[spec(&a)], &Runtime::cpu(), None, None).expect("one");
    assert_eq!(one.predict_dataset(&data, 8, &mut |_, _| {}).expect("p1"), pa, "an ensemble of one is that model");
    let two = bertfit::infer::Ensemble::load(&[spec(&a), spec(&b)], &Runtime::cpu(), None, None).expect("two");
    let p2 = two.predict_dataset(&data, 8, &mut |_, _| {}).expect("p2");
    for (i, row) in p2.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            assert_eq!(*v, (pa[i][c] + pb[i][c]) / 2.0, "example {i} class {c}");
        }
    }
    // Members must agree on labels.
    let other = dir.path().join("other");
    let m = load_classifier(&model, Some(vec!["x".into(), "y".into()]), Freeze::default());
    m.save(&other, 16).expect("save");
    std::fs::copy(model.join("vocab.txt"), other.join("vocab.txt")).expect("vocab");
    let err = bertfit::infer::Ensemble::load(&[spec(&a), other.display().to_string()], &Runtime::cpu(), None, None).expect_err("labels differ");
    assert!(err.to_string().contains("disagree on labels"), "{err}");
}

#[test]
fn models_of_different_precisions_live_side_by_side() {
    use bertfit::runtime::Precision;
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 21);
    let bf16_run = run_config(dir.path(), &model, "bf16", TrainConfig { epochs: 2, precision: Precision::Bf16, ..fast_config() });
    train::run(&bf16_run, RunOptions::default(), &mut Silent).expect("train bf16");
    let best = ModelFolder::open(&bf16_run.output.join("best")).expect("best");
    // the training precision is saved with the model, and prediction defaults to it
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&best.config).expect("cfg")).expect("json");
    assert_eq!(config["bertfit"]["precision"], "bf16");
    let data = data::read_dataset(&bf16_run.data.train, &Columns::default(), true).expect("read");
    let rt = Runtime::cpu();
    let predict = |p: &Predictor| p.predict_dataset(&data, 8, &mut |_, _| {}).expect("predict");
    let alone_default = predict(&Predictor::load(&best, &rt, None, None).expect("default"));
    let alone_bf16 = predict(&Predictor::load(&best, &rt, Some(Precision::Bf16), None).expect("bf16"));
    let alone_f32 = predict(&Predictor::load(&best, &rt, Some(Precision::F32), None).expect("f32"));
    // on a CPU without AVX512-BF16 the saved bf16 gives way to f32 unless asked for (it would only be slower)
    let native = bertfit::model::kernels::bf16::native();
    assert_eq!(alone_default, if native { alone_bf16.clone() } else { alone_f32.clone() });
    assert_ne!(alone_f32, alone_bf16, "bf16 rounding must change some probability");
    // both loaded at once, used in turn, each from its own thread too: the same bits as alone
    let f32_model = Predictor::load(&best, &rt, Some(Precision::F32), None).expect("f32");
    let bf16_model = Predictor::load(&best, &rt.clone().with_threads(1).expect("pool"), Some(Precision::Bf16), None).expect("bf16");
    for _ in 0..2 {
        assert_eq!(predict(&f32_model), alone_f32);
        assert_eq!(predict(&bf16_model), alone_bf16);
    }
    std::thread::scope(|s| {
        let a = s.spawn(|| predict(&f32_model));
        let b = s.spawn(|| predict(&bf16_model));
        assert_eq!(a.join().expect("f32 thread"), alone_f32);
        assert_eq!(b.join().expect("bf16 thread"), alone_bf16);
    });
}

#[test]
fn a_diverging_loss_says_so() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 22);
    let cfg = run_config(dir.path(), &model, "nan", TrainConfig { epochs: 3, lr: 1e30, max_grad_norm: 0.0, ..fast_config() });
    let err = train::run(&cfg, RunOptions::default(), &mut Silent).expect_err("a learning rate of 1e30 diverges");
    assert!(matches!(err, bertfit::Error::Diverged { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("training diverged") && text.contains("--lr"), "{text}");
    assert!(!err.is_user_error(), "divergence is not a malformed input");
}

#[test]
fn a_custom_label_column_is_named_in_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("eval.csv");
    std::fs::write(&path, "text,sentiment\ngood film,pos\nbad film,meh\n").expect("write");
    let cols = Columns { label: Some("sentiment".into()), ..Columns::default() };
    let data = data::read_dataset(&path, &cols, true).expect("read");
    let map = data::LabelMap::from_names(vec!["neg".into(), "pos".into()]).expect("map");
    let err = map.encode(&data).expect_err("meh is unknown");
    let text = err.to_string();
    assert!(text.contains("field `sentiment`") && text.contains("line 3"), "{text}");
}

#[test]
fn tokenizer_ids_beyond_the_vocabulary_are_an_input_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = tiny_model(dir.path(), 23);
    // a config whose embedding table is smaller than the tokenizer's vocabulary
    let cfg_path = model.join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).expect("cfg")).expect("json");
    cfg["vocab_size"] = serde_json::json!(10);
    std::fs::write(&cfg_path, cfg.to_string()).expect("write cfg");
    let run = run_config(dir.path(), &model, "vocab", TrainConfig { epochs: 1, ..fast_config() });
    let err = train::run(&run, RunOptions::default(), &mut Silent).expect_err("vocabulary mismatch");
    assert!(err.is_user_error(), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("vocab_size 10") && text.contains(&WORDS.len().to_string()), "{text}");
}
