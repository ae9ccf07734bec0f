//! The encoder seam: what a classifier needs from an encoder implementation (the BERT layout of
//! `bert.rs`, ModernBERT of `modernbert.rs`, DeBERTa-v2/v3 of `deberta.rs`), and the implementation a
//! family's row names.

use candle_core::Tensor;

use super::bert::{Builder, Encoder, Inputs};
use super::config::BertConfig;
use super::family::EncoderKind;
use super::deberta::Deberta;
use super::modernbert::ModernBert;
use super::ops::Mode;
use crate::error::Result;

/// An encoder: token inputs to hidden states, and its pooler.
pub trait EncoderModel: std::fmt::Debug + Send + Sync {
    /// The last hidden state, (batch, seq, hidden).
    fn forward(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor>;

    /// The pooler's output from the last hidden state and the attention mask (batch, seq; f32), or
    /// `None` when the encoder was built without one (`mode`: a pooler's own dropout, DeBERTa's).
    fn pool(&self, hidden: &Tensor, mask: &Tensor, mode: Mode) -> Result<Option<Tensor>>;
}

/// The encoder of `cfg`'s family, its weights from the builder's store (the pooler when `with_pooler`).
pub(crate) fn build(cfg: &BertConfig, b: &mut Builder<'_>, with_pooler: bool) -> Result<Box<dyn EncoderModel>> {
    Ok(match cfg.family().encoder {
        EncoderKind::Bert => Box::new(Encoder::build(cfg, b, with_pooler)?),
        EncoderKind::ModernBert => Box::new(ModernBert::build(cfg, b, with_pooler)?),
        EncoderKind::Deberta => Box::new(Deberta::build(cfg, b, with_pooler)?),
    })
}
