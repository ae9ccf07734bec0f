//! Training progress as plain log lines, for a standard error that is not a terminal (nohup, container
//! logs, CI), where progress bars draw nothing. A small state machine fed the training events and the
//! time they arrived; it returns the lines to print: at most one per `interval`, plus one before each
//! mid-epoch evaluation and one at the end of each epoch.

use std::time::{Duration, Instant};

/// How often a plain progress line is written at most (evaluations and epoch ends add their own).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// Plain-line progress state.
pub struct PlainLog {
    interval: Duration,
    /// When the last line was returned.
    last_line: Option<Instant>,
    epochs: usize,
    epoch: Option<EpochClock>,
    eval: Option<EvalClock>,
}

/// The epoch in progress: what rate and ETA are computed from.
struct EpochClock {
    index: usize,
    batches: usize,
    start: Instant,
    /// Batches already done at the start (after a resume): not part of the rate.
    first_done: usize,
    done: usize,
    step: usize,
    tokens: usize,
    /// Smoothed loss of the last batch.
    loss: f64,
    /// Time spent in mid-epoch evaluations: not part of the training rate.
    paused: Duration,
}

/// The evaluation in progress.
struct EvalClock {
    split: String,
    start: Instant,
}

/// `42s`, `3m05s`, `2h03m`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Items per second over `secs`, if anything was measured.
fn rate(items: usize, secs: f64) -> Option<f64> {
    (secs > 0.0 && items > 0).then(|| items as f64 / secs)
}

impl PlainLog {
    /// Lines at most every `interval` (besides evaluations and epoch ends).
    pub fn new(interval: Duration) -> Self {
        PlainLog { interval, last_line: None, epochs: 0, epoch: None, eval: None }
    }

    /// Training starts (again, for each fold or seed).
    pub fn start(&mut self, epochs: usize) {
        self.epochs = epochs;
        self.epoch = None;
        self.eval = None;
    }

    /// An epoch of `batches` starts with `done` of them already behind it (after a resume).
    pub fn epoch_start(&mut self, now: Instant, index: usize, batches: usize, done: usize) {
        self.epoch =
            Some(EpochClock { index, batches, start: now, first_done: done, done, step: 0, tokens: 0, loss: f64::NAN, paused: Duration::ZERO });
    }

    /// A training batch finished (`loss`: smoothed, as the bar shows it). Returns a line when the
    /// interval has passed or the epoch is complete.
    pub fn batch(&mut self, now: Instant, done: usize, step: usize, tokens: usize, loss: f64) -> Option<String> {
        let c = self.epoch.as_mut()?;
        c.done = done;
        c.step = step;
        c.tokens += tokens;
        c.loss = loss;
        let last = done >= c.batches;
        (last || self.due(now)).then(|| self.training_line(now)).flatten()
    }

    /// An evaluation starts. Returns the training line first when it interrupts an epoch.
    pub fn eval_start(&mut self, now: Instant, split: &str, batches: usize) -> Option<String> {
        self.eval = Some(EvalClock { split: split.to_string(), start: now });
        let mid_epoch = self.epoch.as_ref().is_some_and(|c| c.done > c.first_done && c.done < c.batches);
        let line = if mid_epoch { self.training_line(now) } else { None };
        line.map(|l| format!("{l} | evaluating {split} ({batches} batches)"))
    }

    /// An evaluation batch finished. Returns a line when the interval has passed.
    pub fn eval_batch(&mut self, now: Instant, done: usize, total: usize) -> Option<String> {
        if !self.due(now) {
            return None;
        }
        let e = self.eval.as_ref()?;
        let secs = now.duration_since(e.start).as_secs_f64();
        let (speed, eta) = match rate(done, secs) {
            Some(r) => (format!("{r:.2} batches/s"), duration(total.saturating_sub(done) as f64 / r)),
            None => ("-- batches/s".into(), "--".into()),
        };
        let line = format!("  eval {} {done}/{total} batches | {speed} | eta {eta}", e.split);
        self.last_line = Some(now);
        Some(line)
    }

    /// An evaluation finished: its time is left out of the epoch's training rate.
    pub fn evaluated(&mut self, now: Instant) {
        if let (Some(e), Some(c)) = (self.eval.take(), self.epoch.as_mut()) {
            c.paused += now.duration_since(e.start);
        }
    }

    /// The epoch ended (its summary is printed by the caller).
    pub fn epoch_end(&mut self) {
        self.epoch = None;
    }

    fn due(&self, now: Instant) -> bool {
        self.last_line.is_none_or(|t| now.duration_since(t) >= self.interval)
    }

    /// `step 12 | epoch 1.50/3 | loss 0.6931 | 2.00 batches/s, 96 tokens/s | epoch eta 6s`.
    fn training_line(&mut self, now: Instant) -> Option<String> {
        let c = self.epoch.as_ref()?;
        let secs = now.duration_since(c.start).saturating_sub(c.paused).as_secs_f64();
        let position = c.index as f64 + c.done as f64 / c.batches.max(1) as f64;
        let remaining = c.batches.saturating_sub(c.done);
        let (speed, eta) = match rate(c.done - c.first_done, secs) {
            Some(r) => {
                let tokens = rate(c.tokens, secs).unwrap_or(0.0);
                let eta =
                    if remaining == 0 { format!("epoch done in {}", duration(secs)) } else { format!("epoch eta {}", duration(remaining as f64 / r)) };
                (format!("{r:.2} batches/s, {tokens:.0} tokens/s"), eta)
            }
            None => ("-- batches/s".into(), "epoch eta --".into()),
        };
        let line = format!("step {} | epoch {position:.2}/{} | loss {:.4} | {speed} | {eta}", c.step, self.epochs, c.loss);
        self.last_line = Some(now);
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t0: Instant, secs: f64) -> Instant {
        t0 + Duration::from_secs_f64(secs)
    }

    /// Ten batches one second apart, 48 tokens each, with a 30 s interval.
    #[test]
    fn lines_are_rate_limited_and_carry_step_epoch_loss_rate_and_eta() {
        let t0 = Instant::now();
        let mut log = PlainLog::new(Duration::from_secs(30));
        log.start(3);
        log.epoch_start(t0, 1, 100, 0);
        let first = log.batch(at(t0, 2.0), 1, 51, 48, 0.68764).expect("the first batch gets a line");
        assert_eq!(first, "step 51 | epoch 1.01/3 | loss 0.6876 | 0.50 batches/s, 24 tokens/s | epoch eta 3m18s");
        // The next lines wait for the interval: 2 s + 30 s.
        let mut printed = Vec::new();
        for done in 2..=40 {
            if let Some(l) = log.batch(at(t0, done as f64), done, 50 + done, 48, 0.5) {
                printed.push((done, l));
            }
        }
        let when: Vec<usize> = printed.iter().map(|(d, _)| *d).collect();
        assert_eq!(when, vec![32], "{printed:?}");
        assert_eq!(printed[0].1, "step 82 | epoch 1.32/3 | loss 0.5000 | 1.00 batches/s, 48 tokens/s | epoch eta 1m08s");
    }

    #[test]
    fn epoch_end_and_evaluations_always_get_a_line_and_evaluation_time_is_not_training_time() {
        let t0 = Instant::now();
        let mut log = PlainLog::new(Duration::from_secs(30));
        log.start(2);
        log.epoch_start(t0, 0, 4, 0);
        assert!(log.batch(at(t0, 1.0), 1, 1, 10, 1.0).is_some(), "first line");
        assert!(log.batch(at(t0, 2.0), 2, 2, 10, 0.9).is_none(), "rate-limited");
        // A mid-epoch evaluation: the training line comes first, whatever the interval.
        let line = log.eval_start(at(t0, 2.0), "valid", 7).expect("line before a mid-epoch evaluation");
        assert_eq!(line, "step 2 | epoch 0.50/2 | loss 0.9000 | 1.00 batches/s, 10 tokens/s | epoch eta 2s | evaluating valid (7 batches)");
        assert!(log.eval_batch(at(t0, 3.0), 1, 7).is_none(), "rate-limited");
        let eval_line = log.eval_batch(at(t0, 32.0), 6, 7).expect("interval passed");
        assert_eq!(eval_line, "  eval valid 6/7 batches | 0.20 batches/s | eta 5s");
        log.evaluated(at(t0, 42.0));
        // 40 s of evaluation are left out: 4 batches in 4 s of training.
        assert!(log.batch(at(t0, 43.0), 3, 3, 10, 0.8).is_none(), "rate-limited");
        let end = log.batch(at(t0, 44.0), 4, 4, 10, 0.7).expect("the last batch of an epoch gets a line");
        assert_eq!(end, "step 4 | epoch 1.00/2 | loss 0.7000 | 1.00 batches/s, 10 tokens/s | epoch done in 4s");
        // The end-of-epoch evaluation follows that line: no second training line.
        assert_eq!(log.eval_start(at(t0, 44.0), "valid", 7), None);
        log.evaluated(at(t0, 45.0));
        log.epoch_end();
        assert_eq!(log.batch(at(t0, 100.0), 1, 5, 10, 0.7), None, "no line between epochs");
    }

    #[test]
    fn a_resumed_epoch_counts_only_the_batches_it_ran() {
        let t0 = Instant::now();
        let mut log = PlainLog::new(Duration::ZERO);
        log.start(1);
        log.epoch_start(t0, 0, 10, 6);
        let line = log.batch(at(t0, 2.0), 7, 7, 100, 0.25).expect("line");
        assert_eq!(line, "step 7 | epoch 0.70/1 | loss 0.2500 | 0.50 batches/s, 50 tokens/s | epoch eta 6s");
        // No time has passed: no rate to show rather than an infinite one.
        log.epoch_start(t0, 0, 10, 6);
        let line = log.batch(t0, 7, 7, 100, 0.25).expect("line");
        assert!(line.ends_with("| -- batches/s | epoch eta --"), "{line}");
    }

    #[test]
    fn durations_read_as_seconds_minutes_or_hours() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(65.0), "1m05s");
        assert_eq!(duration(7380.0), "2h03m");
        assert_eq!(duration(-1.0), "0s");
    }
}
