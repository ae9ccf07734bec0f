//! Report sections of multi-label and regression runs, from the best model's scores and its scored
//! predictions (`predictions/test.csv`, else `valid.csv`): per-label precision/recall/F1 bars and the
//! gold labels' co-occurrence heatmap; predicted-vs-true scatter and residual histogram.

use std::path::Path;

use super::chart::{Bars, Chart, Heatmap, Line, Plot, RefLine, GREY, PALETTE};
use super::html::{note, Figures, Section};
use super::rundir::RunDir;
use super::run::Context;
use crate::error::{Error, Location, Result};

/// The `gold` and `pred` cells of a scored prediction file, with the file's name; `None` when neither
/// split's file exists.
fn read_gold_pred(run: &RunDir) -> Result<Option<(String, Vec<(String, String)>)>> {
    for split in ["test", "valid"] {
        let path = crate::rundir::predictions_csv(&run.dir, split);
        if path.exists() {
            return Ok(Some((format!("predictions/{split}.csv"), gold_pred(&path)?)));
        }
    }
    Ok(None)
}

fn gold_pred(path: &Path) -> Result<Vec<(String, String)>> {
    let mut r = csv::Reader::from_path(path).map_err(|e| Error::csv(path, e))?;
    let header = r.headers().map_err(|e| Error::csv(path, e))?.clone();
    let col = |name: &str| header.iter().position(|h| h == name).ok_or_else(|| Error::input(Location::file(path).line(1), format!("no `{name}` column")));
    let (g, p) = (col("gold")?, col("pred")?);
    let mut out = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| Error::csv(path, e))?;
        out.push((rec.get(g).unwrap_or_default().to_string(), rec.get(p).unwrap_or_default().to_string()));
    }
    Ok(out)
}

/// Multi-label: the best model's per-label scores as bars, and how often gold labels occur together.
pub(crate) fn multi_label_sections(cx: &Context<'_>, figs: &mut Figures) -> Result<Vec<Section>> {
    let scores = cx.test.as_ref().or(cx.best.as_ref()).and_then(|r| r.scores.as_ref()).filter(|s| !s.per_class.is_empty());
    let bars = match scores {
        Some(s) => {
            let chart = Bars {
                title: "Per-label scores (best model)".into(),
                y_label: "score".into(),
                categories: s.per_class.iter().map(|c| c.label.clone()).collect(),
                groups: vec![
                    ("precision".into(), s.per_class.iter().map(|c| c.precision).collect()),
                    ("recall".into(), s.per_class.iter().map(|c| c.recall).collect()),
                    ("F1".into(), s.per_class.iter().map(|c| c.f1).collect()),
                ],
                percent: false,
            };
            figs.figure("per-label", &Chart::Bars(chart), "Precision, recall and F1 of each label at the model's thresholds.")?
        }
        None => note("No per-label scores yet (no evaluation recorded)."),
    };
    let separator = cx.run.config_str(&["data", "label_separator"]).unwrap_or_else(|| crate::infer::SET_SEPARATOR.into());
    let heat = match read_gold_pred(cx.run)? {
        Some((file, rows)) if !cx.labels.is_empty() => {
            let n = cx.labels.len();
            let mut counts = vec![vec![0u64; n]; n];
            for (gold, _) in &rows {
                let ids: Vec<usize> = gold.split(separator.as_str()).filter_map(|l| cx.labels.iter().position(|x| x == l.trim())).collect();
                for &a in &ids {
                    for &b in &ids {
                        counts[a][b] += 1;
                    }
                }
            }
            let top = counts.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
            let chart = Heatmap {
                title: "Label co-occurrence (gold)".into(),
                labels: cx.labels.clone(),
                intensity: counts.iter().map(|r| r.iter().map(|&c| c as f64 / top).collect()).collect(),
                cells: counts.iter().map(|r| r.iter().map(u64::to_string).collect()).collect(),
                axes: ("gold label", "gold label"),
            };
            let caption = format!("Examples of {file} holding both labels (the diagonal: each label's count).");
            figs.figure("co-occurrence", &Chart::Heatmap(chart), &caption)?
        }
        _ => note("No scored predictions yet (predictions/valid.csv, predictions/test.csv)."),
    };
    Ok(vec![Section::new("per-label", "Per-label scores (best model)", bars), Section::new("co-occurrence", "Label co-occurrence", heat)])
}

/// Regression: predicted against true values, and the residuals' histogram.
pub(crate) fn regression_sections(cx: &Context<'_>, figs: &mut Figures) -> Result<Vec<Section>> {
    let Some((file, rows)) = read_gold_pred(cx.run)? else {
        let text = note("No scored predictions yet (predictions/valid.csv, predictions/test.csv).");
        return Ok(vec![Section::new("scatter", "Predicted vs true (best model)", text)]);
    };
    let points: Vec<(f64, f64)> = rows.iter().filter_map(|(g, p)| Some((g.parse::<f64>().ok()?, p.parse::<f64>().ok()?))).collect();
    if points.is_empty() {
        return Ok(vec![Section::new("scatter", "Predicted vs true (best model)", note(&format!("{file} holds no numeric rows.")))]);
    }
    let lo = points.iter().map(|p| p.0.min(p.1)).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.0.max(p.1)).fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.05).max(1e-6);
    let mut scatter = Plot::new("Predicted vs true", "true value", "predicted value");
    let mut dots = Line::new("", points.clone(), PALETTE[0]);
    dots.markers = true;
    // dots only: no line joins them
    dots.width = 0.0;
    scatter.lines.push(dots);
    scatter.refs.push(RefLine { from: (lo, lo), to: (hi, hi), label: Some("y = x".into()), color: GREY });
    scatter.x_range = Some((lo - pad, hi + pad));
    scatter.y_range = Some((lo - pad, hi + pad));
    let body = figs.figure("scatter", &Chart::Plot(scatter), &format!("Each example of {file}; on the diagonal the prediction is exact."))?;

    let residuals: Vec<f64> = points.iter().map(|(g, p)| p - g).collect();
    let (rlo, rhi) = residuals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &r| (a.min(r), b.max(r)));
    let bins = 20usize;
    let width = ((rhi - rlo) / bins as f64).max(1e-9);
    let mut counts = vec![0usize; bins];
    for r in &residuals {
        counts[(((r - rlo) / width) as usize).min(bins - 1)] += 1;
    }
    let mut hist = Plot::new("Residuals", "predicted − true", "examples");
    hist.bars = counts.iter().enumerate().map(|(i, &c)| (rlo + i as f64 * width, rlo + (i + 1) as f64 * width, c as f64)).collect();
    let top = counts.iter().copied().max().unwrap_or(1) as f64 * 1.12;
    hist.refs.push(RefLine { from: (0.0, 0.0), to: (0.0, top), label: None, color: GREY });
    hist.y_range = Some((0.0, top.max(1.0)));
    hist.x_range = Some((rlo.min(0.0) - width, rhi.max(0.0) + width));
    let mean = residuals.iter().sum::<f64>() / residuals.len() as f64;
    let hist_body = figs.figure("residuals", &Chart::Plot(hist), &format!("Prediction errors of {file}: mean {mean:.4} (0 is unbiased)."))?;
    Ok(vec![Section::new("scatter", "Predicted vs true (best model)", body), Section::new("residuals", "Residuals (best model)", hist_body)])
}
