//! End-to-end checks of the report on synthetic run directories: every section and chart is there,
//! the page is well-formed and self-contained, user text is escaped, PNGs are real PNGs, and partial,
//! empty and multi-run directories still give a report.

use std::path::Path;

use serde_json::{json, Value};

use super::{write_eval_report, write_run_report, ReportOptions};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
const HOSTILE: &str = "<script>alert('x')</script> & \"quotes\"";

fn labels() -> Vec<String> {
    vec!["negative".into(), "positive <b>".into()]
}

fn scores(confusion: [[u64; 2]; 2]) -> Value {
    let l = labels();
    let [[tn, fp], [fn_, tp]] = confusion;
    let class = |label: &str, tp: u64, fp: u64, fn_: u64| {
        let p = tp as f64 / (tp + fp).max(1) as f64;
        let r = tp as f64 / (tp + fn_).max(1) as f64;
        json!({"label": label, "precision": p, "recall": r, "f1": if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 }, "support": tp + fn_})
    };
    json!({
        "accuracy": (tn + tp) as f64 / (tn + fp + fn_ + tp) as f64,
        "per_class": [class(&l[0], tn, fn_, fp), class(&l[1], tp, fp, fn_)],
        "confusion": [[tn, fp], [fn_, tp]],
        "labels": l,
    })
}

fn record(split: &str, epoch: f64, step: usize, loss: f64, acc: f64, f1: f64, confusion: [[u64; 2]; 2]) -> Value {
    json!({
        "epoch": epoch, "step": step, "split": split, "loss": loss, "accuracy": acc, "f1_macro": f1,
        "f1_weighted": f1, "precision_macro": f1, "recall_macro": f1, "mcc": 2.0 * acc - 1.0,
        "learning_rate": 1e-5, "elapsed_s": 10.0 * epoch, "examples": confusion.iter().flatten().sum::<u64>(),
        "scores": scores(confusion),
    })
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

fn predictions(path: &Path, n: usize) {
    let l = labels();
    let mut w = csv::Writer::from_path(path).expect("csv");
    w.write_record(["row", "id", "text", "gold", "pred", &format!("prob_{}", l[0]), &format!("prob_{}", l[1])]).expect("header");
    for i in 0..n {
        let gold = i % 2;
        // Scores that mostly agree with the gold label, with a few confident mistakes.
        let p1 = if gold == 1 { 0.55 + 0.4 * ((i * 7 % 10) as f32 / 10.0) } else { 0.05 + 0.5 * ((i * 3 % 10) as f32 / 10.0) };
        let p1 = if i % 9 == 0 { 1.0 - p1 } else { p1 };
        let text = if i == 0 { HOSTILE.to_string() } else { format!("example text number {i}") };
        let pred = usize::from(p1 > 0.5);
        w.write_record([i.to_string(), String::new(), text, l[gold].clone(), l[pred].clone(), format!("{:.4}", 1.0 - p1), format!("{p1:.4}")])
            .expect("row");
    }
    w.flush().expect("flush");
}

/// A finished binary run with every file the trainer writes.
fn full_run(dir: &Path) {
    let config = json!({
        "model": "tiny-bert", "output": dir,
        "data": {"train": "train.csv", "valid": null, "test": "test.csv", "text_column": "text", "label_column": "label", "valid_fraction": 0.1, "test_fraction": 0.0},
        "train": {"epochs": 3, "batch_size": 8, "lr": 5e-5, "max_len": 16, "seed": 1, "warmup_ratio": 0.1, "scheduler": {"kind": "linear"}, "early_stopping_metric": "f1_macro", "patience": 2},
    });
    write(&dir.join("run_config.json"), &config.to_string());
    let valid = [
        record("valid", 1.0, 10, 0.62, 0.70, 0.69, [[14, 6], [6, 14]]),
        record("valid", 2.0, 20, 0.48, 0.85, 0.85, [[17, 3], [3, 17]]),
        record("valid", 3.0, 30, 0.51, 0.80, 0.80, [[16, 4], [4, 16]]),
    ];
    let mut lines = Vec::new();
    for (e, v) in valid.iter().enumerate() {
        let acc = 0.6 + 0.1 * e as f64;
        lines.push(record("train", e as f64 + 1.0, (e + 1) * 10, 0.7 - 0.15 * e as f64, acc, acc, [[30, 10], [10, 30]]).to_string());
        lines.push(v.to_string());
    }
    let test = record("test", 2.0, 20, 0.5, 0.82, 0.82, [[16, 4], [3, 17]]);
    lines.push(test.to_string());
    write(&dir.join("metrics.jsonl"), &(lines.join("\n") + "\n"));
    let steps: Vec<String> = (1..=30)
        .map(|s| {
            let lr = if s <= 3 { 5e-5 * s as f64 / 3.0 } else { 5e-5 * (30 - s) as f64 / 27.0 };
            json!({"step": s, "epoch": s as f64 / 10.0, "loss": 0.7 - 0.01 * s as f64 + 0.05 * ((s % 3) as f64), "lr": lr}).to_string()
        })
        .collect();
    write(&dir.join("steps.jsonl"), &(steps.join("\n") + "\n"));
    let summary = json!({
        "labels": labels(), "train_examples": 80, "valid_examples": 40, "test_examples": 40, "epochs": 3, "steps": 30,
        "stop_reason": "completed 3 epochs", "train_seconds": 31.5, "train_tokens_per_s": 1234.6,
        "best": valid[1], "test": test, "truncated_share": 0.1,
    });
    write(&dir.join("summary.json"), &summary.to_string());
    let lengths: Vec<usize> = (0..80).map(|i| 3 + (i * 37) % 25).collect();
    let stats = json!({"max_len": 16, "splits": {
        "train": {"examples": 80, "label_counts": {"negative": 40, "positive <b>": 40}, "token_lengths": lengths, "truncated": 35},
        "valid": {"examples": 40, "label_counts": {"negative": 20, "positive <b>": 20}, "token_lengths": [5, 9, 20], "truncated": 1},
        "test": {"examples": 40, "label_counts": {"negative": 20, "positive <b>": 20}, "token_lengths": [4, 30], "truncated": 1},
    }});
    write(&dir.join("data_stats.json"), &stats.to_string());
    std::fs::create_dir_all(dir.join("predictions")).expect("mkdir");
    predictions(&dir.join("predictions/valid.csv"), 40);
    predictions(&dir.join("predictions/test.csv"), 40);
}

/// Checks that elements open and close in order (void and self-closed elements aside).
fn assert_balanced(html: &str) {
    const VOID: [&str; 6] = ["meta", "br", "img", "input", "link", "hr"];
    let mut stack: Vec<String> = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find('<') {
        let Some(len) = rest[start..].find('>') else { panic!("unclosed tag at {:?}", &rest[start..start + 40.min(rest.len() - start)]) };
        let tag = &rest[start + 1..start + len];
        rest = &rest[start + len + 1..];
        if tag.starts_with('!') || tag.ends_with('/') {
            continue;
        }
        let name: String = tag.trim_start_matches('/').chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
        assert!(!name.is_empty(), "bad tag <{tag}>");
        if let Some(closing) = tag.strip_prefix('/') {
            let closing: String = closing.chars().take_while(|c| c.is_ascii_alphanumeric()).collect();
            assert_eq!(stack.pop().as_deref(), Some(closing.as_str()), "mismatched </{closing}>");
        } else if !VOID.contains(&name.as_str()) {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
}

fn assert_self_contained(html: &str) {
    for bad in ["http://", "https://", "src=\"//", "<script", "<link", "@import", "url("] {
        assert!(!html.contains(bad), "page contains {bad}");
    }
}

#[test]
fn a_full_run_report_has_every_section_and_chart() {
    let dir = tempfile::tempdir().expect("tempdir");
    full_run(dir.path());
    let path = write_run_report(dir.path(), &ReportOptions { png: true }).expect("report");
    assert_eq!(path, dir.path().join("report.html"));
    let html = std::fs::read_to_string(&path).expect("read");
    assert_balanced(&html);
    assert_self_contained(&html);
    for id in ["summary", "loss", "metrics", "lr", "confusion", "per-class", "labels", "lengths", "roc-pr", "errors"] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "missing section {id}");
    }
    let charts = [
        "loss", "metrics", "lr", "confusion-valid-counts", "confusion-valid-normalised", "confusion-test-counts",
        "confusion-test-normalised", "labels", "token-lengths", "valid-roc", "valid-pr", "test-roc", "test-pr",
    ];
    for slug in charts {
        assert!(html.contains(&format!("<figure class=\"chart\" id=\"fig-{slug}\">\n<svg")), "missing chart {slug}");
        let png = std::fs::read(dir.path().join("report").join(format!("{slug}.png"))).expect("png written");
        assert!(png.starts_with(&PNG_SIGNATURE), "{slug}.png is not a PNG");
    }
    assert_eq!(html.matches("<svg").count(), charts.len());
    // User text is escaped everywhere, labels included.
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "hostile text not shown escaped");
    assert!(!html.contains("positive <b>") && html.contains("positive &lt;b&gt;"));
    // Summary facts.
    assert!(html.contains("tiny-bert") && html.contains("completed 3 epochs") && html.contains("1235 tokens/s"));
    assert!(html.contains("epoch 2.00 (step 20): f1_macro 0.8500"), "best model line");
    assert!(html.contains("AUC"));
    assert!(!dir.path().join("report.html.tmp").exists());
}

#[test]
fn an_interrupted_run_with_some_files_still_reports() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = json!({"model": "m", "train": {"epochs": 5, "early_stopping_metric": "loss"}});
    write(&dir.path().join("run_config.json"), &config.to_string());
    let lines = [
        record("train", 1.0, 10, 0.7, 0.6, 0.6, [[30, 10], [10, 30]]).to_string(),
        record("valid", 1.0, 10, 0.6, 0.7, 0.7, [[14, 6], [6, 14]]).to_string(),
        "{\"epoch\": 2.0, \"st".to_string(),
    ];
    write(&dir.path().join("metrics.jsonl"), &lines.join("\n"));
    let path = write_run_report(dir.path(), &ReportOptions::default()).expect("report");
    let html = std::fs::read_to_string(path).expect("read");
    assert_balanced(&html);
    assert_self_contained(&html);
    assert!(html.contains("No summary.json"));
    assert!(html.contains("incomplete last line"));
    assert!(html.contains("lowest validation loss"));
    assert!(html.contains("data_stats.json is missing"));
    // The best model's confusion matrix comes from metrics.jsonl; label counts from class supports.
    assert!(html.contains("id=\"fig-confusion-valid-counts\"") && html.contains("id=\"fig-labels\""));
    assert!(!dir.path().join("report").exists(), "no PNGs unless asked");
}

#[test]
fn an_empty_directory_gives_a_report_of_notes_and_a_missing_one_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let html = std::fs::read_to_string(write_run_report(dir.path(), &ReportOptions::default()).expect("report")).expect("read");
    assert_balanced(&html);
    assert!(html.contains("No loss has been logged yet"));
    assert!(!html.contains("<svg"));
    assert!(write_run_report(&dir.path().join("nope"), &ReportOptions::default()).is_err());
    write(&dir.path().join("summary.json"), "{not json");
    let e = write_run_report(dir.path(), &ReportOptions::default()).expect_err("malformed").to_string();
    assert!(e.contains("summary.json"), "{e}");
}

#[test]
fn a_cross_validation_directory_reports_its_folds() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut runs = Vec::new();
    for k in 0..2 {
        let fold = dir.path().join(format!("fold-{k}"));
        full_run(&fold);
        let valid = record("valid", 2.0, 20, 0.5, 0.8 + 0.05 * k as f64, 0.8, [[17, 3], [4, 16]]);
        runs.push(json!({"name": format!("fold-{k}"), "dir": fold, "valid": valid, "test": null}));
    }
    runs.push(json!({"name": "../escape", "dir": "/", "valid": null, "test": null}));
    let spread = json!({"mean": 0.825, "std": 0.035, "min": 0.8, "max": 0.85, "n": 2});
    let summary = json!({
        "kind": "cv", "runs": runs, "valid": {"accuracy": spread, "loss": {"mean": null, "std": null, "min": null, "max": null, "n": 2}},
        "test": {}, "oof": scores([[35, 5], [8, 32]]), "table": "| run |",
    });
    write(&dir.path().join("cv_summary.json"), &summary.to_string());
    write(&dir.path().join("run_config.json"), &json!({"model": "tiny-bert"}).to_string());
    let html = std::fs::read_to_string(write_run_report(dir.path(), &ReportOptions { png: true }).expect("report")).expect("read");
    assert_balanced(&html);
    assert_self_contained(&html);
    assert!(html.contains("<section id=\"runs\">") && html.contains("Cross-validation"));
    assert!(html.contains("<section id=\"oof\">") && html.contains("id=\"fig-confusion-oof-counts\""));
    assert!(html.contains("href=\"fold-1/report.html\""));
    assert!(html.contains("0.8250 ± 0.0350"));
    assert!(dir.path().join("fold-0/report.html").is_file() && dir.path().join("fold-1/report/loss.png").is_file());
    assert!(dir.path().join("report/runs.png").is_file());
    assert!(!dir.path().join("../escape/report.html").exists());
}

#[test]
fn an_evaluation_report_for_binary_and_multiclass_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("eval.html");
    let gold = [0, 1, 1, 0, 1];
    let probs = vec![vec![0.9, 0.1], vec![0.2, 0.8], vec![0.7, 0.3], vec![0.4, 0.6], vec![0.1, 0.9]];
    let texts: Vec<String> = ["a", "b", HOSTILE, "d", "e"].iter().map(|s| s.to_string()).collect();
    write_eval_report(&path, "Eval <of> test.csv", &labels(), &gold, &probs, &texts, &ReportOptions { png: true }).expect("report");
    let html = std::fs::read_to_string(&path).expect("read");
    assert_balanced(&html);
    assert_self_contained(&html);
    assert!(html.contains("<title>Eval &lt;of&gt; test.csv</title>"));
    for id in ["summary", "confusion", "per-class", "labels", "roc-pr", "errors"] {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "missing section {id}");
    }
    assert!(html.contains("id=\"fig-eval-roc\"") && html.contains("ROC AUC"));
    assert!(html.contains("&lt;script&gt;"));
    assert!(std::fs::read(dir.path().join("eval/eval-pr.png")).expect("png").starts_with(&PNG_SIGNATURE));

    let three: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let probs3 = vec![vec![0.8, 0.1, 0.1], vec![0.1, 0.8, 0.1], vec![0.5, 0.2, 0.3]];
    let path3 = dir.path().join("three.html");
    write_eval_report(&path3, "three", &three, &[0, 1, 2], &probs3, &[], &ReportOptions::default()).expect("report");
    let html = std::fs::read_to_string(&path3).expect("read");
    assert!(html.contains("Not a binary task (3 classes)"));
    assert!(write_eval_report(&path3, "bad", &three, &[0, 3], &probs3[..2], &[], &ReportOptions::default()).is_err());
    assert!(write_eval_report(&path3, "bad", &three, &[0], &probs3[..1], &three, &ReportOptions::default()).is_err());
}
