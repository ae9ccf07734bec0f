//! Seeded stratified partitions of a dataset: hold-out splits and k-fold cross-validation folds.
//!
//! Both work on class ids only and shuffle each class with its own [`rng::Stream`] keyed by
//! `(seed, purpose, class)`, so a class's assignment does not depend on the other classes.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::rng;

/// Splits the indices `0..labels.len()` into `fractions.len() + 1` parts, stratified by class.
///
/// Part `j < fractions.len()` gets `round(fractions[j] * n_c)` examples of each class `c` (of `n_c`
/// examples); the last part gets the rest, so `[0.1, 0.1]` gives `[valid, test, train]`. The remainder
/// part always keeps at least one example of every class: when rounding would take them all, the
/// largest of the other parts gives one back (a class with a single example always stays in the
/// remainder). Each part is sorted ascending; the parts are disjoint and cover every index, and the
/// same `seed` gives the same parts.
///
/// Every fraction must lie in (0, 1) and their sum below 1.
pub fn stratified_split(labels: &[usize], fractions: &[f64], seed: u64) -> Result<Vec<Vec<usize>>> {
    for &f in fractions {
        if !(f > 0.0 && f < 1.0) {
            return Err(Error::config("split", format!("fraction {f} is not between 0 and 1")));
        }
    }
    let sum: f64 = fractions.iter().sum();
    if sum >= 1.0 {
        return Err(Error::config("split", format!("fractions add up to {sum}, leaving nothing to train on")));
    }

    let mut parts = vec![Vec::new(); fractions.len() + 1];
    for (class, mut members) in by_class(labels) {
        rng::Stream::new(&[seed, rng::label("split"), class as u64]).shuffle(&mut members);
        let n = members.len();
        let mut counts: Vec<usize> = fractions.iter().map(|f| (f * n as f64).round() as usize).collect();
        while counts.iter().sum::<usize>() > n.saturating_sub(1) {
            // max_by_key returns the last of equal maxima, so ties take from the later part.
            let Some(j) = (0..counts.len()).max_by_key(|&j| counts[j]) else { break };
            counts[j] -= 1;
        }
        let mut rest = members.as_slice();
        for (part, count) in parts.iter_mut().zip(&counts) {
            let (taken, left) = rest.split_at(*count);
            part.extend_from_slice(taken);
            rest = left;
        }
        if let Some(remainder) = parts.last_mut() {
            remainder.extend_from_slice(rest);
        }
    }
    for part in &mut parts {
        part.sort_unstable();
    }
    Ok(parts)
}

/// Splits the indices `0..labels.len()` into `k` disjoint folds covering every index, stratified by class.
///
/// Each class's shuffled indices are dealt round-robin, and each class starts the deal at the fold after
/// the one where the previous class stopped. So every fold holds the same number of examples of each
/// class give or take one, and fold sizes differ by at most one. Folds are sorted ascending; the same
/// `seed` gives the same folds.
///
/// `k` must be at least 2 and at most the number of examples.
pub fn stratified_kfold(labels: &[usize], k: usize, seed: u64) -> Result<Vec<Vec<usize>>> {
    if k < 2 {
        return Err(Error::config("folds", format!("need at least 2 folds, got {k}")));
    }
    if k > labels.len() {
        return Err(Error::config("folds", format!("{k} folds but only {} examples", labels.len())));
    }
    let mut folds = vec![Vec::new(); k];
    let mut start = 0;
    for (class, mut members) in by_class(labels) {
        rng::Stream::new(&[seed, rng::label("kfold"), class as u64]).shuffle(&mut members);
        for (i, &index) in members.iter().enumerate() {
            folds[(start + i) % k].push(index);
        }
        start = (start + members.len()) % k;
    }
    for fold in &mut folds {
        fold.sort_unstable();
    }
    Ok(folds)
}

/// Indices of each class, in ascending index order, classes in ascending order.
fn by_class(labels: &[usize]) -> BTreeMap<usize, Vec<usize>> {
    let mut classes: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, &class) in labels.iter().enumerate() {
        classes.entry(class).or_default().push(i);
    }
    classes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 of class 0, 30 of class 1, 7 of class 2, 1 of class 3, interleaved.
    fn labels() -> Vec<usize> {
        let mut counts = [100, 30, 7, 1];
        let mut out = Vec::new();
        while counts.iter().any(|&c| c > 0) {
            for (class, count) in counts.iter_mut().enumerate() {
                if *count > 0 {
                    *count -= 1;
                    out.push(class);
                }
            }
        }
        out
    }

    fn class_counts(labels: &[usize], part: &[usize]) -> Vec<usize> {
        let mut counts = vec![0; 4];
        for &i in part {
            counts[labels[i]] += 1;
        }
        counts
    }

    fn assert_partition(parts: &[Vec<usize>], n: usize) {
        let mut all: Vec<usize> = parts.concat();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "disjoint and covering");
        for part in parts {
            assert!(part.windows(2).all(|w| w[0] < w[1]), "sorted");
        }
    }

    #[test]
    fn split_is_a_stratified_partition() {
        let labels = labels();
        let parts = stratified_split(&labels, &[0.1, 0.2], 42).expect("split");
        assert_eq!(parts.len(), 3);
        assert_partition(&parts, labels.len());
        // round(0.1 n) and round(0.2 n) per class; the single class-3 example stays in the remainder.
        assert_eq!(class_counts(&labels, &parts[0]), [10, 3, 1, 0]);
        assert_eq!(class_counts(&labels, &parts[1]), [20, 6, 1, 0]);
        assert_eq!(class_counts(&labels, &parts[2]), [70, 21, 5, 1]);
    }

    #[test]
    fn split_is_deterministic_per_seed() {
        let labels = labels();
        let a = stratified_split(&labels, &[0.25], 7).expect("split");
        assert_eq!(a, stratified_split(&labels, &[0.25], 7).expect("split"));
        assert_ne!(a, stratified_split(&labels, &[0.25], 8).expect("split"));
    }

    #[test]
    fn remainder_keeps_one_of_each_class() {
        // Two examples per class and fractions that round both away.
        let labels = [0, 0, 1, 1];
        let parts = stratified_split(&labels, &[0.5, 0.45], 1).expect("split");
        assert_partition(&parts, 4);
        assert_eq!(parts[2].len(), 2);
        assert_eq!(parts[2].iter().map(|&i| labels[i]).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn split_rejects_bad_fractions() {
        for fractions in [&[0.0][..], &[1.0], &[-0.1], &[f64::NAN], &[0.5, 0.5], &[0.7, 0.4]] {
            let e = stratified_split(&[0, 1], fractions, 0).expect_err("invalid");
            assert!(matches!(e, Error::Config { .. }), "{fractions:?}");
        }
        assert_eq!(stratified_split(&[0, 1, 0], &[], 0).expect("no fractions"), [vec![0, 1, 2]]);
    }

    #[test]
    fn kfold_balances_every_class_and_fold() {
        let labels = labels();
        for k in [2, 3, 5, 10] {
            let folds = stratified_kfold(&labels, k, 3).expect("kfold");
            assert_eq!(folds.len(), k);
            assert_partition(&folds, labels.len());
            for class in 0..4 {
                let per_fold: Vec<usize> = folds.iter().map(|f| class_counts(&labels, f)[class]).collect();
                let (lo, hi) = (per_fold.iter().min(), per_fold.iter().max());
                assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "class {class}, k {k}: {per_fold:?}");
            }
            let sizes: Vec<usize> = folds.iter().map(Vec::len).collect();
            let spread = sizes.iter().max().zip(sizes.iter().min()).map(|(h, l)| h - l);
            assert!(spread.is_some_and(|s| s <= 1), "k {k}: {sizes:?}");
        }
        assert_eq!(stratified_kfold(&labels, 5, 3).expect("a"), stratified_kfold(&labels, 5, 3).expect("b"));
    }

    #[test]
    fn kfold_rejects_bad_k() {
        assert!(stratified_kfold(&[0, 1, 0], 1, 0).is_err());
        assert!(stratified_kfold(&[0, 1, 0], 4, 0).is_err());
    }
}
