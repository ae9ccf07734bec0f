//! `bertfit predict` at scale: standard input to standard output, `--shard` slices whose outputs
//! concatenate to the plain run's, and a file output killed mid-way (SIGKILL) that resumes to the same
//! bytes as an uninterrupted run.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use super::serve::classifier;
use super::{bin, fixture, p, stderr};

const WORDS: &[&str] = &["the", "movie", "was", "good", "great", "bad", "awful", "plot", "."];

/// `n` JSON-lines records with ids `r0…`, of varied lengths.
fn records(dir: &Path, n: usize) -> std::path::PathBuf {
    let mut s = String::new();
    for i in 0..n {
        let text: Vec<&str> = (0..(1 + i * 7 % 11)).map(|k| WORDS[(i + k * 3) % WORDS.len()]).collect();
        s.push_str(&serde_json::json!({"id": format!("r{i}"), "text": text.join(" ")}).to_string());
        s.push('\n');
    }
    let path = dir.join("many.jsonl");
    std::fs::write(&path, s).expect("write");
    path
}

fn predict(args: &[&str]) -> String {
    let o = bin().arg("predict").args(args).args(["--quiet", "--threads", "1"]).output().expect("predict");
    assert!(o.status.success(), "predict {args:?}: {}", stderr(&o));
    String::from_utf8(o.stdout).expect("utf8")
}

#[test]
fn stdin_to_stdout_as_json_lines_keeps_ids_and_order() {
    let f = fixture();
    let model = classifier(&f);
    let data = records(&f.root, 25);
    let csv = predict(&["--model", p(&model), "--data", p(&data), "--chunk-rows", "4"]);
    let mut child = bin()
        .args(["predict", "--model", p(&model), "--data", "-", "--output", "-", "--format", "jsonl", "--quiet", "--chunk-rows", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let input = std::fs::read(&data).expect("read");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let o = child.wait_with_output().expect("wait");
    writer.join().expect("writer").expect("write stdin");
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(lines.len(), 25);
    let csv_rows: Vec<Vec<String>> = csv.lines().skip(1).map(|l| l.split(',').map(str::to_string).collect()).collect();
    assert_eq!(csv.lines().next(), Some("id,label,prob_neg,prob_pos"));
    for (i, (line, row)) in lines.iter().zip(&csv_rows).enumerate() {
        assert_eq!(line["id"], format!("r{i}"));
        assert_eq!(line["label"], row[1].as_str());
        assert_eq!(format!("{:.6}", line["prob_pos"].as_f64().expect("prob")), row[3]);
    }
}

#[test]
fn shards_concatenate_to_the_unsharded_output() {
    let f = fixture();
    let model = classifier(&f);
    let data = records(&f.root, 41);
    for format in ["jsonl", "csv"] {
        let whole = predict(&["--model", p(&model), "--data", p(&data), "--format", format, "--chunk-rows", "3"]);
        for n in [1usize, 3, 7] {
            let mut joined = String::new();
            for i in 0..n {
                let part = predict(&["--model", p(&model), "--data", p(&data), "--format", format, "--chunk-rows", "3", "--shard", &format!("{i}/{n}")]);
                // CSV shards each carry the header
                let body = if format == "csv" && i > 0 { part.split_once('\n').map_or("", |x| x.1).to_string() } else { part };
                joined.push_str(&body);
            }
            assert_eq!(joined, whole, "{format}, {n} shards");
        }
    }
    // the index from a Kubernetes indexed job
    let from_env = bin()
        .args(["predict", "--model", p(&model), "--data", p(&data), "--format", "jsonl", "--chunk-rows", "3", "--shard", "3", "--quiet"])
        .env("JOB_COMPLETION_INDEX", "2")
        .output()
        .expect("predict");
    let explicit = predict(&["--model", p(&model), "--data", p(&data), "--format", "jsonl", "--chunk-rows", "3", "--shard", "2/3"]);
    assert_eq!(String::from_utf8_lossy(&from_env.stdout), explicit);
    let bad = bin().args(["predict", "--model", p(&model), "--data", "-", "--shard", "0/2"]).stdin(Stdio::null()).output().expect("predict");
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("standard input is already one worker's part"), "{}", stderr(&bad));
    let pipe = bin().args(["predict", "--model", p(&model), "--data", "/dev/null", "--data-format", "jsonl", "--shard", "0/2"]).output().expect("predict");
    assert_eq!(pipe.status.code(), Some(2));
    assert!(stderr(&pipe).contains("must be a regular file"), "{}", stderr(&pipe));
}

/// Runs bertfit with `args` until it pauses at `point`, then kills it with SIGKILL.
fn kill_at(args: &[&str], point: &str) {
    let mut child = bin().args(args).args(["--quiet", "--threads", "1"]).env("BERTFIT_PAUSE_AT", point).stderr(Stdio::piped()).spawn().expect("spawn");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let name = point.split(':').next().unwrap_or(point);
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("pauses");
        if line.contains(&format!("paused at {name}")) {
            break;
        }
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
}

#[test]
fn a_killed_file_prediction_resumes_to_the_same_bytes() {
    let f = fixture();
    let model = classifier(&f);
    let data = records(&f.root, 30);
    let plain = f.root.join("plain.csv");
    predict(&["--model", p(&model), "--data", p(&data), "--output", p(&plain), "--chunk-rows", "4"]);
    let out = f.root.join("out.csv");
    kill_at(&["predict", "--model", p(&model), "--data", p(&data), "--output", p(&out), "--chunk-rows", "4"], "predict-write:3");
    assert!(!out.exists());
    let partial = std::fs::read_to_string(f.root.join("out.csv.partial")).expect("partial file");
    // the third chunk was written but not recorded: it is cut away on resume
    assert_eq!(partial.lines().count(), 1 + 3 * 4);
    let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(f.root.join("out.csv.manifest.json")).expect("manifest")).expect("json");
    assert_eq!(manifest["rows_done"], 8);

    // another job may not continue it
    let other = bin().args(["predict", "--model", p(&model), "--data", p(&data), "--output", p(&out), "--chunk-rows", "5", "--quiet"]).output().expect("predict");
    assert_eq!(other.status.code(), Some(2), "{}", stderr(&other));
    assert!(stderr(&other).contains("`chunk` was 4 and is now 5") && stderr(&other).contains("--restart"), "{}", stderr(&other));

    let o = bin().args(["predict", "--model", p(&model), "--data", p(&data), "--output", p(&out), "--chunk-rows", "4"]).output().expect("resume");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming") && stderr(&o).contains("8 rows already written"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).expect("out"), std::fs::read(&plain).expect("plain"));
    assert!(!f.root.join("out.csv.partial").exists() && !f.root.join("out.csv.manifest.json").exists());
}

#[test]
fn a_run_killed_before_its_rename_completes_and_stdin_writes_a_file() {
    let f = fixture();
    let model = classifier(&f);
    let data = records(&f.root, 30);
    let plain = predict(&["--model", p(&model), "--data", p(&data), "--chunk-rows", "4"]);
    // every row recorded (the last chunk short), killed before the rename: the rerun only renames
    let out = f.root.join("out.csv");
    kill_at(&["predict", "--model", p(&model), "--data", p(&data), "--output", p(&out), "--chunk-rows", "4"], "predict-finish:1");
    assert!(!out.exists());
    let o = bin().args(["predict", "--model", p(&model), "--data", p(&data), "--output", p(&out), "--chunk-rows", "4"]).output().expect("rerun");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("30 rows already written") && stderr(&o).contains("wrote 30 predictions"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out).expect("out"), plain);
    // standard input to a file: written whole through a temporary
    let from_stdin = f.root.join("stdin.csv");
    let o = bin()
        .args(["predict", "--model", p(&model), "--data", "-", "--output", p(&from_stdin), "--chunk-rows", "4", "--quiet"])
        .stdin(std::fs::File::open(&data).expect("data"))
        .output()
        .expect("predict");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&from_stdin).expect("out"), plain);
}
