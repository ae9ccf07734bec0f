//! bertfit: fine-tune, evaluate and serve BERT-family text classifiers.
//!
//! Layers, each owning one thing and never reaching upward:
//! [`data`] (files, labels, splits) → [`source`] (model folders, the hub) → [`tokenize`] → [`batch`] →
//! [`model`] (family table, config, encoder, heads, kernels) → [`engine`] → [`objective`] (what outputs mean: activation, loss) → [`infer`] (a loaded model:
//! probabilities, scores, prediction files) → [`train`] (and [`pretrain`], masked-LM training on unlabeled text) → [`report`]. Beside them, reaching up to
//! nothing: [`runtime`] (device, precision, threads: values, never globals), [`rundir`] (the run
//! directory's files), [`metrics`], [`rng`], [`windows`] (long documents as overlapping windows), [`error`], [`faults`] (crash-test hooks). Tensor types appear only in `model`, `engine`,
//! `infer` and `train`; prediction never imports `train`.
#![warn(missing_docs)]

pub mod batch;
pub mod data;
pub mod engine;
pub mod error;
pub mod faults;
pub mod infer;
pub mod metrics;
pub mod model;
pub mod objective;
pub mod pretrain;
pub mod report;
pub mod rng;
pub mod rundir;
pub mod runtime;
pub mod source;
pub mod tokenize;
pub mod train;
pub mod windows;

pub use error::{Error, Location, Result};
