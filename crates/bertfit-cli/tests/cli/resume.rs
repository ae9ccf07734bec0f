//! Crash safety and exact resume: runs killed with SIGKILL at chosen points (or stopped by SIGTERM)
//! and resumed must end with weights bit-identical to an uninterrupted run; damaged checkpoints are
//! refused and resume falls back to the newest valid one.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use sha2::{Digest, Sha256};

use super::{bin, fixture, p, stderr, Fixture};

fn sha(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    Sha256::digest(&bytes).iter().map(|b| format!("{b:02x}")).collect()
}

fn newest_checkpoint(run: &Path) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(run.join("checkpoints"))
        .expect("checkpoints")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ckpt-")))
        .collect();
    dirs.sort();
    dirs.pop().expect("a checkpoint")
}

/// Weights of the finished run: the final checkpoint and the best model.
pub(super) fn final_hashes(run: &Path) -> (String, String) {
    (sha(&newest_checkpoint(run).join("model.safetensors")), sha(&run.join("best/model.safetensors")))
}

fn args(f: &Fixture, out: &Path) -> Vec<String> {
    engine_args(f, out, "graph")
}

/// The run of [`args`] on a training path (`graph` or `fused`).
fn engine_args(f: &Fixture, out: &Path, engine: &str) -> Vec<String> {
    [
        "train", "--train", p(&f.root.join("train.jsonl")), "--valid", p(&f.root.join("data.csv")), "--model", p(&f.model),
        "--output", p(out), "--epochs", "3", "--batch-size", "4", "--lr", "3e-3", "--max-len", "16", "--grad-accum", "2",
        "--save-every-steps", "1", "--keep-checkpoints", "3", "--threads", "1", "--quiet", "--engine", engine,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

pub(super) fn spawn(args: &[String], pause: &str, secs: Option<u64>) -> Child {
    let mut cmd = bin();
    cmd.args(args).env("BERTFIT_PAUSE_AT", pause).stderr(Stdio::piped()).stdout(Stdio::null());
    if let Some(s) = secs {
        cmd.env("BERTFIT_PAUSE_SECS", s.to_string());
    }
    cmd.spawn().expect("spawn")
}

/// Reads the child's stderr until it announces the pause; returns the lines after it in a thread.
pub(super) fn wait_for_pause(child: &mut Child, pause: &str) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().expect("stderr");
    let mut reader = BufReader::new(stderr);
    let name = pause.split(':').next().unwrap_or(pause).to_string();
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read stderr");
        assert!(n > 0, "process ended before pausing at {pause}: {seen}");
        seen.push_str(&line);
        if line.contains(&format!("paused at {name}")) {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut rest = String::new();
        for line in reader.lines().map_while(Result::ok) {
            rest.push_str(&line);
            rest.push('\n');
        }
        rest
    })
}

pub(super) fn resume(run: &Path) -> std::process::Output {
    bin().args(["train", "--resume", p(run), "--threads", "1"]).output().expect("resume")
}

#[test]
fn killed_runs_resume_to_bit_identical_weights() {
    killed_runs_resume_exactly("graph");
}

#[test]
fn killed_engine_runs_resume_to_bit_identical_weights() {
    killed_runs_resume_exactly("fused");
}

fn killed_runs_resume_exactly(engine: &str) {
    let f = fixture();
    let args = |f: &Fixture, out: &Path| engine_args(f, out, engine);
    let reference = f.root.join("reference");
    let o = bin().args(args(&f, &reference)).output().expect("reference run");
    assert!(o.status.success(), "{}", stderr(&o));
    let want = final_hashes(&reference);

    // 12 examples / batch 4 = 3 micro-batches per epoch, 2 updates per epoch with --grad-accum 2.
    for pause in ["step:4", "checkpoint-write:3", "epoch-end:1", "eval:2", "step:2"] {
        let run = f.root.join(format!("killed-{}", pause.replace(':', "-")));
        let mut child = spawn(&args(&f, &run), pause, None);
        let rest = wait_for_pause(&mut child, pause);
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        drop(rest);
        let o = resume(&run);
        assert!(o.status.success(), "resume after kill at {pause} failed: {}", stderr(&o));
        // Before the first update there is no checkpoint yet: the run starts over (and still matches).
        let expected = if pause == "step:2" { "starting the run from the beginning" } else { "resuming from" };
        assert!(stderr(&o).contains(expected), "kill at {pause}: {}", stderr(&o));
        assert_eq!(final_hashes(&run), want, "weights differ after a kill at {pause}");
        let lines = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics").lines().count();
        let ref_lines = std::fs::read_to_string(reference.join("metrics.jsonl")).expect("metrics").lines().count();
        assert_eq!(lines, ref_lines, "metrics.jsonl after kill at {pause}");
    }
}

#[test]
fn sigterm_checkpoints_exits_130_and_resumes_exactly() {
    sigterm_resumes_exactly("graph");
}

#[test]
fn engine_runs_stopped_by_sigterm_resume_exactly() {
    sigterm_resumes_exactly("fused");
}

fn sigterm_resumes_exactly(engine: &str) {
    let f = fixture();
    let args = |f: &Fixture, out: &Path| engine_args(f, out, engine);
    let reference = f.root.join("reference");
    let o = bin().args(args(&f, &reference)).output().expect("reference run");
    assert!(o.status.success(), "{}", stderr(&o));
    let run = f.root.join("terminated");
    // Paused on the first micro-batch of epoch 2: the checkpoint holds a half-accumulated gradient.
    let mut child = spawn(&args(&f, &run), "step:4", Some(2));
    let rest = wait_for_pause(&mut child, "step:4");
    let pid = child.id().to_string();
    let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("kill -TERM");
    assert!(sent.success());
    let status = child.wait().expect("wait");
    let message = rest.join().expect("stderr");
    assert_eq!(status.code(), Some(130), "{message}");
    assert!(message.contains(&format!("bertfit train --resume {}", run.display())), "{message}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(newest_checkpoint(&run).join("trainer_state.json")).expect("state"),
    )
    .expect("json");
    assert_eq!((state["epoch"].as_u64(), state["batches_done"].as_u64(), state["accumulated"].as_u64()), (Some(1), Some(1), Some(1)));
    let o = resume(&run);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming from"), "{}", stderr(&o));
    assert_eq!(final_hashes(&run), final_hashes(&reference));
}

#[test]
fn a_run_resumes_on_the_other_path_with_a_warning() {
    let f = fixture();
    let run = f.root.join("switched");
    let mut child = spawn(&args(&f, &run), "step:4", None);
    let rest = wait_for_pause(&mut child, "step:4");
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    drop(rest);
    let o = bin().args(["train", "--resume", p(&run), "--threads", "1", "--engine", "fused"]).output().expect("resume");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("resuming from") && err.contains("not bit-identically"), "{err}");
    let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("run_config.json")).expect("config")).expect("json");
    assert_eq!(saved["train"]["engine"], "fused", "the run config records the path that ran last");
    assert!(run.join("best/model.safetensors").exists());
}

#[test]
fn damaged_checkpoints_are_refused_and_resume_falls_back() {
    let f = fixture();
    let reference = f.root.join("reference");
    let o = bin().args(args(&f, &reference)).output().expect("reference run");
    assert!(o.status.success(), "{}", stderr(&o));
    let want = final_hashes(&reference);
    for damage in ["flip", "truncate", "no-manifest"] {
        let run = f.root.join(format!("damaged-{damage}"));
        let mut child = spawn(&args(&f, &run), "epoch-end:2", None);
        drop(wait_for_pause(&mut child, "epoch-end:2"));
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        let newest = newest_checkpoint(&run);
        match damage {
            "flip" => {
                let w = newest.join("model.safetensors");
                let mut bytes = std::fs::read(&w).expect("read");
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
                std::fs::write(&w, bytes).expect("write");
            }
            "truncate" => {
                let o = newest.join("optimizer.safetensors");
                let bytes = std::fs::read(&o).expect("read");
                std::fs::write(&o, &bytes[..bytes.len() / 3]).expect("write");
            }
            _ => std::fs::remove_file(newest.join("manifest.json")).expect("rm"),
        }
        let o = resume(&run);
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert!(err.contains("refusing checkpoint") && err.contains(newest.file_name().and_then(|n| n.to_str()).unwrap_or("?")), "{err}");
        let reason = match damage {
            "flip" => "sha256",
            "truncate" => "truncated",
            _ => "manifest",
        };
        assert!(err.contains(reason), "{damage}: {err}");
        assert_eq!(final_hashes(&run), want, "weights differ after resuming past a damaged checkpoint ({damage})");
    }
}

#[test]
fn resume_refuses_flags_that_change_the_run() {
    let f = fixture();
    let run = f.root.join("run");
    let o = bin().args(args(&f, &run)).output().expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin().args(["train", "--resume", p(&run), "--lr", "0.1"]).output().expect("resume");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--lr"), "{}", stderr(&o));
    // The matmul precision changes the arithmetic: refused too.
    let o = bin().args(["train", "--resume", p(&run), "--precision", "bf16"]).output().expect("resume");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("precision"), "{}", stderr(&o));
    // Extending a finished run is allowed: two more epochs.
    let o = bin().args(["train", "--resume", p(&run), "--epochs", "5", "--quiet"]).output().expect("extend");
    assert!(o.status.success(), "{}", stderr(&o));
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run_config.json")).expect("cfg")).expect("json");
    assert_eq!(saved["train"]["epochs"], 5);
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(newest_checkpoint(&run).join("trainer_state.json")).expect("state"),
    )
    .expect("json");
    assert_eq!(state["epoch"], 5);
}

fn cv_args(f: &Fixture, out: &Path) -> Vec<String> {
    let mut a = args(f, out);
    a[0] = "cv".into();
    // cv validates on each fold: drop --valid, train on the CSV (12 rows, 6 per class).
    let i = a.iter().position(|x| x == "--valid").expect("valid");
    a.drain(i..i + 2);
    let t = a.iter().position(|x| x == "--train").expect("train");
    a[t + 1] = p(&f.root.join("data.csv")).to_string();
    let e = a.iter().position(|x| x == "--epochs").expect("epochs");
    a[e + 1] = "2".into();
    a.extend(["--folds".into(), "3".into()]);
    a
}

#[test]
fn interrupted_cross_validation_resumes_at_the_fold_and_step_and_ensembles_predict() {
    let f = fixture();
    let reference = f.root.join("cv-ref");
    let o = bin().args(cv_args(&f, &reference)).output().expect("cv");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("mean ± std"));
    let oof_ref = std::fs::read_to_string(reference.join("oof.csv")).expect("oof");
    assert_eq!(oof_ref.lines().count(), 13);

    // Two epoch ends per fold: the third overall is fold 1's first, so fold 0 is done and fold 1 half-way.
    let run = f.root.join("cv-killed");
    let mut child = spawn(&cv_args(&f, &run), "epoch-end:3", None);
    drop(wait_for_pause(&mut child, "epoch-end:3"));
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    assert!(run.join("fold-0/summary.json").exists() && !run.join("fold-1/summary.json").exists());
    let o = bin().args(["cv", "--resume", p(&run), "--threads", "1"]).output().expect("resume");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already complete") && stderr(&o).contains("resuming from"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(run.join("oof.csv")).expect("oof"), oof_ref, "resumed cv differs");
    for k in 0..3 {
        assert_eq!(sha(&run.join(format!("fold-{k}/best/model.safetensors"))), sha(&reference.join(format!("fold-{k}/best/model.safetensors"))));
        // Each fold has its own report page.
        assert!(std::fs::read_to_string(run.join(format!("fold-{k}/report.html"))).expect("fold report").contains("<section id=\"loss\">"));
    }
    // The cv page: per-fold metrics with their spread, and the out-of-fold scores.
    let page = std::fs::read_to_string(run.join("report.html")).expect("cv report");
    assert!(page.contains("<section id=\"runs\">") && page.contains("<section id=\"oof\">"), "cv report sections");
    assert!(page.contains("fold-2") && page.contains("id=\"fig-runs\""), "per-fold chart and rows");

    // The cv directory predicts as an ensemble of its folds, in the single-model CSV format.
    let out = f.root.join("ens.csv");
    let o = bin().args(["predict", "--model", p(&run), "--data", p(&f.root.join("data.csv")), "--output", p(&out), "--quiet"]).output().expect("predict");
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&out).expect("csv");
    assert_eq!(csv.lines().next(), Some("id,label,prob_neg,prob_pos"));
    assert_eq!(csv.lines().count(), 13);
}

#[test]
fn seeds_repeat_the_run_and_report_the_spread() {
    let f = fixture();
    let run = f.root.join("seeds");
    let mut a = args(&f, &run);
    a.extend(["--seeds".into(), "1,2".into(), "--epochs".into(), "1".into()]);
    let i = a.iter().position(|x| x == "--epochs").expect("epochs");
    a.drain(i..i + 2);
    let o = bin().args(&a).output().expect("seeds");
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("| seed-1 |") && table.contains("| seed-2 |") && table.contains("min – max"), "{table}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("seeds_summary.json")).expect("json")).expect("json");
    assert_eq!(summary["valid"]["accuracy"]["n"], 2);
    let s1 = sha(&run.join("seed-1/best/model.safetensors"));
    let s2 = sha(&run.join("seed-2/best/model.safetensors"));
    assert_ne!(s1, s2, "different seeds must train differently");
}
