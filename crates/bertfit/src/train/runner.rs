//! The trainer's seam (design 2.9): one training micro-batch, the optimizer update and the optimizer state
//! a checkpoint saves, through either the candle graph with its optimizer or the engine. The training loop
//! and `bench-step` call only this, so both paths run the same loop; checkpoints have one format, so a run
//! may resume on the other path (not bit-identical).

use std::collections::HashMap;

use super::config::TrainConfig;
use super::optimizer::{AdamW, AdamWConfig};
use super::trainer::{step, StepOutcome};
use crate::batch::Batch;
use crate::engine::backend::{Buf, Region};
use crate::engine::device::{backend_for, check_graph_on, DynBackend};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::model::{Classifier, Mode};
use crate::objective::Objective;
use crate::runtime::EnginePath;

/// The candle graph with its per-tensor optimizer, or the engine with its flat buffers.
pub enum Runner {
    /// Autograd over the candle graph; the optimizer updates the model's variables in place.
    Graph(AdamW),
    /// The engine on the runtime's device; it holds its own copy of the weights, written back with
    /// [`Runner::sync`].
    Engine(Box<Engine<DynBackend>>),
}

impl Runner {
    /// A runner for `model` on `path` (`auto`: the engine where it covers the model), with zeroed
    /// optimizer state.
    pub fn new(model: &Classifier, cfg: &TrainConfig, path: EnginePath) -> Result<Runner> {
        let adam = AdamWConfig { weight_decay: cfg.weight_decay, ..Default::default() };
        Ok(match path.resolve(model.engine_covers()) {
            EnginePath::Graph | EnginePath::Auto => {
                check_graph_on(model.runtime(), "training")?;
                Runner::Graph(AdamW::new(model.trainable(), adam))
            }
            EnginePath::Fused => {
                if !model.engine_covers() {
                    return Err(Error::config("engine", format!("the engine does not cover `{}` models yet: use --engine graph", model.config.model_type)));
                }
                Runner::Engine(Box::new(Engine::new(model, backend_for(model.runtime())?, adam)?))
            }
        })
    }

    /// Which path this is.
    pub fn path(&self) -> EnginePath {
        match self {
            Runner::Graph(_) => EnginePath::Graph,
            Runner::Engine(_) => EnginePath::Fused,
        }
    }

    /// One training batch (see [`step`]): forward with the dropout key of `(cfg.seed, micro_step)`, loss
    /// scaled by `1 / grad_accum`, backward into the accumulators, and the update when `update_lr` is given.
    #[allow(clippy::too_many_arguments)]
    pub fn step(&mut self, model: &Classifier, b: &Batch, micro_step: u64, cfg: &TrainConfig, objective: &Objective, update_lr: Option<f64>) -> Result<StepOutcome> {
        let e = match self {
            Runner::Graph(opt) => return step(model, opt, b, micro_step, cfg, objective, update_lr),
            Runner::Engine(e) => e,
        };
        let clip = (cfg.max_grad_norm > 0.0).then_some(cfg.max_grad_norm);
        let step_at = e.step;
        model.runtime().install(|| {
            let out = e.train_micro(b, Mode::train(cfg.seed, micro_step), objective, 1.0 / cfg.grad_accum as f64)?;
            let loss = out.loss * cfg.grad_accum as f64;
            if !loss.is_finite() {
                return Err(Error::Diverged { step: step_at, loss });
            }
            crate::faults::point("step");
            let grad_norm = match update_lr {
                Some(lr) => Some(e.apply_update(lr, clip)?),
                None => None,
            };
            Ok(StepOutcome { loss, probs: out.probs, missing: Vec::new(), grad_norm })
        })
    }

    /// Updates applied so far.
    pub fn updates(&self) -> usize {
        match self {
            Runner::Graph(o) => o.step,
            Runner::Engine(e) => e.step,
        }
    }

    /// Micro-batches accumulated since the last update.
    pub fn accumulated(&self) -> usize {
        match self {
            Runner::Graph(o) => o.accumulated,
            Runner::Engine(e) => e.accumulated,
        }
    }

    /// Sets the counters (when resuming).
    pub fn set_counts(&mut self, updates: usize, accumulated: usize) {
        match self {
            Runner::Graph(o) => (o.step, o.accumulated) = (updates, accumulated),
            Runner::Engine(e) => (e.step, e.accumulated) = (updates, accumulated),
        }
    }

    /// Trainable scalars.
    pub fn num_params(&self) -> usize {
        match self {
            Runner::Graph(o) => o.num_params(),
            Runner::Engine(e) => e.layout().trainable_len(),
        }
    }

    /// Makes the model's variables hold the current weights (the engine keeps its own copy): before
    /// evaluating with the model, saving it or checkpointing.
    pub fn sync(&mut self, model: &Classifier) -> Result<()> {
        match self {
            Runner::Graph(_) => Ok(()),
            Runner::Engine(e) => model.runtime().install(|| e.export_params(model.params())),
        }
    }

    /// The optimizer state as `NAME.exp_avg`, `NAME.exp_avg_sq`, `NAME.grad_acc` vectors (the checkpoint
    /// format of both paths).
    pub fn state_vectors(&mut self) -> Result<Vec<(String, Vec<f32>)>> {
        match self {
            Runner::Graph(o) => Ok(o.state_vectors().into_iter().map(|(n, v)| (n, v.to_vec())).collect()),
            Runner::Engine(e) => {
                let segments: Vec<_> = e.layout().segments.iter().filter(|s| s.trainable).cloned().collect();
                let mut out = Vec::with_capacity(3 * segments.len());
                for seg in segments {
                    for (suffix, region) in [("exp_avg", Region::AdamM), ("exp_avg_sq", Region::AdamV), ("grad_acc", Region::Grads)] {
                        out.push((format!("{}.{suffix}", seg.name), e.tensor(region, &seg.name)?));
                    }
                }
                Ok(out)
            }
        }
    }

    /// Restores state saved by [`Runner::state_vectors`] (by either path). Returns the names that were
    /// absent or of the wrong size.
    pub fn restore(&mut self, mut saved: HashMap<String, Vec<f32>>) -> Result<Vec<String>> {
        match self {
            Runner::Graph(o) => Ok(o.restore(saved)),
            Runner::Engine(e) => {
                let segments: Vec<_> = e.layout().segments.iter().filter(|s| s.trainable).cloned().collect();
                let mut bad = Vec::new();
                for seg in segments {
                    for (suffix, region) in [("exp_avg", Region::AdamM), ("exp_avg_sq", Region::AdamV), ("grad_acc", Region::Grads)] {
                        let key = format!("{}.{suffix}", seg.name);
                        match saved.remove(&key) {
                            Some(v) if v.len() == seg.len => e.load(Buf { region, offset: seg.offset, len: seg.len }, &v)?,
                            _ => bad.push(key),
                        }
                    }
                }
                Ok(bad)
            }
        }
    }
}
