//! The report of one training run: its summary, loss, metric and learning-rate curves, confusion
//! matrices and per-class scores of the best model, the data's labels and lengths, ROC/PR curves and
//! the most confident errors. Each section says what is missing instead of failing.

use plotters::style::RGBColor;

use super::chart::{Chart, Corner, Line, Mark, Plot, GREY, PALETTE};
use super::dataset::{distribution_from_records, label_distribution, length_histogram};
use super::html::{key_values, note, subheading, Cell, Figures, Section};
use super::matrix::Confusion;
use super::mistakes::most_confident_errors;
use super::rundir::{Predictions, Record, RunDir};
use super::sections::{confusion_figures, errors_table, label_figure, length_figure, per_class_table, roc_pr_figures, scores_of};
use super::series::{best_eval, loss_curves, lr_series, metric_series, smoothing_for};
use crate::error::Result;

/// Light blue of the raw per-step loss.
const LIGHT_BLUE: RGBColor = RGBColor(174, 199, 232);

/// What the sections share: the best and test evaluations and the selection metric.
pub(crate) struct Context<'a> {
    pub run: &'a RunDir,
    pub labels: Vec<String>,
    pub metric: String,
    pub best: Option<Record>,
    pub test: Option<Record>,
}

impl<'a> Context<'a> {
    pub fn new(run: &'a RunDir) -> Context<'a> {
        let metric = run.selection_metric();
        let best = run.summary.as_ref().and_then(|s| s.best.clone()).or_else(|| {
            let b = best_eval(&run.metrics, "valid", &metric)?;
            run.metrics.iter().filter(|r| r.split == "valid").nth(b.index).cloned()
        });
        let test = run.summary.as_ref().and_then(|s| s.test.clone()).or_else(|| run.metrics.iter().rev().find(|r| r.split == "test").cloned());
        Context { run, labels: run.labels(), metric, best, test }
    }
}

/// Seconds as `1 h 02 min`, `5 min 57 s` or `12.3 s`.
pub(crate) fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "–".into();
    }
    let whole = secs.round() as u64;
    if whole >= 3600 {
        format!("{} h {:02} min", whole / 3600, (whole % 3600) / 60)
    } else if whole >= 60 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{secs:.1} s")
    }
}

/// `key.sub = value` rows of a JSON object, nested objects flattened.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, Cell)>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        serde_json::Value::String(s) => out.push((prefix.to_string(), Cell::text(s))),
        serde_json::Value::Null => out.push((prefix.to_string(), Cell::text("–"))),
        other => out.push((prefix.to_string(), Cell::text(other.to_string()))),
    }
}

fn score_row(name: &str, r: &Record) -> Vec<Cell> {
    let mut row = vec![Cell::text(name)];
    for m in ["loss", "accuracy", "f1_macro", "f1_weighted", "mcc"] {
        row.push(Cell::num(r.metric(m), 4));
    }
    row.push(Cell::int(r.examples));
    row
}

/// Headline scores of the best validation and the test evaluation.
pub(crate) fn headline(best: Option<&Record>, test: Option<&Record>) -> String {
    let mut rows = Vec::new();
    if let Some(b) = best {
        rows.push(score_row("validation (best model)", b));
    }
    if let Some(t) = test {
        rows.push(score_row("test (best model)", t));
    }
    if rows.is_empty() {
        return String::new();
    }
    super::html::table(&["split", "loss", "accuracy", "F1 macro", "F1 weighted", "MCC", "examples"], &rows)
}

/// Epochs, steps, time, throughput, the best model and why training stopped.
fn progress_rows(cx: &Context<'_>, kv: &mut Vec<(String, Cell)>) {
    let run = cx.run;
    let cfg = |path: &[&str]| run.config_str(path);
    let sum = run.summary.as_ref();
    let last_train = run.metrics.iter().filter(|r| r.split == "train").map(|r| r.epoch).fold(0.0f64, f64::max);
    let done = sum.and_then(|s| s.epochs).map_or(last_train, |e| e as f64);
    let planned = cfg(&["train", "epochs"]).map(|e| format!(" of {e} planned")).unwrap_or_default();
    kv.push(("epochs".into(), Cell::text(format!("{done}{planned}"))));
    let steps = sum.and_then(|s| s.steps).or_else(|| run.steps.last().map(|s| s.step)).or_else(|| run.metrics.last().map(|r| r.step));
    if let Some(steps) = steps {
        kv.push(("optimizer steps".into(), Cell::int(steps)));
    }
    let seconds = sum.and_then(|s| s.train_seconds).or_else(|| run.metrics.iter().filter_map(|r| r.elapsed_s).reduce(f64::max));
    if let Some(secs) = seconds {
        kv.push(("wall time".into(), Cell::text(duration(secs))));
    }
    if let Some(tps) = sum.and_then(|s| s.train_tokens_per_s).filter(|v| v.is_finite()) {
        kv.push(("throughput".into(), Cell::text(format!("{tps:.0} tokens/s in training"))));
    }
    let direction = if cx.metric == "loss" { "lowest" } else { "highest" };
    kv.push(("best model chosen by".into(), Cell::text(format!("{direction} validation {}", cx.metric))));
    if let Some(b) = &cx.best {
        let value = b.metric(&cx.metric).map_or_else(|| "–".into(), |v| format!("{v:.4}"));
        kv.push(("best model".into(), Cell::text(format!("epoch {:.2} (step {}): {} {value}", b.epoch, b.step, cx.metric))));
    }
    if let Some(p) = cfg(&["train", "patience"]) {
        kv.push(("early-stopping patience".into(), Cell::text(p)));
    }
    let stop = sum.and_then(|s| s.stop_reason.clone()).unwrap_or_else(|| "not finished (no summary.json)".into());
    kv.push(("why training stopped".into(), Cell::text(stop)));
    if let Some(t) = sum.and_then(|s| s.truncated_share) {
        kv.push(("truncated training texts".into(), Cell::text(format!("{:.1}%", t * 100.0))));
    }
}

pub(crate) fn summary_section(cx: &Context<'_>) -> Section {
    let run = cx.run;
    let mut body = String::new();
    match run.summary.as_ref() {
        Some(s) => body.push_str(&format!(
            "<p class=\"status\">Finished: {}.</p>\n",
            super::html::esc(s.stop_reason.as_deref().unwrap_or("no reason recorded"))
        )),
        None if run.multi.is_none() => body.push_str(
            "<p class=\"status warn\">No summary.json: the run is still going or was interrupted; this report shows what was logged so far.</p>\n",
        ),
        None => {}
    }
    for n in &run.notes {
        body.push_str(&note(n));
    }
    let mut kv: Vec<(String, Cell)> = Vec::new();
    let cfg = |path: &[&str]| run.config_str(path);
    kv.push(("model".into(), Cell::text(cfg(&["model"]).unwrap_or_else(|| "–".into()))));
    kv.push(("run directory".into(), Cell::text(run.dir.display().to_string())));
    for (name, key) in [("train data", "train"), ("validation data", "valid"), ("test data", "test")] {
        let value = match (cfg(&["data", key]), key) {
            (Some(p), _) => Some(p),
            (None, "valid") => cfg(&["data", "valid_fraction"]).map(|f| format!("split off the training data (valid_fraction {f})")),
            (None, "test") => cfg(&["data", "test_fraction"]).filter(|f| f != "0.0" && f != "0").map(|f| format!("split off the training data (test_fraction {f})")),
            _ => None,
        };
        if let Some(v) = value {
            kv.push((name.into(), Cell::text(v)));
        }
    }
    if let (Some(t), Some(l)) = (cfg(&["data", "text_column"]), cfg(&["data", "label_column"])) {
        kv.push(("columns".into(), Cell::text(format!("text: {t}, label: {l}"))));
    }
    if !cx.labels.is_empty() {
        let shown: Vec<&str> = cx.labels.iter().take(30).map(String::as_str).collect();
        let more = if cx.labels.len() > 30 { ", …" } else { "" };
        kv.push(("labels".into(), Cell::text(format!("{}: {}{more}", cx.labels.len(), shown.join(", ")))));
    }
    let stats_n = |split: &str| run.stats.as_ref().and_then(|s| s.splits.get(split)).map(|s| s.examples);
    let sum = run.summary.as_ref();
    let sizes: Vec<String> = [
        ("train", sum.and_then(|s| s.train_examples).or_else(|| stats_n("train"))),
        ("valid", sum.and_then(|s| s.valid_examples).or_else(|| stats_n("valid"))),
        ("test", sum.and_then(|s| s.test_examples).or_else(|| stats_n("test"))),
    ]
    .iter()
    .filter_map(|(n, v)| v.filter(|&v| v > 0).map(|v| format!("{v} {n}")))
    .collect();
    if !sizes.is_empty() {
        kv.push(("examples".into(), Cell::text(sizes.join(", "))));
    }
    match &run.multi {
        Some(m) => {
            let kind = if m.kind == "seeds" { "seeds" } else { "cross-validation folds" };
            kv.push(("runs".into(), Cell::text(format!("{} {kind}", m.runs.len()))));
        }
        None => progress_rows(cx, &mut kv),
    }
    body.push_str(&key_values(&kv));
    body.push_str(&headline(cx.best.as_ref(), cx.test.as_ref()));
    if let Some(train) = run.config.as_ref().and_then(|c| c.get("train")) {
        let mut hp = Vec::new();
        flatten("", train, &mut hp);
        body.push_str(&subheading("Hyperparameters"));
        body.push_str(&key_values(&hp));
    }
    Section::new("summary", "Run summary", body)
}

pub(crate) fn loss_section(cx: &Context<'_>, figs: &mut Figures) -> Result<Section> {
    let c = loss_curves(&cx.run.metrics, &cx.run.steps);
    let mut p = Plot::new("Loss", "epoch", "cross-entropy loss");
    if !c.train_step.is_empty() {
        p.lines.push(Line { width: 1.0, markers: false, ..Line::new("train, per step", c.train_step.clone(), LIGHT_BLUE) });
        let beta = smoothing_for(c.train_step.len());
        p.lines.push(Line { markers: false, ..Line::new(format!("train, smoothed (EMA {beta:.2})"), c.train_smoothed, PALETTE[0]) });
    }
    if !c.train_epoch.is_empty() {
        p.lines.push(Line { dashed: true, ..Line::new("train, epoch mean", c.train_epoch, PALETTE[2]) });
    }
    if !c.valid.is_empty() {
        p.lines.push(Line::new("validation", c.valid, PALETTE[1]));
    }
    if p.lines.is_empty() {
        return Ok(Section::new("loss", "Loss curves", note("No loss has been logged yet (metrics.jsonl and steps.jsonl are empty or missing).")));
    }
    if let Some(b) = &cx.best {
        if let Some(l) = b.metric("loss") {
            p.marks.push(Mark { at: (b.epoch, l), label: "best model".into() });
        }
    }
    let caption = "Training loss of every optimizer update (light), its moving average, the mean of each epoch, and the validation loss of each evaluation.";
    Ok(Section::new("loss", "Loss curves", figs.figure("loss", &Chart::Plot(p), caption)?))
}

pub(crate) fn metrics_section(cx: &Context<'_>, figs: &mut Figures) -> Result<Section> {
    let has_valid = cx.run.metrics.iter().any(|r| r.split == "valid");
    let split = if has_valid { "valid" } else { "train" };
    let mut names = vec!["accuracy", "f1_macro", "mcc"];
    if !names.contains(&cx.metric.as_str()) && cx.metric != "loss" {
        names.push(cx.metric.as_str());
    }
    let mut p = Plot::new(if has_valid { "Validation metrics" } else { "Training metrics (no validation set)" }, "epoch", "score");
    for (i, m) in names.iter().enumerate() {
        let points = metric_series(&cx.run.metrics, split, m);
        if !points.is_empty() {
            p.lines.push(Line::new(*m, points, PALETTE[i]));
        }
    }
    if has_valid {
        let train = metric_series(&cx.run.metrics, "train", "accuracy");
        if !train.is_empty() {
            p.lines.push(Line { dashed: true, width: 1.5, ..Line::new("train accuracy", train, GREY) });
        }
    }
    if p.lines.is_empty() {
        return Ok(Section::new("metrics", "Metric curves", note("No evaluation has been logged yet.")));
    }
    if let (Some(b), true) = (&cx.best, has_valid) {
        let on = if cx.metric == "loss" { "accuracy" } else { cx.metric.as_str() };
        if let Some(v) = b.metric(on) {
            let label = match b.metric(&cx.metric) {
                Some(sel) if cx.metric != on => format!("best (loss {sel:.4})"),
                _ => format!("best {on} {v:.4}"),
            };
            p.marks.push(Mark { at: (b.epoch, v), label });
        }
    }
    p.legend = Corner::LowerRight;
    let caption = format!("The ring marks the best model, chosen by the {} validation {}.", if cx.metric == "loss" { "lowest" } else { "highest" }, cx.metric);
    Ok(Section::new("metrics", "Metric curves", figs.figure("metrics", &Chart::Plot(p), &caption)?))
}

pub(crate) fn lr_section(cx: &Context<'_>, figs: &mut Figures) -> Result<Section> {
    let points = lr_series(&cx.run.steps, &cx.run.metrics);
    if points.is_empty() {
        return Ok(Section::new("lr", "Learning-rate schedule", note("No learning rate has been logged yet.")));
    }
    let peak = points.iter().map(|p| p.1).fold(0.0f64, f64::max);
    let mut p = Plot::new("Learning rate", "optimizer step", "learning rate");
    p.lines.push(Line { markers: points.len() <= 20, ..Line::new("", points, PALETTE[4]) });
    let kind = cx.run.config_str(&["train", "scheduler", "kind"]).unwrap_or_else(|| "–".into());
    let warmup = cx.run.config_str(&["train", "warmup_ratio"]).unwrap_or_else(|| "–".into());
    let caption = format!("Schedule: {kind}, warmup ratio {warmup}, peak {peak:.2e}.");
    Ok(Section::new("lr", "Learning-rate schedule", figs.figure("lr", &Chart::Plot(p), &caption)?))
}

fn record_confusion(r: Option<&Record>, labels: &[String]) -> Option<Confusion> {
    let s = r?.scores.as_ref()?;
    let names = if s.labels.is_empty() { labels } else { &s.labels };
    Confusion::from_rows(names, &s.confusion)
}

fn predictions_confusion(p: Option<&Predictions>) -> Option<Confusion> {
    let p = p?;
    Confusion::from_probs(&p.labels, &p.gold, &p.probs).ok()
}

/// The best model's confusion matrix of a split, from its record or else from the predictions file.
fn split_confusion(cx: &Context<'_>, test: bool) -> Option<Confusion> {
    if test {
        record_confusion(cx.test.as_ref(), &cx.labels).or_else(|| predictions_confusion(cx.run.test_predictions.as_ref()))
    } else {
        record_confusion(cx.best.as_ref(), &cx.labels).or_else(|| predictions_confusion(cx.run.valid_predictions.as_ref()))
    }
}

pub(crate) fn confusion_section(cx: &Context<'_>, figs: &mut Figures) -> Result<Section> {
    let mut body = String::new();
    for (test, slug, what) in [(false, "confusion-valid", "Validation"), (true, "confusion-test", "Test")] {
        if let Some(m) = split_confusion(cx, test) {
            body.push_str(&confusion_figures(figs, slug, what, &m)?);
        }
    }
    if body.is_empty() {
        body = note("No confusion matrix yet: the best model has not been evaluated on a validation or test set.");
    }
    Ok(Section::new("confusion", "Confusion matrices (best model)", body))
}

pub(crate) fn per_class_section(cx: &Context<'_>) -> Section {
    let mut parts = Vec::new();
    for (test, what) in [(false, "Validation"), (true, "Test")] {
        let rec = if test { cx.test.as_ref() } else { cx.best.as_ref() };
        let rows = rec.and_then(|r| r.scores.as_ref()).map(|s| s.per_class.clone()).filter(|p| !p.is_empty());
        let rows = rows.or_else(|| split_confusion(cx, test).map(|m| scores_of(&m).per_class));
        if let Some(rows) = rows {
            parts.push(format!("<div>{}{}</div>", subheading(what), per_class_table(&rows)));
        }
    }
    let body = if parts.is_empty() { note("No per-class scores yet.") } else { format!("<div class=\"tables\">\n{}</div>\n", parts.join("\n")) };
    Section::new("per-class", "Per-class scores (best model)", body)
}

pub(crate) fn labels_section(cx: &Context<'_>, figs: &mut Figures) -> Result<Section> {
    let dist = match &cx.run.stats {
        Some(stats) => label_distribution(stats, &cx.labels),
        None => distribution_from_records(&cx.run.metrics, &cx.labels),
    };
    let body = if dist.is_empty() || dist.labels.is_empty() {
        note("No label counts: data_stats.json is missing and no evaluation recorded class supports.")
    } else {
        label_figure(figs, "labels", &dist)?
    };
    Ok(Section::new("labels", "Label distribution", body))
}

pub(crate) fn lengths_section(cx: &Context<'_>, figs: &mut Figures) -> Result<Section> {
    let Some(stats) = cx.run.stats.as_ref() else {
        let share = cx.run.summary.as_ref().and_then(|s| s.truncated_share);
        let text = match share {
            Some(t) => format!("No token lengths (data_stats.json is missing); {:.1}% of training texts were truncated.", t * 100.0),
            None => "No token lengths: data_stats.json is missing.".to_string(),
        };
        return Ok(Section::new("lengths", "Token lengths", note(&text)));
    };
    let max_len = stats.max_len.or_else(|| cx.run.config_str(&["train", "max_len"]).and_then(|m| m.parse().ok())).unwrap_or(512);
    let mut body = String::new();
    if let Some(train) = stats.splits.get("train").filter(|t| !t.token_lengths.is_empty()) {
        let h = length_histogram(&train.token_lengths, max_len, 40);
        body.push_str(&length_figure(figs, "token-lengths", "train", &h)?);
    }
    let rows: Vec<Vec<Cell>> = ["train", "valid", "test"]
        .iter()
        .filter_map(|name| stats.splits.get(*name).map(|s| (name, s)))
        .map(|(name, s)| {
            let h = length_histogram(&s.token_lengths, max_len, 1);
            let truncated = s.truncated.unwrap_or(h.truncated);
            let n = if s.token_lengths.is_empty() { s.examples } else { s.token_lengths.len() };
            let share = (n > 0).then(|| truncated as f64 / n as f64 * 100.0);
            let mut sorted = s.token_lengths.clone();
            sorted.sort_unstable();
            let median = sorted.get(sorted.len() / 2).copied();
            vec![Cell::text(*name), Cell::int(n), Cell::int(median.map_or("–".into(), |m| m.to_string())), Cell::int(h.longest), Cell::int(truncated), Cell::num(share, 1)]
        })
        .collect();
    body.push_str(&super::html::table(&["split", "texts", "median tokens", "longest", "truncated", "truncated %"], &rows));
    Ok(Section::new("lengths", "Token lengths", body))
}

pub(crate) fn roc_section(cx: &Context<'_>, figs: &mut Figures) -> Result<Section> {
    let title = "ROC and precision-recall (binary)";
    if cx.labels.len() != 2 {
        return Ok(Section::new("roc-pr", title, note(&format!("Not a binary task ({} classes): no ROC or precision-recall curves.", cx.labels.len()))));
    }
    let mut body = String::new();
    for (p, slug, what) in [(&cx.run.valid_predictions, "valid", "Validation"), (&cx.run.test_predictions, "test", "Test")] {
        if let Some(p) = p {
            if let Some(html) = roc_pr_figures(figs, slug, what, &p.labels, &p.gold, &p.probs)? {
                body.push_str(&html);
            }
        }
    }
    if body.is_empty() {
        body = note("No scored predictions with both classes (predictions/valid.csv, predictions/test.csv).");
    }
    Ok(Section::new("roc-pr", title, body))
}

pub(crate) fn errors_section(cx: &Context<'_>) -> Section {
    let mut body = String::new();
    for (p, what) in [(&cx.run.test_predictions, "Test"), (&cx.run.valid_predictions, "Validation")] {
        if let Some(p) = p {
            let errors = most_confident_errors(&p.gold, &p.probs, &p.texts, 10);
            body.push_str(&subheading(&format!("{what}: {} most confident errors", errors.len())));
            if errors.is_empty() {
                body.push_str(&note("No errors."));
            } else {
                body.push_str(&errors_table(&errors, &p.labels));
            }
        }
    }
    if body.is_empty() {
        body = note("No scored predictions yet (predictions/valid.csv, predictions/test.csv).");
    }
    Section::new("errors", "Most confident errors (best model)", body)
}

/// Every section of a single run's report.
pub(crate) fn sections(run: &RunDir, figs: &mut Figures) -> Result<Vec<Section>> {
    let cx = Context::new(run);
    let mut figures = vec![loss_section(&cx, figs)?, metrics_section(&cx, figs)?, lr_section(&cx, figs)?];
    match run.config_str(&["train", "problem_type"]).as_deref() {
        Some("multi_label_classification") => figures.extend(super::problems::multi_label_sections(&cx, figs)?),
        Some("regression") => figures.extend(super::problems::regression_sections(&cx, figs)?),
        _ => figures.extend([confusion_section(&cx, figs)?, per_class_section(&cx)]),
    }
    let single = run.config_str(&["train", "problem_type"]).is_none_or(|p| p == "single_label_classification");
    if run.config_str(&["train", "problem_type"]).as_deref() != Some("regression") {
        figures.push(labels_section(&cx, figs)?);
    }
    figures.push(lengths_section(&cx, figs)?);
    if single {
        figures.extend([roc_section(&cx, figs)?, errors_section(&cx)]);
    }
    let mut out = vec![summary_section(&cx)];
    out.extend(figures);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(12.34), "12.3 s");
        assert_eq!(duration(357.0), "5 min 57 s");
        assert_eq!(duration(3725.0), "1 h 02 min");
        assert_eq!(duration(f64::NAN), "–");
    }

    #[test]
    fn config_objects_flatten_to_dotted_keys() {
        let v = serde_json::json!({"lr": 0.1, "scheduler": {"kind": "linear"}, "patience": null});
        let mut out = Vec::new();
        flatten("", &v, &mut out);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["lr", "patience", "scheduler.kind"]);
    }
}
