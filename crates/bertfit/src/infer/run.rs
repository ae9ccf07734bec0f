//! Running a loaded model: class probabilities for tokenized examples, in input order, batched by length.

use candle_core::Tensor;

use crate::batch;
use crate::engine::backend::Backend;
use crate::engine::device::{backend_for, check_graph_on, DynBackend};
use crate::engine::Engine;
use crate::runtime::{EnginePath, Runtime};
use crate::error::Result;
use crate::model::{Classifier, Inputs, Mode};
use crate::objective::Objective;
use crate::tokenize::Encoded;

/// Row-wise softmax of a (batch, classes) logits tensor, computed in f64 on the host.
pub fn softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(rows.iter().map(|r| crate::engine::ops::softmax_row(r)).collect())
}

/// The scores of every example, in input order, computed on the model's runtime: class probabilities,
/// label probabilities (multi-label) or values (regression), as the model's problem type reads its
/// logits. `on_batch(done, total)` reports progress.
pub fn probabilities(
    model: &Classifier,
    encoded: &[Encoded],
    batch_size: usize,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    let objective = Objective::of_model(model);
    Ok(logits(model, encoded, batch_size, on_batch)?.iter().map(|r| objective.activate(r)).collect())
}

/// The classifier's logits for every example, in input order (see [`probabilities`]).
pub fn logits(
    model: &Classifier,
    encoded: &[Encoded],
    batch_size: usize,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    let mut runner = BatchRunner::new(model)?;
    by_batches(encoded, batch_size, model.config.pad_token_id, on_batch, |b| runner.logits(model, b))
}

/// Runs batches of one model, keeping what is costly to set up between calls: the engine's copy of the
/// weights where the engine covers the model, nothing on the graph path.
pub struct BatchRunner {
    engine: Option<Engine<DynBackend>>,
}

impl std::fmt::Debug for BatchRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchRunner").field("engine", &self.engine.is_some()).finish()
    }
}

impl BatchRunner {
    /// Prepares `model` for repeated batches on its runtime.
    pub fn new(model: &Classifier) -> Result<Self> {
        let rt = model.runtime();
        match model.engine_path() {
            EnginePath::Fused if model.engine_covers() => Ok(BatchRunner { engine: Some(Engine::for_inference(model, backend_for(rt)?)?) }),
            _ => {
                check_graph_on(rt, "prediction")?;
                Ok(BatchRunner { engine: None })
            }
        }
    }

    /// The logits of one collated batch, one row per example in batch order. `model` must be the one
    /// this runner was made for.
    pub fn logits(&mut self, model: &Classifier, b: &batch::Batch) -> Result<Vec<Vec<f32>>> {
        let rt = model.runtime();
        match &mut self.engine {
            Some(engine) => rt.install(|| engine.logits(b)),
            None => rt.install(|| -> Result<Vec<Vec<f32>>> {
                let logits = model.forward(&Inputs::from_batch(b, model.device())?, Mode::EVAL)?;
                Ok(logits.to_dtype(candle_core::DType::F32)?.to_vec2()?)
            }),
        }
    }
}

/// Scores from an engine that already holds the weights (the training engine evaluates with its own,
/// without a copy), read through `objective`, in input order, on `rt`'s threads.
#[allow(clippy::too_many_arguments)]
pub fn engine_probabilities<B: Backend + Send>(
    engine: &mut Engine<B>,
    rt: &Runtime,
    pad: u32,
    encoded: &[Encoded],
    batch_size: usize,
    objective: &Objective,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    by_batches(encoded, batch_size, pad, on_batch, |b| rt.install(|| Ok(engine.logits(b)?.iter().map(|r| objective.activate(r)).collect())))
}

/// Length-sorted inference batches of `encoded`, each through `f`, the rows put back in input order.
pub(crate) fn by_batches(
    encoded: &[Encoded],
    batch_size: usize,
    pad: u32,
    on_batch: &mut dyn FnMut(usize, usize),
    mut f: impl FnMut(&batch::Batch) -> Result<Vec<Vec<f32>>>,
) -> Result<Vec<Vec<f32>>> {
    let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
    let plan = batch::inference_batches(&lengths, batch_size);
    let mut out = vec![Vec::new(); encoded.len()];
    for (i, idx) in plan.iter().enumerate() {
        let b = batch::collate(encoded, idx, None, pad);
        let probs = f(&b)?;
        for (row, p) in b.indices.iter().zip(probs) {
            out[*row] = p;
        }
        on_batch(i + 1, plan.len());
    }
    Ok(out)
}
