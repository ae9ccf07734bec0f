//! Pretraining configuration: plain serde data with run_mlm-style names and defaults, validated, saved
//! in the run directory (`run_config.json`) and read back by `--resume`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::corpus::{DocumentSeparator, Packing};
use crate::error::{Error, Result};
use crate::model::kernels::Precision;
use crate::train::schedule::ScheduleKind;

/// Everything a pretraining run needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainConfig {
    /// Unlabeled text files (`.txt`, `.csv`, `.tsv`, `.jsonl`).
    pub data: Vec<PathBuf>,
    /// Held-out text; without it, `valid_fraction` of the documents.
    pub valid: Option<PathBuf>,
    /// Column or key of the text in data files.
    pub text_column: String,
    /// How `.txt` files divide into documents.
    pub document_separator: DocumentSeparator,
    /// Model folder or hub id to start from.
    pub model: String,
    /// Run directory.
    pub output: PathBuf,
    /// Sequence length in tokens.
    pub max_len: usize,
    /// Share of tokens selected for prediction.
    pub mlm_probability: f64,
    /// Select whole words.
    pub whole_word_mask: bool,
    /// Group texts into full-length sequences, or one sequence per document.
    pub packing: Packing,
    /// Share of documents held out when `valid` is absent (0: no validation).
    pub valid_fraction: f64,
    /// Epochs.
    pub epochs: usize,
    /// Stop after this many optimizer updates.
    pub max_steps: Option<usize>,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Sequences per evaluation batch.
    pub eval_batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// The first N optimizer updates train the masked-LM head only (the encoder and the word embeddings
    /// stay as loaded): for checkpoints without a head, so a random head does not train the encoder.
    #[serde(default)]
    pub head_warmup_steps: usize,
    /// Share of updates spent on linear warmup.
    pub warmup_ratio: f64,
    /// AdamW decoupled weight decay.
    pub weight_decay: f64,
    /// Micro-batches per update.
    pub grad_accum: usize,
    /// Global gradient-norm clip (0: none).
    pub max_grad_norm: f64,
    /// Learning-rate schedule after warmup.
    pub scheduler: ScheduleKind,
    /// Seed of the split, data order, masks, dropout and new weights.
    pub seed: u64,
    /// Stop after this many evaluations without a lower validation loss.
    pub patience: Option<usize>,
    /// Smallest decrease of the validation loss that counts.
    pub min_delta: f64,
    /// Also evaluate every N updates.
    pub eval_every_steps: Option<usize>,
    /// Also checkpoint every N updates.
    pub save_every_steps: Option<usize>,
    /// Checkpoints kept.
    pub keep_checkpoints: usize,
    /// Matmul precision.
    pub precision: Precision,
}

impl PretrainConfig {
    /// The defaults for `data`, `model` and `output` (run_mlm's where it has one).
    pub fn new(data: Vec<PathBuf>, model: String, output: PathBuf) -> Self {
        PretrainConfig {
            data,
            valid: None,
            text_column: "text".into(),
            document_separator: DocumentSeparator::Line,
            model,
            output,
            max_len: 128,
            mlm_probability: 0.15,
            whole_word_mask: false,
            packing: Packing::GroupTexts,
            valid_fraction: 0.05,
            epochs: 3,
            max_steps: None,
            batch_size: 32,
            eval_batch_size: 64,
            lr: 5e-5,
            head_warmup_steps: 0,
            warmup_ratio: 0.06,
            weight_decay: 0.01,
            grad_accum: 1,
            max_grad_norm: 1.0,
            scheduler: ScheduleKind::Linear,
            seed: 42,
            patience: None,
            min_delta: 0.0,
            eval_every_steps: None,
            save_every_steps: None,
            keep_checkpoints: 2,
            precision: Precision::F32,
        }
    }

    /// Checks values the flag parser cannot (combinations, ranges of config-file values).
    pub fn validate(&self) -> Result<()> {
        if self.data.is_empty() {
            return Err(Error::config("data", "no data file given"));
        }
        if !(self.mlm_probability > 0.0 && self.mlm_probability < 1.0) {
            return Err(Error::config("mlm-probability", format!("{} is not between 0 and 1 (exclusive)", self.mlm_probability)));
        }
        if !(0.0..1.0).contains(&self.valid_fraction) {
            return Err(Error::config("valid-fraction", format!("{} is not in [0, 1)", self.valid_fraction)));
        }
        if self.max_len < 4 {
            return Err(Error::config("max-len", format!("{} is too short (at least 4)", self.max_len)));
        }
        for (field, v) in [("epochs", self.epochs), ("batch-size", self.batch_size), ("eval-batch-size", self.eval_batch_size), ("grad-accum", self.grad_accum), ("keep-checkpoints", self.keep_checkpoints)] {
            if v == 0 {
                return Err(Error::config(field, "must be at least 1"));
            }
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::config("lr", format!("{} is not a positive number", self.lr)));
        }
        Ok(())
    }
}
