//! Reading a run directory for a report, leniently: every file is optional, unknown fields are ignored
//! and missing or `null` numbers read as absent, so interrupted runs, runs of older formats and
//! multi-run summaries (whose loss may be NaN, written as `null`) all give a report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Location, Result};
use crate::metrics::ClassScores;
use crate::rundir as names;

/// One evaluation: a line of `metrics.jsonl` (also `summary.json`'s `best` and `test`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Record {
    /// Epoch position (1.0 = end of the first epoch).
    pub epoch: f64,
    /// Optimizer steps done.
    pub step: usize,
    /// `train`, `valid` or `test`.
    pub split: String,
    /// Mean loss.
    pub loss: Option<f64>,
    /// Accuracy.
    pub accuracy: Option<f64>,
    /// Macro F1.
    pub f1_macro: Option<f64>,
    /// Weighted F1.
    pub f1_weighted: Option<f64>,
    /// Macro precision.
    pub precision_macro: Option<f64>,
    /// Macro recall.
    pub recall_macro: Option<f64>,
    /// Matthews correlation coefficient.
    pub mcc: Option<f64>,
    /// Learning rate at this point.
    pub learning_rate: Option<f64>,
    /// Seconds since training started.
    pub elapsed_s: Option<f64>,
    /// Examples scored.
    pub examples: usize,
    /// Per-class scores and confusion matrix.
    pub scores: Option<RecordScores>,
}

impl Record {
    /// The value of a metric by canonical name (`loss`, `accuracy`, `f1_macro`, …), when recorded.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let v = match name {
            "loss" => self.loss,
            "accuracy" => self.accuracy,
            "f1_macro" => self.f1_macro,
            "f1_weighted" => self.f1_weighted,
            "precision_macro" => self.precision_macro,
            "recall_macro" => self.recall_macro,
            "mcc" => self.mcc,
            _ => None,
        };
        v.filter(|x| x.is_finite())
    }
}

/// The detailed part of an evaluation.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct RecordScores {
    /// Accuracy (present in cross-validation's out-of-fold scores).
    pub accuracy: Option<f64>,
    /// Macro F1.
    pub f1_macro: Option<f64>,
    /// Matthews correlation coefficient.
    pub mcc: Option<f64>,
    /// Scores per class, in class-id order.
    pub per_class: Vec<ClassScores>,
    /// Row = gold, column = predicted.
    pub confusion: Vec<Vec<u64>>,
    /// Class names in id order.
    pub labels: Vec<String>,
}

/// One optimizer update: a line of `steps.jsonl`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Step {
    /// Update number (1-based).
    pub step: usize,
    /// Epoch position.
    pub epoch: f64,
    /// Mean loss of the update's micro-batches.
    pub loss: Option<f64>,
    /// Learning rate used.
    pub lr: Option<f64>,
}

/// `summary.json`, written when a run ends.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Summary {
    /// Class names by id.
    pub labels: Vec<String>,
    /// Training examples.
    pub train_examples: Option<usize>,
    /// Validation examples.
    pub valid_examples: Option<usize>,
    /// Test examples.
    pub test_examples: Option<usize>,
    /// Epochs completed.
    pub epochs: Option<usize>,
    /// Optimizer steps.
    pub steps: Option<usize>,
    /// Why training ended.
    pub stop_reason: Option<String>,
    /// Seconds spent training.
    pub train_seconds: Option<f64>,
    /// Real tokens per second in training.
    pub train_tokens_per_s: Option<f64>,
    /// Best validation evaluation.
    pub best: Option<Record>,
    /// Test evaluation of the best model.
    pub test: Option<Record>,
    /// Share of training texts cut by truncation.
    pub truncated_share: Option<f64>,
}

/// `data_stats.json`: label counts and untruncated token lengths per split.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct DataStats {
    /// The truncation length.
    pub max_len: Option<usize>,
    /// Per split name (`train`, `valid`, `test`).
    pub splits: BTreeMap<String, SplitStats>,
}

/// Statistics of one split.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SplitStats {
    /// Examples.
    pub examples: usize,
    /// Examples per label name.
    pub label_counts: BTreeMap<String, u64>,
    /// Token count of each text before truncation, special tokens included.
    pub token_lengths: Vec<usize>,
    /// Texts cut by truncation.
    pub truncated: Option<usize>,
}

/// Mean, standard deviation and range of a metric over runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Spread {
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation.
    pub std: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
    /// Number of runs.
    pub n: usize,
}

/// One member of a multi-run (a fold or a seed).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MemberRun {
    /// `fold-0`, `seed-3`, …
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// Best validation evaluation.
    pub valid: Option<Record>,
    /// Test evaluation of its best model.
    pub test: Option<Record>,
}

/// `cv_summary.json` or `seeds_summary.json`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct MultiSummary {
    /// `cv` or `seeds`.
    pub kind: String,
    /// The member runs.
    pub runs: Vec<MemberRun>,
    /// Spread of the best validation metrics, by metric name.
    pub valid: BTreeMap<String, Spread>,
    /// Spread of the test metrics, by metric name.
    pub test: BTreeMap<String, Spread>,
    /// Scores of the out-of-fold predictions (cross-validation).
    pub oof: Option<RecordScores>,
}

/// Scored predictions of a split (`predictions/valid.csv`, `predictions/test.csv`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Predictions {
    /// Class names, from the `prob_<label>` columns.
    pub labels: Vec<String>,
    /// Gold class ids.
    pub gold: Vec<usize>,
    /// Class probabilities per example.
    pub probs: Vec<Vec<f32>>,
    /// The texts.
    pub texts: Vec<String>,
}

/// Everything a report reads from a run directory; each part is absent when its file is.
#[derive(Debug, Clone, Default)]
pub struct RunDir {
    /// The directory.
    pub dir: PathBuf,
    /// `run_config.json`, kept as JSON so any config version can be shown.
    pub config: Option<serde_json::Value>,
    /// `metrics.jsonl`.
    pub metrics: Vec<Record>,
    /// `steps.jsonl`.
    pub steps: Vec<Step>,
    /// `summary.json`.
    pub summary: Option<Summary>,
    /// `data_stats.json`.
    pub stats: Option<DataStats>,
    /// `predictions/valid.csv`.
    pub valid_predictions: Option<Predictions>,
    /// `predictions/test.csv`.
    pub test_predictions: Option<Predictions>,
    /// `cv_summary.json` or `seeds_summary.json`.
    pub multi: Option<MultiSummary>,
    /// Things worth telling the reader (a torn last line that was skipped).
    pub notes: Vec<String>,
}

impl RunDir {
    /// Reads whatever report material `dir` holds. Fails when `dir` is not a directory, when a file
    /// cannot be read, or when a file is malformed (except a torn last line of a JSON-lines log).
    pub fn read(dir: &Path) -> Result<RunDir> {
        if !dir.is_dir() {
            let e = std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory");
            return Err(Error::io("cannot read run directory", dir, e));
        }
        let mut run = RunDir { dir: dir.to_path_buf(), ..RunDir::default() };
        run.config = read_json(&dir.join(names::RUN_CONFIG))?;
        run.metrics = read_jsonl(&dir.join(names::METRICS), &mut run.notes)?;
        run.steps = read_jsonl(&dir.join(names::STEPS), &mut run.notes)?;
        run.summary = read_json(&dir.join(names::SUMMARY))?;
        run.stats = read_json(&dir.join(names::DATA_STATS))?;
        // prediction files of multi-label and regression runs hold label sets and values: their report
        // sections read them on their own (`report::problems`)
        let single_label = run.config_str(&["train", "problem_type"]).is_none_or(|p| p == "single_label_classification");
        if single_label {
            run.valid_predictions = read_predictions(&names::predictions_csv(dir, "valid"))?;
            run.test_predictions = read_predictions(&names::predictions_csv(dir, "test"))?;
        }
        run.multi = match read_json(&dir.join(names::multi_summary_json("cv")))? {
            Some(m) => Some(m),
            None => read_json(&dir.join(names::multi_summary_json("seeds")))?,
        };
        Ok(run)
    }

    /// A string field of `run_config.json` by path (`["data", "train"]`).
    pub fn config_str(&self, path: &[&str]) -> Option<String> {
        let mut v = self.config.as_ref()?;
        for key in path {
            v = v.get(key)?;
        }
        match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// The canonical name of the metric that picked the best model (default `f1_macro`).
    pub fn selection_metric(&self) -> String {
        self.config_str(&["train", "early_stopping_metric"])
            .and_then(|m| m.parse::<crate::metrics::Metric>().ok())
            .map_or_else(|| "f1_macro".to_string(), |m| m.name().to_string())
    }

    /// The class names, from the first place that records them.
    pub fn labels(&self) -> Vec<String> {
        if let Some(s) = self.summary.as_ref().filter(|s| !s.labels.is_empty()) {
            return s.labels.clone();
        }
        let from_records = self.metrics.iter().filter_map(|r| r.scores.as_ref()).find(|s| !s.labels.is_empty());
        if let Some(s) = from_records {
            return s.labels.clone();
        }
        if let Some(p) = self.valid_predictions.as_ref().or(self.test_predictions.as_ref()) {
            return p.labels.clone();
        }
        self.stats.as_ref().and_then(|s| s.splits.get("train")).map(|t| t.label_counts.keys().cloned().collect()).unwrap_or_default()
    }
}

fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io("cannot read", path, e)),
    }
}

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    let Some(text) = read_optional(path)? else { return Ok(None) };
    serde_json::from_str(&text).map(Some).map_err(|e| Error::parse(Location::file(path), "malformed JSON", e))
}

/// Reads a JSON-lines log. A malformed last line without a newline (a write cut short by a crash) is
/// skipped with a note; any other malformed line is an error naming it.
pub(crate) fn read_jsonl<T: DeserializeOwned>(path: &Path, notes: &mut Vec<String>) -> Result<Vec<T>> {
    let Some(text) = read_optional(path)? else { return Ok(Vec::new()) };
    let lines: Vec<&str> = text.split('\n').collect();
    let mut out = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(v) => out.push(v),
            Err(_) if i + 1 == lines.len() => {
                notes.push(format!("{}: skipped an incomplete last line", path.display()));
            }
            Err(e) => return Err(Error::parse(Location::file(path).line(i as u64 + 1), "malformed JSON line", e)),
        }
    }
    Ok(out)
}

/// Reads `row,id,text,gold,pred,prob_<label>…`; `None` when the file does not exist.
pub(crate) fn read_predictions(path: &Path) -> Result<Option<Predictions>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("cannot read", path, e)),
    };
    let mut reader = csv::ReaderBuilder::new().from_reader(file);
    let header = reader.headers().map_err(|e| Error::parse(Location::file(path).line(1), "malformed CSV header", e))?.clone();
    let column = |name: &str| {
        header.iter().position(|h| h == name).ok_or_else(|| Error::input(Location::file(path).line(1), format!("no `{name}` column")))
    };
    let (text_col, gold_col) = (column("text")?, column("gold")?);
    let prob_cols: Vec<(usize, String)> =
        header.iter().enumerate().filter_map(|(i, h)| h.strip_prefix("prob_").map(|l| (i, l.to_string()))).collect();
    if prob_cols.is_empty() {
        return Err(Error::input(Location::file(path).line(1), "no `prob_<label>` columns"));
    }
    let labels: Vec<String> = prob_cols.iter().map(|(_, l)| l.clone()).collect();
    let mut preds = Predictions { labels, ..Predictions::default() };
    for (i, row) in reader.records().enumerate() {
        let line = i as u64 + 2;
        let row = row.map_err(|e| Error::parse(Location::file(path).line(line), "malformed CSV row", e))?;
        let field = |c: usize| row.get(c).unwrap_or_default();
        let gold_name = field(gold_col);
        let gold = preds.labels.iter().position(|l| l == gold_name).ok_or_else(|| {
            Error::input(Location::file(path).line(line).field("gold"), format!("label `{gold_name}` has no prob_ column"))
        })?;
        let probs = prob_cols
            .iter()
            .map(|(c, l)| {
                field(*c).trim().parse::<f32>().map_err(|e| {
                    Error::parse(Location::file(path).line(line).field(format!("prob_{l}")), "expected a number", e)
                })
            })
            .collect::<Result<Vec<f32>>>()?;
        preds.gold.push(gold);
        preds.probs.push(probs);
        preds.texts.push(field(text_col).to_string());
    }
    Ok(Some(preds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_skips_a_torn_last_line_but_not_a_bad_middle_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("steps.jsonl");
        std::fs::write(&path, "{\"step\":1,\"epoch\":0.5,\"loss\":0.7,\"lr\":0.1}\n{\"step\":2,\"ep").expect("write");
        let mut notes = Vec::new();
        let steps: Vec<Step> = read_jsonl(&path, &mut notes).expect("read");
        assert_eq!(steps.len(), 1);
        assert_eq!(notes.len(), 1);
        std::fs::write(&path, "{\"step\":1}\nnot json\n{\"step\":3}\n").expect("write");
        let e = read_jsonl::<Step>(&path, &mut notes).expect_err("bad line").to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn records_read_null_and_missing_numbers_as_absent() {
        let r: Record = serde_json::from_str("{\"epoch\":1.0,\"step\":3,\"split\":\"valid\",\"loss\":null}").expect("parse");
        assert_eq!((r.loss, r.metric("loss"), r.metric("accuracy")), (None, None, None));
        assert_eq!(r.split, "valid");
    }

    #[test]
    fn predictions_map_gold_names_and_probabilities() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("valid.csv");
        std::fs::write(&path, "row,id,text,gold,pred,prob_neg,prob_pos\n0,,\"a, b\",pos,neg,0.7,0.3\n1,x,c,neg,neg,0.9,0.1\n")
            .expect("write");
        let p = read_predictions(&path).expect("read").expect("exists");
        assert_eq!(p.labels, ["neg", "pos"]);
        assert_eq!(p.gold, [1, 0]);
        assert_eq!(p.texts, ["a, b", "c"]);
        assert_eq!(p.probs[0], [0.7, 0.3]);
        std::fs::write(&path, "row,id,text,gold,pred,prob_neg,prob_pos\n0,,a,maybe,neg,0.7,0.3\n").expect("write");
        let e = read_predictions(&path).expect_err("unknown gold").to_string();
        assert!(e.contains("line 2") && e.contains("maybe"), "{e}");
        assert!(read_predictions(&dir.path().join("none.csv")).expect("missing is fine").is_none());
    }
}
