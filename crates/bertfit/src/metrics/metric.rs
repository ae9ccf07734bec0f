//! The metric that ranks evaluations (for best-checkpoint selection and early stopping), by name, for
//! every problem type.

use std::str::FromStr;

use super::{MultiLabelScores, RegressionScores, Scores};
use crate::data::ProblemType;
use crate::error::Error;

/// What one evaluation measured, for reading a metric off it.
#[derive(Debug, Clone, Copy)]
pub struct Measured<'a> {
    /// Mean loss.
    pub loss: f64,
    /// Classification scores (for multi-label: macro/weighted averages over labels, subset accuracy).
    pub scores: &'a Scores,
    /// Multi-label scores.
    pub multi_label: Option<&'a MultiLabelScores>,
    /// Regression scores.
    pub regression: Option<&'a RegressionScores>,
}

/// One number read from an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Metric {
    /// Mean evaluation loss (lower is better).
    Loss,
    /// Accuracy.
    Accuracy,
    /// Macro-averaged F1.
    F1Macro,
    /// Support-weighted F1.
    F1Weighted,
    /// Macro-averaged precision.
    PrecisionMacro,
    /// Macro-averaged recall.
    RecallMacro,
    /// Matthews correlation coefficient.
    Mcc,
    /// Multi-label: F1 of the counts pooled over labels.
    F1Micro,
    /// Multi-label: mean of the examples' own F1.
    F1Samples,
    /// Multi-label: share of wrong (example, label) decisions (lower is better).
    HammingLoss,
    /// Multi-label: label-ranking average precision.
    Lrap,
    /// Regression: mean squared error (lower is better).
    Mse,
    /// Regression: root mean squared error (lower is better).
    Rmse,
    /// Regression: mean absolute error (lower is better).
    Mae,
    /// Regression: coefficient of determination.
    R2,
    /// Regression: Pearson correlation.
    Pearson,
    /// Regression: Spearman rank correlation.
    Spearman,
}

impl Metric {
    /// Every metric, in a fixed order.
    pub const ALL: [Metric; 17] = [
        Metric::Loss,
        Metric::Accuracy,
        Metric::F1Macro,
        Metric::F1Weighted,
        Metric::PrecisionMacro,
        Metric::RecallMacro,
        Metric::Mcc,
        Metric::F1Micro,
        Metric::F1Samples,
        Metric::HammingLoss,
        Metric::Lrap,
        Metric::Mse,
        Metric::Rmse,
        Metric::Mae,
        Metric::R2,
        Metric::Pearson,
        Metric::Spearman,
    ];

    /// The canonical name, as accepted by [`FromStr`] and used in serialized configs.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Loss => "loss",
            Metric::Accuracy => "accuracy",
            Metric::F1Macro => "f1_macro",
            Metric::F1Weighted => "f1_weighted",
            Metric::PrecisionMacro => "precision_macro",
            Metric::RecallMacro => "recall_macro",
            Metric::Mcc => "mcc",
            Metric::F1Micro => "f1_micro",
            Metric::F1Samples => "f1_samples",
            Metric::HammingLoss => "hamming_loss",
            Metric::Lrap => "lrap",
            Metric::Mse => "mse",
            Metric::Rmse => "rmse",
            Metric::Mae => "mae",
            Metric::R2 => "r2",
            Metric::Pearson => "pearson",
            Metric::Spearman => "spearman",
        }
    }

    /// False for the loss and the error metrics.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Loss | Metric::HammingLoss | Metric::Mse | Metric::Rmse | Metric::Mae)
    }

    /// Whether the metric is defined for `problem` (accuracy is subset accuracy for label sets; the
    /// macro and weighted averages run over labels).
    pub fn applies_to(self, problem: ProblemType) -> bool {
        use Metric::*;
        match problem {
            ProblemType::SingleLabel => matches!(self, Loss | Accuracy | F1Macro | F1Weighted | PrecisionMacro | RecallMacro | Mcc),
            ProblemType::MultiLabel => matches!(self, Loss | Accuracy | F1Macro | F1Weighted | PrecisionMacro | RecallMacro | F1Micro | F1Samples | HammingLoss | Lrap),
            ProblemType::Regression => matches!(self, Loss | Mse | Rmse | Mae | R2 | Pearson | Spearman),
        }
    }

    /// The default early-stopping metric of a problem type.
    pub fn default_for(problem: ProblemType) -> Metric {
        match problem {
            ProblemType::SingleLabel | ProblemType::MultiLabel => Metric::F1Macro,
            ProblemType::Regression => Metric::Mse,
        }
    }

    /// The metric's value for an evaluation; NaN where the evaluation does not have it.
    pub fn value(self, m: &Measured<'_>) -> f64 {
        let (s, ml, r) = (m.scores, m.multi_label, m.regression);
        let multi = |f: fn(&MultiLabelScores) -> f64| ml.map_or(f64::NAN, f);
        let reg = |f: fn(&RegressionScores) -> f64| r.map_or(f64::NAN, f);
        match self {
            Metric::Loss => m.loss,
            _ if r.is_some() && !self.applies_to(ProblemType::Regression) => f64::NAN,
            Metric::Accuracy => s.accuracy,
            Metric::F1Macro => s.f1_macro,
            Metric::F1Weighted => s.f1_weighted,
            Metric::PrecisionMacro => s.precision_macro,
            Metric::RecallMacro => s.recall_macro,
            Metric::Mcc if ml.is_some() => f64::NAN,
            Metric::Mcc => s.mcc,
            Metric::F1Micro => multi(|x| x.micro.f1),
            Metric::F1Samples => multi(|x| x.samples.f1),
            Metric::HammingLoss => multi(|x| x.hamming_loss),
            Metric::Lrap => multi(|x| x.lrap),
            Metric::Mse => reg(|x| x.mse),
            Metric::Rmse => reg(|x| x.rmse),
            Metric::Mae => reg(|x| x.mae),
            Metric::R2 => reg(|x| x.r2),
            Metric::Pearson => reg(|x| x.pearson),
            Metric::Spearman => reg(|x| x.spearman),
        }
    }

    /// True when `candidate` is strictly better than `best` in this metric's direction. NaN is never
    /// better, and anything else beats a NaN `best`.
    pub fn is_better(self, candidate: f64, best: f64) -> bool {
        if candidate.is_nan() {
            return false;
        }
        if best.is_nan() {
            return true;
        }
        if self.higher_is_better() {
            candidate > best
        } else {
            candidate < best
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = Error;

    /// Parses a canonical name or an alias (`f1` for `f1_macro`), case-insensitively and with an
    /// optional `eval_` prefix as in Hugging Face's `metric_for_best_model` (`eval_loss`).
    fn from_str(s: &str) -> Result<Self, Error> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower.strip_prefix("eval_").unwrap_or(&lower);
        let metric = match name {
            "f1" => Some(Metric::F1Macro),
            other => Metric::ALL.into_iter().find(|m| m.name() == other),
        };
        metric.ok_or_else(|| {
            let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
            Error::config(
                "metric",
                format!(
                    "unknown metric `{s}`; accepted: {}, f1 (= f1_macro), with an optional `eval_` prefix (for multi-label and regression runs, each problem type takes its own)",
                    names.join(", ")
                ),
            )
        })
    }
}

impl TryFrom<String> for Metric {
    type Error = Error;
    fn try_from(s: String) -> Result<Self, Error> {
        s.parse()
    }
}

impl From<Metric> for &'static str {
    fn from(metric: Metric) -> Self {
        metric.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_aliases() {
        let cases = [
            ("loss", Metric::Loss),
            ("eval_loss", Metric::Loss),
            ("accuracy", Metric::Accuracy),
            ("f1", Metric::F1Macro),
            ("F1_Macro", Metric::F1Macro),
            ("f1_weighted", Metric::F1Weighted),
            ("precision_macro", Metric::PrecisionMacro),
            ("recall_macro", Metric::RecallMacro),
            ("eval_mcc", Metric::Mcc),
        ];
        for (name, metric) in cases {
            assert_eq!(name.parse::<Metric>().expect(name), metric);
        }
        for metric in Metric::ALL {
            assert_eq!(metric.name().parse::<Metric>().expect("canonical"), metric);
        }
        let e = "auc".parse::<Metric>().expect_err("unknown").to_string();
        assert!(e.contains("`auc`") && e.contains("f1_weighted") && e.contains("mcc"), "{e}");
    }

    #[test]
    fn serializes_as_its_name() {
        assert_eq!(serde_json::to_string(&Metric::F1Macro).expect("serialize"), "\"f1_macro\"");
        assert_eq!(serde_json::from_str::<Metric>("\"eval_loss\"").expect("deserialize"), Metric::Loss);
        assert!(serde_json::from_str::<Metric>("\"bleu\"").is_err());
    }

    #[test]
    fn direction_and_comparison() {
        assert!(!Metric::Loss.higher_is_better() && Metric::Mcc.higher_is_better());
        assert!(!Metric::Mae.higher_is_better() && !Metric::HammingLoss.higher_is_better() && Metric::Spearman.higher_is_better());
        assert!(Metric::Lrap.applies_to(ProblemType::MultiLabel) && !Metric::Lrap.applies_to(ProblemType::Regression));
        assert!(!Metric::Mcc.applies_to(ProblemType::MultiLabel) && Metric::default_for(ProblemType::Regression) == Metric::Mse);
        let cases = [
            (Metric::Loss, 0.4, 0.5, true),
            (Metric::Loss, 0.5, 0.5, false),
            (Metric::Accuracy, 0.9, 0.8, true),
            (Metric::Accuracy, 0.8, 0.9, false),
            (Metric::Accuracy, f64::NAN, 0.1, false),
            (Metric::Loss, 3.0, f64::NAN, true),
        ];
        for (metric, candidate, best, expected) in cases {
            assert_eq!(metric.is_better(candidate, best), expected, "{metric} {candidate} vs {best}");
        }
    }
}
