//! Model configuration: the Hugging Face `config.json` of a BERT-family encoder, plus bertfit's head settings.
//!
//! Plain serde data, separate from the model. Unknown keys of `config.json` are kept (`extra`) and written
//! back, so a saved model stays loadable by Hugging Face tools.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::family::{Family, Positions, FAMILIES};
use crate::error::{Error, Location, Result};
use crate::source::ModelFolder;
use crate::tokenize::TextTokenizer;

/// Hidden activation function of the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact GELU (erf), what Hugging Face calls `gelu`.
    #[serde(rename = "gelu", alias = "gelu_erf")]
    GeluErf,
    /// Tanh approximation of GELU (`gelu_new`, `gelu_pytorch_tanh`).
    #[serde(rename = "gelu_new", alias = "gelu_tanh", alias = "gelu_pytorch_tanh", alias = "gelu_fast")]
    GeluTanh,
    /// ReLU.
    Relu,
    /// Tanh.
    Tanh,
}

impl Activation {
    /// Parses a flag value (`gelu`, `relu`, `tanh`, `gelu_tanh`).
    pub fn parse(option: &str, s: &str) -> Result<Self> {
        match s {
            "gelu" | "gelu_erf" => Ok(Activation::GeluErf),
            "gelu_new" | "gelu_tanh" | "gelu_pytorch_tanh" => Ok(Activation::GeluTanh),
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            _ => Err(Error::config(option, format!("unknown activation `{s}` (expected gelu, gelu_tanh, relu or tanh)"))),
        }
    }
}

/// The encoder's architecture, read from a Hugging Face `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    /// `bert`, `roberta`, `distilbert`, `modernbert`, `deberta-v2`, … (a row of the family table).
    #[serde(default = "default_model_type")]
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Hidden size.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads.
    pub num_attention_heads: usize,
    /// Feed-forward inner size.
    pub intermediate_size: usize,
    /// Feed-forward activation.
    #[serde(default = "default_act")]
    pub hidden_act: Activation,
    /// Dropout after embeddings, attention output and feed-forward output.
    #[serde(default = "default_dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "default_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout before the classifier; `None` falls back to `hidden_dropout_prob` (as transformers does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classifier_dropout: Option<f64>,
    /// Number of position embeddings.
    pub max_position_embeddings: usize,
    /// Number of token-type (segment) embeddings.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: u32,
    /// Std-dev of the normal initialiser for new weights.
    #[serde(default = "default_init")]
    pub initializer_range: f64,
    /// Class names by id (`"0": "negative"`), present in fine-tuned checkpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id2label: Option<BTreeMap<String, String>>,
    /// Every other key, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

fn unsupported(path: &Path, model_type: &str) -> Error {
    Error::input(
        Location::file(path).field("model_type"),
        format!("`{model_type}` is not a supported encoder family (supported: {})", Family::supported().join(", ")),
    )
}

fn default_model_type() -> String {
    "bert".into()
}
fn default_act() -> Activation {
    Activation::GeluErf
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_init() -> f64 {
    0.02
}

impl BertConfig {
    /// Reads and validates a `config.json`, with the family's own keys (DistilBERT's `dim`, `n_layers`, …)
    /// read as the BERT keys they stand for.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io("cannot read model config", path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::parse(Location::file(path).line(e.line() as u64), "not a valid JSON config.json", e))?;
        // the family first: an unsupported one would otherwise fail on its own keys, less clearly
        if let Some(t) = value.get("model_type").and_then(|t| t.as_str()).filter(|t| Family::lookup(t).is_none()) {
            return Err(unsupported(path, t));
        }
        let cfg = Self::from_hf_json(value).map_err(|e| Error::parse(Location::file(path), "not a valid encoder config.json", e))?;
        cfg.validate(path)?;
        Ok(cfg)
    }

    /// A config from a `config.json` value in its family's own keys (not validated).
    pub fn from_hf_json(mut value: serde_json::Value) -> std::result::Result<Self, serde_json::Error> {
        let family = value.get("model_type").and_then(|t| t.as_str()).and_then(Family::lookup);
        if let (Some(family), Some(map)) = (family, value.as_object_mut()) {
            for (own, bert) in family.config_aliases {
                if !map.contains_key(*bert) {
                    if let Some(v) = map.remove(*own) {
                        map.insert((*bert).to_string(), v);
                    }
                }
            }
            for (key, value) in family.config_defaults {
                // whole numbers as integers, so size fields read them
                let v: serde_json::Value = if value.fract() == 0.0 { (*value as i64).into() } else { (*value).into() };
                map.entry(*key).or_insert(v);
            }
        }
        let mut cfg: BertConfig = serde_json::from_value(value)?;
        if family.is_some_and(|f| !f.token_types) {
            cfg.type_vocab_size = 0;
        }
        Ok(cfg)
    }

    /// The `config.json` value in the family's own keys, as Hugging Face's config class expects it.
    pub fn to_hf_json(&self) -> Result<serde_json::Value> {
        let mut value = serde_json::to_value(self).map_err(|e| Error::serialize("model config", e))?;
        let family = self.family();
        if let Some(map) = value.as_object_mut() {
            for (own, bert) in family.config_aliases {
                if let Some(v) = map.remove(*bert) {
                    map.insert((*own).to_string(), v);
                }
            }
            if !family.token_types {
                map.remove("type_vocab_size");
            }
        }
        Ok(value)
    }

    /// Checks the sizes fit together.
    pub fn validate(&self, path: &Path) -> Result<()> {
        let bad = |field: &str, msg: String| Err(Error::input(Location::file(path).field(field), msg));
        if self.hidden_size == 0 || self.num_attention_heads == 0 || !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return bad(
                "hidden_size",
                format!("{} is not divisible by num_attention_heads {}", self.hidden_size, self.num_attention_heads),
            );
        }
        for (field, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(field, format!("{p} is not a probability in [0, 1)"));
            }
        }
        if Family::lookup(&self.model_type).is_none() {
            return Err(unsupported(path, &self.model_type));
        }
        if let Some(kind) = self.extra.get("position_embedding_type").and_then(|v| v.as_str()).filter(|k| *k != "absolute") {
            return bad("position_embedding_type", format!("`{kind}` positions are not supported (only absolute)"));
        }
        if self.extra.get("sinusoidal_pos_embds").and_then(|v| v.as_bool()) == Some(true) {
            return bad("sinusoidal_pos_embds", "fixed sinusoidal position embeddings are not supported".into());
        }
        if self.family().token_types && self.family().encoder == super::family::EncoderKind::Bert && self.type_vocab_size == 0 {
            return bad("type_vocab_size", "must be at least 1 for this family".into());
        }
        if let Some(e) = self.embedding_size_key()? {
            if e == 0 || (e != self.hidden_size && !self.family().projected_embeddings) {
                return bad("embedding_size", format!("{e} differs from hidden_size {}, which this family does not support", self.hidden_size));
            }
        }
        if self.roberta_positions() && self.pad_token_id as usize + 1 >= self.max_position_embeddings {
            return bad(
                "pad_token_id",
                format!(
                    "{} leaves no positions: with RoBERTa-style positions, pad_token_id + 1 must be below max_position_embeddings ({})",
                    self.pad_token_id, self.max_position_embeddings
                ),
            );
        }
        Ok(())
    }

    /// This config's row of the family table (validated configs always have one).
    pub fn family(&self) -> &'static Family {
        Family::lookup(&self.model_type).unwrap_or(&FAMILIES[0])
    }

    /// Whether positions are offset by `pad_token_id + 1` (the RoBERTa convention).
    pub fn roberta_positions(&self) -> bool {
        Family::lookup(&self.model_type).is_some_and(|f| f.positions == Positions::PadOffset)
    }

    /// The Hugging Face architecture name of the matching sequence classifier.
    pub fn classifier_architecture(&self) -> &'static str {
        self.family().architecture
    }

    /// Tokens a sequence may hold: `max_position_embeddings`, less `pad_token_id + 1` with RoBERTa positions.
    pub fn position_room(&self) -> usize {
        let offset = if self.roberta_positions() { self.pad_token_id as usize + 1 } else { 0 };
        self.max_position_embeddings.saturating_sub(offset)
    }

    /// `max_len` cut to [`BertConfig::position_room`], with a note naming both numbers when it was cut.
    /// Training, evaluation and prediction all handle a too-long `--max-len` this way.
    pub fn fit_max_len(&self, max_len: usize) -> (usize, Option<String>) {
        let room = self.position_room();
        if max_len <= room {
            return (max_len, None);
        }
        (room, Some(format!("max_len {max_len} exceeds the model's {room} positions; using {room}")))
    }

    /// Refuses a tokenizer whose ids can reach beyond the embedding table (`vocab_size`): those would
    /// fail deep inside the model instead of naming the files that disagree.
    pub fn check_tokenizer(&self, tokenizer: &TextTokenizer, folder: &ModelFolder) -> Result<()> {
        let ids = tokenizer.vocab_size();
        if ids > self.vocab_size {
            return Err(Error::input(
                Location::file(tokenizer.source()),
                format!(
                    "the tokenizer has {ids} tokens but {} says vocab_size {}: they do not belong to the same model",
                    folder.config.display(),
                    self.vocab_size
                ),
            ));
        }
        Ok(())
    }

    /// `embedding_size` as the config gives it (ELECTRA), if it does.
    fn embedding_size_key(&self) -> Result<Option<usize>> {
        match self.extra.get("embedding_size") {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => v.as_u64().map(|e| Some(e as usize)).ok_or_else(|| Error::config("embedding_size", format!("{v} is not a size"))),
        }
    }

    /// Width of the embedding tables: `embedding_size` where the family projects embeddings to the hidden
    /// size (ELECTRA), else the hidden size.
    pub fn embedding_size(&self) -> usize {
        match self.embedding_size_key() {
            Ok(Some(e)) if self.family().projected_embeddings => e,
            _ => self.hidden_size,
        }
    }

    /// Whether an `embeddings_project` layer maps the embeddings to the hidden size.
    pub fn projects_embeddings(&self) -> bool {
        self.embedding_size() != self.hidden_size
    }

    /// Head dimension.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// How the sentence vector is taken from the encoder output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The pooler: dense + tanh on the [CLS] token (Hugging Face's `BertForSequenceClassification`).
    Cls,
    /// Mean of the token vectors under the attention mask.
    Mean,
}

/// The classification head on top of the pooled output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HeadConfig {
    /// Pooling strategy.
    pub pooling: Pooling,
    /// Sizes of hidden dense layers between pooled output and the output layer (empty: one linear layer).
    pub hidden: Vec<usize>,
    /// Dropout before each dense layer; `None` uses the encoder's classifier/hidden dropout.
    pub dropout: Option<f64>,
    /// Activation after each hidden layer.
    pub activation: Activation,
}

impl Default for HeadConfig {
    fn default() -> Self {
        HeadConfig { pooling: Pooling::Cls, hidden: Vec::new(), dropout: None, activation: Activation::GeluErf }
    }
}

impl HeadConfig {
    /// True when the head is exactly Hugging Face's (pooler + dropout + one linear layer).
    pub fn is_hf_layout(&self) -> bool {
        self.pooling == Pooling::Cls && self.hidden.is_empty()
    }
    /// Checks option values.
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::config("head-dropout", format!("{p} is not a probability in [0, 1)")));
            }
        }
        if self.hidden.contains(&0) {
            return Err(Error::config("head-hidden", "layer sizes must be positive"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minilm_style_config_and_keeps_unknown_keys() {
        let json = r#"{"architectures":["BertModel"],"hidden_act":"gelu","hidden_size":384,"intermediate_size":1536,
            "max_position_embeddings":512,"model_type":"bert","num_attention_heads":12,"num_hidden_layers":6,
            "vocab_size":30522,"layer_norm_eps":1e-12,"transformers_version":"4.8.2"}"#;
        let cfg: BertConfig = serde_json::from_str(json).expect("valid");
        assert_eq!(cfg.hidden_act, Activation::GeluErf);
        assert_eq!(cfg.head_dim(), 32);
        assert_eq!(cfg.type_vocab_size, 2);
        assert!(cfg.extra.contains_key("transformers_version"));
        let back = serde_json::to_value(&cfg).expect("serialise");
        assert_eq!(back["hidden_act"], "gelu");
        assert!(cfg.validate(Path::new("config.json")).is_ok());
    }

    #[test]
    fn rejects_bad_head_count() {
        let json = r#"{"hidden_size":30,"intermediate_size":8,"max_position_embeddings":8,"num_attention_heads":4,
            "num_hidden_layers":1,"vocab_size":10}"#;
        let cfg: BertConfig = serde_json::from_str(json).expect("valid json");
        let err = cfg.validate(Path::new("m/config.json")).expect_err("must fail").to_string();
        assert!(err.contains("m/config.json") && err.contains("hidden_size"), "{err}");
    }

    fn config(model_type: &str, pad: u32, positions: usize) -> BertConfig {
        let json = serde_json::json!({"model_type": model_type, "hidden_size": 8, "intermediate_size": 8,
            "max_position_embeddings": positions, "num_attention_heads": 2, "num_hidden_layers": 1, "vocab_size": 10,
            "pad_token_id": pad});
        serde_json::from_value(json).expect("valid json")
    }

    #[test]
    fn an_unknown_family_is_refused_with_the_supported_list() {
        let err = config("gpt2", 0, 16).validate(Path::new("m/config.json")).expect_err("gpt2").to_string();
        assert!(err.contains("field `model_type`") && err.contains("`gpt2`") && err.contains("bert, roberta, xlm-roberta, camembert"), "{err}");
        assert!(config("xlm-roberta", 1, 16).validate(Path::new("c")).is_ok());
    }

    #[test]
    fn positions_and_max_len_follow_the_family() {
        let bert = config("bert", 0, 16);
        assert_eq!(bert.position_room(), 16);
        let roberta = config("roberta", 1, 16);
        assert_eq!(roberta.position_room(), 14);
        assert_eq!(roberta.fit_max_len(14), (14, None));
        let (cut, note) = roberta.fit_max_len(100);
        assert_eq!(cut, 14);
        assert_eq!(note.as_deref(), Some("max_len 100 exceeds the model's 14 positions; using 14"));
        // a pad id at or beyond the positions is a config error, not an overflow
        let err = config("roberta", 16, 16).validate(Path::new("m/config.json")).expect_err("no room").to_string();
        assert!(err.contains("field `pad_token_id`"), "{err}");
    }
}
