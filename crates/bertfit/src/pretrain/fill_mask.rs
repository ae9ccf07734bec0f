//! Fill-mask: the masked LM's most likely tokens, with probabilities, at each mask token of a text — a
//! quick look at what pretraining taught the model.

use serde::Serialize;

use crate::batch;
use crate::error::{Error, Result};
use crate::model::{Inputs, MaskedLm, Mode};
use crate::tokenize::TextTokenizer;

/// One predicted token.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// The vocabulary entry.
    pub token: String,
    /// Its id.
    pub id: u32,
    /// Softmax probability at the position.
    pub probability: f64,
}

/// The predictions at one mask token of a text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filled {
    /// The text as given.
    pub text: String,
    /// Which mask token of the text (0-based).
    pub mask: usize,
    /// The `top_k` candidates, most likely first.
    pub candidates: Vec<Candidate>,
}

/// The `top_k` candidates at every mask token of each text. The text marks positions with the
/// tokenizer's mask token; `[MASK]` is accepted for tokenizers whose mask is spelled otherwise
/// (`<mask>`). A text without one is an error naming it.
pub fn fill_mask(model: &MaskedLm, tokenizer: &TextTokenizer, texts: &[String], top_k: usize) -> Result<Vec<Filled>> {
    let (mask, mask_id) = tokenizer.mask_token().ok_or_else(|| Error::config("model", "the tokenizer has no mask token ([MASK] or <mask>)"))?;
    let prepared: Vec<String> = texts.iter().map(|t| if mask != "[MASK]" { t.replace("[MASK]", &mask) } else { t.clone() }).collect();
    let pairs: Vec<(&str, Option<&str>)> = prepared.iter().map(|t| (t.as_str(), None)).collect();
    let encoded = tokenizer.encode_all(&pairs)?;
    let view = model.inference_view()?;
    let mut out = Vec::new();
    for (i, (text, e)) in texts.iter().zip(&encoded).enumerate() {
        let positions: Vec<u32> = e.ids.iter().enumerate().filter(|(_, &id)| id == mask_id).map(|(p, _)| p as u32).collect();
        if positions.is_empty() {
            return Err(Error::config("text", format!("text {} has no {mask} token: {text:?}", i + 1)));
        }
        let b = batch::collate(std::slice::from_ref(e), &[0], None, model.config.pad_token_id);
        let probs: Vec<Vec<f32>> = model.runtime().install(|| -> Result<Vec<Vec<f32>>> {
            let inputs = Inputs::from_batch(&b, view.device())?;
            let logits = view.logits_at(&inputs, &positions, Mode::EVAL)?;
            Ok(crate::model::ops::softmax_last(&logits.to_dtype(candle_core::DType::F32)?)?.to_vec2()?)
        })?;
        for (m, row) in probs.iter().enumerate() {
            let mut order: Vec<usize> = (0..row.len()).collect();
            order.sort_by(|&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
            let candidates = order
                .into_iter()
                .take(top_k)
                .map(|id| Candidate { token: tokenizer.token(id as u32).unwrap_or_default(), id: id as u32, probability: row[id] as f64 })
                .collect();
            out.push(Filled { text: text.clone(), mask: m, candidates });
        }
    }
    Ok(out)
}
