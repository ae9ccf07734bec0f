//! The report of a multi-run directory (cross-validation folds or repeated seeds): the run summary,
//! a metric chart and table per member run, mean ± std and range, and for cross-validation the
//! out-of-fold confusion matrix and per-class scores.

use super::chart::{Bars, Chart};
use super::html::{esc, note, subheading, table, Cell, Figures, Section};
use super::matrix::Confusion;
use super::run::{summary_section, Context};
use super::rundir::{MultiSummary, Record, RunDir};
use super::sections::{confusion_figures, per_class_table};
use crate::error::Result;
use crate::metrics::aggregate::SUMMARY_METRICS;

/// The directory of a member run named in a summary, when it is a plain sub-folder of `dir` that
/// exists (names with separators or `..` are refused: they come from a file).
pub(crate) fn member_dir(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    let mut parts = std::path::Path::new(name).components();
    let plain = matches!((parts.next(), parts.next()), (Some(std::path::Component::Normal(_)), None));
    let path = dir.join(name);
    (plain && path.is_dir()).then_some(path)
}

const SHOWN: [&str; 4] = ["accuracy", "f1_macro", "mcc", "loss"];

fn metric_cells(r: Option<&Record>, out: &mut Vec<Cell>) {
    for m in SHOWN {
        out.push(Cell::num(r.and_then(|r| r.metric(m)), 4));
    }
}

fn spread_text(s: Option<&super::rundir::Spread>) -> (String, String) {
    let f = |v: Option<f64>| v.filter(|x| x.is_finite()).map_or_else(|| "–".to_string(), |x| format!("{x:.4}"));
    match s {
        Some(s) if s.n > 0 => (format!("{} ± {}", f(s.mean), f(s.std)), format!("{} – {}", f(s.min), f(s.max))),
        _ => ("–".into(), "–".into()),
    }
}

fn runs_section(run: &RunDir, multi: &MultiSummary, figs: &mut Figures) -> Result<Section> {
    let (title, what) = if multi.kind == "seeds" { ("Repeated runs (seeds)", "seed") } else { ("Cross-validation", "fold") };
    let mut body = String::new();
    let categories: Vec<String> = multi.runs.iter().map(|r| r.name.clone()).collect();
    let groups: Vec<(String, Vec<f64>)> = ["accuracy", "f1_macro", "mcc"]
        .iter()
        .map(|m| (m.to_string(), multi.runs.iter().map(|r| r.valid.as_ref().and_then(|v| v.metric(m)).unwrap_or(f64::NAN)).collect()))
        .collect();
    if multi.runs.iter().any(|r| r.valid.is_some()) {
        let bars = Bars { title: format!("Best validation scores per {what}"), y_label: "score".into(), categories, groups, percent: false };
        body.push_str(&figs.figure("runs", &Chart::Bars(bars), &format!("Each {what}'s best model on its validation data."))?);
    }
    let mut rows = Vec::new();
    for r in &multi.runs {
        let mut row = vec![Cell::text(&r.name)];
        metric_cells(r.valid.as_ref(), &mut row);
        metric_cells(r.test.as_ref(), &mut row);
        let link = if member_dir(&run.dir, &r.name).is_some_and(|d| d.join(crate::rundir::REPORT).is_file()) {
            Cell::Html(format!("<a href=\"{}/report.html\">report</a>", esc(&r.name)))
        } else {
            Cell::text("–")
        };
        row.push(link);
        rows.push(row);
    }
    let headers = [
        "run", "valid accuracy", "valid F1 macro", "valid MCC", "valid loss", "test accuracy", "test F1 macro", "test MCC", "test loss", "report",
    ];
    body.push_str(&subheading(&format!("Per {what}")));
    body.push_str(&table(&headers, &rows));
    // the single-label metrics in their order, then any other problem type's (multi-label, regression)
    let others = multi.valid.keys().chain(multi.test.keys()).map(String::as_str).filter(|k| !SUMMARY_METRICS.contains(k));
    let mut names: Vec<&str> = SUMMARY_METRICS.iter().copied().filter(|m| multi.valid.contains_key(*m) || multi.test.contains_key(*m)).collect();
    for k in others {
        if !names.contains(&k) {
            names.push(k);
        }
    }
    let spread_rows: Vec<Vec<Cell>> = names
        .iter()
        .map(|m| {
            let (vm, vr) = spread_text(multi.valid.get(*m));
            let (tm, tr) = spread_text(multi.test.get(*m));
            vec![Cell::text(*m), Cell::Num(vm), Cell::Num(vr), Cell::Num(tm), Cell::Num(tr)]
        })
        .collect();
    body.push_str(&subheading("Spread over runs"));
    body.push_str(&table(&["metric", "valid mean ± std", "valid min – max", "test mean ± std", "test min – max"], &spread_rows));
    Ok(Section::new("runs", title, body))
}

fn oof_section(multi: &MultiSummary, labels: &[String], figs: &mut Figures) -> Result<Option<Section>> {
    let Some(oof) = &multi.oof else { return Ok(None) };
    let names = if oof.labels.is_empty() { labels } else { &oof.labels };
    let mut body = note("Every training example scored by the fold model that did not train on it.");
    if let Some(m) = Confusion::from_rows(names, &oof.confusion) {
        body.push_str(&confusion_figures(figs, "confusion-oof", "Out-of-fold", &m)?);
    }
    if !oof.per_class.is_empty() {
        body.push_str(&per_class_table(&oof.per_class));
    }
    Ok(Some(Section::new("oof", "Out-of-fold predictions", body)))
}

/// Every section of a multi-run report.
pub(crate) fn sections(run: &RunDir, multi: &MultiSummary, figs: &mut Figures) -> Result<Vec<Section>> {
    let cx = Context::new(run);
    let mut out = vec![summary_section(&cx), runs_section(run, multi, figs)?];
    if let Some(s) = oof_section(multi, &cx.labels, figs)? {
        out.push(s);
    }
    Ok(out)
}
