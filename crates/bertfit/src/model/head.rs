//! The classification head: pooling, dropout and one or more dense layers.
//!
//! The default (pooler + dropout + one linear layer named `classifier`) is exactly Hugging Face's
//! `BertForSequenceClassification`. Deeper heads name their layers `classifier.hidden.N` and
//! `classifier.out`; Hugging Face tools cannot load those (documented in README.md).

use candle_core::{Tensor, D};

use super::bert::{site, Builder};
use super::config::{Activation, HeadConfig, Pooling};
use super::ops::{self, Linear, Mode};
use super::params::Init;
use crate::error::Result;
use crate::runtime::Exec;

/// Names of the head's tensors for a config, in order (weights then biases per layer).
pub fn layer_names(cfg: &HeadConfig) -> Vec<String> {
    if cfg.is_hf_layout() {
        return vec!["classifier".into()];
    }
    let mut names: Vec<String> = (0..cfg.hidden.len()).map(|i| format!("classifier.hidden.{i}")).collect();
    names.push("classifier.out".into());
    names
}

/// Pooling + dense layers → logits.
#[derive(Debug, Clone)]
pub struct Head {
    pooling: Pooling,
    layers: Vec<Linear>,
    dropout: f64,
    activation: Activation,
    exec: Exec,
}

impl Head {
    /// Builds (or re-initialises, when `fresh`) the head's weights for `num_labels` classes.
    pub(crate) fn build(
        cfg: &HeadConfig,
        hidden_size: usize,
        num_labels: usize,
        default_dropout: f64,
        b: &mut Builder<'_>,
        fresh: bool,
    ) -> Result<Self> {
        let names = layer_names(cfg);
        let mut sizes = vec![hidden_size];
        sizes.extend(cfg.hidden.iter().copied());
        sizes.push(num_labels);
        let mut layers = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let (inp, out) = (sizes[i], sizes[i + 1]);
            let (w, bname) = (format!("{name}.weight"), format!("{name}.bias"));
            if fresh {
                b.store.reinit(&w, &[out, inp], Init::Normal(b.init_std))?;
                b.store.reinit(&bname, &[out], Init::Zeros)?;
            }
            layers.push(b.linear(name, inp, out)?);
        }
        Ok(Head { pooling: cfg.pooling, layers, dropout: cfg.dropout.unwrap_or(default_dropout), activation: cfg.activation, exec: b.exec })
    }

    /// Whether this head reads the pooler output.
    pub fn uses_pooler(&self) -> bool {
        self.pooling == Pooling::Cls
    }

    /// `pooled`: the pooler output (Cls) or `None`; `hidden`: (batch, seq, h); `mask`: (batch, seq) f32.
    /// Returns logits, (batch, num_labels).
    pub fn forward(&self, pooled: Option<Tensor>, hidden: &Tensor, mask: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut x = match (self.pooling, pooled) {
            (Pooling::Cls, Some(p)) => p,
            (Pooling::Cls, None) => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            (Pooling::Mean, _) => {
                let m = mask.unsqueeze(D::Minus1)?;
                let summed = hidden.broadcast_mul(&m)?.sum(1)?;
                let count = m.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&count)?
            }
        };
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = ops::dropout(&x, self.dropout, mode, site::head(i), self.exec)?;
            x = layer.forward(&x)?;
            if i < last {
                x = ops::activate(&x, self.activation, self.exec)?;
            }
        }
        Ok(x)
    }
}
