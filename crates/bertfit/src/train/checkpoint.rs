//! Crash-safe checkpoints and model folders.
//!
//! A folder is written into a temporary sibling, every file is fsynced, a `manifest.json` listing each
//! file with its size and sha256 is written last, the folder is fsynced and renamed into place, and the
//! parent is fsynced. Loading verifies the manifest, so a torn or corrupted checkpoint is refused and the
//! run falls back to the newest valid one.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::faults;
use super::state::TrainerState;
use crate::error::{Error, Location, Result};
use crate::model::Classifier;
use crate::tokenize::TextTokenizer;

const MANIFEST: &str = "manifest.json";
const STATE: &str = "trainer_state.json";
const OPTIMIZER: &str = "optimizer.safetensors";

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    files: BTreeMap<String, FileEntry>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct FileEntry {
    size: u64,
    sha256: String,
}

fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io("cannot read", path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io("cannot read", path, e))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((size, hex))
}

fn fsync(path: &Path) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io("cannot open for sync", path, e))?;
    f.sync_all().map_err(|e| Error::io("cannot sync", path, e))
}

/// Writes the manifest of every file in `dir` (fsyncing each), then syncs the folder.
fn seal(dir: &Path) -> Result<()> {
    let mut files = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == MANIFEST {
            continue;
        }
        let path = entry.path();
        fsync(&path)?;
        let (size, sha256) = sha256_file(&path)?;
        files.insert(name, FileEntry { size, sha256 });
    }
    faults::point("checkpoint-write");
    let json = serde_json::to_vec_pretty(&Manifest { format: 1, files }).map_err(|e| Error::serialize("checkpoint manifest", e))?;
    let path = dir.join(MANIFEST);
    std::fs::write(&path, json).map_err(|e| Error::io("cannot write", &path, e))?;
    fsync(&path)?;
    fsync(dir)
}

/// Checks a folder against its manifest; the error says what is wrong.
pub fn verify(dir: &Path) -> Result<()> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path)
        .map_err(|_| Error::input(Location::file(&path), "missing or unreadable manifest (the write was interrupted)"))?;
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| Error::parse(Location::file(&path), "corrupt manifest", e))?;
    for (name, want) in &manifest.files {
        let file = dir.join(name);
        if !file.exists() {
            return Err(Error::input(Location::file(&file), "listed in the manifest but missing"));
        }
        let (size, sha256) = sha256_file(&file)?;
        if size != want.size {
            return Err(Error::input(Location::file(&file), format!("size {size} bytes, manifest says {} (truncated?)", want.size)));
        }
        if sha256 != want.sha256 {
            return Err(Error::input(Location::file(&file), "sha256 does not match the manifest (corrupted)"));
        }
    }
    Ok(())
}

/// Replaces `dest` with the folder `fill` writes, sealed with a manifest.
pub fn write_atomically(dest: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let name = dest.file_name().and_then(|n| n.to_str()).unwrap_or("out");
    let parent = dest.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| Error::io("cannot create", parent, e))?;
    let tmp = parent.join(format!(".{name}.tmp"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io("cannot remove stale temporary folder", &tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
    if let Err(e) = fill(&tmp).and_then(|_| seal(&tmp)) {
        // Leave the previous `dest` untouched; drop the partial copy (best effort).
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let old: PathBuf = parent.join(format!(".{name}.old"));
    if dest.exists() {
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io("cannot remove", &old, e))?;
        }
        std::fs::rename(dest, &old).map_err(|e| Error::io("cannot move aside", dest, e))?;
    }
    std::fs::rename(&tmp, dest).map_err(|e| Error::io("cannot rename into place", dest, e))?;
    fsync(parent)?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(|e| Error::io("cannot remove", &old, e))?;
    }
    Ok(())
}

/// Writes a Hugging Face model folder (config, weights, tokenizer) into `dir`.
pub fn write_model(model: &Classifier, tokenizer: &TextTokenizer, dir: &Path) -> Result<()> {
    model.save(dir, tokenizer.max_len())?;
    tokenizer.save(&dir.join("tokenizer.json"))
}

/// Writes a checkpoint's files: the model folder plus optimizer moments and trainer state.
/// `optimizer`: the runner's state vectors (`NAME.exp_avg`, `NAME.exp_avg_sq`, `NAME.grad_acc`).
pub fn write_checkpoint(model: &Classifier, tokenizer: &TextTokenizer, optimizer: &[(String, Vec<f32>)], state: &TrainerState, dir: &Path) -> Result<()> {
    model.save_checkpoint(dir, tokenizer.max_len())?;
    tokenizer.save(&dir.join("tokenizer.json"))?;
    write_loop_state(optimizer, state, dir)
}

/// Writes the optimizer vectors (`optimizer.safetensors`) and a loop's state (`trainer_state.json`)
/// into a checkpoint folder whose model files the caller writes: shared by fine-tuning and pretraining.
pub fn write_loop_state<S: Serialize>(optimizer: &[(String, Vec<f32>)], state: &S, dir: &Path) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, data) in optimizer {
        tensors.insert(name.clone(), Tensor::from_slice(data, data.len(), &Device::Cpu)?);
    }
    let opt_path = dir.join(OPTIMIZER);
    candle_core::safetensors::save(&tensors, &opt_path).map_err(|e| match e {
        candle_core::Error::Io(io) => Error::io("cannot write", &opt_path, io),
        other => Error::Tensor(other),
    })?;
    let json = serde_json::to_string_pretty(state).map_err(|e| Error::serialize("trainer state", e))?;
    let path = dir.join(STATE);
    std::fs::write(&path, json).map_err(|e| Error::io("cannot write", &path, e))
}

/// A verified checkpoint read back from disk, with the state of the loop that wrote it (fine-tuning's
/// [`TrainerState`] unless said otherwise).
#[derive(Debug)]
pub struct Loaded<S = TrainerState> {
    /// Its folder (also a model folder).
    pub dir: PathBuf,
    /// Trainer state.
    pub state: S,
    /// Optimizer vectors by name.
    pub optimizer: HashMap<String, Vec<f32>>,
}

/// Reads and verifies one checkpoint folder.
pub fn load<S: DeserializeOwned>(dir: &Path) -> Result<Loaded<S>> {
    verify(dir)?;
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io("cannot read", &path, e))?;
    let state: S = serde_json::from_str(&text).map_err(|e| Error::parse(Location::file(&path), "corrupt trainer state", e))?;
    let opt_path = dir.join(OPTIMIZER);
    let tensors = candle_core::safetensors::load(&opt_path, &Device::Cpu)
        .map_err(|e| Error::parse(Location::file(&opt_path), "unreadable optimizer state", Box::new(e) as Box<dyn std::error::Error + Send + Sync>))?;
    let mut optimizer = HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        optimizer.insert(name, t.to_vec1::<f32>()?);
    }
    Ok(Loaded { dir: dir.to_path_buf(), state, optimizer })
}

/// The checkpoints folder of a run.
pub fn checkpoints_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("checkpoints")
}

/// Folder name of the checkpoint taken after `micro_step` micro-batches.
pub fn checkpoint_name(micro_step: u64) -> String {
    format!("ckpt-{micro_step:010}")
}

/// Checkpoint folders of a run, newest first.
pub fn list(run_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(checkpoints_dir(run_dir)) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ckpt-")))
        .collect();
    dirs.sort();
    dirs.reverse();
    dirs
}

/// The newest checkpoint that verifies, with the reasons the newer ones were refused.
pub fn newest_valid<S: DeserializeOwned>(run_dir: &Path) -> (Option<Loaded<S>>, Vec<(PathBuf, Error)>) {
    let mut refused = Vec::new();
    for dir in list(run_dir) {
        match load(&dir) {
            Ok(l) => return (Some(l), refused),
            Err(e) => refused.push((dir, e)),
        }
    }
    (None, refused)
}

/// Deletes all but the newest `keep` checkpoints (never fewer than one).
pub fn prune(run_dir: &Path, keep: usize) -> Result<()> {
    for dir in list(run_dir).into_iter().skip(keep.max(1)) {
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("cannot remove old checkpoint", &dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed_folder(root: &Path) -> PathBuf {
        let dest = root.join("ckpt");
        write_atomically(&dest, |tmp| {
            std::fs::write(tmp.join("a.bin"), vec![7u8; 1000]).map_err(|e| Error::io("w", tmp, e))?;
            std::fs::write(tmp.join("b.json"), "{}").map_err(|e| Error::io("w", tmp, e))
        })
        .expect("write");
        dest
    }

    #[test]
    fn sealed_folders_verify_and_damage_is_named() {
        let dir = tempfile::tempdir().expect("tmp");
        let dest = sealed_folder(dir.path());
        verify(&dest).expect("valid");
        assert!(!dir.path().join(".ckpt.tmp").exists());

        let mut bytes = std::fs::read(dest.join("a.bin")).expect("read");
        bytes[500] ^= 1;
        std::fs::write(dest.join("a.bin"), &bytes).expect("flip");
        let err = verify(&dest).expect_err("flipped byte").to_string();
        assert!(err.contains("a.bin") && err.contains("sha256"), "{err}");

        std::fs::write(dest.join("a.bin"), &bytes[..400]).expect("truncate");
        let err = verify(&dest).expect_err("truncated").to_string();
        assert!(err.contains("a.bin") && err.contains("truncated"), "{err}");

        std::fs::remove_file(dest.join(MANIFEST)).expect("rm");
        let err = verify(&dest).expect_err("no manifest").to_string();
        assert!(err.contains("manifest"), "{err}");
    }

    #[test]
    fn a_failed_write_leaves_the_previous_folder_intact() {
        let dir = tempfile::tempdir().expect("tmp");
        let dest = sealed_folder(dir.path());
        let err = write_atomically(&dest, |_| Err(Error::io("cannot write", "x", std::io::Error::other("disk full"))));
        assert!(err.is_err());
        verify(&dest).expect("old folder still valid");
        assert_eq!(std::fs::read(dest.join("a.bin")).expect("read").len(), 1000);
        assert!(!dir.path().join(".ckpt.tmp").exists());
    }
}
