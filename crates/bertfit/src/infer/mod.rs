//! The inference layer: a fine-tuned model folder loaded on a [`Runtime`] ([`Predictor`]) or several
//! averaged ([`Ensemble`]), batched probabilities, scoring against gold labels, and the prediction files.
//! Training and prediction both use it; nothing here imports `train`, so `predict`, `eval` and a server
//! link without the optimizer.

mod output;
mod resume;
mod run;
mod score;
mod session;
mod stream;

use std::path::Path;

pub use output::{write_file_atomically, write_oof, write_scored, Readout, SET_SEPARATOR};
pub use run::{engine_probabilities, logits, probabilities, softmax_rows, BatchRunner};
pub use resume::{PredictJob, ResumableOutput};
pub use session::{Encoders, Encodings, Scores, Session};
pub use stream::{predict_records, shard_range, write_all, RowFormat, Rows};
pub use score::{argmax, cross_entropy_from_probs, evaluate, evaluate_targets, label_set, Evaluation, DEFAULT_THRESHOLD};

use crate::data::{Dataset, LabelMap, ProblemType, Targets};
use crate::objective::Objective;
use crate::error::{Error, Result};
use crate::model::{Classifier, Freeze, LoadOptions, ModelFolder, SavedMeta};
use crate::rundir;
use crate::runtime::{Precision, Runtime};
use crate::tokenize::TextTokenizer;
use crate::windows::{Chunking, Windows};

/// Default truncation for models that do not record their training length.
pub const DEFAULT_MAX_LEN: usize = 128;

/// A loaded classifier with its tokenizer.
#[derive(Debug)]
pub struct Predictor {
    source: std::path::PathBuf,
    model: Classifier,
    tokenizer: TextTokenizer,
    notes: Vec<String>,
}

impl Predictor {
    /// Loads a fine-tuned model folder on `rt`. `precision` defaults to the one the model was trained
    /// with (f32 for folders that do not record it), `max_len` to its training length; a `max_len`
    /// beyond the model's positions is cut to them, with a note (see [`Predictor::notes`]).
    pub fn load(folder: &ModelFolder, rt: &Runtime, precision: Option<Precision>, max_len: Option<usize>) -> Result<Self> {
        let meta = SavedMeta::read(folder)?;
        let mut notes = Vec::new();
        let precision = match (precision, meta.as_ref().map(|m| m.precision)) {
            (Some(p), _) => p,
            // the saved precision, unless it is bf16 on a CPU that would only emulate it (slower than f32)
            (None, Some(Precision::Bf16)) if !rt.accelerator().is_cuda() && !crate::model::kernels::bf16::native() => {
                notes.push(format!(
                    "{}: trained in bf16, predicting in f32: this CPU has no AVX512-BF16, where bf16 only rounds operands on the f32 kernels and runs slower (--precision bf16 to insist)",
                    folder.config.parent().unwrap_or(folder.config.as_path()).display()
                ));
                Precision::F32
            }
            (None, saved) => saved.unwrap_or_default(),
        };
        let runtime = rt.clone().with_precision(precision);
        let model = Classifier::load(folder, LoadOptions { freeze: Freeze::ALL, runtime, ..Default::default() })?;
        let wanted = max_len.or(meta.as_ref().map(|m| m.max_len)).unwrap_or(DEFAULT_MAX_LEN);
        let (max_len, note) = model.config.fit_max_len(wanted);
        let tokenizer = TextTokenizer::for_folder(folder, max_len)?;
        model.config.check_tokenizer(&tokenizer, folder)?;
        notes.extend(note);
        Ok(Predictor { source: folder.dir.clone(), model, tokenizer, notes })
    }

    /// Class names by id.
    pub fn labels(&self) -> &[String] {
        &self.model.labels
    }

    /// The model folder this predictor was loaded from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The tokenizer, truncating at the model's length.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The model.
    pub fn model(&self) -> &Classifier {
        &self.model
    }

    /// What loading adjusted (for example a `max_len` cut to the model's positions).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// How long texts are scored: overlapping windows (the model's saved setting unless changed with
    /// [`Predictor::set_chunking`]), or truncation.
    pub fn chunking(&self) -> Option<Chunking> {
        self.model.chunking
    }

    /// Scores long texts as windows (`Some`) or truncated (`None`) from now on.
    pub fn set_chunking(&mut self, chunking: Option<Chunking>) {
        self.model.chunking = chunking;
    }

    /// Probabilities for every example of a dataset, in order.
    pub fn predict_dataset(&self, data: &Dataset, batch_size: usize, on_batch: &mut dyn FnMut(usize, usize)) -> Result<Vec<Vec<f32>>> {
        let texts: Vec<(&str, Option<&str>)> = data.examples.iter().map(|e| (e.text.as_str(), e.text_pair.as_deref())).collect();
        self.score_texts(&texts, batch_size, on_batch)
    }

    /// Probabilities for raw texts (with optional second segments).
    pub fn predict_texts(&self, texts: &[(&str, Option<&str>)], batch_size: usize) -> Result<Vec<Vec<f32>>> {
        self.score_texts(texts, batch_size, &mut |_, _| {})
    }

    /// Scores of texts: truncated, or as windows pooled per text.
    fn score_texts(&self, texts: &[(&str, Option<&str>)], batch_size: usize, on_batch: &mut dyn FnMut(usize, usize)) -> Result<Vec<Vec<f32>>> {
        match self.model.chunking {
            None => probabilities(&self.model, &self.tokenizer.encode_all(texts)?, batch_size, on_batch),
            Some(c) => {
                let windows = Windows::of(&self.tokenizer, texts, c.stride)?;
                let scores = probabilities(&self.model, &windows.encoded, batch_size, on_batch)?;
                Ok(windows.pool(&scores, c.pooling, self.model.problem))
            }
        }
    }

    /// What the model predicts.
    pub fn problem(&self) -> ProblemType {
        self.model.problem
    }

    /// A multi-label model's tuned thresholds (0.5 for every label without).
    pub fn thresholds(&self) -> Option<&[f32]> {
        self.model.saved_meta.as_ref().and_then(|m| m.thresholds.as_deref())
    }

    /// Scores a labeled dataset (its label column as read): class labels, label sets or numbers, as the
    /// model's problem type reads them. Labels the model does not know, or a target that is not a
    /// number for a regression model, are errors naming file, line and column.
    pub fn evaluate(&self, data: &Dataset, batch_size: usize, on_batch: &mut dyn FnMut(usize, usize)) -> Result<Evaluation> {
        let targets = Targets::encode(self.problem(), data, &LabelMap::from_names(self.model.labels.clone())?)?;
        let probs = self.predict_dataset(data, batch_size, on_batch)?;
        Ok(evaluate_targets(probs, &targets, &self.model.labels, &Objective::of_model(&self.model), self.thresholds()))
    }
}

/// Several classifiers whose probabilities are averaged (an ensemble of folds, seeds or any models
/// trained on the same labels).
#[derive(Debug)]
pub struct Ensemble {
    members: Vec<Predictor>,
}

impl Ensemble {
    /// Loads model folders (paths or hub ids); a cross-validation or seeds run directory expands to its
    /// members' `best/`.
    pub fn load(specs: &[String], rt: &Runtime, precision: Option<Precision>, max_len: Option<usize>) -> Result<Self> {
        let mut members = Vec::new();
        for spec in specs {
            let path = Path::new(spec);
            let expanded = if path.is_dir() { rundir::member_models(path) } else { Vec::new() };
            if expanded.is_empty() {
                members.push(Predictor::load(&ModelFolder::resolve(spec, None)?, rt, precision, max_len)?);
            } else {
                for m in expanded {
                    members.push(Predictor::load(&ModelFolder::open(&m)?, rt, precision, max_len)?);
                }
            }
        }
        Self::from_members(members)
    }

    /// An ensemble of loaded predictors (at least one; all with the same labels).
    pub fn from_members(members: Vec<Predictor>) -> Result<Self> {
        let Some(first) = members.first() else { return Err(Error::config("model", "no model given")) };
        for m in &members[1..] {
            if m.problem() != first.problem() {
                return Err(Error::config(
                    "model",
                    format!("ensemble members disagree on the problem type: {} vs {}", first.problem().name(), m.problem().name()),
                ));
            }
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

    /// Scores long texts as windows (`Some`) or truncated (`None`) with every member.
    pub fn set_chunking(&mut self, chunking: Option<Chunking>) {
        for m in &mut self.members {
            m.set_chunking(chunking);
        }
    }

    /// Whether some member scores long texts as windows.
    pub fn chunked(&self) -> bool {
        self.members.iter().any(|m| m.chunking().is_some())
    }

    /// The members.
    pub fn members(&self) -> &[Predictor] {
        &self.members
    }

    /// Notes of every member's loading, without repeats.
    pub fn notes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for n in self.members.iter().flat_map(|m| m.notes()) {
            if !out.contains(n) {
                out.push(n.clone());
            }
        }
        out
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

    /// What the members predict.
    pub fn problem(&self) -> ProblemType {
        self.members[0].problem()
    }

    /// Multi-label thresholds: the members' mean where every member has tuned ones, else none (0.5).
    pub fn thresholds(&self) -> Option<Vec<f32>> {
        let all: Option<Vec<&[f32]>> = self.members.iter().map(|m| m.thresholds()).collect();
        let all = all?;
        let n = all.len() as f32;
        Some((0..all[0].len()).map(|k| all.iter().map(|t| t.get(k).copied().unwrap_or(DEFAULT_THRESHOLD)).sum::<f32>() / n).collect())
    }

    /// Scores a labeled dataset with the averaged scores (see [`Predictor::evaluate`]).
    pub fn evaluate(&self, data: &Dataset, batch_size: usize, on_batch: &mut dyn FnMut(usize, usize)) -> Result<Evaluation> {
        let targets = Targets::encode(self.problem(), data, &LabelMap::from_names(self.labels().to_vec())?)?;
        let probs = self.predict_dataset(data, batch_size, on_batch)?;
        // the loss in the first member's units (members of one regression task share its scaling)
        Ok(evaluate_targets(probs, &targets, self.labels(), &Objective::of_model(self.members[0].model()), self.thresholds().as_deref()))
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
