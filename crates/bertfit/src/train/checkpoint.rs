//! Writing models and checkpoints into the run directory, atomically: everything goes into a temporary
//! sibling folder first, which is renamed over the old one only when complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::early_stopping::EarlyStopping;
use super::events::EvalRecord;
use super::optimizer::AdamW;
use super::schedule::Schedule;
use crate::error::{Error, Result};
use crate::model::Classifier;
use crate::tokenize::TextTokenizer;

/// Training progress saved next to the weights of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Epochs fully done.
    pub epochs_done: usize,
    /// Micro-batches done in the current (unfinished) epoch.
    pub batches_done: usize,
    /// Optimizer updates done.
    pub step: usize,
    /// Micro-batches done since the start (keys the dropout streams).
    pub micro_step: u64,
    /// Schedule with its state.
    pub schedule: Schedule,
    /// Early-stopping state.
    pub early_stopping: EarlyStopping,
    /// Every evaluation so far.
    pub history: Vec<EvalRecord>,
    /// Seconds of training so far.
    pub elapsed_s: f64,
}

/// Replaces `dest` with the folder `fill` writes, so a crash never leaves a half-written `dest`.
pub fn write_atomically(dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let parent = dest.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io("cannot remove stale temporary folder", &tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    fill(&tmp)?;
    let old: PathBuf = parent.join(format!(".{name}.old"));
    if dest.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io("cannot remove", &old, e))?;
        }
        std::fs::rename(dest, &old).map_err(|e| Error::io("cannot move aside", dest, e))?;
    }
    std::fs::rename(&tmp, dest).map_err(|e| Error::io("cannot rename into place", dest, e))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("cannot remove", &old, e))?;
    }
    Ok(())
}

/// Writes a Hugging Face model folder (config, weights, tokenizer) into `dir`.
pub fn write_model(model: &Classifier, tokenizer: &TextTokenizer, dir: &Path) -> Result<()> {
    model.save(dir, tokenizer.max_len())?;
    tokenizer.save(&dir.join("tokenizer.json"))
}

/// Writes a resumable checkpoint: the model folder plus `optimizer.safetensors` and `trainer_state.json`.
pub fn write_checkpoint(
    model: &Classifier,
    tokenizer: &TextTokenizer,
    optimizer: &AdamW,
    state: &TrainerState,
    dir: &Path,
) -> Result<()> {
    write_model(model, tokenizer, dir)?;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, data) in optimizer.state_vectors() {
        tensors.insert(name, Tensor::from_slice(data, data.len(), &Device::Cpu)?);
    }
    let opt_path = dir.join("optimizer.safetensors");
    candle_core::safetensors::save(&tensors, &opt_path).map_err(|e| match e {
        candle_core::Error::Io(io) => Error::io("cannot write", &opt_path, io),
        other => Error::Tensor(other),
    })?;
    let json = serde_json::to_string_pretty(&StateFile { optimizer_step: optimizer.step, state: state.clone() })
        .map_err(|e| Error::config("checkpoint", e.to_string()))?;
    let path = dir.join("trainer_state.json");
    std::fs::write(&path, json).map_err(|e| Error::io("cannot write", &path, e))
}

#[derive(Serialize, Deserialize)]
struct StateFile {
    optimizer_step: usize,
    #[serde(flatten)]
    state: TrainerState,
}
