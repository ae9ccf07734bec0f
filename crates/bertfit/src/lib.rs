//! bertfit: fine-tune, evaluate and serve BERT-family text classifiers.
//!
//! Layers, each owning one thing and never reaching upward:
//! [`data`] (files, labels, splits) → [`tokenize`] → [`batch`] → [`model`] → [`train`] →
//! [`metrics`] → [`predict`]. Tensor types appear only in `model`, `train` and `predict`.
#![warn(missing_docs)]

pub mod batch;
pub mod data;
pub mod engine;
pub mod error;
pub mod metrics;
pub mod model;
pub mod predict;
pub mod report;
pub mod rng;
pub mod tokenize;
pub mod train;

pub use error::{Error, Location, Result};
