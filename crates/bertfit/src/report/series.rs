//! Curves over training time drawn from the run's logs: losses (per epoch, per step smoothed, per
//! evaluation), metric curves with the best evaluation, and the learning-rate schedule.

use super::rundir::{Record, Step};

/// Points of a curve, `(x, y)`.
pub type Points = Vec<(f64, f64)>;

/// The loss curves of a run; x is the epoch position.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LossCurves {
    /// Running training loss of each epoch (`train` records), at the epoch's end.
    pub train_epoch: Points,
    /// Loss of each optimizer update (`steps.jsonl`).
    pub train_step: Points,
    /// `train_step` smoothed with a debiased exponential moving average.
    pub train_smoothed: Points,
    /// Loss of each validation evaluation.
    pub valid: Points,
}

/// Exponential moving average with bias correction (as TensorBoard smooths):
/// `s_t = β·s_{t−1} + (1−β)·x_t`, `s_0 = 0`, reported as `s_t / (1 − β^t)`. Non-finite values are
/// skipped (the previous average is repeated).
pub fn ema(values: &[f64], beta: f64) -> Vec<f64> {
    let mut s = 0.0;
    let mut weight = 1.0;
    let mut last = f64::NAN;
    values
        .iter()
        .map(|&x| {
            if x.is_finite() {
                s = beta * s + (1.0 - beta) * x;
                weight *= beta;
                last = s / (1.0 - weight);
            }
            last
        })
        .collect()
}

/// A smoothing factor that suits `n` points: none for a handful, up to 0.98 for many.
pub fn smoothing_for(n: usize) -> f64 {
    if n < 2 {
        return 0.0;
    }
    (1.0 - 20.0 / n as f64).clamp(0.0, 0.98)
}

/// The loss curves from `metrics.jsonl` records and `steps.jsonl` updates.
pub fn loss_curves(records: &[Record], steps: &[Step]) -> LossCurves {
    let split_points = |split: &str| -> Points {
        records.iter().filter(|r| r.split == split).filter_map(|r| r.metric("loss").map(|l| (r.epoch, l))).collect()
    };
    let train_step: Points = steps.iter().filter_map(|s| s.loss.filter(|l| l.is_finite()).map(|l| (s.epoch, l))).collect();
    let ys: Vec<f64> = train_step.iter().map(|p| p.1).collect();
    let smoothed = ema(&ys, smoothing_for(ys.len()));
    let train_smoothed = train_step.iter().zip(smoothed).map(|(p, y)| (p.0, y)).collect();
    LossCurves { train_epoch: split_points("train"), train_step, train_smoothed, valid: split_points("valid") }
}

/// `(epoch, value)` of a metric over the records of one split.
pub fn metric_series(records: &[Record], split: &str, metric: &str) -> Points {
    records.iter().filter(|r| r.split == split).filter_map(|r| r.metric(metric).map(|v| (r.epoch, v))).collect()
}

/// The best evaluation of a split by a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Best {
    /// Index among the split's records (in file order).
    pub index: usize,
    /// Its epoch position.
    pub epoch: f64,
    /// Its optimizer step.
    pub step: usize,
    /// The metric's value.
    pub value: f64,
}

/// The first evaluation of `split` with the best value of `metric` (lowest for `loss`, highest
/// otherwise): later ties do not replace it, as in early stopping.
pub fn best_eval(records: &[Record], split: &str, metric: &str) -> Option<Best> {
    let lower = metric == "loss";
    let mut best: Option<Best> = None;
    for (index, r) in records.iter().filter(|r| r.split == split).enumerate() {
        let Some(value) = r.metric(metric) else { continue };
        let better = match &best {
            None => true,
            Some(b) if lower => value < b.value,
            Some(b) => value > b.value,
        };
        if better {
            best = Some(Best { index, epoch: r.epoch, step: r.step, value });
        }
    }
    best
}

/// The learning rate per optimizer step: every update from `steps.jsonl`, or, for runs without it,
/// the rate recorded with each training-split evaluation.
pub fn lr_series(steps: &[Step], records: &[Record]) -> Points {
    let from_steps: Points = steps.iter().filter_map(|s| s.lr.filter(|v| v.is_finite()).map(|lr| (s.step as f64, lr))).collect();
    if !from_steps.is_empty() {
        return from_steps;
    }
    records
        .iter()
        .filter(|r| r.split == "train")
        .filter_map(|r| r.learning_rate.filter(|v| v.is_finite()).map(|lr| (r.step as f64, lr)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(split: &str, epoch: f64, step: usize, loss: f64, f1: f64) -> Record {
        Record { split: split.into(), epoch, step, loss: Some(loss), f1_macro: Some(f1), ..Record::default() }
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn ema_is_debiased() {
        // β = 0.5: s1 = 0.5·2 = 1 → 1/0.5 = 2; s2 = 0.5 + 0.5·4 = 2.5 → 2.5/0.75 = 10/3;
        // s3 = 1.25 + 0.5·1 = 1.75 → 1.75/0.875 = 2.
        assert!(close(&ema(&[2.0, 4.0, 1.0], 0.5), &[2.0, 10.0 / 3.0, 2.0]));
        assert!(close(&ema(&[3.0, 5.0], 0.0), &[3.0, 5.0]));
        // A NaN repeats the previous average and does not enter it.
        assert!(close(&ema(&[2.0, f64::NAN, 4.0], 0.5), &[2.0, 2.0, 10.0 / 3.0]));
        assert_eq!(smoothing_for(1), 0.0);
        assert_eq!(smoothing_for(10), 0.0);
        assert!((smoothing_for(100) - 0.8).abs() < 1e-12);
        assert_eq!(smoothing_for(100_000), 0.98);
    }

    #[test]
    fn loss_curves_split_records_and_steps() {
        let records = [rec("train", 1.0, 4, 0.9, 0.5), rec("valid", 1.0, 4, 0.8, 0.6), rec("train", 2.0, 8, 0.5, 0.7)];
        let steps: Vec<Step> =
            (1..=4).map(|i| Step { step: i, epoch: i as f64 / 4.0, loss: Some(i as f64), lr: Some(0.1) }).collect();
        let c = loss_curves(&records, &steps);
        assert_eq!(c.train_epoch, [(1.0, 0.9), (2.0, 0.5)]);
        assert_eq!(c.valid, [(1.0, 0.8)]);
        assert_eq!(c.train_step.len(), 4);
        // Four points get no smoothing.
        assert_eq!(c.train_smoothed, c.train_step);
    }

    #[test]
    fn best_eval_follows_the_metric_direction_and_keeps_the_first_tie() {
        let records = [
            rec("valid", 1.0, 10, 0.6, 0.70),
            rec("train", 1.0, 10, 0.1, 0.99),
            rec("valid", 2.0, 20, 0.5, 0.80),
            rec("valid", 3.0, 30, 0.55, 0.80),
        ];
        let b = best_eval(&records, "valid", "f1_macro").expect("best");
        assert_eq!((b.index, b.epoch, b.step, b.value), (1, 2.0, 20, 0.80));
        let b = best_eval(&records, "valid", "loss").expect("best");
        assert_eq!((b.index, b.value), (1, 0.5));
        assert_eq!(best_eval(&records, "test", "loss"), None);
        assert_eq!(metric_series(&records, "valid", "f1_macro"), [(1.0, 0.7), (2.0, 0.8), (3.0, 0.8)]);
    }

    #[test]
    fn lr_comes_from_steps_or_falls_back_to_records() {
        let steps = [Step { step: 1, epoch: 0.5, loss: Some(1.0), lr: Some(1e-5) }, Step { step: 2, epoch: 1.0, loss: None, lr: Some(2e-5) }];
        assert_eq!(lr_series(&steps, &[]), [(1.0, 1e-5), (2.0, 2e-5)]);
        let mut r = rec("train", 1.0, 7, 0.3, 0.5);
        r.learning_rate = Some(3e-5);
        assert_eq!(lr_series(&[], &[r]), [(7.0, 3e-5)]);
    }
}
