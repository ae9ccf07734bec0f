//! Stratified k-fold cross-validation and repeated runs over seeds: each fold (or seed) is a full
//! training run in its own directory; out-of-fold predictions and mean ± std of every metric are written
//! next to them. Interrupted runs resume at the fold and step where they stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::RunConfig;
use super::events::{EvalRecord, Event, Observer};
use super::job::{self, Prepared, RunOptions, RunSummary};
use crate::data::{self, Targets};
use crate::error::{Error, Result};
use crate::infer::{self, argmax, Predictor, Readout};
use crate::metrics::aggregate::{self, Spread};
use crate::metrics::{ConfusionMatrix, Measured, Scores};
use crate::model::ModelFolder;
use crate::rundir::{self, write_json};

/// One run's headline results (a fold or a seed).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRow {
    /// `fold-0`, `seed-3`, …
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Best validation evaluation.
    pub valid: Option<EvalRecord>,
    /// Test evaluation of the best model.
    pub test: Option<EvalRecord>,
}

/// Summary of several runs: rows, mean ± std, and (for cross-validation) out-of-fold scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MultiSummary {
    /// `cv` or `seeds`.
    pub kind: String,
    /// Per run.
    pub runs: Vec<RunRow>,
    /// Spread of the best validation metrics.
    pub valid: std::collections::BTreeMap<String, Spread>,
    /// Spread of the test metrics (when a test file was given).
    pub test: std::collections::BTreeMap<String, Spread>,
    /// Scores of the out-of-fold predictions over the whole training file (cross-validation only).
    pub oof: Option<Scores>,
    /// A Markdown table of the rows and their spread.
    pub table: String,
}

fn rows_summary(kind: &str, runs: Vec<RunRow>, oof: Option<Scores>) -> MultiSummary {
    let pick = |f: &dyn Fn(&RunRow) -> Option<&EvalRecord>| -> Vec<(String, Measured<'_>)> {
        runs.iter().filter_map(|r| f(r).map(|e| (r.name.clone(), e.view()))).collect()
    };
    let valid_rows = pick(&|r| r.valid.as_ref());
    let test_rows = pick(&|r| r.test.as_ref());
    let spreads = |rows: &[(String, Measured<'_>)]| aggregate::summarize(&rows.iter().map(|(_, m)| *m).collect::<Vec<_>>());
    let mut table = String::new();
    if !valid_rows.is_empty() {
        table.push_str("Validation (best model of each run)\n\n");
        table.push_str(&aggregate::summary_table(&valid_rows));
    }
    if !test_rows.is_empty() {
        table.push_str("\nTest (best model of each run)\n\n");
        table.push_str(&aggregate::summary_table(&test_rows));
    }
    let (valid, test) = (spreads(&valid_rows), if test_rows.is_empty() { Default::default() } else { spreads(&test_rows) });
    MultiSummary { kind: kind.into(), runs, valid, test, oof, table }
}

fn read_summary(dir: &Path) -> Option<RunSummary> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(rundir::SUMMARY)).ok()?).ok()
}

/// Runs (or resumes, or skips when finished) one member run in `dir`.
fn member(cfg: &RunConfig, dir: &Path, prepared: Option<Prepared>, resume: bool, opts: RunOptions<'_>, obs: &mut dyn Observer) -> Result<RunSummary> {
    if let Some(done) = read_summary(dir) {
        obs.on_event(&Event::Info(format!("{}: already complete", dir.display())));
        return Ok(done);
    }
    let mut c = cfg.clone();
    c.output = dir.to_path_buf();
    let started = dir.join(rundir::RUN_CONFIG).exists();
    let o = RunOptions { resume: resume && started, overwrite: true, ..opts };
    obs.on_event(&Event::Info(format!("== {} ==", dir.display())));
    let summary = match prepared {
        Some(p) => job::run_prepared(&c, p, o, obs)?,
        None => job::run(&c, o, obs)?,
    };
    Ok(summary)
}

/// The configuration a multi-run records: the device that runs (never `auto`) and, on a GPU, what its
/// numerics depend on, so a resume elsewhere is noticed.
fn recorded(cfg: &RunConfig) -> Result<RunConfig> {
    let mut c = cfg.clone();
    c.train.device = c.train.device.resolve();
    c.train.numerics = crate::engine::device::numerics(c.train.device)?;
    Ok(c)
}

fn claim(dir: &Path, opts: RunOptions<'_>, prefix: &str) -> Result<()> {
    let taken = std::fs::read_dir(dir)
        .map(|it| it.filter_map(|e| e.ok()).any(|e| e.file_name().to_string_lossy().starts_with(prefix)))
        .unwrap_or(false);
    if taken && !opts.resume && !opts.overwrite {
        return Err(Error::config(
            "output",
            format!("{} already holds runs; resume with --resume {}, or pass --overwrite", dir.display(), dir.display()),
        ));
    }
    if taken && opts.overwrite {
        std::fs::remove_dir_all(dir).map_err(|e| Error::io("cannot remove old run", dir, e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))
}

/// Stratified, seeded k-fold cross-validation of `cfg` into `cfg.output/fold-N/`.
pub fn cross_validate(cfg: &RunConfig, folds: usize, opts: RunOptions<'_>, obs: &mut dyn Observer) -> Result<MultiSummary> {
    cfg.validate()?;
    if cfg.data.valid.is_some() {
        return Err(Error::config("valid", "cross-validation uses each fold as validation set; leave out --valid"));
    }
    let (full, problem, labels) = job::read_train(cfg)?;
    let targets = Targets::encode(problem, &full, &labels)?;
    let test = cfg.data.test.as_ref().map(|p| data::read_dataset(p, &cfg.data.columns(), true)).transpose()?;
    // folds stratified by class, by the rarest label of each set, or by decile of the value
    let fold_sets = data::stratified_kfold(&targets.strata(), folds, cfg.train.seed)?;
    claim(&cfg.output, opts, rundir::FOLD_PREFIX)?;
    write_json(&cfg.output.join(rundir::RUN_CONFIG), "run configuration", &recorded(cfg)?)?;
    write_json(&cfg.output.join(rundir::CV), "fold count", &serde_json::json!({ "folds": folds }))?;

    // out-of-fold predictions on the device (and precision) the folds trained on
    let runtime = opts.runtime.cloned().unwrap_or_default().with_accelerator(cfg.train.device);
    let mut oof: Vec<Option<(usize, Vec<f32>)>> = vec![None; full.len()];
    let mut rows = Vec::with_capacity(folds);
    for (k, held_out) in fold_sets.iter().enumerate() {
        let mut in_fold = vec![false; full.len()];
        for &i in held_out {
            in_fold[i] = true;
        }
        let train_idx: Vec<usize> = (0..full.len()).filter(|&i| !in_fold[i]).collect();
        let valid = full.subset(held_out);
        let prepared = Prepared { problem, labels: labels.clone(), train: full.subset(&train_idx), valid: Some(valid.clone()), test: test.clone() };
        let dir = cfg.output.join(format!("{}{k}", rundir::FOLD_PREFIX));
        let summary = member(cfg, &dir, Some(prepared), opts.resume, opts, obs)?;
        let predictor = Predictor::load(&ModelFolder::open(&dir.join(rundir::BEST))?, &runtime, None, None)?;
        let probs = predictor.predict_dataset(&valid, cfg.train.eval_batch_size, &mut |_, _| {})?;
        for (&i, p) in held_out.iter().zip(probs) {
            oof[i] = Some((k, p));
        }
        rows.push(RunRow { name: format!("{}{k}", rundir::FOLD_PREFIX), dir, valid: summary.best, test: summary.test });
    }
    let oof: Vec<(usize, Vec<f32>)> = oof
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.ok_or_else(|| Error::config("folds", format!("example {i} was in no fold"))))
        .collect::<Result<_>>()?;
    let oof_path = cfg.output.join(rundir::OOF);
    let separator = cfg.data.label_separator.clone().unwrap_or_else(|| infer::SET_SEPARATOR.to_string());
    let readout = Readout::of(problem, None, &separator);
    infer::write_file_atomically(&oof_path, |w| infer::write_oof(w, &oof_path, &full, &targets, labels.names(), &oof, &readout))?;
    // the out-of-fold headline: classification scores over the whole file (single-label runs; the other
    // problem types report each fold's scores)
    let oof_scores = targets.classes().map(|ids| {
        let pred: Vec<usize> = oof.iter().map(|(_, p)| argmax(p)).collect();
        Scores::from_confusion(&ConfusionMatrix::from_predictions(ids, &pred, labels.len()), labels.names())
    });
    let summary = rows_summary("cv", rows, oof_scores);
    write_multi(&cfg.output, &summary)?;
    Ok(summary)
}

/// `cv_summary.json`/`.md` or `seeds_summary.json`/`.md`.
fn write_multi(dir: &Path, summary: &MultiSummary) -> Result<()> {
    write_json(&dir.join(rundir::multi_summary_json(&summary.kind)), "summary", summary)?;
    let md = dir.join(rundir::multi_summary_md(&summary.kind));
    std::fs::write(&md, &summary.table).map_err(|e| Error::io("cannot write", &md, e))
}

/// Repeats a run (or a cross-validation with `folds`) for each seed into `cfg.output/seed-S/`.
pub fn repeat_seeds(cfg: &RunConfig, seeds: &[u64], folds: Option<usize>, opts: RunOptions<'_>, obs: &mut dyn Observer) -> Result<MultiSummary> {
    cfg.validate()?;
    if seeds.is_empty() {
        return Err(Error::config("seeds", "give at least one seed, e.g. 1,2,3"));
    }
    claim(&cfg.output, opts, rundir::SEED_PREFIX)?;
    write_json(&cfg.output.join(rundir::RUN_CONFIG), "run configuration", &recorded(cfg)?)?;
    write_json(&cfg.output.join(rundir::SEEDS), "seeds", &serde_json::json!({ "seeds": seeds, "folds": folds }))?;
    let mut rows = Vec::with_capacity(seeds.len());
    for &seed in seeds {
        let mut c = cfg.clone();
        c.train.seed = seed;
        let dir = cfg.output.join(format!("{}{seed}", rundir::SEED_PREFIX));
        c.output = dir.clone();
        let (valid, test) = match folds {
            Some(k) => {
                let o = RunOptions { resume: opts.resume && dir.exists(), overwrite: false, ..opts };
                std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
                let s = cross_validate(&c, k, o, obs)?;
                // A seed's headline is its out-of-fold score over the whole training file.
                let oof = s.oof.map(|sc| EvalRecord::new("valid", 0.0, 0, f64::NAN, 0.0, 0.0, sc.confusion.iter().flatten().sum::<u64>() as usize, sc));
                (oof, None)
            }
            None => {
                let s = member(&c, &dir, None, opts.resume, opts, obs)?;
                (s.best, s.test)
            }
        };
        rows.push(RunRow { name: format!("{}{seed}", rundir::SEED_PREFIX), dir, valid, test });
    }
    let summary = rows_summary("seeds", rows, None);
    write_multi(&cfg.output, &summary)?;
    Ok(summary)
}
