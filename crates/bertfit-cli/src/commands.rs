//! The subcommands: train, eval, predict (pretrain and fill-mask live in `pretrain`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use bertfit::data;
use bertfit::infer::Ensemble;
use bertfit::metrics::{classification_report, confusion_table};
use bertfit::report::ReportOptions;
use bertfit::runtime::Runtime;
use bertfit::train::{self, RunOptions};

use crate::args::{Cli, Command, EvalArgs, PredictArgs, TrainArgs};
use crate::progress::Progress;
use crate::settings;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train(&a, None),
        Command::Cv(a) => train(&a.train, Some(a.folds)),
        Command::Eval(a) => eval(&a),
        Command::Predict(a) => predict(&a),
        Command::Serve(a) => crate::serve::run(&a),
        Command::Pretrain(a) => crate::pretrain::run(&a),
        Command::FillMask(a) => crate::pretrain::fill_mask(&a),
        Command::Report(a) => {
            let path = bertfit::report::write_run_report(&a.run_dir, &ReportOptions { png: a.png })?;
            println!("{}", path.display());
            Ok(())
        }
        Command::BenchStep(a) => {
            bertfit::engine::device::check_device(a.device)?;
            crate::bench::run(&a, &runtime(Some(a.threads))?.with_precision(a.precision).with_engine(a.engine).with_accelerator(a.device))
        }
        Command::BenchGemm(a) => crate::bench::gemm_roofline(&a),
        Command::GpuSelftest(a) => crate::gpu::selftest(&a),
    }
}

/// The runtime of a command: the CPU, a pool of `threads` workers (all cores when absent), our fused
/// kernels unless `BERTFIT_FUSED=0` (read here, once, to measure what the kernels bring).
pub(crate) fn runtime(threads: Option<usize>) -> Result<Runtime> {
    let fused = std::env::var("BERTFIT_FUSED").map_or(true, |v| v != "0");
    Ok(Runtime::cpu().with_threads(threads.unwrap_or(0))?.with_fused(fused))
}

/// Examples per inference batch: as given, else 64 on the CPU and 256 on a GPU (where small batches
/// leave it idle).
fn inference_batch(given: Option<usize>, device: bertfit::runtime::Accelerator) -> usize {
    given.unwrap_or(if device.resolve().is_cuda() { 256 } else { 64 })
}

/// A progress bar over inference batches, with rate and ETA.
fn batch_bar(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    let template = format!("{what} [{{bar:30}}] {{pos}}/{{len}} batches {{per_sec}} eta {{eta}}");
    if let Ok(style) = indicatif::ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

pub(crate) static CANCEL: AtomicBool = AtomicBool::new(false);

/// SIGINT/SIGTERM: the first asks training to stop after the current step and checkpoint; a second one
/// exits at once (checkpoint writes are atomic, so nothing saved is lost).
pub(crate) fn install_signal_handler() {
    let installed = ctrlc::set_handler(|| {
        if CANCEL.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after the current step (signal again to quit now)…");
    });
    if let Err(e) = installed {
        eprintln!("warning: cannot handle Ctrl-C: {e}");
    }
}

/// How often plain progress lines (standard error not a terminal) are written at most, when the
/// environment overrides the 30 s default: `BERTFIT_PROGRESS_INTERVAL_MS`, a hidden setting for tests
/// and impatient logs, read once as a training command starts.
fn progress_line_interval() -> Option<std::time::Duration> {
    const VAR: &str = "BERTFIT_PROGRESS_INTERVAL_MS";
    let value = std::env::var(VAR).ok()?;
    match value.trim().parse::<u64>() {
        Ok(ms) => Some(std::time::Duration::from_millis(ms)),
        Err(_) => {
            eprintln!("warning: ignoring {VAR}={value:?} (expected milliseconds, e.g. 1000)");
            None
        }
    }
}

/// `train` (folds = None) and `cv` (folds = Some), each optionally repeated over `--seeds`.
fn train(flags: &TrainArgs, folds: Option<Option<usize>>) -> Result<()> {
    let (cfg, resume, seeds_flag, threads) = match &flags.resume {
        Some(dir) => (settings::resolve_resume(dir, flags)?, true, flags.seeds.clone(), flags.threads),
        None => {
            let merged = settings::merge(flags)?;
            (settings::resolve(&merged, None)?, false, merged.seeds.clone(), merged.threads)
        }
    };
    let rt = runtime(threads)?;
    let multi = settings::multi_run(&cfg.output, resume, seeds_flag.as_deref(), folds)?;
    install_signal_handler();
    let report_opts = ReportOptions { png: flags.png };
    let mut progress = Progress::new(flags.quiet).with_report(&cfg.output, report_opts);
    if let Some(interval) = progress_line_interval() {
        progress = progress.with_line_interval(interval);
    }
    let opts = RunOptions { overwrite: flags.overwrite, resume, cancel: Some(&CANCEL), runtime: Some(&rt) };
    let command = if folds.is_some() { "cv" } else { "train" };
    let interrupted = |e: bertfit::Error| -> anyhow::Error {
        if matches!(e, bertfit::Error::Interrupted) {
            eprintln!("interrupted: checkpoint saved under {}", cfg.output.display());
            eprintln!("resume with: bertfit {command} --resume {}", cfg.output.display());
        }
        e.into()
    };
    if let Some((seeds, folds)) = &multi {
        let summary = match (seeds, folds) {
            (Some(seeds), folds) => train::cv::repeat_seeds(&cfg, seeds, *folds, opts, &mut progress),
            (None, Some(k)) => train::cv::cross_validate(&cfg, *k, opts, &mut progress),
            (None, None) => unreachable!("multi_run returns a plan only for seeds or folds"),
        }
        .map_err(interrupted)?;
        let report = bertfit::report::write_run_report(&cfg.output, &report_opts)?;
        println!("{}", summary.table);
        eprintln!("report: {}", report.display());
        if let Some(oof) = &summary.oof {
            println!("Out-of-fold predictions ({}):\n{}", cfg.output.join(bertfit::rundir::OOF).display(), classification_report(oof));
        }
        return Ok(());
    }
    let summary = train::run(&cfg, opts, &mut progress).map_err(interrupted)?;
    let out = cfg.output.display();
    eprintln!(
        "done: {} epoch(s), {} steps in {:.0}s ({:.0} tokens/s); {}",
        summary.epochs, summary.steps, summary.train_seconds, summary.train_tokens_per_s, summary.stop_reason
    );
    if let Some(best) = &summary.best {
        // the metric as the run resolved it (each problem type has its own default)
        let metric = summary.metric.unwrap_or(cfg.train.early_stopping_metric);
        eprintln!("best model ({} {:.4} at epoch {:.2}) saved to {out}/best", metric, metric.value(&best.view()), best.epoch);
    }
    eprintln!("\n{}", train::epoch_table(&summary.history, summary.best.as_ref()));
    let report = bertfit::report::write_run_report(&cfg.output, &report_opts)?;
    eprintln!("report: {}", report.display());
    let final_scores = summary.test.as_ref().or(summary.best.as_ref());
    if let Some(rec) = final_scores {
        eprintln!("\n{} set, best model:\n{}", rec.split, scores_text(&rec.scores, rec.multi_label.as_ref(), rec.regression.as_ref()));
    }
    Ok(())
}

/// The text report of an evaluation of any problem type.
fn scores_text(s: &bertfit::metrics::Scores, multi: Option<&bertfit::metrics::MultiLabelScores>, regression: Option<&bertfit::metrics::RegressionScores>) -> String {
    match (multi, regression) {
        (Some(m), _) => bertfit::metrics::multi_label_report(m, &s.labels),
        (_, Some(r)) => bertfit::metrics::regression_report(r),
        _ => format!("{}\n{}", classification_report(s), confusion_table(s)),
    }
}

/// Loads the models of `eval`/`predict`, saying what loading adjusted.
/// What `--device` means for these models: `auto` keeps families the GPU engine does not cover (ModernBERT,
/// DeBERTa) on the CPU, saying so.
pub(crate) fn inference_device(models: &[String], device: bertfit::runtime::Accelerator) -> bertfit::runtime::Accelerator {
    for model in models {
        if let (cpu, Some(note)) = bertfit::engine::device::auto_for_model(device, model) {
            eprintln!("note: {note}");
            return cpu;
        }
    }
    device
}

pub(crate) fn load_ensemble(models: &[String], threads: Option<usize>, precision: Option<bertfit::runtime::Precision>, max_len: Option<usize>, engine: bertfit::runtime::EnginePath, device: bertfit::runtime::Accelerator) -> Result<Ensemble> {
    bertfit::engine::device::check_device(device)?;
    let ensemble = Ensemble::load(models, &runtime(threads)?.with_engine(engine).with_accelerator(device), precision, max_len)?;
    for note in ensemble.notes() {
        eprintln!("warning: {note}");
    }
    Ok(ensemble)
}

/// `--long-text`, `--stride`, `--chunk-pooling` of eval/predict over the models' saved settings (the
/// default stride: a quarter of the first member's length).
fn apply_windows(ensemble: &mut Ensemble, w: &crate::args::WindowArgs) -> Result<()> {
    let max_len = ensemble.members().first().map_or(bertfit::infer::DEFAULT_MAX_LEN, |m| m.tokenizer().max_len());
    if let Some(choice) = settings::chunking(w, max_len)? {
        ensemble.set_chunking(choice);
    }
    Ok(())
}

fn eval(a: &EvalArgs) -> Result<()> {
    let device = inference_device(&a.model, a.device);
    let mut predictor = load_ensemble(&a.model, a.threads, a.precision, a.max_len, a.engine, device)?;
    apply_windows(&mut predictor, &a.windows)?;
    let data = data::read_dataset(&a.data, &settings::columns(&a.columns, true), true)?;
    let bar = (!a.quiet).then(|| batch_bar("eval"));
    let evaluation = predictor.evaluate(&data, inference_batch(a.batch_size, device), &mut |done, total| {
        if let Some(b) = &bar {
            b.set_length(total as u64);
            b.set_position(done as u64);
        }
    })?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let s = &evaluation.scores;
    if a.report.is_some() && predictor.problem() != bertfit::data::ProblemType::SingleLabel {
        anyhow::bail!(bertfit::Error::config("report", format!("the evaluation report covers single-label models so far; this model is {}", predictor.problem().name())));
    }
    if let Some(path) = &a.report {
        let texts: Vec<String> = data.examples.iter().map(|e| e.text.clone()).collect();
        let title = format!("Evaluation: {}", a.data.display());
        bertfit::report::write_eval_report(path, &title, predictor.labels(), &evaluation.gold, &evaluation.probs, &texts, &ReportOptions { png: a.png })?;
        eprintln!("report: {}", path.display());
    }
    let mut stdout = std::io::stdout().lock();
    if a.json {
        let per_class: serde_json::Map<String, serde_json::Value> = s
            .per_class
            .iter()
            .map(|c| {
                (c.label.clone(), serde_json::json!({"precision": c.precision, "recall": c.recall, "f1": c.f1, "support": c.support}))
            })
            .collect();
        let obj = serde_json::json!({
            "examples": data.len(),
            "loss": evaluation.loss,
            "accuracy": s.accuracy,
            "f1_macro": s.f1_macro,
            "precision_macro": s.precision_macro,
            "recall_macro": s.recall_macro,
            "f1_weighted": s.f1_weighted,
            "precision_weighted": s.precision_weighted,
            "recall_weighted": s.recall_weighted,
            "mcc": s.mcc,
            "confusion_matrix": s.confusion,
            "labels": s.labels,
            "per_class": per_class,
            "problem_type": predictor.problem().name(),
            "multi_label": evaluation.multi_label,
            "regression": evaluation.regression,
        });
        writeln!(stdout, "{obj}")?;
    } else {
        writeln!(stdout, "{} examples, loss {:.4}\n", data.len(), evaluation.loss)?;
        writeln!(stdout, "{}", scores_text(s, evaluation.multi_label.as_ref(), evaluation.regression.as_ref()))?;
    }
    Ok(())
}

fn predict(a: &PredictArgs) -> Result<()> {
    let device = inference_device(&a.model, a.device);
    let mut predictor = load_ensemble(&a.model, a.threads, a.precision, a.max_len, a.engine, device)?;
    apply_windows(&mut predictor, &a.windows)?;
    let labels = predictor.labels().to_vec();
    if !a.text.is_empty() {
        let texts: Vec<(&str, Option<&str>)> = a.text.iter().map(|t| (t.as_str(), None)).collect();
        let probs = predictor.predict_texts(&texts, inference_batch(a.batch_size, device))?;
        let thresholds = predictor.thresholds();
        let separator = a.columns.label_separator.as_deref().unwrap_or(bertfit::infer::SET_SEPARATOR);
        let readout = bertfit::infer::Readout::of(predictor.problem(), thresholds.as_deref(), separator);
        let mut stdout = std::io::stdout().lock();
        for (t, p) in a.text.iter().zip(&probs) {
            let detail: Vec<String> = labels.iter().zip(p).map(|(l, x)| format!("{l}={x:.4}")).collect();
            writeln!(stdout, "{}\t{}\t{}", readout.pred(p, &labels), detail.join(" "), t)?;
        }
        return Ok(());
    }
    let Some(path) = &a.data else { anyhow::bail!(bertfit::Error::config("data", "--data or --text is required")) };
    predict_stream(a, path, &predictor, device)
}

/// `predict --data`: the input read one chunk at a time, rows written as each chunk is scored, to
/// standard output or to a resumable file.
fn predict_stream(a: &PredictArgs, path: &std::path::Path, ensemble: &Ensemble, device: bertfit::runtime::Accelerator) -> Result<()> {
    use bertfit::data::{Format, Records, Source};
    use bertfit::infer::{predict_records, shard_range, Encoders, PredictJob, ResumableOutput, RowFormat, Rows, Session};

    let source = Source::from_arg(path);
    let target = a.output.as_deref().filter(|p| *p != std::path::Path::new("-"));
    let format = a.format.or(target.map(RowFormat::for_path)).unwrap_or(RowFormat::Csv);
    let data_format = a.data_format.or(match (&source, a.format) {
        (Source::Stdin, Some(RowFormat::Csv)) => Some(Format::Csv),
        (Source::Stdin, _) => Some(Format::JsonLines),
        (Source::File(_), _) => None,
    });
    let cols = settings::columns(&a.columns, false);
    let chunk = a.chunk_rows;
    let range = match &a.shard {
        None => 0..u64::MAX,
        Some(spec) => {
            let shard = crate::shard::resolve(spec, |k| std::env::var(k).ok()).map_err(|m| bertfit::Error::config("shard", m))?;
            match &source {
                Source::Stdin => {
                    anyhow::bail!(bertfit::Error::config("shard", "--shard slices a file; standard input is already one worker's part"))
                }
                // the file is read twice (count, then predict): a pipe would be empty the second time
                Source::File(f) if !std::fs::metadata(f).is_ok_and(|m| m.is_file()) => {
                    anyhow::bail!(bertfit::Error::config("shard", format!("--shard reads {} twice: it must be a regular file, not a pipe", f.display())))
                }
                Source::File(_) => {}
            }
            let mut total = 0u64;
            for r in Records::open(&source, data_format, &cols)? {
                r?;
                total += 1;
            }
            let range = shard_range(total, chunk as u64, shard.index, shard.count);
            if !a.quiet {
                eprintln!("shard {}/{}: records {}..{} of {total}", shard.index, shard.count, range.start, range.end);
            }
            range
        }
    };
    let records = Records::open(&source, data_format, &cols)?;
    let separator = a.columns.label_separator.as_deref().unwrap_or(bertfit::infer::SET_SEPARATOR);
    let rows = Rows::new(format, records.id_column().map(str::to_string), ensemble.labels().to_vec()).for_problem(ensemble.problem(), ensemble.thresholds(), separator);
    let encoders = Encoders::of(ensemble)?;
    let mut session = Session::new(ensemble, encoders)?;
    let batch = inference_batch(a.batch_size, device);
    let bar = (!a.quiet).then(row_bar);
    let shown = |n: u64| {
        if let Some(b) = &bar {
            b.set_position(n);
        }
    };
    let written = match (target, &source) {
        (None, _) => {
            let name = std::path::Path::new("<stdout>");
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            stream_rows(&mut out, name, &rows, &mut session, records, range.clone(), chunk, batch, &shown)?
        }
        // standard input is read once: the file is written whole (through a temporary) but not resumable
        (Some(target), Source::Stdin) => {
            let mut n = 0;
            bertfit::infer::write_file_atomically(target, |mut w| {
                n = stream_rows(&mut w, target, &rows, &mut session, records, range.clone(), chunk, batch, &shown)?;
                Ok(())
            })?;
            n
        }
        (Some(target), Source::File(input)) => {
            let (input_bytes, input_modified_ns) = PredictJob::fingerprint(input)?;
            let job = PredictJob {
                input: input.display().to_string(),
                input_bytes,
                input_modified_ns,
                models: a.model.clone(),
                labels: ensemble.labels().to_vec(),
                format,
                columns: vec![Some(cols.text.clone()), cols.text_pair.clone(), cols.id.clone()],
                records: (range.start, range.end),
                chunk,
                batch_size: batch,
                settings: format!("max_len={:?} precision={:?} engine={:?} device={}", a.max_len, a.precision, a.engine, device.name()),
                version: env!("CARGO_PKG_VERSION").to_string(),
            };
            let (mut out, done) = ResumableOutput::open(target, job, &rows.header(), a.restart)?;
            if done > 0 && !a.quiet {
                eprintln!("resuming {}: {done} rows already written", target.display());
            }
            // only the last chunk is short: a partial file ending in one is complete (killed before the rename)
            if done.is_multiple_of(chunk as u64) {
                predict_records(&mut session, records, range.start + done..range.end, chunk, batch, |examples, probs| {
                    out.append(&rows.rows(examples, probs), examples.len() as u64)?;
                    shown(out.rows());
                    Ok(())
                })?;
            }
            let total = out.rows();
            out.finish()?;
            total
        }
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(target) = target.filter(|_| !a.quiet) {
        eprintln!("wrote {written} predictions to {}", target.display());
    }
    if written == 0 && range.start < range.end {
        eprintln!("warning: {}: no records", source.name().display());
    }
    Ok(())
}

/// Streams the rows of `records` (header first) to `out`, flushing after each chunk; returns the rows.
#[allow(clippy::too_many_arguments)]
fn stream_rows(
    out: &mut dyn Write,
    name: &std::path::Path,
    rows: &bertfit::infer::Rows,
    session: &mut bertfit::infer::Session<'_>,
    records: bertfit::data::Records,
    range: std::ops::Range<u64>,
    chunk: usize,
    batch: usize,
    shown: &dyn Fn(u64),
) -> bertfit::Result<u64> {
    bertfit::infer::write_all(out, name, &rows.header())?;
    let mut written = 0;
    bertfit::infer::predict_records(session, records, range, chunk, batch, |examples, probs| {
        bertfit::infer::write_all(out, name, &rows.rows(examples, probs))?;
        out.flush().map_err(|e| bertfit::Error::io("cannot write predictions", name, e))?;
        written += examples.len() as u64;
        shown(written);
        Ok(())
    })?;
    Ok(written)
}

/// A progress line over rows written (the total is unknown while streaming).
fn row_bar() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    if let Ok(style) = indicatif::ProgressStyle::with_template("predict {pos} rows {per_sec}") {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::inference_batch;
    use bertfit::runtime::Accelerator;

    #[test]
    fn inference_batches_default_by_device() {
        assert_eq!(inference_batch(Some(8), Accelerator::Cuda(0)), 8);
        assert_eq!(inference_batch(None, Accelerator::Cpu), 64);
        assert_eq!(inference_batch(None, Accelerator::Cuda(0)), 256);
    }
}
