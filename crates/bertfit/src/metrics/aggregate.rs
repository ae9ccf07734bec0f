//! Summaries over several runs (folds, seeds): mean, sample standard deviation and range of each metric.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Scores;

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

/// The metrics summarised across runs, in display order.
pub const SUMMARY_METRICS: [&str; 7] = ["accuracy", "f1_macro", "f1_weighted", "precision_macro", "recall_macro", "mcc", "loss"];

fn value(name: &str, s: &Scores, loss: f64) -> f64 {
    match name {
        "accuracy" => s.accuracy,
        "f1_macro" => s.f1_macro,
        "f1_weighted" => s.f1_weighted,
        "precision_macro" => s.precision_macro,
        "recall_macro" => s.recall_macro,
        "mcc" => s.mcc,
        _ => loss,
    }
}

/// Spread of every summary metric over runs given as (scores, loss).
pub fn summarize(runs: &[(&Scores, f64)]) -> BTreeMap<String, Spread> {
    SUMMARY_METRICS
        .iter()
        .map(|m| (m.to_string(), spread(&runs.iter().map(|(s, l)| value(m, s, *l)).collect::<Vec<_>>())))
        .collect()
}

/// A Markdown table: one row per run, then mean ± std and min–max rows.
pub fn summary_table(rows: &[(String, &Scores, f64)]) -> String {
    let mut out = String::from("| run |");
    for m in SUMMARY_METRICS {
        out.push_str(&format!(" {m} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---:|".repeat(SUMMARY_METRICS.len()));
    out.push('\n');
    for (name, s, loss) in rows {
        out.push_str(&format!("| {name} |"));
        for m in SUMMARY_METRICS {
            out.push_str(&format!(" {:.4} |", value(m, s, *loss)));
        }
        out.push('\n');
    }
    let summary = summarize(&rows.iter().map(|(_, s, l)| (*s, *l)).collect::<Vec<_>>());
    out.push_str("| mean ± std |");
    for m in SUMMARY_METRICS {
        let sp = summary[m];
        out.push_str(&format!(" {:.4} ± {:.4} |", sp.mean, sp.std));
    }
    out.push_str("\n| min – max |");
    for m in SUMMARY_METRICS {
        let sp = summary[m];
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
        let s = Scores::from_confusion(&cm, &["a".into(), "b".into()]);
        let t = summary_table(&[("fold-0".into(), &s, 0.5), ("fold-1".into(), &s, 0.7)]);
        assert!(t.contains("| fold-0 |") && t.contains("| fold-1 |"));
        assert!(t.contains("0.6667 ± 0.0000"), "{t}");
        assert!(t.contains("0.6000 ± 0.1414"), "{t}");
    }
}
