//! Summaries over several runs (folds, seeds): mean, sample standard deviation and range of each metric.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Measured, Metric};
use crate::data::ProblemType;

/// Mean, sample standard deviation (n − 1) and range of one metric over runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (0 for a single run).
    pub std: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Number of runs.
    pub n: usize,
}

/// Spread of `values` (NaN-free input expected; empty input gives zeros).
pub fn spread(values: &[f64]) -> Spread {
    let n = values.len();
    if n == 0 {
        return Spread { mean: 0.0, std: 0.0, min: 0.0, max: 0.0, n: 0 };
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = if n > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64 } else { 0.0 };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Spread { mean, std: var.sqrt(), min, max, n }
}

/// The metrics summarised across single-label runs, in display order.
pub const SUMMARY_METRICS: [&str; 7] = ["accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro", "mcc", "loss"];

/// The metrics summarised across runs of a problem type, in display order.
pub fn summary_metrics(problem: ProblemType) -> Vec<Metric> {
    use Metric::*;
    match problem {
        ProblemType::SingleLabel => vec![Accuracy, F1Macro, F1Weighted, PrecisionMacro, RecallMacro, Mcc, Loss],
        ProblemType::MultiLabel => vec![F1Micro, F1Macro, F1Weighted, F1Samples, Accuracy, HammingLoss, Lrap, Loss],
        ProblemType::Regression => vec![Mse, Rmse, Mae, R2, Pearson, Spearman, Loss],
    }
}

/// The problem type a set of evaluations measured (the first with multi-label or regression scores).
pub fn problem_of(runs: &[Measured<'_>]) -> ProblemType {
    match runs.iter().find(|m| m.multi_label.is_some() || m.regression.is_some()) {
        Some(m) if m.regression.is_some() => ProblemType::Regression,
        Some(_) => ProblemType::MultiLabel,
        None => ProblemType::SingleLabel,
    }
}

/// Spread of every summary metric of the runs' problem type over the runs.
pub fn summarize(runs: &[Measured<'_>]) -> BTreeMap<String, Spread> {
    summary_metrics(problem_of(runs))
        .into_iter()
        .map(|m| (m.name().to_string(), spread(&runs.iter().map(|r| m.value(r)).collect::<Vec<_>>())))
        .collect()
}

/// A Markdown table: one row per run, then mean ± std and min–max rows.
pub fn summary_table(rows: &[(String, Measured<'_>)]) -> String {
    let views: Vec<Measured<'_>> = rows.iter().map(|(_, m)| *m).collect();
    let metrics = summary_metrics(problem_of(&views));
    let mut out = String::from("| run |");
    for m in &metrics {
        out.push_str(&format!(" {m} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(metrics.len()));
    out.push('\n');
    for (name, r) in rows {
        out.push_str(&format!("| {name} |"));
        for m in &metrics {
            out.push_str(&format!(" {:.4} |", m.value(r)));
        }
        out.push('\n');
    }
    let summary = summarize(&views);
    out.push_str("| mean ± std |");
    for m in &metrics {
        let sp = summary[m.name()];
        out.push_str(&format!(" {:.4} ± {:.4} |", sp.mean, sp.std));
    }
    out.push_str("\n| min – max |");
    for m in &metrics {
        let sp = summary[m.name()];
        out.push_str(&format!(" {:.4} – {:.4} |", sp.min, sp.max));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_uses_sample_std() {
        let s = spread(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(s.mean, 2.5);
        assert!((s.std - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert_eq!((s.min, s.max, s.n), (1.0, 4.0, 4));
        assert_eq!(spread(&[0.7]).std, 0.0);
        assert_eq!(spread(&[]).n, 0);
    }

    #[test]
    fn table_has_a_row_per_run_and_summary_rows() {
        let cm = crate::metrics::ConfusionMatrix::from_predictions(&[0, 1, 1], &[0, 1, 0], 2);
        let s = crate::metrics::Scores::from_confusion(&cm, &["a".into(), "b".into()]);
        let view = |loss| Measured { loss, scores: &s, multi_label: None, regression: None };
        let t = summary_table(&[("fold-0".into(), view(0.5)), ("fold-1".into(), view(0.7))]);
        assert!(t.contains("| fold-0 |") && t.contains("| fold-1 |"));
        assert!(t.contains("0.6667 ± 0.0000"), "{t}");
        assert!(t.contains("0.6000 ± 0.1414"), "{t}");
        let r = crate::metrics::RegressionScores::compute(&[1.0, 2.0, 3.0], &[1.0, 2.0, 4.0]);
        let reg = Measured { loss: 0.1, scores: &s, multi_label: None, regression: Some(&r) };
        let t = summary_table(&[("fold-0".into(), reg)]);
        assert!(t.starts_with("| run | mse | rmse | mae | r2 | pearson | spearman | loss |"), "{t}");
        assert!(t.contains("| 0.3333 |"), "{t}");
    }
}
