//! The terminal's per-epoch table: one row per evaluation point with the training and validation
//! loss and scores side by side, the best row marked.

use std::fmt::Write;

use super::EvalRecord;

/// One row per evaluation point of `history` (train and valid records at the same epoch position
/// share a row; test records are left out), in order. The row of `best` is marked with `*`.
pub fn epoch_table(history: &[EvalRecord], best: Option<&EvalRecord>) -> String {
    let mut rows: Vec<(f64, usize, Option<&EvalRecord>, Option<&EvalRecord>)> = Vec::new();
    for rec in history.iter().filter(|r| r.split == "train" || r.split == "valid") {
        let same_point = |row: &(f64, usize, _, _)| row.0 == rec.epoch && row.1 == rec.step;
        let i = match rows.iter().position(same_point) {
            Some(i) => i,
            None => {
                rows.push((rec.epoch, rec.step, None, None));
                rows.len() - 1
            }
        };
        if rec.split == "train" {
            rows[i].2 = Some(rec);
        } else {
            rows[i].3 = Some(rec);
        }
    }
    // three validation columns, by what the records measured
    type Column = fn(&EvalRecord) -> f64;
    let columns: [(&str, Column); 3] = if history.iter().any(|r| r.regression.is_some()) {
        [("valid RMSE", |r| r.regression.map_or(f64::NAN, |x| x.rmse)), ("valid R2", |r| r.regression.map_or(f64::NAN, |x| x.r2)), ("valid Spear", |r| r.regression.map_or(f64::NAN, |x| x.spearman))]
    } else if history.iter().any(|r| r.multi_label.is_some()) {
        [("valid acc", |r| r.accuracy), ("F1 micro", |r| r.multi_label.as_ref().map_or(f64::NAN, |m| m.micro.f1)), ("F1 macro", |r| r.f1_macro)]
    } else {
        [("valid acc", |r| r.accuracy), ("valid F1", |r| r.f1_macro), ("valid MCC", |r| r.mcc)]
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>7} {:>7}  {:>10} {:>9}  {:>10} {:>9} {:>9} {:>9}  {:>9}",
        "epoch", "step", "train loss", "train acc", "valid loss", columns[0].0, columns[1].0, columns[2].0, "lr"
    );
    // NaN (a score the record does not have) shows as "-"
    let num = |v: Option<f64>| v.filter(|v| !v.is_nan()).map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
    for (epoch, step, train, valid) in rows {
        let is_best = best.is_some_and(|b| valid.is_some_and(|v| v.epoch == b.epoch && v.step == b.step));
        let lr = valid.or(train).map(|r| r.learning_rate);
        let _ = writeln!(
            out,
            "{:>7.2} {:>7}  {:>10} {:>9}  {:>10} {:>9} {:>9} {:>9}  {:>9}{}",
            epoch,
            step,
            num(train.map(|r| r.loss)),
            num(train.map(|r| r.accuracy)),
            num(valid.map(|r| r.loss)),
            num(valid.map(columns[0].1)),
            num(valid.map(columns[1].1)),
            num(valid.map(columns[2].1)),
            lr.map_or_else(|| "-".to_string(), |v| format!("{v:.2e}")),
            if is_best { " *" } else { "" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ConfusionMatrix, Scores};

    fn rec(split: &str, epoch: f64, step: usize, loss: f64) -> EvalRecord {
        let cm = ConfusionMatrix::from_predictions(&[0, 1, 1, 0], &[0, 1, 0, 0], 2);
        EvalRecord::new(split, epoch, step, loss, 1e-4, 1.0, 4, Scores::from_confusion(&cm, &["a".to_string(), "b".to_string()]))
    }

    #[test]
    fn rows_pair_train_and_valid_and_mark_the_best() {
        let history = vec![
            rec("valid", 0.5, 5, 0.9),
            rec("train", 1.0, 10, 0.8),
            rec("valid", 1.0, 10, 0.7),
            rec("train", 2.0, 20, 0.6),
            rec("valid", 2.0, 20, 0.65),
            rec("test", 2.0, 20, 0.5),
        ];
        let table = epoch_table(&history, Some(&history[2]));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].contains("train loss") && lines[0].contains("valid MCC"));
        // Mid-epoch evaluation: no training columns.
        assert!(lines[1].trim_start().starts_with("0.50") && lines[1].contains("-") && lines[1].contains("0.9000"), "{table}");
        assert!(lines[2].contains("0.8000") && lines[2].contains("0.7000") && lines[2].ends_with(" *"), "{table}");
        assert!(lines[3].contains("0.6000") && lines[3].contains("0.6500") && !lines[3].ends_with('*'), "{table}");
        assert!(!table.contains("0.5000 "), "test records are left out: {table}");
        // Accuracy 3/4 and the lr column.
        assert!(lines[2].contains("0.7500") && lines[2].contains("1.00e-4"), "{table}");
    }

    #[test]
    fn empty_history_is_just_the_header() {
        assert_eq!(epoch_table(&[], None).lines().count(), 1);
    }
}
