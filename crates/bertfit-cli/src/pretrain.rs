//! `bertfit pretrain` (masked-LM training on unlabeled text) and `bertfit fill-mask`: their flags and
//! how they run.

use std::path::PathBuf;

use anyhow::Result;
use bertfit::pretrain::{self, DocumentSeparator, Packing, PretrainConfig, PretrainOptions};
use bertfit::report::ReportOptions;
use clap::Args;

use crate::progress::Progress;
use crate::ranges::{fraction, integer_at_least, non_negative_number, positive_number};

/// `bertfit pretrain`.
#[derive(Debug, Clone, Default, Args)]
pub struct PretrainArgs {
    /// Unlabeled text: .txt (one document per line), .csv, .tsv or .jsonl (the text column; labels are
    /// ignored, so a training file works as it is). Repeatable.
    #[arg(long, num_args = 1.., required_unless_present = "resume")]
    pub data: Vec<PathBuf>,
    /// Held-out text for validation [default: --valid-fraction of the documents].
    #[arg(long)]
    pub valid: Option<PathBuf>,
    /// Model to continue pretraining: a Hugging Face model folder or a hub id (org/name[@revision]).
    #[arg(long, required_unless_present = "resume")]
    pub model: Option<String>,
    /// Run directory (best/, checkpoints/, metrics.jsonl, report.html).
    #[arg(long, required_unless_present = "resume")]
    pub output: Option<PathBuf>,
    /// Column (CSV/TSV header or JSONL key) holding the text [default: text].
    #[arg(long)]
    pub text_column: Option<String>,
    /// How .txt files divide into documents: line, or blank-line (paragraphs) [default: line].
    #[arg(long, value_name = "line|blank-line")]
    pub document_separator: Option<String>,
    /// Sequence length in tokens [default: 128].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(4))]
    pub max_len: Option<usize>,
    /// Share of tokens selected for prediction (of them 80 % masked, 10 % random, 10 % kept) [default: 0.15].
    #[arg(long, allow_negative_numbers = true, value_parser = fraction())]
    pub mlm_probability: Option<f64>,
    /// Select whole words: every piece of a selected word is masked [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub whole_word_mask: Option<bool>,
    /// Concatenate documents and cut full-length sequences (as run_mlm.py does), or (false) one
    /// sequence per document, truncated [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub group_texts: Option<bool>,
    /// Share of documents held out for validation when --valid is absent; 0 for none [default: 0.05].
    #[arg(long, allow_negative_numbers = true, value_parser = fraction())]
    pub valid_fraction: Option<f64>,
    /// Epochs [default: 3].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub epochs: Option<usize>,
    /// Stop after N optimizer steps (overrides --epochs).
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub max_steps: Option<usize>,
    /// Sequences per batch [default: 32].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub batch_size: Option<usize>,
    /// Sequences per evaluation batch [default: 64].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub eval_batch_size: Option<usize>,
    /// Peak learning rate [default: 5e-5].
    #[arg(long, allow_negative_numbers = true, value_parser = positive_number())]
    pub lr: Option<f64>,
    /// Train only the masked-LM head for the first N optimizer steps, the encoder frozen: for checkpoints
    /// without a head (sentence encoders), so a random head does not pull the encoder around [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0))]
    pub head_warmup_steps: Option<usize>,
    /// Share of steps spent on linear warmup [default: 0.06].
    #[arg(long, allow_negative_numbers = true, value_parser = fraction())]
    pub warmup_ratio: Option<f64>,
    /// AdamW decoupled weight decay (not on biases/LayerNorm) [default: 0.01].
    #[arg(long, allow_negative_numbers = true, value_parser = non_negative_number())]
    pub weight_decay: Option<f64>,
    /// Batches per optimizer step [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub grad_accum: Option<usize>,
    /// Clip gradients to this global L2 norm, 0 disables [default: 1.0].
    #[arg(long, allow_negative_numbers = true, value_parser = non_negative_number())]
    pub max_grad_norm: Option<f64>,
    /// Learning-rate schedule after warmup: linear, cosine, constant, plateau [default: linear].
    #[arg(long)]
    pub scheduler: Option<String>,
    /// Seed for the validation split, data order, masks, dropout and a new head [default: 42].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<u64>(0))]
    pub seed: Option<u64>,
    /// Stop after this many evaluations without a lower validation loss [default: never].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub patience: Option<usize>,
    /// Smallest decrease of the validation loss that counts [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = non_negative_number())]
    pub min_delta: Option<f64>,
    /// Also evaluate every N optimizer steps.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub eval_every_steps: Option<usize>,
    /// Also write a checkpoint every N optimizer steps (epoch ends always get one).
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub save_every_steps: Option<usize>,
    /// Checkpoints to keep in RUN_DIR/checkpoints [default: 2].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub keep_checkpoints: Option<usize>,
    /// Matmul precision: f32, or bf16 (bf16 operands, f32 accumulation and master weights) [default: f32].
    #[arg(long, value_name = "f32|bf16", value_parser = crate::ranges::precision)]
    pub precision: Option<bertfit::model::kernels::Precision>,
    /// Compute threads [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0))]
    pub threads: Option<usize>,
    /// Continue the run in RUN_DIR from its newest valid checkpoint, with its saved configuration. Only
    /// --epochs, --max-steps, --save-every-steps, --keep-checkpoints, --eval-batch-size and --threads
    /// may change.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["overwrite", "data", "model", "output"])]
    pub resume: Option<PathBuf>,
    /// Also export every report chart as PNG into RUN_DIR/report/.
    #[arg(long)]
    pub png: bool,
    /// Replace an existing run in --output.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress bars; errors and the final summary only.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `bertfit fill-mask`.
#[derive(Debug, Args)]
pub struct FillMaskArgs {
    /// Masked-LM folder (e.g. a pretraining run's best/, or any *ForMaskedLM checkpoint).
    #[arg(long)]
    pub model: String,
    /// Text with one or more [MASK] (or the tokenizer's own mask token, e.g. <mask>). Repeatable.
    #[arg(long, required = true)]
    pub text: Vec<String>,
    /// Candidates per mask [default: 5].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 5)]
    pub top_k: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Compute threads [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0))]
    pub threads: Option<usize>,
}

/// The run's configuration: flags over the defaults, or (with `--resume`) the saved configuration with
/// the few settings that may change.
fn resolve(a: &PretrainArgs) -> Result<PretrainConfig> {
    if let Some(dir) = &a.resume {
        let changed: Vec<&str> = [
            ("--valid", a.valid.is_some()),
            ("--text-column", a.text_column.is_some()),
            ("--document-separator", a.document_separator.is_some()),
            ("--max-len", a.max_len.is_some()),
            ("--mlm-probability", a.mlm_probability.is_some()),
            ("--whole-word-mask", a.whole_word_mask.is_some()),
            ("--group-texts", a.group_texts.is_some()),
            ("--valid-fraction", a.valid_fraction.is_some()),
            ("--batch-size", a.batch_size.is_some()),
            ("--lr", a.lr.is_some()),
            ("--head-warmup-steps", a.head_warmup_steps.is_some()),
            ("--warmup-ratio", a.warmup_ratio.is_some()),
            ("--weight-decay", a.weight_decay.is_some()),
            ("--grad-accum", a.grad_accum.is_some()),
            ("--max-grad-norm", a.max_grad_norm.is_some()),
            ("--scheduler", a.scheduler.is_some()),
            ("--seed", a.seed.is_some()),
            ("--patience", a.patience.is_some()),
            ("--min-delta", a.min_delta.is_some()),
            ("--eval-every-steps", a.eval_every_steps.is_some()),
            ("--precision", a.precision.is_some()),
        ]
        .into_iter()
        .filter_map(|(flag, given)| given.then_some(flag))
        .collect();
        if !changed.is_empty() {
            return Err(bertfit::Error::config(
                "resume",
                format!("{} cannot change on --resume (the run continues with its saved configuration)", changed.join(", ")),
            )
            .into());
        }
        let mut cfg = pretrain::run::saved_config(dir)?;
        cfg.output = dir.clone();
        cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
        cfg.max_steps = a.max_steps.or(cfg.max_steps);
        cfg.save_every_steps = a.save_every_steps.or(cfg.save_every_steps);
        cfg.keep_checkpoints = a.keep_checkpoints.unwrap_or(cfg.keep_checkpoints);
        cfg.eval_batch_size = a.eval_batch_size.unwrap_or(cfg.eval_batch_size);
        return Ok(cfg);
    }
    let (Some(model), Some(output)) = (a.model.clone(), a.output.clone()) else {
        return Err(bertfit::Error::config("model", "--data, --model and --output are required (or --resume RUN_DIR)").into());
    };
    let mut cfg = PretrainConfig::new(a.data.clone(), model, output);
    cfg.valid = a.valid.clone();
    if let Some(c) = &a.text_column {
        cfg.text_column = c.clone();
    }
    if let Some(s) = &a.document_separator {
        cfg.document_separator = DocumentSeparator::parse(s)?;
    }
    if let Some(s) = &a.scheduler {
        cfg.scheduler = bertfit::train::schedule::ScheduleKind::parse(s)?;
    }
    if a.group_texts == Some(false) {
        cfg.packing = Packing::LineByLine;
    }
    cfg.max_len = a.max_len.unwrap_or(cfg.max_len);
    cfg.mlm_probability = a.mlm_probability.unwrap_or(cfg.mlm_probability);
    cfg.whole_word_mask = a.whole_word_mask.unwrap_or(cfg.whole_word_mask);
    cfg.valid_fraction = a.valid_fraction.unwrap_or(cfg.valid_fraction);
    cfg.epochs = a.epochs.unwrap_or(cfg.epochs);
    cfg.max_steps = a.max_steps;
    cfg.batch_size = a.batch_size.unwrap_or(cfg.batch_size);
    cfg.eval_batch_size = a.eval_batch_size.unwrap_or(cfg.eval_batch_size);
    cfg.lr = a.lr.unwrap_or(cfg.lr);
    cfg.head_warmup_steps = a.head_warmup_steps.unwrap_or(cfg.head_warmup_steps);
    cfg.warmup_ratio = a.warmup_ratio.unwrap_or(cfg.warmup_ratio);
    cfg.weight_decay = a.weight_decay.unwrap_or(cfg.weight_decay);
    cfg.grad_accum = a.grad_accum.unwrap_or(cfg.grad_accum);
    cfg.max_grad_norm = a.max_grad_norm.unwrap_or(cfg.max_grad_norm);
    cfg.seed = a.seed.unwrap_or(cfg.seed);
    cfg.patience = a.patience;
    cfg.min_delta = a.min_delta.unwrap_or(cfg.min_delta);
    cfg.eval_every_steps = a.eval_every_steps;
    cfg.save_every_steps = a.save_every_steps;
    cfg.keep_checkpoints = a.keep_checkpoints.unwrap_or(cfg.keep_checkpoints);
    cfg.precision = a.precision.unwrap_or(cfg.precision);
    cfg.validate()?;
    Ok(cfg)
}

/// Runs `bertfit pretrain`.
pub fn run(a: &PretrainArgs) -> Result<()> {
    let cfg = resolve(a)?;
    let runtime = crate::commands::runtime(a.threads)?;
    crate::commands::install_signal_handler();
    let report_opts = ReportOptions { png: a.png };
    let mut progress = Progress::new(a.quiet).with_report(&cfg.output, report_opts);
    let opts = PretrainOptions { overwrite: a.overwrite, resume: a.resume.is_some(), cancel: Some(&crate::commands::CANCEL), runtime };
    let summary = pretrain::run(&cfg, opts, &mut progress).map_err(|e| {
        if matches!(e, bertfit::Error::Interrupted) {
            eprintln!("interrupted: checkpoint saved under {}", cfg.output.display());
            eprintln!("resume with: bertfit pretrain --resume {}", cfg.output.display());
        }
        anyhow::Error::from(e)
    })?;
    let report = bertfit::report::write_run_report(&cfg.output, &report_opts)?;
    eprintln!(
        "done: {} epoch(s), {} steps in {:.0}s ({:.0} tokens/s); {}",
        summary.epochs,
        summary.steps,
        summary.seconds,
        summary.tokens as f64 / summary.seconds.max(1e-9),
        summary.stop_reason
    );
    if let (Some(first), Some(best)) = (&summary.initial, &summary.best) {
        eprintln!(
            "validation masked-LM loss {:.4} → {:.4} (perplexity {:.2} → {:.2}, masked-token accuracy {:.4} → {:.4})",
            first.loss,
            best.loss,
            first.perplexity,
            best.perplexity,
            first.accuracy.unwrap_or(f64::NAN),
            best.accuracy.unwrap_or(f64::NAN)
        );
    }
    eprintln!("report: {}", report.display());
    let best = pretrain::run::best_dir(&cfg.output);
    eprintln!("masked LM saved to {}; fine-tune it with: bertfit train --model {} ...", best.display(), best.display());
    Ok(())
}

/// Runs `bertfit fill-mask`.
pub fn fill_mask(a: &FillMaskArgs) -> Result<()> {
    let runtime = crate::commands::runtime(a.threads)?;
    let folder = bertfit::model::ModelFolder::resolve(&a.model, None)?;
    let model = bertfit::model::MaskedLm::load(&folder, runtime, 0)?;
    if model.head_initialised {
        return Err(bertfit::Error::input(
            bertfit::Location::file(&folder.weights.path),
            format!("no masked-LM head (`{}`): this is not a masked LM; pretrain it first with bertfit pretrain", model.head_names().dense),
        )
        .into());
    }
    let tokenizer = bertfit::tokenize::TextTokenizer::for_folder(&folder, 512.min(model.config.max_position_embeddings))?;
    let filled = pretrain::fill_mask::fill_mask(&model, &tokenizer, &a.text, a.top_k)?;
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    for f in &filled {
        if a.json {
            writeln!(out, "{}", serde_json::to_string(f)?)?;
        } else {
            writeln!(out, "{}  (mask {})", f.text, f.mask + 1)?;
            for c in &f.candidates {
                writeln!(out, "  {:<20} {:.4}", c.token, c.probability)?;
            }
        }
    }
    Ok(())
}
