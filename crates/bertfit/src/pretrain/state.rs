//! What a pretraining run records and resumes from: the evaluation records of `metrics.jsonl`, and the
//! loop's state saved in every checkpoint.

use serde::{Deserialize, Serialize};

use crate::train::early_stopping::EarlyStopping;
use crate::train::schedule::Schedule;
use crate::train::state::StepRecord;

/// One evaluation: a line of `RUN_DIR/metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MlmRecord {
    /// `train` (the epoch's training batches, dropout on) or `valid`.
    pub split: String,
    /// Epoch position (1.0 = end of the first epoch).
    pub epoch: f64,
    /// Optimizer updates done.
    pub step: usize,
    /// Mean cross-entropy over the masked tokens.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
    /// Share of masked tokens predicted exactly (validation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
    /// Masked tokens scored.
    pub masked_tokens: usize,
    /// Learning rate at this point.
    pub learning_rate: f64,
    /// Seconds of training so far.
    pub elapsed_s: f64,
}

/// Everything the loop reads between steps besides weights and optimizer moments; saved in every
/// checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PretrainState {
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Micro-batches done in the current epoch.
    pub batches_done: usize,
    /// Optimizer updates done.
    pub step: usize,
    /// Micro-batches done since the start (keys dropout).
    pub micro_step: u64,
    /// Micro-batches whose gradients sit in the optimizer's accumulators.
    pub accumulated: usize,
    /// Learning-rate schedule and its state.
    pub schedule: Schedule,
    /// Early stopping on the validation loss.
    pub early_stopping: EarlyStopping,
    /// Every evaluation so far.
    pub history: Vec<MlmRecord>,
    /// The best validation evaluation so far.
    pub best: Option<MlmRecord>,
    /// Every optimizer update so far.
    pub steps: Vec<StepRecord>,
    /// Loss sum of the micro-batches since the last update.
    pub pending_loss: f64,
    /// This epoch's summed masked-token loss (each batch's mean times its masked tokens).
    pub running_loss: f64,
    /// This epoch's masked tokens.
    pub running_masked: usize,
    /// Real tokens trained on.
    pub tokens: usize,
    /// Seconds of training so far (summed over sessions).
    pub elapsed_s: f64,
    /// Why training ended, once it has.
    pub finished: Option<String>,
    /// sha256 of the training and validation sequences: a resumed run must see the same data.
    pub data_digest: String,
}
