//! ModernBERT (`model_type: modernbert`), ported from transformers' `modeling_modernbert.py` (eager
//! attention) on candle ops: token embeddings + LayerNorm (no position table), pre-norm layers (the first
//! without its attention norm) with one `Wqkv` projection, rotary positions (one base for global layers,
//! another for local ones), global or sliding-window attention (`local_attention / 2` tokens either side),
//! a GeGLU feed-forward (`Wi` → act(input) · gate → `Wo`) and a final norm; biases, on dense layers and
//! norms, only where the config asks. Its prediction head (`head.dense` + activation + `head.norm`, on the
//! first token or the mask-weighted mean, as `classifier_pooling` says) is the classifier's pooler, as
//! BERT's pooler is: it is pretrained (masked-LM checkpoints carry it) and frozen with the encoder.

use candle_core::{DType, Tensor, D};

use super::bert::{site, Builder, Inputs};
use super::config::{Activation, BertConfig};
use super::encoder::EncoderModel;
use super::ops::{self, LayerNorm, Linear, Mode};
use super::params::Init;
use crate::error::{Error, Result};
use crate::runtime::Exec;

/// An additive mask value for keys a query may not see (finite, so a row with none left stays finite).
const MASKED: f32 = -1e30;

/// The options of a ModernBERT `config.json` beyond the BERT keys, with transformers' defaults.
#[derive(Debug, Clone, PartialEq)]
struct Options {
    norm_bias: bool,
    attention_bias: bool,
    mlp_bias: bool,
    classifier_bias: bool,
    classifier_activation: Activation,
    mean_pooling: bool,
    /// Tokens either side a local layer sees (`local_attention / 2`).
    half_window: usize,
    /// Per layer: global (full) attention.
    global: Vec<bool>,
    /// Rotary bases of global and local layers.
    theta: [f64; 2],
    mlp_dropout: f64,
}

impl Options {
    fn read(cfg: &BertConfig) -> Result<Options> {
        let x = &cfg.extra;
        let flag = |key: &str| x.get(key).and_then(|v| v.as_bool()).unwrap_or(false);
        let number = |key: &str| x.get(key).and_then(|v| v.as_f64());
        let bad = |key: &str, msg: String| Error::config(key, msg);
        let layers = cfg.num_hidden_layers;
        let global = match x.get("layer_types").and_then(|v| v.as_array()) {
            Some(types) => {
                if types.len() != layers {
                    return Err(bad("layer_types", format!("{} entries for {layers} layers", types.len())));
                }
                types
                    .iter()
                    .map(|t| match t.as_str() {
                        Some("full_attention") => Ok(true),
                        Some("sliding_attention") => Ok(false),
                        _ => Err(bad("layer_types", format!("{t} is neither full_attention nor sliding_attention"))),
                    })
                    .collect::<Result<Vec<bool>>>()?
            }
            None => {
                let every = number("global_attn_every_n_layers").unwrap_or(3.0).max(1.0) as usize;
                (0..layers).map(|i| i % every == 0).collect()
            }
        };
        let rope = |kind: &str, legacy: &str, default: f64| -> Result<f64> {
            let params = x.get("rope_parameters").and_then(|p| p.get(kind));
            if let Some(t) = params.and_then(|p| p.get("rope_type")).and_then(|t| t.as_str()).filter(|t| *t != "default") {
                return Err(bad("rope_parameters", format!("rope_type `{t}` is not supported (only default)")));
            }
            Ok(params.and_then(|p| p.get("rope_theta")).and_then(|t| t.as_f64()).or_else(|| number(legacy)).unwrap_or(default))
        };
        let activation = x.get("classifier_activation").and_then(|v| v.as_str()).unwrap_or("gelu");
        let pooling = x.get("classifier_pooling").and_then(|v| v.as_str()).unwrap_or("cls");
        if pooling != "cls" && pooling != "mean" {
            return Err(bad("classifier_pooling", format!("`{pooling}` (expected cls or mean)")));
        }
        Ok(Options {
            norm_bias: flag("norm_bias"),
            attention_bias: flag("attention_bias"),
            mlp_bias: flag("mlp_bias"),
            classifier_bias: flag("classifier_bias"),
            classifier_activation: Activation::parse("classifier_activation", activation)?,
            mean_pooling: pooling == "mean",
            half_window: number("local_attention").unwrap_or(128.0) as usize / 2,
            global,
            theta: [rope("full_attention", "global_rope_theta", 160_000.0)?, rope("sliding_attention", "local_rope_theta", 10_000.0)?],
            mlp_dropout: number("mlp_dropout").unwrap_or(0.0),
        })
    }
}

#[derive(Debug, Clone)]
struct Layer {
    attn_norm: Option<LayerNorm>,
    wqkv: Linear,
    wo: Linear,
    mlp_norm: LayerNorm,
    wi: Linear,
    wo_mlp: Linear,
    global: bool,
    index: usize,
}

#[derive(Debug, Clone)]
struct Pooler {
    dense: Linear,
    norm: LayerNorm,
}

/// The ModernBERT encoder (and its pooler, the prediction head).
#[derive(Debug, Clone)]
pub struct ModernBert {
    embeddings: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    final_norm: LayerNorm,
    pooler: Option<Pooler>,
    opts: Options,
    heads: usize,
    act: Activation,
    dropout: f64,
    attn_dropout: f64,
    exec: Exec,
}

impl ModernBert {
    pub(crate) fn build(cfg: &BertConfig, b: &mut Builder<'_>, with_pooler: bool) -> Result<Self> {
        let opts = Options::read(cfg)?;
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let head_dim = cfg.head_dim();
        if !head_dim.is_multiple_of(2) {
            return Err(Error::config("num_attention_heads", format!("rotary positions need an even head size, not {head_dim}")));
        }
        let embeddings = b.tensor("embeddings.tok_embeddings.weight", &[cfg.vocab_size, h], Init::Normal(cfg.initializer_range))?;
        let emb_norm = b.layer_norm_opt("embeddings.norm", h, eps, opts.norm_bias)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("layers.{l}");
            layers.push(Layer {
                attn_norm: if l == 0 { None } else { Some(b.layer_norm_opt(&format!("{p}.attn_norm"), h, eps, opts.norm_bias)?) },
                wqkv: b.linear_opt(&format!("{p}.attn.Wqkv"), h, 3 * h, opts.attention_bias)?,
                wo: b.linear_opt(&format!("{p}.attn.Wo"), h, h, opts.attention_bias)?,
                mlp_norm: b.layer_norm_opt(&format!("{p}.mlp_norm"), h, eps, opts.norm_bias)?,
                wi: b.linear_opt(&format!("{p}.mlp.Wi"), h, 2 * i, opts.mlp_bias)?,
                wo_mlp: b.linear_opt(&format!("{p}.mlp.Wo"), i, h, opts.mlp_bias)?,
                global: opts.global[l],
                index: l,
            });
        }
        let final_norm = b.layer_norm_opt("final_norm", h, eps, opts.norm_bias)?;
        let pooler = match with_pooler {
            true => Some(Pooler { dense: b.linear_opt("head.dense", h, h, opts.classifier_bias)?, norm: b.layer_norm_opt("head.norm", h, eps, opts.norm_bias)? }),
            false => None,
        };
        Ok(ModernBert {
            embeddings,
            emb_norm,
            layers,
            final_norm,
            pooler,
            opts,
            heads: cfg.num_attention_heads,
            act: cfg.hidden_act,
            dropout: cfg.hidden_dropout_prob,
            attn_dropout: cfg.attention_probs_dropout_prob,
            exec: b.exec,
        })
    }

    /// Rotary `cos` and `sin` tables, (1, 1, seq, head_dim), for positions 0..seq and base `theta`.
    fn rotary(&self, seq: usize, head_dim: usize, theta: f64, like: &Tensor) -> Result<(Tensor, Tensor)> {
        let half = head_dim / 2;
        let (mut cos, mut sin) = (Vec::with_capacity(seq * head_dim), Vec::with_capacity(seq * head_dim));
        for p in 0..seq {
            // transformers: inv_freq = 1 / theta^(2i / d); the row is [freqs, freqs]
            let freqs: Vec<f64> = (0..half).map(|i| p as f64 / theta.powf((2 * i) as f64 / head_dim as f64)).collect();
            for _ in 0..2 {
                cos.extend(freqs.iter().map(|f| f.cos() as f32));
                sin.extend(freqs.iter().map(|f| f.sin() as f32));
            }
        }
        let shape = (1, 1, seq, head_dim);
        Ok((Tensor::from_vec(cos, shape, like.device())?, Tensor::from_vec(sin, shape, like.device())?))
    }

    /// Additive attention masks, (batch, 1, seq, seq): padding keys hidden; for local layers also keys
    /// more than `half_window` tokens away. Index 0 global, 1 local.
    fn masks(&self, mask: &Tensor) -> Result<[Tensor; 2]> {
        let (b, s) = mask.dims2()?;
        let keep: Vec<f32> = mask.flatten_all()?.to_vec1()?;
        let w = self.opts.half_window;
        let mut out = Vec::with_capacity(2);
        for local in [false, true] {
            let mut m = vec![0f32; b * s * s];
            for row in 0..b {
                for q in 0..s {
                    for k in 0..s {
                        let visible = keep[row * s + k] > 0.0 && (!local || q.abs_diff(k) <= w);
                        if !visible {
                            m[(row * s + q) * s + k] = MASKED;
                        }
                    }
                }
            }
            out.push(Tensor::from_vec(m, (b, 1, s, s), mask.device())?);
        }
        let local = out.pop().ok_or_else(|| Error::config("model", "attention masks"))?;
        let global = out.pop().ok_or_else(|| Error::config("model", "attention masks"))?;
        Ok([global, local])
    }

    fn layer(&self, layer: &Layer, x: &Tensor, mask: &Tensor, rope: &(Tensor, Tensor), mode: Mode) -> Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let d = h / self.heads;
        let normed = match &layer.attn_norm {
            Some(n) => n.forward(x)?,
            None => x.clone(),
        };
        let qkv = layer.wqkv.forward(&normed)?;
        let split = |at: usize| -> Result<Tensor> { Ok(qkv.narrow(2, at * h, h)?.reshape((b, s, self.heads, d))?.transpose(1, 2)?.contiguous()?) };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let rotate = |t: &Tensor| -> Result<Tensor> {
            let (cos, sin) = rope;
            let half = d / 2;
            let rotated = Tensor::cat(&[&t.narrow(3, half, half)?.neg()?, &t.narrow(3, 0, half)?], 3)?;
            Ok(t.broadcast_mul(cos)?.add(&rotated.broadcast_mul(sin)?)?)
        };
        let (q, k) = (rotate(&q)?, rotate(&k)?);
        let scores = (q.matmul(&k.t()?)? * (1.0 / (d as f64).sqrt()))?.broadcast_add(mask)?;
        let probs = ops::dropout(&ops::softmax_last(&scores)?, self.attn_dropout, mode, site::attention_probs(layer.index), self.exec)?;
        let ctx = probs.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, s, h))?;
        let attn = ops::dropout(&layer.wo.forward(&ctx)?, self.attn_dropout, mode, site::attention_output(layer.index), self.exec)?;
        let x = x.add(&attn)?;
        let wi = layer.wi.forward(&layer.mlp_norm.forward(&x)?)?;
        let inner = wi.dim(D::Minus1)? / 2;
        let glu = ops::activate(&wi.narrow(2, 0, inner)?, self.act, self.exec)?.mul(&wi.narrow(2, inner, inner)?)?;
        let glu = ops::dropout(&glu, self.opts.mlp_dropout, mode, site::ffn_output(layer.index), self.exec)?;
        Ok(x.add(&layer.wo_mlp.forward(&glu)?)?)
    }
}

impl EncoderModel for ModernBert {
    fn forward(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor> {
        let x = ops::embed(&self.embeddings, &inputs.input_ids)?;
        let mut x = ops::dropout(&self.emb_norm.forward(&x)?, self.dropout, mode, site::EMBEDDINGS, self.exec)?;
        let (_, s, h) = x.dims3()?;
        let d = h / self.heads;
        let masks = self.masks(&inputs.mask)?;
        let ropes = [self.rotary(s, d, self.opts.theta[0], &x)?, self.rotary(s, d, self.opts.theta[1], &x)?];
        for layer in &self.layers {
            let kind = usize::from(!layer.global);
            x = self.layer(layer, &x, &masks[kind], &ropes[kind], mode)?;
        }
        self.final_norm.forward(&x)
    }

    fn pool(&self, hidden: &Tensor, mask: &Tensor, _mode: Mode) -> Result<Option<Tensor>> {
        let Some(p) = &self.pooler else { return Ok(None) };
        let pooled = if self.opts.mean_pooling {
            let m = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?;
            hidden.broadcast_mul(&m)?.sum(1)?.broadcast_div(&m.sum(1)?)?
        } else {
            hidden.narrow(1, 0, 1)?.squeeze(1)?
        };
        let x = ops::activate(&p.dense.forward(&pooled)?, self.opts.classifier_activation, self.exec)?;
        Ok(Some(p.norm.forward(&x)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: serde_json::Value) -> BertConfig {
        let mut json = serde_json::json!({"model_type": "modernbert", "vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 4,
            "num_attention_heads": 2, "intermediate_size": 12, "max_position_embeddings": 16});
        if let (Some(map), Some(more)) = (json.as_object_mut(), extra.as_object()) {
            map.extend(more.clone());
        }
        BertConfig::from_hf_json(json).expect("config")
    }

    #[test]
    fn options_follow_both_config_generations() {
        // the Hub's original keys: every third layer global, two rope bases by name
        let old = Options::read(&config(serde_json::json!({"global_attn_every_n_layers": 3, "global_rope_theta": 160000.0,
            "local_rope_theta": 10000.0, "local_attention": 128}))).expect("old");
        assert_eq!(old.global, vec![true, false, false, true]);
        assert_eq!((old.theta, old.half_window), ([160000.0, 10000.0], 64));
        // transformers 5: layer_types and rope_parameters
        let new = Options::read(&config(serde_json::json!({"layer_types": ["full_attention", "sliding_attention", "full_attention", "sliding_attention"],
            "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1000.0}, "sliding_attention": {"rope_type": "default", "rope_theta": 50.0}},
            "classifier_pooling": "mean", "norm_bias": true}))).expect("new");
        assert_eq!((new.global, new.theta, new.mean_pooling, new.norm_bias), (vec![true, false, true, false], [1000.0, 50.0], true, true));
        // ModernBERT's defaults, not BERT's, where the config is silent
        let plain = config(serde_json::json!({}));
        assert_eq!((plain.hidden_dropout_prob, plain.classifier_dropout, plain.layer_norm_eps), (0.0, Some(0.0), 1e-5));
        for (extra, field) in [
            (serde_json::json!({"layer_types": ["full_attention"]}), "layer_types"),
            (serde_json::json!({"classifier_pooling": "max"}), "classifier_pooling"),
            (serde_json::json!({"rope_parameters": {"full_attention": {"rope_type": "yarn"}}}), "rope_parameters"),
        ] {
            let err = Options::read(&config(extra)).expect_err(field).to_string();
            assert!(err.contains(field), "{err}");
        }
    }
}
