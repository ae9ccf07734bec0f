//! Multi-label and regression runs end to end on the tiny random BERT: label lists, separated labels and
//! label columns; training lowers the loss and memorises a small set; thresholds tuned and saved; eval
//! and predict read the saved problem type; resume; cross-validation; bad input named by line and field.

use super::{bin, fixture, p, run, stderr, Fixture};

/// Texts and their label sets: `plot` marks `story`, `good`/`great` mark `praise`, `bad`/`awful` mark
/// `complaint`; some texts have no label at all.
const SETS: &[(&str, &[&str])] = &[
    ("the movie was good .", &["praise"]),
    ("the plot was great", &["story", "praise"]),
    ("the movie was bad .", &["complaint"]),
    ("the plot was awful", &["story", "complaint"]),
    ("the movie .", &[]),
    ("the plot .", &["story"]),
];

/// Texts and a score: good/great high, bad/awful low, plot adds a little.
const SCORES: &[(&str, f64)] =
    &[("the movie was good .", 4.5), ("the plot was great", 5.0), ("the movie was bad .", 1.0), ("the plot was awful", 1.5), ("the movie .", 3.0), ("the plot .", 3.5)];

fn write_multi_label(f: &Fixture) {
    let (mut jsonl, mut csv, mut cols) = (String::new(), String::from("id,text,tags\n"), String::from("text,story,praise,complaint\n"));
    for i in 0..18 {
        let (text, set) = SETS[i % SETS.len()];
        let list: Vec<String> = set.iter().map(|s| format!("\"{s}\"")).collect();
        jsonl.push_str(&format!("{{\"id\": \"r{i}\", \"text\": \"{text}\", \"label\": [{}]}}\n", list.join(", ")));
        csv.push_str(&format!("r{i},{text},{}\n", set.join(";")));
        let flag = |l: &str| u8::from(set.contains(&l));
        cols.push_str(&format!("{text},{},{},{}\n", flag("story"), flag("praise"), flag("complaint")));
    }
    std::fs::write(f.root.join("tags.jsonl"), jsonl).expect("write");
    std::fs::write(f.root.join("tags.csv"), csv).expect("write");
    std::fs::write(f.root.join("flags.csv"), cols).expect("write");
}

fn write_regression(f: &Fixture) {
    let mut csv = String::from("id,text,score\n");
    for i in 0..18 {
        let (text, y) = SCORES[i % SCORES.len()];
        csv.push_str(&format!("r{i},{text},{y}\n"));
    }
    std::fs::write(f.root.join("scores.csv"), csv).expect("write");
}

fn train(args: &[&str]) -> std::process::Output {
    let epochs = if args.contains(&"--epochs") { [].as_slice() } else { ["--epochs", "40"].as_slice() };
    let batch = if args.contains(&"--batch-size") { [].as_slice() } else { ["--batch-size", "6"].as_slice() };
    let max_len = if args.contains(&"--max-len") { [].as_slice() } else { ["--max-len", "16"].as_slice() };
    let base = ["train", "--lr", "3e-3", "--quiet"];
    bin().args(base.iter().chain(epochs).chain(batch).chain(max_len).chain(args)).env("RAYON_NUM_THREADS", "1").output().expect("train")
}

fn json_lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).expect("read");
    text.lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

fn config(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).expect("config")).expect("json")
}

/// The training loss of the first and last epoch in `metrics.jsonl`.
fn first_and_last_train_loss(run: &std::path::Path) -> (f64, f64) {
    let losses: Vec<f64> = json_lines(&run.join("metrics.jsonl")).iter().filter(|r| r["split"] == "train").map(|r| r["loss"].as_f64().expect("loss")).collect();
    (losses[0], losses[losses.len() - 1])
}

#[test]
fn multi_label_lists_train_memorise_tune_thresholds_and_predict_label_sets() {
    let f = fixture();
    write_multi_label(&f);
    let out = f.root.join("ml");
    let data_path = f.root.join("tags.jsonl");
    let data = p(&data_path);
    let o = train(&["--train", data, "--valid", data, "--model", p(&f.model), "--output", p(&out), "--tune-thresholds", "--early-stopping-metric", "f1_micro", "--epochs", "80", "--batch-size", "3"]);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let (first, last) = first_and_last_train_loss(&out);
    assert!(last < first * 0.5, "training lowers the loss: {first} → {last}");
    let best = out.join("best");
    let cfg = config(&best);
    assert_eq!(cfg["problem_type"], "multi_label_classification");
    assert_eq!(cfg["id2label"], serde_json::json!({"0": "complaint", "1": "praise", "2": "story"}));
    let thresholds = cfg["bertfit"]["thresholds"].as_array().expect("tuned thresholds saved");
    assert_eq!(thresholds.len(), 3);
    let report = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(report.contains("Per-label scores") && report.contains("Label co-occurrence"), "multi-label report sections");
    assert!(!report.contains("Confusion matrices"), "no single-label confusion matrix for a multi-label run");

    let o = run(&["eval", "--model", p(&best), "--data", data, "--json", "--quiet"]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["problem_type"], "multi_label");
    assert_eq!(json["multi_label"]["subset_accuracy"], 1.0, "the small set is memorised: {json}");
    assert_eq!(json["accuracy"], 1.0);
    assert!(json["multi_label"]["micro"]["f1"] == 1.0 && json["multi_label"]["lrap"] == 1.0, "{json}");
    let text = run(&["eval", "--model", p(&best), "--data", data, "--quiet"]);
    let report = String::from_utf8_lossy(&text.stdout);
    assert!(report.contains("samples avg") && report.contains("hamming loss"), "{report}");

    // the same labels from a separated CSV column and from 0/1 columns
    let o = run(&["eval", "--model", p(&best), "--data", p(&f.root.join("tags.csv")), "--label-column", "tags", "--label-separator", ";", "--json", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["multi_label"]["subset_accuracy"], 1.0);
    let o = run(&["eval", "--model", p(&best), "--data", p(&f.root.join("flags.csv")), "--label-columns", "story,praise,complaint", "--json", "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["multi_label"]["subset_accuracy"], 1.0);

    let pred = f.root.join("pred.csv");
    let o = run(&["predict", "--model", p(&best), "--data", p(&f.root.join("tags.csv")), "--output", p(&pred), "--quiet"]);
    assert!(o.status.success(), "predict failed: {}", stderr(&o));
    let csv = std::fs::read_to_string(&pred).expect("pred");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,labels,prob_complaint,prob_praise,prob_story"));
    assert_eq!(lines.next().map(|l| l.split(',').take(2).collect::<Vec<_>>()), Some(vec!["r0", "praise"]));
    assert!(lines.next().is_some_and(|l| l.starts_with("r1,praise|story,")), "{csv}");
    let jsonl = f.root.join("pred.jsonl");
    let o = run(&["predict", "--model", p(&best), "--data", data, "--output", p(&jsonl), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = json_lines(&jsonl);
    assert_eq!(rows[3]["labels"], serde_json::json!(["complaint", "story"]));
    assert_eq!(rows[4]["labels"], serde_json::json!([]));
    assert!(rows[0]["prob_praise"].as_f64().expect("p") > 0.5);

    // fine-tuning the tuned model further starts from its head, not from its thresholds
    let again = f.root.join("again");
    let o = train(&["--train", data, "--valid", data, "--model", p(&best), "--output", p(&again), "--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(config(&again.join("best"))["bertfit"].get("thresholds").is_none(), "thresholds of the previous model were carried over");
}

#[test]
fn multi_label_bad_input_names_line_and_label() {
    let f = fixture();
    write_multi_label(&f);
    let out = f.root.join("ml");
    let data_path = f.root.join("tags.jsonl");
    let data = p(&data_path);
    let o = train(&["--train", data, "--valid-fraction", "0", "--model", p(&f.model), "--output", p(&out), "--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bad = f.root.join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"the movie\", \"label\": []}\n{\"text\": \"the plot\", \"label\": [\"story\", \"sequel\"]}\n").expect("write");
    let o = run(&["eval", "--model", p(&out.join("best")), "--data", p(&bad), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 2") && stderr(&o).contains("unknown label `sequel`"), "{}", stderr(&o));
    // a multi-label head cannot be continued as another problem type
    let o = train(&["--train", data, "--model", p(&out.join("best")), "--output", p(&f.root.join("again")), "--problem-type", "single_label", "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("list of labels in a single-label run"), "{}", stderr(&o));
    // one label per row with the same three labels: the saved multi-label head would be continued
    let single = f.root.join("single.csv");
    std::fs::write(&single, "text,label\nthe movie was good,praise\nthe plot,story\nthe movie was bad,complaint\n").expect("write");
    let o = train(&["--train", p(&single), "--valid-fraction", "0", "--model", p(&out.join("best")), "--output", p(&f.root.join("again")), "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("problem_type") && stderr(&o).contains("trained for multi_label"), "{}", stderr(&o));
}

#[test]
fn regression_trains_on_standardised_targets_and_saves_values_in_target_units() {
    let f = fixture();
    write_regression(&f);
    let out = f.root.join("reg");
    let data_path = f.root.join("scores.csv");
    let data = p(&data_path);
    let o = train(&["--train", data, "--valid", data, "--label-column", "score", "--problem-type", "regression", "--model", p(&f.model), "--output", p(&out)]);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    assert!(stderr(&o).contains("best model (mse"), "{}", stderr(&o));
    let (first, last) = first_and_last_train_loss(&out);
    assert!(last < first * 0.5, "training lowers the loss: {first} → {last}");
    let best = out.join("best");
    let cfg = config(&best);
    assert_eq!((cfg["problem_type"].as_str(), cfg["num_labels"].as_u64().or(Some(cfg["id2label"].as_object().map_or(0, |m| m.len() as u64)))), (Some("regression"), Some(1)));
    assert_eq!(cfg["bertfit"]["scaling_folded"], true);
    let scaling = &cfg["bertfit"]["target_scaling"];
    assert!((scaling["mean"].as_f64().expect("mean") - 3.0833).abs() < 1e-3, "{scaling}");
    let report = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(report.contains("Predicted vs true") && report.contains("Residuals"), "regression report sections");

    let o = run(&["eval", "--model", p(&best), "--data", data, "--label-column", "score", "--json", "--quiet"]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let r = &json["regression"];
    assert!(r["r2"].as_f64().expect("r2") > 0.9 && r["mae"].as_f64().expect("mae") < 0.5, "{json}");
    assert!(json["accuracy"].is_null(), "no classification scores for regression: {json}");
    // the loss is in standardised units, as in training's validation of the same file and model
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).expect("summary")).expect("json");
    let (eval_loss, valid_loss) = (json["loss"].as_f64().expect("loss"), summary["best"]["loss"].as_f64().expect("best loss"));
    assert!((eval_loss - valid_loss).abs() <= 1e-3 * valid_loss.max(1e-3), "eval loss {eval_loss} vs validation {valid_loss}");
    let o = run(&["eval", "--model", p(&best), "--data", data, "--label-column", "score", "--report", p(&f.root.join("r.html")), "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "eval --report is single-label only: {}", stderr(&o));

    let pred = f.root.join("pred.csv");
    let o = run(&["predict", "--model", p(&best), "--data", data, "--output", p(&pred), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&pred).expect("pred");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,prediction"));
    let values: Vec<f64> = lines.map(|l| l.split(',').nth(1).expect("value").parse().expect("number")).collect();
    // in the targets' units: the good/great texts near 5, the bad/awful ones near 1
    assert!(values[1] > 4.0 && values[2] < 2.0, "{values:?}");

    let bad = f.root.join("bad.csv");
    std::fs::write(&bad, "text,score\nthe movie,3\nthe plot,high\n").expect("write");
    let o = run(&["eval", "--model", p(&best), "--data", p(&bad), "--label-column", "score", "--quiet"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 3") && stderr(&o).contains("`score`") && stderr(&o).contains("`high`"), "{}", stderr(&o));
    let o = train(&["--train", p(&bad), "--label-column", "score", "--problem-type", "regression", "--model", p(&f.model), "--output", p(&f.root.join("r2"))]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 3") && stderr(&o).contains("expected a number"), "{}", stderr(&o));
}

/// A multi-label run on the engine and a regression run on the graph, killed with SIGKILL mid-epoch
/// and resumed, end with the uninterrupted runs' exact weights (the regression checkpoints keep the
/// standardised weights, the scaling recorded beside them).
#[test]
fn killed_multi_label_and_regression_runs_resume_to_bit_identical_weights() {
    use super::resume::{final_hashes, resume, spawn, wait_for_pause};
    let f = fixture();
    write_multi_label(&f);
    write_regression(&f);
    let runs: [(&str, Vec<&str>); 2] = [
        ("ml", vec!["--train", "tags.jsonl", "--engine", "fused", "--class-weights", "balanced"]),
        ("reg", vec!["--train", "scores.csv", "--label-column", "score", "--problem-type", "regression", "--loss", "huber", "--engine", "graph"]),
    ];
    for (name, extra) in runs {
        let args = |out: &std::path::Path| -> Vec<String> {
            let mut a: Vec<String> = ["train", "--model", p(&f.model), "--output", p(out), "--epochs", "3", "--batch-size", "4", "--lr", "3e-3", "--max-len", "16"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            a.extend(["--save-every-steps", "1", "--keep-checkpoints", "3", "--threads", "1", "--quiet", "--valid-fraction", "0.25"].map(String::from));
            a.extend(extra.iter().map(|s| if s.ends_with(".jsonl") || s.ends_with(".csv") { p(&f.root.join(s)).to_string() } else { s.to_string() }));
            a
        };
        let reference = f.root.join(format!("{name}-reference"));
        let o = bin().args(args(&reference)).output().expect("reference run");
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let run = f.root.join(format!("{name}-killed"));
        let mut child = spawn(&args(&run), "step:5", None);
        let rest = wait_for_pause(&mut child, "step:5");
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        drop(rest);
        let o = resume(&run);
        assert!(o.status.success() && stderr(&o).contains("resuming from"), "{name}: {}", stderr(&o));
        assert_eq!(final_hashes(&run), final_hashes(&reference), "{name}: weights differ after the resume");
    }
}

/// Cross-validation of both problem types: folds stratified by the rarest label and by value decile,
/// out-of-fold rows with label sets and values, and each fold's scores in the summary.
#[test]
fn cross_validation_of_multi_label_and_regression_runs() {
    let f = fixture();
    write_multi_label(&f);
    write_regression(&f);
    for (name, extra) in [("ml", vec!["--train", "tags.jsonl"]), ("reg", vec!["--train", "scores.csv", "--label-column", "score", "--problem-type", "regression"])] {
        let out = f.root.join(format!("{name}-cv"));
        let mut a: Vec<String> = ["cv", "--folds", "3", "--model", p(&f.model), "--output", p(&out), "--epochs", "2", "--batch-size", "6", "--max-len", "16", "--quiet"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        a.extend(extra.iter().map(|s| if s.ends_with(".jsonl") || s.ends_with(".csv") { p(&f.root.join(s)).to_string() } else { s.to_string() }));
        let o = bin().args(&a).env("RAYON_NUM_THREADS", "1").output().expect("cv");
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let oof = std::fs::read_to_string(out.join("oof.csv")).expect("oof");
        let header = oof.lines().next().expect("header");
        let want = if name == "ml" { "row,id,fold,gold,label,prob_complaint,prob_praise,prob_story" } else { "row,id,fold,gold,label" };
        assert_eq!(header, want);
        assert_eq!(oof.lines().count(), 19, "{oof}");
        if name == "ml" {
            assert!(oof.lines().nth(2).is_some_and(|l| l.contains(",praise|story,")), "the gold set of row 1: {oof}");
        }
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("cv_summary.json")).expect("summary")).expect("json");
        assert_eq!(summary["runs"].as_array().map(Vec::len), Some(3), "{summary}");
        let table = std::fs::read_to_string(out.join("cv_summary.md")).expect("table");
        let columns = if name == "ml" { "| run | f1_micro | f1_macro |" } else { "| run | mse | rmse | mae | r2 |" };
        assert!(table.contains(columns), "{table}");
        assert!(summary["valid"][if name == "ml" { "lrap" } else { "spearman" }]["n"] == 3, "{summary}");
    }
}

/// Long texts whose label shows only past the first window: truncation cannot tell them apart, windows
/// (trained on every window, pooled at eval) can; the saved model keeps scoring windows, and
/// `--long-text truncate` at eval goes back to the first window.
#[test]
fn long_texts_as_windows_see_what_truncation_cuts_off() {
    let f = fixture();
    let mut csv = String::from("id,text,label\n");
    for i in 0..12 {
        let filler = "the ".repeat(8 + i % 3);
        let (end, label) = if i % 2 == 0 { ("movie was good .", "pos") } else { ("movie was bad .", "neg") };
        csv.push_str(&format!("r{i},{filler}{end},{label}\n"));
    }
    let data_path = f.root.join("long.csv");
    std::fs::write(&data_path, csv).expect("write");
    let data = p(&data_path);
    let out = f.root.join("long");
    let o = train(&["--train", data, "--valid", data, "--model", p(&f.model), "--output", p(&out), "--max-len", "8", "--long-text", "chunk", "--stride", "2", "--train-windows", "all", "--epochs", "30"]);
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let best = out.join("best");
    assert_eq!(config(&best)["bertfit"]["chunking"], serde_json::json!({"stride": 2, "pooling": "mean"}));
    let accuracy = |extra: &[&str]| -> f64 {
        let mut args = vec!["eval", "--model", p(&best), "--data", data, "--json", "--quiet"];
        args.extend(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        json["accuracy"].as_f64().expect("accuracy")
    };
    assert_eq!(accuracy(&[]), 1.0, "windows see the end of every text");
    assert_eq!(accuracy(&["--long-text", "chunk", "--chunk-pooling", "max"]), 1.0);
    assert_eq!(accuracy(&["--long-text", "truncate"]), 0.5, "the first window is only filler");
    let o = run(&["eval", "--model", p(&best), "--data", data, "--stride", "3", "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "--stride alone: {}", stderr(&o));
    let o = run(&["eval", "--model", p(&best), "--data", data, "--long-text", "chunk", "--stride", "6", "--quiet"]);
    assert_eq!(o.status.code(), Some(2), "a stride as long as a window: {}", stderr(&o));
    assert!(stderr(&o).contains("stride"), "{}", stderr(&o));
    let pred = f.root.join("long-pred.csv");
    let o = run(&["predict", "--model", p(&best), "--data", data, "--output", p(&pred), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let labels: Vec<String> = std::fs::read_to_string(&pred).expect("pred").lines().skip(1).map(|l| l.split(',').nth(1).expect("label").to_string()).collect();
    assert_eq!(labels.iter().step_by(2).filter(|l| *l == "pos").count(), 6, "{labels:?}");
    assert_eq!(labels.iter().skip(1).step_by(2).filter(|l| *l == "neg").count(), 6, "{labels:?}");
}
