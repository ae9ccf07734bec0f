//! Threshold curves of a binary classifier: ROC with its area, and precision-recall with its area and
//! average precision. Equal scores form one threshold, as in scikit-learn's `roc_curve` and
//! `precision_recall_curve`.

use super::series::Points;

/// The ROC curve: `(false positive rate, true positive rate)` from `(0, 0)` to `(1, 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Roc {
    /// The curve's points, by decreasing threshold.
    pub points: Points,
    /// Area under the curve (trapezoids).
    pub auc: f64,
}

/// The precision-recall curve: `(recall, precision)`, starting at `(0, 1)`.
#[derive(Debug, Clone, PartialEq)]
pub struct PrCurve {
    /// The curve's points, by decreasing threshold.
    pub points: Points,
    /// Area under the curve (trapezoids, scikit-learn's `auc(recall, precision)`).
    pub auc: f64,
    /// Average precision: `Σ (R_k − R_{k−1}) · P_k` (scikit-learn's `average_precision_score`).
    pub average_precision: f64,
    /// Share of positives: the precision of a classifier that guesses.
    pub base_rate: f64,
}

/// The positive-class probability and the is-positive flag of each example, for class `positive`.
pub fn binary_scores(gold: &[usize], probs: &[Vec<f32>], positive: usize) -> (Vec<f64>, Vec<bool>) {
    gold.iter().zip(probs).map(|(&g, p)| (p.get(positive).map_or(f64::NAN, |&v| v as f64), g == positive)).unzip()
}

/// Cumulative (true positives, false positives) after each distinct threshold, highest first.
/// NaN scores are left out.
fn cumulative(scores: &[f64], positive: &[bool]) -> (Vec<(u64, u64)>, u64, u64) {
    let mut pairs: Vec<(f64, bool)> = scores.iter().copied().zip(positive.iter().copied()).filter(|(s, _)| !s.is_nan()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut out = Vec::new();
    for (i, &(s, pos)) in pairs.iter().enumerate() {
        if pos {
            tp += 1;
        } else {
            fp += 1;
        }
        let last_of_group = pairs.get(i + 1).is_none_or(|next| next.0 != s);
        if last_of_group {
            out.push((tp, fp));
        }
    }
    (out, tp, fp)
}

/// Area under a polyline by trapezoids, in the order given.
fn trapezoid(points: &[(f64, f64)]) -> f64 {
    points.windows(2).map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0).sum()
}

/// The ROC curve, or `None` when positives or negatives are missing (the rates are undefined).
pub fn roc(scores: &[f64], positive: &[bool]) -> Option<Roc> {
    let (cum, p, n) = cumulative(scores, positive);
    if p == 0 || n == 0 {
        return None;
    }
    let mut points = vec![(0.0, 0.0)];
    points.extend(cum.iter().map(|&(tp, fp)| (fp as f64 / n as f64, tp as f64 / p as f64)));
    let auc = trapezoid(&points);
    Some(Roc { points, auc })
}

/// The precision-recall curve, or `None` without positives (recall is undefined).
pub fn precision_recall(scores: &[f64], positive: &[bool]) -> Option<PrCurve> {
    let (cum, p, n) = cumulative(scores, positive);
    if p == 0 {
        return None;
    }
    let mut points = vec![(0.0, 1.0)];
    let mut average_precision = 0.0;
    let mut prev_recall = 0.0;
    for &(tp, fp) in &cum {
        let recall = tp as f64 / p as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        average_precision += (recall - prev_recall) * precision;
        prev_recall = recall;
        points.push((recall, precision));
    }
    let auc = trapezoid(&points);
    Some(PrCurve { points, auc, average_precision, base_rate: p as f64 / (p + n) as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    // scikit-learn's documentation example: y = [0, 0, 1, 1], scores = [0.1, 0.4, 0.35, 0.8].
    const SCORES: [f64; 4] = [0.1, 0.4, 0.35, 0.8];
    const GOLD: [bool; 4] = [false, false, true, true];

    #[test]
    fn roc_by_hand() {
        // Thresholds 0.8, 0.4, 0.35, 0.1 give (fpr, tpr) (0, .5), (.5, .5), (.5, 1), (1, 1);
        // area = .5·.5 + .5·1 = 0.75.
        let r = roc(&SCORES, &GOLD).expect("both classes");
        assert_eq!(r.points, [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)]);
        assert!(close(r.auc, 0.75));
    }

    #[test]
    fn precision_recall_by_hand() {
        // (recall, precision): (.5, 1), (.5, .5), (1, 2/3), (1, .5).
        // AP = .5·1 + 0·.5 + .5·(2/3) + 0 = 5/6.
        // Trapezoids from (0, 1): .5·1 + 0 + .5·(.5 + 2/3)/2 + 0 = 0.5 + 7/24 = 19/24.
        let pr = precision_recall(&SCORES, &GOLD).expect("positives");
        assert_eq!(pr.points.len(), 5);
        assert!(close(pr.points[3].1, 2.0 / 3.0));
        assert!(close(pr.average_precision, 5.0 / 6.0));
        assert!(close(pr.auc, 19.0 / 24.0));
        assert!(close(pr.base_rate, 0.5));
    }

    #[test]
    fn ties_form_one_threshold() {
        let r = roc(&[0.5; 4], &[false, true, false, true]).expect("both classes");
        assert_eq!(r.points, [(0.0, 0.0), (1.0, 1.0)]);
        assert!(close(r.auc, 0.5));
        let pr = precision_recall(&[0.5; 4], &[false, true, false, true]).expect("positives");
        assert_eq!(pr.points, [(0.0, 1.0), (1.0, 0.5)]);
        assert!(close(pr.average_precision, 0.5));
    }

    #[test]
    fn perfect_and_degenerate_inputs() {
        let r = roc(&[0.9, 0.8, 0.2], &[true, true, false]).expect("both");
        assert!(close(r.auc, 1.0));
        assert!(roc(&[0.1, 0.2], &[true, true]).is_none());
        assert!(precision_recall(&[0.1, 0.2], &[false, false]).is_none());
        let pr = precision_recall(&[f64::NAN, 0.7], &[false, true]).expect("positives");
        assert!(close(pr.average_precision, 1.0));
    }

    #[test]
    fn binary_scores_pick_the_positive_column() {
        let (s, p) = binary_scores(&[0, 1], &[vec![0.8, 0.2], vec![0.3, 0.7]], 1);
        assert_eq!(p, [false, true]);
        assert!(close(s[0], 0.2f32 as f64) && close(s[1], 0.7f32 as f64));
    }
}
