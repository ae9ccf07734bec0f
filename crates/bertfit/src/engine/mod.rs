//! The engine: one explicit forward and backward over a backend (design: ENGINE.md). What has landed:
//! the parameter layout ([`layout`]: every weight at an offset of one flat buffer, Q/K/V contiguous,
//! decay and trainable flags), slice-level cores of its new CPU ops ([`ops`]: softmax cross-entropy
//! with its gradient, sequence pooling forward and backward), token packing ([`pack`]: padded batches
//! to the unpadded form the engine computes on, with the padded dropout coordinates) and the GPU
//! self-test of the CUDA backend's first pieces (`bertfit gpu-selftest`, feature `cuda`). The backend
//! trait, the arena planner, the CPU backend and the schedule follow.

pub mod layout;
pub mod ops;
pub mod pack;
#[cfg(feature = "cuda")]
pub mod selftest;
