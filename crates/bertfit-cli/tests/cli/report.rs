//! The HTML report (and the terminal's epoch table) from the real trainer's files: written by `train`, rewritten by `bertfit report`
//! (also after an interrupted run), written by `eval --report`, with PNG export.

use std::path::Path;

use super::{bin, fixture, p, run, stderr, train_args};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_self_contained(html: &str) {
    for bad in ["http://", "https://", "src=\"//", "<script", "<link", "@import", "url("] {
        assert!(!html.contains(bad), "report contains {bad}");
    }
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
}

fn assert_sections(html: &str, ids: &[&str]) {
    for id in ids {
        assert!(html.contains(&format!("<section id=\"{id}\">")), "missing section {id}");
    }
}

fn assert_charts(html: &str, slugs: &[&str]) {
    for slug in slugs {
        assert!(html.contains(&format!("id=\"fig-{slug}\">\n<svg")), "missing chart {slug}");
    }
}

#[test]
fn train_writes_the_report_and_report_and_eval_rewrite_it() {
    let f = fixture();
    let out = f.root.join("run");
    let mut args = train_args(&f, p(&out));
    // A held-out test file, so the report has test-set sections too; few epochs keep it quick.
    args.extend(["--test".into(), p(&f.root.join("data.csv")).into()]);
    let pos = args.iter().position(|a| a == "--epochs").expect("epochs");
    args[pos + 1] = "4".into();
    let o = bin().args(&args).output().expect("train");
    assert!(o.status.success(), "train failed: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("report: "), "{err}");
    // The terminal's per-epoch table: a header, one row per epoch, the best one marked.
    let header = err.lines().position(|l| l.contains("train loss") && l.contains("valid F1")).expect("epoch table");
    let rows: Vec<&str> = err.lines().skip(header + 1).take_while(|l| !l.trim().is_empty()).collect();
    assert_eq!(rows.len(), 4, "{err}");
    assert_eq!(rows.iter().filter(|r| r.ends_with(" *")).count(), 1, "{err}");

    let page = out.join("report.html");
    let html = read(&page);
    assert_self_contained(&html);
    assert_sections(&html, &["summary", "loss", "metrics", "lr", "confusion", "per-class", "labels", "lengths", "roc-pr", "errors"]);
    assert_charts(
        &html,
        &["loss", "metrics", "lr", "confusion-valid-counts", "confusion-valid-normalised", "confusion-test-counts", "labels", "token-lengths", "valid-roc", "test-pr"],
    );
    assert!(html.contains("completed 4 epochs"), "stop reason missing");
    assert!(!out.join("report").exists(), "no PNGs unless asked");

    // `bertfit report` regenerates it from the files alone, with PNGs on request.
    std::fs::remove_file(&page).expect("rm");
    let o = run(&["report", p(&out), "--png"]);
    assert!(o.status.success(), "report failed: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), p(&page));
    assert_eq!(read(&page), html, "the report is a function of the run directory");
    for slug in ["loss", "metrics", "confusion-test-normalised", "token-lengths", "test-roc"] {
        let png = std::fs::read(out.join("report").join(format!("{slug}.png"))).expect("png");
        assert!(png.starts_with(&PNG_SIGNATURE), "{slug}.png is not a PNG");
    }

    // An evaluation report for a data file.
    let eval_page = f.root.join("eval").join("test-report.html");
    std::fs::create_dir_all(eval_page.parent().expect("parent")).expect("mkdir");
    let o = run(&["eval", "--model", p(&out.join("best")), "--data", p(&f.root.join("data.csv")), "--quiet", "--report", p(&eval_page)]);
    assert!(o.status.success(), "eval --report failed: {}", stderr(&o));
    let html = read(&eval_page);
    assert_self_contained(&html);
    assert_sections(&html, &["summary", "confusion", "per-class", "labels", "roc-pr", "errors"]);
    assert!(html.contains("the plot was awful"), "texts appear among the examples");

    // Bad input: a directory that is not a run, and --png without --report.
    let o = run(&["report", p(&f.root.join("no-such-run"))]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no-such-run"), "{}", stderr(&o));
    let o = run(&["eval", "--model", p(&out.join("best")), "--data", p(&f.root.join("data.csv")), "--png"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn an_interrupted_run_still_gets_a_report() {
    let f = fixture();
    let out = f.root.join("run");
    let mut args = train_args(&f, p(&out));
    args.extend(["--threads".into(), "1".into()]);
    // Pause after the second epoch's evaluation and kill the process there.
    let mut child = bin().args(&args).env("BERTFIT_PAUSE_AT", "epoch-end:2").env("BERTFIT_PAUSE_SECS", "60").stderr(std::process::Stdio::piped()).spawn().expect("spawn");
    let pause = super::resume::wait_for_pause(&mut child, "epoch-end:2");
    child.kill().expect("kill");
    let _ = child.wait();
    let _ = pause.join();
    // The report was refreshed after each evaluation before the kill.
    let html = read(&out.join("report.html"));
    assert_sections(&html, &["summary", "loss", "metrics", "confusion"]);
    std::fs::remove_file(out.join("report.html")).expect("rm");
    let o = run(&["report", p(&out)]);
    assert!(o.status.success(), "report of an interrupted run failed: {}", stderr(&o));
    let html = read(&out.join("report.html"));
    assert_self_contained(&html);
    assert!(html.contains("No summary.json"), "the page says the run has not finished");
    assert_charts(&html, &["loss", "metrics", "confusion-valid-counts"]);
}
