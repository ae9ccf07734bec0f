//! `bertfit pretrain` and `bertfit fill-mask` end to end on a tiny random BERT: the masked-LM loss
//! falls and a small corpus is learned, `best/` is a `BertForMaskedLM` folder that `bertfit train`
//! fine-tunes, runs killed at chosen points resume to bit-identical weights, and bad input gets clear
//! errors.

use std::path::{Path, PathBuf};

use super::resume::{spawn, wait_for_pause};
use super::{bin, fixture, p, run, stderr, Fixture};

/// A corpus of a few sentence shapes over the fixture's vocabulary, as plain text lines.
fn corpus(f: &Fixture) -> PathBuf {
    let lines = ["the movie was good .", "the plot was great", "the movie was bad .", "the plot was awful"];
    let text: String = (0..48).map(|i| format!("{}\n", lines[i % 4])).collect();
    let path = f.root.join("corpus.txt");
    std::fs::write(&path, text).expect("write corpus");
    path
}

fn pretrain_args(f: &Fixture, data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = [
        "pretrain", "--data", p(data), "--model", p(&f.model), "--output", p(out), "--batch-size", "4",
        "--lr", "3e-3", "--max-len", "16", "--mlm-probability", "0.3", "--threads", "1", "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics").lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

#[test]
fn pretraining_lowers_the_masked_lm_loss_and_best_fine_tunes() {
    let f = fixture();
    let data = corpus(&f);
    let out = f.root.join("mlm");
    let o = bin().args(pretrain_args(&f, &data, &out, &["--epochs", "8", "--valid-fraction", "0.2", "--group-texts=false"])).output().expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("has no masked-LM head"), "the fresh head is announced: {err}");
    let recs = records(&out);
    let valid: Vec<&serde_json::Value> = recs.iter().filter(|r| r["split"] == "valid").collect();
    let (first, last) = (valid[0]["loss"].as_f64().expect("loss"), valid[valid.len() - 1]["loss"].as_f64().expect("loss"));
    assert_eq!(valid[0]["step"], 0, "the starting point is measured");
    assert!(last < 0.5 * first, "validation loss {first} → {last}");
    let acc = valid[valid.len() - 1]["accuracy"].as_f64().expect("accuracy");
    assert!(acc > 0.5, "masked-token accuracy {acc}");
    for r in &valid {
        let (loss, ppl) = (r["loss"].as_f64().expect("loss"), r["perplexity"].as_f64().expect("ppl"));
        assert!((ppl - loss.exp()).abs() < 1e-9 * ppl.max(1.0), "perplexity is exp(loss)");
    }
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("best/config.json")).expect("config")).expect("json");
    assert_eq!(config["architectures"][0], "BertForMaskedLM");
    assert!(out.join("report.html").exists() && out.join("summary.json").exists());
    let report = std::fs::read_to_string(out.join("report.html")).expect("report");
    assert!(report.contains("Masked-token accuracy") && report.contains("perplexity"), "report sections");

    // `bertfit report` rewrites a pretraining run's page
    std::fs::remove_file(out.join("report.html")).expect("rm report");
    let o = run(&["report", p(&out)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read_to_string(out.join("report.html")).expect("report").contains("Pretraining report"));

    // bf16 matmuls run the same loop
    let o = bin().args(pretrain_args(&f, &data, &f.root.join("bf16"), &["--max-steps", "2", "--precision", "bf16"])).output().expect("run");
    assert!(o.status.success(), "{}", stderr(&o));

    // fill-mask on the pretrained model: the corpus's only verb is the top candidate
    let o = run(&["fill-mask", "--model", p(&out.join("best")), "--text", "the movie [MASK] good .", "--json", "--top-k", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line: serde_json::Value = serde_json::from_str(String::from_utf8_lossy(&o.stdout).lines().next().expect("a line")).expect("json");
    assert_eq!(line["candidates"][0]["token"], "was", "{line}");
    assert_eq!(line["candidates"].as_array().map(Vec::len), Some(3));

    // the masked LM fine-tunes as a classifier (a fresh pooler-based head on the pretrained encoder)
    let cls = f.root.join("cls");
    let o = run(&[
        "train", "--train", p(&f.root.join("train.jsonl")), "--valid", p(&f.root.join("data.csv")), "--model", p(&out.join("best")),
        "--output", p(&cls), "--epochs", "2", "--batch-size", "4", "--max-len", "16", "--quiet",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(cls.join("best/config.json").exists());
}

#[test]
fn killed_pretraining_resumes_to_bit_identical_weights() {
    let f = fixture();
    let data = corpus(&f);
    let common = ["--epochs", "3", "--grad-accum", "2", "--save-every-steps", "1", "--keep-checkpoints", "3", "--whole-word-mask"];
    let reference = f.root.join("reference");
    let o = bin().args(pretrain_args(&f, &data, &reference, &common)).output().expect("reference");
    assert!(o.status.success(), "{}", stderr(&o));
    let want = super::resume::final_hashes(&reference);
    // 48 lines grouped into 16-token sequences; a few batches per epoch, updates every two
    for pause in ["step:3", "checkpoint-write:2", "epoch-end:1", "eval:1"] {
        let run_dir = f.root.join(format!("killed-{}", pause.replace(':', "-")));
        let mut child = spawn(&pretrain_args(&f, &data, &run_dir, &common), pause, None);
        let rest = wait_for_pause(&mut child, pause);
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
        drop(rest);
        let o = bin().args(["pretrain", "--resume", p(&run_dir), "--threads", "1", "--quiet"]).output().expect("resume");
        assert!(o.status.success(), "resume after a kill at {pause}: {}", stderr(&o));
        assert_eq!(super::resume::final_hashes(&run_dir), want, "weights differ after a kill at {pause}");
        // every evaluation (elapsed time aside) is the uninterrupted run's
        let losses = |run: &Path| -> Vec<String> { records(run).iter().map(|r| format!("{} {} {} {}", r["split"], r["step"], r["loss"], r["accuracy"])).collect() };
        let (ours, theirs) = (losses(&run_dir), losses(&reference));
        assert_eq!(ours, theirs, "metrics after a kill at {pause}");
    }
}

#[test]
fn bad_pretraining_input_is_named() {
    let f = fixture();
    let data = corpus(&f);
    let out = f.root.join("bad");
    // an empty text file
    let empty = f.root.join("empty.txt");
    std::fs::write(&empty, "\n\n  \n").expect("write");
    let o = bin().args(pretrain_args(&f, &empty, &out, &["--epochs", "1"])).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("empty.txt") && stderr(&o).contains("no text"), "{}", stderr(&o));
    // a JSONL file without the text column names the line and field
    let jsonl = f.root.join("notext.jsonl");
    std::fs::write(&jsonl, "{\"body\": \"the movie\"}\n").expect("write");
    let o = bin().args(pretrain_args(&f, &jsonl, &out, &["--epochs", "1"])).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("notext.jsonl") && stderr(&o).contains("text"), "{}", stderr(&o));
    // out-of-range flags
    let o = bin().args(pretrain_args(&f, &data, &out, &["--mlm-probability", "1.5"])).output().expect("run");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = bin().args(pretrain_args(&f, &data, &out, &["--document-separator", "page"])).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("document-separator") && stderr(&o).contains("blank-line"), "{}", stderr(&o));
    // a finished run is not overwritten silently; its settings cannot change on --resume
    let o = bin().args(pretrain_args(&f, &data, &out, &["--epochs", "1"])).output().expect("run");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin().args(pretrain_args(&f, &data, &out, &["--epochs", "1"])).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--resume") && stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    let o = bin().args(["pretrain", "--resume", p(&out), "--lr", "1e-3"]).output().expect("run");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--lr"), "{}", stderr(&o));
    // fill-mask needs a mask token in the text, and a masked LM
    let o = run(&["fill-mask", "--model", p(&out.join("best")), "--text", "no mask here"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("[MASK]"), "{}", stderr(&o));
    let o = run(&["fill-mask", "--model", p(&f.model), "--text", "the [MASK] was good"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not a masked LM"), "{}", stderr(&o));
}
