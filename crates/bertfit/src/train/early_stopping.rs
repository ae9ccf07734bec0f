//! Early stopping and best-model selection: a small state machine fed one metric value per evaluation.

use serde::{Deserialize, Serialize};

/// What to do after an evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The metric improved: this is the new best model (save it) and training goes on.
    Improved,
    /// No improvement, patience not exhausted.
    Continue,
    /// No improvement for `patience` evaluations: stop.
    Stop,
}

/// The policy and its state (serialisable for resume).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EarlyStopping {
    /// Whether larger values are better (false for loss).
    pub higher_is_better: bool,
    /// Evaluations without improvement before stopping; `None` never stops (best-model selection only).
    pub patience: Option<usize>,
    /// Smallest change that counts as an improvement.
    pub min_delta: f64,
    /// Best value so far.
    pub best: Option<f64>,
    /// Evaluation index of the best value.
    pub best_eval: Option<usize>,
    /// Evaluations seen.
    pub evals: usize,
    /// Evaluations since the best.
    pub bad_evals: usize,
}

impl EarlyStopping {
    /// A fresh policy.
    pub fn new(higher_is_better: bool, patience: Option<usize>, min_delta: f64) -> Self {
        EarlyStopping { higher_is_better, patience, min_delta: min_delta.abs(), best: None, best_eval: None, evals: 0, bad_evals: 0 }
    }

    /// Records one evaluation. A NaN value never improves.
    pub fn observe(&mut self, value: f64) -> Decision {
        let index = self.evals;
        self.evals += 1;
        let improved = !value.is_nan()
            && match self.best {
                None => true,
                Some(best) if self.higher_is_better => value > best + self.min_delta,
                Some(best) => value < best - self.min_delta,
            };
        if improved {
            self.best = Some(value);
            self.best_eval = Some(index);
            self.bad_evals = 0;
            return Decision::Improved;
        }
        self.bad_evals += 1;
        match self.patience {
            Some(p) if self.bad_evals >= p => Decision::Stop,
            _ => Decision::Continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;

    fn run(higher: bool, patience: Option<usize>, delta: f64, values: &[f64]) -> Vec<Decision> {
        let mut es = EarlyStopping::new(higher, patience, delta);
        values.iter().map(|&v| es.observe(v)).collect()
    }

    #[test]
    fn decision_tables() {
        let cases: &[(bool, Option<usize>, f64, &[f64], &[Decision])] = &[
            (true, Some(2), 0.0, &[0.5, 0.6, 0.6, 0.55], &[Improved, Improved, Continue, Stop]),
            (true, Some(2), 0.0, &[0.5, 0.4, 0.7, 0.6, 0.65], &[Improved, Continue, Improved, Continue, Stop]),
            (true, Some(1), 0.05, &[0.5, 0.54], &[Improved, Stop]),
            (true, Some(3), 0.05, &[0.5, 0.56, 0.57, 0.58, 0.6], &[Improved, Improved, Continue, Continue, Stop]),
            (false, Some(2), 0.0, &[1.0, 0.8, 0.9, 0.79], &[Improved, Improved, Continue, Improved]),
            (false, Some(1), 0.0, &[1.0, f64::NAN], &[Improved, Stop]),
            (true, None, 0.0, &[0.5, 0.4, 0.3, 0.2, 0.1], &[Improved, Continue, Continue, Continue, Continue]),
        ];
        for (i, (higher, patience, delta, values, expected)) in cases.iter().enumerate() {
            assert_eq!(run(*higher, *patience, *delta, values), *expected, "case {i}");
        }
    }

    #[test]
    fn remembers_best_and_round_trips() {
        let mut es = EarlyStopping::new(true, Some(3), 0.0);
        for v in [0.1, 0.9, 0.3] {
            es.observe(v);
        }
        assert_eq!(es.best, Some(0.9));
        assert_eq!(es.best_eval, Some(1));
        let back: EarlyStopping = serde_json::from_str(&serde_json::to_string(&es).expect("ser")).expect("de");
        assert_eq!(back, es);
    }
}
