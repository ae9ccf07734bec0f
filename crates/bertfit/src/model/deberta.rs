//! DeBERTa-v2 and -v3 (`model_type: deberta-v2`), ported from transformers' `modeling_deberta_v2.py` on
//! candle ops: BERT-style embeddings (absolute positions and token types only where the config has them,
//! `embed_proj` when `embedding_size` differs), BERT-style layers whose self-attention is disentangled —
//! content-to-content scores plus content-to-position (`c2p`) and position-to-content (`p2c`) scores
//! against a shared table of relative-distance embeddings (`encoder.rel_embeddings`, optionally
//! LayerNorm-ed), with distances clamped or log-bucketed (`position_buckets`), the position projections
//! shared with the content ones (`share_att_key`, v3) or their own (`pos_key_proj`, `pos_query_proj`) —
//! and the ContextPooler (dropout, `pooler.dense`, activation on the first token) as the classifier's
//! pooler.

use candle_core::{DType, Tensor};

use super::bert::{site, Builder, Inputs};
use super::config::{Activation, BertConfig};
use super::encoder::EncoderModel;
use super::ops::{self, LayerNorm, Linear, Mode};
use super::params::Init;
use crate::error::{Error, Result};
use crate::runtime::Exec;

/// An additive mask value for keys a query may not see.
const MASKED: f32 = -1e30;

/// A dropout site of the pooler, apart from the layers' and the head's.
const POOLER_SITE: u64 = 999_999;

/// Dropout sites of the relative embeddings in layer `l` (transformers' `pos_dropout`), apart from the
/// layers' own sites (below 3 · layers + 1) and the pooler's.
fn relative_site(l: usize) -> u64 {
    500_000 + l as u64
}

/// The relative-attention options of a DeBERTa-v2 `config.json`, with transformers' defaults.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    c2p: bool,
    p2c: bool,
    share_att_key: bool,
    /// Log buckets (`position_buckets > 0`), else plain distances clamped to the span.
    buckets: Option<usize>,
    max_relative: usize,
    norm_rel: bool,
    position_biased_input: bool,
    pooler_act: Activation,
    pooler_dropout: f64,
}

impl Options {
    fn read(cfg: &BertConfig) -> Result<Options> {
        let x = &cfg.extra;
        let flag = |key: &str, default: bool| x.get(key).and_then(|v| v.as_bool()).unwrap_or(default);
        let int = |key: &str| x.get(key).and_then(|v| v.as_i64());
        if !flag("relative_attention", false) {
            return Err(Error::config("relative_attention", "DeBERTa without relative attention is not supported"));
        }
        if int("conv_kernel_size").unwrap_or(0) > 0 {
            return Err(Error::config("conv_kernel_size", "DeBERTa-v2's convolution layer (xlarge/xxlarge) is not supported"));
        }
        if x.get("pooler_hidden_size").and_then(|v| v.as_u64()).is_some_and(|p| p as usize != cfg.hidden_size) {
            return Err(Error::config("pooler_hidden_size", "must equal hidden_size"));
        }
        let kinds: Vec<String> = match x.get("pos_att_type") {
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).map(str::to_lowercase).collect(),
            Some(serde_json::Value::String(s)) => s.split('|').map(|p| p.trim().to_lowercase()).collect(),
            _ => Vec::new(),
        };
        if let Some(other) = kinds.iter().find(|k| *k != "c2p" && *k != "p2c") {
            return Err(Error::config("pos_att_type", format!("`{other}` (expected c2p and/or p2c)")));
        }
        let max_relative = match int("max_relative_positions") {
            Some(m) if m >= 1 => m as usize,
            _ => cfg.max_position_embeddings,
        };
        let buckets = int("position_buckets").filter(|&b| b > 0).map(|b| b as usize);
        if buckets.is_some_and(|b| b < 2) || max_relative < 2 {
            return Err(Error::config("position_buckets", "relative attention needs at least 2 buckets and 2 positions"));
        }
        let norm = x.get("norm_rel_ebd").and_then(|v| v.as_str()).unwrap_or("none").to_lowercase();
        let act = x.get("pooler_hidden_act").and_then(|v| v.as_str()).unwrap_or("gelu");
        Ok(Options {
            c2p: kinds.iter().any(|k| k == "c2p"),
            p2c: kinds.iter().any(|k| k == "p2c"),
            share_att_key: flag("share_att_key", false),
            buckets,
            max_relative,
            norm_rel: norm.split('|').any(|p| p.trim() == "layer_norm"),
            position_biased_input: flag("position_biased_input", true),
            pooler_act: Activation::parse("pooler_hidden_act", act)?,
            pooler_dropout: x.get("pooler_dropout").and_then(|v| v.as_f64()).unwrap_or(0.0),
        })
    }

    /// Half the number of rows of the relative-embedding table used (`att_span`).
    fn span(&self) -> usize {
        self.buckets.unwrap_or(self.max_relative)
    }

    /// The bucketed relative position of query `i` and key `j` (`make_log_bucket_position`, in f32 as
    /// transformers computes it).
    fn relative(&self, i: usize, j: usize) -> i64 {
        let rel = i as i64 - j as i64;
        let Some(buckets) = self.buckets else { return rel };
        let mid = (buckets / 2) as i64;
        let abs = if rel < mid && rel > -mid { mid - 1 } else { rel.abs() };
        if abs <= mid {
            return rel;
        }
        let ratio = ((self.max_relative as f32 - 1.0) / mid as f32).ln();
        let log_pos = ((abs as f32 / mid as f32).ln() / ratio * (mid - 1) as f32).ceil() + mid as f32;
        log_pos as i64 * rel.signum()
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    pos_key: Option<Linear>,
    pos_query: Option<Linear>,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
    index: usize,
}

/// The DeBERTa-v2/v3 encoder and its ContextPooler.
#[derive(Debug, Clone)]
pub struct Deberta {
    word: Tensor,
    position: Option<Tensor>,
    token_type: Option<Tensor>,
    embed_proj: Option<Linear>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    rel_embeddings: Tensor,
    rel_norm: Option<LayerNorm>,
    pooler: Option<Linear>,
    opts: Options,
    heads: usize,
    act: Activation,
    dropout: f64,
    attn_dropout: f64,
    exec: Exec,
}

impl Deberta {
    pub(crate) fn build(cfg: &BertConfig, b: &mut Builder<'_>, with_pooler: bool) -> Result<Self> {
        let opts = Options::read(cfg)?;
        let (h, e, eps) = (cfg.hidden_size, cfg.embedding_size(), cfg.layer_norm_eps);
        let init = Init::Normal(cfg.initializer_range);
        let word = b.tensor("embeddings.word_embeddings.weight", &[cfg.vocab_size, e], init)?;
        let position = match opts.position_biased_input {
            true => Some(b.tensor("embeddings.position_embeddings.weight", &[cfg.max_position_embeddings, e], init)?),
            false => None,
        };
        let token_type = match cfg.type_vocab_size {
            0 => None,
            n => Some(b.tensor("embeddings.token_type_embeddings.weight", &[n, e], init)?),
        };
        let embed_proj = if e != h { Some(b.linear_opt("embeddings.embed_proj", e, h, false)?) } else { None };
        let emb_norm = b.layer_norm("embeddings.LayerNorm", h, eps)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let own = |b: &mut Builder<'_>, used: bool, name: &str| -> Result<Option<Linear>> {
                if used && !opts.share_att_key {
                    Ok(Some(b.linear(&format!("{p}.attention.self.{name}"), h, h)?))
                } else {
                    Ok(None)
                }
            };
            layers.push(Layer {
                query: b.linear(&format!("{p}.attention.self.query_proj"), h, h)?,
                key: b.linear(&format!("{p}.attention.self.key_proj"), h, h)?,
                value: b.linear(&format!("{p}.attention.self.value_proj"), h, h)?,
                pos_key: own(b, opts.c2p, "pos_key_proj")?,
                pos_query: own(b, opts.p2c, "pos_query_proj")?,
                attn_out: b.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: b.layer_norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                intermediate: b.linear(&format!("{p}.intermediate.dense"), h, cfg.intermediate_size)?,
                output: b.linear(&format!("{p}.output.dense"), cfg.intermediate_size, h)?,
                out_norm: b.layer_norm(&format!("{p}.output.LayerNorm"), h, eps)?,
                index: l,
            });
        }
        let rel_embeddings = b.tensor("encoder.rel_embeddings.weight", &[2 * opts.span(), h], init)?;
        let rel_norm = if opts.norm_rel { Some(b.layer_norm("encoder.LayerNorm", h, eps)?) } else { None };
        let pooler = if with_pooler { Some(b.linear("pooler.dense", h, h)?) } else { None };
        Ok(Deberta {
            word,
            position,
            token_type,
            embed_proj,
            emb_norm,
            layers,
            rel_embeddings,
            rel_norm,
            pooler,
            opts,
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
            dropout: cfg.hidden_dropout_prob,
            attn_dropout: cfg.attention_probs_dropout_prob,
            exec: b.exec,
        })
    }

    /// Gather indices into the `2 · span` relative embeddings, (1, seq, seq): `c2p[i][j]` for query `i`
    /// and key `j`, and `p2c[j][i]` (transformers' `clamp(±rel + span, 0, 2 · span − 1)`).
    fn positions(&self, s: usize, like: &Tensor) -> Result<(Tensor, Tensor)> {
        let span = self.opts.span() as i64;
        let clamp = |v: i64| v.clamp(0, 2 * span - 1) as u32;
        let (mut c2p, mut p2c) = (Vec::with_capacity(s * s), Vec::with_capacity(s * s));
        for i in 0..s {
            for j in 0..s {
                let rel = self.opts.relative(i, j);
                c2p.push(clamp(rel + span));
                p2c.push(clamp(-rel + span));
            }
        }
        Ok((Tensor::from_vec(c2p, (1, s, s), like.device())?, Tensor::from_vec(p2c, (1, s, s), like.device())?))
    }

    /// (batch, seq, hidden) → (batch · heads, seq, head_dim).
    fn heads_of(&self, x: &Tensor) -> Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let d = h / self.heads;
        Ok(x.reshape((b, s, self.heads, d))?.transpose(1, 2)?.contiguous()?.reshape((b * self.heads, s, d))?)
    }

    /// The relative table's rows for `heads`, projected by `proj`: (batch · heads, 2 · span, head_dim).
    fn positional(&self, rel: &Tensor, proj: &Linear, batch: usize) -> Result<Tensor> {
        let p = self.heads_of(&proj.forward(&rel.unsqueeze(0)?)?)?;
        let (hh, r, d) = p.dims3()?;
        Ok(p.unsqueeze(0)?.broadcast_as((batch, hh, r, d))?.contiguous()?.reshape((batch * hh, r, d))?)
    }

    fn layer(&self, layer: &Layer, x: &Tensor, bias: &Tensor, rel: &Tensor, idx: &(Tensor, Tensor), mode: Mode) -> Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let d = h / self.heads;
        let (q, k, v) = (self.heads_of(&layer.query.forward(x)?)?, self.heads_of(&layer.key.forward(x)?)?, self.heads_of(&layer.value.forward(x)?)?);
        let factor = 1 + usize::from(self.opts.c2p) + usize::from(self.opts.p2c);
        let scale = 1.0 / ((d * factor) as f64).sqrt();
        let mut scores = (q.matmul(&k.t()?)? * scale)?;
        let rel = ops::dropout(rel, self.dropout, mode, relative_site(layer.index), self.exec)?;
        let bh = b * self.heads;
        if self.opts.c2p {
            let proj = layer.pos_key.as_ref().unwrap_or(&layer.key);
            let pos_key = self.positional(&rel, proj, b)?;
            let att = q.matmul(&pos_key.t()?)?;
            let index = idx.0.broadcast_as((bh, s, s))?.contiguous()?;
            scores = scores.add(&(att.gather(&index, 2)? * scale)?)?;
        }
        if self.opts.p2c {
            let proj = layer.pos_query.as_ref().unwrap_or(&layer.query);
            let pos_query = self.positional(&rel, proj, b)?;
            let att = k.matmul(&pos_query.t()?)?;
            let index = idx.1.broadcast_as((bh, s, s))?.contiguous()?;
            scores = scores.add(&(att.gather(&index, 2)?.transpose(1, 2)? * scale)?)?;
        }
        let scores = scores.reshape((b, self.heads, s, s))?.broadcast_add(bias)?;
        let probs = ops::dropout(&ops::softmax_last(&scores)?, self.attn_dropout, mode, site::attention_probs(layer.index), self.exec)?;
        let ctx = probs.reshape((bh, s, s))?.matmul(&v)?.reshape((b, self.heads, s, d))?.transpose(1, 2)?.contiguous()?.reshape((b, s, h))?;
        let attn = layer.attn_out.forward(&ctx)?;
        let x = layer.attn_norm.forward(&ops::dropout_add(&attn, x, self.dropout, mode, site::attention_output(layer.index), self.exec)?)?;
        let inner = layer.intermediate.forward_act(&x, self.act)?;
        let out = layer.output.forward(&inner)?;
        layer.out_norm.forward(&ops::dropout_add(&out, &x, self.dropout, mode, site::ffn_output(layer.index), self.exec)?)
    }
}

impl EncoderModel for Deberta {
    fn forward(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor> {
        let (b, s) = inputs.input_ids.dims2()?;
        let mut x = ops::embed(&self.word, &inputs.input_ids)?;
        if let Some(table) = &self.position {
            let row: Vec<u32> = (0..s as u32).collect();
            let ids = Tensor::from_vec(row, (1, s), x.device())?.broadcast_as((b, s))?.contiguous()?;
            x = x.add(&ops::embed(table, &ids)?)?;
        }
        if let Some(table) = &self.token_type {
            x = x.add(&ops::embed(table, &inputs.type_ids)?)?;
        }
        if let Some(p) = &self.embed_proj {
            x = p.forward(&x)?;
        }
        // padding rows are zeroed after the LayerNorm, as transformers does
        let mask = inputs.mask.to_dtype(DType::F32)?;
        let x = self.emb_norm.forward(&x)?.broadcast_mul(&mask.unsqueeze(2)?)?;
        let mut x = ops::dropout(&x, self.dropout, mode, site::EMBEDDINGS, self.exec)?;
        let bias = ((mask.ones_like()? - &mask)? * MASKED as f64)?.reshape((b, 1, 1, s))?;
        let rel = match &self.rel_norm {
            Some(n) => n.forward(&self.rel_embeddings)?,
            None => self.rel_embeddings.clone(),
        };
        let idx = self.positions(s, &x)?;
        for layer in &self.layers {
            x = self.layer(layer, &x, &bias, &rel, &idx, mode)?;
        }
        Ok(x)
    }

    fn pool(&self, hidden: &Tensor, _mask: &Tensor, mode: Mode) -> Result<Option<Tensor>> {
        let Some(dense) = &self.pooler else { return Ok(None) };
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let first = ops::dropout(&first, self.opts.pooler_dropout, mode, POOLER_SITE, self.exec)?;
        Ok(Some(ops::activate(&dense.forward(&first)?, self.opts.pooler_act, self.exec)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(extra: serde_json::Value) -> Result<Options> {
        let mut json = serde_json::json!({"model_type": "deberta-v2", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 512, "relative_attention": true});
        if let (Some(map), Some(more)) = (json.as_object_mut(), extra.as_object()) {
            map.extend(more.clone());
        }
        Options::read(&BertConfig::from_hf_json(json).expect("config"))
    }

    #[test]
    fn log_buckets_follow_transformers() {
        // DeBERTa-v3-base: 256 buckets over 512 positions; the values are transformers'
        // make_log_bucket_position, computed with torch
        let o = options(serde_json::json!({"position_buckets": 256, "max_relative_positions": -1, "pos_att_type": ["p2c", "c2p"]})).expect("v3");
        assert_eq!((o.span(), o.c2p, o.p2c), (256, true, true));
        let at = |o: &Options, rel: i64| if rel >= 0 { o.relative(rel as usize, 0) } else { o.relative(0, (-rel) as usize) };
        for (rel, bucket) in [(0i64, 0i64), (5, 5), (-127, -127), (128, 128), (129, 129), (200, 169), (-300, -207), (511, 255)] {
            assert_eq!(at(&o, rel), bucket, "distance {rel}");
        }
        // the fixtures' 8 buckets over 16 positions, distances 0..=63 (negative ones mirror them)
        let small = options(serde_json::json!({"position_buckets": 8, "max_relative_positions": 16, "pos_att_type": ["c2p"]})).expect("small");
        let torch: [i64; 64] = [
            0, 1, 2, 3, 4, 5, 5, 6, 6, 6, 7, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10,
            10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11,
        ];
        for (d, &bucket) in torch.iter().enumerate() {
            assert_eq!((at(&small, d as i64), at(&small, -(d as i64))), (bucket, -bucket), "distance {d}");
        }
        // no buckets: the plain distance, clamped by the caller
        let o = options(serde_json::json!({"position_buckets": -1, "max_relative_positions": 12, "pos_att_type": "c2p"})).expect("v2");
        assert_eq!((o.span(), o.relative(40, 3), o.p2c), (12, 37, false));
        for (extra, field) in [
            (serde_json::json!({"relative_attention": false}), "relative_attention"),
            (serde_json::json!({"conv_kernel_size": 3}), "conv_kernel_size"),
            (serde_json::json!({"pos_att_type": ["p2p"]}), "pos_att_type"),
            (serde_json::json!({"position_buckets": 1}), "position_buckets"),
        ] {
            let err = options(extra).expect_err(field).to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
