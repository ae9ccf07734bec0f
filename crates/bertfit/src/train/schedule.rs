//! Learning-rate schedules: warmup followed by linear or cosine decay, constant, or reduce-on-plateau.
//!
//! The schedule is a small state machine whose whole state serialises, so a resumed run continues
//! with the same learning rates.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which schedule follows the warmup.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ScheduleKind {
    /// Linear decay to 0 at the last step (transformers' default).
    Linear,
    /// Half-cosine decay to 0 at the last step.
    Cosine,
    /// Constant after warmup.
    Constant,
    /// Constant after warmup; multiplied by `factor` after `patience` evaluations without improvement.
    Plateau {
        /// Multiplier applied on a plateau (0 < factor < 1).
        factor: f64,
        /// Evaluations without improvement before reducing.
        patience: usize,
        /// Floor for the learning rate.
        min_lr: f64,
    },
}

impl ScheduleKind {
    /// Parses `linear`, `cosine`, `constant`, `plateau` (reduce-on-plateau with factor 0.5, patience 1).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "linear" => ScheduleKind::Linear,
            "cosine" => ScheduleKind::Cosine,
            "constant" => ScheduleKind::Constant,
            "plateau" | "reduce_on_plateau" | "reduce-on-plateau" => {
                ScheduleKind::Plateau { factor: 0.5, patience: 1, min_lr: 0.0 }
            }
            _ => {
                return Err(Error::config(
                    "scheduler",
                    format!("unknown schedule `{s}` (expected linear, cosine, constant or plateau)"),
                ))
            }
        })
    }
}

/// The schedule with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Peak learning rate.
    pub base_lr: f64,
    /// Warmup steps (linear ramp from 0).
    pub warmup_steps: usize,
    /// Total optimizer steps of the run.
    pub total_steps: usize,
    /// The kind.
    pub kind: ScheduleKind,
    /// Plateau: current multiplier.
    pub scale: f64,
    /// Plateau: best metric seen (in "higher is better" orientation).
    pub best: Option<f64>,
    /// Plateau: evaluations since the best.
    pub bad_evals: usize,
}

impl Schedule {
    /// A new schedule.
    pub fn new(kind: ScheduleKind, base_lr: f64, warmup_steps: usize, total_steps: usize) -> Self {
        Schedule { base_lr, warmup_steps, total_steps: total_steps.max(1), kind, scale: 1.0, best: None, bad_evals: 0 }
    }

    /// Learning rate of optimizer update `step` (0-based). Matches transformers' schedulers, where the
    /// first update runs at `lr_lambda(0)` (0 during warmup).
    pub fn lr(&self, step: usize) -> f64 {
        if step < self.warmup_steps {
            return self.base_lr * step as f64 / self.warmup_steps as f64;
        }
        let decay_steps = (self.total_steps.saturating_sub(self.warmup_steps)).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / decay_steps).min(1.0);
        match self.kind {
            ScheduleKind::Linear => self.base_lr * (1.0 - progress),
            ScheduleKind::Cosine => self.base_lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            ScheduleKind::Constant => self.base_lr,
            ScheduleKind::Plateau { min_lr, .. } => (self.base_lr * self.scale).max(min_lr),
        }
    }

    /// Feeds an evaluation result (oriented so that higher is better). Returns true when the rate was reduced.
    pub fn observe(&mut self, value: f64) -> bool {
        let ScheduleKind::Plateau { factor, patience, .. } = self.kind else { return false };
        match self.best {
            Some(b) if value <= b => {
                self.bad_evals += 1;
                if self.bad_evals > patience {
                    self.scale *= factor;
                    self.bad_evals = 0;
                    return true;
                }
                false
            }
            _ => {
                self.best = Some(value);
                self.bad_evals = 0;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn linear_warmup_then_decay() {
        let s = Schedule::new(ScheduleKind::Linear, 1.0, 4, 14);
        let lrs: Vec<f64> = (0..14).map(|i| s.lr(i)).collect();
        // transformers' lr_lambda: step / warmup, then (total - step) / (total - warmup).
        assert!(close(lrs[0], 0.0) && close(lrs[1], 0.25) && close(lrs[3], 0.75), "{lrs:?}");
        assert!(close(lrs[4], 1.0));
        assert!(close(lrs[9], 0.5));
        assert!(close(lrs[13], 0.1));
        assert!(close(s.lr(14), 0.0));
    }

    #[test]
    fn cosine_is_half_way_at_middle() {
        let s = Schedule::new(ScheduleKind::Cosine, 2.0, 0, 10);
        assert!(close(s.lr(0), 2.0));
        assert!(close(s.lr(5), 1.0));
        assert!(close(s.lr(10), 0.0));
    }

    #[test]
    fn constant_stays() {
        let s = Schedule::new(ScheduleKind::Constant, 0.1, 2, 10);
        assert!(close(s.lr(0), 0.0) && close(s.lr(1), 0.05));
        assert!(close(s.lr(9), 0.1));
    }

    #[test]
    fn plateau_reduces_after_patience_and_round_trips() {
        let mut s = Schedule::new(ScheduleKind::Plateau { factor: 0.5, patience: 1, min_lr: 0.01 }, 0.1, 0, 100);
        let table = [(0.5, false, 0.1), (0.6, false, 0.1), (0.6, false, 0.1), (0.55, true, 0.05), (0.59, false, 0.05), (0.58, true, 0.025)];
        for (value, reduced, lr) in table {
            assert_eq!(s.observe(value), reduced, "value {value}");
            assert!(close(s.lr(50), lr), "lr {} expected {lr}", s.lr(50));
        }
        let json = serde_json::to_string(&s).expect("ser");
        let back: Schedule = serde_json::from_str(&json).expect("de");
        assert_eq!(back, s);
        for _ in 0..20 {
            s.observe(0.0);
        }
        assert!(close(s.lr(50), 0.01));
    }

    #[test]
    fn parse_names() {
        assert_eq!(ScheduleKind::parse("cosine").expect("ok"), ScheduleKind::Cosine);
        assert!(ScheduleKind::parse("step").is_err());
    }
}
