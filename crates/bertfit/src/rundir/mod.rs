//! The run directory: the one place that names its files and folders, writes its JSON and JSON-lines
//! files, reads them back leniently for reports ([`read`]), and finds the member models of a
//! cross-validation or seeds directory. Training writes through it; the report and `--resume` read
//! through it.

pub mod read;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};

/// One JSON line per evaluation.
pub const METRICS: &str = "metrics.jsonl";
/// One JSON line per optimizer update.
pub const STEPS: &str = "steps.jsonl";
/// The best model's folder.
pub const BEST: &str = "best";
/// Resumable checkpoints.
pub const CHECKPOINTS: &str = "checkpoints";
/// Scored predictions of the best model (`valid.csv`, `test.csv`).
pub const PREDICTIONS: &str = "predictions";
/// The resolved configuration.
pub const RUN_CONFIG: &str = "run_config.json";
/// Sizes, wall time, best and test evaluations.
pub const SUMMARY: &str = "summary.json";
/// Label counts and token lengths per split.
pub const DATA_STATS: &str = "data_stats.json";
/// sha256 of the data files, checked on resume.
pub const FINGERPRINT: &str = "data_fingerprint.json";
/// The HTML report.
pub const REPORT: &str = "report.html";
/// The report's PNG exports.
pub const REPORT_DIR: &str = "report";
/// Cross-validation: out-of-fold predictions.
pub const OOF: &str = "oof.csv";
/// Cross-validation: its fold count (for `--resume`).
pub const CV: &str = "cv.json";
/// Seeds: the seeds and fold count (for `--resume`).
pub const SEEDS: &str = "seeds.json";
/// Prefix of a fold's directory (`fold-0`).
pub const FOLD_PREFIX: &str = "fold-";
/// Prefix of a seed's directory (`seed-3`).
pub const SEED_PREFIX: &str = "seed-";

/// Files and folders a single run writes into its directory (what `--overwrite` removes).
pub const RUN_FILES: &[&str] =
    &[METRICS, STEPS, BEST, CHECKPOINTS, PREDICTIONS, RUN_CONFIG, SUMMARY, DATA_STATS, REPORT, REPORT_DIR, FINGERPRINT];

/// `cv_summary.json` or `seeds_summary.json` (`kind` is `cv` or `seeds`).
pub fn multi_summary_json(kind: &str) -> String {
    format!("{kind}_summary.json")
}

/// `cv_summary.md` or `seeds_summary.md`.
pub fn multi_summary_md(kind: &str) -> String {
    format!("{kind}_summary.md")
}

/// `predictions/<split>.csv`.
pub fn predictions_csv(run_dir: &Path, split: &str) -> PathBuf {
    run_dir.join(PREDICTIONS).join(format!("{split}.csv"))
}

/// Writes pretty JSON (`what` names the content in errors).
pub fn write_json<T: Serialize>(path: &Path, what: &'static str, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value).map_err(|e| Error::serialize(what, e))?;
    std::fs::write(path, json).map_err(|e| Error::io("cannot write", path, e))
}

/// Appends one JSON line.
pub fn append_jsonl<T: Serialize>(path: &Path, what: &'static str, rec: &T) -> Result<()> {
    let line = serde_json::to_string(rec).map_err(|e| Error::serialize(what, e))?;
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(path).map_err(|e| Error::io("cannot open", path, e))?;
    writeln!(f, "{line}").map_err(|e| Error::io("cannot append to", path, e))
}

/// An open JSON-lines log (metrics.jsonl, steps.jsonl), kept equal to a list the caller holds.
#[derive(Debug)]
pub struct JsonLog {
    file: std::fs::File,
    path: PathBuf,
    what: &'static str,
}

impl JsonLog {
    /// (Re)writes the file from `records`, dropping lines a crashed session wrote after its checkpoint.
    pub fn open<T: Serialize>(path: PathBuf, what: &'static str, records: &[T]) -> Result<Self> {
        let mut file = std::fs::File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        for rec in records {
            let line = serde_json::to_string(rec).map_err(|e| Error::serialize(what, e))?;
            writeln!(file, "{line}").map_err(|e| Error::io("cannot write", &path, e))?;
        }
        Ok(JsonLog { file, path, what })
    }

    /// Appends one record and flushes.
    pub fn append<T: Serialize>(&mut self, rec: &T) -> Result<()> {
        let line = serde_json::to_string(rec).map_err(|e| Error::serialize(self.what, e))?;
        writeln!(self.file, "{line}").and_then(|_| self.file.flush()).map_err(|e| Error::io("cannot append to", &self.path, e))
    }
}

/// Model folders of a multi-run directory (`fold-*/best`, `seed-*/best`, `seed-*/fold-*/best`), or the
/// folder itself when it is a model, or its `best/`.
pub fn member_models(dir: &Path) -> Vec<PathBuf> {
    if dir.join("config.json").exists() {
        return vec![dir.to_path_buf()];
    }
    if dir.join(BEST).join("config.json").exists() {
        return vec![dir.join(BEST)];
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut subs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(FOLD_PREFIX) || n.starts_with(SEED_PREFIX))
        })
        .collect();
    subs.sort();
    subs.iter().flat_map(|s| member_models(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_of_nested_multi_runs_in_order() {
        let dir = tempfile::tempdir().expect("dir");
        for m in ["seed-1/fold-0/best", "seed-1/fold-1/best", "seed-2/best", "other/best"] {
            let p = dir.path().join(m);
            std::fs::create_dir_all(&p).expect("mkdir");
            std::fs::write(p.join("config.json"), "{}").expect("config");
        }
        let found: Vec<String> =
            member_models(dir.path()).iter().map(|p| p.strip_prefix(dir.path()).expect("inside").display().to_string()).collect();
        assert_eq!(found, vec!["seed-1/fold-0/best", "seed-1/fold-1/best", "seed-2/best"]);
        assert_eq!(member_models(&dir.path().join("seed-2")), vec![dir.path().join("seed-2/best")]);
        assert!(member_models(&dir.path().join("missing")).is_empty());
    }

    #[test]
    fn json_log_rewrites_then_appends() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join(METRICS);
        std::fs::write(&path, "stale\n").expect("stale");
        let mut log = JsonLog::open(path.clone(), "metrics", &[1, 2]).expect("open");
        log.append(&3).expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "1\n2\n3\n");
        append_jsonl(&path, "metrics", &4).expect("append");
        assert_eq!(std::fs::read_to_string(&path).expect("read").lines().count(), 4);
    }
}
