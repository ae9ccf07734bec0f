//! Raw command-line flags (clap derive). Train options double as the keys of a `--config` TOML file.
//! Numeric flags are range-checked while parsing (see `ranges`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};

use crate::ranges::{fraction, integer_at_least, non_negative_number, positive_number};

/// Fine-tune, evaluate and serve BERT-family text classifiers.
#[derive(Debug, Parser)]
#[command(name = "bertfit", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fine-tune a pretrained encoder on labeled text.
    Train(Box<TrainArgs>),
    /// Stratified k-fold cross-validation: one full training run per fold, out-of-fold predictions.
    Cv(Box<CvArgs>),
    /// Score a fine-tuned model (or an ensemble) on a labeled file.
    Eval(EvalArgs),
    /// Predict labels and probabilities for a file or texts.
    Predict(PredictArgs),
    /// Serve a model (or an ensemble) over HTTP: text-embeddings-inference's /predict, with batching.
    Serve(Box<ServeArgs>),
    /// Continue pretraining an encoder on unlabeled text (masked-language modelling), before fine-tuning.
    Pretrain(Box<crate::pretrain::PretrainArgs>),
    /// Show a masked LM's most likely tokens at each [MASK] of a text.
    FillMask(crate::pretrain::FillMaskArgs),
    /// (Re)write RUN_DIR/report.html from a run directory (finished, running or interrupted).
    Report(ReportArgs),
    /// Synthetic training-step / inference benchmark (driven by bench/run.py).
    #[command(hide = true)]
    BenchStep(BenchArgs),
    /// Measure this CPU's f32 FMA peak and the matrix products' rate at the encoder's shapes.
    #[command(hide = true)]
    BenchGemm(BenchGemmArgs),
    /// Check the CUDA backend against the CPU and measure the GPU (binaries built with `--features cuda`).
    #[command(hide = true)]
    GpuSelftest(GpuSelftestArgs),
}

/// Column mapping shared by every command.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnArgs {
    /// Column (CSV/TSV header or JSONL key) holding the text [default: text].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_column: Option<String>,
    /// Column holding the second text of sentence-pair tasks.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_pair_column: Option<String>,
    /// Column holding the label [default: label].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// Column holding an example id, copied to predictions [default: id, when present].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_column: Option<String>,
    /// Multi-label: the label cell lists labels separated by this string, e.g. `|` (JSONL lists need none).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_separator: Option<String>,
    /// Multi-label: one 0/1 column per label, e.g. `toxic,insult,threat` (instead of a label column).
    #[arg(long, value_delimiter = ',')]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_columns: Option<Vec<String>>,
}

/// Long texts at eval and predict time (the model's saved setting unless given).
#[derive(Debug, Clone, Default, Args)]
pub struct WindowArgs {
    /// Texts longer than the model's length: truncate, or chunk into overlapping windows whose scores
    /// are pooled [default: as the model was trained].
    #[arg(long)]
    pub long_text: Option<String>,
    /// With --long-text chunk: tokens shared by consecutive windows [default: the model's, else a quarter of its length].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub stride: Option<usize>,
    /// With --long-text chunk: mean or max of the window scores [default: the model's, else mean].
    #[arg(long)]
    pub chunk_pooling: Option<String>,
}

/// `bertfit train`. Every option can also be set in the `--config` TOML file (same names, with
/// underscores); flags override the file.
#[derive(Debug, Clone, Default, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainArgs {
    /// TOML file with any of these options (flags override it).
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Training data: .csv, .tsv or .jsonl.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<PathBuf>,
    /// Validation data [default: a stratified split of --train].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid: Option<PathBuf>,
    /// Test data, scored with the best model at the end.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test: Option<PathBuf>,
    /// Pretrained model: a Hugging Face model folder or a hub id (org/name[@revision]).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Run directory (best/, checkpoints/, metrics.jsonl, run_config.json, summary.json).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    pub columns: ColumnArgs,
    /// Share of --train held out for validation when --valid is absent [default: 0.1].
    #[arg(long, allow_negative_numbers = true, value_parser = fraction())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_fraction: Option<f64>,
    /// Share of --train held out for testing when --test is absent [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = fraction())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
    /// Training epochs [default: 3].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    /// Examples per batch [default: 32].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// Examples per evaluation batch [default: 64; 256 on a GPU].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_batch_size: Option<usize>,
    /// Peak learning rate [default: 5e-5].
    #[arg(long, allow_negative_numbers = true, value_parser = positive_number())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    /// Truncation length in tokens [default: 128].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(4))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_len: Option<usize>,
    /// Seed for splits, data order, dropout and new weights [default: 42].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<u64>(0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Share of steps spent on linear warmup [default: 0.1].
    #[arg(long, allow_negative_numbers = true, value_parser = fraction())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_ratio: Option<f64>,
    /// AdamW decoupled weight decay (not on biases/LayerNorm) [default: 0.01].
    #[arg(long, allow_negative_numbers = true, value_parser = non_negative_number())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// Batches per optimizer step [default: 1].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_accum: Option<usize>,
    /// Clip gradients to this global L2 norm, 0 disables [default: 1.0].
    #[arg(long, allow_negative_numbers = true, value_parser = non_negative_number())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_grad_norm: Option<f64>,
    /// Learning-rate schedule after warmup: linear, cosine, constant, plateau [default: linear].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    /// What to predict: single_label, multi_label (sigmoid per label), regression (a number)
    /// [default: multi_label when labels are lists, separated or in label columns, else single_label].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
    /// Texts longer than --max-len: truncate (keep the start) or chunk (overlapping windows, every one
    /// scored, the scores pooled per text) [default: truncate].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_text: Option<String>,
    /// With --long-text chunk: tokens shared by consecutive windows [default: a quarter of --max-len].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stride: Option<usize>,
    /// With --long-text chunk: how window scores pool, mean or max [default: mean].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chunk_pooling: Option<String>,
    /// With --long-text chunk: train on the first window of each text, or on all (each with the text's label) [default: first].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_windows: Option<String>,
    /// Regression loss: mse or huber [default: mse].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    /// Multi-label: pick each label's threshold on the validation split (best F1) and save them [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tune_thresholds: Option<bool>,
    /// Metric for early stopping and best model: loss, accuracy, f1_macro, f1_weighted, mcc; multi-label
    /// also f1_micro, f1_samples, hamming_loss, lrap; regression mse, rmse, mae, r2, pearson, spearman
    /// [default: f1_macro; mse for regression].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub early_stopping_metric: Option<String>,
    /// Stop after this many evaluations without improvement [default: never].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patience: Option<usize>,
    /// Smallest improvement that counts [default: 0].
    #[arg(long, allow_negative_numbers = true, value_parser = non_negative_number())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_delta: Option<f64>,
    /// Loss weights: `balanced`, `none`, or LABEL=W,LABEL=W [default: none].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class_weights: Option<String>,
    /// Also evaluate every N optimizer steps.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_every_steps: Option<usize>,
    /// Stop after N optimizer steps (overrides --epochs).
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Hidden layer sizes of the head, e.g. 256,32 [default: none, one linear layer].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_hidden: Option<String>,
    /// Dropout in the head [default: the model's hidden dropout].
    #[arg(long, allow_negative_numbers = true, value_parser = fraction())]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_dropout: Option<f64>,
    /// Activation between head layers: gelu, relu, tanh [default: gelu].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_activation: Option<String>,
    /// Sentence vector: cls (pooler) or mean [default: cls].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooling: Option<String>,
    /// Freeze the whole encoder (train only the head).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_encoder: Option<bool>,
    /// Freeze embeddings and the first N encoder layers.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freeze_layers: Option<usize>,
    /// Batch similar lengths together (still shuffled) [default: true].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_by_length: Option<bool>,
    /// Also write a checkpoint every N optimizer steps (epoch ends always get one).
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub save_every_steps: Option<usize>,
    /// Checkpoints to keep in RUN_DIR/checkpoints (best/ is kept apart) [default: 2].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_checkpoints: Option<usize>,
    /// Matmul precision: f32, or bf16 (bf16 operands, f32 accumulation and master weights) [default: f32].
    #[arg(long, value_name = "f32|bf16")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// Compute threads [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Training path: auto (the engine where it covers the model's family, else the graph), graph (candle
    /// autograd over our fused ops) or fused (the engine: packed tokens, explicit backward) [default: auto].
    /// May change on --resume (the run continues, not bit-identical).
    #[arg(long, value_name = "auto|graph|fused")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// Where to compute: auto (a CUDA GPU when this binary has CUDA support and the machine has one, else
    /// the CPU), cpu, cuda or cuda:N [default: auto]. On a GPU the engine trains, with bf16 precision unless
    /// --precision says otherwise. May change on --resume (the run continues, not bit-identical).
    #[arg(long, value_name = "auto|cpu|cuda[:N]")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Repeat the run once per seed (e.g. 1,2,3) into RUN_DIR/seed-S and report mean ± std.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seeds: Option<String>,
    /// Continue the run in RUN_DIR from its newest valid checkpoint, with its saved configuration.
    /// Only --epochs, --max-steps, --save-every-steps, --keep-checkpoints, --eval-batch-size, --engine,
    /// --device and --threads may change.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = ["overwrite", "config"])]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Also export every report chart as PNG into RUN_DIR/report/.
    #[arg(long)]
    #[serde(skip)]
    pub png: bool,
    /// Replace an existing run in --output.
    #[arg(long)]
    #[serde(skip)]
    pub overwrite: bool,
    /// No progress bars; errors and the final summary only.
    #[arg(long, short)]
    #[serde(skip)]
    pub quiet: bool,
}

/// `bertfit cv`: every `train` option plus the number of folds.
#[derive(Debug, Clone, Args)]
pub struct CvArgs {
    /// Number of folds [default: 5].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(2))]
    pub folds: Option<usize>,
    #[command(flatten)]
    pub train: TrainArgs,
}

/// `bertfit eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Fine-tuned model folder (e.g. RUN_DIR/best); repeat it, or give a cv/seeds run directory, to
    /// evaluate the ensemble (mean of probabilities).
    #[arg(long, required = true)]
    pub model: Vec<String>,
    /// Labeled data: .csv, .tsv or .jsonl.
    #[arg(long)]
    pub data: PathBuf,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Also write an HTML report (confusion matrices, per-class table, ROC/PR, worst errors) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// With --report, also export each chart as PNG beside it.
    #[arg(long, requires = "report")]
    pub png: bool,
    #[command(flatten)]
    pub columns: ColumnArgs,
    #[command(flatten)]
    pub windows: WindowArgs,
    /// Truncation length [default: the length the model was trained with].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(4))]
    pub max_len: Option<usize>,
    /// Examples per batch [default: 64; 256 on a GPU].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub batch_size: Option<usize>,
    /// Compute threads [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0))]
    pub threads: Option<usize>,
    /// Matmul precision of the dense layers: f32 or bf16 [default: f32].
    #[arg(long, value_name = "f32|bf16", value_parser = crate::ranges::precision)]
    pub precision: Option<bertfit::model::kernels::Precision>,
    /// Inference path: auto (the engine where it covers the model), graph (candle over our fused ops) or
    /// fused (the engine, on packed tokens).
    #[arg(long, value_name = "auto|graph|fused", default_value = "auto", value_parser = bertfit::runtime::EnginePath::parse)]
    pub engine: bertfit::runtime::EnginePath,
    /// Where to compute: auto (a CUDA GPU when this binary has CUDA support and the machine has one, else
    /// the CPU), cpu, cuda or cuda:N.
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = bertfit::runtime::Accelerator::parse)]
    pub device: bertfit::runtime::Accelerator,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `bertfit predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Fine-tuned model folder (e.g. RUN_DIR/best); repeat it, or give a cv/seeds run directory, to
    /// average the members' probabilities (an ensemble).
    #[arg(long, required = true)]
    pub model: Vec<String>,
    /// Input data: .csv, .tsv or .jsonl, or `-` for standard input (labels, if present, are ignored).
    /// Read one chunk at a time: any size fits in memory.
    #[arg(long, required_unless_present = "text")]
    pub data: Option<PathBuf>,
    /// Format of --data when its extension does not tell (standard input): csv, tsv or jsonl
    /// [default: --format's, else jsonl].
    #[arg(long, value_name = "csv|tsv|jsonl", value_parser = crate::ranges::data_format)]
    pub data_format: Option<bertfit::data::Format>,
    /// A text to classify (repeatable); results go to standard output.
    #[arg(long, conflicts_with = "data")]
    pub text: Vec<String>,
    /// Output file, or `-` for standard output [default: standard output]. A file is written through
    /// FILE.partial and FILE.manifest.json: an interrupted run started again continues where it stopped.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// Output rows: csv or jsonl [default: from --output's extension, else csv].
    #[arg(long, value_name = "csv|jsonl", value_parser = bertfit::infer::RowFormat::parse)]
    pub format: Option<bertfit::infer::RowFormat>,
    /// Predict one slice of the input: I/N (shard I of N, from 0), N (the index from
    /// JOB_COMPLETION_INDEX or RANK), or auto (RANK/WORLD_SIZE of torchrun). The N outputs, in order,
    /// are the unsharded output (CSV: each with its header).
    #[arg(long, value_name = "I/N|N|auto")]
    pub shard: Option<String>,
    /// Records per chunk: read, tokenized and scored together (sharded and resumed runs must use the
    /// same value).
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 4096)]
    pub chunk_rows: usize,
    /// Discard an interrupted --output file of another job (or this one) and start over.
    #[arg(long)]
    pub restart: bool,
    #[command(flatten)]
    pub columns: ColumnArgs,
    #[command(flatten)]
    pub windows: WindowArgs,
    /// Truncation length [default: the length the model was trained with].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(4))]
    pub max_len: Option<usize>,
    /// Examples per batch [default: 64; 256 on a GPU].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub batch_size: Option<usize>,
    /// Compute threads [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0))]
    pub threads: Option<usize>,
    /// Matmul precision of the dense layers: f32 or bf16 [default: f32].
    #[arg(long, value_name = "f32|bf16", value_parser = crate::ranges::precision)]
    pub precision: Option<bertfit::model::kernels::Precision>,
    /// Inference path: auto (the engine where it covers the model), graph (candle over our fused ops) or
    /// fused (the engine, on packed tokens).
    #[arg(long, value_name = "auto|graph|fused", default_value = "auto", value_parser = bertfit::runtime::EnginePath::parse)]
    pub engine: bertfit::runtime::EnginePath,
    /// Where to compute: auto (a CUDA GPU when this binary has CUDA support and the machine has one, else
    /// the CPU), cpu, cuda or cuda:N.
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = bertfit::runtime::Accelerator::parse)]
    pub device: bertfit::runtime::Accelerator,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
}

/// `bertfit serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Fine-tuned model folder (e.g. RUN_DIR/best) or hub id; repeat it, or give a cv/seeds run
    /// directory, to serve the members' averaged probabilities (an ensemble).
    #[arg(long, required = true)]
    pub model: Vec<String>,
    /// Address to listen on (0.0.0.0 for every interface, as in a container).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Port to listen on (0: any free port; the one chosen is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Token budget of one model batch: rows × padded length.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 16384)]
    pub max_batch_tokens: usize,
    /// Rows of one model batch [default: only the token budget bounds them].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub max_batch_requests: Option<usize>,
    /// Requests admitted at once; more are answered 429 at once, with Retry-After.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 512)]
    pub max_concurrent_requests: usize,
    /// Inputs allowed in one request; more are answered 413.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 32)]
    pub max_client_batch_size: usize,
    /// Milliseconds a request may wait in the queue; later it is answered 503 instead of late.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<u64>(1), default_value_t = 30000)]
    pub max_queue_ms: u64,
    /// Largest request body in bytes; larger ones are answered 413.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(64), default_value_t = 2 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Cut texts longer than the model's length when a request does not say ("truncate"); without it
    /// they are refused (422), as in text-embeddings-inference.
    #[arg(long)]
    pub auto_truncate: bool,
    /// Requests tokenized at once, each on a worker thread.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 2)]
    pub tokenization_workers: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health [default: the BERTFIT_API_KEY
    /// environment variable; none].
    #[arg(long, env = "BERTFIT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Seconds a shutdown (SIGTERM, Ctrl-C) waits for admitted requests before exiting.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<u64>(0), default_value_t = 30)]
    pub grace_secs: u64,
    /// Truncation length [default: the length the model was trained with].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(4))]
    pub max_len: Option<usize>,
    /// Compute threads of the model [default: all cores].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0))]
    pub threads: Option<usize>,
    /// Matmul precision of the dense layers: f32 or bf16 [default: the model's].
    #[arg(long, value_name = "f32|bf16", value_parser = crate::ranges::precision)]
    pub precision: Option<bertfit::model::kernels::Precision>,
    /// Inference path: auto (the engine where it covers the model), graph or fused.
    #[arg(long, value_name = "auto|graph|fused", default_value = "auto", value_parser = bertfit::runtime::EnginePath::parse)]
    pub engine: bertfit::runtime::EnginePath,
    /// Where to compute: auto, cpu, cuda or cuda:N.
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "auto", value_parser = bertfit::runtime::Accelerator::parse)]
    pub device: bertfit::runtime::Accelerator,
}


/// `bertfit bench-step SIZE MODE`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// S (MiniLM-L12-H384 shape), B (bert-base), D (distilbert-base), M (ModernBERT-base) or V (deberta-v3-base).
    pub size: String,
    /// train or infer.
    pub mode: String,
    /// Timed steps after 2 warm-up steps.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 10)]
    pub steps: usize,
    /// Compute threads.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 2)]
    pub threads: usize,
    /// Matmul precision: f32 or bf16.
    #[arg(long, default_value = "f32", value_parser = crate::ranges::precision)]
    pub precision: bertfit::model::kernels::Precision,
    /// auto (the engine), graph (candle autograd over our fused ops) or fused (the engine: explicit
    /// backward, packed tokens).
    #[arg(long, default_value = "auto", value_parser = bertfit::runtime::EnginePath::parse)]
    pub engine: bertfit::runtime::EnginePath,
    /// cpu, cuda or cuda:N (the engine on a GPU), or auto (a GPU when this binary can use one).
    #[arg(long, value_name = "auto|cpu|cuda[:N]", default_value = "cpu", value_parser = bertfit::runtime::Accelerator::parse)]
    pub device: bertfit::runtime::Accelerator,
    /// With --engine fused: print where the timed steps' time went, per op and matrix-product shape.
    #[arg(long)]
    pub profile: bool,
    /// Rows per batch [default: 32 for train, 64 for infer].
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1))]
    pub batch: Option<usize>,
    /// Padded sequence length (the longest row; with --layout rt, the cap).
    #[arg(long, allow_negative_numbers = true, value_parser = clap::builder::RangedI64ValueParser::<usize>::new().range(17..=512), default_value_t = 64)]
    pub seq: usize,
    /// Row lengths: anchor (the first half of the rows 16 tokens shorter, as the reference hf_step.py),
    /// full (no padding) or rt (lengths drawn from --lengths, as bench/hf_cases.py draws them).
    #[arg(long, default_value = "anchor", value_parser = ["anchor", "full", "rt"])]
    pub layout: String,
    /// With --layout rt: a JSON list of token counts to draw row lengths from.
    #[arg(long, required_if_eq("layout", "rt"))]
    pub lengths: Option<PathBuf>,
}

/// `bertfit bench-gemm`.
#[derive(Debug, Args)]
pub struct BenchGemmArgs {
    /// S (MiniLM-L12-H384 shape) or B (bert-base shape).
    #[arg(default_value = "S")]
    pub size: String,
    /// Rows of the activations (tokens in a batch).
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 1792)]
    pub tokens: usize,
    /// Compute threads.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 2)]
    pub threads: usize,
}

/// `bertfit gpu-selftest`.
#[derive(Debug, Args)]
pub struct GpuSelftestArgs {
    /// CUDA device ordinal.
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(0), default_value_t = 0)]
    pub device: usize,
    /// Tokens per batch of the matrix-product shapes (128 x 128 = 16384).
    #[arg(long, allow_negative_numbers = true, default_value_t = 16384, value_parser = clap::builder::RangedI64ValueParser::<u64>::new().range(1..=1 << 20))]
    pub tokens: u64,
    /// Time only cuBLASLt's first-choice algorithm (skip timing every algorithm it offers).
    #[arg(long)]
    pub first_algorithm_only: bool,
    /// Check the engine on the GPU instead: train a tiny and a bert-base-shaped random model on the GPU and
    /// on the CPU side by side (f32 and bf16), then time train and inference steps at the PyTorch
    /// baseline's batches and profile one step.
    #[arg(long)]
    pub engine: bool,
    /// With --engine: timed steps per configuration (after 3 warm-up steps).
    #[arg(long, allow_negative_numbers = true, value_parser = integer_at_least::<usize>(1), default_value_t = 10)]
    pub steps: usize,
    /// With --engine: the comparisons only, no timings.
    #[arg(long)]
    pub no_timings: bool,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `bertfit report RUN_DIR`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (of train, cv or --seeds).
    pub run_dir: PathBuf,
    /// Also export each chart as PNG into RUN_DIR/report/.
    #[arg(long)]
    pub png: bool,
}
