//! Training: configuration, the loop, AdamW, schedules, early stopping, checkpoints and progress events.

pub mod checkpoint;
pub mod config;
pub mod cv;
pub mod early_stopping;
pub mod epoch_table;
pub mod events;
pub mod job;
pub mod loss;
pub mod optimizer;
pub(crate) mod plan;
pub mod runner;
pub mod schedule;
pub mod state;
pub mod trainer;

pub use config::{ClassWeights, DataConfig, LongText, RegressionLoss, RunConfig, TrainConfig, TrainWindows};
pub use epoch_table::epoch_table;
pub use events::{EvalRecord, Event, Observer, Silent};
pub use job::{run, RunOptions, RunSummary};
pub use trainer::{evaluate, Split, Trainer};
