//! A checkpoint's weight files and reading their tensors: `model.safetensors`, sharded safetensors
//! (`model.safetensors.index.json`), and PyTorch's zip format (`pytorch_model.bin`, also sharded), read
//! by a pickle interpreter that only builds data (candle's): nothing in a checkpoint is executed, and
//! the pre-1.6 non-zip pickle format is refused.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::error::{Error, Location, Result};

/// The file names a folder's weights may have, in the order they are looked for.
pub const SAFETENSORS: &str = "model.safetensors";
/// Index of sharded safetensors.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";
/// PyTorch's zip checkpoint.
pub const PYTORCH: &str = "pytorch_model.bin";
/// Index of sharded PyTorch checkpoints.
pub const PYTORCH_INDEX: &str = "pytorch_model.bin.index.json";

/// The format of a checkpoint's weight files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// safetensors.
    Safetensors,
    /// PyTorch's zip of pickled tensors.
    PyTorch,
}

/// Where a model folder's weights are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightFiles {
    /// The file that names them: the weights file itself, or the shards' index.
    pub path: PathBuf,
    /// The files holding tensors (one, or the shards in index order).
    pub files: Vec<PathBuf>,
    /// Their format.
    pub format: Format,
}

impl WeightFiles {
    /// The weights of folder `dir`: `model.safetensors`, else its sharded index, else
    /// `pytorch_model.bin`, else its sharded index.
    pub fn locate(dir: &Path) -> Result<Self> {
        let at = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        if let Some(path) = at(SAFETENSORS) {
            return Ok(WeightFiles { files: vec![path.clone()], path, format: Format::Safetensors });
        }
        if let Some(index) = at(SAFETENSORS_INDEX) {
            return Self::sharded(index, Format::Safetensors);
        }
        if let Some(path) = at(PYTORCH) {
            return Ok(WeightFiles { files: vec![path.clone()], path, format: Format::PyTorch });
        }
        if let Some(index) = at(PYTORCH_INDEX) {
            return Self::sharded(index, Format::PyTorch);
        }
        Err(Error::input(
            Location::file(dir.join(SAFETENSORS)),
            format!("missing model weights (looked for {SAFETENSORS}, {SAFETENSORS_INDEX}, {PYTORCH} and {PYTORCH_INDEX})"),
        ))
    }

    /// The shards an index names (its `weight_map` values), each once, in first-mention order; every one
    /// must be a plain file name beside the index, and present.
    pub fn sharded(index: PathBuf, format: Format) -> Result<Self> {
        let dir = index.parent().map(Path::to_path_buf).unwrap_or_default();
        let names = shard_names(&index)?;
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let file = dir.join(&name);
            if !file.is_file() {
                return Err(Error::input(Location::file(&index).field("weight_map"), format!("shard `{name}` is missing")));
            }
            files.push(file);
        }
        Ok(WeightFiles { path: index, files, format })
    }

    /// Every tensor of every file, by checkpoint name, on `device`.
    pub fn read(&self, device: &Device) -> Result<Vec<(String, Tensor)>> {
        let mut all = Vec::new();
        let mut seen = BTreeSet::new();
        for file in &self.files {
            let tensors = match self.format {
                Format::Safetensors => read_safetensors(file, device)?,
                Format::PyTorch => read_pytorch(file, device)?,
            };
            for (name, t) in tensors {
                if !seen.insert(name.clone()) {
                    return Err(Error::input(Location::file(file), format!("tensor `{name}` appears in more than one shard")));
                }
                all.push((name, t));
            }
        }
        Ok(all)
    }
}

/// The shard file names of an index (`{"weight_map": {"tensor": "file", …}}`).
pub fn shard_names(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io("cannot read weights index", index, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::parse(Location::file(index).line(e.line() as u64), "not a valid weights index", e))?;
    let map = value.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| {
        Error::input(Location::file(index).field("weight_map"), "missing: a weights index maps tensor names to shard files")
    })?;
    let mut names: Vec<String> = Vec::new();
    for (tensor, file) in map {
        let name = file.as_str().ok_or_else(|| Error::input(Location::file(index).field(format!("weight_map.{tensor}")), "not a file name"))?;
        let plain = !name.is_empty() && !name.contains(['/', '\\']) && name != "." && name != "..";
        if !plain {
            return Err(Error::input(Location::file(index).field(format!("weight_map.{tensor}")), format!("`{name}` is not a file beside the index")));
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    if names.is_empty() {
        return Err(Error::input(Location::file(index).field("weight_map"), "names no shard"));
    }
    Ok(names)
}

fn read_safetensors(path: &Path, device: &Device) -> Result<Vec<(String, Tensor)>> {
    let tensors = candle_core::safetensors::load(path, device).map_err(|e| unreadable(path, "not a readable safetensors file", e))?;
    let mut v: Vec<(String, Tensor)> = tensors.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// A PyTorch zip checkpoint's tensors. The zip is checked first, so a legacy (pre-1.6) pickle file gets a
/// clear refusal; candle's reader interprets the pickle as data only.
fn read_pytorch(path: &Path, device: &Device) -> Result<Vec<(String, Tensor)>> {
    let mut head = [0u8; 4];
    let is_zip = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .map(|_| head == *b"PK\x03\x04")
        .map_err(|e| Error::io("cannot read model weights", path, e))?;
    if !is_zip {
        return Err(Error::input(
            Location::file(path),
            "not a PyTorch zip checkpoint (files saved by PyTorch before 1.6, or any other pickle, are refused: \
             bertfit never executes a checkpoint); convert it to safetensors",
        ));
    }
    let mut tensors = candle_core::pickle::read_all(path).map_err(|e| unreadable(path, "not a readable PyTorch checkpoint", e))?;
    if tensors.is_empty() {
        return Err(Error::input(Location::file(path), "the PyTorch checkpoint holds no tensors (expected a state dict)"));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors.into_iter().map(|(n, t)| Ok((n, t.to_device(device)?))).collect()
}

fn unreadable(path: &Path, msg: &str, e: candle_core::Error) -> Error {
    Error::parse(Location::file(path), msg, Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_format_present_wins_and_missing_weights_name_every_file_looked_for() {
        let dir = tempfile::tempdir().expect("tmp");
        let err = WeightFiles::locate(dir.path()).expect_err("empty").to_string();
        assert!(err.contains(SAFETENSORS_INDEX) && err.contains(PYTORCH), "{err}");
        std::fs::write(dir.path().join(PYTORCH), b"x").expect("write");
        assert_eq!(WeightFiles::locate(dir.path()).expect("bin").format, Format::PyTorch);
        std::fs::write(dir.path().join(SAFETENSORS), b"x").expect("write");
        let w = WeightFiles::locate(dir.path()).expect("safetensors");
        assert_eq!((w.format, w.files.len()), (Format::Safetensors, 1));
    }

    #[test]
    fn an_index_names_its_shards_once_and_only_beside_itself() {
        let dir = tempfile::tempdir().expect("tmp");
        let index = dir.path().join(SAFETENSORS_INDEX);
        let write = |json: &str| std::fs::write(&index, json).expect("write");
        write(r#"{"metadata": {}, "weight_map": {"a": "s-2.safetensors", "b": "s-1.safetensors", "c": "s-2.safetensors"}}"#);
        assert_eq!(shard_names(&index).expect("names"), vec!["s-2.safetensors", "s-1.safetensors"]);
        let err = WeightFiles::sharded(index.clone(), Format::Safetensors).expect_err("absent").to_string();
        assert!(err.contains("shard `s-2.safetensors` is missing"), "{err}");
        write(r#"{"weight_map": {"a": "../elsewhere.safetensors"}}"#);
        let err = shard_names(&index).expect_err("outside").to_string();
        assert!(err.contains("weight_map.a") && err.contains("not a file beside the index"), "{err}");
        write(r#"{"weight_map": {}}"#);
        assert!(shard_names(&index).is_err());
        write("{");
        assert!(shard_names(&index).expect_err("syntax").to_string().contains(SAFETENSORS_INDEX));
    }

    #[test]
    fn a_pickle_that_is_not_a_zip_is_refused_without_being_run() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(PYTORCH);
        // protocol-2 pickle of `os.system("touch pwned")`: a GLOBAL + REDUCE that Python would execute
        std::fs::write(&path, b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00touch pwnedq\x01\x85q\x02Rq\x03.").expect("write");
        let files = WeightFiles::locate(dir.path()).expect("located");
        let err = files.read(&Device::Cpu).expect_err("refused").to_string();
        assert!(err.contains("not a PyTorch zip checkpoint") && err.contains("never executes"), "{err}");
        assert!(!dir.path().join("pwned").exists() && !Path::new("pwned").exists());
        // a zip that holds no pickled state dict is refused too
        std::fs::write(&path, b"PK\x03\x04 truncated").expect("write");
        assert!(files.read(&Device::Cpu).is_err());
    }
}
