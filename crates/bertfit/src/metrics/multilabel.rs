//! Multi-label metrics on plain 0/1 label sets and scores (issue 15): micro, macro, weighted and
//! samples-averaged precision, recall and F1, per-label scores, subset accuracy, Hamming loss and
//! label-ranking average precision. Conventions are scikit-learn's with `zero_division=0`; tested against
//! its values (`scripts/metrics_reference.py`).

/// Precision, recall and F1 of one average.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Averaged {
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

/// One label's scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelScores {
    /// Precision (0 when the label is never predicted).
    pub precision: f64,
    /// Recall (0 when the label never occurs).
    pub recall: f64,
    /// F1 (0 when both are 0).
    pub f1: f64,
    /// Examples with the label.
    pub support: usize,
}

/// The multi-label scores of a set of predictions.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MultiLabelScores {
    /// Counts pooled over all labels.
    pub micro: Averaged,
    /// The labels' unweighted mean.
    #[serde(rename = "macro")]
    pub macro_avg: Averaged,
    /// The labels' mean weighted by support.
    pub weighted: Averaged,
    /// The examples' mean (each example's own precision, recall and F1 over its labels).
    pub samples: Averaged,
    /// Per label, in label order.
    pub per_label: Vec<LabelScores>,
    /// Share of examples whose predicted set equals the gold set exactly.
    pub subset_accuracy: f64,
    /// Share of (example, label) decisions that are wrong.
    pub hamming_loss: f64,
    /// Label-ranking average precision of the scores (1 for examples with no or every gold label).
    pub lrap: f64,
}

/// Precision, recall and F1 from counts, 0 where undefined.
fn prf(tp: usize, fp: usize, fn_: usize) -> (f64, f64, f64) {
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let (p, r) = (ratio(tp, tp + fp), ratio(tp, tp + fn_));
    let f = if p + r == 0.0 { 0.0 } else { 2.0 * p * r / (p + r) };
    (p, r, f)
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

impl MultiLabelScores {
    /// Scores `pred` (examples × labels decisions) against `gold`, and `scores` (the same shape) for the
    /// ranking metric. Rows must have equal lengths.
    pub fn compute(gold: &[Vec<bool>], pred: &[Vec<bool>], scores: &[Vec<f32>]) -> Self {
        let labels = gold.first().map_or(0, Vec::len);
        let (mut tp, mut fp, mut fn_) = (vec![0usize; labels], vec![0usize; labels], vec![0usize; labels]);
        let mut samples = Vec::with_capacity(gold.len());
        let (mut exact, mut wrong) = (0usize, 0usize);
        for (g, p) in gold.iter().zip(pred) {
            let (mut rtp, mut rfp, mut rfn) = (0, 0, 0);
            for l in 0..labels {
                match (g[l], p[l]) {
                    (true, true) => (tp[l] += 1, rtp += 1),
                    (false, true) => (fp[l] += 1, rfp += 1),
                    (true, false) => (fn_[l] += 1, rfn += 1),
                    (false, false) => ((), ()),
                };
            }
            exact += usize::from(rfp + rfn == 0);
            wrong += rfp + rfn;
            samples.push(prf(rtp, rfp, rfn));
        }
        let per_label: Vec<LabelScores> = (0..labels)
            .map(|l| {
                let (precision, recall, f1) = prf(tp[l], fp[l], fn_[l]);
                LabelScores { precision, recall, f1, support: tp[l] + fn_[l] }
            })
            .collect();
        let (mp, mr, mf) = prf(tp.iter().sum(), fp.iter().sum(), fn_.iter().sum());
        let total: usize = per_label.iter().map(|s| s.support).sum();
        let weighted = |f: fn(&LabelScores) -> f64| {
            if total == 0 {
                0.0
            } else {
                per_label.iter().map(|s| f(s) * s.support as f64).sum::<f64>() / total as f64
            }
        };
        let n = gold.len();
        MultiLabelScores {
            micro: Averaged { precision: mp, recall: mr, f1: mf },
            macro_avg: Averaged {
                precision: mean(per_label.iter().map(|s| s.precision)),
                recall: mean(per_label.iter().map(|s| s.recall)),
                f1: mean(per_label.iter().map(|s| s.f1)),
            },
            weighted: Averaged { precision: weighted(|s| s.precision), recall: weighted(|s| s.recall), f1: weighted(|s| s.f1) },
            samples: Averaged {
                precision: mean(samples.iter().map(|s| s.0)),
                recall: mean(samples.iter().map(|s| s.1)),
                f1: mean(samples.iter().map(|s| s.2)),
            },
            subset_accuracy: if n == 0 { 0.0 } else { exact as f64 / n as f64 },
            hamming_loss: if n * labels == 0 { 0.0 } else { wrong as f64 / (n * labels) as f64 },
            lrap: lrap(gold, scores),
            per_label,
        }
    }
}

/// Per-label decision thresholds that maximise each label's F1 on `gold` given `scores` (a sweep over
/// the label's sorted scores; the threshold sits midway between the last score taken and the next). A
/// label without positives, or whose best F1 is 0, keeps `default`; among equal F1s the threshold
/// nearest `default` wins.
pub fn tune_thresholds(gold: &[Vec<bool>], scores: &[Vec<f32>], default: f32) -> Vec<f32> {
    let labels = gold.first().map_or(0, Vec::len);
    (0..labels)
        .map(|k| {
            let mut col: Vec<(f32, bool)> = gold.iter().zip(scores).map(|(g, s)| (s[k], g[k])).collect();
            col.sort_by(|a, b| b.0.total_cmp(&a.0));
            let positives = col.iter().filter(|c| c.1).count();
            let (mut best, mut best_f1, mut tp) = (default, 0.0f64, 0usize);
            for i in 0..col.len() {
                tp += usize::from(col[i].1);
                // only between distinct scores: equal scores are decided together
                if col.get(i + 1).is_some_and(|next| next.0 == col[i].0) {
                    continue;
                }
                let f1 = 2.0 * tp as f64 / (i + 1 + positives) as f64;
                let t = match col.get(i + 1) {
                    Some(next) => (col[i].0 + next.0) / 2.0,
                    None => col[i].0,
                };
                if f1 > best_f1 + 1e-12 || ((f1 - best_f1).abs() <= 1e-12 && f1 > 0.0 && (t - default).abs() < (best - default).abs()) {
                    (best, best_f1) = (t, f1);
                }
            }
            best
        })
        .collect()
}

/// Label-ranking average precision: for each gold label of an example, the share of labels scored at
/// least as high that are gold, averaged over its gold labels, then over examples (ties count against).
pub fn lrap(gold: &[Vec<bool>], scores: &[Vec<f32>]) -> f64 {
    mean(gold.iter().zip(scores).map(|(g, s)| {
        let relevant = g.iter().filter(|&&x| x).count();
        if relevant == 0 || relevant == g.len() {
            return 1.0;
        }
        let per_label = g.iter().zip(s).filter(|(x, _)| **x).map(|(_, &sj)| {
            let rank = s.iter().filter(|&&sk| sk >= sj).count();
            let above = g.iter().zip(s).filter(|(x, &sk)| **x && sk >= sj).count();
            above as f64 / rank as f64
        });
        per_label.sum::<f64>() / relevant as f64
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuned_thresholds_maximise_each_labels_f1() {
        let gold = vec![vec![true, false], vec![true, false], vec![false, false], vec![false, true]];
        let scores = vec![vec![0.3, 0.1], vec![0.25, 0.2], vec![0.1, 0.3], vec![0.05, 0.9]];
        let t = tune_thresholds(&gold, &scores, 0.5);
        // label 0: taking 0.3 and 0.25 is perfect, the cut lies between 0.25 and 0.1
        assert!((t[0] - 0.175).abs() < 1e-6, "{t:?}");
        assert!((t[1] - 0.6).abs() < 1e-6, "{t:?}");
        let pred: Vec<Vec<bool>> = scores.iter().map(|r| r.iter().zip(&t).map(|(s, t)| s >= t).collect()).collect();
        assert_eq!(pred, gold);
        // no positives: the default stays
        assert_eq!(tune_thresholds(&[vec![false], vec![false]], &[vec![0.7], vec![0.2]], 0.5), [0.5]);
    }

    fn rows(v: &serde_json::Value) -> Vec<Vec<f64>> {
        v.as_array()
            .map(|r| r.iter().map(|x| x.as_array().map(|c| c.iter().filter_map(serde_json::Value::as_f64).collect()).unwrap_or_default()).collect())
            .unwrap_or_default()
    }

    fn near(a: f64, b: &serde_json::Value, what: &str) {
        let b = b.as_f64().unwrap_or(f64::NAN);
        assert!((a - b).abs() <= 1e-9, "{what}: ours {a}, scikit-learn {b}");
    }

    #[test]
    fn equal_to_scikit_learn() {
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/metrics_reference.json")).expect("reference json");
        let cases = reference["multilabel"].as_array().expect("cases");
        assert!(!cases.is_empty());
        for (i, case) in cases.iter().enumerate() {
            let bools = |v: &serde_json::Value| -> Vec<Vec<bool>> { rows(v).iter().map(|r| r.iter().map(|&x| x != 0.0).collect()).collect() };
            let gold = bools(&case["gold"]);
            let pred = bools(&case["pred"]);
            let scores: Vec<Vec<f32>> = rows(&case["scores"]).iter().map(|r| r.iter().map(|&x| x as f32).collect()).collect();
            let m = MultiLabelScores::compute(&gold, &pred, &scores);
            near(m.subset_accuracy, &case["subset_accuracy"], "subset accuracy");
            near(m.hamming_loss, &case["hamming_loss"], "hamming loss");
            near(m.lrap, &case["lrap"], "lrap");
            for (name, avg) in [("micro", m.micro), ("macro", m.macro_avg), ("weighted", m.weighted), ("samples", m.samples)] {
                near(avg.precision, &case[name]["precision"], &format!("case {i} {name} precision"));
                near(avg.recall, &case[name]["recall"], &format!("case {i} {name} recall"));
                near(avg.f1, &case[name]["f1"], &format!("case {i} {name} f1"));
            }
            for (l, s) in m.per_label.iter().enumerate() {
                near(s.precision, &case["per_label"]["precision"][l], &format!("label {l} precision"));
                near(s.recall, &case["per_label"]["recall"][l], &format!("label {l} recall"));
                near(s.f1, &case["per_label"]["f1"][l], &format!("label {l} f1"));
                near(s.support as f64, &case["per_label"]["support"][l], &format!("label {l} support"));
            }
        }
    }

    #[test]
    fn perfect_and_empty_predictions() {
        let gold = vec![vec![true, false], vec![false, true]];
        let m = MultiLabelScores::compute(&gold, &gold, &[vec![0.9, 0.1], vec![0.2, 0.8]]);
        assert_eq!((m.subset_accuracy, m.hamming_loss, m.lrap, m.micro.f1, m.samples.f1), (1.0, 0.0, 1.0, 1.0, 1.0));
        let none = vec![vec![false, false], vec![false, false]];
        let m = MultiLabelScores::compute(&gold, &none, &[vec![0.1, 0.1], vec![0.1, 0.1]]);
        assert_eq!((m.micro.precision, m.micro.recall, m.hamming_loss), (0.0, 0.0, 0.5));
        assert_eq!(m.lrap, 0.5, "ties count against");
    }
}
