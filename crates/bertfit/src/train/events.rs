//! What training reports while it runs: events for progress displays, and the evaluation records that
//! go to `metrics.jsonl`. The library never prints; the CLI renders these.

use serde::{Deserialize, Serialize};

use crate::metrics::{Measured, MultiLabelScores, RegressionScores, Scores};

/// One evaluation: one line of `RUN_DIR/metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRecord {
    /// Epoch position (fractional for mid-epoch evaluations; 1.0 = end of the first epoch).
    #[serde(with = "crate::metrics::nullable")]
    pub epoch: f64,
    /// Optimizer steps done.
    pub step: usize,
    /// `train`, `valid` or `test`.
    pub split: String,
    /// Mean cross-entropy.
    #[serde(with = "crate::metrics::nullable")]
    pub loss: f64,
    /// Accuracy.
    #[serde(with = "crate::metrics::nullable")]
    pub accuracy: f64,
    /// Macro F1.
    #[serde(with = "crate::metrics::nullable")]
    pub f1_macro: f64,
    /// Weighted F1.
    #[serde(with = "crate::metrics::nullable")]
    pub f1_weighted: f64,
    /// Macro precision.
    #[serde(with = "crate::metrics::nullable")]
    pub precision_macro: f64,
    /// Macro recall.
    #[serde(with = "crate::metrics::nullable")]
    pub recall_macro: f64,
    /// Matthews correlation coefficient.
    #[serde(with = "crate::metrics::nullable")]
    pub mcc: f64,
    /// Learning rate at this point.
    pub learning_rate: f64,
    /// Seconds since training started.
    pub elapsed_s: f64,
    /// Number of examples scored.
    pub examples: usize,
    /// Full scores: per class and confusion matrix (per label for multi-label; none for regression).
    pub scores: Scores,
    /// Multi-label scores (micro, samples, Hamming loss, LRAP…), for multi-label runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_label: Option<MultiLabelScores>,
    /// Regression scores, for regression runs (the classification fields are then `null`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regression: Option<RegressionScores>,
}

impl EvalRecord {
    /// Builds a record from scores (one argument per field of the `metrics.jsonl` line).
    #[allow(clippy::too_many_arguments)]
    pub fn new(split: &str, epoch: f64, step: usize, loss: f64, lr: f64, elapsed_s: f64, examples: usize, scores: Scores) -> Self {
        EvalRecord {
            epoch,
            step,
            split: split.to_string(),
            loss,
            accuracy: scores.accuracy,
            f1_macro: scores.f1_macro,
            f1_weighted: scores.f1_weighted,
            precision_macro: scores.precision_macro,
            recall_macro: scores.recall_macro,
            mcc: scores.mcc,
            learning_rate: lr,
            elapsed_s,
            examples,
            scores,
            multi_label: None,
            regression: None,
        }
    }

    /// A record of any problem type: the classification scores, plus the multi-label or regression
    /// scores when the evaluation has them.
    #[allow(clippy::too_many_arguments)]
    pub fn measured(
        split: &str,
        epoch: f64,
        step: usize,
        loss: f64,
        lr: f64,
        elapsed_s: f64,
        examples: usize,
        (scores, multi_label, regression): (Scores, Option<MultiLabelScores>, Option<RegressionScores>),
    ) -> Self {
        EvalRecord { multi_label, regression, ..EvalRecord::new(split, epoch, step, loss, lr, elapsed_s, examples, scores) }
    }

    /// What the record measured, to read a metric off.
    pub fn view(&self) -> Measured<'_> {
        Measured { loss: self.loss, scores: &self.scores, multi_label: self.multi_label.as_ref(), regression: self.regression.as_ref() }
    }
}

/// Progress and outcome events.
#[derive(Debug, Clone)]
pub enum Event<'a> {
    /// A note for the user (loaded weights, initialised head, split sizes…).
    Info(String),
    /// Something the user should look at (missing weights…).
    Warning(String),
    /// Training starts.
    Start {
        /// Epochs planned.
        epochs: usize,
        /// Optimizer steps planned.
        total_steps: usize,
        /// Micro-batches per epoch.
        batches_per_epoch: usize,
        /// Trainable scalars.
        trainable_params: usize,
    },
    /// An epoch starts (0-based).
    EpochStart {
        /// Epoch index.
        epoch: usize,
        /// Micro-batches in it.
        batches: usize,
        /// Micro-batches already done (after a resume).
        done: usize,
    },
    /// A micro-batch finished.
    Batch {
        /// Epoch index.
        epoch: usize,
        /// Micro-batches done in this epoch.
        done: usize,
        /// Micro-batches in this epoch.
        batches: usize,
        /// Optimizer steps done.
        step: usize,
        /// This micro-batch's loss.
        loss: f64,
        /// Current learning rate.
        lr: f64,
        /// Real tokens in the batch.
        tokens: usize,
    },
    /// Evaluation of a split starts.
    EvalStart {
        /// Split name.
        split: &'a str,
        /// Batches to run.
        batches: usize,
    },
    /// An evaluation batch finished.
    EvalBatch {
        /// Done.
        done: usize,
        /// Total.
        total: usize,
    },
    /// An evaluation finished.
    Evaluated(&'a EvalRecord),
    /// An epoch finished.
    EpochEnd {
        /// Epoch index.
        epoch: usize,
        /// Running training metrics of the epoch.
        train: &'a EvalRecord,
        /// Validation metrics.
        valid: Option<&'a EvalRecord>,
        /// Whether this is the best model so far.
        improved: bool,
        /// Seconds the epoch took.
        seconds: f64,
    },
    /// A model or checkpoint was written.
    Saved {
        /// `best`, `last`.
        what: &'a str,
        /// Where.
        path: &'a std::path::Path,
    },
    /// Training stopped before the planned end.
    Stopped(String),
}

/// Receives events.
pub trait Observer {
    /// Handles one event.
    fn on_event(&mut self, event: &Event<'_>);
}

/// Ignores every event.
pub struct Silent;

impl Observer for Silent {
    fn on_event(&mut self, _: &Event<'_>) {}
}
