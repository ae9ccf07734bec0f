//! Batched inference: class probabilities for tokenized examples, in input order.

use candle_core::{Device, Tensor};

use super::bert::Inputs;
use super::classifier::Classifier;
use super::ops::Mode;
use crate::batch::{self, Batch};
use crate::error::Result;
use crate::tokenize::Encoded;

impl Inputs {
    /// Moves a padded batch onto `device`.
    pub fn from_batch(b: &Batch, device: &Device) -> Result<Self> {
        let shape = (b.size, b.seq_len);
        let mask: Vec<f32> = b.attention_mask.iter().map(|&m| m as f32).collect();
        Ok(Inputs {
            input_ids: Tensor::from_slice(&b.input_ids, shape, device)?,
            type_ids: Tensor::from_slice(&b.type_ids, shape, device)?,
            mask: Tensor::from_vec(mask, shape, device)?,
        })
    }
}

/// Row-wise softmax of a (batch, classes) logits tensor, computed in f64 on the host.
pub fn softmax_rows(logits: &Tensor) -> Result<Vec<Vec<f32>>> {
    let rows: Vec<Vec<f32>> = logits.to_dtype(candle_core::DType::F32)?.to_vec2()?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let e: Vec<f64> = r.iter().map(|&x| (x as f64 - max).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|x| (x / s) as f32).collect()
        })
        .collect())
}

/// Class probabilities for every example, in input order. `on_batch(done, total)` reports progress.
pub fn probabilities(
    model: &Classifier,
    encoded: &[Encoded],
    batch_size: usize,
    on_batch: &mut dyn FnMut(usize, usize),
) -> Result<Vec<Vec<f32>>> {
    let lengths: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
    let plan = batch::inference_batches(&lengths, batch_size);
    let mut out = vec![Vec::new(); encoded.len()];
    let pad = model.config.pad_token_id;
    for (i, idx) in plan.iter().enumerate() {
        let b = batch::collate(encoded, idx, None, pad);
        let logits = model.forward(&Inputs::from_batch(&b, model.device())?, Mode::EVAL)?;
        for (row, probs) in b.indices.iter().zip(softmax_rows(&logits)?) {
            out[*row] = probs;
        }
        on_batch(i + 1, plan.len());
    }
    Ok(out)
}
