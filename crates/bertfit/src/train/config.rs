//! Training configuration: plain serde data with transformers-style names, defaults and `validate()`.
//! The resolved configuration is saved in the run directory.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::schedule::ScheduleKind;
use crate::error::{Error, Result};
use crate::data::ProblemType;
pub use crate::objective::RegressionLoss;
use crate::windows::{Chunking, Pooling};
use crate::metrics::Metric;
use crate::model::kernels::Precision;
use crate::runtime::{Accelerator, EnginePath};
use crate::model::HeadConfig;

/// Per-class loss weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeights {
    /// All classes weigh 1.
    #[default]
    None,
    /// n / (k · count): rare classes weigh more.
    Balanced,
    /// One weight per class, by label name.
    Explicit(Vec<(String, f64)>),
}

impl ClassWeights {
    /// Parses `none`, `balanced`, or `LABEL=W,LABEL=W,...`.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim() {
            "" | "none" => Ok(ClassWeights::None),
            "balanced" => Ok(ClassWeights::Balanced),
            list => {
                let mut out = Vec::new();
                for part in list.split(',') {
                    let (label, w) = part.rsplit_once('=').ok_or_else(|| {
                        Error::config("class-weights", format!("`{part}`: expected LABEL=WEIGHT, `balanced` or `none`"))
                    })?;
                    let w: f64 = w
                        .trim()
                        .parse()
                        .ok()
                        .filter(|w: &f64| w.is_finite() && *w > 0.0)
                        .ok_or_else(|| Error::config("class-weights", format!("`{w}` is not a positive number")))?;
                    out.push((label.trim().to_string(), w));
                }
                Ok(ClassWeights::Explicit(out))
            }
        }
    }
}

/// What happens to texts longer than the model's length.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongText {
    /// Keep the first `max_len` tokens.
    #[default]
    Truncate,
    /// Split into overlapping windows and pool their scores.
    Chunk,
}

impl std::str::FromStr for LongText {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "truncate" => Ok(LongText::Truncate),
            "chunk" => Ok(LongText::Chunk),
            other => Err(Error::config("long-text", format!("`{other}`: expected truncate or chunk"))),
        }
    }
}

/// Which windows of a long text train, under `--long-text chunk`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainWindows {
    /// The first window only (the truncated text).
    #[default]
    First,
    /// Every window, each with the document's target.
    All,
}

impl std::str::FromStr for TrainWindows {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "first" => Ok(TrainWindows::First),
            "all" => Ok(TrainWindows::All),
            other => Err(Error::config("train-windows", format!("`{other}`: expected first or all"))),
        }
    }
}

/// Every training hyperparameter. Defaults follow transformers' `TrainingArguments` where it has one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Examples per evaluation batch.
    pub eval_batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Truncation length in tokens (special tokens included).
    pub max_len: usize,
    /// Seed of every random stream (splits, order, dropout, new weights).
    pub seed: u64,
    /// Share of optimizer steps spent warming up.
    pub warmup_ratio: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// Global gradient-norm clip (0 disables).
    pub max_grad_norm: f64,
    /// Learning-rate schedule after warmup.
    pub scheduler: ScheduleKind,
    /// What the model predicts: one class, a label set, or a number. `None`: multi-label when the data
    /// gives label lists (or separated labels, or label columns), else single-label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<ProblemType>,
    /// Regression loss.
    pub loss: RegressionLoss,
    /// Multi-label: after training, pick each label's threshold on the validation split (maximising
    /// its F1) and save them with the model (else 0.5).
    pub tune_thresholds: bool,
    /// Texts longer than `max_len`: `truncate` (keep the start) or `chunk` (overlapping windows, every one
    /// scored, the document's scores pooled) for evaluation and prediction.
    pub long_text: LongText,
    /// Chunking: tokens shared by consecutive windows (`None`: a quarter of `max_len`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
    /// Chunking: how window scores pool into the document's.
    pub chunk_pooling: Pooling,
    /// Chunking: train on every window of a long text with its document's target (`all`), or on the
    /// first window only (`first`, as truncation does).
    pub train_windows: TrainWindows,
    /// Metric for early stopping and best-model selection (for regression the default `f1_macro`
    /// becomes `mse`).
    pub early_stopping_metric: Metric,
    /// Evaluations without improvement before stopping (`None`: never stop early).
    pub patience: Option<usize>,
    /// Smallest change that counts as improvement.
    pub min_delta: f64,
    /// Loss weights per class.
    pub class_weights: ClassWeights,
    /// Also evaluate every N optimizer steps.
    pub eval_every_steps: Option<usize>,
    /// Stop after this many optimizer steps (overrides epochs).
    pub max_steps: Option<usize>,
    /// Classification head.
    pub head: HeadConfig,
    /// Freeze the whole encoder.
    pub freeze_encoder: bool,
    /// Freeze embeddings and the first N layers.
    pub freeze_layers: usize,
    /// Group batches by length (less padding; still shuffled every epoch).
    pub group_by_length: bool,
    /// Also write a checkpoint every N optimizer steps (epoch ends always get one).
    pub save_every_steps: Option<usize>,
    /// Checkpoints kept in `checkpoints/` (the newest ones; `best/` is kept apart).
    pub keep_checkpoints: usize,
    /// Matmul precision of the dense layers: f32, or bf16 operands with f32 accumulation and f32
    /// master weights.
    pub precision: Precision,
    /// Which implementation trains: the engine (packed tokens, explicit backward) where it covers the
    /// model (`auto`), or explicitly the candle graph or the engine. A saved run configuration without
    /// it was trained on the graph (before the engine existed), so it reads as `graph`.
    #[serde(default = "graph_path")]
    pub engine: EnginePath,
    /// Where the engine computes: auto (a CUDA GPU when the binary has CUDA support and one is present),
    /// cpu, or cuda:N. A saved run configuration without it was trained on the CPU.
    #[serde(default = "cpu_device")]
    pub device: Accelerator,
    /// What the run's numerics depend on beyond the bertfit build, as recorded when it ran on a GPU (GPU
    /// model, multiprocessors, driver, cuBLASLt): a resume elsewhere warns that it is not bit-identical.
    /// Written by the run, never read from flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerics: Option<String>,
}

fn cpu_device() -> Accelerator {
    Accelerator::Cpu
}

fn graph_path() -> EnginePath {
    EnginePath::Graph
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 3,
            batch_size: 32,
            eval_batch_size: 64,
            lr: 5e-5,
            max_len: 128,
            seed: 42,
            warmup_ratio: 0.1,
            weight_decay: 0.01,
            grad_accum: 1,
            max_grad_norm: 1.0,
            scheduler: ScheduleKind::Linear,
            problem_type: None,
            loss: RegressionLoss::Mse,
            tune_thresholds: false,
            long_text: LongText::Truncate,
            stride: None,
            chunk_pooling: Pooling::Mean,
            train_windows: TrainWindows::First,
            early_stopping_metric: Metric::F1Macro,
            patience: None,
            min_delta: 0.0,
            class_weights: ClassWeights::None,
            eval_every_steps: None,
            max_steps: None,
            head: HeadConfig::default(),
            freeze_encoder: false,
            freeze_layers: 0,
            group_by_length: true,
            save_every_steps: None,
            keep_checkpoints: 2,
            precision: Precision::F32,
            engine: EnginePath::Auto,
            device: Accelerator::Auto,
            numerics: None,
        }
    }
}

impl TrainConfig {
    /// The chunking of long texts, when `long_text` is `chunk`.
    pub fn chunking(&self) -> Option<Chunking> {
        (self.long_text == LongText::Chunk).then(|| Chunking { stride: self.stride.unwrap_or(self.max_len / 4).max(1), pooling: self.chunk_pooling })
    }

    /// Checks every value, naming the option at fault.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: usize| if v == 0 { Err(Error::config(name, "must be at least 1")) } else { Ok(()) };
        positive("epochs", self.epochs)?;
        positive("batch-size", self.batch_size)?;
        positive("eval-batch-size", self.eval_batch_size)?;
        positive("grad-accum", self.grad_accum)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config("lr", format!("{} is not a positive learning rate", self.lr)));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return Err(Error::config("warmup-ratio", format!("{} is not in [0, 1)", self.warmup_ratio)));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::config("weight-decay", "must be ≥ 0"));
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return Err(Error::config("max-grad-norm", "must be ≥ 0 (0 disables clipping)"));
        }
        if self.max_len < 4 {
            return Err(Error::config("max-len", "must be at least 4"));
        }
        if let ScheduleKind::Plateau { factor, .. } = self.scheduler {
            if !(factor > 0.0 && factor < 1.0) {
                return Err(Error::config("scheduler", "plateau factor must be in (0, 1)"));
            }
        }
        if self.patience == Some(0) {
            return Err(Error::config("patience", "must be at least 1 (leave it out to never stop early)"));
        }
        for (name, v) in [("max-steps", self.max_steps), ("eval-every-steps", self.eval_every_steps), ("save-every-steps", self.save_every_steps)] {
            if v == Some(0) {
                return Err(Error::config(name, "must be at least 1"));
            }
        }
        if let Some(c) = self.chunking() {
            if c.stride == 0 || 2 * c.stride >= self.max_len {
                return Err(Error::config("stride", format!("{} tokens of overlap: give 1 to less than half of --max-len {}", c.stride, self.max_len)));
            }
        } else if self.train_windows == TrainWindows::All {
            return Err(Error::config("train-windows", "training on every window needs --long-text chunk"));
        }
        if self.keep_checkpoints == 0 {
            return Err(Error::config("keep-checkpoints", "must be at least 1"));
        }
        self.head.validate()
    }
}

/// Where the data comes from and which columns hold what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataConfig {
    /// Training file.
    pub train: PathBuf,
    /// Validation file (else split off `train`).
    pub valid: Option<PathBuf>,
    /// Test file (else split off `train` when `test_fraction` > 0).
    pub test: Option<PathBuf>,
    /// Text column.
    pub text_column: String,
    /// Second-segment column for sentence pairs.
    pub text_pair_column: Option<String>,
    /// Label column.
    pub label_column: String,
    /// Id column (`id` when the file has one).
    pub id_column: Option<String>,
    /// Multi-label: the label cell lists labels separated by this string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_separator: Option<String>,
    /// Multi-label: one 0/1 column per label (replaces the label column).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_columns: Option<Vec<String>>,
    /// Validation share split off the training file when no `valid` file is given (0 disables).
    pub valid_fraction: f64,
    /// Test share split off the training file when no `test` file is given.
    pub test_fraction: f64,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            train: PathBuf::new(),
            valid: None,
            test: None,
            text_column: "text".into(),
            text_pair_column: None,
            label_column: "label".into(),
            id_column: None,
            label_separator: None,
            label_columns: None,
            valid_fraction: 0.1,
            test_fraction: 0.0,
        }
    }
}

impl DataConfig {
    /// Checks the fractions.
    pub fn validate(&self) -> Result<()> {
        for (name, f) in [("valid-fraction", self.valid_fraction), ("test-fraction", self.test_fraction)] {
            if !(0.0..1.0).contains(&f) {
                return Err(Error::config(name, format!("{f} is not in [0, 1)")));
            }
        }
        if self.valid_fraction + self.test_fraction >= 0.9 {
            return Err(Error::config("valid-fraction", "validation and test fractions leave too little to train on"));
        }
        if self.train.as_os_str().is_empty() {
            return Err(Error::config("train", "a training file is required"));
        }
        if self.label_separator.as_deref().is_some_and(str::is_empty) {
            return Err(Error::config("label-separator", "must not be empty"));
        }
        if let Some(columns) = &self.label_columns {
            if columns.is_empty() || columns.iter().any(|c| c.trim().is_empty()) {
                return Err(Error::config("label-columns", "give the label columns' names, e.g. toxic,insult,threat"));
            }
            if self.label_separator.is_some() {
                return Err(Error::config("label-columns", "label columns and --label-separator are two ways to give label sets: use one"));
            }
        }
        Ok(())
    }

    /// The column mapping for the data layer.
    pub fn columns(&self) -> crate::data::Columns {
        crate::data::Columns {
            text: self.text_column.clone(),
            text_pair: self.text_pair_column.clone(),
            label: Some(self.label_column.clone()),
            id: self.id_column.clone(),
            label_separator: self.label_separator.clone(),
            label_columns: self.label_columns.clone(),
        }
    }
}

/// A whole training run as saved in `RUN_DIR/run_config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Model folder or hub id.
    pub model: String,
    /// Run directory.
    pub output: PathBuf,
    /// Data.
    pub data: DataConfig,
    /// Hyperparameters.
    pub train: TrainConfig,
}

impl RunConfig {
    /// Validates all parts.
    pub fn validate(&self) -> Result<()> {
        if self.model.is_empty() {
            return Err(Error::config("model", "a model folder or hub id is required"));
        }
        self.data.validate()?;
        self.train.validate()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_round_trip() {
        let c = TrainConfig::default();
        c.validate().expect("defaults are valid");
        let back: TrainConfig = toml::from_str(&toml::to_string(&c).expect("ser")).expect("de");
        assert_eq!(back, c);
    }

    #[test]
    fn bad_values_name_the_option() {
        let c = TrainConfig { warmup_ratio: 1.5, ..Default::default() };
        assert!(c.validate().expect_err("bad").to_string().contains("warmup-ratio"));
        let c = TrainConfig { batch_size: 0, ..Default::default() };
        assert!(c.validate().expect_err("bad").to_string().contains("batch-size"));
    }

    #[test]
    fn class_weights_parse() {
        assert_eq!(ClassWeights::parse("balanced").expect("ok"), ClassWeights::Balanced);
        assert_eq!(
            ClassWeights::parse("spam=3, ham=1").expect("ok"),
            ClassWeights::Explicit(vec![("spam".into(), 3.0), ("ham".into(), 1.0)])
        );
        assert!(ClassWeights::parse("spam=-1").is_err());
        assert!(ClassWeights::parse("spam").is_err());
    }
}
