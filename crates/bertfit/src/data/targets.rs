//! What a model learns to predict: the problem type (one class, a label set, or a number) and the
//! targets of a dataset in that form, with the keys that stratify its splits.

use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Dataset, LabelMap};
use crate::error::{Error, Location, Result};

/// The three problem shapes, named as Hugging Face's `config.problem_type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemType {
    /// One class per example: softmax and cross-entropy.
    #[default]
    #[serde(rename = "single_label_classification", alias = "single_label")]
    SingleLabel,
    /// A set of labels per example: one sigmoid per label and binary cross-entropy.
    #[serde(rename = "multi_label_classification", alias = "multi_label")]
    MultiLabel,
    /// A number per example: one output, squared (or Huber) error.
    Regression,
}

impl ProblemType {
    /// Hugging Face's name (`config.json`'s `problem_type`).
    pub fn hf_name(self) -> &'static str {
        match self {
            ProblemType::SingleLabel => "single_label_classification",
            ProblemType::MultiLabel => "multi_label_classification",
            ProblemType::Regression => "regression",
        }
    }

    /// The short name the command line takes.
    pub fn name(self) -> &'static str {
        match self {
            ProblemType::SingleLabel => "single_label",
            ProblemType::MultiLabel => "multi_label",
            ProblemType::Regression => "regression",
        }
    }
}

impl std::fmt::Display for ProblemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ProblemType {
    type Err = Error;

    /// The short names or Hugging Face's, case-insensitively, `-` for `_`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('-', "_").as_str() {
            "single_label" | "single_label_classification" | "single" => Ok(ProblemType::SingleLabel),
            "multi_label" | "multi_label_classification" | "multi" => Ok(ProblemType::MultiLabel),
            "regression" => Ok(ProblemType::Regression),
            _ => Err(Error::config("problem-type", format!("unknown problem type `{s}`; accepted: single_label, multi_label, regression"))),
        }
    }
}

/// The mean and standard deviation that standardise regression targets: the model learns
/// `(y − mean) / std`; saved models have the scaling folded into their last layer.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scaling {
    /// Mean of the training targets.
    pub mean: f64,
    /// Their (population) standard deviation; 1 when they are constant.
    pub std: f64,
}

impl Scaling {
    /// The scaling of `values` (empty: the identity).
    pub fn of(values: &[f32]) -> Scaling {
        if values.is_empty() {
            return Scaling::IDENTITY;
        }
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let std = var.sqrt();
        Scaling { mean, std: if std > 1e-12 && std.is_finite() { std } else { 1.0 } }
    }

    /// No scaling.
    pub const IDENTITY: Scaling = Scaling { mean: 0.0, std: 1.0 };

    /// A raw target in the model's standardised units.
    pub fn forward(&self, y: f64) -> f64 {
        (y - self.mean) / self.std
    }

    /// A model output back in the targets' units.
    pub fn inverse(&self, z: f64) -> f64 {
        z * self.std + self.mean
    }
}

/// The gold targets of a dataset, one per example, in example order.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// A class id per example.
    Classes(Vec<usize>),
    /// A 0/1 row per example (`width` labels), row-major.
    Sets {
        /// Labels per row.
        width: usize,
        /// `examples × width` indicators.
        hot: Vec<f32>,
    },
    /// A number per example, in the data's units.
    Values(Vec<f32>),
}

impl Targets {
    /// Reads `data`'s targets for `problem`: class ids or label sets through `labels`, numbers parsed
    /// from the label cells. Errors name file, line and field.
    pub fn encode(problem: ProblemType, data: &Dataset, labels: &LabelMap) -> Result<Targets> {
        let column = data.label_column.as_deref().unwrap_or("label");
        match problem {
            ProblemType::SingleLabel => {
                if let Some(ex) = data.examples.iter().find(|e| e.label_set.is_some()) {
                    return Err(Error::input(
                        Location::file(&data.path).line(ex.line).field(column),
                        "a list of labels in a single-label run: use --problem-type multi_label",
                    ));
                }
                Ok(Targets::Classes(labels.encode(data)?))
            }
            ProblemType::MultiLabel => {
                let width = labels.len();
                let mut hot = vec![0f32; data.len() * width];
                for (row, ex) in data.examples.iter().enumerate() {
                    let at = || Location::file(&data.path).line(ex.line).field(column);
                    let names: Vec<&str> = match (&ex.label_set, &ex.label) {
                        (Some(set), _) => set.iter().map(String::as_str).collect(),
                        (None, Some(one)) => vec![one.as_str()],
                        (None, None) => return Err(Error::input(at(), "missing label")),
                    };
                    for name in names {
                        let id = labels.id(name).ok_or_else(|| {
                            Error::input(at(), format!("unknown label `{name}`; known labels: {}", labels.names().join(", ")))
                        })?;
                        hot[row * width + id] = 1.0;
                    }
                }
                Ok(Targets::Sets { width, hot })
            }
            ProblemType::Regression => data
                .examples
                .iter()
                .map(|ex| {
                    let at = || Location::file(&data.path).line(ex.line).field(column);
                    let raw = ex.label.as_deref().ok_or_else(|| Error::input(at(), "missing target: a regression row needs a number"))?;
                    match raw.parse::<f64>() {
                        Ok(v) if v.is_finite() && v.abs() < f32::MAX as f64 => Ok(v as f32),
                        _ => Err(Error::input(at(), format!("expected a number as the regression target, found `{raw}`"))),
                    }
                })
                .collect::<Result<Vec<f32>>>()
                .map(Targets::Values),
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        match self {
            Targets::Classes(c) => c.len(),
            Targets::Sets { width, hot } => hot.len() / (*width).max(1),
            Targets::Values(v) => v.len(),
        }
    }

    /// True when there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The class ids, for single-label targets.
    pub fn classes(&self) -> Option<&[usize]> {
        match self {
            Targets::Classes(c) => Some(c),
            _ => None,
        }
    }

    /// Example `i`'s dense target row: its 0/1 label indicators, or its value; empty for classes.
    pub fn row(&self, i: usize) -> &[f32] {
        match self {
            Targets::Classes(_) => &[],
            Targets::Sets { width, hot } => &hot[i * width..(i + 1) * width],
            Targets::Values(v) => std::slice::from_ref(&v[i]),
        }
    }

    /// The targets of the examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Targets {
        match self {
            Targets::Classes(c) => Targets::Classes(indices.iter().map(|&i| c[i]).collect()),
            Targets::Sets { width, .. } => Targets::Sets { width: *width, hot: indices.iter().flat_map(|&i| self.row(i).to_vec()).collect() },
            Targets::Values(v) => Targets::Values(indices.iter().map(|&i| v[i]).collect()),
        }
    }

    /// A stratification key per example for seeded splits and folds: the class; for label sets the
    /// rarest label of the set (the empty set its own stratum), so rare labels spread over every part;
    /// for numbers the decile of the value (at most 10 bins, fewer for small data).
    pub fn strata(&self) -> Vec<usize> {
        match self {
            Targets::Classes(c) => c.clone(),
            Targets::Sets { width, hot } => {
                let rows = hot.chunks(*width.max(&1));
                let mut counts = vec![0usize; *width];
                for row in rows.clone() {
                    for (k, &v) in row.iter().enumerate() {
                        counts[k] += (v > 0.5) as usize;
                    }
                }
                rows.map(|row| (0..*width).filter(|&k| row[k] > 0.5).min_by_key(|&k| (counts[k], k)).unwrap_or(*width)).collect()
            }
            Targets::Values(v) => {
                let bins = (v.len() / 10).clamp(1, 10);
                let mut order: Vec<usize> = (0..v.len()).collect();
                order.sort_by(|&a, &b| v[a].total_cmp(&v[b]).then(a.cmp(&b)));
                let mut out = vec![0; v.len()];
                for (rank, &i) in order.iter().enumerate() {
                    out[i] = rank * bins / v.len().max(1);
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Example;

    fn data(rows: &[(Option<&str>, Option<&[&str]>)]) -> Dataset {
        let examples = rows
            .iter()
            .enumerate()
            .map(|(i, (l, set))| Example {
                id: None,
                text: format!("t{i}"),
                text_pair: None,
                label: l.map(str::to_string),
                label_set: set.map(|s| s.iter().map(|x| x.to_string()).collect()),
                line: i as u64 + 2,
            })
            .collect();
        Dataset { path: "d.csv".into(), examples, id_column: None, label_column: Some("y".into()) }
    }

    #[test]
    fn problem_types_parse_and_serialize_as_hugging_face_names() {
        assert_eq!("multi-label".parse::<ProblemType>().expect("parse"), ProblemType::MultiLabel);
        assert_eq!("REGRESSION".parse::<ProblemType>().expect("parse"), ProblemType::Regression);
        assert_eq!("single_label_classification".parse::<ProblemType>().expect("parse"), ProblemType::SingleLabel);
        assert!("ranking".parse::<ProblemType>().is_err());
        assert_eq!(serde_json::to_string(&ProblemType::MultiLabel).expect("json"), "\"multi_label_classification\"");
        assert_eq!(serde_json::from_str::<ProblemType>("\"multi_label\"").expect("alias"), ProblemType::MultiLabel);
    }

    #[test]
    fn label_sets_encode_as_indicator_rows_and_unknown_labels_name_the_line() {
        let d = data(&[(None, Some(&["b", "a"])), (None, Some(&[])), (Some("c"), None)]);
        let map = LabelMap::from_labels(["a", "b", "c"]);
        let t = Targets::encode(ProblemType::MultiLabel, &d, &map).expect("encode");
        assert_eq!(t, Targets::Sets { width: 3, hot: vec![1., 1., 0., 0., 0., 0., 0., 0., 1.] });
        assert_eq!(t.len(), 3);
        assert_eq!(t.subset(&[2, 0]).row(0), [0., 0., 1.]);
        let e = Targets::encode(ProblemType::MultiLabel, &d, &LabelMap::from_labels(["a", "b"])).expect_err("unknown").to_string();
        assert_eq!(e, "d.csv, line 4, field `y`: unknown label `c`; known labels: a, b");
        let e = Targets::encode(ProblemType::SingleLabel, &d, &map).expect_err("set in single").to_string();
        assert!(e.contains("line 2") && e.contains("multi_label"), "{e}");
    }

    #[test]
    fn regression_targets_parse_numbers_and_name_bad_cells() {
        let d = data(&[(Some("1.5"), None), (Some("-2"), None), (Some("3e-1"), None)]);
        let t = Targets::encode(ProblemType::Regression, &d, &LabelMap::from_labels(["y"])).expect("numbers");
        assert_eq!(t, Targets::Values(vec![1.5, -2.0, 0.3]));
        let bad = data(&[(Some("1"), None), (Some("high"), None)]);
        let e = Targets::encode(ProblemType::Regression, &bad, &LabelMap::from_labels(["y"])).expect_err("text").to_string();
        assert_eq!(e, "d.csv, line 3, field `y`: expected a number as the regression target, found `high`");
        let nan = data(&[(Some("NaN"), None)]);
        assert!(Targets::encode(ProblemType::Regression, &nan, &LabelMap::from_labels(["y"])).is_err());
    }

    #[test]
    fn scaling_standardises_and_inverts() {
        let s = Scaling::of(&[1.0, 2.0, 3.0, 4.0]);
        assert!((s.mean - 2.5).abs() < 1e-12 && (s.std - 1.25f64.sqrt()).abs() < 1e-12);
        assert!((s.inverse(s.forward(3.7)) - 3.7).abs() < 1e-12);
        assert_eq!(Scaling::of(&[5.0, 5.0]).std, 1.0);
    }

    #[test]
    fn strata_use_the_rarest_label_and_value_bins() {
        let t = Targets::Sets { width: 3, hot: vec![1., 1., 0., 1., 0., 0., 0., 0., 0., 1., 0., 1.] };
        // label counts: a 3, b 1, c 1 → rows: b, a, none (3), c
        assert_eq!(t.strata(), [1, 0, 3, 2]);
        let v = Targets::Values((0..40).map(|i| (39 - i) as f32).collect());
        let s = v.strata();
        assert_eq!((s[0], s[39]), (3, 0));
        assert_eq!(s.iter().filter(|&&k| k == 2).count(), 10);
    }
}
