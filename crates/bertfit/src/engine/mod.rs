//! The engine: one explicit forward and backward over a backend (design: ENGINE.md). What has landed so
//! far is the GPU self-test of the CUDA backend's first pieces (`bertfit gpu-selftest`, feature `cuda`);
//! the backend trait, the CPU backend and the schedule follow.

#[cfg(feature = "cuda")]
pub mod selftest;
