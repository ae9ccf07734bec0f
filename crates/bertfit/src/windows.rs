//! Long documents as overlapping windows (`--long-text chunk`): the setting (overlap, pooling), the
//! windows of a tokenized dataset with the document each came from, and the pooling of window scores
//! back into one score row per document.

use serde::{Deserialize, Serialize};

use crate::data::ProblemType;
use crate::error::{Error, Result};
use crate::tokenize::{Encoded, TextTokenizer};

/// How window scores become a document's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The mean of the windows' probabilities (or values).
    #[default]
    Mean,
    /// Each class's (label's, value's) largest window score; single-label probabilities are then
    /// renormalised to sum to 1.
    Max,
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mean" => Ok(Pooling::Mean),
            "max" => Ok(Pooling::Max),
            other => Err(Error::config("chunk-pooling", format!("unknown pooling `{other}`; accepted: mean, max"))),
        }
    }
}

/// Texts longer than the model's length are split into windows sharing `stride` tokens, every window
/// is scored, and the document's scores pool the windows'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunking {
    /// Tokens shared by consecutive windows.
    pub stride: usize,
    /// How window scores are combined.
    pub pooling: Pooling,
}

/// A dataset's windows: every window's encoding, in document order, with its document's index.
#[derive(Debug, Clone, Default)]
pub struct Windows {
    /// The windows, document by document.
    pub encoded: Vec<Encoded>,
    /// The document (index into the texts) of each window.
    pub doc: Vec<usize>,
    /// Number of documents.
    pub docs: usize,
}

impl Windows {
    /// The windows of `texts` under `tokenizer` with `stride` tokens of overlap.
    pub fn of(tokenizer: &TextTokenizer, texts: &[(&str, Option<&str>)], stride: usize) -> Result<Windows> {
        let per_doc = tokenizer.encode_windows(texts, stride)?;
        let mut w = Windows { docs: per_doc.len(), ..Windows::default() };
        for (d, windows) in per_doc.into_iter().enumerate() {
            w.doc.extend(std::iter::repeat_n(d, windows.len()));
            w.encoded.extend(windows);
        }
        Ok(w)
    }

    /// Documents split into more than one window.
    pub fn split_documents(&self) -> usize {
        let mut count = vec![0usize; self.docs];
        for &d in &self.doc {
            count[d] += 1;
        }
        count.iter().filter(|&&c| c > 1).count()
    }

    /// One score row per document from the windows' rows (`scores[i]` belongs to window `i`).
    pub fn pool(&self, scores: &[Vec<f32>], pooling: Pooling, problem: ProblemType) -> Vec<Vec<f32>> {
        pool(scores, &self.doc, self.docs, pooling, problem)
    }
}

/// Pools window score rows into document rows: `doc[i]` is window i's document, `docs` the number of
/// documents (each with at least one window).
pub fn pool(scores: &[Vec<f32>], doc: &[usize], docs: usize, pooling: Pooling, problem: ProblemType) -> Vec<Vec<f32>> {
    let width = scores.first().map_or(0, Vec::len);
    let init = match pooling {
        Pooling::Mean => 0.0,
        Pooling::Max => f64::NEG_INFINITY,
    };
    let mut acc = vec![vec![init; width]; docs];
    let mut count = vec![0usize; docs];
    for (row, &d) in scores.iter().zip(doc) {
        count[d] += 1;
        for (a, &x) in acc[d].iter_mut().zip(row) {
            match pooling {
                Pooling::Mean => *a += x as f64,
                Pooling::Max => *a = a.max(x as f64),
            }
        }
    }
    acc.into_iter()
        .zip(count)
        .map(|(row, n)| {
            let row: Vec<f64> = match pooling {
                Pooling::Mean => row.iter().map(|x| x / n.max(1) as f64).collect(),
                Pooling::Max if problem == ProblemType::SingleLabel => {
                    let sum: f64 = row.iter().sum();
                    row.iter().map(|x| if sum > 0.0 { x / sum } else { *x }).collect()
                }
                Pooling::Max => row,
            };
            row.into_iter().map(|x| x as f32).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_scores_pool_into_documents() {
        let scores = vec![vec![0.9, 0.1], vec![0.3, 0.7], vec![0.2, 0.8], vec![0.6, 0.4]];
        let doc = [0, 0, 0, 1];
        let mean = pool(&scores, &doc, 2, Pooling::Mean, ProblemType::SingleLabel);
        assert!((mean[0][0] - (0.9 + 0.3 + 0.2) / 3.0).abs() < 1e-6 && mean[1] == [0.6, 0.4]);
        let max = pool(&scores, &doc, 2, Pooling::Max, ProblemType::SingleLabel);
        // the largest per class (0.9, 0.8), renormalised
        assert!((max[0][0] - 0.9 / 1.7).abs() < 1e-6 && (max[0][1] - 0.8 / 1.7).abs() < 1e-6);
        let labels = pool(&scores, &doc, 2, Pooling::Max, ProblemType::MultiLabel);
        assert_eq!(labels[0], [0.9, 0.8]);
        let values = pool(&[vec![1.0], vec![3.0], vec![-2.0]], &[0, 0, 1], 2, Pooling::Mean, ProblemType::Regression);
        assert_eq!(values, [vec![2.0], vec![-2.0]]);
        assert_eq!("MAX".parse::<Pooling>().expect("parse"), Pooling::Max);
        assert!("median".parse::<Pooling>().is_err());
    }
}
