//! The parameter store: every weight of a model as a named candle `Var`, with Hugging Face names, plus
//! loading from and saving to safetensors through a key-mapping table.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use candle_core::{CpuStorage, DType, Device, Storage, Tensor, Var};

use super::family::Family;
use crate::source::WeightFiles;
use crate::error::{Error, Result};
use crate::rng;

/// How a weight that the checkpoint lacks is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Normal(0, std) from the run's seeded init stream.
    Normal(f64),
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
}

/// Named model weights. Canonical names are Hugging Face's without the encoder prefix
/// (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`,
/// `pooler.dense.weight`) plus `classifier.*` for the head.
#[derive(Debug, Clone)]
pub struct ParamStore {
    vars: BTreeMap<String, Var>,
    device: Device,
    init_seed: u64,
    /// Names that the model asked for and the checkpoint did not have (freshly initialised).
    missing: Vec<String>,
    /// Names the model asked for (to compute unexpected keys).
    used: BTreeSet<String>,
    /// Checkpoint names that were dropped on purpose (position ids, integer buffers).
    skipped: Vec<String>,
    /// The checkpoint's own name of each loaded tensor (for messages).
    checkpoint_names: BTreeMap<String, String>,
}

/// What loading found, for the user: `missing` were initialised, `unexpected` were ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadReport {
    /// Weights the model needs that the checkpoint lacked (freshly initialised).
    pub missing: Vec<String>,
    /// Checkpoint tensors the model did not use.
    pub unexpected: Vec<String>,
}

/// Whether AdamW's weight decay applies to a parameter (transformers: not to biases or LayerNorm weights).
pub fn decays(name: &str) -> bool {
    // norms by name: BERT's `LayerNorm`, DistilBERT's `*_layer_norm`, ModernBERT's `*norm`
    !(name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm") || name.ends_with("norm.weight"))
}

/// Maps a checkpoint tensor name to its canonical name, or `None` to skip it silently (buffers such as
/// `position_ids`). Strips the encoder prefixes of the family table (`bert.`, `distilbert.`, …) and
/// `model.`, applies `family`'s renames (DistilBERT's `transformer.layer.N.attention.q_lin` …) and maps
/// old TF-style `gamma`/`beta`. Pre-training heads (`cls.`, `lm_head.`, …) keep their names: the model
/// does not ask for them, so loading reports them as ignored.
pub fn canonical_name(name: &str, family: &Family) -> Option<String> {
    let mut n = name;
    for prefix in Family::prefixes().into_iter().chain(["model"]) {
        if let Some(rest) = n.strip_prefix(prefix).and_then(|r| r.strip_prefix('.')) {
            n = rest;
            break;
        }
    }
    if n.ends_with("position_ids") || n.ends_with("token_type_ids") {
        return None;
    }
    let mut s = family.rename(n);
    if s.contains("LayerNorm") {
        if let Some(stem) = s.strip_suffix(".gamma") {
            s = format!("{stem}.weight");
        } else if let Some(stem) = s.strip_suffix(".beta") {
            s = format!("{stem}.bias");
        }
    }
    Some(s)
}

impl ParamStore {
    /// An empty store (every weight will be initialised).
    pub fn empty(device: Device, init_seed: u64) -> Self {
        ParamStore {
            vars: BTreeMap::new(),
            device,
            init_seed,
            missing: Vec::new(),
            used: BTreeSet::new(),
            skipped: Vec::new(),
            checkpoint_names: BTreeMap::new(),
        }
    }

    /// Loads a checkpoint of `family` (any of [`WeightFiles`]' formats), converting floating tensors to
    /// f32 and mapping names.
    pub fn from_files(files: &WeightFiles, family: &Family, device: Device, init_seed: u64) -> Result<Self> {
        let tensors = files.read(&device)?;
        let mut store = ParamStore::empty(device, init_seed);
        for (name, t) in tensors {
            match canonical_name(&name, family) {
                Some(canon) if t.dtype().is_float() => {
                    let t = t.to_dtype(DType::F32)?;
                    store.checkpoint_names.insert(canon.clone(), name);
                    store.vars.insert(canon, Var::from_tensor(&t)?);
                }
                _ => store.skipped.push(name),
            }
        }
        Ok(store)
    }

    /// The weight `name` with the given shape: loaded if present (shape-checked), else initialised.
    pub fn require(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Var> {
        self.used.insert(name.to_string());
        if let Some(v) = self.vars.get(name) {
            if v.dims() != shape {
                let own = self.checkpoint_names.get(name).map_or(name, String::as_str);
                return Err(Error::config(
                    "model",
                    format!("checkpoint tensor `{own}` has shape {:?}, the config says {:?}", v.dims(), shape),
                ));
            }
            return Ok(v.clone());
        }
        let var = self.fresh(name, shape, init)?;
        self.missing.push(name.to_string());
        Ok(var)
    }

    /// Replaces (or creates) `name` with a freshly initialised weight, e.g. a classifier for new labels.
    pub fn reinit(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Var> {
        self.used.insert(name.to_string());
        self.fresh(name, shape, init)
    }

    fn fresh(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Var> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => {
                let mut s = rng::Stream::new(&[self.init_seed, rng::label("init"), rng::label(name)]);
                (0..n).map(|_| (s.normal() * std) as f32).collect()
            }
        };
        let var = Var::from_tensor(&Tensor::from_vec(data, shape, &self.device)?)?;
        self.vars.insert(name.to_string(), var.clone());
        Ok(var)
    }

    /// Gives the loaded weight `from` the name `to` (a checkpoint's older name of a weight).
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(v) = self.vars.remove(from) {
            self.vars.insert(to.to_string(), v);
        }
        if let Some(own) = self.checkpoint_names.remove(from) {
            self.checkpoint_names.insert(to.to_string(), own);
        }
    }

    /// True when the checkpoint had `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// Shape of `name` if present.
    pub fn dims(&self, name: &str) -> Option<Vec<usize>> {
        self.vars.get(name).map(|v| v.dims().to_vec())
    }

    /// Missing and unexpected names after the model has been built.
    pub fn report(&self) -> LoadReport {
        let unexpected = self.vars.keys().filter(|k| !self.used.contains(*k)).cloned().collect();
        LoadReport { missing: self.missing.clone(), unexpected }
    }

    /// Drops tensors the model did not use (so they are neither trained nor saved).
    pub fn drop_unused(&mut self) {
        let used = &self.used;
        self.vars.retain(|k, _| used.contains(k));
    }

    /// All weights by canonical name.
    pub fn vars(&self) -> &BTreeMap<String, Var> {
        &self.vars
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Total number of scalar weights.
    pub fn num_params(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Writes every weight to `path`, renaming each with `rename` (e.g. adding the `bert.` prefix).
    pub fn save(&self, path: &Path, rename: impl Fn(&str) -> String) -> Result<()> {
        self.save_with(path, rename, &HashMap::new())
    }

    /// [`ParamStore::save`], writing `replace[name]` instead of the variable `name` (by canonical name).
    pub fn save_with(&self, path: &Path, rename: impl Fn(&str) -> String, replace: &HashMap<String, Tensor>) -> Result<()> {
        let map: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(k, v)| (rename(k), replace.get(k).cloned().unwrap_or_else(|| v.as_detached_tensor())))
            .collect();
        candle_core::safetensors::save(&map, path).map_err(|e| match e {
            candle_core::Error::Io(io) => Error::io("cannot write weights", path, io),
            other => Error::Tensor(other),
        })
    }
}

/// Calls `f` with a tensor's f32 data as a contiguous slice (copying only when the layout is strided).
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = t.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) = (&*storage, layout.contiguous_offsets()) {
            return Ok(f(&data[start..end]));
        }
    }
    let v: Vec<f32> = t.flatten_all()?.to_dtype(candle_core::DType::F32)?.to_vec1()?;
    Ok(f(&v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_strip_prefix_and_map_tf_names() {
        let bert = &crate::model::family::FAMILIES[0];
        let canonical = |n: &str| canonical_name(n, bert);
        assert_eq!(canonical("bert.embeddings.word_embeddings.weight").as_deref(), Some("embeddings.word_embeddings.weight"));
        assert_eq!(canonical("encoder.layer.0.output.dense.bias").as_deref(), Some("encoder.layer.0.output.dense.bias"));
        assert_eq!(canonical("bert.embeddings.LayerNorm.gamma").as_deref(), Some("embeddings.LayerNorm.weight"));
        assert_eq!(canonical("embeddings.LayerNorm.beta").as_deref(), Some("embeddings.LayerNorm.bias"));
        assert_eq!(canonical("embeddings.position_ids"), None);
        // pre-training heads are kept, to be reported as ignored
        assert_eq!(canonical("cls.predictions.bias").as_deref(), Some("cls.predictions.bias"));
        assert_eq!(canonical("classifier.weight").as_deref(), Some("classifier.weight"));
        let distil = Family::lookup("distilbert").expect("distilbert");
        assert_eq!(
            canonical_name("distilbert.transformer.layer.1.ffn.lin1.weight", distil).as_deref(),
            Some("encoder.layer.1.intermediate.dense.weight")
        );
        assert_eq!(canonical_name("pre_classifier.bias", distil).as_deref(), Some("pre_classifier.bias"));
    }

    #[test]
    fn require_initialises_missing_and_reports_unexpected() {
        let mut ps = ParamStore::empty(Device::Cpu, 3);
        ps.vars.insert("extra".into(), Var::from_tensor(&Tensor::zeros(2, DType::F32, &Device::Cpu).expect("t")).expect("v"));
        let w = ps.require("w", &[3, 4], Init::Normal(0.02)).expect("init");
        assert_eq!(w.dims(), &[3, 4]);
        let r = ps.report();
        assert_eq!(r.missing, vec!["w".to_string()]);
        assert_eq!(r.unexpected, vec!["extra".to_string()]);
        // Same seed and name → same init.
        let mut ps2 = ParamStore::empty(Device::Cpu, 3);
        let w2 = ps2.require("w", &[3, 4], Init::Normal(0.02)).expect("init");
        let a: Vec<f32> = w.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        let b: Vec<f32> = w2.flatten_all().and_then(|t| t.to_vec1()).expect("vec");
        assert_eq!(a, b);
    }

    #[test]
    fn shape_mismatch_is_an_error_naming_the_tensor() {
        let mut ps = ParamStore::empty(Device::Cpu, 0);
        ps.require("w", &[2, 2], Init::Zeros).expect("init");
        let err = ps.require("w", &[3, 2], Init::Zeros).expect_err("mismatch").to_string();
        assert!(err.contains("`w`"), "{err}");
    }
}
