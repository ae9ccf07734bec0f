//! Prediction with a fine-tuned model: class probabilities for datasets or raw texts, evaluation of
//! labeled files, and the predictions CSV.

use std::path::Path;

use candle_core::Device;

use crate::data::{Dataset, LabelMap};
use crate::error::{Error, Location, Result};
use crate::metrics::{ConfusionMatrix, Scores};
use crate::model::{infer, Classifier, Freeze, LoadOptions, ModelFolder};
use crate::tokenize::TextTokenizer;
use crate::train::job::{encode, load_tokenizer};
use crate::train::loss;
use crate::train::trainer::argmax;

/// Default truncation for models that do not record their training length.
pub const DEFAULT_MAX_LEN: usize = 128;

/// A loaded classifier with its tokenizer.
#[derive(Debug)]
pub struct Predictor {
    model: Classifier,
    tokenizer: TextTokenizer,
}

/// Evaluation of a labeled file.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean cross-entropy.
    pub loss: f64,
    /// Scores.
    pub scores: Scores,
    /// Probabilities per example.
    pub probs: Vec<Vec<f32>>,
}

impl Predictor {
    /// Loads a fine-tuned model folder (or hub id). `max_len` defaults to the length it was trained with.
    pub fn load(spec: &str, max_len: Option<usize>) -> Result<Self> {
        let folder = ModelFolder::resolve(spec, None)?;
        let model = Classifier::load(&folder, LoadOptions { device: Device::Cpu, freeze: Freeze::ALL, ..Default::default() })?;
        let max_len = max_len.or(model.saved_meta.as_ref().map(|m| m.max_len)).unwrap_or(DEFAULT_MAX_LEN);
        let tokenizer = load_tokenizer(&folder, max_len)?;
        Ok(Predictor { model, tokenizer })
    }

    /// Class names by id.
    pub fn labels(&self) -> &[String] {
        &self.model.labels
    }

    /// The model.
    pub fn model(&self) -> &Classifier {
        &self.model
    }

    /// Probabilities for every example of a dataset, in order.
    pub fn predict_dataset(&self, data: &Dataset, batch_size: usize, on_batch: &mut dyn FnMut(usize, usize)) -> Result<Vec<Vec<f32>>> {
        let enc = encode(&self.tokenizer, data)?;
        infer::probabilities(&self.model, &enc, batch_size, on_batch)
    }

    /// Probabilities for raw texts (with optional second segments).
    pub fn predict_texts(&self, texts: &[(&str, Option<&str>)], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let enc = self.tokenizer.encode_all(texts)?;
        infer::probabilities(&self.model, &enc, batch_size, &mut |_, _| {})
    }

    /// Scores a labeled dataset. Labels the model does not know are an error naming file and line.
    pub fn evaluate(&self, data: &Dataset, batch_size: usize, on_batch: &mut dyn FnMut(usize, usize)) -> Result<Evaluation> {
        let map = LabelMap::from_names(self.model.labels.clone())?;
        let gold = map.encode(data)?;
        let probs = self.predict_dataset(data, batch_size, on_batch)?;
        let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
        let cm = ConfusionMatrix::from_predictions(&gold, &pred, map.len());
        let loss = loss::cross_entropy_from_probs(&probs, &gold, None);
        Ok(Evaluation { loss, scores: Scores::from_confusion(&cm, &self.model.labels), probs })
    }
}

/// Writes the predictions CSV: the id column (when the data has one), `label`, then `prob_<label>` per class.
pub fn write_predictions(path: &Path, data: &Dataset, labels: &[String], probs: &[Vec<f32>]) -> Result<()> {
    let io = |e: csv::Error| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io("cannot write predictions", path, io),
        other => Error::input(Location::file(path), format!("cannot write CSV: {other:?}")),
    };
    let mut w = csv::Writer::from_path(path).map_err(io)?;
    let id_col = data.id_column.clone();
    let mut header: Vec<String> = Vec::new();
    if let Some(c) = &id_col {
        header.push(c.clone());
    }
    header.push("label".into());
    header.extend(labels.iter().map(|l| format!("prob_{l}")));
    w.write_record(&header).map_err(io)?;
    for (ex, p) in data.examples.iter().zip(probs) {
        let mut row: Vec<String> = Vec::with_capacity(header.len());
        if id_col.is_some() {
            row.push(ex.id.clone().unwrap_or_default());
        }
        row.push(labels[argmax(p)].clone());
        row.extend(p.iter().map(|x| format!("{x:.6}")));
        w.write_record(&row).map_err(io)?;
    }
    w.flush().map_err(|e| Error::io("cannot write predictions", path, e))
}

/// Several classifiers whose probabilities are averaged (an ensemble of folds, seeds or any models
/// trained on the same labels).
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Predictor>,
}

impl Ensemble {
    /// Loads model folders; a cross-validation or seeds run directory expands to its members' `best/`.
    pub fn load(specs: &[String], max_len: Option<usize>) -> Result<Self> {
        let mut members = Vec::new();
        for spec in specs {
            let path = Path::new(spec);
            let expanded = if path.is_dir() { crate::train::cv::member_models(path) } else { Vec::new() };
            if expanded.is_empty() {
                members.push(Predictor::load(spec, max_len)?);
            } else {
                for m in expanded {
                    members.push(Predictor::load(&m.display().to_string(), max_len)?);
                }
            }
        }
        let Some(first) = members.first() else { return Err(Error::config("model", "no model given")) };
        for m in &members[1..] {
            if m.labels() != first.labels() {
                return Err(Error::config(
                    "model",
                    format!("ensemble members disagree on labels: [{}] vs [{}]", first.labels().join(", "), m.labels().join(", ")),
                ));
            }
        }
        Ok(Ensemble { members })
    }

    /// Number of member models.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false: an ensemble has at least one member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Class names by id (shared by every member).
    pub fn labels(&self) -> &[String] {
        self.members[0].labels()
    }

    /// Mean of the members' probabilities for every example of a dataset.
    pub fn predict_dataset(&self, data: &Dataset, batch_size: usize, on_batch: &mut dyn FnMut(usize, usize)) -> Result<Vec<Vec<f32>>> {
        let per_member = self
            .members
            .iter()
            .map(|m| m.predict_dataset(data, batch_size, on_batch))
            .collect::<Result<Vec<_>>>()?;
        Ok(average(&per_member))
    }

    /// Mean probabilities for raw texts.
    pub fn predict_texts(&self, texts: &[(&str, Option<&str>)], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        let per_member = self.members.iter().map(|m| m.predict_texts(texts, batch_size)).collect::<Result<Vec<_>>>()?;
        Ok(average(&per_member))
    }

    /// Scores a labeled dataset with the averaged probabilities.
    pub fn evaluate(&self, data: &Dataset, batch_size: usize, on_batch: &mut dyn FnMut(usize, usize)) -> Result<Evaluation> {
        let map = LabelMap::from_names(self.labels().to_vec())?;
        let gold = map.encode(data)?;
        let probs = self.predict_dataset(data, batch_size, on_batch)?;
        let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
        let cm = ConfusionMatrix::from_predictions(&gold, &pred, map.len());
        let loss = loss::cross_entropy_from_probs(&probs, &gold, None);
        Ok(Evaluation { loss, scores: Scores::from_confusion(&cm, self.labels()), probs })
    }
}

/// Element-wise mean of several members' probabilities (each: examples × classes).
pub fn average(per_member: &[Vec<Vec<f32>>]) -> Vec<Vec<f32>> {
    let Some(first) = per_member.first() else { return Vec::new() };
    if per_member.len() == 1 {
        return first.clone();
    }
    let n = per_member.len() as f32;
    (0..first.len())
        .map(|i| (0..first[i].len()).map(|c| per_member.iter().map(|m| m[i][c]).sum::<f32>() / n).collect())
        .collect()
}
