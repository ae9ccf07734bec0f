//! The confusion matrix: counts of (gold, predicted) class pairs.

/// An `n × n` matrix of counts; row = gold class, column = predicted class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    n: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An empty matrix for `n` classes.
    pub fn new(n: usize) -> Self {
        ConfusionMatrix { n, counts: vec![0; n * n] }
    }

    /// The matrix of paired gold and predicted class ids.
    ///
    /// # Panics
    /// If the slices differ in length or an id is not below `n` (a bug in the caller: ids come from a
    /// label map of `n` classes and a model with `n` outputs).
    pub fn from_predictions(gold: &[usize], pred: &[usize], n: usize) -> Self {
        assert_eq!(gold.len(), pred.len(), "gold and predicted ids differ in length");
        let mut matrix = ConfusionMatrix::new(n);
        for (&g, &p) in gold.iter().zip(pred) {
            matrix.add(g, p);
        }
        matrix
    }

    /// Counts one example of gold class `gold` predicted as `pred`.
    ///
    /// # Panics
    /// If either id is not below the number of classes.
    pub fn add(&mut self, gold: usize, pred: usize) {
        assert!(gold < self.n && pred < self.n, "class id out of range: gold {gold}, pred {pred}, n {}", self.n);
        self.counts[gold * self.n + pred] += 1;
    }

    /// Number of classes.
    pub fn n(&self) -> usize {
        self.n
    }

    /// How many examples of gold class `gold` were predicted as `pred` (0 when out of range).
    pub fn get(&self, gold: usize, pred: usize) -> u64 {
        if gold < self.n && pred < self.n {
            self.counts[gold * self.n + pred]
        } else {
            0
        }
    }

    /// The matrix as rows (one per gold class).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        if self.n == 0 {
            return Vec::new();
        }
        self.counts.chunks(self.n).map(<[u64]>::to_vec).collect()
    }

    /// Number of examples counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Examples per gold class (row sums: the support).
    pub fn gold_totals(&self) -> Vec<u64> {
        (0..self.n).map(|g| (0..self.n).map(|p| self.get(g, p)).sum()).collect()
    }

    /// Examples per predicted class (column sums).
    pub fn pred_totals(&self) -> Vec<u64> {
        (0..self.n).map(|p| (0..self.n).map(|g| self.get(g, p)).sum()).collect()
    }

    /// Correctly classified examples (the trace).
    pub fn correct(&self) -> u64 {
        (0..self.n).map(|k| self.get(k, k)).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_and_totals() {
        let m = ConfusionMatrix::from_predictions(&[0, 0, 1, 2, 2], &[0, 1, 1, 2, 0], 3);
        assert_eq!(m.rows(), [[1, 1, 0], [0, 1, 0], [1, 0, 1]]);
        assert_eq!((m.get(2, 0), m.get(3, 0)), (1, 0));
        assert_eq!((m.total(), m.correct()), (5, 3));
        assert_eq!(m.gold_totals(), [2, 1, 2]);
        assert_eq!(m.pred_totals(), [2, 2, 1]);
        assert!(ConfusionMatrix::new(0).rows().is_empty());
    }
}
