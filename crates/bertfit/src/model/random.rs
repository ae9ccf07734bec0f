//! Randomly initialised model folders: tiny BERTs for fast tests, full-size shapes for benchmarks.

use std::path::Path;

use candle_core::Device;

use super::bert::{Builder, Freeze};
use super::config::BertConfig;
use super::params::ParamStore;
use crate::error::{Error, Result};

/// A small BERT config (2 layers, hidden 32, 4 heads) for a vocabulary of `vocab_size` tokens.
pub fn tiny_config(vocab_size: usize) -> BertConfig {
    let json = serde_json::json!({
        "model_type": "bert", "vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64, "type_vocab_size": 2,
        "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
    });
    // The literal above always matches BertConfig's fields.
    serde_json::from_value(json).unwrap_or_else(|e| unreachable!("tiny config: {e}"))
}

/// Writes `config.json`, `vocab.txt` and a `model.safetensors` of Normal(0, initializer_range) weights
/// (the encoder of `cfg`'s family, with its pooler) into `dir`. `vocab` must hold `[PAD] [UNK] [CLS] [SEP]` and have `cfg.vocab_size` entries.
pub fn write_random_model(dir: &Path, cfg: &BertConfig, vocab: &[String], seed: u64) -> Result<()> {
    if vocab.len() != cfg.vocab_size {
        return Err(Error::config("vocab", format!("{} tokens for vocab_size {}", vocab.len(), cfg.vocab_size)));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create", dir, e))?;
    let mut store = ParamStore::empty(Device::Cpu, seed);
    let mut b = Builder { store: &mut store, freeze: Freeze::default(), init_std: cfg.initializer_range, exec: crate::runtime::Exec::default() };
    super::encoder::build(cfg, &mut b, true)?;
    store.save(&dir.join("model.safetensors"), |n| n.to_string())?;
    let json = serde_json::to_string_pretty(&cfg.to_hf_json()?).map_err(|e| Error::serialize("model config", e))?;
    let path = dir.join("config.json");
    std::fs::write(&path, json).map_err(|e| Error::io("cannot write", &path, e))?;
    let path = dir.join("vocab.txt");
    std::fs::write(&path, vocab.join("\n") + "\n").map_err(|e| Error::io("cannot write", &path, e))
}
