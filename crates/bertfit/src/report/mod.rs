//! Training reports people would rather look at than read: one self-contained HTML file (inline CSS
//! and SVG charts, no scripts, no external address) for a run directory or an evaluation, with an
//! optional PNG copy of every chart.
//!
//! Inside: [`rundir`] reads a run directory leniently (interrupted runs, older formats); [`series`],
//! [`matrix`], [`curves`], [`dataset`] and [`mistakes`] are the data layer, pure functions over plain
//! types; private modules draw the charts with plotters (text from an embedded DejaVu Sans, so no
//! system font is needed) and build the page.

pub mod curves;
pub mod dataset;
pub mod matrix;
pub mod mistakes;
/// The run directory as the report reads it (lenient readers owned by [`crate::rundir`]).
pub use crate::rundir::read as rundir;
pub mod series;

mod chart;
mod eval;
mod font;
mod html;
mod multi;
mod pretrain;
mod problems;
mod run;
mod sections;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use html::{page, write_atomic, Figures};
use rundir::RunDir;

/// What to write besides the HTML page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportOptions {
    /// Also write each chart as a PNG file (at twice the on-page size), for slides and papers.
    pub png: bool,
}

/// The folder of an HTML report's PNG charts: the file's path without its extension
/// (`RUN_DIR/report.html` → `RUN_DIR/report/`), or with `.charts` added when it has none.
fn png_dir_for(path: &Path) -> PathBuf {
    if path.extension().is_some() {
        path.with_extension("")
    } else {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".charts");
        path.with_file_name(name)
    }
}

/// Writes `RUN_DIR/report.html` from whatever the run directory holds, and with `png` a PNG of each
/// chart under `RUN_DIR/report/`. Works for finished, running and interrupted runs; for a
/// cross-validation or seeds directory it writes each member run's report too and a summary of them.
/// Returns the page's path.
pub fn write_run_report(run_dir: &Path, opts: &ReportOptions) -> Result<PathBuf> {
    let path = run_dir.join(crate::rundir::REPORT);
    if pretrain::is_pretrain_run(run_dir) {
        let mut figs = Figures::new(opts.png.then(|| png_dir_for(&path)).as_deref())?;
        let sections = pretrain::sections(run_dir, &mut figs)?;
        let title = format!("Pretraining report: {}", run_name(run_dir));
        write_atomic(&path, &page(&title, "masked-language-model pretraining · written by bertfit", &sections))?;
        return Ok(path);
    }
    let run = RunDir::read(run_dir)?;
    let mut figs = Figures::new(opts.png.then(|| png_dir_for(&path)).as_deref())?;
    let sections = match &run.multi {
        Some(m) => {
            for member in &m.runs {
                if let Some(dir) = multi::member_dir(run_dir, &member.name) {
                    write_run_report(&dir, opts)?;
                }
            }
            multi::sections(&run, m, &mut figs)?
        }
        None => run::sections(&run, &mut figs)?,
    };
    let name = run_name(run_dir);
    let model = run.config_str(&["model"]).unwrap_or_else(|| "unknown model".into());
    let kind = match run.multi.as_ref().map(|m| m.kind.as_str()) {
        Some("seeds") => "repeated runs",
        Some(_) => "cross-validation",
        None => "training run",
    };
    let title = format!("Training report: {name}");
    write_atomic(&path, &page(&title, &format!("{kind} of {model} · written by bertfit"), &sections))?;
    Ok(path)
}

/// The run directory's folder name, for titles.
fn run_name(run_dir: &Path) -> String {
    run_dir
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| run_dir.display().to_string())
}

/// Writes an evaluation report to `path` (and with `png` its charts beside it, in a folder named
/// like the file without its extension): scores, confusion matrices, per-class table, ROC and PR
/// curves for binary tasks, most confident errors. `gold[i]` is a class id into `labels`, `probs[i]`
/// its class probabilities, `texts[i]` its text (`texts` may be empty).
pub fn write_eval_report(
    path: &Path,
    title: &str,
    labels: &[String],
    gold: &[usize],
    probs: &[Vec<f32>],
    texts: &[String],
    opts: &ReportOptions,
) -> Result<()> {
    matrix::check_predictions(labels.len(), gold, probs)?;
    if !texts.is_empty() && texts.len() != gold.len() {
        return Err(Error::config("texts", format!("{} texts for {} examples", texts.len(), gold.len())));
    }
    let mut figs = Figures::new(opts.png.then(|| png_dir_for(path)).as_deref())?;
    let sections = eval::sections(labels, gold, probs, texts, &mut figs)?;
    let subtitle = format!("evaluation of {} examples · written by bertfit", gold.len());
    write_atomic(path, &page(title, &subtitle, &sections))
}
