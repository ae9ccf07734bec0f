//! Classification metrics on plain class ids: the confusion matrix, the scores derived from it, the
//! metric used to pick the best checkpoint, and text renderings of them.
//!
//! Nothing here knows about tensors or models: callers pass gold and predicted class ids.

pub mod aggregate;
mod confusion;
mod metric;
mod report;
mod scores;

pub use confusion::ConfusionMatrix;
pub use metric::Metric;
pub use report::{classification_report, confusion_table};
pub use scores::{ClassScores, Scores};
