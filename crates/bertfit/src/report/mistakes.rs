//! The most confident errors: wrong predictions sorted by the probability the model gave its wrong
//! answer, the first place to look for label noise and systematic failures.

use crate::infer::argmax;

/// A wrong prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfidentError {
    /// Position of the example in its split.
    pub row: usize,
    /// The text.
    pub text: String,
    /// Gold class id.
    pub gold: usize,
    /// Predicted class id.
    pub pred: usize,
    /// Probability of the predicted class.
    pub prob: f32,
}

/// The `k` wrong predictions with the highest predicted probability (ties in example order).
pub fn most_confident_errors(gold: &[usize], probs: &[Vec<f32>], texts: &[String], k: usize) -> Vec<ConfidentError> {
    let mut errors: Vec<ConfidentError> = gold
        .iter()
        .zip(probs)
        .enumerate()
        .filter_map(|(row, (&g, p))| {
            let pred = argmax(p);
            let prob = p.get(pred).copied().unwrap_or(f32::NAN);
            (pred != g).then(|| ConfidentError { row, text: texts.get(row).cloned().unwrap_or_default(), gold: g, pred, prob })
        })
        .collect();
    errors.sort_by(|a, b| b.prob.total_cmp(&a.prob).then(a.row.cmp(&b.row)));
    errors.truncate(k);
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_by_wrong_confidence_and_cut_to_k() {
        let probs = [
            vec![0.9, 0.1], // right
            vec![0.6, 0.4], // wrong, 0.6
            vec![0.05, 0.95], // wrong, 0.95
            vec![0.2, 0.8], // right
            vec![0.7, 0.3], // wrong, 0.7
            vec![0.6, 0.4], // wrong, 0.6 (tie with row 1)
        ];
        let texts: Vec<String> = (0..6).map(|i| format!("t{i}")).collect();
        let e = most_confident_errors(&[0, 1, 0, 1, 1, 1], &probs, &texts, 3);
        let rows: Vec<usize> = e.iter().map(|x| x.row).collect();
        assert_eq!(rows, [2, 4, 1]);
        assert_eq!((e[0].gold, e[0].pred, e[0].prob, e[0].text.as_str()), (0, 1, 0.95, "t2"));
        assert_eq!(most_confident_errors(&[0, 1, 0, 1, 1, 1], &probs, &texts, 10).len(), 4);
        assert!(most_confident_errors(&[], &[], &[], 10).is_empty());
    }
}
