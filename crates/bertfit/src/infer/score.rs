//! Scoring probabilities against gold labels: the one `argmax` (NaN never wins), the mean loss, and the
//! evaluation every caller shares (training's validation, `eval`, ensembles, cross-validation).

use crate::metrics::{ConfusionMatrix, Scores};

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
    /// Gold class id per example.
    pub gold: Vec<usize>,
}

/// Scores `probs` against `gold` for classes `labels`.
pub fn evaluate(probs: Vec<Vec<f32>>, gold: Vec<usize>, labels: &[String], class_weights: Option<&[f32]>) -> Evaluation {
    let pred: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let cm = ConfusionMatrix::from_predictions(&gold, &pred, labels.len());
    let loss = cross_entropy_from_probs(&probs, &gold, class_weights);
    Evaluation { loss, scores: Scores::from_confusion(&cm, labels), probs, gold }
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
}
