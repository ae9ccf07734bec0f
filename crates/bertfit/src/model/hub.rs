//! Fetching a model folder from the Hugging Face Hub (needs network), through `hf-hub`'s sync client.
//!
//! A model id (`org/name` or `name`) and a revision (branch, tag or commit) resolve to a snapshot folder in
//! the standard Hub cache layout (`models--org--name/snapshots/<commit>/`, files linked to `blobs/<etag>`),
//! which Python's `huggingface_hub` shares. Only what bertfit needs is fetched: `config.json`,
//! `model.safetensors`, `tokenizer.json` (else `vocab.txt`) and `tokenizer_config.json` if the repository
//! has one.
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
const WEIGHTS: &str = "model.safetensors";
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
    let weights = fetcher.required(WEIGHTS)?;
    let tokenizer = match fetcher.optional(TOKENIZER_JSON)? {
        Some(path) => path,
        None => fetcher.required(VOCAB_TXT).map_err(|e| match e {
            Error::Hub { repo, file, source } => Error::Hub {
                repo,
                file,
                source: Box::new(Context { msg: "the repository has neither tokenizer.json nor vocab.txt", source }),
            },
            other => other,
        })?,
    };
    let tokenizer_config = fetcher.optional(TOKENIZER_CONFIG)?;

    let snapshot = snapshot_of(&config, repo_id, CONFIG)?;
    for path in [Some(&weights), Some(&tokenizer), tokenizer_config.as_ref()].into_iter().flatten() {
        let file = path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        if snapshot_of(path, repo_id, &file)? != snapshot {
            let msg = format!("revision `{revision}` moved to another commit during the download; run again");
            return Err(fetcher.error(&file, msg.into()));
        }
    }
    Ok(snapshot)
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
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
    const REPO: &str = "tiny-org/tiny-bert";

    /// A loopback HTTP/1.1 server with the Hub's `resolve` layout for one repository at `main`.
    /// Serves at most `max_requests` requests (one per connection), then exits; also exits on drop or
    /// after 30 s. Files named in `lfs` answer with a 302 to `/cdn/<etag>` as the Hub does for LFS files.
    struct HubServer {
        addr: SocketAddr,
        log: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
    }

    struct Blob {
        body: Vec<u8>,
        etag: String,
    }

    impl HubServer {
        fn start(files: &[(&str, &[u8])], lfs: &[&str], max_requests: usize) -> Self {
            Self::start_with(files, lfs, max_requests, false)
        }

        /// `broken_redirects`: LFS redirects come without their `Location` header.
        fn start_with(files: &[(&str, &[u8])], lfs: &[&str], max_requests: usize, broken_redirects: bool) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let addr = listener.local_addr().unwrap();
            let mut blobs = HashMap::new();
            for (name, body) in files {
                let etag = format!("{:x}", Sha256::digest(body));
                blobs.insert(name.to_string(), (Blob { body: body.to_vec(), etag }, lfs.contains(name)));
            }
            let log = Arc::new(Mutex::new(Vec::new()));
            let stop = Arc::new(AtomicBool::new(false));
            let (thread_log, thread_stop) = (log.clone(), stop.clone());
            let thread = std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let mut served = 0;
                while served < max_requests && !thread_stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            served += 1;
                            serve(stream, addr, &blobs, &thread_log, broken_redirects);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2))
                        }
                        Err(_) => break,
                    }
                }
            });
            HubServer { addr, log, stop, thread: Some(thread) }
        }

        fn endpoint(&self) -> String {
            format!("http://{}", self.addr)
        }

        fn requests(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl Drop for HubServer {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn serve(
        mut stream: TcpStream,
        addr: SocketAddr,
        blobs: &HashMap<String, (Blob, bool)>,
        log: &Mutex<Vec<String>>,
        broken_redirects: bool,
    ) {
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
        let range = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("range").then(|| value.trim().to_string())
        });
        log.lock().unwrap().push(format!("{path} {}", range.as_deref().unwrap_or("-")));

        let prefix = format!("/{REPO}/resolve/main/");
        let mut headers = vec![("x-repo-commit".to_string(), COMMIT.to_string())];
        let (status, body): (&str, &[u8]) = if let Some(file) = path.strip_prefix(&prefix) {
            match blobs.get(file) {
                Some((blob, true)) => {
                    headers.push(("x-linked-etag".into(), format!("\"{}\"", blob.etag)));
                    headers.push(("x-linked-size".into(), blob.body.len().to_string()));
                    if !broken_redirects {
                        headers.push(("location".into(), format!("http://{addr}/cdn/{}", blob.etag)));
                    }
                    ("302 Found", b"")
                }
                Some((blob, false)) => {
                    headers.push(("etag".into(), format!("\"{}\"", blob.etag)));
                    ranged(&blob.body, range.as_deref(), &mut headers)
                }
                None => {
                    headers.push(("x-error-code".into(), "EntryNotFound".into()));
                    ("404 Not Found", b"Entry not found")
                }
            }
        } else if let Some(blob) = path.strip_prefix("/cdn/").and_then(|e| blobs.values().find(|(b, _)| b.etag == e)) {
            headers.clear();
            ranged(&blob.0.body, range.as_deref(), &mut headers)
        } else {
            ("404 Not Found", b"not found")
        };
        let mut out = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n", body.len());
        for (name, value) in headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let _ = stream.write_all(out.as_bytes()).and_then(|()| stream.write_all(body)).and_then(|()| stream.flush());
    }

    /// A 206 for `Range: bytes=a-` / `bytes=a-b`, else a 200 with the whole body.
    fn ranged<'a>(
        body: &'a [u8],
        range: Option<&str>,
        headers: &mut Vec<(String, String)>,
    ) -> (&'static str, &'a [u8]) {
        let Some((a, b)) = range.and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.split_once('-')) else {
            return ("200 OK", body);
        };
        let start: usize = a.parse().unwrap();
        let end = b.parse::<usize>().map_or(body.len() - 1, |e| e.min(body.len() - 1));
        headers.push(("content-range".into(), format!("bytes {start}-{end}/{}", body.len())));
        ("206 Partial Content", &body[start..=end])
    }

    fn weights() -> Vec<u8> {
        (0..40_000u32).flat_map(|i| (i.wrapping_mul(2_654_435_761) >> 7).to_le_bytes()).collect()
    }

    fn fetch(server: &HubServer, cache: &Path) -> Result<PathBuf> {
        fetch_model(REPO, "main", Some(&server.endpoint()), Some(cache))
    }

    #[test]
    fn fetches_files_byte_identical_into_one_snapshot_then_hits_the_cache() {
        let weights = weights();
        let files: &[(&str, &[u8])] = &[
            ("config.json", br#"{"hidden_size": 32}"#),
            ("model.safetensors", &weights),
            ("tokenizer.json", br#"{"model": {"type": "WordPiece"}}"#),
            ("tokenizer_config.json", br#"{"do_lower_case": true}"#),
            ("vocab.txt", b"[PAD]\n[UNK]\n"),
        ];
        let server = HubServer::start(files, &["model.safetensors"], 30);
        let cache = tempfile::tempdir().unwrap();
        let dir = fetch(&server, cache.path()).unwrap();

        assert!(dir.ends_with(Path::new("models--tiny-org--tiny-bert/snapshots").join(COMMIT)), "{}", dir.display());
        for (name, body) in &files[..4] {
            assert_eq!(std::fs::read(dir.join(name)).unwrap(), *body, "{name}");
        }
        assert!(!dir.join("vocab.txt").exists(), "vocab.txt is only a fallback");
        let first = server.requests();
        // metadata + download for each small file; the LFS file adds the CDN hop to both
        assert_eq!(first.len(), 2 + 4 + 2 + 2, "{first:#?}");
        assert!(first.contains(&"/tiny-org/tiny-bert/resolve/main/config.json bytes=0-0".to_string()), "{first:#?}");
        assert!(first.iter().any(|r| r.starts_with("/cdn/") && r.ends_with("bytes=0-")), "{first:#?}");

        let again = fetch(&server, cache.path()).unwrap();
        assert_eq!(again, dir);
        assert_eq!(server.requests().len(), first.len(), "the second fetch must come from the cache");
    }

    #[test]
    fn missing_tokenizer_json_falls_back_to_vocab_txt_and_remembers_absent_files() {
        let files: &[(&str, &[u8])] =
            &[("config.json", b"{}"), ("model.safetensors", b"weights"), ("vocab.txt", b"[PAD]\n[UNK]\nhello\n")];
        let server = HubServer::start(files, &[], 30);
        let cache = tempfile::tempdir().unwrap();
        let dir = fetch(&server, cache.path()).unwrap();

        assert_eq!(std::fs::read(dir.join("vocab.txt")).unwrap(), b"[PAD]\n[UNK]\nhello\n");
        assert!(!dir.join("tokenizer.json").exists());
        assert!(!dir.join("tokenizer_config.json").exists());
        let first = server.requests();
        assert_eq!(first.len(), 2 + 2 + 1 + 2 + 1, "{first:#?}");

        assert_eq!(fetch(&server, cache.path()).unwrap(), dir);
        assert_eq!(server.requests().len(), first.len(), "absent optional files are cached too");
    }

    #[test]
    fn missing_config_is_a_hub_error_naming_the_file() {
        let server = HubServer::start(&[("model.safetensors", b"w"), ("tokenizer.json", b"{}")], &[], 10);
        let cache = tempfile::tempdir().unwrap();
        let err = fetch(&server, cache.path()).unwrap_err();
        match &err {
            Error::Hub { repo, file, .. } => assert_eq!((repo.as_str(), file.as_str()), (REPO, "config.json")),
            other => panic!("expected Error::Hub, got {other:?}"),
        }
        assert!(err.to_string().contains("config.json"));
        let cause = err.source().map(|s| s.to_string()).unwrap_or_default();
        assert!(cause.contains("404"), "{cause}");
        assert!(!err.is_user_error());
        assert_eq!(server.requests().len(), 1, "nothing else is requested after a required file fails");
    }

    #[test]
    fn no_tokenizer_at_all_names_both_files() {
        let server = HubServer::start(&[("config.json", b"{}"), ("model.safetensors", b"w")], &[], 20);
        let cache = tempfile::tempdir().unwrap();
        let err = fetch(&server, cache.path()).unwrap_err();
        assert!(matches!(&err, Error::Hub { file, .. } if file == "vocab.txt"), "{err:?}");
        let cause = err.source().map(|s| s.to_string()).unwrap_or_default();
        assert!(cause.contains("neither tokenizer.json nor vocab.txt"), "{cause}");
    }

    #[test]
    fn malformed_server_answer_is_an_error_not_a_panic() {
        let files: &[(&str, &[u8])] = &[("config.json", b"{}"), ("model.safetensors", b"w"), ("vocab.txt", b"a")];
        let server = HubServer::start_with(files, &["model.safetensors"], 20, true);
        let cache = tempfile::tempdir().unwrap();
        let err = fetch(&server, cache.path()).unwrap_err();
        assert!(matches!(&err, Error::Hub { file, .. } if file == "model.safetensors"), "{err:?}");
    }

    #[test]
    fn unreachable_endpoint_is_a_hub_error() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cache = tempfile::tempdir().unwrap();
        let endpoint = format!("http://127.0.0.1:{port}");
        let err = fetch_model(REPO, "main", Some(&endpoint), Some(cache.path())).unwrap_err();
        assert!(matches!(&err, Error::Hub { file, .. } if file == "config.json"), "{err:?}");
    }

    #[test]
    fn malformed_ids_and_revisions_are_rejected_before_any_request() {
        let cache = tempfile::tempdir().unwrap();
        let endpoint = Some("http://127.0.0.1:9");
        for (id, rev) in [("../etc", "main"), ("a/b/c", "main"), (REPO, "../../escape"), (REPO, "")] {
            let err = fetch_model(id, rev, endpoint, Some(cache.path())).unwrap_err();
            assert!(matches!(err, Error::Config { .. }), "{id}@{rev}: {err:?}");
        }
    }

    #[test]
    fn hub_id_shapes() {
        let cases = [
            ("bert-base-uncased", true),
            ("sentence-transformers/all-MiniLM-L6-v2", true),
            ("org/name@main", true),
            ("org/name@refs/pr/1", true),
            ("google-bert/bert-base-uncased@0123abc", true),
            ("model", true),
            ("org_1/name.v2", true),
            ("", false),
            ("/abs/path", false),
            ("./model", false),
            ("../model", false),
            ("~/models/x", false),
            ("a/b/c", false),
            ("org/", false),
            ("-org/name", false),
            ("org/name-", false),
            ("org/na--me", false),
            ("org/na..me", false),
            ("C:\\models\\x", false),
            ("org/name@", false),
            ("org/name@../x", false),
            ("org name", false),
        ];
        for (s, want) in cases {
            assert_eq!(looks_like_hub_id(s), want, "{s:?}");
        }
        assert!(!looks_like_hub_id(&format!("org/{}", "a".repeat(97))));
    }

    #[test]
    fn endpoint_choice() {
        assert_eq!(pick_endpoint(Some("http://x:1/"), Some("http://env".into())).as_deref(), Some("http://x:1"));
        assert_eq!(pick_endpoint(None, Some("http://env/".into())).as_deref(), Some("http://env"));
        assert_eq!(pick_endpoint(None, Some(" ".into())), None);
        assert_eq!(pick_endpoint(None, None), None);
    }
}
