//! A masked language model: a BERT-layout encoder with its family's `*ForMaskedLM` head (dense +
//! activation + LayerNorm, then a decoder tied to the word embeddings, plus a bias), loaded from and
//! saved to Hugging Face folders under the family's own names.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor, Var};

use super::bert::{Builder, Freeze, Inputs};
use super::config::{Activation, BertConfig};
use super::encoder::{self, EncoderModel};
use super::family::{Family, MlmHead};
use super::ops::{LayerNorm, Linear, Mode};
use super::params::{Init, LoadReport, ParamStore};
use crate::error::{Error, Location, Result};
use crate::runtime::Runtime;
use crate::source::ModelFolder;

/// The head as computed.
#[derive(Debug, Clone)]
struct Head {
    dense: Linear,
    act: Activation,
    norm: LayerNorm,
    /// The decoder: the word-embedding table as weight, the output bias.
    decoder: Linear,
}

/// Encoder + masked-LM head.
#[derive(Debug)]
pub struct MaskedLm {
    /// The encoder's configuration.
    pub config: BertConfig,
    /// What loading found missing (initialised) and unused (ignored).
    pub load_report: LoadReport,
    /// Whether the checkpoint had no masked-LM head, so one was initialised.
    pub head_initialised: bool,
    names: MlmHead,
    encoder: Box<dyn EncoderModel>,
    head: Head,
    store: ParamStore,
    runtime: Runtime,
}

/// Canonical names of weights that are kept and saved but not trained: the pooler, which a masked LM
/// does not compute (so a classifier fine-tuned from the result still starts from the trained one).
fn carried(name: &str) -> bool {
    name.starts_with("pooler.")
}

/// The masked-LM head names of `config`'s family, or an error naming the families that have one.
fn mlm_head_of(config: &BertConfig, path: &Path) -> Result<MlmHead> {
    config.family().mlm.ok_or_else(|| {
        let with: Vec<&str> = super::family::FAMILIES.iter().filter(|f| f.mlm.is_some()).flat_map(|f| f.model_types.iter().copied()).collect();
        Error::input(
            Location::file(path).field("model_type"),
            format!("masked-LM pretraining covers the BERT-layout families ({}), not `{}`", with.join(", "), config.model_type),
        )
    })
}

impl MaskedLm {
    /// Loads a model folder (a `*ForMaskedLM` checkpoint keeps its head; any other, such as a sentence
    /// encoder or a fine-tuned classifier, gets a fresh head, initialised from `seed`). Classifier heads
    /// are reported as unused and dropped.
    pub fn load(folder: &ModelFolder, runtime: Runtime, seed: u64) -> Result<Self> {
        let config = BertConfig::from_file(&folder.config)?;
        let names = mlm_head_of(&config, &folder.config)?;
        let family = config.family();
        let mut store = ParamStore::from_files(&folder.weights, family, runtime.device().clone(), seed)?;
        // older checkpoints name the bias after the decoder
        let legacy_bias = format!("{}.bias", names.decoder);
        if !store.contains(names.bias) && store.contains(&legacy_bias) {
            store.rename(&legacy_bias, names.bias);
        }
        let head_initialised = !store.contains(&format!("{}.weight", names.dense));
        let mut b = Builder { store: &mut store, freeze: Freeze::default(), init_std: config.initializer_range, exec: runtime.exec() };
        let encoder = encoder::build(&config, &mut b, false)?;
        let head = Self::build_head(&config, &names, &mut b)?;
        // the pooler rides along unchanged
        let pooler: Vec<String> = b.store.vars().keys().filter(|n| carried(n)).cloned().collect();
        for name in &pooler {
            if let Some(dims) = b.store.dims(name) {
                b.store.require(name, &dims, Init::Zeros)?;
            }
        }
        let mut load_report = store.report();
        // the tied decoder weight is the word embeddings; a checkpoint's copy of it is not "unused"
        let tied = format!("{}.weight", names.decoder);
        load_report.unexpected.retain(|n| *n != tied);
        store.drop_unused();
        Ok(MaskedLm { config, load_report, head_initialised, names, encoder, head, store, runtime })
    }

    fn build_head(config: &BertConfig, names: &MlmHead, b: &mut Builder<'_>) -> Result<Head> {
        let (h, e) = (config.hidden_size, config.embedding_size());
        let dense = b.linear(names.dense, h, e)?;
        let norm = b.layer_norm(names.norm, e, config.layer_norm_eps)?;
        let word = b.tensor("embeddings.word_embeddings.weight", &[config.vocab_size, e], Init::Normal(config.initializer_range))?;
        let bias = b.tensor(names.bias, &[config.vocab_size], Init::Zeros)?;
        Ok(Head { dense, act: names.activation.unwrap_or(config.hidden_act), norm, decoder: Linear { weight: word, bias: Some(bias), exec: b.exec } })
    }

    /// The encoder's last hidden state, (batch, seq, hidden).
    fn hidden(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor> {
        self.encoder.forward(inputs, mode)
    }

    /// Vocabulary logits of the rows of `hidden` (rows, hidden): the head's transform and the decoder.
    fn head_logits(&self, rows: &Tensor) -> Result<Tensor> {
        let x = self.head.dense.forward_act(rows, self.head.act)?;
        let x = self.head.norm.forward(&x)?;
        self.head.decoder.forward(&x)
    }

    /// Logits at every position, (batch, seq, vocab).
    pub fn logits(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor> {
        let hidden = self.hidden(inputs, mode)?;
        let (b, s, h) = hidden.dims3()?;
        let logits = self.head_logits(&hidden.reshape((b * s, h))?)?;
        Ok(logits.reshape((b, s, self.config.vocab_size))?)
    }

    /// Logits at the given flat positions (`row · seq + column`) of a batch, (positions, vocab): the
    /// head runs on the masked tokens only, as the loss needs nothing else.
    pub fn logits_at(&self, inputs: &Inputs, positions: &[u32], mode: Mode) -> Result<Tensor> {
        let hidden = self.hidden(inputs, mode)?;
        let (b, s, h) = hidden.dims3()?;
        let index = Tensor::from_slice(positions, positions.len(), hidden.device())?;
        let rows = hidden.reshape((b * s, h))?.index_select(&index, 0)?;
        self.head_logits(&rows)
    }

    /// The trainable weights by canonical name (all but the carried pooler; the word embeddings once,
    /// though they serve twice).
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.store.vars().iter().filter(|(n, _)| !carried(n)).map(|(n, v)| (n.clone(), v.clone())).collect()
    }

    /// Every weight.
    pub fn params(&self) -> &ParamStore {
        &self.store
    }

    /// The device.
    pub fn device(&self) -> &Device {
        self.store.device()
    }

    /// The runtime this model computes with.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Whether the canonical weight `name` belongs to the masked-LM head proper (its transform and output
    /// bias; the decoder weight is the word embeddings, part of the encoder).
    pub fn is_head(&self, name: &str) -> bool {
        name.starts_with(&format!("{}.", self.names.dense)) || name.starts_with(&format!("{}.", self.names.norm)) || name == self.names.bias
    }

    /// The head's Hugging Face names.
    pub fn head_names(&self) -> &MlmHead {
        &self.names
    }

    /// A view for evaluation: the same weight storage, no variables (no autograd graph is recorded).
    pub fn inference_view(&self) -> Result<MaskedLm> {
        let mut store = self.store.clone();
        let mut b = Builder { store: &mut store, freeze: Freeze::ALL, init_std: self.config.initializer_range, exec: self.runtime.exec() };
        let encoder = encoder::build(&self.config, &mut b, false)?;
        let head = Self::build_head(&self.config, &self.names, &mut b)?;
        Ok(MaskedLm {
            config: self.config.clone(),
            load_report: self.load_report.clone(),
            head_initialised: self.head_initialised,
            names: self.names,
            encoder,
            head,
            store,
            runtime: self.runtime.clone(),
        })
    }

    /// Writes `config.json` (the family's `*ForMaskedLM` architecture, no labels) and `model.safetensors`
    /// (encoder under the family prefix, the head under its own names; the decoder weight is left out,
    /// as transformers ties it to the word embeddings) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create model folder", dir, e))?;
        let mut cfg = self.config.clone();
        cfg.id2label = None;
        for key in ["label2id", "problem_type", "bertfit"] {
            cfg.extra.remove(key);
        }
        cfg.extra.insert("architectures".into(), serde_json::json!([self.names.architecture]));
        let json = serde_json::to_string_pretty(&cfg.to_hf_json()?).map_err(|e| Error::serialize("model config", e))?;
        let path = dir.join("config.json");
        std::fs::write(&path, json + "\n").map_err(|e| Error::io("cannot write", &path, e))?;
        let family: &Family = cfg.family();
        let head_prefixes = [self.names.dense, self.names.norm, self.names.decoder, self.names.bias];
        let rename = |name: &str| -> String {
            if head_prefixes.iter().any(|p| name.starts_with(p)) {
                name.to_string()
            } else {
                family.checkpoint_name(name)
            }
        };
        self.store.save_with(&dir.join("model.safetensors"), rename, &HashMap::new())
    }
}
