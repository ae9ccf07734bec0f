//! The classification head: pooling, dropout and one or more dense layers.
//!
//! The default is the family's own head, with its Hugging Face names ([`FamilyHead`]): BERT's pooler +
//! dropout + `classifier`, RoBERTa's and ELECTRA's `classifier.dense` + `classifier.out_proj`,
//! DistilBERT's `pre_classifier` + `classifier`. Custom heads (`--head-hidden`, mean pooling) name their
//! layers `classifier.hidden.N` and `classifier.out`; Hugging Face tools cannot load those (documented in
//! README.md).

use candle_core::{Tensor, D};

use super::bert::{site, Builder};
use super::config::{Activation, HeadConfig, Pooling};
use super::family::Family;
use super::ops::{self, Linear, Mode};
use super::params::Init;
use crate::error::Result;
use crate::runtime::Exec;

/// A head as computed: the family's own or a custom one, resolved to layers, names and dropout sites.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSpec {
    /// The encoder's pooler feeds the head.
    pub pooler: bool,
    /// First token (through the pooler when there is one) or mean.
    pub pooling: Pooling,
    /// Canonical names of the dense layers, input to output.
    pub names: Vec<String>,
    /// Widths: hidden size, each layer's output (the last is the number of classes).
    pub sizes: Vec<usize>,
    /// Activation after every layer but the last.
    pub activation: Activation,
    /// Dropout probability before each layer.
    pub dropout: f64,
    /// Whether the first layer's input is dropped out too.
    pub input_dropout: bool,
}

impl HeadSpec {
    /// The head `cfg` asks for on an encoder of `family` with `hidden` features, for `labels` classes;
    /// `default_dropout` is the config's classifier dropout.
    pub fn new(cfg: &HeadConfig, family: &Family, hidden: usize, labels: usize, default_dropout: f64) -> HeadSpec {
        let dropout = cfg.dropout.unwrap_or(default_dropout);
        if cfg.is_hf_layout() {
            let own = family.head;
            let (mut names, mut sizes, mut activation) = (Vec::new(), vec![hidden], cfg.activation);
            if let Some((name, act)) = own.dense {
                names.push(name.to_string());
                sizes.push(hidden);
                activation = act;
            }
            names.push(own.out.to_string());
            sizes.push(labels);
            return HeadSpec { pooler: own.pooler, pooling: Pooling::Cls, names, sizes, activation, dropout, input_dropout: own.input_dropout };
        }
        let mut names: Vec<String> = (0..cfg.hidden.len()).map(|i| format!("classifier.hidden.{i}")).collect();
        names.push("classifier.out".into());
        let mut sizes = vec![hidden];
        sizes.extend(cfg.hidden.iter().copied());
        sizes.push(labels);
        HeadSpec {
            pooler: family.head.pooler && cfg.pooling == Pooling::Cls,
            pooling: cfg.pooling,
            names,
            sizes,
            activation: cfg.activation,
            dropout,
            input_dropout: true,
        }
    }

    /// Whether dropout applies before layer `i`.
    pub fn drops_before(&self, i: usize) -> bool {
        self.dropout > 0.0 && (i > 0 || self.input_dropout)
    }
}

/// Pooling + dense layers → logits.
#[derive(Debug, Clone)]
pub struct Head {
    spec: HeadSpec,
    layers: Vec<Linear>,
    exec: Exec,
}

impl Head {
    /// Builds (or re-initialises, when `fresh`) the weights of the head `spec`.
    pub(crate) fn build(spec: &HeadSpec, b: &mut Builder<'_>, fresh: bool) -> Result<Self> {
        let mut layers = Vec::with_capacity(spec.names.len());
        for (i, name) in spec.names.iter().enumerate() {
            let (inp, out) = (spec.sizes[i], spec.sizes[i + 1]);
            let (w, bname) = (format!("{name}.weight"), format!("{name}.bias"));
            if fresh {
                b.store.reinit(&w, &[out, inp], Init::Normal(b.init_std))?;
                b.store.reinit(&bname, &[out], Init::Zeros)?;
            }
            layers.push(b.linear(name, inp, out)?);
        }
        Ok(Head { spec: spec.clone(), layers, exec: b.exec })
    }

    /// Whether this head reads the pooler output.
    pub fn uses_pooler(&self) -> bool {
        self.spec.pooler
    }

    /// `pooled`: the pooler output (Cls) or `None`; `hidden`: (batch, seq, h); `mask`: (batch, seq) f32.
    /// Returns logits, (batch, num_labels).
    pub fn forward(&self, pooled: Option<Tensor>, hidden: &Tensor, mask: &Tensor, mode: Mode) -> Result<Tensor> {
        let mut x = match (self.spec.pooling, pooled) {
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
            if self.spec.drops_before(i) {
                x = ops::dropout(&x, self.spec.dropout, mode, site::head(i), self.exec)?;
            }
            x = layer.forward(&x)?;
            if i < last {
                x = ops::activate(&x, self.spec.activation, self.exec)?;
            }
        }
        Ok(x)
    }
}
