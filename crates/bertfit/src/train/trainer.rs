//! The training loop: epochs of seeded batches, forward/backward, accumulation, clipping, AdamW updates,
//! evaluation, early stopping, best-model and last-checkpoint saving.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::checkpoint::{self, TrainerState};
use super::config::TrainConfig;
use super::early_stopping::{Decision, EarlyStopping};
use super::events::{EvalRecord, Event, Observer};
use super::loss;
use super::optimizer::{AdamW, AdamWConfig};
use super::schedule::Schedule;
use crate::batch;
use crate::error::{Error, Result};
use crate::metrics::{ConfusionMatrix, Scores};
use crate::model::infer;
use crate::model::{Classifier, Inputs, Mode};
use crate::tokenize::{Encoded, TextTokenizer};

/// Tokenized examples with their class ids.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    /// Tokenized examples.
    pub encoded: &'a [Encoded],
    /// Class id per example.
    pub labels: &'a [usize],
}

/// What training did.
#[derive(Debug, Clone)]
pub struct FitOutcome {
    /// Every evaluation, in order.
    pub history: Vec<EvalRecord>,
    /// The best evaluation (by the early-stopping metric), if any.
    pub best: Option<EvalRecord>,
    /// Optimizer steps done.
    pub steps: usize,
    /// Epochs completed.
    pub epochs: usize,
    /// Why training ended.
    pub stop_reason: String,
    /// Wall-clock seconds of the loop.
    pub seconds: f64,
    /// Real (non-pad) tokens processed in training.
    pub tokens: usize,
}

/// Everything the loop needs besides the data.
pub struct Trainer<'a> {
    /// The model (its weights are updated in place).
    pub model: &'a Classifier,
    /// Hyperparameters.
    pub config: &'a TrainConfig,
    /// Saved next to the weights.
    pub tokenizer: &'a TextTokenizer,
    /// Run directory: `best/`, `last/`, `metrics.jsonl`.
    pub run_dir: &'a Path,
    /// Loss weight per class id.
    pub class_weights: Option<Vec<f32>>,
    /// Set from a signal handler to stop after the current step.
    pub cancel: Option<&'a AtomicBool>,
}

/// Evaluates a split: mean loss, scores and per-example probabilities.
pub fn evaluate(
    model: &Classifier,
    split: Split<'_>,
    batch_size: usize,
    class_weights: Option<&[f32]>,
    name: &str,
    obs: &mut dyn Observer,
) -> Result<(f64, Scores, Vec<Vec<f32>>)> {
    let batches = split.encoded.len().div_ceil(batch_size.max(1));
    obs.on_event(&Event::EvalStart { split: name, batches });
    let probs = infer::probabilities(model, split.encoded, batch_size, &mut |done, total| {
        obs.on_event(&Event::EvalBatch { done, total })
    })?;
    let loss = loss::cross_entropy_from_probs(&probs, split.labels, class_weights);
    let preds: Vec<usize> = probs.iter().map(|p| argmax(p)).collect();
    let cm = ConfusionMatrix::from_predictions(split.labels, &preds, model.labels.len());
    Ok((loss, Scores::from_confusion(&cm, &model.labels), probs))
}

/// Index of the largest value (first on ties).
pub fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = i;
        }
    }
    best
}

struct Running {
    gold: Vec<usize>,
    pred: Vec<usize>,
    loss_sum: f64,
    batches: usize,
}

impl Trainer<'_> {
    fn metric_value(&self, r: &EvalRecord) -> f64 {
        self.config.early_stopping_metric.value(&r.scores, r.loss)
    }

    /// Runs the whole training. `valid` drives early stopping and best-model selection; without it the
    /// last epoch is the best.
    pub fn fit(&self, train: Split<'_>, valid: Option<Split<'_>>, obs: &mut dyn Observer) -> Result<FitOutcome> {
        let cfg = self.config;
        let lengths: Vec<usize> = train.encoded.iter().map(|e| e.ids.len()).collect();
        if lengths.is_empty() {
            return Err(Error::config("train", "no training examples"));
        }
        let batches_per_epoch = lengths.len().div_ceil(cfg.batch_size);
        let updates_per_epoch = batches_per_epoch.div_ceil(cfg.grad_accum);
        let total_steps = cfg.max_steps.unwrap_or(updates_per_epoch * cfg.epochs);
        let epochs = cfg.max_steps.map_or(cfg.epochs, |m| m.div_ceil(updates_per_epoch));
        let warmup = (total_steps as f64 * cfg.warmup_ratio).ceil() as usize;
        let mut schedule = Schedule::new(cfg.scheduler, cfg.lr, warmup, total_steps);
        let metric = cfg.early_stopping_metric;
        let mut stopping = EarlyStopping::new(metric.higher_is_better(), cfg.patience, cfg.min_delta);
        let mut opt = AdamW::new(self.model.trainable(), AdamWConfig { weight_decay: cfg.weight_decay, ..Default::default() });
        obs.on_event(&Event::Start { epochs, total_steps, batches_per_epoch, trainable_params: opt.num_params() });

        std::fs::create_dir_all(self.run_dir).map_err(|e| Error::io("cannot create run directory", self.run_dir, e))?;
        let metrics_path = self.run_dir.join("metrics.jsonl");
        let mut metrics_file =
            std::fs::File::create(&metrics_path).map_err(|e| Error::io("cannot create", &metrics_path, e))?;
        let mut history: Vec<EvalRecord> = Vec::new();
        let mut best: Option<EvalRecord> = None;
        let start = Instant::now();
        let cw = self.class_weights.as_deref();
        let clip = (cfg.max_grad_norm > 0.0).then_some(cfg.max_grad_norm);
        let pad = self.model.config.pad_token_id;
        let mut micro: u64 = 0;
        let mut tokens = 0usize;
        let mut stop_reason = format!("completed {epochs} epochs");
        let mut warned_missing = false;
        let mut epochs_done = 0;

        'epochs: for epoch in 0..epochs {
            let epoch_start = Instant::now();
            let plan = batch::epoch_batches(&lengths, cfg.batch_size, cfg.seed, epoch as u64, cfg.group_by_length);
            obs.on_event(&Event::EpochStart { epoch, batches: plan.len(), done: 0 });
            let mut run = Running { gold: Vec::new(), pred: Vec::new(), loss_sum: 0.0, batches: 0 };
            for (bi, idx) in plan.iter().enumerate() {
                let b = batch::collate(train.encoded, idx, Some(train.labels), pad);
                let inputs = Inputs::from_batch(&b, self.model.device())?;
                let logits = self.model.forward(&inputs, Mode::train(cfg.seed, micro))?;
                let loss = loss::cross_entropy(&logits, &b.labels, cw, 1.0 / cfg.grad_accum as f64)?;
                let loss_value = loss.to_scalar::<f32>()? as f64 * cfg.grad_accum as f64;
                if !loss_value.is_finite() {
                    return Err(Error::config("lr", format!("training diverged: loss is {loss_value} at step {} (try a lower --lr)", opt.step)));
                }
                let grads = loss.backward()?;
                let missing = opt.accumulate(&grads)?;
                drop(grads);
                if !missing.is_empty() && !warned_missing {
                    warned_missing = true;
                    obs.on_event(&Event::Warning(format!("no gradient reached: {}", missing.join(", "))));
                }
                for (p, &g) in infer::softmax_rows(&logits.detach())?.iter().zip(&b.labels) {
                    run.pred.push(argmax(p));
                    run.gold.push(g);
                }
                run.loss_sum += loss_value;
                run.batches += 1;
                micro += 1;
                tokens += b.tokens;
                let lr = schedule.lr(opt.step);
                if opt.accumulated == cfg.grad_accum || bi + 1 == plan.len() {
                    opt.apply(lr, clip)?;
                    if let (Some(every), Some(v)) = (cfg.eval_every_steps, valid) {
                        if opt.step % every == 0 && bi + 1 != plan.len() {
                            let at = epoch as f64 + (bi + 1) as f64 / plan.len() as f64;
                            let rec = self.eval_record(v, "valid", at, opt.step, lr, start, obs)?;
                            self.record(&mut metrics_file, &metrics_path, &rec, &mut history, obs)?;
                            let decision = stopping.observe(self.metric_value(&rec));
                            schedule.observe(oriented(metric.higher_is_better(), self.metric_value(&rec)));
                            if decision == Decision::Improved {
                                self.save_best(obs)?;
                                best = Some(rec);
                            } else if decision == Decision::Stop {
                                stop_reason = format!("early stopping: {} did not improve for {} evaluations", metric.name(), stopping.bad_evals);
                                obs.on_event(&Event::Stopped(stop_reason.clone()));
                                epochs_done = epoch;
                                break 'epochs;
                            }
                        }
                    }
                }
                obs.on_event(&Event::Batch { epoch, done: bi + 1, batches: plan.len(), step: opt.step, loss: loss_value, lr, tokens: b.tokens });
                if cfg.max_steps.is_some_and(|m| opt.step >= m) && opt.accumulated == 0 {
                    stop_reason = format!("reached max_steps {}", opt.step);
                    // Finish this epoch's bookkeeping below with the batches done so far.
                    let rec_epoch = epoch as f64 + (bi + 1) as f64 / plan.len() as f64;
                    let improved = self.end_epoch(EpochEnd { epoch, at: rec_epoch, run: &run, valid, lr, start, epoch_start }, &mut metrics_file, &metrics_path, &mut history, &mut stopping, &mut schedule, &mut best, opt.step, obs)?;
                    let _ = improved;
                    epochs_done = epoch + 1;
                    self.save_last(&opt, &schedule, &stopping, &history, epochs_done, opt.step, micro, start, obs)?;
                    break 'epochs;
                }
                if self.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                    self.save_last(&opt, &schedule, &stopping, &history, epoch, opt.step, micro, start, obs)?;
                    return Err(Error::Interrupted);
                }
            }
            let decision = self.end_epoch(
                EpochEnd { epoch, at: (epoch + 1) as f64, run: &run, valid, lr: schedule.lr(opt.step.saturating_sub(1)), start, epoch_start },
                &mut metrics_file,
                &metrics_path,
                &mut history,
                &mut stopping,
                &mut schedule,
                &mut best,
                opt.step,
                obs,
            )?;
            epochs_done = epoch + 1;
            self.save_last(&opt, &schedule, &stopping, &history, epochs_done, opt.step, micro, start, obs)?;
            if decision == Decision::Stop {
                stop_reason = format!("early stopping: {} did not improve for {} evaluations", metric.name(), stopping.bad_evals);
                obs.on_event(&Event::Stopped(stop_reason.clone()));
                break;
            }
        }
        if valid.is_none() {
            self.save_best(obs)?;
            best = history.iter().rev().find(|r| r.split == "train").cloned();
        }
        Ok(FitOutcome { history, best, steps: opt.step, epochs: epochs_done, stop_reason, seconds: start.elapsed().as_secs_f64(), tokens })
    }

    #[allow(clippy::too_many_arguments)]
    fn end_epoch(
        &self,
        e: EpochEnd<'_, '_>,
        file: &mut std::fs::File,
        path: &Path,
        history: &mut Vec<EvalRecord>,
        stopping: &mut EarlyStopping,
        schedule: &mut Schedule,
        best: &mut Option<EvalRecord>,
        step: usize,
        obs: &mut dyn Observer,
    ) -> Result<Decision> {
        let elapsed = e.start.elapsed().as_secs_f64();
        let cm = ConfusionMatrix::from_predictions(&e.run.gold, &e.run.pred, self.model.labels.len());
        let train_rec = EvalRecord::new(
            "train",
            e.at,
            step,
            e.run.loss_sum / e.run.batches.max(1) as f64,
            e.lr,
            elapsed,
            e.run.gold.len(),
            Scores::from_confusion(&cm, &self.model.labels),
        );
        self.record(file, path, &train_rec, history, obs)?;
        let mut decision = Decision::Continue;
        let mut valid_rec = None;
        if let Some(v) = e.valid {
            let rec = self.eval_record(v, "valid", e.at, step, e.lr, e.start, obs)?;
            self.record(file, path, &rec, history, obs)?;
            let value = self.metric_value(&rec);
            decision = stopping.observe(value);
            schedule.observe(oriented(self.config.early_stopping_metric.higher_is_better(), value));
            if decision == Decision::Improved {
                self.save_best(obs)?;
                *best = Some(rec.clone());
            }
            valid_rec = Some(rec);
        }
        obs.on_event(&Event::EpochEnd {
            epoch: e.epoch,
            train: &train_rec,
            valid: valid_rec.as_ref(),
            improved: decision == Decision::Improved,
            seconds: e.epoch_start.elapsed().as_secs_f64(),
        });
        Ok(decision)
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_record(&self, v: Split<'_>, name: &str, at: f64, step: usize, lr: f64, start: Instant, obs: &mut dyn Observer) -> Result<EvalRecord> {
        let (loss, scores, _) = evaluate(self.model, v, self.config.eval_batch_size, self.class_weights.as_deref(), name, obs)?;
        Ok(EvalRecord::new(name, at, step, loss, lr, start.elapsed().as_secs_f64(), v.labels.len(), scores))
    }

    fn record(&self, file: &mut std::fs::File, path: &Path, rec: &EvalRecord, history: &mut Vec<EvalRecord>, obs: &mut dyn Observer) -> Result<()> {
        let line = serde_json::to_string(rec).map_err(|e| Error::config("metrics", e.to_string()))?;
        writeln!(file, "{line}").and_then(|_| file.flush()).map_err(|e| Error::io("cannot append to", path, e))?;
        history.push(rec.clone());
        obs.on_event(&Event::Evaluated(rec));
        Ok(())
    }

    fn save_best(&self, obs: &mut dyn Observer) -> Result<()> {
        let dest = self.run_dir.join("best");
        checkpoint::write_atomically(&dest, |tmp| checkpoint::write_model(self.model, self.tokenizer, tmp))?;
        obs.on_event(&Event::Saved { what: "best", path: &dest });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn save_last(
        &self,
        opt: &AdamW,
        schedule: &Schedule,
        stopping: &EarlyStopping,
        history: &[EvalRecord],
        epochs_done: usize,
        step: usize,
        micro: u64,
        start: Instant,
        obs: &mut dyn Observer,
    ) -> Result<()> {
        let state = TrainerState {
            epochs_done,
            batches_done: 0,
            step,
            micro_step: micro,
            schedule: schedule.clone(),
            early_stopping: stopping.clone(),
            history: history.to_vec(),
            elapsed_s: start.elapsed().as_secs_f64(),
        };
        let dest: PathBuf = self.run_dir.join("last");
        checkpoint::write_atomically(&dest, |tmp| checkpoint::write_checkpoint(self.model, self.tokenizer, opt, &state, tmp))?;
        obs.on_event(&Event::Saved { what: "last", path: &dest });
        Ok(())
    }
}

struct EpochEnd<'r, 's> {
    epoch: usize,
    at: f64,
    run: &'r Running,
    valid: Option<Split<'s>>,
    lr: f64,
    start: Instant,
    epoch_start: Instant,
}

fn oriented(higher_is_better: bool, v: f64) -> f64 {
    if higher_is_better {
        v
    } else {
        -v
    }
}
