//! End-to-end tests of the `bertfit` binary: train → eval → predict on a tiny random BERT, exit codes
//! and error messages for bad input and out-of-range flags, config files, plain progress lines when
//! standard error is not a terminal, and `--help` snapshots; the HTML report and resume in submodules.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bertfit::model::random::{tiny_config, write_random_model};

#[path = "cli/pretrain.rs"]
mod pretrain;
#[path = "cli/problems.rs"]
mod problems;
#[path = "cli/report.rs"]
mod report;
#[path = "cli/resume.rs"]
mod resume;
#[path = "cli/serve.rs"]
mod serve;
#[path = "cli/stream.rs"]
mod stream;

const WORDS: &[&str] =
    &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "good", "great", "bad", "awful", "plot", "."];

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bertfit"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).env("RAYON_NUM_THREADS", "1").output().expect("run bertfit")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    model: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().to_path_buf();
    let model = root.join("tiny");
    let vocab: Vec<String> = WORDS.iter().map(|s| s.to_string()).collect();
    write_random_model(&model, &tiny_config(WORDS.len()), &vocab, 11).expect("model");
    let mut jsonl = String::new();
    let mut csv = String::from("id,text,label\n");
    for i in 0..12 {
        let (text, label) = match i % 4 {
            0 => ("the movie was good .", "pos"),
            1 => ("the plot was great", "pos"),
            2 => ("the movie was bad .", "neg"),
            _ => ("the plot was awful", "neg"),
        };
        jsonl.push_str(&format!("{{\"id\": \"r{i}\", \"text\": \"{text}\", \"label\": \"{label}\"}}\n"));
        csv.push_str(&format!("r{i},{text},{label}\n"));
    }
    std::fs::write(root.join("train.jsonl"), jsonl).expect("write");
    std::fs::write(root.join("data.csv"), csv).expect("write");
    Fixture { _dir: dir, root, model }
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

fn train_args<'a>(f: &'a Fixture, out: &'a str) -> Vec<String> {
    [
        "train", "--train", p(&f.root.join("train.jsonl")), "--valid", p(&f.root.join("data.csv")), "--model", p(&f.model),
        "--output", out, "--epochs", "20", "--batch-size", "4", "--lr", "3e-3", "--max-len", "16", "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn train_eval_predict_end_to_end() {
    let f = fixture();
    let out = f.root.join("run");
    let args = train_args(&f, p(&out));
    let o = bin().args(&args).output().expect("train");
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    assert!(stderr(&o).contains("best model"), "{}", stderr(&o));

    let best = out.join("best");
    let o = run(&["eval", "--model", p(&best), "--data", p(&f.root.join("data.csv")), "--json", "--quiet"]);
    assert!(o.status.success(), "eval failed: {}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    for key in ["accuracy", "f1_macro", "precision_macro", "recall_macro", "mcc", "confusion_matrix", "labels", "per_class"] {
        assert!(json.get(key).is_some(), "eval --json lacks {key}");
    }
    assert_eq!(json["accuracy"], 1.0, "{json}");
    assert_eq!(json["labels"], serde_json::json!(["neg", "pos"]));
    assert_eq!(json["per_class"]["pos"]["support"], 6);

    let text = run(&["eval", "--model", p(&best), "--data", p(&f.root.join("data.csv")), "--quiet"]);
    let table = String::from_utf8_lossy(&text.stdout);
    assert!(table.contains("macro avg") && table.contains("gold \\ pred"), "{table}");

    let pred = f.root.join("pred.csv");
    let o = run(&["predict", "--model", p(&best), "--data", p(&f.root.join("data.csv")), "--output", p(&pred), "--quiet"]);
    assert!(o.status.success(), "predict failed: {}", stderr(&o));
    let csv = std::fs::read_to_string(&pred).expect("pred");
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("id,label,prob_neg,prob_pos"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12);
    assert_eq!(rows[0][0], "r0");
    assert_eq!(rows[0][1], "pos");
    assert_eq!(rows[2][1], "neg");
    for r in &rows {
        let s: f64 = r[2].parse::<f64>().expect("p") + r[3].parse::<f64>().expect("p");
        assert!((s - 1.0).abs() < 1e-5, "probabilities sum to {s}");
    }

    let o = run(&["predict", "--model", p(&best), "--text", "the plot was awful", "--text", "the movie was great"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let labels: Vec<&str> = stdout.lines().map(|l| l.split('\t').next().unwrap_or("")).collect();
    assert_eq!(labels, vec!["neg", "pos"], "{stdout}");
}

#[test]
fn bf16_precision_trains_and_is_recorded() {
    let f = fixture();
    let out = f.root.join("run");
    let mut args = train_args(&f, p(&out));
    args.extend(["--precision".into(), "bf16".into()]);
    let o = bin().args(&args).output().expect("train");
    assert!(o.status.success(), "{}", stderr(&o));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run_config.json")).expect("cfg")).expect("json");
    assert_eq!(saved["train"]["precision"], "bf16");
    // The same run in f32 ends with different weights: the bf16 products really ran.
    let f32_out = f.root.join("run-f32");
    let o = bin().args(train_args(&f, p(&f32_out))).output().expect("train f32");
    assert!(o.status.success(), "{}", stderr(&o));
    let weights = |dir: &Path| std::fs::read(dir.join("best/model.safetensors")).expect("weights");
    assert_ne!(weights(&out), weights(&f32_out));
    let o = run(&["eval", "--model", p(&out.join("best")), "--data", p(&f.root.join("data.csv")), "--json", "--quiet", "--precision", "bf16"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(json["accuracy"], 1.0, "the tiny task is learnt in bf16 too: {json}");
    let o = run(&["eval", "--model", p(&out.join("best")), "--data", p(&f.root.join("data.csv")), "--precision", "f16"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn config_file_is_read_and_flags_override_it() {
    let f = fixture();
    let out = f.root.join("run");
    let cfg = f.root.join("run.toml");
    std::fs::write(&cfg, "epochs = 1\nbatch_size = 6\nlr = 1e-4\nscheduler = \"cosine\"\nhead_hidden = \"8\"\n").expect("write");
    let mut args = train_args(&f, p(&out));
    args.extend(["--config".into(), p(&cfg).into(), "--epochs".into(), "2".into()]);
    // train_args already sets --epochs 20; the last flag given wins for clap, so drop the first.
    let pos = args.iter().position(|a| a == "--epochs").expect("epochs");
    args.drain(pos..pos + 2);
    let pos = args.iter().position(|a| a == "--batch-size").expect("bs");
    args.drain(pos..pos + 2);
    let o = bin().args(&args).output().expect("train");
    assert!(o.status.success(), "{}", stderr(&o));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run_config.json")).expect("cfg")).expect("json");
    assert_eq!(saved["train"]["epochs"], 2, "flag overrides file");
    assert_eq!(saved["train"]["batch_size"], 6, "file value used");
    assert_eq!(saved["train"]["scheduler"]["kind"], "cosine");
    assert_eq!(saved["train"]["head"]["hidden"], serde_json::json!([8]));
    // the device that ran is recorded, never `auto` (no GPU in this build or on this machine: the CPU)
    if !cfg!(feature = "cuda") {
        assert_eq!(saved["train"]["device"], "cpu");
    }
}

fn assert_user_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit code 2, got {:?}: {err}", o.status.code());
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}: {err}");
    }
}

#[test]
fn bad_input_gives_clear_errors_and_exit_code_2() {
    let f = fixture();
    let out = f.root.join("run");
    let base = train_args(&f, p(&out));
    let with = |extra: &[(&str, &str)]| -> Output {
        let mut a = base.clone();
        for (k, v) in extra {
            if let Some(i) = a.iter().position(|x| x == k) {
                a[i + 1] = v.to_string();
            } else {
                a.extend([k.to_string(), v.to_string()]);
            }
        }
        bin().args(&a).output().expect("run")
    };
    assert_user_error(&with(&[("--train", "/nonexistent/train.csv")]), &["/nonexistent/train.csv"]);
    assert_user_error(&with(&[("--text-column", "sentence")]), &["train.jsonl", "sentence"]);
    assert_user_error(&with(&[("--lr", "0")]), &["lr"]);
    assert_user_error(&with(&[("--early-stopping-metric", "auc")]), &["early-stopping-metric", "auc"]);
    assert_user_error(&with(&[("--model", p(&f.root))]), &["config.json"]);
    let bad = f.root.join("bad.jsonl");
    std::fs::write(&bad, "{\"text\": \"a\", \"label\": \"x\"}\n{\"text\": \"b\", \"label\": \"y\"\n").expect("write");
    assert_user_error(&with(&[("--train", p(&bad))]), &["bad.jsonl", "line 2"]);
    let cfg = f.root.join("bad.toml");
    std::fs::write(&cfg, "epochs = 1\nlearning_rate = 3\n").expect("write");
    assert_user_error(&with(&[("--config", p(&cfg))]), &["bad.toml", "learning_rate"]);
    // Unknown label at evaluation time names file, line and field.
    let o = Command::new(env!("CARGO_BIN_EXE_bertfit")).args(&base).output().expect("train");
    assert!(o.status.success(), "{}", stderr(&o));
    let odd = f.root.join("odd.csv");
    std::fs::write(&odd, "text,label\nthe movie,pos\nthe plot,meh\n").expect("write");
    let o = run(&["eval", "--model", p(&out.join("best")), "--data", p(&odd), "--quiet"]);
    assert_user_error(&o, &["odd.csv", "line 3", "meh"]);
    // Unusable model folder for eval: an untrained encoder has no classifier.
    let o = run(&["eval", "--model", p(&f.model), "--data", p(&odd), "--quiet"]);
    assert_user_error(&o, &["id2label"]);
    // Bad usage is exit code 2 as well (clap).
    assert_eq!(run(&["train", "--epochs", "many"]).status.code(), Some(2));
    // Devices: a misspelt one names the flag; CUDA in a build without it says how to get it.
    assert_user_error(&with(&[("--device", "tpu")]), &["device", "tpu", "cuda:N"]);
    assert_eq!(run(&["predict", "--model", p(&out.join("best")), "--text", "x", "--device", "tpu"]).status.code(), Some(2));
    if !cfg!(feature = "cuda") {
        assert_user_error(&with(&[("--device", "cuda")]), &["cuda:0", "without CUDA support", "--device cpu"]);
        let o = run(&["predict", "--model", p(&out.join("best")), "--text", "x", "--device", "cuda:1", "--quiet"]);
        assert_user_error(&o, &["cuda:1", "without CUDA support"]);
    }
}

/// Negative, zero or out-of-range numbers are usage errors that name the flag and the allowed range
/// (before any file is read, so no fixture is needed), rather than clap's "unexpected argument '-3'".
#[test]
fn out_of_range_numeric_flags_name_the_flag_and_the_range() {
    let cases: &[(&[&str], &str, &str)] = &[
        (&["train", "--epochs", "-3"], "'--epochs <EPOCHS>'", "must be an integer ≥ 1"),
        (&["train", "--lr", "-1"], "'--lr <LR>'", "must be a number > 0"),
        (&["train", "--lr", "0"], "'--lr <LR>'", "must be a number > 0"),
        (&["train", "--batch-size", "0"], "'--batch-size <BATCH_SIZE>'", "must be an integer ≥ 1"),
        (&["train", "--warmup-ratio", "1.5"], "'--warmup-ratio <WARMUP_RATIO>'", "must be a number in [0, 1)"),
        (&["train", "--valid-fraction=-0.1"], "'--valid-fraction <VALID_FRACTION>'", "must be a number in [0, 1)"),
        (&["train", "--max-len", "2"], "'--max-len <MAX_LEN>'", "must be an integer ≥ 4"),
        (&["train", "--weight-decay", "-0.01"], "'--weight-decay <WEIGHT_DECAY>'", "must be a number ≥ 0"),
        (&["train", "--seed", "-1"], "'--seed <SEED>'", "must be an integer ≥ 0"),
        (&["cv", "--folds", "1"], "'--folds <FOLDS>'", "must be an integer ≥ 2"),
        (&["eval", "--model", "m", "--data", "d.csv", "--batch-size", "-8"], "'--batch-size <BATCH_SIZE>'", "must be an integer ≥ 1"),
        (&["predict", "--model", "m", "--text", "t", "--threads", "-2"], "'--threads <THREADS>'", "must be an integer ≥ 0"),
    ];
    for (args, flag, range) in cases {
        let o = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag) && err.contains(range), "{args:?} should name {flag} and {range:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
    }
    // In-range values (0 where it is allowed) get past parsing: only the missing --train is reported.
    let o = run(&["train", "--epochs", "1", "--lr", "1e-4", "--warmup-ratio", "0", "--seed", "0", "--model", "m", "--output", "o"]);
    assert_user_error(&o, &["--train is required"]);
    assert!(!stderr(&o).contains("invalid value"), "{}", stderr(&o));
}

/// With standard error piped (not a terminal), training progress comes as plain log lines, not bars.
/// `BERTFIT_PROGRESS_INTERVAL_MS` (a hidden setting the CLI reads once at startup; the default is a
/// line every 30 s at most) is set to 0 here so that every batch of this short run gets a line, not
/// only the first one, each epoch end and each mid-epoch evaluation.
#[test]
fn progress_is_plain_lines_when_stderr_is_not_a_terminal() {
    let f = fixture();
    let out = f.root.join("run");
    let mut args = train_args(&f, p(&out));
    args.retain(|a| a != "--quiet");
    let epochs = args.iter().position(|a| a == "--epochs").expect("epochs") + 1;
    args[epochs] = "2".into();
    // 12 examples in batches of 4: 3 batches (steps) per epoch; step 4 evaluates mid-epoch.
    args.extend(["--eval-every-steps".into(), "4".into(), "--eval-batch-size".into(), "4".into()]);
    let o = bin().args(&args).env("BERTFIT_PROGRESS_INTERVAL_MS", "0").env("RAYON_NUM_THREADS", "1").output().expect("train");
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains('\r') && !err.contains("\x1b["), "bar control characters in: {err:?}");
    let progress: Vec<&str> = err.lines().filter(|l| l.starts_with("step ")).collect();
    assert_eq!(progress.len(), 7, "one line per batch and one before the mid-epoch evaluation: {err}");
    for l in &progress {
        for part in ["| epoch ", "| loss ", " batches/s, ", " tokens/s | epoch "] {
            assert!(l.contains(part), "{l:?} lacks {part:?}");
        }
    }
    assert!(progress[1].starts_with("step 2 | epoch 0.67/2 | loss "), "{err}");
    assert!(progress[1].contains("| epoch eta "), "{err}");
    assert!(progress[2].starts_with("step 3 | epoch 1.00/2 |") && progress[2].contains("| epoch done in "), "{err}");
    assert!(progress[4].starts_with("step 4 | epoch 1.33/2 |") && progress[4].ends_with("| evaluating valid (3 batches)"), "{err}");
    // The epoch summaries and notes still print.
    assert!(err.contains("\nepoch 1/2 ") && err.contains("\nepoch 2/2 ") && err.contains("  step 4 valid: "), "{err}");
    assert!(err.contains("training: 2 epoch(s), 3 batches per epoch"), "{err}");
}

fn check_snapshot(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots").join(name);
    if std::env::var("BERTFIT_UPDATE_SNAPSHOTS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, actual).expect("write snapshot");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {}; run with BERTFIT_UPDATE_SNAPSHOTS=1", path.display()));
    assert_eq!(actual, expected, "{name} changed; if intended, rerun with BERTFIT_UPDATE_SNAPSHOTS=1");
}

#[test]
fn help_texts_match_snapshots() {
    for cmd in ["train", "eval", "predict", "report", "serve", "pretrain", "fill-mask"] {
        let o = run(&[cmd, "--help"]);
        assert!(o.status.success());
        check_snapshot(&format!("{cmd}-help.txt"), &String::from_utf8_lossy(&o.stdout));
    }
}

#[test]
fn max_len_beyond_the_positions_is_cut_with_a_warning_in_train_eval_and_predict() {
    let f = fixture();
    let out = f.root.join("run");
    let mut args = train_args(&f, p(&out));
    let at = args.iter().position(|a| a == "--max-len").expect("max-len flag") + 1;
    args[at] = "5000".into();
    let epochs = args.iter().position(|a| a == "20").expect("epochs");
    args[epochs] = "1".into();
    let o = bin().args(&args).output().expect("train");
    assert!(o.status.success(), "{}", stderr(&o));
    let warning = "max_len 5000 exceeds the model's 64 positions; using 64";
    assert!(stderr(&o).contains(warning), "{}", stderr(&o));
    let best = out.join("best");
    let data = f.root.join("data.csv");
    for cmd in [
        vec!["eval", "--model", p(&best), "--data", p(&data), "--max-len", "5000", "--quiet"],
        vec!["predict", "--model", p(&best), "--data", p(&data), "--max-len", "5000", "--quiet"],
    ] {
        let o = run(&cmd);
        assert!(o.status.success(), "{}: {}", cmd[0], stderr(&o));
        assert!(stderr(&o).contains(warning), "{}: {}", cmd[0], stderr(&o));
    }
}
