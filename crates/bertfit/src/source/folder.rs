//! A Hugging Face model folder on disk: where its config, weights and tokenizer files are.

use std::path::{Path, PathBuf};

use super::weights::WeightFiles;
use crate::error::{Error, Location, Result};

/// The files of a model folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelFolder {
    /// The folder.
    pub dir: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// The weights: `model.safetensors`, sharded safetensors or a PyTorch checkpoint.
    pub weights: WeightFiles,
    /// `tokenizer.json`, if present.
    pub tokenizer_json: Option<PathBuf>,
    /// `vocab.txt`, if present.
    pub vocab_txt: Option<PathBuf>,
    /// `tokenizer_config.json`, if present.
    pub tokenizer_config: Option<PathBuf>,
}

impl ModelFolder {
    /// Checks that `dir` holds a usable model and records its files.
    pub fn open(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::input(Location::file(dir), "model folder not found (expected a folder with config.json and model weights, or a hub id like org/name)"));
        }
        let config = dir.join("config.json");
        if !config.is_file() {
            return Err(Error::input(Location::file(&config), "missing: a model folder needs config.json"));
        }
        let weights = WeightFiles::locate(dir)?;
        let opt = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        let folder = ModelFolder {
            dir: dir.to_path_buf(),
            config,
            weights,
            tokenizer_json: opt("tokenizer.json"),
            vocab_txt: opt("vocab.txt"),
            tokenizer_config: opt("tokenizer_config.json"),
        };
        if folder.tokenizer_json.is_none() && folder.vocab_txt.is_none() {
            // DeBERTa-v3 and XLM-R repositories often ship only the SentencePiece model
            let hint = ["spm.model", "sentencepiece.bpe.model", "tokenizer.model"]
                .iter()
                .find(|f| dir.join(f).is_file())
                .map(|f| {
                    format!(
                        " (it has {f}, a SentencePiece model: convert it once with transformers, \
                         `AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR)`, which writes tokenizer.json)"
                    )
                })
                .unwrap_or_default();
            return Err(Error::input(Location::file(dir), format!("no tokenizer: the model folder needs tokenizer.json or vocab.txt{hint}")));
        }
        Ok(folder)
    }

    /// A local folder if `spec` names one, else a Hugging Face Hub id fetched into `cache` (needs network).
    pub fn resolve(spec: &str, cache: Option<&Path>) -> Result<Self> {
        let path = Path::new(spec);
        if path.exists() || !super::hub::looks_like_hub_id(spec) {
            return ModelFolder::open(path);
        }
        let (repo, revision) = match spec.split_once('@') {
            Some((r, rev)) => (r, rev),
            None => (spec, "main"),
        };
        let dir = super::hub::fetch_model(repo, revision, None, cache)?;
        ModelFolder::open(&dir)
    }

    /// Whether the tokenizer lowercases, from `tokenizer_config.json` (`do_lower_case`, default true).
    pub fn lowercase(&self) -> bool {
        self.tokenizer_config
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v.get("do_lower_case").and_then(|b| b.as_bool()))
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sentencepiece_only_folder_is_told_how_to_get_tokenizer_json() {
        let dir = tempfile::tempdir().expect("tmp");
        for f in ["config.json", "model.safetensors", "spm.model"] {
            std::fs::write(dir.path().join(f), b"x").expect("write");
        }
        let err = ModelFolder::open(dir.path()).expect_err("no tokenizer.json").to_string();
        assert!(err.contains("tokenizer.json or vocab.txt") && err.contains("spm.model") && err.contains("save_pretrained"), "{err}");
        std::fs::remove_file(dir.path().join("spm.model")).expect("rm");
        let err = ModelFolder::open(dir.path()).expect_err("no tokenizer").to_string();
        assert!(!err.contains("SentencePiece"), "{err}");
    }
}
