//! Resumable prediction files: rows are appended to `OUT.partial`, and after each chunk (synced to disk)
//! `OUT.manifest.json` records the rows and bytes written. An interrupted run resumes at the last
//! recorded chunk (the partial file cut back to it), so no row is lost or written twice; a finished run
//! renames the partial file into place and removes the manifest. A manifest of a different job (other
//! input, model, options) is refused, naming what differs.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::output::write_file_atomically;
use crate::error::{Error, Result};

/// Everything a prediction file's rows depend on: a partial file continues only the same job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PredictJob {
    /// The input file.
    pub input: String,
    /// Its size in bytes, when the job started.
    pub input_bytes: u64,
    /// Its modification time (nanoseconds since the Unix epoch), when the job started.
    pub input_modified_ns: u128,
    /// The models, as named on the command line.
    pub models: Vec<String>,
    /// Their labels.
    pub labels: Vec<String>,
    /// Row format (`csv` or `jsonl`).
    pub format: super::RowFormat,
    /// Text, text-pair and id columns.
    pub columns: Vec<Option<String>>,
    /// The records this job covers (a shard's range, or all).
    pub records: (u64, u64),
    /// Records per chunk.
    pub chunk: usize,
    /// Rows per model batch.
    pub batch_size: usize,
    /// Truncation length, precision, engine and device, as given.
    pub settings: String,
    /// bertfit's version.
    pub version: String,
}

impl PredictJob {
    /// The input's size and modification time.
    pub fn fingerprint(input: &Path) -> Result<(u64, u128)> {
        let meta = std::fs::metadata(input).map_err(|e| Error::io("cannot read", input, e))?;
        let modified = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        Ok((meta.len(), modified))
    }

    /// The first field where `self` and `other` differ.
    fn first_difference(&self, other: &PredictJob) -> Option<String> {
        let (a, b) = (serde_json::to_value(self).ok()?, serde_json::to_value(other).ok()?);
        let (serde_json::Value::Object(a), serde_json::Value::Object(b)) = (a, b) else { return None };
        a.iter().find(|(k, v)| b.get(*k) != Some(v)).map(|(k, v)| format!("`{k}` was {} and is now {}", b.get(k).map_or("absent".into(), |x| x.to_string()), v))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    job: PredictJob,
    rows_done: u64,
    bytes_done: u64,
}

/// A prediction file being written, resumable after an interruption.
#[derive(Debug)]
pub struct ResumableOutput {
    target: PathBuf,
    partial: PathBuf,
    manifest_path: PathBuf,
    file: File,
    manifest: Manifest,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

impl ResumableOutput {
    /// The manifest path of an output file.
    pub fn manifest_path(target: &Path) -> PathBuf {
        sibling(target, ".manifest.json")
    }

    /// The partial file of an output file.
    pub fn partial_path(target: &Path) -> PathBuf {
        sibling(target, ".partial")
    }

    /// Opens `target` for `job`: continues a partial file of the same job (returning the rows it holds),
    /// or starts one with `header` (when there is none, or `restart`). A partial file of another job is
    /// an error naming the difference.
    pub fn open(target: &Path, job: PredictJob, header: &[u8], restart: bool) -> Result<(ResumableOutput, u64)> {
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
        }
        let (partial, manifest_path) = (Self::partial_path(target), Self::manifest_path(target));
        let previous = if restart { None } else { Self::read_manifest(&manifest_path)? };
        if let Some(m) = previous.filter(|_| partial.exists()) {
            if let Some(diff) = job.first_difference(&m.job) {
                return Err(Error::config(
                    "output",
                    format!(
                        "{} holds an interrupted prediction of another job ({diff}); pass --restart to discard it, or write elsewhere",
                        partial.display()
                    ),
                ));
            }
            let mut file = OpenOptions::new().read(true).write(true).open(&partial).map_err(|e| Error::io("cannot open", &partial, e))?;
            let len = file.metadata().map_err(|e| Error::io("cannot read", &partial, e))?.len();
            if len < m.bytes_done {
                return Err(Error::config(
                    "output",
                    format!("{} is shorter ({len} bytes) than its manifest records ({}); pass --restart", partial.display(), m.bytes_done),
                ));
            }
            file.set_len(m.bytes_done).map_err(|e| Error::io("cannot truncate", &partial, e))?;
            file.seek(SeekFrom::End(0)).map_err(|e| Error::io("cannot seek", &partial, e))?;
            let rows = m.rows_done;
            return Ok((ResumableOutput { target: target.to_path_buf(), partial, manifest_path, file, manifest: m }, rows));
        }
        let mut file = File::create(&partial).map_err(|e| Error::io("cannot create", &partial, e))?;
        file.write_all(header).map_err(|e| Error::io("cannot write", &partial, e))?;
        let manifest = Manifest { job, rows_done: 0, bytes_done: header.len() as u64 };
        let mut out = ResumableOutput { target: target.to_path_buf(), partial, manifest_path, file, manifest };
        out.commit()?;
        Ok((out, 0))
    }

    fn read_manifest(path: &Path) -> Result<Option<Manifest>> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::config("output", format!("{}: unreadable manifest ({e}); pass --restart", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("cannot read", path, e)),
        }
    }

    /// Syncs the partial file and records its length and rows in the manifest (atomically).
    fn commit(&mut self) -> Result<()> {
        self.file.sync_data().map_err(|e| Error::io("cannot sync", &self.partial, e))?;
        let json = serde_json::to_vec_pretty(&self.manifest).map_err(|e| Error::serialize("prediction manifest", e))?;
        let path = self.manifest_path.clone();
        write_file_atomically(&path, |mut w| w.write_all(&json).and_then(|()| w.flush()).map_err(|e| Error::io("cannot write", &path, e)))
    }

    /// Appends one chunk's rows and records them.
    pub fn append(&mut self, bytes: &[u8], rows: u64) -> Result<()> {
        self.file.write_all(bytes).map_err(|e| Error::io("cannot write predictions", &self.partial, e))?;
        crate::faults::point("predict-write");
        self.manifest.rows_done += rows;
        self.manifest.bytes_done += bytes.len() as u64;
        self.commit()
    }

    /// Rows written so far (resumed ones included).
    pub fn rows(&self) -> u64 {
        self.manifest.rows_done
    }

    /// Moves the finished file into place and removes the manifest.
    pub fn finish(self) -> Result<()> {
        drop(self.file);
        crate::faults::point("predict-finish");
        std::fs::rename(&self.partial, &self.target).map_err(|e| Error::io("cannot rename into place", &self.target, e))?;
        std::fs::remove_file(&self.manifest_path).map_err(|e| Error::io("cannot remove", &self.manifest_path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(models: &str) -> PredictJob {
        PredictJob {
            input: "in.jsonl".into(),
            input_bytes: 10,
            input_modified_ns: 1,
            models: vec![models.into()],
            labels: vec!["a".into()],
            format: super::super::RowFormat::Csv,
            columns: vec![Some("text".into()), None, None],
            records: (0, u64::MAX),
            chunk: 2,
            batch_size: 8,
            settings: String::new(),
            version: "0".into(),
        }
    }

    #[test]
    fn an_interrupted_file_resumes_at_the_last_recorded_chunk() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("out.csv");
        let (mut out, done) = ResumableOutput::open(&target, job("m"), b"h\n", false).expect("open");
        assert_eq!(done, 0);
        out.append(b"1\n2\n", 2).expect("append");
        // a chunk written but not recorded (killed before the manifest) is cut away on resume
        out.file.write_all(b"3\n").expect("write");
        drop(out);
        let (mut out, done) = ResumableOutput::open(&target, job("m"), b"h\n", false).expect("resume");
        assert_eq!(done, 2);
        out.append(b"3\n4\n", 2).expect("append");
        out.append(b"5\n", 1).expect("append");
        assert_eq!(out.rows(), 5);
        out.finish().expect("finish");
        assert_eq!(std::fs::read_to_string(&target).expect("read"), "h\n1\n2\n3\n4\n5\n");
        assert!(!ResumableOutput::manifest_path(&target).exists() && !ResumableOutput::partial_path(&target).exists());
    }

    #[test]
    fn another_jobs_partial_file_is_refused_unless_restarted() {
        let dir = tempfile::tempdir().expect("tmp");
        let target = dir.path().join("out.csv");
        let (mut out, _) = ResumableOutput::open(&target, job("m"), b"h\n", false).expect("open");
        out.append(b"1\n", 1).expect("append");
        drop(out);
        let err = ResumableOutput::open(&target, job("other"), b"h\n", false).expect_err("other job");
        assert!(err.to_string().contains("`models` was [\"m\"] and is now [\"other\"]") && err.to_string().contains("--restart"), "{err}");
        let (out, done) = ResumableOutput::open(&target, job("other"), b"h\n", true).expect("restart");
        assert_eq!((done, out.rows()), (0, 0));
    }
}
