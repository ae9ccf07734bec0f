//! The metric that ranks evaluations (for best-checkpoint selection and early stopping), by name.

use std::str::FromStr;

use super::Scores;
use crate::error::Error;

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
}

impl Metric {
    /// Every metric, in a fixed order.
    pub const ALL: [Metric; 7] = [
        Metric::Loss,
        Metric::Accuracy,
        Metric::F1Macro,
        Metric::F1Weighted,
        Metric::PrecisionMacro,
        Metric::RecallMacro,
        Metric::Mcc,
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
        }
    }

    /// False only for the loss.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Metric::Loss)
    }

    /// The metric's value for an evaluation with these scores and mean loss.
    pub fn value(self, scores: &Scores, loss: f64) -> f64 {
        match self {
            Metric::Loss => loss,
            Metric::Accuracy => scores.accuracy,
            Metric::F1Macro => scores.f1_macro,
            Metric::F1Weighted => scores.f1_weighted,
            Metric::PrecisionMacro => scores.precision_macro,
            Metric::RecallMacro => scores.recall_macro,
            Metric::Mcc => scores.mcc,
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
                    "unknown metric `{s}`; accepted: {}, f1 (= f1_macro), with an optional `eval_` prefix",
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
