//! Offline tests of Hub loading against a local HTTP server that serves Hub-layout files.

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

#[test]
fn sharded_weights_are_fetched_through_their_index_and_a_pytorch_only_repository_works() {
    let index = br#"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#;
    let files: &[(&str, &[u8])] = &[
        ("config.json", b"{}"),
        ("model.safetensors.index.json", index),
        ("model-00001-of-00002.safetensors", b"one"),
        ("model-00002-of-00002.safetensors", b"two"),
        ("tokenizer.json", b"{}"),
    ];
    let server = HubServer::start(files, &["model-00001-of-00002.safetensors"], 40);
    let cache = tempfile::tempdir().unwrap();
    let dir = fetch(&server, cache.path()).unwrap();
    for (name, body) in &files[1..4] {
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), *body, "{name}");
    }
    assert_eq!(crate::source::WeightFiles::locate(&dir).unwrap().files.len(), 2);

    let server = HubServer::start(&[("config.json", b"{}"), ("pytorch_model.bin", b"PK"), ("vocab.txt", b"a")], &[], 40);
    let cache = tempfile::tempdir().unwrap();
    let dir = fetch(&server, cache.path()).unwrap();
    assert_eq!(std::fs::read(dir.join("pytorch_model.bin")).unwrap(), b"PK");

    let server = HubServer::start(&[("config.json", b"{}"), ("vocab.txt", b"a")], &[], 40);
    let err = fetch(&server, tempfile::tempdir().unwrap().path()).unwrap_err();
    let text = format!("{err} {}", err.source().map(|s| s.to_string()).unwrap_or_default());
    assert!(text.contains("pytorch_model.bin.index.json"), "{text}");
}
