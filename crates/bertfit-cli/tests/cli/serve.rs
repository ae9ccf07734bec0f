//! `bertfit serve` as a process: it prints the address it bound, answers `/predict` with the
//! probabilities `bertfit predict` writes, exits 0 on SIGTERM after finishing what it admitted, and
//! refuses inconsistent limits with exit code 2.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::time::Duration;

use bertfit::model::{Classifier, Freeze, LoadOptions, ModelFolder};

use super::{bin, fixture, p, run, stderr};

/// A 2-class classifier folder made from the fixture's random encoder (no training needed).
pub(super) fn classifier(f: &super::Fixture) -> std::path::PathBuf {
    let folder = ModelFolder::open(&f.model).expect("folder");
    let opts = LoadOptions { labels: Some(vec!["neg".into(), "pos".into()]), freeze: Freeze::ALL, seed: 3, ..Default::default() };
    let model = Classifier::load(&folder, opts).expect("classifier");
    let out = f.root.join("classifier");
    model.save(&out, 16).expect("save");
    std::fs::copy(f.model.join("vocab.txt"), out.join("vocab.txt")).expect("vocab");
    out
}

/// Starts `bertfit serve` on a free port; returns the child and its address.
fn serve(args: &[&str]) -> (Child, String) {
    let mut child = bin()
        .arg("serve")
        .args(args)
        .args(["--port", "0", "--threads", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let err = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("serve prints its address");
        if let Some(at) = line.split(" on http://").nth(1) {
            break at.trim().to_string();
        }
    };
    (child, addr)
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill");
    assert!(killed.success());
    child.wait().expect("wait")
}

#[test]
fn serve_answers_like_predict_and_exits_0_on_sigterm() {
    let f = fixture();
    let model = classifier(&f);
    let data = f.root.join("data.csv");
    let pred = f.root.join("pred.csv");
    let o = run(&["predict", "--model", p(&model), "--data", p(&data), "--output", p(&pred), "--quiet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let csv = std::fs::read_to_string(&pred).expect("predictions");
    let written: Vec<(f64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[2].parse().expect("prob"), c[3].parse().expect("prob"))
        })
        .collect();
    let texts: Vec<Vec<String>> = std::fs::read_to_string(&data)
        .expect("data")
        .lines()
        .skip(1)
        .map(|l| vec![l.split(',').nth(1).expect("text").to_string()])
        .collect();

    let (mut child, addr) = serve(&["--model", p(&model)]);
    let body = serde_json::json!({ "inputs": texts }).to_string();
    let resp = ureq::post(&format!("http://{addr}/predict")).send_string(&body).expect("predict");
    let lists: serde_json::Value = serde_json::from_str(&resp.into_string().expect("body")).expect("json");
    let lists = lists.as_array().expect("one list per input");
    assert_eq!(lists.len(), written.len());
    for (list, (neg, pos)) in lists.iter().zip(&written) {
        let score = |label: &str| {
            list.as_array().and_then(|l| l.iter().find(|x| x["label"] == label)).and_then(|x| x["score"].as_f64()).expect("score")
        };
        // the CSV has six decimals
        assert!((score("neg") - neg).abs() <= 1e-6 && (score("pos") - pos).abs() <= 1e-6, "{list} vs {neg} {pos}");
    }
    let status = terminate(&mut child);
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
}

#[test]
fn serve_refuses_limits_that_cannot_hold_one_input() {
    let f = fixture();
    let model = classifier(&f);
    let o = run(&["serve", "--model", p(&model), "--port", "0", "--max-batch-tokens", "8"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("max-batch-tokens") && stderr(&o).contains("max_input_length 16"), "{}", stderr(&o));
    let o = run(&["serve", "--model", p(&model), "--port", "0", "--max-concurrent-requests", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--max-concurrent-requests"), "{}", stderr(&o));
}
