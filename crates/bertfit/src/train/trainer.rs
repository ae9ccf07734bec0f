//! The training loop: epochs of seeded batches, forward/backward, accumulation, clipping, AdamW updates,
//! evaluation, early stopping, best-model saving and checkpoints from which a run resumes exactly.
//!
//! The loop is driven by a [`TrainerState`]: everything it reads between steps lives there (or in the
//! optimizer and the weights), and checkpoints save all three, so a resumed run takes the same steps.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::checkpoint::{self, Loaded};
use super::config::TrainConfig;
use super::early_stopping::{Decision, EarlyStopping};
use super::events::{EvalRecord, Event, Observer};
use crate::faults;
use super::loss;
use super::optimizer::AdamW;
use super::runner::Runner;
use crate::engine::device::DynBackend;
use crate::engine::Engine;
use super::plan::Plan;
use super::schedule::Schedule;
use super::state::{Running, StepRecord, TrainerState};
use crate::batch::{self, Batch};
use crate::error::{Error, Result};
use crate::data::{ProblemType, Targets};
use crate::infer::{self, argmax, Evaluation, Readout};
use crate::objective::Objective;
use crate::windows::Pooling;
use crate::metrics::{ConfusionMatrix, Scores};
use crate::model::{Classifier, Inputs, Mode};
use crate::rundir::{self, JsonLog};
use crate::tokenize::{Encoded, TextTokenizer};

/// Tokenized examples with their targets.
#[derive(Debug, Clone, Copy)]
pub struct Split<'a> {
    /// Tokenized examples.
    pub encoded: &'a [Encoded],
    /// Class ids, label sets or values, one per example (per document when `windows` is given).
    pub targets: &'a Targets,
    /// Evaluation of long texts as windows: `encoded` holds windows, this gives each window's document
    /// and how their scores pool.
    pub windows: Option<(&'a [usize], Pooling)>,
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
    /// Wall-clock seconds of training (summed over resumed sessions).
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
    /// Run directory: `best/`, `checkpoints/`, `metrics.jsonl`.
    pub run_dir: &'a Path,
    /// The loss (with class or positive weights, and the regression scaling) and how outputs read.
    pub objective: Objective,
    /// How validation predictions are written (`predictions/valid.csv`).
    pub readout: Readout<'a>,
    /// Set from a signal handler: finish the current step, checkpoint, return [`Error::Interrupted`].
    pub cancel: Option<&'a AtomicBool>,
    /// Validation examples, to write the best model's scored predictions (`predictions/valid.csv`).
    pub valid_examples: Option<&'a crate::data::Dataset>,
}

/// Evaluates a split in inference mode (no dropout, no autograd graph), reporting progress as events:
/// through `engine` when given (the training engine, on its own weights), else on `model`. Multi-label
/// decisions use the model's saved thresholds (0.5 without).
pub fn evaluate(
    model: &Classifier,
    engine: Option<&mut Engine<DynBackend>>,
    split: Split<'_>,
    batch_size: usize,
    objective: &Objective,
    name: &str,
    obs: &mut dyn Observer,
) -> Result<Evaluation> {
    let batches = split.encoded.len().div_ceil(batch_size.max(1));
    obs.on_event(&Event::EvalStart { split: name, batches });
    let mut progress = |done, total| {
        faults::point("eval");
        obs.on_event(&Event::EvalBatch { done, total })
    };
    let probs = match engine {
        Some(e) => infer::engine_probabilities(e, model.runtime(), model.config.pad_token_id, split.encoded, batch_size, objective, &mut progress)?,
        None => infer::logits(&model.inference_view()?, split.encoded, batch_size, &mut progress)?.iter().map(|r| objective.activate(r)).collect(),
    };
    let probs = match split.windows {
        Some((doc, pooling)) => crate::windows::pool(&probs, doc, split.targets.len(), pooling, objective.problem),
        None => probs,
    };
    let thresholds = model.saved_meta.as_ref().and_then(|m| m.thresholds.as_deref());
    Ok(infer::evaluate_targets(probs, split.targets, &model.labels, objective, thresholds))
}

/// What one training batch did.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// The batch's loss (unscaled by gradient accumulation).
    pub loss: f64,
    /// Per-example probabilities of the training forward pass (dropout on).
    pub probs: Vec<Vec<f32>>,
    /// Trainable weights no gradient reached.
    pub missing: Vec<String>,
    /// The gradient norm before clipping, when this batch ended an optimizer update.
    pub grad_norm: Option<f64>,
}

/// One training batch on the model's runtime: forward with the dropout key of `(cfg.seed, micro_step)`,
/// the objective's loss (scaled by `1 / grad_accum`), backward, gradient accumulation, and — when
/// `update_lr` is given — the AdamW update with clipping at `cfg.max_grad_norm`. The training loop and
/// `bench-step` both call this, so the benchmark measures what training runs.
///
/// Cross-entropy is differentiated by the graph; the multi-label and regression losses are computed on
/// the host with their gradient `g` ([`Objective::loss_grad`]), and the graph differentiates
/// `Σ logits · g` (g held constant), whose gradient with respect to the logits is exactly `g`.
pub fn step(
    model: &Classifier,
    opt: &mut AdamW,
    b: &Batch,
    micro_step: u64,
    cfg: &TrainConfig,
    objective: &Objective,
    update_lr: Option<f64>,
) -> Result<StepOutcome> {
    let clip = (cfg.max_grad_norm > 0.0).then_some(cfg.max_grad_norm);
    let step_at = opt.step;
    let scale = 1.0 / cfg.grad_accum as f64;
    model.runtime().install(|| {
        let inputs = Inputs::from_batch(b, model.device())?;
        let logits = model.forward(&inputs, Mode::train(cfg.seed, micro_step))?;
        let (loss, loss_value, probs) = if objective.problem == ProblemType::SingleLabel {
            let loss = loss::cross_entropy(&logits, &b.labels, objective.weights.as_deref(), scale)?;
            let value = loss.to_scalar::<f32>()? as f64 * cfg.grad_accum as f64;
            (loss, value, infer::softmax_rows(&logits.detach())?)
        } else {
            let (rows, width) = logits.dims2()?;
            let host: Vec<f32> = logits.detach().to_dtype(candle_core::DType::F32)?.flatten_all()?.to_vec1()?;
            let mut grad = vec![0f32; host.len()];
            let value = objective.loss_grad(&host, width, &b.labels, &b.targets, scale, &mut grad) * cfg.grad_accum as f64;
            let g = candle_core::Tensor::from_vec(grad, (rows, width), logits.device())?.to_dtype(logits.dtype())?;
            let surrogate = logits.mul(&g)?.sum_all()?;
            (surrogate, value, host.chunks(width.max(1)).map(|r| objective.activate(r)).collect())
        };
        if !loss_value.is_finite() {
            return Err(Error::Diverged { step: step_at, loss: loss_value });
        }
        let grads = loss.backward()?;
        let missing = opt.accumulate(&grads)?;
        drop(grads);
        faults::point("step");
        let grad_norm = match update_lr {
            Some(lr) => Some(opt.apply(lr, clip)?),
            None => None,
        };
        Ok(StepOutcome { loss: loss_value, probs, missing, grad_norm })
    })
}

/// Mutable parts of a session.
struct Session<'s> {
    st: TrainerState,
    runner: Runner,
    log: JsonLog,
    step_log: JsonLog,
    clock: Instant,
    offset_s: f64,
    obs: &'s mut dyn Observer,
}

impl Session<'_> {
    fn elapsed(&self) -> f64 {
        self.offset_s + self.clock.elapsed().as_secs_f64()
    }
}

impl Trainer<'_> {
    fn metric_value(&self, r: &EvalRecord) -> f64 {
        self.config.early_stopping_metric.value(&r.view())
    }

    /// Runs training from the start, or from `resume`. `valid` drives early stopping and best-model
    /// selection; without it the last epoch is the best.
    pub fn fit(&self, train: Split<'_>, valid: Option<Split<'_>>, resume: Option<Loaded>, obs: &mut dyn Observer) -> Result<FitOutcome> {
        let cfg = self.config;
        let lengths: Vec<usize> = train.encoded.iter().map(|e| e.ids.len()).collect();
        if lengths.is_empty() {
            return Err(Error::config("train", "no training examples"));
        }
        let plan = Plan::new(lengths.len(), cfg.batch_size, cfg.grad_accum, cfg.epochs, cfg.max_steps);
        let mut runner = Runner::new(self.model, cfg, cfg.engine)?;
        let st = match resume {
            Some(loaded) => {
                let bad = runner.restore(loaded.optimizer)?;
                if !bad.is_empty() {
                    return Err(Error::input(
                        crate::Location::file(loaded.dir.join("optimizer.safetensors")),
                        format!("optimizer state does not match the model: {}", bad.join(", ")),
                    ));
                }
                let mut st = loaded.state;
                runner.set_counts(st.step, st.accumulated);
                // Extending a finished run (more epochs or steps): recompute the schedule's length.
                st.schedule.total_steps = plan.total_steps.max(1);
                if st.finished.as_deref().is_some_and(|r| r.starts_with("completed") || r.starts_with("reached max_steps"))
                    && st.epoch < plan.epochs
                    && cfg.max_steps.is_none_or(|m| st.step < m)
                {
                    st.finished = None;
                }
                st
            }
            None => {
                let warmup = (plan.total_steps as f64 * cfg.warmup_ratio).ceil() as usize;
                let schedule = Schedule::new(cfg.scheduler, cfg.lr, warmup, plan.total_steps);
                let stopping = EarlyStopping::new(cfg.early_stopping_metric.higher_is_better(), cfg.patience, cfg.min_delta);
                TrainerState::new(schedule, stopping)
            }
        };
        std::fs::create_dir_all(self.run_dir).map_err(|e| Error::io("cannot create run directory", self.run_dir, e))?;
        let log = JsonLog::open(self.run_dir.join(rundir::METRICS), "metrics", &st.history)?;
        let step_log = JsonLog::open(self.run_dir.join(rundir::STEPS), "steps", &st.steps)?;
        obs.on_event(&Event::Start {
            epochs: plan.epochs,
            total_steps: plan.total_steps,
            batches_per_epoch: plan.batches_per_epoch,
            trainable_params: runner.num_params(),
        });
        let offset_s = st.elapsed_s;
        let mut s = Session { st, runner, log, step_log, clock: Instant::now(), offset_s, obs };

        while s.st.finished.is_none() && s.st.epoch < plan.epochs {
            self.run_epoch(&mut s, train, &lengths, valid)?;
        }
        if s.st.finished.is_none() {
            s.st.finished = Some(format!("completed {} epochs", s.st.epoch));
        }
        if valid.is_none() {
            self.save_best(&mut s)?;
            s.st.best = s.st.history.iter().rev().find(|r| r.split == "train").cloned();
        }
        let elapsed = s.elapsed();
        Ok(FitOutcome {
            history: s.st.history.clone(),
            best: s.st.best.clone(),
            steps: s.st.step,
            epochs: s.st.epoch,
            stop_reason: s.st.finished.clone().unwrap_or_default(),
            seconds: elapsed,
            tokens: s.st.tokens,
        })
    }

    fn run_epoch(&self, s: &mut Session<'_>, train: Split<'_>, lengths: &[usize], valid: Option<Split<'_>>) -> Result<()> {
        let cfg = self.config;
        let epoch = s.st.epoch;
        let batches = batch::epoch_batches(lengths, cfg.batch_size, cfg.seed, epoch as u64, cfg.group_by_length);
        let epoch_start = Instant::now();
        s.obs.on_event(&Event::EpochStart { epoch, batches: batches.len(), done: s.st.batches_done });
        let pad = self.model.config.pad_token_id;
        while s.st.batches_done < batches.len() {
            let bi = s.st.batches_done;
            let b = batch::collate_targets(train.encoded, &batches[bi], train.targets, pad);
            let last_batch = bi + 1 == batches.len();
            let lr = s.st.schedule.lr(s.st.step);
            // this batch ends an update when it completes the accumulation or the epoch
            let micro = s.runner.accumulated() + 1;
            let update = micro == cfg.grad_accum || last_batch;
            let out = s.runner.step(self.model, &b, s.st.micro_step, cfg, &self.objective, update.then_some(lr))?;
            if !out.missing.is_empty() && s.st.micro_step == 0 {
                s.obs.on_event(&Event::Warning(format!("no gradient reached: {}", out.missing.join(", "))));
            }
            let loss_value = out.loss;
            for (p, &g) in out.probs.iter().zip(&b.labels) {
                s.st.running.pred.push(argmax(p));
                s.st.running.gold.push(g);
            }
            s.st.running.examples += b.size;
            s.st.running.loss_sum += loss_value;
            s.st.pending_loss += loss_value;
            s.st.running.batches += 1;
            s.st.tokens += b.tokens;
            s.st.micro_step += 1;
            s.st.batches_done += 1;
            let mut updated = false;
            if update {
                s.st.step = s.runner.updates();
                updated = true;
                let rec = StepRecord {
                    step: s.st.step,
                    epoch: epoch as f64 + s.st.batches_done as f64 / batches.len() as f64,
                    loss: s.st.pending_loss / micro as f64,
                    lr,
                };
                s.st.pending_loss = 0.0;
                s.step_log.append(&rec)?;
                s.st.steps.push(rec);
            }
            s.st.accumulated = s.runner.accumulated();
            s.obs.on_event(&Event::Batch { epoch, done: s.st.batches_done, batches: batches.len(), step: s.st.step, loss: loss_value, lr, tokens: b.tokens });
            if updated && !last_batch {
                if let (Some(every), Some(v)) = (cfg.eval_every_steps, valid) {
                    if s.st.step.is_multiple_of(every) {
                        let at = epoch as f64 + s.st.batches_done as f64 / batches.len() as f64;
                        let rec = self.eval_record(s, v, at, lr)?;
                        if self.judge(s, rec)? == Decision::Stop {
                            return self.end_epoch(s, valid, lr, epoch_start, batches.len(), false);
                        }
                    }
                }
                if cfg.max_steps.is_some_and(|m| s.st.step >= m) {
                    s.st.finished = Some(format!("reached max_steps {}", s.st.step));
                    return self.end_epoch(s, valid, lr, epoch_start, batches.len(), true);
                }
                if cfg.save_every_steps.is_some_and(|n| s.st.step.is_multiple_of(n)) {
                    self.save_checkpoint(s)?;
                }
            }
            if self.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                self.save_checkpoint(s)?;
                return Err(Error::Interrupted);
            }
        }
        let lr = s.st.schedule.lr(s.st.step.saturating_sub(1));
        if cfg.max_steps.is_some_and(|m| s.st.step >= m) {
            s.st.finished = Some(format!("reached max_steps {}", s.st.step));
        }
        self.end_epoch(s, valid, lr, epoch_start, batches.len(), true)
    }

    /// Records an evaluation and feeds it to early stopping, the plateau schedule and best-model saving.
    fn judge(&self, s: &mut Session<'_>, (rec, probs, gold): (EvalRecord, Vec<Vec<f32>>, &Targets)) -> Result<Decision> {
        self.record(s, &rec)?;
        let value = self.metric_value(&rec);
        let decision = s.st.early_stopping.observe(value);
        let oriented = if self.config.early_stopping_metric.higher_is_better() { value } else { -value };
        s.st.schedule.observe(oriented);
        match decision {
            Decision::Improved => {
                self.save_best(s)?;
                if let Some(data) = self.valid_examples {
                    let path = rundir::predictions_csv(self.run_dir, "valid");
                    infer::write_file_atomically(&path, |w| infer::write_scored(w, &path, data, gold, &self.model.labels, &probs, &self.readout))?;
                }
                s.st.best = Some(rec);
            }
            Decision::Stop => {
                s.st.finished = Some(format!(
                    "early stopping: {} did not improve for {} evaluations",
                    self.config.early_stopping_metric.name(),
                    s.st.early_stopping.bad_evals
                ));
            }
            Decision::Continue => {}
        }
        Ok(decision)
    }

    /// Closes the epoch: training record, validation, decisions, the epoch's checkpoint. With
    /// `whole = false` (early stop mid-epoch) no validation pass is repeated.
    fn end_epoch(&self, s: &mut Session<'_>, valid: Option<Split<'_>>, lr: f64, epoch_start: Instant, batches: usize, whole: bool) -> Result<()> {
        let epoch = s.st.epoch;
        let at = epoch as f64 + s.st.batches_done as f64 / batches.max(1) as f64;
        // the training split's scores come from the training passes (dropout on): class decisions for
        // single-label runs; the other problem types record the loss only
        let scores = if self.objective.problem == ProblemType::SingleLabel {
            let cm = ConfusionMatrix::from_predictions(&s.st.running.gold, &s.st.running.pred, self.model.labels.len());
            Scores::from_confusion(&cm, &self.model.labels)
        } else {
            Scores::undefined(&self.model.labels)
        };
        let train_rec = EvalRecord::new(
            "train",
            at,
            s.st.step,
            s.st.running.loss_sum / s.st.running.batches.max(1) as f64,
            lr,
            s.elapsed(),
            s.st.running.examples.max(s.st.running.gold.len()),
            scores,
        );
        self.record(s, &train_rec)?;
        let mut valid_rec = None;
        let mut improved = false;
        if let (Some(v), true) = (valid, whole) {
            let evaluated = self.eval_record(s, v, at, lr)?;
            valid_rec = Some(evaluated.0.clone());
            improved = self.judge(s, evaluated)? == Decision::Improved;
        }
        s.obs.on_event(&Event::EpochEnd { epoch, train: &train_rec, valid: valid_rec.as_ref(), improved, seconds: epoch_start.elapsed().as_secs_f64() });
        s.st.epoch += 1;
        s.st.batches_done = 0;
        s.st.running = Running::default();
        if let Some(reason) = &s.st.finished {
            s.obs.on_event(&Event::Stopped(reason.clone()));
        }
        self.save_checkpoint(s)?;
        faults::point("epoch-end");
        Ok(())
    }

    fn eval_record<'v>(&self, s: &mut Session<'_>, v: Split<'v>, at: f64, lr: f64) -> Result<(EvalRecord, Vec<Vec<f32>>, &'v Targets)> {
        // the engine evaluates on its own weights (no copy, no second device context); the graph on the model's
        let engine = match &mut s.runner {
            Runner::Engine(e) => Some(&mut **e),
            Runner::Graph(_) => None,
        };
        let e = evaluate(self.model, engine, v, self.config.eval_batch_size, &self.objective, "valid", s.obs)?;
        let rec = EvalRecord::measured("valid", at, s.st.step, e.loss, lr, s.elapsed(), v.targets.len(), e.measures());
        Ok((rec, e.probs, v.targets))
    }

    fn record(&self, s: &mut Session<'_>, rec: &EvalRecord) -> Result<()> {
        s.log.append(rec)?;
        s.st.history.push(rec.clone());
        s.obs.on_event(&Event::Evaluated(rec));
        Ok(())
    }

    fn save_best(&self, s: &mut Session<'_>) -> Result<()> {
        s.runner.sync(self.model)?;
        let dest = self.run_dir.join(rundir::BEST);
        checkpoint::write_atomically(&dest, |tmp| checkpoint::write_model(self.model, self.tokenizer, tmp))?;
        s.obs.on_event(&Event::Saved { what: "best", path: &dest });
        Ok(())
    }

    fn save_checkpoint(&self, s: &mut Session<'_>) -> Result<()> {
        s.st.elapsed_s = s.elapsed();
        s.runner.sync(self.model)?;
        let optimizer = s.runner.state_vectors()?;
        let dest = checkpoint::checkpoints_dir(self.run_dir).join(checkpoint::checkpoint_name(s.st.micro_step));
        checkpoint::write_atomically(&dest, |tmp| checkpoint::write_checkpoint(self.model, self.tokenizer, &optimizer, &s.st, tmp))?;
        checkpoint::prune(self.run_dir, self.config.keep_checkpoints)?;
        s.obs.on_event(&Event::Saved { what: "checkpoint", path: &dest });
        Ok(())
    }
}
