//! Fetching a model folder from the Hugging Face Hub (needs network), through `hf-hub`'s sync client.
//!
//! A model id (`org/name` or `name`) and a revision (branch, tag or commit) resolve to a snapshot folder in
//! the standard Hub cache layout (`models--org--name/snapshots/<commit>/`, files linked to `blobs/<etag>`),
//! which Python's `huggingface_hub` shares. Only what bertfit needs is fetched: `config.json`, the
//! weights (`model.safetensors`, else the sharded safetensors its index names, else `pytorch_model.bin`,
//! else its shards), `tokenizer.json` (else `vocab.txt`) and `tokenizer_config.json` if the repository has
//! one.
//!
//! Cache first: once the files of a revision are in the cache, fetching again makes no request (a moved
//! branch is not noticed; pass a commit hash as the revision to pin one). Optional files the repository
//! lacks are remembered in `.no_exist/<commit>/`, as `huggingface_hub` does.
//!
//! Protocol (hf-hub 0.4.3 sync API) for each file, at `{endpoint}/{repo}/resolve/{revision}/{file}`:
//! a `GET` with `Range: bytes=0-0` that does not follow absolute redirects, whose response must carry
//! `x-repo-commit`, `etag` (or `x-linked-etag` on a redirect to a CDN) and `Content-Range: bytes 0-0/SIZE`
//! (read from the redirect target when redirected); then a `GET` with `Range: bytes=0-` that follows
//! redirects, appended to `blobs/<etag>.part`. A 404 means the file is not in the repository.
//! HTTPS comes from `ureq`'s default `tls` feature (rustls with the bundled Mozilla roots, no OpenSSL), which
//! hf-hub keeps on. Behind a proxy that re-signs TLS with its own CA, turn on `ureq`'s `native-certs`
//! feature to use the system store (and `SSL_CERT_FILE`) instead.

use std::error::Error as StdError;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};

const CONFIG: &str = "config.json";
const TOKENIZER_JSON: &str = "tokenizer.json";
const VOCAB_TXT: &str = "vocab.txt";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// Whether `s` has the shape of a Hub model id: `name` or `org/name`, optionally followed by
/// `@revision`. Each part is 1 to 96 of `A-Z a-z 0-9 - _ .`, starting and ending with a letter, digit or
/// `_`, with no `--` or `..`.
///
/// A shape test only: `bert-base-uncased` and `model` both pass. Callers check first whether a local
/// path of that name exists, and treat `s` as a Hub id only when none does.
pub fn looks_like_hub_id(s: &str) -> bool {
    match s.split_once('@') {
        Some((id, revision)) => valid_repo_id(id) && valid_revision(revision),
        None => valid_repo_id(s),
    }
}

/// Downloads (or finds in the cache) the files of Hub model `repo_id` at `revision` and returns the
/// snapshot folder that holds them: `config.json`, `model.safetensors`, `tokenizer.json` or, when the
/// repository has none, `vocab.txt`, and `tokenizer_config.json` when present.
///
/// `endpoint` defaults to the `HF_ENDPOINT` environment variable, then to hf-hub's default (the public
/// Hub). `cache_dir` is the Hub cache folder itself (the one holding `models--*`); it defaults to
/// `HF_HUB_CACHE`, then `$HF_HOME/hub`, then `~/.cache/huggingface/hub`. A token comes from `HF_TOKEN`,
/// else from the `token` file beside the cache folder. No progress is printed.
///
/// Errors: [`Error::Config`] for a malformed id or revision, [`Error::Hub`] naming the file that could
/// not be fetched (not in the repository, network failure, unexpected server answer).
pub fn fetch_model(repo_id: &str, revision: &str, endpoint: Option<&str>, cache_dir: Option<&Path>) -> Result<PathBuf> {
    if !valid_repo_id(repo_id) {
        return Err(Error::config("model", format!("`{repo_id}` is not a Hugging Face Hub model id (org/name)")));
    }
    if !valid_revision(revision) {
        return Err(Error::config("revision", format!("`{revision}` is not a valid Hub revision")));
    }
    let cache_root = match cache_dir {
        Some(dir) => dir.to_path_buf(),
        None => default_cache_dir()?,
    };
    let endpoint = pick_endpoint(endpoint, std::env::var("HF_ENDPOINT").ok());
    let mut fetcher = Fetcher::new(repo_id, revision, endpoint, cache_root);

    let config = fetcher.required(CONFIG)?;
    let weights = fetch_weights(&mut fetcher)?;
    let tokenizer = match fetcher.optional(TOKENIZER_JSON)? {
        Some(path) => path,
        None => fetcher.required(VOCAB_TXT).map_err(|e| match e {
            Error::Hub { repo, file, source } => Error::Hub {
                repo,
                file,
                source: Box::new(Context {
                    msg: "the repository has neither tokenizer.json nor vocab.txt (a SentencePiece-only repository, as DeBERTa-v3's, \
                          needs its tokenizer saved once as tokenizer.json with transformers' AutoTokenizer)",
                    source,
                }),
            },
            other => other,
        })?,
    };
    let tokenizer_config = fetcher.optional(TOKENIZER_CONFIG)?;

    let snapshot = snapshot_of(&config, repo_id, CONFIG)?;
    for path in weights.iter().chain([Some(&tokenizer), tokenizer_config.as_ref()].into_iter().flatten()) {
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if snapshot_of(path, repo_id, &file)? != snapshot {
            let msg = format!("revision `{revision}` moved to another commit during the download; run again");
            return Err(fetcher.error(&file, msg.into()));
        }
    }
    Ok(snapshot)
}

/// The weight files, in the order a model folder looks for them (`WeightFiles::locate`): the first
/// format the repository has wins; for an index, every shard it names is fetched too.
fn fetch_weights(fetcher: &mut Fetcher) -> Result<Vec<PathBuf>> {
    use super::weights::{shard_names, PYTORCH, PYTORCH_INDEX, SAFETENSORS, SAFETENSORS_INDEX};
    for (single, index) in [(SAFETENSORS, SAFETENSORS_INDEX), (PYTORCH, PYTORCH_INDEX)] {
        if let Some(path) = fetcher.optional(single)? {
            return Ok(vec![path]);
        }
        if let Some(index_path) = fetcher.optional(index)? {
            let mut files = vec![index_path.clone()];
            for shard in shard_names(&index_path)? {
                files.push(fetcher.required(&shard)?);
            }
            return Ok(files);
        }
    }
    let msg = format!("the repository has none of {SAFETENSORS}, {SAFETENSORS_INDEX}, {PYTORCH}, {PYTORCH_INDEX}");
    Err(fetcher.error(SAFETENSORS, msg.into()))
}

/// The endpoint to use: the explicit one, else a non-empty `HF_ENDPOINT`, else `None` (hf-hub's
/// default). Trailing slashes are dropped, since hf-hub appends `/{repo}/resolve/...`.
fn pick_endpoint(explicit: Option<&str>, env: Option<String>) -> Option<String> {
    let chosen = match explicit {
        Some(e) => Some(e.to_string()),
        None => env,
    };
    chosen.map(|e| e.trim().trim_end_matches('/').to_string()).filter(|e| !e.is_empty())
}

/// `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
fn default_cache_dir() -> Result<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = var("HF_HUB_CACHE") {
        return Ok(dir);
    }
    if let Some(home) = var("HF_HOME") {
        return Ok(home.join("hub"));
    }
    match var("HOME").or_else(|| var("USERPROFILE")) {
        Some(home) => Ok(home.join(".cache").join("huggingface").join("hub")),
        None => Err(Error::config("cache", "no home directory: set HF_HOME or pass a cache folder")),
    }
}

/// The folder a fetched file lies in (its snapshot folder).
fn snapshot_of(path: &Path, repo: &str, file: &str) -> Result<PathBuf> {
    path.parent().map(Path::to_path_buf).ok_or_else(|| Error::Hub {
        repo: repo.to_string(),
        file: file.to_string(),
        source: format!("hf-hub returned a path with no folder: {}", path.display()).into(),
    })
}

fn valid_repo_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() <= 2 && parts.iter().all(|part| valid_id_part(part))
}

fn valid_id_part(part: &str) -> bool {
    let bytes = part.as_bytes();
    let edge_ok = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            bytes.len() <= 96
                && edge_ok(first)
                && edge_ok(last)
                && bytes.iter().all(|&c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
                && !part.contains("--")
                && !part.contains("..")
        }
        _ => false,
    }
}

/// Branch, tag or commit: `A-Z a-z 0-9 - _ . /`, no empty, `.` or `..` path segment (the revision
/// becomes a path under the cache's `refs/`).
fn valid_revision(rev: &str) -> bool {
    !rev.is_empty()
        && rev.len() <= 255
        && rev.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c))
        && rev.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// A commit hash as a server or the cache gives it, checked before it becomes a path segment.
fn valid_commit(commit: &str) -> bool {
    (1..=64).contains(&commit.len()) && commit.bytes().all(|c| c.is_ascii_alphanumeric())
}

/// An error message that keeps the hub client's error as its cause.
#[derive(Debug, thiserror::Error)]
#[error("{msg}")]
struct Context {
    msg: &'static str,
    #[source]
    source: Box<dyn StdError + Send + Sync>,
}

/// Fetches the files of one repository at one revision, cache first; the client is built only when a
/// file has to be downloaded.
struct Fetcher {
    repo_id: String,
    endpoint: Option<String>,
    cache: Cache,
    cache_root: PathBuf,
    repo: Repo,
    api: Option<ApiRepo>,
}

impl Fetcher {
    fn new(repo_id: &str, revision: &str, endpoint: Option<String>, cache_root: PathBuf) -> Self {
        Fetcher {
            repo_id: repo_id.to_string(),
            endpoint,
            cache: Cache::new(cache_root.clone()),
            cache_root,
            repo: Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string()),
            api: None,
        }
    }

    fn error(&self, file: &str, source: Box<dyn StdError + Send + Sync>) -> Error {
        Error::Hub { repo: self.repo_id.clone(), file: file.to_string(), source }
    }

    fn api(&mut self, file: &str) -> Result<&ApiRepo> {
        if self.api.is_none() {
            let mut builder = ApiBuilder::from_cache(self.cache.clone())
                .with_progress(false)
                .with_retries(2)
                .with_user_agent("bertfit", env!("CARGO_PKG_VERSION"));
            if let Some(endpoint) = &self.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            if let Some(token) = std::env::var("HF_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
                builder = builder.with_token(Some(token.trim().to_string()));
            }
            let api = builder.build().map_err(|e| self.error(file, Box::new(e)))?;
            self.api = Some(api.repo(self.repo.clone()));
        }
        match &self.api {
            Some(api) => Ok(api),
            None => Err(self.error(file, "hub client unavailable".into())),
        }
    }

    /// A file the model cannot do without: cached, or downloaded, or an [`Error::Hub`].
    fn required(&mut self, file: &str) -> Result<PathBuf> {
        if let Some(path) = self.cache.repo(self.repo.clone()).get(file) {
            return Ok(path);
        }
        self.download(file)?.map_err(|e| self.error(file, Box::new(e)))
    }

    /// A file the repository may lack: `Ok(None)` when it does (the answer is cached).
    fn optional(&mut self, file: &str) -> Result<Option<PathBuf>> {
        if let Some(path) = self.cache.repo(self.repo.clone()).get(file) {
            return Ok(Some(path));
        }
        let known_commit = self.cached_commit();
        if let Some(commit) = &known_commit {
            if self.no_exist_marker(commit, file).exists() {
                return Ok(None);
            }
        }
        match self.download(file)? {
            Ok(path) => Ok(Some(path)),
            Err(err) => match not_found_commit(&err) {
                Some(commit) => {
                    if let Some(commit) = commit.or(known_commit) {
                        // A hint that saves a request next time; failing to write it costs nothing else.
                        let marker = self.no_exist_marker(&commit, file);
                        if let Some(dir) = marker.parent() {
                            let _ = std::fs::create_dir_all(dir).and_then(|()| std::fs::File::create(&marker));
                        }
                    }
                    Ok(None)
                }
                None => Err(self.error(file, Box::new(err))),
            },
        }
    }

    /// Downloads `file` into the cache. hf-hub 0.4.3 panics on a few malformed server answers (a
    /// redirect without `Location`); the endpoint is user input, so such a panic becomes an error.
    fn download(&mut self, file: &str) -> Result<std::result::Result<PathBuf, ApiError>> {
        let api = self.api(file)?;
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| api.download(file)))
            .map_err(|_| self.error(file, "the hub client failed on a malformed server answer".into()))
    }

    /// The commit the cache's `refs/<revision>` points to, if any.
    fn cached_commit(&self) -> Option<String> {
        let path = self.cache_root.join(self.repo.folder_name()).join("refs").join(self.repo.revision());
        let commit = std::fs::read_to_string(path).ok()?.trim().to_string();
        valid_commit(&commit).then_some(commit)
    }

    fn no_exist_marker(&self, commit: &str, file: &str) -> PathBuf {
        self.cache_root.join(self.repo.folder_name()).join(".no_exist").join(commit).join(file)
    }
}

/// `Some(commit header)` when the error is the server saying 404 (the file is not in the repository).
fn not_found_commit(err: &ApiError) -> Option<Option<String>> {
    match err {
        ApiError::RequestError(inner) => match inner.as_ref() {
            ureq::Error::Status(404, response) => {
                Some(response.header("x-repo-commit").map(str::to_string).filter(|c| valid_commit(c)))
            }
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
#[path = "hub_tests.rs"]
mod tests;
