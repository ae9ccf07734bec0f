//! Second stage of flag handling: merge `--config` TOML with flags, then resolve into the library's
//! validated [`RunConfig`].

use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
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

/// Resolves merged options into the library's run configuration (defaults filled, values validated).
pub fn resolve(a: &TrainArgs) -> Result<RunConfig, Error> {
    let d = TrainConfig::default();
    let mut head = HeadConfig::default();
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
    let train = TrainConfig {
        epochs: a.epochs.unwrap_or(d.epochs),
        batch_size: a.batch_size.unwrap_or(d.batch_size),
        eval_batch_size: a.eval_batch_size.unwrap_or(d.eval_batch_size),
        lr: a.lr.unwrap_or(d.lr),
        max_len: a.max_len.unwrap_or(d.max_len),
        seed: a.seed.unwrap_or(d.seed),
        warmup_ratio: a.warmup_ratio.unwrap_or(d.warmup_ratio),
        weight_decay: a.weight_decay.unwrap_or(d.weight_decay),
        grad_accum: a.grad_accum.unwrap_or(d.grad_accum),
        max_grad_norm: a.max_grad_norm.unwrap_or(d.max_grad_norm),
        scheduler: a.scheduler.as_deref().map(ScheduleKind::parse).transpose()?.unwrap_or(d.scheduler),
        early_stopping_metric: match &a.early_stopping_metric {
            Some(m) => bertfit::metrics::Metric::from_str(m).map_err(|e| Error::config("early-stopping-metric", e.to_string()))?,
            None => d.early_stopping_metric,
        },
        patience: a.patience,
        min_delta: a.min_delta.unwrap_or(d.min_delta),
        class_weights: a.class_weights.as_deref().map(ClassWeights::parse).transpose()?.unwrap_or(ClassWeights::None),
        eval_every_steps: a.eval_every_steps,
        max_steps: a.max_steps,
        head,
        freeze_encoder: a.freeze_encoder.unwrap_or(false),
        freeze_layers: a.freeze_layers.unwrap_or(0),
        group_by_length: a.group_by_length.unwrap_or(d.group_by_length),
    };
    let dd = DataConfig::default();
    let data = DataConfig {
        train: required(&a.train, "train")?,
        valid: a.valid.clone(),
        test: a.test.clone(),
        text_column: a.columns.text_column.clone().unwrap_or(dd.text_column),
        text_pair_column: a.columns.text_pair_column.clone(),
        label_column: a.columns.label_column.clone().unwrap_or(dd.label_column),
        id_column: a.columns.id_column.clone(),
        valid_fraction: a.valid_fraction.unwrap_or(dd.valid_fraction),
        test_fraction: a.test_fraction.unwrap_or(dd.test_fraction),
    };
    let cfg = RunConfig { model: required(&a.model, "model")?, output: required(&a.output, "output")?, data, train };
    cfg.validate()?;
    Ok(cfg)
}

/// Column mapping for eval/predict.
pub fn columns(c: &ColumnArgs, with_label: bool) -> bertfit::data::Columns {
    bertfit::data::Columns {
        text: c.text_column.clone().unwrap_or_else(|| "text".into()),
        text_pair: c.text_pair_column.clone(),
        label: with_label.then(|| c.label_column.clone().unwrap_or_else(|| "label".into())),
        id: c.id_column.clone(),
    }
}
