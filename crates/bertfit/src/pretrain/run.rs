//! The pretraining run: data to sequences, the masked-LM loop (dynamic masks, AdamW, schedule,
//! accumulation, clipping, evaluation on held-out text, early stopping on its loss), crash-safe
//! checkpoints from which a run resumes bit for bit, and `best/`, a `*ForMaskedLM` folder that
//! transformers loads and `bertfit train --model` fine-tunes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use sha2::Digest;

use super::config::PretrainConfig;
use super::corpus::{self, Sequence};
use super::masking::{self, Masked, Masking};
pub use super::state::{MlmRecord, PretrainState};
use crate::batch;
use crate::error::{Error, Location, Result};
use crate::faults;
use crate::model::{Inputs, MaskedLm, Mode};
use crate::rng;
use crate::rundir::{self, JsonLog};
use crate::runtime::Runtime;
use crate::source::ModelFolder;
use crate::tokenize::{Encoded, TextTokenizer};
use crate::train::checkpoint::{self, Loaded};
use crate::train::early_stopping::{Decision, EarlyStopping};
use crate::train::plan::Plan;
use crate::train::optimizer::{AdamW, AdamWConfig};
use crate::train::schedule::Schedule;
use crate::train::state::StepRecord;
use crate::train::{Event, Observer};

/// How a run is started.
pub struct PretrainOptions<'a> {
    /// Replace a run already in the output directory.
    pub overwrite: bool,
    /// Continue the run in the output directory from its newest valid checkpoint.
    pub resume: bool,
    /// Set by a signal handler: checkpoint after the current step and stop.
    pub cancel: Option<&'a AtomicBool>,
    /// Device, precision and threads.
    pub runtime: Runtime,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct PretrainSummary {
    /// Epochs completed.
    pub epochs: usize,
    /// Optimizer updates.
    pub steps: usize,
    /// Seconds of training.
    pub seconds: f64,
    /// Real tokens trained on.
    pub tokens: usize,
    /// Why training ended.
    pub stop_reason: String,
    /// The best validation evaluation (the last training record without validation).
    pub best: Option<MlmRecord>,
    /// The first validation evaluation of this run (before any update when the run started fresh).
    pub initial: Option<MlmRecord>,
    /// Every evaluation.
    pub history: Vec<MlmRecord>,
    /// Training and validation sequences.
    pub sequences: (usize, usize),
    /// What loading the model said (initialised head, unused tensors).
    pub notes: Vec<String>,
}

/// Sequences of the training and validation text.
struct Corpus {
    train: Vec<Sequence>,
    valid: Vec<Sequence>,
}

fn read_corpus(cfg: &PretrainConfig, tokenizer: &TextTokenizer) -> Result<Corpus> {
    let mut docs = Vec::new();
    for path in &cfg.data {
        docs.extend(corpus::read_documents(path, &cfg.text_column, cfg.document_separator)?);
    }
    let valid_docs = match &cfg.valid {
        Some(path) => corpus::read_documents(path, &cfg.text_column, cfg.document_separator)?,
        None if cfg.valid_fraction > 0.0 && docs.len() >= 2 => {
            let mut order: Vec<usize> = (0..docs.len()).collect();
            rng::Stream::new(&[cfg.seed, rng::label("mlm-split")]).shuffle(&mut order);
            let n = ((docs.len() as f64 * cfg.valid_fraction).round() as usize).clamp(1, docs.len() - 1);
            let mut held: Vec<usize> = order[..n].to_vec();
            held.sort_unstable();
            let mut valid = Vec::with_capacity(n);
            for &i in held.iter().rev() {
                valid.push(docs.remove(i));
            }
            valid.reverse();
            valid
        }
        None => Vec::new(),
    };
    let train = corpus::sequences(tokenizer, &docs, cfg.packing)?;
    if train.is_empty() {
        return Err(Error::input(Location::file(&cfg.data[0]), "no tokens to train on"));
    }
    let valid = if valid_docs.is_empty() { Vec::new() } else { corpus::sequences(tokenizer, &valid_docs, cfg.packing)? };
    Ok(Corpus { train, valid })
}

fn digest(corpus: &Corpus) -> String {
    let mut h = sha2::Sha256::new();
    for (tag, seqs) in [(0u8, &corpus.train), (1u8, &corpus.valid)] {
        h.update([tag]);
        for s in seqs.iter() {
            h.update((s.ids.len() as u64).to_le_bytes());
            for (&id, &w) in s.ids.iter().zip(&s.words) {
                h.update(id.to_le_bytes());
                h.update(w.to_le_bytes());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The masking policy for this run's tokenizer and model.
fn masking(cfg: &PretrainConfig, tokenizer: &TextTokenizer, model: &MaskedLm) -> Result<Masking> {
    let (_, mask_id) = tokenizer
        .mask_token()
        .ok_or_else(|| Error::input(Location::file(tokenizer.source()), "the tokenizer has no mask token ([MASK] or <mask>)"))?;
    let vocab = tokenizer.vocab_size().min(model.config.vocab_size) as u32;
    Ok(Masking { probability: cfg.mlm_probability as f32, whole_word: cfg.whole_word_mask, mask_id, vocab })
}

/// A masked micro-batch: padded inputs, the flat positions of the masked tokens and their targets.
struct MaskedBatch {
    batch: batch::Batch,
    positions: Vec<u32>,
    targets: Vec<u32>,
}

fn masked_batch(seqs: &[Sequence], indices: &[usize], masking: &Masking, key: impl Fn(usize) -> u64, pad: u32) -> MaskedBatch {
    let seq_len = indices.iter().map(|&i| seqs[i].ids.len()).max().unwrap_or(0);
    let mut encoded = Vec::with_capacity(indices.len());
    let (mut positions, mut targets) = (Vec::new(), Vec::new());
    for (row, &i) in indices.iter().enumerate() {
        let Masked { ids, positions: at, targets: want } = masking.apply(&seqs[i], key(i));
        positions.extend(at.iter().map(|&p| (row * seq_len) as u32 + p));
        targets.extend(want);
        encoded.push(Encoded { type_ids: vec![0; ids.len()], ids, truncated: false });
    }
    let local: Vec<usize> = (0..encoded.len()).collect();
    let batch = batch::collate(&encoded, &local, None, pad);
    debug_assert_eq!(batch.seq_len, seq_len);
    MaskedBatch { batch, positions, targets }
}

/// The summed negative log-likelihood of `targets` (one per row of `logits`, (rows, vocab)) and how many
/// of them are the row's most likely token: evaluation's counts.
pub fn masked_token_scores(logits: &candle_core::Tensor, targets: &[u32]) -> Result<(f64, usize)> {
    let logp = crate::model::ops::log_softmax_last(&logits.to_dtype(candle_core::DType::F32)?)?;
    let rows: Vec<Vec<f32>> = logp.to_vec2()?;
    let mut nll = 0.0;
    let mut correct = 0;
    for (row, &t) in rows.iter().zip(targets) {
        nll -= row.get(t as usize).copied().unwrap_or(f32::NEG_INFINITY) as f64;
        correct += usize::from(crate::infer::argmax(row) == t as usize);
    }
    Ok((nll, correct))
}

/// Mean loss, accuracy and masked-token count of `seqs` under fixed masks (the same every evaluation).
fn evaluate(model: &MaskedLm, seqs: &[Sequence], masking: &Masking, cfg: &PretrainConfig, obs: &mut dyn Observer) -> Result<(f64, f64, usize)> {
    let view = model.inference_view()?;
    let lengths: Vec<usize> = seqs.iter().map(|s| s.ids.len()).collect();
    let batches = batch::inference_batches(&lengths, cfg.eval_batch_size);
    obs.on_event(&Event::EvalStart { split: "valid", batches: batches.len() });
    let (mut nll, mut correct, mut count) = (0.0, 0usize, 0usize);
    let pad = model.config.pad_token_id;
    for (done, indices) in batches.iter().enumerate() {
        let mb = masked_batch(seqs, indices, masking, |i| masking::key(cfg.seed, u64::MAX, i as u64), pad);
        if !mb.positions.is_empty() {
            let (n, c) = model.runtime().install(|| -> Result<(f64, usize)> {
                let inputs = Inputs::from_batch(&mb.batch, view.device())?;
                let logits = view.logits_at(&inputs, &mb.positions, Mode::EVAL)?;
                masked_token_scores(&logits, &mb.targets)
            })?;
            nll += n;
            correct += c;
            count += mb.positions.len();
        }
        faults::point("eval");
        obs.on_event(&Event::EvalBatch { done: done + 1, total: batches.len() });
    }
    let loss = if count == 0 { f64::NAN } else { nll / count as f64 };
    let accuracy = if count == 0 { f64::NAN } else { correct as f64 / count as f64 };
    Ok((loss, accuracy, count))
}

/// The loop's parts.
struct Session<'a> {
    cfg: &'a PretrainConfig,
    model: MaskedLm,
    tokenizer: TextTokenizer,
    opt: AdamW,
    masking: Masking,
    st: PretrainState,
    log: JsonLog,
    step_log: JsonLog,
    clock: Instant,
    offset_s: f64,
    cancel: Option<&'a AtomicBool>,
}

impl Session<'_> {
    fn elapsed(&self) -> f64 {
        self.offset_s + self.clock.elapsed().as_secs_f64()
    }

    fn record(&mut self, rec: MlmRecord, obs: &mut dyn Observer) -> Result<()> {
        self.log.append(&rec)?;
        let line = match rec.accuracy {
            Some(acc) => format!("{} epoch {:.2}: loss {:.4}, perplexity {:.2}, masked-token accuracy {:.4} ({} tokens)", rec.split, rec.epoch, rec.loss, rec.perplexity, acc, rec.masked_tokens),
            None => format!("{} epoch {:.2}: loss {:.4}, perplexity {:.2}", rec.split, rec.epoch, rec.loss, rec.perplexity),
        };
        obs.on_event(&Event::Info(line));
        self.st.history.push(rec);
        Ok(())
    }

    fn save_best(&self, obs: &mut dyn Observer) -> Result<()> {
        let dest = self.cfg.output.join(rundir::BEST);
        checkpoint::write_atomically(&dest, |tmp| {
            self.model.save(tmp)?;
            self.tokenizer.save(&tmp.join("tokenizer.json"))
        })?;
        obs.on_event(&Event::Saved { what: "best", path: &dest });
        Ok(())
    }

    fn save_checkpoint(&mut self, obs: &mut dyn Observer) -> Result<()> {
        self.st.elapsed_s = self.elapsed();
        self.st.accumulated = self.opt.accumulated;
        let optimizer: Vec<(String, Vec<f32>)> = self.opt.state_vectors().into_iter().map(|(n, v)| (n, v.to_vec())).collect();
        let dest = checkpoint::checkpoints_dir(&self.cfg.output).join(checkpoint::checkpoint_name(self.st.micro_step));
        checkpoint::write_atomically(&dest, |tmp| {
            self.model.save(tmp)?;
            self.tokenizer.save(&tmp.join("tokenizer.json"))?;
            checkpoint::write_loop_state(&optimizer, &self.st, tmp)
        })?;
        checkpoint::prune(&self.cfg.output, self.cfg.keep_checkpoints)?;
        obs.on_event(&Event::Saved { what: "checkpoint", path: &dest });
        Ok(())
    }

    /// Evaluates the validation text, records it, and feeds early stopping (saving `best/` on improvement).
    fn validate(&mut self, corpus: &Corpus, at: f64, lr: f64, obs: &mut dyn Observer) -> Result<Decision> {
        let (loss, accuracy, masked) = evaluate(&self.model, &corpus.valid, &self.masking, self.cfg, obs)?;
        let rec = MlmRecord { split: "valid".into(), epoch: at, step: self.st.step, loss, perplexity: loss.exp(), accuracy: Some(accuracy), masked_tokens: masked, learning_rate: lr, elapsed_s: self.elapsed() };
        self.record(rec.clone(), obs)?;
        let decision = self.st.early_stopping.observe(loss);
        self.st.schedule.observe(-loss);
        match decision {
            Decision::Improved => {
                self.save_best(obs)?;
                self.st.best = Some(rec);
            }
            Decision::Stop => {
                self.st.finished = Some(format!("early stopping: validation loss did not improve for {} evaluations", self.st.early_stopping.bad_evals));
            }
            Decision::Continue => {}
        }
        Ok(decision)
    }

    fn run_epoch(&mut self, corpus: &Corpus, obs: &mut dyn Observer) -> Result<()> {
        let cfg = self.cfg;
        let epoch = self.st.epoch;
        let lengths: Vec<usize> = corpus.train.iter().map(|s| s.ids.len()).collect();
        let batches = batch::epoch_batches(&lengths, cfg.batch_size, cfg.seed, epoch as u64, true);
        obs.on_event(&Event::EpochStart { epoch, batches: batches.len(), done: self.st.batches_done });
        let pad = self.model.config.pad_token_id;
        let scale = 1.0 / cfg.grad_accum as f64;
        let clip = (cfg.max_grad_norm > 0.0).then_some(cfg.max_grad_norm);
        let valid = !corpus.valid.is_empty();
        while self.st.batches_done < batches.len() {
            let bi = self.st.batches_done;
            let mb = masked_batch(&corpus.train, &batches[bi], &self.masking, |i| masking::key(cfg.seed, epoch as u64, i as u64), pad);
            let last_batch = bi + 1 == batches.len();
            let lr = self.st.schedule.lr(self.st.step);
            let update = self.opt.accumulated + 1 == cfg.grad_accum || last_batch;
            let step_at = self.st.step;
            let (model, opt, micro) = (&self.model, &mut self.opt, self.st.micro_step);
            let loss = model.runtime().install(|| -> Result<f64> {
                if mb.positions.is_empty() {
                    // nothing masked in this batch: no gradient, but the micro-batch still counts
                    opt.accumulated += 1;
                } else {
                    let inputs = Inputs::from_batch(&mb.batch, model.device())?;
                    let logits = model.logits_at(&inputs, &mb.positions, Mode::train(cfg.seed, micro))?;
                    let labels: Vec<usize> = mb.targets.iter().map(|&t| t as usize).collect();
                    let loss = crate::train::loss::cross_entropy(&logits, &labels, None, scale)?;
                    let value = loss.to_scalar::<f32>()? as f64 / scale;
                    if !value.is_finite() {
                        return Err(Error::Diverged { step: step_at, loss: value });
                    }
                    let grads = loss.backward()?;
                    opt.accumulate(&grads)?;
                    faults::point("step");
                    return Ok(value);
                }
                Ok(0.0)
            })?;
            let micro_count = self.opt.accumulated;
            if update {
                let (model, opt) = (&self.model, &mut self.opt);
                if self.st.step < cfg.head_warmup_steps {
                    model.runtime().install(|| opt.apply_to(lr, clip, |n| model.is_head(n)))?;
                } else {
                    model.runtime().install(|| opt.apply(lr, clip))?;
                }
            }
            self.st.running_loss += loss * mb.positions.len() as f64;
            self.st.running_masked += mb.positions.len();
            self.st.pending_loss += loss;
            self.st.tokens += mb.batch.tokens;
            self.st.micro_step += 1;
            self.st.batches_done += 1;
            if update {
                self.st.step = self.opt.step;
                let rec = StepRecord { step: self.st.step, epoch: epoch as f64 + self.st.batches_done as f64 / batches.len() as f64, loss: self.st.pending_loss / micro_count.max(1) as f64, lr };
                self.st.pending_loss = 0.0;
                self.step_log.append(&rec)?;
                self.st.steps.push(rec);
            }
            obs.on_event(&Event::Batch { epoch, done: self.st.batches_done, batches: batches.len(), step: self.st.step, loss, lr, tokens: mb.batch.tokens });
            if update && !last_batch {
                if let (Some(every), true) = (cfg.eval_every_steps, valid) {
                    if self.st.step.is_multiple_of(every) {
                        let at = epoch as f64 + self.st.batches_done as f64 / batches.len() as f64;
                        if self.validate(corpus, at, lr, obs)? == Decision::Stop {
                            return self.end_epoch(corpus, batches.len(), lr, false, obs);
                        }
                    }
                }
                if cfg.max_steps.is_some_and(|m| self.st.step >= m) {
                    self.st.finished = Some(format!("reached max_steps {}", self.st.step));
                    return self.end_epoch(corpus, batches.len(), lr, true, obs);
                }
                if cfg.save_every_steps.is_some_and(|n| self.st.step.is_multiple_of(n)) {
                    self.save_checkpoint(obs)?;
                }
            }
            if self.cancel.is_some_and(|c| c.load(Ordering::SeqCst)) {
                self.save_checkpoint(obs)?;
                return Err(Error::Interrupted);
            }
        }
        let lr = self.st.schedule.lr(self.st.step.saturating_sub(1));
        if cfg.max_steps.is_some_and(|m| self.st.step >= m) {
            self.st.finished = Some(format!("reached max_steps {}", self.st.step));
        }
        self.end_epoch(corpus, batches.len(), lr, true, obs)
    }

    /// Closes an epoch: the training record, validation (unless stopped mid-epoch), the checkpoint.
    fn end_epoch(&mut self, corpus: &Corpus, batches: usize, lr: f64, whole: bool, obs: &mut dyn Observer) -> Result<()> {
        let at = self.st.epoch as f64 + self.st.batches_done as f64 / batches.max(1) as f64;
        let loss = if self.st.running_masked == 0 { f64::NAN } else { self.st.running_loss / self.st.running_masked as f64 };
        let rec = MlmRecord { split: "train".into(), epoch: at, step: self.st.step, loss, perplexity: loss.exp(), accuracy: None, masked_tokens: self.st.running_masked, learning_rate: lr, elapsed_s: self.elapsed() };
        self.record(rec, obs)?;
        if whole && !corpus.valid.is_empty() {
            self.validate(corpus, at, lr, obs)?;
        }
        self.st.epoch += 1;
        self.st.batches_done = 0;
        self.st.running_loss = 0.0;
        self.st.running_masked = 0;
        if let Some(reason) = &self.st.finished {
            obs.on_event(&Event::Stopped(reason.clone()));
        }
        self.save_checkpoint(obs)?;
        faults::point("epoch-end");
        Ok(())
    }
}

/// The resolved configuration a run directory records (for `--resume`).
pub fn saved_config(run_dir: &Path) -> Result<PretrainConfig> {
    let path = run_dir.join(rundir::RUN_CONFIG);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read the run's configuration", &path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::parse(Location::file(&path), "not a pretraining run configuration", e))
}

/// Runs (or resumes) masked-LM pretraining.
pub fn run(cfg: &PretrainConfig, opts: PretrainOptions<'_>, obs: &mut dyn Observer) -> Result<PretrainSummary> {
    cfg.validate()?;
    let out = &cfg.output;
    let resume_from: Option<Loaded<PretrainState>> = if opts.resume {
        let (newest, refused) = checkpoint::newest_valid::<PretrainState>(out);
        for (dir, err) in &refused {
            obs.on_event(&Event::Warning(format!("refusing checkpoint {}: {err}; falling back to an older one", dir.display())));
        }
        match &newest {
            Some(l) => obs.on_event(&Event::Info(format!("resuming from {} (epoch {}, step {})", l.dir.display(), l.state.epoch, l.state.step))),
            None => obs.on_event(&Event::Warning("no valid checkpoint: starting the run from the beginning".into())),
        }
        newest
    } else {
        crate::train::job::check_output(out, opts.overwrite)?;
        None
    };
    let folder = match &resume_from {
        Some(l) => ModelFolder::open(&l.dir)?,
        None => ModelFolder::resolve(&cfg.model, None)?,
    };
    let runtime = opts.runtime.clone().with_precision(cfg.precision);
    let tokenizer = TextTokenizer::for_folder(&folder, cfg.max_len)?;
    let model = MaskedLm::load(&folder, runtime, cfg.seed)?;
    let mut notes = Vec::new();
    if resume_from.is_none() {
        if model.head_initialised {
            notes.push(format!("{} has no masked-LM head: `{}` is initialised (seed {})", cfg.model, model.head_names().dense, cfg.seed));
        }
        let missing: Vec<&String> = model.load_report.missing.iter().filter(|n| !model.is_head(n)).collect();
        if !missing.is_empty() {
            notes.push(format!("initialised (not in the checkpoint): {}", missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")));
        }
        if !model.load_report.unexpected.is_empty() {
            notes.push(format!("not used by the masked LM (dropped): {}", model.load_report.unexpected.join(", ")));
        }
    }
    // as transformers warns: weights that start untrained (or are dropped) change what the run means
    for note in &notes {
        obs.on_event(&Event::Warning(note.clone()));
    }
    let masking = masking(cfg, &tokenizer, &model)?;
    let corpus = read_corpus(cfg, &tokenizer)?;
    let data_digest = digest(&corpus);
    let plan = Plan::new(corpus.train.len(), cfg.batch_size, cfg.grad_accum, cfg.epochs, cfg.max_steps);
    let adam = AdamWConfig { weight_decay: cfg.weight_decay, ..Default::default() };
    let mut opt = AdamW::new(model.trainable(), adam);
    let st = match resume_from {
        Some(loaded) => {
            if loaded.state.data_digest != data_digest {
                return Err(Error::config("resume", "the data (or its tokenization) changed since the run started: resume needs the same files"));
            }
            let bad = opt.restore(loaded.optimizer);
            if !bad.is_empty() {
                return Err(Error::input(Location::file(loaded.dir.join("optimizer.safetensors")), format!("optimizer state does not match the model: {}", bad.join(", "))));
            }
            let mut st = loaded.state;
            (opt.step, opt.accumulated) = (st.step, st.accumulated);
            st.schedule.total_steps = plan.total_steps.max(1);
            if st.finished.as_deref().is_some_and(|r| r.starts_with("completed") || r.starts_with("reached max_steps")) && st.epoch < plan.epochs && cfg.max_steps.is_none_or(|m| st.step < m) {
                st.finished = None;
            }
            st
        }
        None => {
            crate::train::job::claim_output(out)?;
            let warmup = (plan.total_steps as f64 * cfg.warmup_ratio).ceil() as usize;
            PretrainState {
                epoch: 0,
                batches_done: 0,
                step: 0,
                micro_step: 0,
                accumulated: 0,
                schedule: Schedule::new(cfg.scheduler, cfg.lr, warmup, plan.total_steps),
                early_stopping: EarlyStopping::new(false, cfg.patience, cfg.min_delta),
                history: Vec::new(),
                best: None,
                steps: Vec::new(),
                pending_loss: 0.0,
                running_loss: 0.0,
                running_masked: 0,
                tokens: 0,
                elapsed_s: 0.0,
                finished: None,
                data_digest,
            }
        }
    };
    rundir::write_json(&out.join(rundir::RUN_CONFIG), "run configuration", cfg)?;
    let log = JsonLog::open(out.join(rundir::METRICS), "metrics", &st.history)?;
    let step_log = JsonLog::open(out.join(rundir::STEPS), "steps", &st.steps)?;
    obs.on_event(&Event::Start { epochs: plan.epochs, total_steps: plan.total_steps, batches_per_epoch: plan.batches_per_epoch, trainable_params: opt.num_params() });
    let offset_s = st.elapsed_s;
    let mut s = Session { cfg, model, tokenizer, opt, masking, st, log, step_log, clock: Instant::now(), offset_s, cancel: opts.cancel };
    // the starting point, measured once: what pretraining has to improve on
    if s.st.history.is_empty() && !corpus.valid.is_empty() {
        let (loss, accuracy, masked) = evaluate(&s.model, &corpus.valid, &s.masking, cfg, obs)?;
        let rec = MlmRecord { split: "valid".into(), epoch: 0.0, step: 0, loss, perplexity: loss.exp(), accuracy: Some(accuracy), masked_tokens: masked, learning_rate: 0.0, elapsed_s: 0.0 };
        s.record(rec, obs)?;
    }
    while s.st.finished.is_none() && s.st.epoch < plan.epochs {
        s.run_epoch(&corpus, obs)?;
    }
    if s.st.finished.is_none() {
        s.st.finished = Some(format!("completed {} epochs", s.st.epoch));
        s.save_checkpoint(obs)?;
    }
    if corpus.valid.is_empty() {
        s.save_best(obs)?;
        s.st.best = s.st.history.iter().rev().find(|r| r.split == "train").cloned();
    }
    let initial = s.st.history.iter().find(|r| r.split == "valid" && r.step == 0).cloned();
    let summary = PretrainSummary {
        epochs: s.st.epoch,
        steps: s.st.step,
        seconds: s.elapsed(),
        tokens: s.st.tokens,
        stop_reason: s.st.finished.clone().unwrap_or_default(),
        best: s.st.best.clone(),
        initial,
        history: s.st.history.clone(),
        sequences: (corpus.train.len(), corpus.valid.len()),
        notes,
    };
    write_summary(out, &summary)?;
    Ok(summary)
}

fn write_summary(out: &Path, s: &PretrainSummary) -> Result<()> {
    let json = serde_json::json!({
        "kind": "pretrain",
        "epochs": s.epochs,
        "steps": s.steps,
        "train_seconds": s.seconds,
        "train_tokens": s.tokens,
        "tokens_per_s": if s.seconds > 0.0 { s.tokens as f64 / s.seconds } else { 0.0 },
        "stop_reason": s.stop_reason,
        "sequences": { "train": s.sequences.0, "valid": s.sequences.1 },
        "initial": s.initial,
        "best": s.best,
        "best_dir": out.join(rundir::BEST),
        "notes": s.notes,
    });
    rundir::write_json(&out.join(rundir::SUMMARY), "summary", &json)
}

/// The best model's folder of a pretraining run.
pub fn best_dir(run_dir: &Path) -> PathBuf {
    run_dir.join(rundir::BEST)
}
