//! A profiling [`Backend`]: wraps another backend, forwards every call and adds its wall time to a
//! per-op table (`bench-step --profile`). Exact for backends that run calls at once (the CPU's); for a
//! queueing backend (the GPU's) [`Timed::synced`] waits for each call, so each op's time is its own
//! (the step then runs without overlap between host and device: slower than untimed).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::backend::{Attention, Backend, Buf, DropoutAdd, Dropout, Embed, EmbedGrad, Gemm, Ints, LayerNorm, LayerNormGrad, Pooling, Region, SoftmaxCe};
use super::ops::AdamStep;
use crate::error::Result;
use crate::model::Activation;

/// Time and calls of one op.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpTime {
    /// Total wall time.
    pub total: Duration,
    /// Calls.
    pub calls: u64,
    /// Floating-point operations counted (matrix products only).
    pub flops: f64,
}

/// A backend whose calls are timed.
#[derive(Debug, Default)]
pub struct Timed<B> {
    inner: B,
    table: BTreeMap<String, OpTime>,
    /// Wait for the backend after each call.
    sync: bool,
}

impl<B: Backend> Timed<B> {
    /// Wraps `inner`.
    pub fn new(inner: B) -> Self {
        Timed { inner, table: BTreeMap::new(), sync: false }
    }

    /// Wraps a queueing backend: every call is waited for before its time is taken.
    pub fn synced(inner: B) -> Self {
        Timed { inner, table: BTreeMap::new(), sync: true }
    }

    /// The table so far, by op name.
    pub fn table(&self) -> &BTreeMap<String, OpTime> {
        &self.table
    }

    /// Forgets the times so far (after warm-up steps).
    pub fn reset(&mut self) {
        self.table.clear();
    }

    fn time<R>(&mut self, name: &str, flops: f64, f: impl FnOnce(&mut B) -> Result<R>) -> Result<R> {
        let t0 = Instant::now();
        let r = f(&mut self.inner)?;
        if self.sync {
            self.inner.sync()?;
        }
        let e = self.table.entry(name.to_string()).or_default();
        e.total += t0.elapsed();
        e.calls += 1;
        e.flops += flops;
        Ok(r)
    }
}

/// A GEMM's table name: its shape class (forward, input gradient or weight gradient by operand strides).
fn gemm_name(g: &Gemm) -> String {
    let kind = match (g.a.cs == 1, g.b.cs == 1, g.accumulate) {
        (true, false, false) => "fwd",
        (true, true, false) => "dgrad",
        (true, true, true) => "dgrad+=",
        (false, true, true) => "wgrad",
        _ => "other",
    };
    format!("gemm {kind} {}x{}x{}", g.m, g.n, g.k)
}

impl<B: Backend> Backend for Timed<B> {
    fn reserve(&mut self, region: Region, len: usize) -> Result<()> {
        self.inner.reserve(region, len)
    }
    fn reserve_ints(&mut self, len: usize) -> Result<()> {
        self.inner.reserve_ints(len)
    }
    fn upload(&mut self, dst: Buf, src: &[f32]) -> Result<()> {
        self.time("upload", 0.0, |b| b.upload(dst, src))
    }
    fn upload_ints(&mut self, dst: Ints, src: &[u32]) -> Result<()> {
        self.time("upload", 0.0, |b| b.upload_ints(dst, src))
    }
    fn download(&mut self, src: Buf, dst: &mut [f32]) -> Result<()> {
        self.time("download", 0.0, |b| b.download(src, dst))
    }
    fn fill(&mut self, dst: Buf, value: f32) -> Result<()> {
        self.time("fill", 0.0, |b| b.fill(dst, value))
    }
    fn gemm(&mut self, g: &Gemm) -> Result<()> {
        let flops = 2.0 * (g.m * g.n * g.k) as f64;
        self.time(&gemm_name(g), flops, |b| b.gemm(g))
    }
    fn bias_grad(&mut self, dy: Buf, db: Buf, width: usize) -> Result<()> {
        self.time("bias_grad", 0.0, |b| b.bias_grad(dy, db, width))
    }
    fn embed(&mut self, e: &Embed) -> Result<()> {
        self.time("embed", 0.0, |b| b.embed(e))
    }
    fn embed_grad(&mut self, e: &EmbedGrad) -> Result<()> {
        self.time("embed_grad", 0.0, |b| b.embed_grad(e))
    }
    fn layer_norm(&mut self, a: &LayerNorm) -> Result<()> {
        self.time("layer_norm", 0.0, |b| b.layer_norm(a))
    }
    fn layer_norm_grad(&mut self, a: &LayerNormGrad) -> Result<()> {
        self.time("layer_norm_grad", 0.0, |b| b.layer_norm_grad(a))
    }
    fn dropout(&mut self, x: Buf, out: Buf, width: usize, drop: &Dropout) -> Result<()> {
        self.time("dropout", 0.0, |b| b.dropout(x, out, width, drop))
    }
    fn dropout_add(&mut self, a: &DropoutAdd) -> Result<()> {
        self.time("dropout_add", 0.0, |b| b.dropout_add(a))
    }
    fn activation(&mut self, act: Activation, x: Buf, out: Buf) -> Result<()> {
        self.time("activation", 0.0, |b| b.activation(act, x, out))
    }
    fn activation_grad(&mut self, act: Activation, x: Buf, dy: Buf, dx: Buf) -> Result<()> {
        self.time("activation_grad", 0.0, |b| b.activation_grad(act, x, dy, dx))
    }
    fn attention(&mut self, a: &Attention) -> Result<()> {
        self.time("attention", 0.0, |b| b.attention(a))
    }
    fn attention_grad(&mut self, a: &Attention) -> Result<()> {
        self.time("attention_grad", 0.0, |b| b.attention_grad(a))
    }
    fn pool(&mut self, p: &Pooling) -> Result<()> {
        self.time("pool", 0.0, |b| b.pool(p))
    }
    fn pool_grad(&mut self, p: &Pooling) -> Result<()> {
        self.time("pool_grad", 0.0, |b| b.pool_grad(p))
    }
    fn softmax_ce(&mut self, a: &SoftmaxCe<'_>) -> Result<f64> {
        self.time("softmax_ce", 0.0, |b| b.softmax_ce(a))
    }
    fn grad_norm_sq(&mut self, grads: &[Buf]) -> Result<f64> {
        self.time("grad_norm", 0.0, |b| b.grad_norm_sq(grads))
    }
    fn adamw(&mut self, segments: &[(Buf, bool)], step: &AdamStep) -> Result<()> {
        self.time("adamw", 0.0, |b| b.adamw(segments, step))
    }
    fn sync(&mut self) -> Result<()> {
        self.inner.sync()
    }
    fn free_memory(&self) -> Option<u64> {
        self.inner.free_memory()
    }
}
