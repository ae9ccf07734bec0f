//! Running a loaded model: class probabilities for tokenized examples, in input order, batched by length.

use candle_core::Tensor;

use crate::batch;
use crate::engine::backend::Backend;
use crate::engine::device::{backend_for, check_graph_on};
use crate::engine::Engine;
use crate::runtime::{EnginePath, Runtime};
use crate::error::Result;
use crate::model::{Classifier, Inputs, Mode};
use crate::tokenize::Encoded;

/// Row-wise softmax of a (batch, classes) logits tensor, computed in f64 on the host.
pub fn softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(rows.iter().map(|r| crate::engine::ops::softmax_row(r)).collect())
}

/// Class probabilities for every example, in input order, computed on the model's runtime.
/// `on_batch(done, total)` reports progress.
pub fn probabilities(
    model: &Classifier,
    encoded: &[Encoded],
    batch_size: usize,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    let rt = model.runtime();
    let pad = model.config.pad_token_id;
    match model.engine_path() {
        EnginePath::Fused if model.engine_covers() => {
            // the engine computes on its own copy of the weights, made once per call
            let mut engine = Engine::for_inference(model, backend_for(rt)?)?;
            engine_probabilities(&mut engine, rt, pad, encoded, batch_size, on_batch)
        }
        _ => {
            check_graph_on(rt, "prediction")?;
            by_batches(encoded, batch_size, pad, on_batch, |b| {
                rt.install(|| -> Result<Vec<Vec<f32>>> {
                    let logits = model.forward(&Inputs::from_batch(b, model.device())?, Mode::EVAL)?;
                    softmax_rows(&logits)
                })
            })
        }
    }
}

/// Class probabilities from an engine that already holds the weights (the training engine evaluates
/// with its own, without a copy), in input order, on `rt`'s threads.
pub fn engine_probabilities<B: Backend + Send>(
    engine: &mut Engine<B>,
    rt: &Runtime,
    pad: u32,
    encoded: &[Encoded],
    batch_size: usize,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    by_batches(encoded, batch_size, pad, on_batch, |b| rt.install(|| engine.predict(b)))
}

/// Length-sorted inference batches of `encoded`, each through `f`, the rows put back in input order.
fn by_batches(
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
