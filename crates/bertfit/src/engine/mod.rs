//! The engine: one explicit forward and backward over a [`Backend`] (design: ENGINE.md), for BERT-layout
//! encoders with the classification heads and the loss. Parameters, gradients and AdamW moments live in
//! flat buffers laid out by [`layout`]; activations in an arena planned per batch shape by [`plan`] (its
//! memory only grows); batches are packed ([`pack`]): dense layers, LayerNorm, GELU and dropout run on the
//! real tokens only, attention per sequence. The schedule (`schedule.rs`) is written against the trait;
//! [`cpu::CpuBackend`] runs it on the host with our fused kernels' cores, `cuda::CudaBackend` (feature
//! `cuda`) on an NVIDIA GPU; [`device`] picks one for a runtime's `--device`. [`ops`] holds the cores of
//! the engine's own ops (loss, pooling, AdamW); `bertfit gpu-selftest` (feature `cuda`) checks the CUDA
//! pieces (`selftest`) and the engine on the GPU against the CPU (`gpu_engine`).

pub mod backend;
pub mod cpu;
pub mod layout;
pub mod ops;
pub mod pack;
pub mod plan;
mod schedule;
pub mod timed;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod device;
#[cfg(feature = "cuda")]
pub mod gpu_engine;
#[cfg(feature = "cuda")]
pub mod selftest;

use std::sync::Arc;

use backend::{Backend, Buf, Region, SoftmaxCe};
use layout::Layout;
use ops::{AdamStep, Pool};
use pack::Packed;
use plan::Plan;
use schedule::{LayerWeights, Weights};

use crate::batch::Batch;
use crate::data::ProblemType;
use crate::objective::Objective;
use crate::error::{Error, Result};
use crate::model::family::Positions;
use crate::model::params::ParamStore;
use crate::model::head::HeadSpec;
use crate::model::{Activation, Classifier, Freeze, Mode, Pooling};
use crate::runtime::Precision;
use crate::model::params::with_f32;
use ops::AdamWConfig;

/// What the engine computes: the model's shape, dropout, head and arithmetic.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Hidden size.
    pub hidden: usize,
    /// Width of the embedding tables (`embedding_size`; the hidden size unless the family projects).
    pub embedding: usize,
    /// Attention heads.
    pub heads: usize,
    /// FFN width.
    pub intermediate: usize,
    /// Transformer layers.
    pub layers: usize,
    /// LayerNorm epsilon.
    pub eps: f32,
    /// FFN activation.
    pub act: Activation,
    /// Hidden-state dropout.
    pub hidden_dropout: f64,
    /// Attention-probability dropout.
    pub attn_dropout: f64,
    /// Dropout of the attention block's output (0 where the family has none there).
    pub attn_out_dropout: f64,
    /// Dropout before each head layer.
    pub head_dropout: f64,
    /// Whether the first head layer's input is dropped out too (all families but DistilBERT).
    pub head_input_dropout: bool,
    /// Activation after hidden head layers.
    pub head_act: Activation,
    /// First token or mean.
    pub pooling: Pool,
    /// Whether the encoder's pooler (dense + tanh of the first token) feeds the head.
    pub pooler: bool,
    /// Widths through the head: hidden size, hidden head layers, classes.
    pub head: Vec<usize>,
    /// Position numbering.
    pub positions: Positions,
    /// Whether the family has a token-type table.
    pub token_types: bool,
    /// Padding token id.
    pub pad_id: u32,
    /// Matmul precision of the dense layers.
    pub precision: Precision,
    /// Which weights train.
    pub freeze: Freeze,
}

impl Spec {
    /// The engine's view of a loaded classifier.
    pub fn of(model: &Classifier) -> Spec {
        let c = &model.config;
        let family = c.family();
        let head = model.head_spec();
        Spec {
            hidden: c.hidden_size,
            embedding: c.embedding_size(),
            heads: c.num_attention_heads,
            intermediate: c.intermediate_size,
            layers: c.num_hidden_layers,
            eps: c.layer_norm_eps as f32,
            act: c.hidden_act,
            hidden_dropout: c.hidden_dropout_prob,
            attn_dropout: c.attention_probs_dropout_prob,
            attn_out_dropout: if family.attention_output_dropout { c.hidden_dropout_prob } else { 0.0 },
            head_dropout: head.dropout,
            head_input_dropout: head.input_dropout,
            head_act: head.activation,
            pooling: if head.pooling == Pooling::Cls { Pool::First } else { Pool::Mean },
            pooler: head.pooler,
            head: head.sizes,
            positions: family.positions,
            token_types: family.token_types,
            pad_id: c.pad_token_id,
            precision: model.runtime().precision(),
            freeze: model.freeze(),
        }
    }

    /// Whether dropout applies before head layer `i` in training.
    pub(crate) fn head_drops(&self, i: usize) -> bool {
        self.head_dropout > 0.0 && (i > 0 || self.head_input_dropout)
    }

    fn shape(&self) -> plan::Shape {
        plan::Shape { hidden: self.hidden, embedding: self.embedding, intermediate: self.intermediate, layers: self.layers, pooler: self.pooler, head: self.head.clone() }
    }
}

/// What one training micro-batch gave.
#[derive(Debug, Clone)]
pub struct MicroOut {
    /// The loss as computed (scaled by the caller's `scale`).
    pub loss: f64,
    /// Per-example class probabilities of the training forward pass.
    pub probs: Vec<Vec<f32>>,
}

/// The engine over one backend.
pub struct Engine<B: Backend> {
    backend: B,
    // shared handles: the schedule holds them while it borrows the backend mutably
    spec: Arc<Spec>,
    layout: Layout,
    weights: Arc<Weights>,
    adam: AdamWConfig,
    /// Activation elements reserved so far (the region only grows).
    reserved: usize,
    /// Updates applied.
    pub step: usize,
    /// Micro-batches accumulated since the last update.
    pub accumulated: usize,
}

impl<B: Backend> Engine<B> {
    /// An engine holding a copy of `model`'s weights (and its freezing, head and precision), with zeroed
    /// gradients and AdamW moments.
    pub fn new(model: &Classifier, backend: B, adam: AdamWConfig) -> Result<Self> {
        Self::build(model, backend, adam, true)
    }

    /// An engine for [`Engine::predict`] only: the weights, no gradient or optimizer memory.
    pub fn for_inference(model: &Classifier, backend: B) -> Result<Self> {
        Self::build(model, backend, AdamWConfig::default(), false)
    }

    fn build(model: &Classifier, mut backend: B, adam: AdamWConfig, train: bool) -> Result<Self> {
        let c = &model.config;
        if !c.family().engine || c.embedding_size() > c.hidden_size {
            return Err(Error::config("engine", format!("the engine does not cover `{}` models yet: use --engine graph", c.model_type)));
        }
        let spec = Spec::of(model);
        let head = model.head_spec();
        let layout = Layout::new(&model.config, &head, spec.freeze);
        let regions: &[Region] = if train { &[Region::Params, Region::Grads, Region::AdamM, Region::AdamV] } else { &[Region::Params] };
        for &region in regions {
            backend.reserve(region, layout.total)?;
        }
        let vars = model.params().vars();
        for seg in &layout.segments {
            let var = vars.get(&seg.name).ok_or_else(|| Error::config("engine", format!("the model has no `{}`", seg.name)))?;
            let buf = Buf { region: Region::Params, offset: seg.offset, len: seg.len };
            with_f32(var.as_tensor(), |data| backend.upload(buf, data))??;
        }
        let weights = Arc::new(resolve(&layout, &spec, &head)?);
        Ok(Engine { backend, spec: Arc::new(spec), layout, weights, adam, reserved: 0, step: 0, accumulated: 0 })
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably (to reset a profiler, say).
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// The model description the engine computes.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The parameter layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Packs `b`, plans its buffers and uploads its integer inputs.
    fn prepare(&mut self, b: &Batch, train: bool) -> Result<Plan> {
        let packed = Packed::from_batch(b, self.spec.positions, self.spec.pad_id)?;
        let plan = Plan::new(&self.spec.shape(), packed.tokens(), packed.sequences(), packed.padded_len, train);
        if plan.total > self.reserved {
            check_memory(&plan, self.reserved, b, self.backend.free_memory(), train)?;
            self.backend.reserve(Region::Acts, plan.total)?;
            self.reserved = plan.total;
        }
        self.backend.reserve_ints(plan.ints.total)?;
        let prow: Vec<u32> = packed.coords.iter().map(|&(r, p)| r * packed.padded_len as u32 + p).collect();
        let i = plan.ints;
        self.backend.upload_ints(i.ids, &packed.ids)?;
        self.backend.upload_ints(i.positions, &packed.positions)?;
        self.backend.upload_ints(i.types, &packed.type_ids)?;
        self.backend.upload_ints(i.prow, &prow)?;
        self.backend.upload_ints(i.cu_seqlens, &packed.cu_seqlens)?;
        Ok(plan)
    }

    /// One training micro-batch: forward with `mode`'s dropout, the objective's loss (times `scale`),
    /// backward into the gradient accumulators. Cross-entropy runs as the backend's `softmax_ce`; the
    /// multi-label and regression losses on the host ([`Objective::loss_grad`]), their gradient uploaded.
    pub fn train_micro(&mut self, b: &Batch, mode: Mode, objective: &Objective, scale: f64) -> Result<MicroOut> {
        let plan = self.prepare(b, true)?;
        let logits = self.forward(&plan, mode)?;
        let classes = *self.spec.head.last().unwrap_or(&0);
        let (loss, flat) = if objective.problem == ProblemType::SingleLabel {
            let weights = objective.weights.as_deref();
            let loss = self.backend.softmax_ce(&SoftmaxCe { logits, classes, labels: &b.labels, weights, scale, probs: plan.probs, dlogits: plan.dlogits })?;
            let mut flat = vec![0f32; plan.probs.len];
            if loss.is_finite() {
                self.backend.download(plan.probs, &mut flat)?;
            }
            (loss, flat)
        } else {
            let mut host = vec![0f32; logits.len];
            self.backend.download(logits, &mut host)?;
            let mut grad = vec![0f32; logits.len];
            let loss = objective.loss_grad(&host, classes, &b.labels, &b.targets, scale, &mut grad);
            self.backend.upload(plan.dlogits, &grad)?;
            (loss, host.chunks(classes.max(1)).flat_map(|r| objective.activate(r)).collect())
        };
        if !loss.is_finite() {
            // before the backward touches the accumulators, as the graph path checks
            return Err(Error::Diverged { step: self.step, loss: if scale > 0.0 { loss / scale } else { loss } });
        }
        self.backward(&plan, mode)?;
        self.accumulated += 1;
        Ok(MicroOut { loss, probs: flat.chunks(classes.max(1)).map(<[f32]>::to_vec).collect() })
    }

    /// Class probabilities of a batch (no dropout, nothing saved for a backward).
    pub fn predict(&mut self, b: &Batch) -> Result<Vec<Vec<f32>>> {
        Ok(self.logits(b)?.iter().map(|r| ops::softmax_row(r)).collect())
    }

    /// The classifier's logits for a batch, one row per example, in batch order. No dropout.
    pub fn logits(&mut self, b: &Batch) -> Result<Vec<Vec<f32>>> {
        let plan = self.prepare(b, false)?;
        let logits = self.forward(&plan, Mode::EVAL)?;
        let classes = *self.spec.head.last().unwrap_or(&0);
        let mut flat = vec![0f32; logits.len];
        self.backend.download(logits, &mut flat)?;
        Ok(flat.chunks(classes.max(1)).map(<[f32]>::to_vec).collect())
    }

    /// The encoder's output for a batch: the last hidden state of every real token (packed, `N × H`, row
    /// by row) and the pooler output (`B × H`, CLS pooling only). No dropout.
    pub fn hidden_states(&mut self, b: &Batch) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let plan = self.prepare(b, false)?;
        self.forward(&plan, Mode::EVAL)?;
        let last = plan.hidden_at(self.spec.layers);
        let mut hidden = vec![0f32; last.len];
        self.backend.download(last, &mut hidden)?;
        let pooled = match plan.pooler {
            Some((_, out)) => {
                let mut v = vec![0f32; out.len];
                self.backend.download(out, &mut v)?;
                Some(v)
            }
            None => None,
        };
        Ok((hidden, pooled))
    }

    /// The trainable segments' gradient buffers.
    fn grad_bufs(&self) -> Vec<Buf> {
        self.layout.segments.iter().filter(|s| s.trainable).map(|s| Buf { region: Region::Grads, offset: s.offset, len: s.len }).collect()
    }

    /// L2 norm of the accumulated gradients.
    pub fn grad_norm(&mut self) -> Result<f64> {
        let bufs = self.grad_bufs();
        Ok(self.backend.grad_norm_sq(&bufs)?.sqrt())
    }

    /// Clips the accumulated gradients to `max_norm` (global L2 norm), applies one AdamW update at `lr`
    /// (the graph optimizer's arithmetic) and zeroes the accumulators. Returns the norm before clipping.
    pub fn apply_update(&mut self, lr: f64, max_norm: Option<f64>) -> Result<f64> {
        let norm = self.grad_norm()?;
        self.step += 1;
        let step = AdamStep::new(&self.adam, self.step, lr, norm, max_norm);
        let segments: Vec<(Buf, bool)> =
            self.layout.segments.iter().filter(|s| s.trainable).map(|s| (Buf { region: Region::Params, offset: s.offset, len: s.len }, s.decay)).collect();
        self.backend.adamw(&segments, &step)?;
        self.accumulated = 0;
        Ok(norm)
    }

    /// A tensor of `region` (weights, gradients, moments) by canonical name, downloaded.
    pub fn tensor(&mut self, region: Region, name: &str) -> Result<Vec<f32>> {
        let seg = self.layout.get(name).ok_or_else(|| Error::config("engine", format!("no weight `{name}`")))?;
        let mut out = vec![0f32; seg.len];
        self.backend.download(Buf { region, offset: seg.offset, len: seg.len }, &mut out)?;
        Ok(out)
    }

    /// Copies host data into one of the engine's buffers (optimizer state from a checkpoint).
    pub fn load(&mut self, dst: Buf, data: &[f32]) -> Result<()> {
        self.backend.upload(dst, data)
    }

    /// Writes the engine's weights into `store`'s variables (for saving with the graph's writers).
    pub fn export_params(&mut self, store: &ParamStore) -> Result<()> {
        for seg in self.layout.segments.clone() {
            let var = store.vars().get(&seg.name).ok_or_else(|| Error::config("engine", format!("the store has no `{}`", seg.name)))?;
            let data = self.tensor(Region::Params, &seg.name)?;
            let t = candle_core::Tensor::from_vec(data, seg.shape.as_slice(), store.device())?;
            var.set(&t)?;
        }
        Ok(())
    }
}

/// Refuses a batch whose activations would not fit the memory this machine has free, naming the need and a
/// batch size that fits (design 2.3), instead of failing inside an allocation.
fn check_memory(plan: &Plan, reserved: usize, b: &Batch, free: Option<u64>, train: bool) -> Result<()> {
    let need = ((plan.total - reserved) * 4) as u64;
    let Some(free) = free else { return Ok(()) };
    if need <= free {
        return Ok(());
    }
    let fits = ((b.size as u64 * (free + reserved as u64 * 4)) / (plan.total as u64 * 4).max(1)).max(1);
    // training batches and inference batches (evaluation during training, eval, predict) have their own flags
    let (flag, advice) = if train {
        ("batch-size", format!("try --batch-size {fits} (with --grad-accum to keep the effective batch)"))
    } else {
        ("eval-batch-size", format!("try --eval-batch-size {fits} when training, --batch-size {fits} for eval and predict"))
    };
    Err(Error::config(
        flag,
        format!(
            "a batch of {} × {} tokens needs {:.1} GB of activations, {:.1} GB more than this run holds, and {:.1} GB are free: {advice}",
            b.size,
            b.seq_len,
            plan.total as f64 * 4.0 / 1e9,
            need as f64 / 1e9,
            free as f64 / 1e9
        ),
    ))
}

/// Every weight's buffer by role.
fn resolve(layout: &Layout, spec: &Spec, head: &HeadSpec) -> Result<Weights> {
    let buf = |name: &str| -> Result<Buf> {
        let s = layout.get(name).ok_or_else(|| Error::config("engine", format!("the layout has no `{name}`")))?;
        Ok(Buf { region: Region::Params, offset: s.offset, len: s.len })
    };
    let pair = |p: &str| -> Result<(Buf, Buf)> { Ok((buf(&format!("{p}.weight"))?, buf(&format!("{p}.bias"))?)) };
    let mut layers = Vec::with_capacity(spec.layers);
    for l in 0..spec.layers {
        let p = format!("encoder.layer.{l}");
        let (q, qb) = pair(&format!("{p}.attention.self.query"))?;
        let h = spec.hidden;
        // Q, K, V are consecutive row blocks of one [3H, H] matrix (layout.rs)
        let qkv = (Buf { len: 3 * h * h, ..q }, Buf { len: 3 * h, ..qb });
        layers.push(LayerWeights {
            qkv,
            attn_out: pair(&format!("{p}.attention.output.dense"))?,
            attn_norm: pair(&format!("{p}.attention.output.LayerNorm"))?,
            inter: pair(&format!("{p}.intermediate.dense"))?,
            out: pair(&format!("{p}.output.dense"))?,
            out_norm: pair(&format!("{p}.output.LayerNorm"))?,
        });
    }
    Ok(Weights {
        tables: [buf("embeddings.word_embeddings.weight")?, buf("embeddings.position_embeddings.weight")?],
        segments: if spec.token_types { Some(buf("embeddings.token_type_embeddings.weight")?) } else { None },
        emb_norm: pair("embeddings.LayerNorm")?,
        project: if spec.embedding != spec.hidden { Some(pair("embeddings_project")?) } else { None },
        layers,
        pooler: if spec.pooler { Some(pair("pooler.dense")?) } else { None },
        head: head.names.iter().map(|n| pair(n)).collect::<Result<_>>()?,
    })
}

#[cfg(test)]
mod tests;
