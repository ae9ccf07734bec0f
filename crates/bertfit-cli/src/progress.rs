//! Renders training events: progress bars with rate and ETA on a terminal (plain, rate-limited log
//! lines when standard error is not one), one summary line per epoch, notes and warnings on standard
//! error.

mod plain;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use bertfit::train::{EvalRecord, Event, Observer};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use plain::PlainLog;

/// Progress display on standard error; also refreshes the run's HTML report after each evaluation.
pub struct Progress {
    quiet: bool,
    /// Draw bars (standard error is a terminal and not quiet).
    bars: bool,
    /// Plain progress lines instead (standard error is not a terminal and not quiet).
    lines: Option<PlainLog>,
    report: Option<(std::path::PathBuf, bertfit::report::ReportOptions)>,
    bar: Option<ProgressBar>,
    eval_bar: Option<ProgressBar>,
    epochs: usize,
    loss_ema: Option<f64>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

impl Progress {
    /// A display; `quiet` hides bars and notes (warnings and epoch lines still print). Bars when
    /// standard error is a terminal; otherwise plain progress lines, at most one every 30 s besides
    /// those at evaluations and epoch ends.
    pub fn new(quiet: bool) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let lines = (!quiet && !terminal).then(|| PlainLog::new(plain::DEFAULT_INTERVAL));
        Progress { quiet, bars: !quiet && terminal, lines, report: None, bar: None, eval_bar: None, epochs: 0, loss_ema: None }
    }

    /// Changes how often plain progress lines are written at most (no effect on bars).
    pub fn with_line_interval(mut self, interval: Duration) -> Self {
        if self.lines.is_some() {
            self.lines = Some(PlainLog::new(interval));
        }
        self
    }

    /// Refresh `RUN_DIR/report.html` after every validation or test evaluation.
    pub fn with_report(mut self, run_dir: &std::path::Path, opts: bertfit::report::ReportOptions) -> Self {
        self.report = Some((run_dir.to_path_buf(), opts));
        self
    }

    fn refresh_report(&self) {
        if let Some((dir, opts)) = &self.report {
            if let Err(e) = bertfit::report::write_run_report(dir, opts) {
                self.println(format!("warning: cannot refresh the report: {e:#}"));
            }
        }
    }

    fn bar(&self, len: usize, template: &str) -> Option<ProgressBar> {
        if !self.bars {
            return None;
        }
        let pb = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr_with_hz(4));
        pb.set_style(style(template));
        pb.enable_steady_tick(Duration::from_millis(500));
        Some(pb)
    }

    fn println(&self, line: String) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }
}

fn short(r: &EvalRecord) -> String {
    match (&r.multi_label, &r.regression) {
        (Some(m), _) => format!("loss {:.4} f1_micro {:.4} f1_macro {:.4} subset_acc {:.4}", r.loss, m.micro.f1, m.macro_avg.f1, m.subset_accuracy),
        (_, Some(x)) => format!("loss {:.4} rmse {:.4} r2 {:.4} spearman {:.4}", r.loss, x.rmse, x.r2, x.spearman),
        // the training split of multi-label and regression runs records the loss only
        _ if r.accuracy.is_nan() => format!("loss {:.4}", r.loss),
        _ => format!("loss {:.4} acc {:.4} f1 {:.4} mcc {:.4}", r.loss, r.accuracy, r.f1_macro, r.mcc),
    }
}

impl Observer for Progress {
    fn on_event(&mut self, event: &Event<'_>) {
        let now = Instant::now();
        match event {
            Event::Info(msg) if !self.quiet => self.println(msg.clone()),
            Event::Info(_) => {}
            Event::Warning(msg) => self.println(format!("warning: {msg}")),
            Event::Start { epochs, total_steps, batches_per_epoch, trainable_params } => {
                self.epochs = *epochs;
                if let Some(l) = &mut self.lines {
                    l.start(*epochs);
                }
                if !self.quiet {
                    self.println(format!(
                        "training: {epochs} epoch(s), {batches_per_epoch} batches per epoch, {total_steps} optimizer steps, {:.1} M trainable parameters",
                        *trainable_params as f64 / 1e6
                    ));
                }
            }
            Event::EpochStart { epoch, batches, done } => {
                let template = format!(
                    "epoch {}/{} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} eta {{eta}} {{msg}}",
                    epoch + 1,
                    self.epochs
                );
                self.bar = self.bar(*batches, &template);
                if let Some(b) = &self.bar {
                    b.set_position(*done as u64);
                }
                self.loss_ema = None;
                if let Some(l) = &mut self.lines {
                    l.epoch_start(now, *epoch, *batches, *done);
                }
            }
            Event::Batch { done, loss, lr, step, tokens, .. } => {
                let ema = match self.loss_ema {
                    Some(e) => 0.9 * e + 0.1 * loss,
                    None => *loss,
                };
                self.loss_ema = Some(ema);
                if let Some(b) = &self.bar {
                    b.set_position(*done as u64);
                    b.set_message(format!("loss {ema:.4} lr {lr:.2e}"));
                }
                if let Some(line) = self.lines.as_mut().and_then(|l| l.batch(now, *done, *step, *tokens, ema)) {
                    eprintln!("{line}");
                }
            }
            Event::EvalStart { split, batches } => {
                self.eval_bar = self.bar(*batches, &format!("  eval {split} [{{bar:30}}] {{pos}}/{{len}} eta {{eta}}"));
                if let Some(line) = self.lines.as_mut().and_then(|l| l.eval_start(now, split, *batches)) {
                    eprintln!("{line}");
                }
            }
            Event::EvalBatch { done, total } => {
                if let Some(b) = &self.eval_bar {
                    b.set_position(*done as u64);
                }
                if let Some(line) = self.lines.as_mut().and_then(|l| l.eval_batch(now, *done, *total)) {
                    eprintln!("{line}");
                }
            }
            Event::Evaluated(rec) => {
                if let Some(l) = &mut self.lines {
                    l.evaluated(now);
                }
                if let Some(b) = self.eval_bar.take() {
                    b.finish_and_clear();
                }
                if rec.split != "train" {
                    self.refresh_report();
                }
                if rec.split == "test" {
                    self.println(format!("test (best model): {}", short(rec)));
                } else if rec.split == "valid" && rec.epoch.fract() != 0.0 {
                    self.println(format!("  step {} valid: {}", rec.step, short(rec)));
                }
            }
            Event::EpochEnd { epoch, train, valid, improved, seconds } => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
                if let Some(l) = &mut self.lines {
                    l.epoch_end();
                }
                let v = valid.map(|v| format!(" | valid {}", short(v))).unwrap_or_default();
                let mark = if *improved { " *best" } else { "" };
                eprintln!("epoch {}/{} {:.0}s | train {}{v}{mark}", epoch + 1, self.epochs, seconds, short(train));
            }
            Event::Saved { what, path } if !self.quiet && *what == "best" => {
                self.println(format!("  saved best model to {}", path.display()))
            }
            Event::Saved { .. } => {}
            Event::Stopped(reason) => self.println(format!("stopped: {reason}")),
        }
    }
}
