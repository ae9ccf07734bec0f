//! Second stage of flag handling: merge `--config` TOML with flags, then resolve into the library's
//! validated [`RunConfig`].

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
use bertfit::model::kernels::Precision;
use bertfit::runtime::Accelerator;
use bertfit::model::{Activation, HeadConfig, Pooling};
use bertfit::train::schedule::ScheduleKind;
use bertfit::train::{ClassWeights, DataConfig, RunConfig, TrainConfig};
use bertfit::Error;

use crate::args::{ColumnArgs, TrainArgs};

/// Reads a TOML config file whose keys are train options (underscored flag names).
fn read_config_file(path: &Path) -> Result<TrainArgs> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read config", path, e))?;
    let parsed: TrainArgs = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start].lines().count().max(1) as u64);
        let mut at = bertfit::Location::file(path);
        at.line = line;
        Error::parse(at, "invalid config", e)
    })?;
    Ok(parsed)
}

/// Flags override the config file, field by field.
pub fn merge(flags: &TrainArgs) -> Result<TrainArgs> {
    let Some(path) = &flags.config else { return Ok(flags.clone()) };
    let file = read_config_file(path)?;
    let mut merged = serde_json::to_value(&file).context("config")?;
    let over = serde_json::to_value(flags).context("flags")?;
    if let (Some(m), serde_json::Value::Object(o)) = (merged.as_object_mut(), over) {
        m.extend(o);
    }
    let mut out: TrainArgs = serde_json::from_value(merged).context("merging config and flags")?;
    out.config = flags.config.clone();
    out.overwrite = flags.overwrite;
    out.quiet = flags.quiet;
    Ok(out)
}

fn parse_hidden(s: &str) -> Result<Vec<usize>, Error> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse::<usize>().map_err(|_| Error::config("head-hidden", format!("`{p}` is not a layer size (e.g. 256,32)"))))
        .collect()
}

fn required<T: Clone>(v: &Option<T>, name: &str) -> Result<T, Error> {
    v.clone().ok_or_else(|| Error::config(name, format!("--{name} is required (as a flag or in --config)")))
}

/// Resolves merged options into the library's run configuration (values validated). Options not given
/// come from `base` (a saved run when resuming) or from the defaults.
pub fn resolve(a: &TrainArgs, base: Option<&RunConfig>) -> Result<RunConfig, Error> {
    let d = base.map(|b| b.train.clone()).unwrap_or_default();
    let mut head: HeadConfig = d.head.clone();
    if let Some(h) = &a.head_hidden {
        head.hidden = parse_hidden(h)?;
    }
    head.dropout = a.head_dropout;
    if let Some(act) = &a.head_activation {
        head.activation = Activation::parse("head-activation", act)?;
    }
    if let Some(p) = &a.pooling {
        head.pooling = match p.as_str() {
            "cls" => Pooling::Cls,
            "mean" => Pooling::Mean,
            other => return Err(Error::config("pooling", format!("`{other}`: expected cls or mean"))),
        };
    }
    let device = match &a.device {
        Some(text) => Accelerator::parse(text).map_err(|e| Error::config("device", e))?,
        None => d.device,
    };
    // `auto` keeps families the GPU engine does not cover (ModernBERT, DeBERTa) on the CPU
    let device = match a.model.as_deref().or(base.map(|b| b.model.as_str())) {
        Some(model) => {
            let (device, note) = bertfit::engine::device::auto_for_model(device, model);
            if let Some(note) = note {
                eprintln!("note: {note}");
            }
            device
        }
        None => device,
    };
    bertfit::engine::device::check_device(device)?;
    let train = TrainConfig {
        epochs: a.epochs.unwrap_or(d.epochs),
        batch_size: a.batch_size.unwrap_or(d.batch_size),
        // a new run on a GPU evaluates in larger batches (small ones leave it idle)
        eval_batch_size: a.eval_batch_size.unwrap_or(if base.is_none() && device.resolve().is_cuda() { 256 } else { d.eval_batch_size }),
        lr: a.lr.unwrap_or(d.lr),
        max_len: a.max_len.unwrap_or(d.max_len),
        seed: a.seed.unwrap_or(d.seed),
        warmup_ratio: a.warmup_ratio.unwrap_or(d.warmup_ratio),
        weight_decay: a.weight_decay.unwrap_or(d.weight_decay),
        grad_accum: a.grad_accum.unwrap_or(d.grad_accum),
        max_grad_norm: a.max_grad_norm.unwrap_or(d.max_grad_norm),
        scheduler: a.scheduler.as_deref().map(ScheduleKind::parse).transpose()?.unwrap_or(d.scheduler),
        problem_type: a.problem_type.as_deref().map(str::parse).transpose()?.or(d.problem_type),
        loss: a.loss.as_deref().map(str::parse).transpose()?.unwrap_or(d.loss),
        long_text: a.long_text.as_deref().map(str::parse).transpose()?.unwrap_or(d.long_text),
        stride: a.stride.or(d.stride),
        chunk_pooling: a.chunk_pooling.as_deref().map(str::parse).transpose()?.unwrap_or(d.chunk_pooling),
        train_windows: a.train_windows.as_deref().map(str::parse).transpose()?.unwrap_or(d.train_windows),
        tune_thresholds: a.tune_thresholds.unwrap_or(d.tune_thresholds),
        early_stopping_metric: match &a.early_stopping_metric {
            Some(m) => bertfit::metrics::Metric::from_str(m).map_err(|e| Error::config("early-stopping-metric", e.to_string()))?,
            None => d.early_stopping_metric,
        },
        patience: a.patience.or(d.patience),
        min_delta: a.min_delta.unwrap_or(d.min_delta),
        class_weights: a.class_weights.as_deref().map(ClassWeights::parse).transpose()?.unwrap_or(d.class_weights.clone()),
        eval_every_steps: a.eval_every_steps.or(d.eval_every_steps),
        max_steps: a.max_steps.or(d.max_steps),
        head,
        freeze_encoder: a.freeze_encoder.unwrap_or(d.freeze_encoder),
        freeze_layers: a.freeze_layers.unwrap_or(d.freeze_layers),
        group_by_length: a.group_by_length.unwrap_or(d.group_by_length),
        save_every_steps: a.save_every_steps.or(d.save_every_steps),
        keep_checkpoints: a.keep_checkpoints.unwrap_or(d.keep_checkpoints),
        precision: match &a.precision {
            Some(p) => Precision::parse(p).map_err(|e| Error::config("precision", e))?,
            // a new run on a GPU computes in bf16 unless told otherwise (design: bf16 mixed precision)
            None if base.is_none() && device.resolve().is_cuda() => Precision::Bf16,
            None => d.precision,
        },
        engine: match &a.engine {
            Some(e) => bertfit::runtime::EnginePath::parse(e).map_err(|e| Error::config("engine", e))?,
            None => d.engine,
        },
        device,
        numerics: None,
    };
    let dd = base.map(|b| b.data.clone()).unwrap_or_default();
    let data = DataConfig {
        train: a.train.clone().or(base.map(|b| b.data.train.clone())).map_or_else(|| required(&None, "train"), Ok)?,
        valid: a.valid.clone().or(dd.valid),
        test: a.test.clone().or(dd.test),
        text_column: a.columns.text_column.clone().unwrap_or(dd.text_column),
        text_pair_column: a.columns.text_pair_column.clone().or(dd.text_pair_column),
        label_column: a.columns.label_column.clone().unwrap_or(dd.label_column),
        id_column: a.columns.id_column.clone().or(dd.id_column),
        label_separator: a.columns.label_separator.clone().or(dd.label_separator),
        label_columns: a.columns.label_columns.clone().or(dd.label_columns),
        valid_fraction: a.valid_fraction.unwrap_or(dd.valid_fraction),
        test_fraction: a.test_fraction.unwrap_or(dd.test_fraction),
    };
    let model = a.model.clone().or(base.map(|b| b.model.clone()));
    let output = a.output.clone().or(base.map(|b| b.output.clone()));
    if train.engine == bertfit::runtime::EnginePath::Graph && train.device.resolve().is_cuda() {
        return Err(Error::config(
            "engine",
            format!("--engine graph runs on the CPU only, and this run's device is {}: use --device cpu, or the engine (--engine auto)", train.device.resolve().name()),
        ));
    }
    let cfg = RunConfig { model: required(&model, "model")?, output: required(&output, "output")?, data, train };
    cfg.validate()?;
    Ok(cfg)
}

/// Options that may differ from the saved configuration when resuming.
const RESUMABLE: &[&str] = &["epochs", "max_steps", "save_every_steps", "keep_checkpoints", "eval_batch_size", "engine", "device", "numerics"];

/// Reads `RUN_DIR/run_config.json` and applies the flags given with `--resume`, refusing any that would
/// change the meaning of the run.
pub fn resolve_resume(run_dir: &Path, flags: &TrainArgs) -> Result<RunConfig, Error> {
    let path = run_dir.join("run_config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read the run to resume", &path, e))?;
    let saved: RunConfig = serde_json::from_str(&text)
        .map_err(|e| Error::parse(bertfit::Location::file(&path).line(e.line() as u64), "not a bertfit run configuration", e))?;
    let mut new = resolve(flags, Some(&saved))?;
    if new.output != saved.output {
        // The run directory may have moved: it is where the checkpoints are.
        new.output = run_dir.to_path_buf();
    }
    let (old_v, new_v) = (serde_json::to_value(&saved), serde_json::to_value(&new));
    let (Ok(old_v), Ok(new_v)) = (old_v, new_v) else { return Err(Error::config("resume", "cannot compare configurations")) };
    let mut changed = Vec::new();
    for (section, keys) in [("train", &new_v["train"]), ("data", &new_v["data"])] {
        if let Some(obj) = keys.as_object() {
            for (k, v) in obj {
                let allowed = section == "train" && RESUMABLE.contains(&k.as_str());
                if !allowed && old_v[section][k] != *v {
                    changed.push(format!("--{} (saved {}, given {})", k.replace('_', "-"), old_v[section][k], v));
                }
            }
        }
    }
    if old_v["model"] != new_v["model"] {
        changed.push(format!("--model (saved {}, given {})", old_v["model"], new_v["model"]));
    }
    if !changed.is_empty() {
        return Err(Error::config(
            "resume",
            format!(
                "these flags would change the run being resumed: {}. Only --epochs, --max-steps, --save-every-steps, --keep-checkpoints, --eval-batch-size, --engine and --device may change",
                changed.join("; ")
            ),
        ));
    }
    // saved configs record the resolved path; every family today is one the engine covers, so `auto`
    // compares as `fused`
    if new.train.engine.resolve(true) != saved.train.engine.resolve(true) {
        eprintln!(
            "warning: resuming a run trained with --engine {} on --engine {}: it continues from the checkpoint, but not bit-identically to an uninterrupted run",
            saved.train.engine.name(),
            new.train.engine.name()
        );
    }
    // saved configs record the device that ran (never auto), and on a GPU what its numerics depend on
    let (was, now) = (saved.train.device.resolve(), new.train.device.resolve());
    // between GPUs what matters is the fingerprint (the same model on another index repeats the bits)
    if was != now && !(was.is_cuda() && now.is_cuda()) {
        eprintln!(
            "warning: resuming a run trained on --device {} on --device {}: it continues from the checkpoint, but not bit-identically to an uninterrupted run",
            saved.train.device.name(),
            new.train.device.resolve().name()
        );
    } else if let Some(trained_on) = &saved.train.numerics {
        let resumes_on = bertfit::engine::device::numerics(new.train.device)?;
        if resumes_on.as_deref() != Some(trained_on.as_str()) {
            eprintln!(
                "warning: this run was trained on {trained_on}, and resumes on {}: it continues from the checkpoint, but not bit-identically to an uninterrupted run",
                resumes_on.as_deref().unwrap_or("another device")
            );
        }
    }
    new.output = run_dir.to_path_buf();
    Ok(new)
}

/// Seeds and folds of a multi-run (`--seeds`, `cv`), or `None` for a single run. On resume they come
/// from the run directory (`seeds.json`, `cv.json`); changing them is refused.
pub fn multi_run(run_dir: &Path, resume: bool, seeds: Option<&str>, folds: Option<Option<usize>>) -> Result<Option<(Option<Vec<u64>>, Option<usize>)>, Error> {
    let parse_seeds = |s: &str| -> Result<Vec<u64>, Error> {
        s.split(',')
            .filter(|p| !p.trim().is_empty())
            .map(|p| p.trim().parse::<u64>().map_err(|_| Error::config("seeds", format!("`{p}` is not a seed (e.g. 1,2,3)"))))
            .collect()
    };
    let mut seeds = seeds.map(parse_seeds).transpose()?;
    let is_cv = folds.is_some();
    let given_folds = folds.flatten();
    let mut folds = if resume { given_folds } else { is_cv.then(|| given_folds.unwrap_or(5)) };
    if resume {
        let read = |name: &str| -> Option<serde_json::Value> { serde_json::from_str(&std::fs::read_to_string(run_dir.join(name)).ok()?).ok() };
        if let Some(v) = read(bertfit::rundir::SEEDS) {
            let saved: Option<Vec<u64>> = serde_json::from_value(v["seeds"].clone()).ok();
            if seeds.is_some() && seeds != saved {
                return Err(Error::config("seeds", "cannot change --seeds when resuming"));
            }
            seeds = saved;
            let saved_folds: Option<usize> = serde_json::from_value(v["folds"].clone()).ok().flatten();
            if folds.is_some() && folds != saved_folds {
                return Err(Error::config("folds", "cannot change --folds when resuming"));
            }
            folds = saved_folds;
        } else if let Some(v) = read(bertfit::rundir::CV) {
            let saved = v["folds"].as_u64().map(|k| k as usize);
            if folds.is_some() && folds != saved {
                return Err(Error::config("folds", "cannot change --folds when resuming"));
            }
            folds = saved;
        }
    }
    if is_cv && folds.is_none() {
        folds = Some(5);
    }
    if let Some(k) = folds {
        if k < 2 {
            return Err(Error::config("folds", "cross-validation needs at least 2 folds"));
        }
    }
    Ok(if seeds.is_some() || folds.is_some() { Some((seeds, folds)) } else { None })
}

/// How eval/predict score long texts: the flags over each model's saved setting. `None`: keep the
/// models' own; `Some(None)`: truncate; `Some(Some(c))`: windows.
pub fn chunking(w: &crate::args::WindowArgs, max_len: usize) -> Result<Option<Option<bertfit::windows::Chunking>>> {
    use bertfit::train::LongText;
    let long_text: Option<LongText> = w.long_text.as_deref().map(str::parse).transpose()?;
    let pooling: Option<bertfit::windows::Pooling> = w.chunk_pooling.as_deref().map(str::parse).transpose()?;
    Ok(match long_text {
        Some(LongText::Truncate) => Some(None),
        Some(LongText::Chunk) => Some(Some(bertfit::windows::Chunking { stride: w.stride.unwrap_or(max_len / 4).max(1), pooling: pooling.unwrap_or_default() })),
        None if w.stride.is_some() || pooling.is_some() => {
            return Err(Error::config("long-text", "--stride and --chunk-pooling apply with --long-text chunk").into())
        }
        None => None,
    })
}

/// Column mapping for eval/predict.
pub fn columns(c: &ColumnArgs, with_label: bool) -> bertfit::data::Columns {
    bertfit::data::Columns {
        text: c.text_column.clone().unwrap_or_else(|| "text".into()),
        text_pair: c.text_pair_column.clone(),
        label: with_label.then(|| c.label_column.clone().unwrap_or_else(|| "label".into())),
        id: c.id_column.clone(),
        label_separator: c.label_separator.clone(),
        label_columns: c.label_columns.clone(),
    }
}
