//! Scores derived from a confusion matrix: accuracy, per-class and averaged precision/recall/F1, and
//! the multi-class Matthews correlation coefficient.

use super::ConfusionMatrix;

/// Precision, recall and F1 of one class.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ClassScores {
    /// The class name.
    pub label: String,
    /// Correct predictions of this class / all predictions of this class (0 when never predicted).
    pub precision: f64,
    /// Correct predictions of this class / gold examples of this class (0 when it has no examples).
    pub recall: f64,
    /// Harmonic mean of precision and recall (0 when both are 0).
    pub f1: f64,
    /// Gold examples of this class.
    pub support: u64,
}

/// Every score of one evaluation. Divisions by zero give 0, like scikit-learn's `zero_division=0`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scores {
    /// Correct / total.
    #[serde(with = "super::nullable")]
    pub accuracy: f64,
    /// Unweighted mean of per-class precision (over all classes, including those without examples).
    #[serde(with = "super::nullable")]
    pub precision_macro: f64,
    /// Unweighted mean of per-class recall.
    #[serde(with = "super::nullable")]
    pub recall_macro: f64,
    /// Unweighted mean of per-class F1.
    #[serde(with = "super::nullable")]
    pub f1_macro: f64,
    /// Mean of per-class precision weighted by support.
    #[serde(with = "super::nullable")]
    pub precision_weighted: f64,
    /// Mean of per-class recall weighted by support (equals accuracy).
    #[serde(with = "super::nullable")]
    pub recall_weighted: f64,
    /// Mean of per-class F1 weighted by support.
    #[serde(with = "super::nullable")]
    pub f1_weighted: f64,
    /// Matthews correlation coefficient, multi-class form (Gorodkin's R_K); 0 when undefined.
    #[serde(with = "super::nullable")]
    pub mcc: f64,
    /// Scores of each class, in class-id order.
    pub per_class: Vec<ClassScores>,
    /// The confusion matrix, row = gold, column = predicted.
    pub confusion: Vec<Vec<u64>>,
    /// The class names, in class-id order.
    pub labels: Vec<String>,
}

impl Scores {
    /// Scores with no classification numbers (NaN; `null` in JSON), for a regression evaluation.
    pub fn undefined(labels: &[String]) -> Scores {
        let nan = f64::NAN;
        Scores {
            accuracy: nan,
            precision_macro: nan,
            recall_macro: nan,
            f1_macro: nan,
            precision_weighted: nan,
            recall_weighted: nan,
            f1_weighted: nan,
            mcc: nan,
            per_class: Vec::new(),
            confusion: Vec::new(),
            labels: labels.to_vec(),
        }
    }

    /// The classification view of multi-label scores: accuracy is subset accuracy, the macro and
    /// weighted averages run over labels, per-class rows are per-label rows; no MCC (NaN), no
    /// confusion matrix.
    pub fn from_multi_label(m: &super::MultiLabelScores, labels: &[String]) -> Scores {
        Scores {
            accuracy: m.subset_accuracy,
            precision_macro: m.macro_avg.precision,
            recall_macro: m.macro_avg.recall,
            f1_macro: m.macro_avg.f1,
            precision_weighted: m.weighted.precision,
            recall_weighted: m.weighted.recall,
            f1_weighted: m.weighted.f1,
            mcc: f64::NAN,
            per_class: m
                .per_label
                .iter()
                .enumerate()
                .map(|(k, l)| ClassScores {
                    label: labels.get(k).cloned().unwrap_or_else(|| k.to_string()),
                    precision: l.precision,
                    recall: l.recall,
                    f1: l.f1,
                    support: l.support as u64,
                })
                .collect(),
            confusion: Vec::new(),
            labels: labels.to_vec(),
        }
    }

    /// Computes every score from `matrix`. `labels` names the classes in id order; classes beyond its
    /// length are named by their id.
    pub fn from_confusion(matrix: &ConfusionMatrix, labels: &[String]) -> Scores {
        let n = matrix.n();
        let gold = matrix.gold_totals();
        let pred = matrix.pred_totals();
        let total = matrix.total();
        let names: Vec<String> = (0..n).map(|k| labels.get(k).cloned().unwrap_or_else(|| k.to_string())).collect();

        let per_class: Vec<ClassScores> = (0..n)
            .map(|k| {
                let tp = matrix.get(k, k) as f64;
                let precision = ratio(tp, pred[k] as f64);
                let recall = ratio(tp, gold[k] as f64);
                let f1 = ratio(2.0 * precision * recall, precision + recall);
                ClassScores { label: names[k].clone(), precision, recall, f1, support: gold[k] }
            })
            .collect();

        let macro_avg = |f: fn(&ClassScores) -> f64| ratio(per_class.iter().map(f).sum(), n as f64);
        let weighted_avg =
            |f: fn(&ClassScores) -> f64| ratio(per_class.iter().map(|c| f(c) * c.support as f64).sum(), total as f64);

        Scores {
            accuracy: ratio(matrix.correct() as f64, total as f64),
            precision_macro: macro_avg(|c| c.precision),
            recall_macro: macro_avg(|c| c.recall),
            f1_macro: macro_avg(|c| c.f1),
            precision_weighted: weighted_avg(|c| c.precision),
            recall_weighted: weighted_avg(|c| c.recall),
            f1_weighted: weighted_avg(|c| c.f1),
            mcc: mcc(matrix.correct(), total, &gold, &pred),
            per_class,
            confusion: matrix.rows(),
            labels: names,
        }
    }
}

/// `num / den`, or 0 when `den` is 0.
fn ratio(num: f64, den: f64) -> f64 {
    if den == 0.0 {
        0.0
    } else {
        num / den
    }
}

/// Gorodkin's R_K: `(c·s − Σ t_k p_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²))`, with `c` correct, `s` total,
/// `t_k` gold and `p_k` predicted counts of class k; 0 when the denominator is 0 (e.g. when a single
/// class is predicted or present). Reduces to the classic binary MCC for two classes.
fn mcc(correct: u64, total: u64, gold: &[u64], pred: &[u64]) -> f64 {
    let (c, s) = (correct as f64, total as f64);
    let tp: f64 = gold.iter().zip(pred).map(|(&t, &p)| t as f64 * p as f64).sum();
    let pp: f64 = pred.iter().map(|&p| (p as f64).powi(2)).sum();
    let tt: f64 = gold.iter().map(|&t| (t as f64).powi(2)).sum();
    let den = ((s * s - pp) * (s * s - tt)).sqrt();
    if den == 0.0 || !den.is_finite() {
        0.0
    } else {
        (c * s - tp) / den
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(labels: &[&str]) -> Vec<String> {
        labels.iter().map(|s| s.to_string()).collect()
    }

    fn matrix(rows: &[&[u64]]) -> ConfusionMatrix {
        let mut m = ConfusionMatrix::new(rows.len());
        for (g, row) in rows.iter().enumerate() {
            for (p, &count) in row.iter().enumerate() {
                for _ in 0..count {
                    m.add(g, p);
                }
            }
        }
        m
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn three_classes_by_hand() {
        // gold \ pred   a  b  c   support
        //   a           4  1  1   6
        //   b           0  2  1   3
        //   c           1  0  0   1
        // predicted     5  3  2   total 10, correct 6
        //
        // a: P = 4/5, R = 4/6, F1 = 2·4/(2·4 + 1 + 2) = 8/11
        // b: P = 2/3, R = 2/3, F1 = 2/3
        // c: P = 0/2, R = 0/1, F1 = 0
        // macro:    P = (4/5 + 2/3)/3 = 22/45, R = (2/3 + 2/3)/3 = 4/9, F1 = (8/11 + 2/3)/3 = 46/99
        // weighted: P = (6·4/5 + 3·2/3)/10 = 0.68, R = (6·2/3 + 3·2/3)/10 = 0.6,
        //           F1 = (6·8/11 + 3·2/3)/10 = 7/11
        // MCC: c·s = 60, Σ t_k p_k = 6·5 + 3·3 + 1·2 = 41, s² − Σ p² = 100 − 38 = 62,
        //      s² − Σ t² = 100 − 46 = 54, so MCC = 19 / sqrt(62·54) = 19 / sqrt(3348)
        let s = Scores::from_confusion(&matrix(&[&[4, 1, 1], &[0, 2, 1], &[1, 0, 0]]), &names(&["a", "b", "c"]));
        assert!(close(s.accuracy, 0.6));
        let a = &s.per_class[0];
        assert!(close(a.precision, 0.8) && close(a.recall, 4.0 / 6.0) && close(a.f1, 8.0 / 11.0));
        assert_eq!((a.label.as_str(), a.support), ("a", 6));
        let b = &s.per_class[1];
        assert!(close(b.precision, 2.0 / 3.0) && close(b.recall, 2.0 / 3.0) && close(b.f1, 2.0 / 3.0));
        let c = &s.per_class[2];
        assert_eq!((c.precision, c.recall, c.f1, c.support), (0.0, 0.0, 0.0, 1));
        assert!(close(s.precision_macro, 22.0 / 45.0));
        assert!(close(s.recall_macro, 4.0 / 9.0));
        assert!(close(s.f1_macro, 46.0 / 99.0));
        assert!(close(s.precision_weighted, 0.68));
        assert!(close(s.recall_weighted, 0.6));
        assert!(close(s.f1_weighted, 7.0 / 11.0));
        assert!(close(s.mcc, 19.0 / 3348f64.sqrt()), "{}", s.mcc);
        assert_eq!(s.confusion, [[4, 1, 1], [0, 2, 1], [1, 0, 0]]);
        assert_eq!(s.labels, ["a", "b", "c"]);
    }

    #[test]
    fn binary_mcc_matches_the_classic_formula() {
        let (tn, fp, fn_, tp) = (3.0_f64, 2.0, 1.0, 5.0);
        let classic = (tp * tn - fp * fn_) / ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
        let s = Scores::from_confusion(&matrix(&[&[3, 2], &[1, 5]]), &names(&["neg", "pos"]));
        assert!(close(s.mcc, classic), "{} vs {classic}", s.mcc);
    }

    #[test]
    fn mcc_is_zero_when_one_class_is_always_predicted() {
        let s = Scores::from_confusion(&matrix(&[&[7, 0], &[3, 0]]), &names(&["neg", "pos"]));
        assert_eq!(s.mcc, 0.0);
        assert!(close(s.accuracy, 0.7));
        assert_eq!(s.per_class[1].precision, 0.0);
    }

    #[test]
    fn perfect_predictions_score_one() {
        let m = ConfusionMatrix::from_predictions(&[0, 1, 2, 2, 1], &[0, 1, 2, 2, 1], 3);
        let s = Scores::from_confusion(&m, &names(&["x", "y", "z"]));
        for v in [s.accuracy, s.precision_macro, s.recall_macro, s.f1_macro, s.f1_weighted, s.mcc] {
            assert!(close(v, 1.0), "{v}");
        }
    }

    #[test]
    fn zero_support_class_counts_in_macro_but_not_weighted() {
        // Class c has no gold examples but is predicted once.
        let s = Scores::from_confusion(&matrix(&[&[2, 0, 1], &[0, 1, 0], &[0, 0, 0]]), &names(&["a", "b"]));
        let c = &s.per_class[2];
        assert_eq!((c.label.as_str(), c.precision, c.recall, c.f1, c.support), ("2", 0.0, 0.0, 0.0, 0));
        // a (support 3): P = 2/2, R = 2/3, F1 = 4/5; b (support 1): all 1.
        assert!(close(s.f1_macro, (0.8 + 1.0 + 0.0) / 3.0));
        assert!(close(s.f1_weighted, (3.0 * 0.8 + 1.0 * 1.0) / 4.0));
        assert!(close(s.recall_weighted, s.accuracy));
    }

    #[test]
    fn empty_matrix_scores_zero() {
        let s = Scores::from_confusion(&ConfusionMatrix::new(2), &names(&["a", "b"]));
        assert_eq!((s.accuracy, s.f1_macro, s.f1_weighted, s.mcc), (0.0, 0.0, 0.0, 0.0));
    }
}
