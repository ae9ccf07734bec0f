//! The BERT encoder (embeddings, transformer layers, pooler) with Hugging Face tensor names.
//!
//! Ports `transformers/models/bert/modeling_bert.py` (`BertEmbeddings`, `BertSelfAttention`,
//! `BertSelfOutput`, `BertIntermediate`, `BertOutput`, `BertPooler`), including the dropout that
//! candle-transformers' inference port leaves out. RoBERTa-style checkpoints differ only in position ids.

use candle_core::{DType, Device, Tensor};

use super::config::{Activation, BertConfig};
use super::ops::{self, LayerNorm, Linear, Mode};
use super::params::{Init, ParamStore};
use crate::batch::Batch;
use crate::error::Result;
use crate::runtime::Exec;

/// Which weights receive gradients.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Freeze {
    /// Freeze embeddings, every layer and the pooler.
    pub encoder: bool,
    /// Freeze embeddings and the first N layers.
    pub layers: usize,
    /// Freeze the head too: nothing trains (inference; no autograd graph is recorded).
    pub head: bool,
}

impl Freeze {
    /// Every weight frozen: for inference.
    pub const ALL: Freeze = Freeze { encoder: true, layers: 0, head: true };

    /// Whether the canonical weight `name` is trainable.
    pub fn trainable(&self, name: &str) -> bool {
        if super::family::Family::is_head_tensor(name) {
            return !self.head;
        }
        if self.encoder {
            return false;
        }
        // the tables and LayerNorm, and ELECTRA's `embeddings_project`
        if name.starts_with("embeddings") {
            return self.layers == 0;
        }
        // `encoder.layer.N.` (BERT layout), `layers.N.` (ModernBERT)
        if let Some(rest) = name.strip_prefix("encoder.layer.").or_else(|| name.strip_prefix("layers.")) {
            let idx: usize = rest.split('.').next().and_then(|s| s.parse().ok()).unwrap_or(usize::MAX);
            return idx >= self.layers;
        }
        true
    }
}

/// Fetches weights from the store, detached when frozen.
pub(crate) struct Builder<'a> {
    pub store: &'a mut ParamStore,
    pub freeze: Freeze,
    pub init_std: f64,
    /// The runtime's arithmetic, recorded in every layer built.
    pub exec: Exec,
}

impl Builder<'_> {
    pub fn tensor(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Tensor> {
        let var = self.store.require(name, shape, init)?;
        Ok(if self.freeze.trainable(name) { var.as_tensor().clone() } else { var.as_detached_tensor() })
    }
    pub fn linear(&mut self, name: &str, inp: usize, out: usize) -> Result<Linear> {
        let weight = self.tensor(&format!("{name}.weight"), &[out, inp], Init::Normal(self.init_std))?;
        let bias = self.tensor(&format!("{name}.bias"), &[out], Init::Zeros)?;
        Ok(Linear { weight, bias: Some(bias), exec: self.exec })
    }
    /// A dense layer with a bias when `bias`; without one, `name.bias` is neither loaded nor created, and
    /// a constant zero shift stands in (so the fused dense kernel, which takes a bias, still runs it).
    pub fn linear_opt(&mut self, name: &str, inp: usize, out: usize, bias: bool) -> Result<Linear> {
        if bias {
            return self.linear(name, inp, out);
        }
        let weight = self.tensor(&format!("{name}.weight"), &[out, inp], Init::Normal(self.init_std))?;
        let zero = Tensor::zeros(out, DType::F32, self.store.device())?;
        Ok(Linear { weight, bias: Some(zero), exec: self.exec })
    }
    /// A LayerNorm with a trained bias when `bias`; without one, a constant zero shift (no weight).
    pub fn layer_norm_opt(&mut self, name: &str, dim: usize, eps: f64, bias: bool) -> Result<LayerNorm> {
        if bias {
            return self.layer_norm(name, dim, eps);
        }
        let weight = self.tensor(&format!("{name}.weight"), &[dim], Init::Ones)?;
        let bias = Tensor::zeros(dim, DType::F32, self.store.device())?;
        Ok(LayerNorm { weight, bias, eps, exec: self.exec })
    }
    pub fn layer_norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<LayerNorm> {
        let weight = self.tensor(&format!("{name}.weight"), &[dim], Init::Ones)?;
        let bias = self.tensor(&format!("{name}.bias"), &[dim], Init::Zeros)?;
        Ok(LayerNorm { weight, bias, eps, exec: self.exec })
    }
}

/// Dropout site ids: one per place dropout is applied in a forward pass.
pub(crate) mod site {
    pub const EMBEDDINGS: u64 = 0;
    pub fn attention_probs(layer: usize) -> u64 {
        1 + 3 * layer as u64
    }
    pub fn attention_output(layer: usize) -> u64 {
        2 + 3 * layer as u64
    }
    pub fn ffn_output(layer: usize) -> u64 {
        3 + 3 * layer as u64
    }
    pub fn head(i: usize) -> u64 {
        1_000_000 + i as u64
    }
}

#[derive(Debug, Clone)]
struct Embeddings {
    word: Tensor,
    position: Tensor,
    /// `None` for families without token types (DistilBERT).
    token_type: Option<Tensor>,
    norm: LayerNorm,
    /// ELECTRA's `embeddings_project` when `embedding_size` differs from the hidden size.
    project: Option<Linear>,
    dropout: f64,
    position_offset: u32,
    pad_id: u32,
    roberta_positions: bool,
    exec: Exec,
}

impl Embeddings {
    fn forward(&self, ids: &Tensor, type_ids: &Tensor, mask: &Tensor, mode: Mode) -> Result<Tensor> {
        let (b, s) = ids.dims2()?;
        let positions = if self.roberta_positions {
            // RoBERTa: pad positions get pad_id, the others count from pad_id + 1 (create_position_ids_from_input_ids).
            let m: Vec<u32> = mask.to_dtype(DType::U32)?.flatten_all()?.to_vec1()?;
            let mut pos = Vec::with_capacity(b * s);
            for row in m.chunks(s) {
                let mut c = 0u32;
                for &v in row {
                    c += v;
                    pos.push(if v > 0 { c + self.pad_id } else { self.pad_id });
                }
            }
            Tensor::from_vec(pos, (b, s), ids.device())?
        } else {
            let row: Vec<u32> = (0..s as u32).map(|p| p + self.position_offset).collect();
            Tensor::from_vec(row, (1, s), ids.device())?.broadcast_as((b, s))?.contiguous()?
        };
        let mut x = ops::embed(&self.word, ids)?.add(&ops::embed(&self.position, &positions)?)?;
        if let Some(table) = &self.token_type {
            x = x.add(&ops::embed(table, type_ids)?)?;
        }
        let x = self.norm.forward(&x)?;
        let x = ops::dropout(&x, self.dropout, mode, site::EMBEDDINGS, self.exec)?;
        match &self.project {
            Some(p) => p.forward(&x),
            None => Ok(x),
        }
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
    heads: usize,
    act: Activation,
    hidden_dropout: f64,
    /// Dropout of the attention block's output (0 where the family has none there).
    attn_out_dropout: f64,
    attn_dropout: f64,
    index: usize,
    exec: Exec,
}

impl Layer {
    /// `x`: (batch, seq, hidden); `bias`: (batch, 1, 1, seq).
    fn forward(&self, x: &Tensor, bias: &Tensor, mode: Mode) -> Result<Tensor> {
        let (q, k, v) = (self.query.forward(x)?, self.key.forward(x)?, self.value.forward(x)?);
        let ctx = ops::attention(&q, &k, &v, bias, self.heads, self.attn_dropout, mode, site::attention_probs(self.index), self.exec)?;
        let attn = self.attn_out.forward(&ctx)?;
        let x = self.attn_norm.forward(&ops::dropout_add(&attn, x, self.attn_out_dropout, mode, site::attention_output(self.index), self.exec)?)?;
        let inner = self.intermediate.forward_act(&x, self.act)?;
        let out = self.output.forward(&inner)?;
        self.out_norm.forward(&ops::dropout_add(&out, &x, self.hidden_dropout, mode, site::ffn_output(self.index), self.exec)?)
    }
}

/// Encoder inputs for one padded batch.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Token ids, (batch, seq) u32.
    pub input_ids: Tensor,
    /// Segment ids, (batch, seq) u32.
    pub type_ids: Tensor,
    /// Attention mask, (batch, seq) f32: 1 for tokens, 0 for padding.
    pub mask: Tensor,
}

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

/// Embeddings + transformer layers + (optional) pooler.
#[derive(Debug, Clone)]
pub struct Encoder {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<Linear>,
}

impl Encoder {
    pub(crate) fn build(cfg: &BertConfig, b: &mut Builder<'_>, with_pooler: bool) -> Result<Self> {
        let (h, e) = (cfg.hidden_size, cfg.embedding_size());
        let family = cfg.family();
        let init = Init::Normal(cfg.initializer_range);
        let embeddings = Embeddings {
            word: b.tensor("embeddings.word_embeddings.weight", &[cfg.vocab_size, e], init)?,
            position: b.tensor("embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, e], init)?,
            token_type: match family.token_types {
                true => Some(b.tensor("embeddings.token_type_embeddings.weight", &[cfg.type_vocab_size, e], init)?),
                false => None,
            },
            norm: b.layer_norm("embeddings.LayerNorm", e, cfg.layer_norm_eps)?,
            project: if cfg.projects_embeddings() { Some(b.linear("embeddings_project", e, h)?) } else { None },
            dropout: cfg.hidden_dropout_prob,
            position_offset: 0,
            pad_id: cfg.pad_token_id,
            roberta_positions: cfg.roberta_positions(),
            exec: b.exec,
        };
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                query: b.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: b.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: b.linear(&format!("{p}.attention.self.value"), h, h)?,
                attn_out: b.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: b.layer_norm(&format!("{p}.attention.output.LayerNorm"), h, cfg.layer_norm_eps)?,
                intermediate: b.linear(&format!("{p}.intermediate.dense"), h, cfg.intermediate_size)?,
                output: b.linear(&format!("{p}.output.dense"), cfg.intermediate_size, h)?,
                out_norm: b.layer_norm(&format!("{p}.output.LayerNorm"), h, cfg.layer_norm_eps)?,
                heads: cfg.num_attention_heads,
                act: cfg.hidden_act,
                hidden_dropout: cfg.hidden_dropout_prob,
                attn_out_dropout: if family.attention_output_dropout { cfg.hidden_dropout_prob } else { 0.0 },
                attn_dropout: cfg.attention_probs_dropout_prob,
                index: i,
                exec: b.exec,
            });
        }
        let pooler = if with_pooler { Some(b.linear("pooler.dense", h, h)?) } else { None };
        Ok(Encoder { embeddings, layers, pooler })
    }

    /// Last hidden state, (batch, seq, hidden).
    pub fn forward(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor> {
        let mut x = self.embeddings.forward(&inputs.input_ids, &inputs.type_ids, &inputs.mask, mode)?;
        let bias = ops::attention_bias(&inputs.mask)?;
        for layer in &self.layers {
            x = layer.forward(&x, &bias, mode)?;
        }
        Ok(x)
    }

    /// The pooler output: dense + tanh of the first token, (batch, hidden). `None` without a pooler.
    pub fn pool(&self, hidden: &Tensor) -> Result<Option<Tensor>> {
        let Some(pooler) = &self.pooler else { return Ok(None) };
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(Some(pooler.forward(&first)?.tanh()?))
    }
}

impl super::encoder::EncoderModel for Encoder {
    fn forward(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor> {
        Encoder::forward(self, inputs, mode)
    }

    fn pool(&self, hidden: &Tensor, _mask: &Tensor, _mode: Mode) -> Result<Option<Tensor>> {
        Encoder::pool(self, hidden)
    }
}
