//! Confusion matrices for heatmaps: counts (row = gold, column = predicted) and the row-normalised
//! view (each gold class's share of predictions: recall on the diagonal).

use crate::error::{Error, Result};
use crate::infer::argmax;

/// A square matrix of counts with its class names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confusion {
    /// Class names, in id order.
    pub labels: Vec<String>,
    /// `counts[gold][pred]`.
    pub counts: Vec<Vec<u64>>,
}

impl Confusion {
    /// A matrix from recorded rows; `None` unless it is square and non-empty. Missing names are
    /// filled with class ids.
    pub fn from_rows(labels: &[String], rows: &[Vec<u64>]) -> Option<Confusion> {
        let n = rows.len();
        if n == 0 || rows.iter().any(|r| r.len() != n) {
            return None;
        }
        let labels = (0..n).map(|k| labels.get(k).cloned().unwrap_or_else(|| k.to_string())).collect();
        Some(Confusion { labels, counts: rows.to_vec() })
    }

    /// The matrix of gold ids against the argmax of each probability row. Fails on ids or rows that
    /// do not fit `labels`.
    pub fn from_probs(labels: &[String], gold: &[usize], probs: &[Vec<f32>]) -> Result<Confusion> {
        let n = labels.len();
        check_predictions(n, gold, probs)?;
        let mut counts = vec![vec![0u64; n]; n];
        for (&g, p) in gold.iter().zip(probs) {
            counts[g][argmax(p)] += 1;
        }
        Ok(Confusion { labels: labels.to_vec(), counts })
    }

    /// Each row divided by its sum (a row without examples stays 0).
    pub fn row_normalised(&self) -> Vec<Vec<f64>> {
        self.counts
            .iter()
            .map(|row| {
                let total: u64 = row.iter().sum();
                row.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 }).collect()
            })
            .collect()
    }

    /// Gold examples per class (row sums).
    pub fn gold_totals(&self) -> Vec<u64> {
        self.counts.iter().map(|r| r.iter().sum()).collect()
    }

    /// Predictions per class (column sums).
    pub fn pred_totals(&self) -> Vec<u64> {
        (0..self.counts.len()).map(|p| self.counts.iter().map(|r| r.get(p).copied().unwrap_or(0)).sum()).collect()
    }
}

/// Checks that predictions fit `n` classes: equal lengths, gold ids below `n`, `n` probabilities each.
pub fn check_predictions(n: usize, gold: &[usize], probs: &[Vec<f32>]) -> Result<()> {
    if n == 0 {
        return Err(Error::config("labels", "no class names given"));
    }
    if gold.len() != probs.len() {
        return Err(Error::config("predictions", format!("{} gold labels but {} probability rows", gold.len(), probs.len())));
    }
    if let Some((i, g)) = gold.iter().enumerate().find(|(_, &g)| g >= n) {
        return Err(Error::config("predictions", format!("example {i}: gold class id {g} is not below {n} classes")));
    }
    if let Some((i, p)) = probs.iter().enumerate().find(|(_, p)| p.len() != n) {
        return Err(Error::config("predictions", format!("example {i}: {} probabilities for {n} classes", p.len())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counts_and_row_normalised() {
        let probs = [vec![0.9, 0.1, 0.0], vec![0.2, 0.7, 0.1], vec![0.1, 0.2, 0.7], vec![0.6, 0.3, 0.1], vec![0.3, 0.3, 0.4]];
        let m = Confusion::from_probs(&names(&["a", "b", "c"]), &[0, 1, 1, 1, 0], &probs).expect("fits");
        assert_eq!(m.counts, [[1, 0, 1], [1, 1, 1], [0, 0, 0]]);
        let n = m.row_normalised();
        assert_eq!(n[0], [0.5, 0.0, 0.5]);
        assert!((n[1][0] - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(n[2], [0.0, 0.0, 0.0]);
        assert_eq!((m.gold_totals(), m.pred_totals()), (vec![2, 3, 0], vec![2, 1, 2]));
    }

    #[test]
    fn bad_predictions_are_errors_not_panics() {
        let l = names(&["a", "b"]);
        assert!(Confusion::from_probs(&l, &[2], &[vec![0.5, 0.5]]).is_err());
        assert!(Confusion::from_probs(&l, &[0], &[vec![1.0]]).is_err());
        assert!(Confusion::from_probs(&l, &[0, 1], &[vec![1.0, 0.0]]).is_err());
        assert!(Confusion::from_probs(&[], &[], &[]).is_err());
    }

    #[test]
    fn from_rows_wants_a_square() {
        assert!(Confusion::from_rows(&names(&["a"]), &[vec![1, 2]]).is_none());
        assert!(Confusion::from_rows(&[], &[]).is_none());
        let m = Confusion::from_rows(&names(&["a"]), &[vec![1, 2], vec![3, 4]]).expect("square");
        assert_eq!(m.labels, ["a", "1"]);
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_skips_nan() {
        assert_eq!(argmax(&[0.2, 0.5, 0.5]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.1, 0.3]), 2);
        assert_eq!(argmax(&[]), 0);
    }
}
