//! The report of a pretraining run (`bertfit pretrain`): what was trained on, the masked-LM loss per
//! step and on held-out text, perplexity, masked-token accuracy and the learning rate.

use std::path::Path;

use super::chart::{Chart, Line, Plot, GREY, PALETTE};
use super::html::{grid, key_values, note, Cell, Figures, Section};
use super::rundir;
use super::series::{ema, smoothing_for, Points};
use crate::error::Result;
use crate::pretrain::MlmRecord;
use crate::train::state::StepRecord;

/// Whether `run_dir` holds a pretraining run (its configuration has pretraining's keys).
pub fn is_pretrain_run(run_dir: &Path) -> bool {
    rundir::read_json::<serde_json::Value>(&run_dir.join(crate::rundir::RUN_CONFIG)).ok().flatten().is_some_and(|v| v.get("mlm_probability").is_some())
}

fn series(records: &[MlmRecord], split: &str, value: impl Fn(&MlmRecord) -> Option<f64>) -> Points {
    records.iter().filter(|r| r.split == split).filter_map(|r| value(r).filter(|v| v.is_finite()).map(|v| (r.epoch, v))).collect()
}

/// The page's sections.
pub(super) fn sections(run_dir: &Path, figs: &mut Figures) -> Result<Vec<Section>> {
    let mut notes = Vec::new();
    let records: Vec<MlmRecord> = rundir::read_jsonl(&run_dir.join(crate::rundir::METRICS), &mut notes)?;
    let steps: Vec<StepRecord> = rundir::read_jsonl(&run_dir.join(crate::rundir::STEPS), &mut notes)?;
    let config: serde_json::Value = rundir::read_json(&run_dir.join(crate::rundir::RUN_CONFIG))?.unwrap_or_default();
    let summary: serde_json::Value = rundir::read_json(&run_dir.join(crate::rundir::SUMMARY))?.unwrap_or_default();
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "–".into(),
        other => other.to_string(),
    };
    let mut out = Vec::new();

    let valid: Vec<&MlmRecord> = records.iter().filter(|r| r.split == "valid").collect();
    let (first, best) = (valid.first(), valid.iter().min_by(|a, b| a.loss.total_cmp(&b.loss)));
    let mut kv = vec![
        ("model".to_string(), Cell::text(text(&config["model"]))),
        ("data".to_string(), Cell::text(text(&config["data"]))),
        ("sequences (train / valid)".to_string(), Cell::text(format!("{} / {}", text(&summary["sequences"]["train"]), text(&summary["sequences"]["valid"])))),
        ("max length, packing".to_string(), Cell::text(format!("{}, {}", text(&config["max_len"]), text(&config["packing"])))),
        ("masking".to_string(), Cell::text(format!("{} of tokens{}", text(&config["mlm_probability"]), if config["whole_word_mask"] == true { ", whole words" } else { "" }))),
        ("updates, epochs".to_string(), Cell::text(format!("{}, {}", steps.len(), text(&summary["epochs"])))),
        ("training time".to_string(), Cell::num(summary["train_seconds"].as_f64(), 0)),
        ("stopped".to_string(), Cell::text(text(&summary["stop_reason"]))),
    ];
    if let (Some(a), Some(b)) = (first, best) {
        kv.push(("validation loss: start → best".into(), Cell::text(format!("{:.4} → {:.4} (epoch {:.2})", a.loss, b.loss, b.epoch))));
        kv.push(("perplexity: start → best".into(), Cell::text(format!("{:.2} → {:.2}", a.perplexity, b.perplexity))));
        if let (Some(x), Some(y)) = (a.accuracy, b.accuracy) {
            kv.push(("masked-token accuracy: start → best".into(), Cell::text(format!("{x:.4} → {y:.4}"))));
        }
    }
    let mut body = key_values(&kv);
    if summary.is_null() {
        body.push_str(&note("The run has not finished (or was interrupted): this shows what it has written so far."));
    }
    for n in &notes {
        body.push_str(&note(n));
    }
    out.push(Section::new("summary", "Pretraining", body));

    let mut figures = Vec::new();
    let mut loss = Plot::new("Masked-LM loss", "epoch", "cross-entropy over masked tokens");
    if !steps.is_empty() {
        let per_step: Points = steps.iter().map(|s| (s.epoch, s.loss)).filter(|p| p.1.is_finite()).collect();
        let beta = smoothing_for(per_step.len());
        let smoothed: Vec<f64> = ema(&per_step.iter().map(|p| p.1).collect::<Vec<_>>(), beta);
        let smooth_pts: Points = per_step.iter().zip(smoothed).map(|(p, y)| (p.0, y)).collect();
        loss.lines.push(Line { width: 1.0, markers: false, ..Line::new("train, per step", per_step, GREY) });
        loss.lines.push(Line { markers: false, ..Line::new(format!("train, smoothed (EMA {beta:.2})"), smooth_pts, PALETTE[0]) });
    }
    let valid_loss = series(&records, "valid", |r| Some(r.loss));
    if !valid_loss.is_empty() {
        loss.lines.push(Line::new("validation", valid_loss, PALETTE[1]));
    }
    if !loss.lines.is_empty() {
        figures.push(figs.figure("mlm-loss", &Chart::Plot(loss), "Training loss per optimizer update and on the held-out text (fixed masks).")?);
    }
    let ppl = series(&records, "valid", |r| Some(r.perplexity));
    if !ppl.is_empty() {
        let mut p = Plot::new("Validation perplexity", "epoch", "exp(loss)");
        p.lines.push(Line::new("validation", ppl, PALETTE[1]));
        let train = series(&records, "train", |r| Some(r.perplexity));
        if !train.is_empty() {
            p.lines.push(Line { dashed: true, ..Line::new("train, epoch mean", train, PALETTE[2]) });
        }
        figures.push(figs.figure("perplexity", &Chart::Plot(p), "Perplexity of the masked tokens: exp of the mean cross-entropy.")?);
    }
    let acc = series(&records, "valid", |r| r.accuracy);
    if !acc.is_empty() {
        let mut p = Plot::new("Masked-token accuracy", "epoch", "share predicted exactly");
        p.lines.push(Line::new("validation", acc, PALETTE[3]));
        figures.push(figs.figure("masked-accuracy", &Chart::Plot(p), "Share of the held-out masked tokens whose most likely prediction is the original token.")?);
    }
    let lr: Points = steps.iter().map(|s| (s.step as f64, s.lr)).collect();
    if !lr.is_empty() {
        let mut p = Plot::new("Learning rate", "optimizer step", "learning rate");
        p.lines.push(Line { markers: lr.len() <= 20, ..Line::new("", lr, PALETTE[4]) });
        figures.push(figs.figure("lr", &Chart::Plot(p), "")?);
    }
    if !figures.is_empty() {
        out.push(Section::new("curves", "Curves", grid(&figures)));
    }
    Ok(out)
}
