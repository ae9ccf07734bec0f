//! A whole training run from files: read and split the data, load model and tokenizer, train, evaluate
//! the best model on the test split, and leave everything in the run directory.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use super::checkpoint;
use super::config::{ClassWeights, RunConfig, TrainWindows};
use super::events::{EvalRecord, Event, Observer};
use super::loss;
use super::trainer::{self, Split, Trainer};
use crate::data::{self, Dataset, LabelMap, ProblemType, Scaling, Targets};
use crate::infer::Readout;
use crate::metrics::Metric;
use crate::objective::Objective;
use crate::windows::{Chunking, Windows};
use crate::error::{Error, Result};
use crate::infer;
use crate::model::{Classifier, Freeze, LoadOptions, ModelFolder};
use crate::rundir::{self, FINGERPRINT, RUN_FILES};
use crate::runtime::Runtime;
use crate::tokenize::{Encoded, TextTokenizer};

/// Options that change how a run is carried out, not what it computes.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunOptions<'a> {
    /// Replace an existing run in the output directory.
    pub overwrite: bool,
    /// Continue the run in the output directory from its newest valid checkpoint.
    pub resume: bool,
    /// Stop flag set by a signal handler.
    pub cancel: Option<&'a AtomicBool>,
    /// Device, kernels and threads to train on (`None`: the CPU with rayon's default pool); the run's
    /// configured precision is applied to it.
    pub runtime: Option<&'a Runtime>,
}

/// The outcome of a run, also written to `RUN_DIR/summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunSummary {
    /// What the run predicted.
    #[serde(default)]
    pub problem_type: ProblemType,
    /// The metric that picked the best model (as resolved for the problem type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<Metric>,
    /// Class names by id.
    pub labels: Vec<String>,
    /// Examples per split.
    pub train_examples: usize,
    /// Validation examples.
    pub valid_examples: usize,
    /// Test examples.
    pub test_examples: usize,
    /// Epochs completed.
    pub epochs: usize,
    /// Optimizer steps.
    pub steps: usize,
    /// Why training ended.
    pub stop_reason: String,
    /// Seconds spent training.
    pub train_seconds: f64,
    /// Real tokens per second in training.
    pub train_tokens_per_s: f64,
    /// Best validation evaluation.
    pub best: Option<EvalRecord>,
    /// Test evaluation of the best model.
    pub test: Option<EvalRecord>,
    /// Share of training texts cut by truncation.
    pub truncated_share: f64,
    /// Every evaluation of the run, in order (in `metrics.jsonl`, not in `summary.json`).
    #[serde(skip)]
    pub history: Vec<EvalRecord>,
}

/// The loss weights of a run: class weights (single-label) or positive weights per label (multi-label).
fn class_weights(cw: &ClassWeights, labels: &LabelMap, train: &Targets) -> Result<Option<Vec<f32>>> {
    Ok(match cw {
        ClassWeights::None => None,
        ClassWeights::Balanced => match train {
            Targets::Classes(ids) => Some(loss::balanced_weights(ids, labels.len())),
            Targets::Sets { .. } => Some(crate::objective::balanced_pos_weights(train)),
            Targets::Values(_) => return Err(Error::config("class-weights", "a regression run has no classes to weigh")),
        },
        ClassWeights::Explicit(pairs) => {
            let mut w = vec![1.0f32; labels.len()];
            for (name, value) in pairs {
                let id = labels.id(name).ok_or_else(|| {
                    Error::config("class-weights", format!("unknown label `{name}` (labels: {})", labels.names().join(", ")))
                })?;
                w[id] = *value as f32;
            }
            Some(w)
        }
    })
}

/// Refuses an output directory that holds a run, unless overwriting (read-only: nothing is removed yet).
pub(crate) fn check_output(dir: &Path, overwrite: bool) -> Result<()> {
    let taken = RUN_FILES.iter().any(|f| dir.join(f).exists());
    if taken && !overwrite {
        return Err(Error::config(
            "output",
            format!(
                "{} already holds a training run; resume it with --resume {}, or choose another --output, or pass --overwrite",
                dir.display(),
                dir.display()
            ),
        ));
    }
    Ok(())
}

/// Clears a previous run's files (after `--overwrite`) and creates the directory.
pub(crate) fn claim_output(dir: &Path) -> Result<()> {
    for f in RUN_FILES.iter().filter(|f| dir.join(f).exists()) {
        let p = dir.join(f);
        let removed = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        removed.map_err(|e| Error::io("cannot remove old run file", &p, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create run directory", dir, e))
}

fn data_fingerprint(cfg: &RunConfig) -> Result<std::collections::BTreeMap<String, String>> {
    use sha2::Digest;
    let mut out = std::collections::BTreeMap::new();
    for (role, path) in [("train", Some(&cfg.data.train)), ("valid", cfg.data.valid.as_ref()), ("test", cfg.data.test.as_ref())] {
        if let Some(p) = path {
            let bytes = std::fs::read(p).map_err(|e| Error::io("cannot read", p, e))?;
            let hex: String = sha2::Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect();
            out.insert(role.to_string(), hex);
        }
    }
    Ok(out)
}

fn check_fingerprint(cfg: &RunConfig) -> Result<()> {
    let path = cfg.output.join(FINGERPRINT);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    let saved: std::collections::BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| Error::parse(crate::Location::file(&path), "corrupt fingerprint", e))?;
    let now = data_fingerprint(cfg)?;
    for (role, hash) in &saved {
        if now.get(role) != Some(hash) {
            return Err(Error::config(
                "resume",
                format!("the {role} data file changed since the run started; resuming would not continue the same run"),
            ));
        }
    }
    Ok(())
}

/// The data of a run: problem type, labels and the examples of each split.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// What the run predicts.
    pub problem: ProblemType,
    /// Label map (from the training file; multi-label: the labels; regression: the target's name).
    pub labels: LabelMap,
    /// Training examples.
    pub train: Dataset,
    /// Validation examples.
    pub valid: Option<Dataset>,
    /// Test examples.
    pub test: Option<Dataset>,
}

/// The problem type of a run: as configured, else multi-label when the data gives label sets (lists,
/// separated cells or label columns), else single-label.
pub fn problem_type(cfg: &RunConfig, full: &Dataset) -> ProblemType {
    cfg.train.problem_type.unwrap_or(if full.has_label_sets() || cfg.data.label_separator.is_some() || cfg.data.label_columns.is_some() {
        ProblemType::MultiLabel
    } else {
        ProblemType::SingleLabel
    })
}

/// Reads the training file, its problem type and its label map: at least two classes for single-label,
/// at least one label for multi-label (the label columns' order when given), the target's name for
/// regression.
pub fn read_train(cfg: &RunConfig) -> Result<(Dataset, ProblemType, LabelMap)> {
    let full = data::read_dataset(&cfg.data.train, &cfg.data.columns(), true)?;
    let problem = problem_type(cfg, &full);
    let at = || crate::Location::file(&cfg.data.train).field(&cfg.data.label_column);
    let labels = match (problem, &cfg.data.label_columns) {
        (ProblemType::Regression, _) => LabelMap::from_names(vec![cfg.data.label_column.clone()])?,
        (ProblemType::MultiLabel, Some(columns)) => LabelMap::from_names(columns.clone())?,
        _ => LabelMap::from_labels(full.labels()),
    };
    match problem {
        ProblemType::SingleLabel if labels.len() < 2 => {
            return Err(Error::input(at(), format!("found {} distinct label(s); classification needs at least 2", labels.len())));
        }
        ProblemType::MultiLabel if labels.is_empty() => {
            return Err(Error::input(at(), "no example has a label: multi-label training needs at least one"));
        }
        _ => {}
    }
    Ok((full, problem, labels))
}

/// A note when every label of a single-label run is a number and some are not integers: the user may
/// mean regression.
pub fn regression_hint(problem: ProblemType, labels: &LabelMap) -> Option<String> {
    let numbers = labels.names().iter().all(|l| l.parse::<f64>().is_ok());
    let fractional = labels.names().iter().any(|l| l.parse::<i128>().is_err());
    (problem == ProblemType::SingleLabel && numbers && fractional).then(|| {
        format!(
            "every one of the {} labels is a number and some are not integers: if they are scores, --problem-type regression predicts them as numbers",
            labels.len()
        )
    })
}

/// Reads the data files and cuts the splits: explicit files win; otherwise stratified, seeded shares of
/// the training file (by class; by the rarest label of each set for multi-label; by decile of the value
/// for regression).
pub fn prepare(cfg: &RunConfig) -> Result<Prepared> {
    let cols = cfg.data.columns();
    let (full, problem, labels) = read_train(cfg)?;
    let strata = Targets::encode(problem, &full, &labels)?.strata();
    let mut fractions = Vec::new();
    if cfg.data.valid.is_none() && cfg.data.valid_fraction > 0.0 {
        fractions.push(cfg.data.valid_fraction);
    }
    if cfg.data.test.is_none() && cfg.data.test_fraction > 0.0 {
        fractions.push(cfg.data.test_fraction);
    }
    let parts = data::stratified_split(&strata, &fractions, cfg.train.seed)?;
    let mut parts = parts.into_iter();
    let mut take_split = |file: &Option<std::path::PathBuf>, frac: f64| -> Result<Option<Dataset>> {
        match file {
            Some(p) => Ok(Some(data::read_dataset(p, &cols, true)?)),
            None if frac > 0.0 => Ok(parts.next().map(|idx| full.subset(&idx))),
            None => Ok(None),
        }
    };
    let valid = take_split(&cfg.data.valid, cfg.data.valid_fraction)?;
    let test = take_split(&cfg.data.test, cfg.data.test_fraction)?;
    let train = match parts.next() {
        Some(idx) => full.subset(&idx),
        None => full.clone(),
    };
    Ok(Prepared { problem, labels, train, valid, test })
}

/// Runs training as configured. Everything lands in `cfg.output`.
pub fn run(cfg: &RunConfig, opts: RunOptions<'_>, obs: &mut dyn Observer) -> Result<RunSummary> {
    cfg.validate()?;
    let prepared = prepare(cfg)?;
    run_prepared(cfg, prepared, opts, obs)
}

/// Runs training on data already split (cross-validation folds use this).
pub fn run_prepared(cfg: &RunConfig, prepared: Prepared, opts: RunOptions<'_>, obs: &mut dyn Observer) -> Result<RunSummary> {
    cfg.validate()?;
    let tc = &cfg.train;
    let runtime = opts.runtime.cloned().unwrap_or_default().with_precision(tc.precision).with_engine(tc.engine).with_accelerator(tc.device);
    if tc.precision == crate::runtime::Precision::Bf16 && !runtime.accelerator().is_cuda() && !crate::model::kernels::bf16::native() {
        obs.on_event(&Event::Warning(
            "--precision bf16 on a CPU without AVX512-BF16: operands are rounded to bf16 on the f32 kernels, which is slower than f32 here (use --precision f32 for speed)".into(),
        ));
    }
    if runtime.accelerator().is_cuda() {
        obs.on_event(&Event::Info(format!("device: {} (the engine, {} precision)", runtime.accelerator().name(), tc.precision.name())));
    }
    let Prepared { problem, labels, train, valid, test } = prepared;
    let train_ids = Targets::encode(problem, &train, &labels)?;
    let valid_ids = valid.as_ref().map(|d| Targets::encode(problem, d, &labels)).transpose()?;
    let test_ids = test.as_ref().map(|d| Targets::encode(problem, d, &labels)).transpose()?;
    let what = match problem {
        ProblemType::SingleLabel => format!("{} labels: {}", labels.len(), labels.names().join(", ")),
        ProblemType::MultiLabel => format!("multi-label, {} labels: {}", labels.len(), labels.names().join(", ")),
        ProblemType::Regression => format!("regression of `{}`", labels.names().join("")),
    };
    obs.on_event(&Event::Info(format!(
        "data: {} train, {} valid, {} test examples; {what}",
        train.len(),
        valid.as_ref().map_or(0, |d| d.len()),
        test.as_ref().map_or(0, |d| d.len()),
    )));
    if let Some(hint) = regression_hint(problem, &labels) {
        obs.on_event(&Event::Warning(hint));
    }
    let mut tc = tc.clone();
    if !tc.early_stopping_metric.applies_to(problem) {
        if tc.early_stopping_metric == Metric::F1Macro {
            // the default of classification runs: each problem type has its own
            tc.early_stopping_metric = Metric::default_for(problem);
        } else {
            return Err(Error::config(
                "early-stopping-metric",
                format!("`{}` is not defined for a {} run", tc.early_stopping_metric, problem.name()),
            ));
        }
    }
    if tc.tune_thresholds && problem != ProblemType::MultiLabel {
        return Err(Error::config("tune-thresholds", "thresholds are tuned for multi-label runs only"));
    }
    let tc = &tc;

    let resume_from = if opts.resume {
        check_fingerprint(cfg)?;
        let (newest, refused): (Option<checkpoint::Loaded>, _) = checkpoint::newest_valid(&cfg.output);
        for (dir, err) in &refused {
            obs.on_event(&Event::Warning(format!("refusing checkpoint {}: {err}; falling back to an older one", dir.display())));
        }
        match &newest {
            Some(l) => obs.on_event(&Event::Info(format!(
                "resuming from {} (epoch {}, step {})",
                l.dir.display(),
                l.state.epoch,
                l.state.step
            ))),
            None => obs.on_event(&Event::Warning("no valid checkpoint: starting the run from the beginning".into())),
        }
        newest
    } else {
        check_output(&cfg.output, opts.overwrite)?;
        None
    };
    let folder = ModelFolder::resolve(&cfg.model, None)?;
    let model_cfg = crate::model::BertConfig::from_file(&folder.config)?;
    let (max_len, note) = model_cfg.fit_max_len(tc.max_len);
    if let Some(note) = note {
        obs.on_event(&Event::Warning(note));
    }
    let tokenizer = TextTokenizer::for_folder(&folder, max_len)?;
    model_cfg.check_tokenizer(&tokenizer, &folder)?;
    let enc_train = tokenizer.encode_dataset(&train)?;
    let enc_valid = valid.as_ref().map(|d| tokenizer.encode_dataset(d)).transpose()?;
    let enc_test = test.as_ref().map(|d| tokenizer.encode_dataset(d)).transpose()?;
    let truncated_share = enc_train.iter().filter(|e| e.truncated).count() as f64 / enc_train.len().max(1) as f64;
    // --long-text chunk: validation and test documents as windows; training on every window or the first
    let chunking = tc.chunking();
    let windows_of = |d: &Dataset| -> Result<Windows> {
        let texts: Vec<(&str, Option<&str>)> = d.examples.iter().map(|e| (e.text.as_str(), e.text_pair.as_deref())).collect();
        Windows::of(&tokenizer, &texts, chunking.map_or(0, |c| c.stride))
    };
    let win_valid = match (&valid, chunking) {
        (Some(d), Some(_)) => Some(windows_of(d)?),
        _ => None,
    };
    let win_test = match (&test, chunking) {
        (Some(d), Some(_)) => Some(windows_of(d)?),
        _ => None,
    };
    let win_train = match (chunking, tc.train_windows) {
        (Some(_), TrainWindows::All) => Some(windows_of(&train)?),
        _ => None,
    };
    if let Some(c) = chunking {
        let split = |w: &Option<Windows>, name: &str| w.as_ref().map(|w| format!("{} of {} {name} texts in {} windows", w.split_documents(), w.docs, w.encoded.len()));
        let parts: Vec<String> = [split(&win_train, "training"), split(&win_valid, "validation"), split(&win_test, "test")].into_iter().flatten().collect();
        obs.on_event(&Event::Info(format!(
            "long texts split into windows of {} tokens sharing {} ({} pooling): {}",
            tokenizer.max_len(),
            c.stride,
            match c.pooling { crate::windows::Pooling::Mean => "mean", crate::windows::Pooling::Max => "max" },
            if parts.is_empty() { "none to split".to_string() } else { parts.join("; ") }
        )));
    }

    let weights_folder = match &resume_from {
        Some(l) => ModelFolder::open(&l.dir)?,
        None => folder.clone(),
    };
    let model = Classifier::load(
        &weights_folder,
        LoadOptions {
            labels: Some(labels.names().to_vec()),
            head: Some(tc.head.clone()),
            freeze: Freeze { encoder: tc.freeze_encoder, layers: tc.freeze_layers, head: false },
            seed: tc.seed,
            runtime: runtime.clone(),
            problem: Some(problem),
        },
    )?;
    let mut model = model;
    let scaling = match &train_ids {
        Targets::Values(v) => {
            let scaling = Scaling::of(v);
            model.standardise(scaling)?;
            Some(scaling)
        }
        _ => None,
    };
    model.chunking = chunking;
    // thresholds tuned for the checkpoint's own head do not carry over to the model this run trains
    if let Some(meta) = model.saved_meta.as_mut() {
        meta.thresholds = None;
    }
    let model = model;
    let report = &model.load_report;
    if !report.missing.is_empty() {
        obs.on_event(&Event::Warning(format!("initialised weights missing from the checkpoint: {}", report.missing.join(", "))));
    }
    if !report.unexpected.is_empty() {
        obs.on_event(&Event::Info(format!("ignored checkpoint tensors: {}", report.unexpected.join(", "))));
    }
    if model.head_initialised && resume_from.is_some() {
        return Err(Error::config("resume", "the checkpoint's head does not match the run configuration"));
    }
    if model.head_initialised {
        obs.on_event(&Event::Info(format!("classifier initialised for {} labels", labels.len())));
    }
    if resume_from.is_none() && !opts.resume {
        claim_output(&cfg.output)?;
        rundir::write_json(&cfg.output.join(FINGERPRINT), "data fingerprint", &data_fingerprint(cfg)?)?;
    }
    write_data_stats(&cfg.output.join(rundir::DATA_STATS), &tokenizer, &labels, [("train", Some(&train), Some(&enc_train)), ("valid", valid.as_ref(), enc_valid.as_ref()), ("test", test.as_ref(), enc_test.as_ref())])?;
    // the run config records the path that runs (`auto` resolved for this model)
    let mut recorded = cfg.clone();
    recorded.train.problem_type = Some(problem);
    recorded.train.early_stopping_metric = tc.early_stopping_metric;
    recorded.train.engine = tc.engine.resolve(model.engine_covers());
    recorded.train.device = runtime.accelerator();
    recorded.train.numerics = crate::engine::device::numerics(runtime.accelerator())?;
    rundir::write_json(&cfg.output.join(rundir::RUN_CONFIG), "run configuration", &recorded)?;

    let weights = class_weights(&tc.class_weights, &labels, &train_ids)?;
    let objective = Objective { problem, weights, loss: tc.loss, scaling: scaling.unwrap_or(Scaling::IDENTITY), folded: false };
    let separator = cfg.data.label_separator.clone().unwrap_or_else(|| infer::SET_SEPARATOR.to_string());
    let readout = Readout::of(problem, None, &separator);
    let trainer = Trainer {
        model: &model,
        config: tc,
        tokenizer: &tokenizer,
        run_dir: &cfg.output,
        objective: objective.clone(),
        readout,
        cancel: opts.cancel,
        valid_examples: valid.as_ref(),
    };
    let valid_split = split_of(&enc_valid, &win_valid, &valid_ids, chunking);
    let window_targets = win_train.as_ref().map(|w| train_ids.subset(&w.doc));
    let train_split = match (&win_train, &window_targets) {
        (Some(w), Some(t)) => Split { encoded: &w.encoded, targets: t, windows: None },
        _ => Split { encoded: &enc_train, targets: &train_ids, windows: None },
    };
    let outcome = trainer.fit(train_split, valid_split, resume_from, obs)?;

    // the best model as saved: regression outputs in target units (the loss still in standardised units,
    // as in validation)
    let saved_objective = objective.folded();
    let best_dir = cfg.output.join(rundir::BEST);
    let load_best = || Classifier::load(&ModelFolder::open(&best_dir)?, LoadOptions { runtime: runtime.clone(), ..Default::default() });
    if tc.tune_thresholds {
        match (valid_split, &valid_ids) {
            (Some(v), Some(targets)) => {
                let mut best = load_best()?;
                let e = trainer::evaluate(&best, None, v, tc.eval_batch_size, &saved_objective, "valid", obs)?;
                let gold: Vec<Vec<bool>> = (0..targets.len()).map(|i| targets.row(i).iter().map(|&v| v > 0.5).collect()).collect();
                let thresholds = crate::metrics::multilabel::tune_thresholds(&gold, &e.probs, infer::DEFAULT_THRESHOLD);
                if let Some(meta) = best.saved_meta.as_mut() {
                    meta.thresholds = Some(thresholds.clone());
                }
                checkpoint::write_atomically(&best_dir, |tmp| checkpoint::write_model(&best, &tokenizer, tmp))?;
                obs.on_event(&Event::Info(format!(
                    "thresholds tuned on the validation split (best F1 per label): {}",
                    labels.names().iter().zip(&thresholds).map(|(l, t)| format!("{l} {t:.2}")).collect::<Vec<_>>().join(", ")
                )));
            }
            _ => obs.on_event(&Event::Warning("--tune-thresholds needs a validation split: keeping 0.5".into())),
        }
    }
    let mut test_rec = None;
    if let (Some(test_split), Some(ids)) = (split_of(&enc_test, &win_test, &test_ids, chunking), &test_ids) {
        let best = load_best()?;
        let e = trainer::evaluate(&best, None, test_split, tc.eval_batch_size, &saved_objective, "test", obs)?;
        if let Some(data) = &test {
            let path = rundir::predictions_csv(&cfg.output, "test");
            let thresholds = best.saved_meta.as_ref().and_then(|m| m.thresholds.as_deref());
            let readout = Readout::of(problem, thresholds, &separator);
            infer::write_file_atomically(&path, |w| infer::write_scored(w, &path, data, ids, &best.labels, &e.probs, &readout))?;
        }
        let step = outcome.best.as_ref().map_or(outcome.steps, |b| b.step);
        let epoch = outcome.best.as_ref().map_or(outcome.epochs as f64, |b| b.epoch);
        let rec = EvalRecord::measured("test", epoch, step, e.loss, 0.0, outcome.seconds, ids.len(), e.measures());
        rundir::append_jsonl(&cfg.output.join(rundir::METRICS), "metrics", &rec)?;
        obs.on_event(&Event::Evaluated(&rec));
        test_rec = Some(rec);
    }
    let summary = RunSummary {
        problem_type: problem,
        metric: Some(tc.early_stopping_metric),
        labels: labels.names().to_vec(),
        train_examples: train.len(),
        valid_examples: valid.as_ref().map_or(0, |d| d.len()),
        test_examples: test.as_ref().map_or(0, |d| d.len()),
        epochs: outcome.epochs,
        steps: outcome.steps,
        stop_reason: outcome.stop_reason.clone(),
        train_seconds: outcome.seconds,
        train_tokens_per_s: outcome.tokens as f64 / outcome.seconds.max(1e-9),
        best: outcome.best.clone(),
        test: test_rec,
        truncated_share,
        history: outcome.history.clone(),
    };
    rundir::write_json(&cfg.output.join(rundir::SUMMARY), "summary", &summary)?;
    Ok(summary)
}

/// An evaluation split: the documents' windows when chunking, else their (truncated) encodings.
fn split_of<'a>(enc: &'a Option<Vec<Encoded>>, win: &'a Option<Windows>, targets: &'a Option<Targets>, chunking: Option<Chunking>) -> Option<Split<'a>> {
    let targets = targets.as_ref()?;
    match (win, chunking) {
        (Some(w), Some(c)) => Some(Split { encoded: &w.encoded, targets, windows: Some((&w.doc, c.pooling)) }),
        _ => enc.as_ref().map(|e| Split { encoded: e, targets, windows: None }),
    }
}

/// One split for `data_stats.json`: its name, its examples and their encodings (when the split exists).
type SplitStats<'a> = (&'a str, Option<&'a Dataset>, Option<&'a Vec<Encoded>>);

/// Label counts and untruncated token lengths per split (`data_stats.json`), for reports.
fn write_data_stats(
    path: &Path,
    tokenizer: &TextTokenizer,
    labels: &LabelMap,
    splits: [SplitStats<'_>; 3],
) -> Result<()> {
    let mut out = serde_json::Map::new();
    for (name, data, enc) in splits {
        let (Some(data), Some(enc)) = (data, enc) else { continue };
        let mut counts: std::collections::BTreeMap<&str, usize> = labels.names().iter().map(|l| (l.as_str(), 0)).collect();
        for l in data.labels() {
            *counts.entry(l).or_insert(0) += 1;
        }
        let texts: Vec<(&str, Option<&str>)> = data.examples.iter().map(|e| (e.text.as_str(), e.text_pair.as_deref())).collect();
        let lengths = tokenizer.full_lengths(&texts)?;
        out.insert(
            name.to_string(),
            serde_json::json!({
                "examples": data.len(),
                "label_counts": counts,
                "token_lengths": lengths,
                "truncated": enc.iter().filter(|e| e.truncated).count(),
            }),
        );
    }
    let json = serde_json::json!({ "max_len": tokenizer.max_len(), "splits": out });
    std::fs::write(path, json.to_string()).map_err(|e| Error::io("cannot write", path, e))
}
