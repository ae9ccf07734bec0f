//! Classification metrics on plain class ids: the confusion matrix, the scores derived from it, the
//! metric used to pick the best checkpoint, and text renderings of them; multi-label and regression
//! metrics on plain label sets and numbers.
//!
//! Nothing here knows about tensors or models: callers pass gold and predicted class ids.

pub mod aggregate;
mod confusion;
mod metric;
pub mod multilabel;
pub mod nullable;
pub mod regression;
mod report;
mod scores;

pub use confusion::ConfusionMatrix;
pub use metric::{Measured, Metric};
pub use report::{classification_report, confusion_table, multi_label_report, regression_report};
pub use multilabel::MultiLabelScores;
pub use regression::RegressionScores;
pub use scores::{ClassScores, Scores};
