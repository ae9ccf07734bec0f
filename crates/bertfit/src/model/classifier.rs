//! A BERT-family sequence classifier: encoder + head, loaded from and saved to Hugging Face model folders.

use std::path::Path;

use candle_core::{Device, Tensor, Var};

use crate::runtime::{Precision, Runtime};
use serde::{Deserialize, Serialize};

use super::bert::{Builder, Freeze, Inputs};
use super::encoder::{self, EncoderModel};
use super::config::{BertConfig, HeadConfig};
use crate::source::ModelFolder;
use super::family::Family;
use super::head::{Head, HeadSpec};
use super::ops::Mode;
use super::params::{LoadReport, ParamStore};
use crate::data::{ProblemType, Scaling};
use crate::windows::Chunking;
use crate::error::{Error, Location, Result};

/// bertfit's own settings, stored under the `bertfit` key of a saved `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedMeta {
    /// The classification head.
    pub head: HeadConfig,
    /// Maximum sequence length used in training.
    pub max_len: usize,
    /// Matmul precision used in training; eval and predict default to it (absent in folders saved
    /// before it was recorded: f32).
    #[serde(default)]
    pub precision: Precision,
    /// Multi-label: each label's decision threshold, tuned on validation data (absent: 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<f32>>,
    /// Regression: the targets' scaling the model was trained with. In a saved model folder it is
    /// folded into the last layer (the outputs are in the targets' units); in a checkpoint the weights
    /// are kept standardised, so a resumed run continues bit for bit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_scaling: Option<Scaling>,
    /// Whether the weights have `target_scaling` folded in.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub scaling_folded: bool,
    /// Long texts were scored as overlapping windows (`--long-text chunk`); eval and predict do the same
    /// unless told otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking: Option<Chunking>,
}

impl SavedMeta {
    /// bertfit's settings in a model folder's `config.json` (`None` for folders bertfit did not write).
    pub fn read(folder: &ModelFolder) -> Result<Option<SavedMeta>> {
        let config = BertConfig::from_file(&folder.config)?;
        Self::from_config(&config, &folder.config)
    }

    fn from_config(config: &BertConfig, path: &Path) -> Result<Option<SavedMeta>> {
        match config.extra.get("bertfit") {
            Some(v) => Ok(Some(serde_json::from_value(v.clone()).map_err(|e| {
                Error::parse(Location::file(path).field("bertfit"), "unreadable bertfit settings", e)
            })?)),
            None => Ok(None),
        }
    }
}

/// How to set up a classifier.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Class names to train for. `None`: use the checkpoint's own `id2label` and classifier (eval/predict).
    pub labels: Option<Vec<String>>,
    /// Head layout; `None`: the checkpoint's saved head, else the Hugging Face layout.
    pub head: Option<HeadConfig>,
    /// Frozen weights.
    pub freeze: Freeze,
    /// Seed for freshly initialised weights.
    pub seed: u64,
    /// Device, precision, kernels and threads the model computes with (kept by the model).
    pub runtime: Runtime,
    /// The problem type to train for. `None`: the checkpoint's `problem_type` (single-label when it
    /// has none). A trained head of another problem type is an error.
    pub problem: Option<ProblemType>,
}


/// Encoder + head.
#[derive(Debug)]
pub struct Classifier {
    /// Encoder architecture (with `id2label` filled in).
    pub config: BertConfig,
    /// Head layout.
    pub head_config: HeadConfig,
    /// Class names by id (multi-label: the labels; regression: the one target's name).
    pub labels: Vec<String>,
    /// What the outputs mean.
    pub problem: ProblemType,
    /// Regression runs: the scaling of the targets the outputs are standardised by. The weights in
    /// memory produce standardised values; [`Classifier::save`] folds the scaling into the last layer so
    /// the saved folder outputs values in the targets' units (as transformers reads it).
    pub target_scaling: Option<Scaling>,
    /// How long texts are scored: overlapping windows, or truncation (`None`). Saved with the model.
    pub chunking: Option<Chunking>,
    /// Saved bertfit settings of the checkpoint, if it was made by bertfit.
    pub saved_meta: Option<SavedMeta>,
    /// What loading found missing / unexpected.
    pub load_report: LoadReport,
    /// Whether the classifier layer was freshly initialised.
    pub head_initialised: bool,
    freeze: Freeze,
    encoder: Box<dyn EncoderModel>,
    head: Head,
    store: ParamStore,
    runtime: Runtime,
}

/// The problem type a config records (`problem_type`; single-label when absent or null); errors name the
/// file and field.
fn problem_of(config: &BertConfig, path: &Path) -> Result<ProblemType> {
    let at = || Location::file(path).field("problem_type");
    match config.extra.get("problem_type") {
        None | Some(serde_json::Value::Null) => Ok(ProblemType::SingleLabel),
        Some(serde_json::Value::String(s)) => s.parse().map_err(|_| {
            Error::input(at(), format!("unknown problem type `{s}`; expected single_label_classification, multi_label_classification or regression"))
        }),
        Some(other) => Err(Error::input(at(), format!("expected a string, found {other}"))),
    }
}

fn labels_from_config(cfg: &BertConfig) -> Option<Vec<String>> {
    let map = cfg.id2label.as_ref()?;
    let mut v = vec![String::new(); map.len()];
    for (k, name) in map {
        let i: usize = k.parse().ok()?;
        *v.get_mut(i)? = name.clone();
    }
    Some(v)
}

impl Classifier {
    /// Loads a model folder. With `opts.labels`, the head is kept only when the checkpoint was trained on
    /// exactly those labels with the same head, and freshly initialised otherwise.
    pub fn load(folder: &ModelFolder, opts: LoadOptions) -> Result<Self> {
        let mut config = BertConfig::from_file(&folder.config)?;
        let saved_meta = SavedMeta::from_config(&config, &folder.config)?;
        let ckpt_labels = labels_from_config(&config);
        let head_config = opts.head.clone().or_else(|| saved_meta.as_ref().map(|m| m.head.clone())).unwrap_or_default();
        head_config.validate()?;
        let family = config.family();
        let mut store = ParamStore::from_files(&folder.weights, family, opts.runtime.device().clone(), opts.seed)?;
        let default_dropout = config.classifier_dropout.unwrap_or(config.hidden_dropout_prob);
        // the head's shape needs the number of classes; its names do not
        let names = HeadSpec::new(&head_config, family, config.hidden_size, 2, default_dropout).names;
        let head_present = names.iter().all(|n| store.contains(&format!("{n}.weight")));
        let saved_head = saved_meta.as_ref().map(|m| m.head.clone()).unwrap_or_default();
        let saved_problem = problem_of(&config, &folder.config)?;
        let problem = opts.problem.unwrap_or(saved_problem);
        let (labels, fresh_head) = match opts.labels {
            Some(labels) => {
                let same = ckpt_labels.as_deref() == Some(labels.as_slice()) && head_present && saved_head == head_config;
                if same && problem != saved_problem && config.extra.contains_key("problem_type") {
                    return Err(Error::input(
                        Location::file(&folder.config).field("problem_type"),
                        format!(
                            "this checkpoint's head was trained for {} with these labels; a {} run cannot continue it (start from the base encoder, or keep the problem type)",
                            saved_problem.name(),
                            problem.name()
                        ),
                    ));
                }
                (labels, !same)
            }
            None => {
                let labels = ckpt_labels.filter(|l| !l.is_empty() && l.iter().all(|s| !s.is_empty())).ok_or_else(|| {
                    Error::input(
                        Location::file(&folder.config).field("id2label"),
                        "not a fine-tuned classifier: config.json has no usable id2label",
                    )
                })?;
                if !head_present {
                    return Err(Error::input(
                        Location::file(&folder.weights.path),
                        format!("not a fine-tuned classifier: no `{}.weight` tensor", names[names.len() - 1]),
                    ));
                }
                (labels, false)
            }
        };
        match problem {
            ProblemType::SingleLabel if labels.len() < 2 => {
                return Err(Error::config("labels", format!("a classifier needs at least 2 classes, found {}", labels.len())));
            }
            ProblemType::Regression if labels.len() != 1 => {
                return Err(Error::config("labels", format!("a regression model has one output, this one has {}", labels.len())));
            }
            _ if labels.is_empty() => return Err(Error::config("labels", "no labels")),
            _ => {}
        }
        let spec = HeadSpec::new(&head_config, family, config.hidden_size, labels.len(), default_dropout);
        let mut builder = Builder { store: &mut store, freeze: opts.freeze, init_std: config.initializer_range, exec: opts.runtime.exec() };
        let encoder = encoder::build(&config, &mut builder, spec.pooler)?;
        let head = Head::build(&spec, &mut builder, fresh_head)?;
        let mut load_report = store.report();
        if fresh_head {
            load_report.missing.retain(|n| !Family::is_head_tensor(n));
        }
        store.drop_unused();
        config.id2label = Some(labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect());
        // a checkpoint keeps standardised weights; a saved model has the scaling folded in
        let target_scaling = if fresh_head { None } else { saved_meta.as_ref().filter(|m| !m.scaling_folded).and_then(|m| m.target_scaling) };
        let chunking = saved_meta.as_ref().and_then(|m| m.chunking);
        Ok(Classifier {
            config,
            head_config,
            labels,
            problem,
            target_scaling,
            chunking,
            saved_meta,
            load_report,
            head_initialised: fresh_head,
            freeze: opts.freeze,
            encoder,
            head,
            store,
            runtime: opts.runtime,
        })
    }

    /// Logits, (batch, num_labels).
    pub fn forward(&self, inputs: &Inputs, mode: Mode) -> Result<Tensor> {
        let hidden = self.encoder.forward(inputs, mode)?;
        let pooled = if self.head.uses_pooler() { self.encoder.pool(&hidden, &inputs.mask, mode)? } else { None };
        self.head.forward(pooled, &hidden, &inputs.mask, mode)
    }

    /// The encoder's last hidden state (batch, seq, hidden) and pooler output (batch, hidden) if it has a pooler.
    pub fn hidden_states(&self, inputs: &Inputs, mode: Mode) -> Result<(Tensor, Option<Tensor>)> {
        let hidden = self.encoder.forward(inputs, mode)?;
        let pooled = self.encoder.pool(&hidden, &inputs.mask, mode)?;
        Ok((hidden, pooled))
    }

    /// A view of this model for inference: the same weight storage (so it sees every update), but no
    /// weight is a variable, so forward passes record no autograd graph and free activations at once.
    pub fn inference_view(&self) -> Result<Classifier> {
        let mut store = self.store.clone();
        let spec = self.head_spec();
        let mut builder = Builder { store: &mut store, freeze: Freeze::ALL, init_std: self.config.initializer_range, exec: self.runtime.exec() };
        let encoder = encoder::build(&self.config, &mut builder, spec.pooler)?;
        let head = Head::build(&spec, &mut builder, false)?;
        Ok(Classifier {
            config: self.config.clone(),
            head_config: self.head_config.clone(),
            labels: self.labels.clone(),
            problem: self.problem,
            target_scaling: self.target_scaling,
            chunking: self.chunking,
            saved_meta: self.saved_meta.clone(),
            load_report: self.load_report.clone(),
            head_initialised: self.head_initialised,
            freeze: Freeze::ALL,
            encoder,
            head,
            store,
            runtime: self.runtime.clone(),
        })
    }

    /// The head as computed: the family's own or the custom one, with its layers and dropout sites.
    pub fn head_spec(&self) -> HeadSpec {
        let default_dropout = self.config.classifier_dropout.unwrap_or(self.config.hidden_dropout_prob);
        HeadSpec::new(&self.head_config, self.config.family(), self.config.hidden_size, self.labels.len(), default_dropout)
    }

    /// The trainable weights, by canonical name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.store.vars().iter().filter(|(n, _)| self.freeze.trainable(n)).map(|(n, v)| (n.clone(), v.clone())).collect()
    }

    /// Every weight.
    pub fn params(&self) -> &ParamStore {
        &self.store
    }

    /// The device.
    pub fn device(&self) -> &Device {
        self.store.device()
    }

    /// Whether the engine computes this model: its family on the CPU, with embeddings no wider than the
    /// hidden size (ELECTRA's `embedding_size` is smaller; the engine's scratch assumes it).
    pub fn engine_covers(&self) -> bool {
        self.config.family().engine && self.config.embedding_size() <= self.config.hidden_size && self.device().is_cpu()
    }

    /// The training and inference path its runtime asks for, `auto` resolved.
    pub fn engine_path(&self) -> crate::runtime::EnginePath {
        self.runtime.engine().resolve(self.engine_covers())
    }

    /// Which weights train.
    pub fn freeze(&self) -> Freeze {
        self.freeze
    }

    /// The runtime this model computes with.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Writes `config.json` (in the family's own keys, with `id2label`, `label2id`, the classifier
    /// architecture, `problem_type` and bertfit's settings) and `model.safetensors` (the encoder under the
    /// family's prefix and tensor names, `bert.`/`distilbert.transformer.…`, the head under its own names)
    /// into `dir`. A regression model's target scaling is folded into its last layer, so the folder
    /// predicts in the targets' units.
    pub fn save(&self, dir: &Path, max_len: usize) -> Result<()> {
        self.save_as(dir, max_len, true)
    }

    /// [`Classifier::save`] for a checkpoint: a regression model's weights stay standardised (the scaling
    /// is recorded), so resuming continues from the same bits.
    pub fn save_checkpoint(&self, dir: &Path, max_len: usize) -> Result<()> {
        self.save_as(dir, max_len, false)
    }

    fn save_as(&self, dir: &Path, max_len: usize, fold: bool) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("cannot create model folder", dir, e))?;
        let mut cfg = self.config.clone();
        let label2id: serde_json::Map<String, serde_json::Value> =
            self.labels.iter().enumerate().map(|(i, l)| (l.clone(), serde_json::Value::from(i))).collect();
        cfg.extra.insert("label2id".into(), serde_json::Value::Object(label2id));
        cfg.extra.insert("architectures".into(), serde_json::json!([cfg.classifier_architecture()]));
        cfg.extra.insert("problem_type".into(), self.problem.hf_name().into());
        let fold = fold.then_some(self.target_scaling).flatten();
        let meta = SavedMeta {
            head: self.head_config.clone(),
            max_len,
            precision: self.runtime.precision(),
            thresholds: self.saved_meta.as_ref().and_then(|m| m.thresholds.clone()).filter(|t| t.len() == self.labels.len() && self.problem == ProblemType::MultiLabel),
            target_scaling: self.target_scaling,
            scaling_folded: fold.is_some(),
            chunking: self.chunking,
        };
        cfg.extra.insert("bertfit".into(), serde_json::to_value(meta).map_err(|e| Error::serialize("bertfit settings", e))?);
        let json = serde_json::to_string_pretty(&cfg.to_hf_json()?).map_err(|e| Error::serialize("model config", e))?;
        let path = dir.join("config.json");
        std::fs::write(&path, json + "\n").map_err(|e| Error::io("cannot write", &path, e))?;
        let family = cfg.family();
        let replace = match fold {
            Some(scaling) => self.rescaled_last_layer(scaling, true)?,
            None => std::collections::HashMap::new(),
        };
        self.store.save_with(&dir.join("model.safetensors"), |name| family.checkpoint_name(name), &replace)
    }

    /// The last head layer with a regression scaling folded in (`W·s`, `b·s + mean`: outputs in target
    /// units) or taken out (`W/s`, `(b − mean)/s`: standardised outputs), by canonical name.
    fn rescaled_last_layer(&self, scaling: Scaling, fold: bool) -> Result<std::collections::HashMap<String, Tensor>> {
        let spec = self.head_spec();
        let last = spec.names.last().ok_or_else(|| Error::config("head", "the head has no layer"))?;
        let vars = self.store.vars();
        let get = |suffix: &str| -> Result<Tensor> {
            let name = format!("{last}.{suffix}");
            Ok(vars.get(&name).ok_or_else(|| Error::config("head", format!("no `{name}`")))?.as_detached_tensor())
        };
        let (w, b) = (get("weight")?, get("bias")?);
        let (w, b) = if fold {
            (w.affine(scaling.std, 0.0)?, b.affine(scaling.std, scaling.mean)?)
        } else {
            (w.affine(1.0 / scaling.std, 0.0)?, b.affine(1.0 / scaling.std, -scaling.mean / scaling.std)?)
        };
        Ok([(format!("{last}.weight"), w), (format!("{last}.bias"), b)].into())
    }

    /// Makes a regression model's outputs standardised by `scaling` for training: a trained head
    /// (from a saved folder, outputs in target units) has the scaling taken out of its last layer; a
    /// freshly initialised head already outputs values near 0, i.e. near the mean. A model already
    /// standardised (a checkpoint) must use the same scaling.
    pub fn standardise(&mut self, scaling: Scaling) -> Result<()> {
        match self.target_scaling {
            Some(s) if s == scaling => return Ok(()),
            Some(s) => {
                return Err(Error::config(
                    "resume",
                    format!("the checkpoint was trained with target mean {} and std {}, the data now gives {} and {}", s.mean, s.std, scaling.mean, scaling.std),
                ))
            }
            None => {}
        }
        if !self.head_initialised {
            let vars = self.store.vars();
            for (name, t) in self.rescaled_last_layer(scaling, false)? {
                if let Some(var) = vars.get(&name) {
                    var.set(&t)?;
                }
            }
        }
        self.target_scaling = Some(scaling);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_type_is_read_from_the_config_and_bad_values_name_the_file() {
        let mut cfg = crate::model::random::tiny_config(8);
        let path = Path::new("m/config.json");
        assert_eq!(problem_of(&cfg, path).expect("absent"), ProblemType::SingleLabel);
        cfg.extra.insert("problem_type".into(), "multi_label_classification".into());
        assert_eq!(problem_of(&cfg, path).expect("multi"), ProblemType::MultiLabel);
        cfg.extra.insert("problem_type".into(), "ranking".into());
        let e = problem_of(&cfg, path).expect_err("unknown").to_string();
        assert!(e.contains("m/config.json") && e.contains("`problem_type`") && e.contains("`ranking`"), "{e}");
    }
}
