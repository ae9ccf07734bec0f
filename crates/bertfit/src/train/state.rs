//! Everything the rest of a training run depends on besides weights and optimizer moments: position in
//! the data, schedule and early-stopping state, running metrics and history. Saved in every checkpoint.

use serde::{Deserialize, Serialize};

use super::early_stopping::EarlyStopping;
use super::events::EvalRecord;
use super::schedule::Schedule;

/// Training metrics accumulated over the batches of the current epoch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Running {
    /// Gold class ids seen so far this epoch.
    pub gold: Vec<usize>,
    /// Predicted class ids (argmax of the training forward pass).
    pub pred: Vec<usize>,
    /// Sum of micro-batch losses.
    pub loss_sum: f64,
    /// Micro-batches.
    pub batches: usize,
    /// Examples seen (absent in checkpoints written before it was recorded: counted from `gold`).
    #[serde(default)]
    pub examples: usize,
}

/// One optimizer update, a line of `steps.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    /// Update number (1-based).
    pub step: usize,
    /// Epoch position.
    pub epoch: f64,
    /// Mean loss of the update's micro-batches.
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// The loop's position and memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Current epoch (0-based); equals the number of epochs finished.
    pub epoch: usize,
    /// Micro-batches done in the current epoch.
    pub batches_done: usize,
    /// Optimizer updates done.
    pub step: usize,
    /// Micro-batches done since the start (keys the dropout streams).
    pub micro_step: u64,
    /// Micro-batches whose gradients sit in the optimizer's accumulators.
    pub accumulated: usize,
    /// Learning-rate schedule and its state.
    pub schedule: Schedule,
    /// Early-stopping state.
    pub early_stopping: EarlyStopping,
    /// Every evaluation so far (the content of metrics.jsonl).
    pub history: Vec<EvalRecord>,
    /// The best evaluation so far.
    pub best: Option<EvalRecord>,
    /// This epoch's running training metrics.
    pub running: Running,
    /// Real tokens trained on.
    pub tokens: usize,
    /// Seconds of training so far (wall clock, summed over sessions).
    pub elapsed_s: f64,
    /// Why training ended, once it has.
    pub finished: Option<String>,
    /// Every optimizer update so far (the content of steps.jsonl).
    pub steps: Vec<StepRecord>,
    /// Loss sum of the micro-batches since the last update.
    pub pending_loss: f64,
}

impl TrainerState {
    /// The state before the first step.
    pub fn new(schedule: Schedule, early_stopping: EarlyStopping) -> Self {
        TrainerState {
            epoch: 0,
            batches_done: 0,
            step: 0,
            micro_step: 0,
            accumulated: 0,
            schedule,
            early_stopping,
            history: Vec::new(),
            best: None,
            running: Running::default(),
            tokens: 0,
            elapsed_s: 0.0,
            finished: None,
            steps: Vec::new(),
            pending_loss: 0.0,
        }
    }
}
