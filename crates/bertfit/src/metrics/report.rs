//! Plain-text renderings of [`Scores`]: a scikit-learn-style classification report and a labelled
//! confusion matrix.

use std::fmt::Write;

use super::{MultiLabelScores, RegressionScores, Scores};

/// Decimal places in the classification report.
const DIGITS: usize = 4;

/// A table in the layout of scikit-learn's `classification_report` (4 decimals): precision, recall, F1
/// and support per class, then accuracy, MCC, macro and weighted averages.
pub fn classification_report(scores: &Scores) -> String {
    let width = scores
        .per_class
        .iter()
        .map(|c| c.label.chars().count())
        .chain(["weighted avg".len()])
        .max()
        .unwrap_or_default();
    let support: u64 = scores.per_class.iter().map(|c| c.support).sum();
    let mut out = String::new();
    let _ = writeln!(out, "{:>width$}  {:>9} {:>9} {:>9} {:>9}", "", "precision", "recall", "f1-score", "support");
    out.push('\n');
    let row = |out: &mut String, name: &str, p: f64, r: f64, f: f64, n: u64| {
        let _ = writeln!(out, "{name:>width$}  {p:>9.DIGITS$} {r:>9.DIGITS$} {f:>9.DIGITS$} {n:>9}");
    };
    for c in &scores.per_class {
        row(&mut out, &c.label, c.precision, c.recall, c.f1, c.support);
    }
    out.push('\n');
    for (name, value) in [("accuracy", scores.accuracy), ("mcc", scores.mcc)] {
        let _ = writeln!(out, "{name:>width$}  {:>9} {:>9} {value:>9.DIGITS$} {support:>9}", "", "");
    }
    row(&mut out, "macro avg", scores.precision_macro, scores.recall_macro, scores.f1_macro, support);
    row(&mut out, "weighted avg", scores.precision_weighted, scores.recall_weighted, scores.f1_weighted, support);
    out
}

/// The multi-label report: per-label precision, recall, F1 and support, the micro, macro, weighted and
/// samples averages, subset accuracy, Hamming loss and label-ranking average precision.
pub fn multi_label_report(m: &MultiLabelScores, labels: &[String]) -> String {
    let width = labels.iter().map(|l| l.chars().count()).chain(["weighted avg".len()]).max().unwrap_or_default();
    let support: usize = m.per_label.iter().map(|l| l.support).sum();
    let mut out = String::new();
    let _ = writeln!(out, "{:>width$}  {:>9} {:>9} {:>9} {:>9}", "", "precision", "recall", "f1-score", "support");
    out.push('\n');
    let row = |out: &mut String, name: &str, p: f64, r: f64, f: f64, n: usize| {
        let _ = writeln!(out, "{name:>width$}  {p:>9.DIGITS$} {r:>9.DIGITS$} {f:>9.DIGITS$} {n:>9}");
    };
    for (l, name) in m.per_label.iter().zip(labels) {
        row(&mut out, name, l.precision, l.recall, l.f1, l.support);
    }
    out.push('\n');
    for (name, a) in [("micro avg", m.micro), ("macro avg", m.macro_avg), ("weighted avg", m.weighted), ("samples avg", m.samples)] {
        row(&mut out, name, a.precision, a.recall, a.f1, support);
    }
    out.push('\n');
    for (name, value) in [("subset accuracy", m.subset_accuracy), ("hamming loss", m.hamming_loss), ("lrap", m.lrap)] {
        let _ = writeln!(out, "{name}: {value:.DIGITS$}");
    }
    out
}

/// The regression report: MSE, RMSE, MAE, R², Pearson and Spearman correlation, one per line.
pub fn regression_report(r: &RegressionScores) -> String {
    [("mse", r.mse), ("rmse", r.rmse), ("mae", r.mae), ("r2", r.r2), ("pearson", r.pearson), ("spearman", r.spearman)]
        .iter()
        .map(|(name, v)| format!("{name:>8}: {v:.DIGITS$}\n"))
        .collect()
}

/// The confusion matrix with class names as row (gold) and column (predicted) headers.
pub fn confusion_table(scores: &Scores) -> String {
    const CORNER: &str = "gold \\ pred";
    let name = |k: usize| scores.labels.get(k).cloned().unwrap_or_else(|| k.to_string());
    let n = scores.confusion.len();
    let row_width = (0..n).map(|k| name(k).chars().count()).chain([CORNER.len()]).max().unwrap_or_default();
    let widths: Vec<usize> = (0..n)
        .map(|p| {
            let digits = scores.confusion.iter().filter_map(|r| r.get(p)).map(|c| c.to_string().len()).max();
            name(p).chars().count().max(digits.unwrap_or(1))
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{CORNER:<row_width$}");
    for (p, &w) in widths.iter().enumerate() {
        let _ = write!(out, "  {:>w$}", name(p));
    }
    out.push('\n');
    for (g, counts) in scores.confusion.iter().enumerate() {
        let _ = write!(out, "{:<row_width$}", name(g));
        for (count, &w) in counts.iter().zip(&widths) {
            let _ = write!(out, "  {count:>w$}");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{ConfusionMatrix, Scores};
    use super::*;

    fn scores() -> Scores {
        let m = ConfusionMatrix::from_predictions(&[0, 0, 0, 1, 1, 1, 1], &[0, 0, 1, 1, 1, 1, 0], 2);
        Scores::from_confusion(&m, &["negative".to_string(), "pos".to_string()])
    }

    #[test]
    fn report_layout() {
        let expected = [
            "              precision    recall  f1-score   support",
            "",
            "    negative     0.6667    0.6667    0.6667         3",
            "         pos     0.7500    0.7500    0.7500         4",
            "",
            "    accuracy                         0.7143         7",
            "         mcc                         0.4167         7",
            "   macro avg     0.7083    0.7083    0.7083         7",
            "weighted avg     0.7143    0.7143    0.7143         7",
            "",
        ]
        .join("\n");
        assert_eq!(classification_report(&scores()), expected);
    }

    #[test]
    fn confusion_layout() {
        let expected = "\
gold \\ pred  negative  pos
negative            2    1
pos                 1    3
";
        assert_eq!(confusion_table(&scores()), expected);
    }
}
