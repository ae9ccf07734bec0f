//! Scoring probabilities against gold labels: the one `argmax` (NaN never wins), the mean loss, and the
//! evaluation every caller shares (training's validation, `eval`, ensembles, cross-validation).

use crate::data::Targets;
use crate::metrics::{ConfusionMatrix, MultiLabelScores, RegressionScores, Scores};
use crate::objective::Objective;

/// Index of the largest probability: the first on ties; NaN never wins (all-NaN rows give 0).
pub fn argmax(p: &[f32]) -> usize {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in p.iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// Weighted mean cross-entropy of probabilities (PyTorch's `CrossEntropyLoss(weight=w)`), in f64.
pub fn cross_entropy_from_probs(probs: &[Vec<f32>], labels: &[usize], class_weights: Option<&[f32]>) -> f64 {
    let w = |y: usize| class_weights.map_or(1.0, |cw| cw[y] as f64);
    let (mut num, mut den) = (0.0, 0.0);
    for (p, &y) in probs.iter().zip(labels) {
        num += -w(y) * (p[y] as f64).max(1e-30).ln();
        den += w(y);
    }
    if den > 0.0 {
        num / den
    } else {
        0.0
    }
}

/// Probabilities scored against gold labels.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Mean (weighted) cross-entropy.
    pub loss: f64,
    /// Scores.
    pub scores: Scores,
    /// Probabilities per example.
    pub probs: Vec<Vec<f32>>,
    /// Gold class id per example (single-label; empty otherwise).
    pub gold: Vec<usize>,
    /// Multi-label scores, for multi-label evaluations.
    pub multi_label: Option<MultiLabelScores>,
    /// Regression scores, for regression evaluations.
    pub regression: Option<RegressionScores>,
}

impl Evaluation {
    /// The scores as an evaluation record takes them.
    pub fn measures(&self) -> (Scores, Option<MultiLabelScores>, Option<RegressionScores>) {
        (self.scores.clone(), self.multi_label.clone(), self.regression)
    }
}

/// The decision threshold of a multi-label model without tuned thresholds.
pub const DEFAULT_THRESHOLD: f32 = 0.5;

/// The predicted label set of a multi-label scores row: the labels at or above their threshold
/// (`thresholds` per label; [`DEFAULT_THRESHOLD`] where absent).
pub fn label_set(scores: &[f32], thresholds: Option<&[f32]>) -> Vec<bool> {
    scores.iter().enumerate().map(|(k, &q)| q >= thresholds.and_then(|t| t.get(k).copied()).unwrap_or(DEFAULT_THRESHOLD)).collect()
}

/// Scores of any problem type (probabilities, label probabilities or values, as
/// [`Objective::activate`] gives them) against `targets`; the loss is the objective's. Multi-label
/// decisions use `thresholds` (0.5 where absent).
pub fn evaluate_targets(scores: Vec<Vec<f32>>, targets: &Targets, labels: &[String], objective: &Objective, thresholds: Option<&[f32]>) -> Evaluation {
    let loss = objective.eval_loss(&scores, targets);
    match targets {
        Targets::Classes(gold) => Evaluation { loss, ..evaluate(scores, gold.clone(), labels, objective.weights.as_deref()) },
        Targets::Sets { .. } => {
            let gold: Vec<Vec<bool>> = (0..targets.len()).map(|i| targets.row(i).iter().map(|&v| v > 0.5).collect()).collect();
            let pred: Vec<Vec<bool>> = scores.iter().map(|row| label_set(row, thresholds)).collect();
            let m = MultiLabelScores::compute(&gold, &pred, &scores);
            Evaluation { loss, scores: Scores::from_multi_label(&m, labels), probs: scores, gold: Vec::new(), multi_label: Some(m), regression: None }
        }
        Targets::Values(values) => {
            let gold: Vec<f64> = values.iter().map(|&v| v as f64).collect();
            let pred: Vec<f64> = scores.iter().map(|r| r.first().copied().unwrap_or(f32::NAN) as f64).collect();
            let r = RegressionScores::compute(&gold, &pred);
            Evaluation { loss, scores: Scores::undefined(labels), probs: scores, gold: Vec::new(), multi_label: None, regression: Some(r) }
        }
    }
}

/// Scores `probs` against `gold` for classes `labels`.
pub fn evaluate(probs: Vec<Vec<f32>>, gold: Vec<usize>, labels: &[String], class_weights: Option<&[f32]>) -> Evaluation {
    let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let cm = ConfusionMatrix::from_predictions(&gold, &pred, labels.len());
    let loss = cross_entropy_from_probs(&probs, &gold, class_weights);
    Evaluation { loss, scores: Scores::from_confusion(&cm, labels), probs, gold, multi_label: None, regression: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum_and_never_a_nan() {
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
        assert_eq!(argmax(&[0.4, 0.4, 0.2]), 0);
        assert_eq!(argmax(&[f32::NAN, 0.3, 0.7]), 2);
        assert_eq!(argmax(&[0.3, f32::NAN, 0.2]), 0);
        assert_eq!(argmax(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(argmax(&[]), 0);
    }

    #[test]
    fn evaluation_counts_and_loss() {
        let labels = vec!["a".to_string(), "b".to_string()];
        let probs = vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.6, 0.4]];
        let e = evaluate(probs, vec![0, 1, 1], &labels, None);
        assert!((e.scores.accuracy - 2.0 / 3.0).abs() < 1e-12);
        let want = -(0.9f64.ln() + 0.8f64.ln() + 0.4f64.ln()) / 3.0;
        assert!((e.loss - want).abs() < 1e-6, "{} vs {want}", e.loss);
        let weighted = evaluate(e.probs.clone(), vec![0, 1, 1], &labels, Some(&[1.0, 3.0]));
        let want_w = -(0.9f64.ln() + 3.0 * 0.8f64.ln() + 3.0 * 0.4f64.ln()) / 7.0;
        assert!((weighted.loss - want_w).abs() < 1e-6);
    }

    #[test]
    fn multi_label_and_regression_evaluations() {
        use crate::data::{ProblemType, Scaling};
        let labels = vec!["a".to_string(), "b".to_string()];
        let sets = Targets::Sets { width: 2, hot: vec![1., 0., 1., 1.] };
        let objective = Objective::inference(ProblemType::MultiLabel);
        let e = evaluate_targets(vec![vec![0.9, 0.4], vec![0.6, 0.45]], &sets, &labels, &objective, None);
        let m = e.multi_label.as_ref().expect("multi-label scores");
        assert_eq!((m.subset_accuracy, e.scores.accuracy), (0.5, 0.5));
        assert_eq!(e.scores.per_class[1].support, 1);
        let tuned = evaluate_targets(e.probs.clone(), &sets, &labels, &objective, Some(&[0.5, 0.42]));
        assert_eq!(tuned.multi_label.expect("scores").subset_accuracy, 1.0);
        let objective = Objective { scaling: Scaling { mean: 0.0, std: 2.0 }, ..Objective::inference(ProblemType::Regression) };
        let e = evaluate_targets(vec![vec![1.0], vec![3.0]], &Targets::Values(vec![1.0, 5.0]), &["y".into()], &objective, None);
        let r = e.regression.expect("regression scores");
        assert_eq!((r.mse, r.mae), (2.0, 1.0));
        // the loss is in standardised units: ((0/2)² + (2/2)²) / 2
        assert!((e.loss - 0.5).abs() < 1e-12 && e.scores.accuracy.is_nan());
    }
}
