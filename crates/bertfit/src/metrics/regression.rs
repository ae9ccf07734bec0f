//! Regression metrics on plain numbers (issue 15): MSE, RMSE, MAE, R², Pearson and Spearman correlation,
//! with scikit-learn's and SciPy's conventions; tested against their values (`scripts/metrics_reference.py`).

/// The regression scores of a set of predictions.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RegressionScores {
    /// Mean squared error.
    pub mse: f64,
    /// Its square root.
    pub rmse: f64,
    /// Mean absolute error.
    pub mae: f64,
    /// Coefficient of determination, 1 − SS_res / SS_tot (constant targets: 1 when predicted exactly,
    /// else 0, as scikit-learn).
    pub r2: f64,
    /// Pearson correlation (NaN when either side is constant; `null` in JSON).
    #[serde(with = "super::nullable")]
    pub pearson: f64,
    /// Spearman rank correlation: Pearson's on ranks, ties sharing their average rank.
    #[serde(with = "super::nullable")]
    pub spearman: f64,
}

impl RegressionScores {
    /// Scores `pred` against `gold` (same length).
    pub fn compute(gold: &[f64], pred: &[f64]) -> Self {
        let n = gold.len().min(pred.len());
        let (gold, pred) = (&gold[..n], &pred[..n]);
        let mean = |v: &[f64]| if v.is_empty() { 0.0 } else { v.iter().sum::<f64>() / v.len() as f64 };
        let mse = mean(&gold.iter().zip(pred).map(|(g, p)| (g - p) * (g - p)).collect::<Vec<_>>());
        let mae = mean(&gold.iter().zip(pred).map(|(g, p)| (g - p).abs()).collect::<Vec<_>>());
        let gm = mean(gold);
        let ss_tot: f64 = gold.iter().map(|g| (g - gm) * (g - gm)).sum();
        let ss_res = mse * n as f64;
        let r2 = match (ss_tot == 0.0, ss_res == 0.0) {
            (false, _) => 1.0 - ss_res / ss_tot,
            (true, true) => 1.0,
            (true, false) => 0.0,
        };
        RegressionScores { mse, rmse: mse.sqrt(), mae, r2, pearson: pearson(gold, pred), spearman: pearson(&ranks(gold), &ranks(pred)) }
    }
}

/// Pearson correlation of two equally long series (NaN when either is constant or empty).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    if a.is_empty() {
        return f64::NAN;
    }
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return f64::NAN;
    }
    (sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0)
}

/// 1-based ranks, ties sharing the mean of the ranks they span.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut out = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        let rank = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            out[i] = rank;
        }
        start = end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(v: &serde_json::Value) -> Vec<f64> {
        v.as_array().map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect()).unwrap_or_default()
    }

    #[test]
    fn equal_to_scikit_learn_and_scipy() {
        let reference: serde_json::Value =
            serde_json::from_str(include_str!("../../tests/data/metrics_reference.json")).expect("reference json");
        let cases = reference["regression"].as_array().expect("cases");
        assert!(!cases.is_empty());
        for case in cases {
            let m = RegressionScores::compute(&series(&case["gold"]), &series(&case["pred"]));
            for (name, ours) in [("mse", m.mse), ("rmse", m.rmse), ("mae", m.mae), ("r2", m.r2), ("pearson", m.pearson), ("spearman", m.spearman)] {
                let theirs = case[name].as_f64().unwrap_or(f64::NAN);
                assert!((ours - theirs).abs() <= 1e-9, "{name}: ours {ours}, reference {theirs}");
            }
        }
    }

    #[test]
    fn ranks_average_ties_and_constant_targets() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
        let exact = RegressionScores::compute(&[2.0, 2.0], &[2.0, 2.0]);
        assert_eq!((exact.r2, exact.mse), (1.0, 0.0));
        assert!(exact.pearson.is_nan());
        assert_eq!(RegressionScores::compute(&[2.0, 2.0], &[1.0, 3.0]).r2, 0.0);
    }
}
