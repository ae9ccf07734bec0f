//! What the data looked like: label counts per split and the histogram of token lengths before
//! truncation, with the `--max-len` cut and the share of texts it truncates.

use super::rundir::{DataStats, Record};

/// Examples per label in each split.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelDistribution {
    /// Label names, in class-id order (then labels seen only in the data, sorted).
    pub labels: Vec<String>,
    /// `(split name, count per label)`, in the order train, valid, test, others.
    pub splits: Vec<(String, Vec<u64>)>,
}

impl LabelDistribution {
    /// True when no split has any example.
    pub fn is_empty(&self) -> bool {
        self.splits.iter().all(|(_, c)| c.iter().sum::<u64>() == 0)
    }
}

fn split_rank(name: &str) -> usize {
    ["train", "valid", "test"].iter().position(|s| *s == name).unwrap_or(3)
}

/// The distribution from `data_stats.json`, labels ordered as `labels`.
pub fn label_distribution(stats: &DataStats, labels: &[String]) -> LabelDistribution {
    let mut names = labels.to_vec();
    let mut extra: Vec<&String> = stats.splits.values().flat_map(|s| s.label_counts.keys()).filter(|l| !labels.contains(l)).collect();
    extra.sort();
    extra.dedup();
    names.extend(extra.into_iter().cloned());
    let mut splits: Vec<(String, Vec<u64>)> = stats
        .splits
        .iter()
        .map(|(split, s)| (split.clone(), names.iter().map(|l| s.label_counts.get(l).copied().unwrap_or(0)).collect()))
        .collect();
    splits.sort_by_key(|(name, _)| split_rank(name));
    LabelDistribution { labels: names, splits }
}

/// The distribution read off evaluation records (for runs without `data_stats.json`): the per-class
/// support of each split's last record that has one.
pub fn distribution_from_records(records: &[Record], labels: &[String]) -> LabelDistribution {
    let mut splits: Vec<(String, Vec<u64>)> = Vec::new();
    for split in ["train", "valid", "test"] {
        let last = records.iter().rev().filter(|r| r.split == split).find_map(|r| r.scores.as_ref().filter(|s| !s.per_class.is_empty()));
        if let Some(s) = last {
            let counts = labels.iter().map(|l| s.per_class.iter().find(|c| &c.label == l).map_or(0, |c| c.support)).collect();
            splits.push((split.to_string(), counts));
        }
    }
    LabelDistribution { labels: labels.to_vec(), splits }
}

/// One histogram bar: lengths in `lo..hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bin {
    /// Smallest length counted.
    pub lo: usize,
    /// One past the largest length counted (the last bin also holds any overflow).
    pub hi: usize,
    /// Texts in the bin.
    pub count: u64,
}

/// Token lengths before truncation, binned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// The bars, contiguous from 0.
    pub bins: Vec<Bin>,
    /// The truncation length.
    pub max_len: usize,
    /// Texts counted.
    pub total: usize,
    /// Texts longer than `max_len`.
    pub truncated: usize,
    /// Token lengths of the texts longer than `max_len`.
    pub long_lengths: Vec<usize>,
    /// Longest text.
    pub longest: usize,
    /// When a long tail was folded into the last bin: the smallest length of that bin.
    pub overflow_from: Option<usize>,
}

impl Histogram {
    /// Windows the texts longer than `max_len` would make under `--long-text chunk` at the default stride
    /// (a quarter of `max_len`), counting two special tokens per window (BERT's and RoBERTa's templates).
    pub fn windows_of_long_texts(&self) -> usize {
        let width = self.max_len.saturating_sub(2).max(1);
        let step = width.saturating_sub(self.max_len / 4).max(1);
        self.long_lengths.iter().map(|&l| 1 + l.saturating_sub(2).saturating_sub(width).div_ceil(step)).sum()
    }

    /// Share of texts cut by truncation (0 for no texts).
    pub fn truncated_share(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.truncated as f64 / self.total as f64
        }
    }
}

/// The smallest of 1, 2, 5, 10, 20, 50, … that is at least `raw`.
pub fn nice_width(raw: usize) -> usize {
    let mut base = 1usize;
    loop {
        for m in [1, 2, 5] {
            let w = base.saturating_mul(m);
            if w >= raw || w == usize::MAX {
                return w;
            }
        }
        base = base.saturating_mul(10);
    }
}

/// Bins `lengths` into about `target_bins` bars of a round width. The range reaches at least
/// `max_len` and covers the longest text unless it lies beyond both twice `max_len` and the 99th
/// percentile; such a tail is counted in the last bar.
pub fn length_histogram(lengths: &[usize], max_len: usize, target_bins: usize) -> Histogram {
    let truncated = lengths.iter().filter(|&&l| l > max_len).count();
    let long_lengths = lengths.iter().copied().filter(|&l| l > max_len).collect();
    let mut h = Histogram { max_len, total: lengths.len(), truncated, long_lengths, ..Histogram::default() };
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let Some(&longest) = sorted.last() else { return h };
    h.longest = longest;
    let rank = (sorted.len() as f64 * 0.99).ceil() as usize;
    let p99 = sorted[rank.clamp(1, sorted.len()) - 1];
    let cap = max_len.saturating_mul(2).max(p99).max(max_len + 1);
    let upper = longest.min(cap).max(max_len);
    let width = nice_width((upper + 1).div_ceil(target_bins.max(1)));
    let nbins = upper / width + 1;
    let mut bins: Vec<Bin> = (0..nbins).map(|k| Bin { lo: k * width, hi: (k + 1) * width, count: 0 }).collect();
    for &l in lengths {
        let k = (l / width).min(nbins - 1);
        bins[k].count += 1;
    }
    if longest >= nbins * width {
        h.overflow_from = Some((nbins - 1) * width);
    }
    h.bins = bins;
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::rundir::{RecordScores, SplitStats};

    #[test]
    fn nice_widths() {
        let cases = [(0, 1), (1, 1), (2, 2), (3, 5), (6, 10), (11, 20), (21, 50), (51, 100), (120, 200)];
        for (raw, w) in cases {
            assert_eq!(nice_width(raw), w, "{raw}");
        }
    }

    #[test]
    fn histogram_by_hand() {
        // Range 0..=40, 41/10 → width 5, 9 bins; 9, 12 and 40 exceed max_len 8.
        let h = length_histogram(&[3, 5, 5, 9, 12, 40], 8, 10);
        assert_eq!(h.bins.len(), 9);
        assert_eq!((h.bins[0].lo, h.bins[0].hi, h.bins[8].lo, h.bins[8].hi), (0, 5, 40, 45));
        let counts: Vec<u64> = h.bins.iter().map(|b| b.count).collect();
        assert_eq!(counts, [1, 3, 1, 0, 0, 0, 0, 0, 1]);
        assert_eq!((h.truncated, h.total, h.longest, h.overflow_from), (3, 6, 40, None));
        assert!((h.truncated_share() - 0.5).abs() < 1e-12);
        // windows of max_len − 2 text tokens advancing by that minus max_len / 4
        let w = Histogram { max_len: 10, long_lengths: vec![11, 16, 17], ..Histogram::default() };
        assert_eq!(w.windows_of_long_texts(), 2 + 2 + 3);
    }

    #[test]
    fn a_long_tail_folds_into_the_last_bin() {
        // p99 of 1..=100 and 10000 is 100, beyond 2·16: range 0..=100, width 10, 11 bins.
        let mut lengths: Vec<usize> = (1..=100).collect();
        lengths.push(10_000);
        let h = length_histogram(&lengths, 16, 20);
        assert_eq!(h.bins.len(), 11);
        assert_eq!(h.bins[10].count, 2); // 100 and 10000
        assert_eq!(h.overflow_from, Some(100));
        assert_eq!(h.truncated, 85);
        assert_eq!(h.bins.iter().map(|b| b.count).sum::<u64>(), 101);
    }

    #[test]
    fn the_range_reaches_max_len_and_empty_input_has_no_bins() {
        let h = length_histogram(&[2, 3], 128, 30);
        assert!(h.bins.last().expect("bins").hi > 128);
        assert_eq!(h.truncated, 0);
        let e = length_histogram(&[], 64, 30);
        assert!(e.bins.is_empty());
        assert_eq!(e.truncated_share(), 0.0);
    }

    #[test]
    fn distribution_orders_labels_and_splits() {
        let mut stats = DataStats::default();
        for (split, counts) in [("test", vec![("b", 1)]), ("train", vec![("a", 5), ("b", 3), ("zz", 1)])] {
            let label_counts = counts.into_iter().map(|(l, n)| (l.to_string(), n)).collect();
            stats.splits.insert(split.into(), SplitStats { label_counts, ..SplitStats::default() });
        }
        let d = label_distribution(&stats, &["b".to_string(), "a".to_string()]);
        assert_eq!(d.labels, ["b", "a", "zz"]);
        assert_eq!(d.splits, [("train".to_string(), vec![3, 5, 1]), ("test".to_string(), vec![1, 0, 0])]);
        assert!(!d.is_empty());
    }

    #[test]
    fn distribution_from_record_support() {
        let class = |label: &str, support| crate::metrics::ClassScores { label: label.into(), precision: 0.0, recall: 0.0, f1: 0.0, support };
        let scores = RecordScores { per_class: vec![class("a", 4), class("b", 6)], ..RecordScores::default() };
        let r = Record { split: "valid".into(), scores: Some(scores), ..Record::default() };
        let d = distribution_from_records(&[r], &["a".to_string(), "b".to_string()]);
        assert_eq!(d.splits, [("valid".to_string(), vec![4, 6])]);
    }
}
