//! The real server on a loopback port, driven by a real HTTP client: TEI's request and response shapes,
//! every error status with its JSON body, 429 under overload, 503 past the queue deadline, graceful
//! shutdown with a request in flight, the bearer token, `/info`, `/metrics`, `/openapi.json`, and
//! predictions equal to `bertfit predict`'s (the same `Ensemble`) within 1e-6.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bertfit::infer::Ensemble;
use bertfit::model::random::write_random_model;
use bertfit::model::{BertConfig, Classifier, Freeze, LoadOptions, ModelFolder};
use bertfit::runtime::Runtime;
use bertfit_serve::{ServeConfig, Server, Shutdown};
use serde_json::{json, Value};

const WORDS: &[&str] = &["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "movie", "was", "good", "great", "bad", "awful", "plot", "."];
const LABELS: &[&str] = &["neg", "neu", "pos"];

/// A classifier folder: a random encoder of `shape` (hidden, layers, positions) with a random 3-class head.
fn classifier(root: &Path, name: &str, shape: (usize, usize, usize), seed: u64) -> PathBuf {
    let (hidden, layers, positions) = shape;
    let cfg: BertConfig = serde_json::from_value(json!({
        "model_type": "bert", "vocab_size": WORDS.len(), "hidden_size": hidden, "num_hidden_layers": layers,
        "num_attention_heads": 4, "intermediate_size": hidden * 2, "max_position_embeddings": positions, "type_vocab_size": 2,
    }))
    .expect("config");
    let encoder = root.join(format!("{name}-encoder"));
    let vocab: Vec<String> = WORDS.iter().map(|s| s.to_string()).collect();
    write_random_model(&encoder, &cfg, &vocab, seed).expect("encoder");
    let folder = ModelFolder::open(&encoder).expect("folder");
    let opts = LoadOptions { labels: Some(LABELS.iter().map(|s| s.to_string()).collect()), freeze: Freeze::ALL, seed, ..Default::default() };
    let model = Classifier::load(&folder, opts).expect("classifier");
    let out = root.join(name);
    model.save(&out, positions).expect("save");
    std::fs::copy(encoder.join("vocab.txt"), out.join("vocab.txt")).expect("vocab");
    out
}

fn small(root: &Path) -> PathBuf {
    classifier(root, "small", (32, 2, 32), 5)
}

/// Big enough that one request of 32 full-length texts keeps the model busy for a while.
fn slow(root: &Path) -> PathBuf {
    classifier(root, "slow", (128, 4, 512), 7)
}

fn ensemble(models: &[&Path]) -> Ensemble {
    let rt = Runtime::cpu().with_threads(1).expect("runtime");
    let specs: Vec<String> = models.iter().map(|m| m.display().to_string()).collect();
    Ensemble::load(&specs, &rt, None, None).expect("ensemble")
}

struct Running {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Shutdown>>,
}

impl Running {
    fn start(models: &[&Path], config: ServeConfig) -> Running {
        let server = Server::new(ensemble(models), "test".into(), config).expect("server");
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
                addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
                server
                    .run(listener, async {
                        let _ = stop_rx.await;
                    })
                    .await
                    .expect("run")
            })
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("server address");
        Running { addr, stop: Some(stop), thread: Some(thread) }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn shutdown(&mut self) -> Shutdown {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.thread.take().expect("running").join().expect("server thread")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown();
        }
    }
}

/// An answer: status, headers we look at, JSON (or text) body.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    text: String,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn answer(r: Result<ureq::Response, ureq::Error>) -> Answer {
    let resp = match r {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    let headers = resp.headers_names().into_iter().map(|n| {
        let v = resp.header(&n).unwrap_or("").to_string();
        (n, v)
    }).collect();
    let text = resp.into_string().expect("body");
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, body, text, headers }
}

fn post(url: &str, body: &str) -> Answer {
    answer(ureq::post(url).set("content-type", "application/json").timeout(Duration::from_secs(120)).send_string(body))
}

fn get(url: &str) -> Answer {
    answer(ureq::get(url).timeout(Duration::from_secs(30)).call())
}

/// The scores of one input's answer, in label order.
fn by_label(list: &Value) -> Vec<f32> {
    let items = list.as_array().expect("list of predictions");
    let scores: Vec<f32> = items.iter().map(|p| p["score"].as_f64().expect("score") as f32).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "highest first: {list}");
    LABELS
        .iter()
        .map(|l| items.iter().find(|p| p["label"] == *l).and_then(|p| p["score"].as_f64()).expect("every label") as f32)
        .collect()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-6)
}

fn assert_error(a: &Answer, status: u16, error_type: &str, says: &str) {
    assert_eq!(a.status, status, "{a:?}");
    assert_eq!(a.body["error_type"], error_type, "{a:?}");
    assert!(a.body["error"].as_str().is_some_and(|m| m.contains(says)), "expected `{says}` in {a:?}");
    assert_eq!(a.header("content-type"), Some("application/json"), "{a:?}");
}

#[test]
fn tei_shapes_and_predictions_equal_predict() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = small(dir.path());
    let s = Running::start(&[&model], ServeConfig::default());
    let reference = ensemble(&[&model]);
    let texts: &[(&str, Option<&str>)] = &[
        ("the movie was good .", None),
        ("the plot was awful", None),
        ("the movie", Some("was great .")),
        ("bad bad bad movie the plot was bad , awful awful .", None),
    ];
    let expected = reference.predict_texts(texts, 64).expect("predict");

    let one = post(&s.url("/predict"), r#"{"inputs": "the movie was good ."}"#);
    assert_eq!(one.status, 200, "{one:?}");
    assert!(close(&by_label(&one.body), &expected[0]), "{:?} vs {:?}", one.body, expected[0]);
    for h in ["x-compute-type", "x-compute-time", "x-compute-characters", "x-total-time", "x-tokenization-time", "x-queue-time", "x-inference-time"] {
        assert!(one.header(h).is_some(), "missing {h}: {one:?}");
    }
    assert_eq!(one.header("x-compute-characters"), Some("20"));

    let pair = post(&s.url("/predict"), r#"{"inputs": ["the movie", "was great ."]}"#);
    assert_eq!(pair.status, 200, "{pair:?}");
    assert!(close(&by_label(&pair.body), &expected[2]));

    let batch = post(
        &s.url("/predict"),
        r#"{"inputs": [["the movie was good ."], ["the plot was awful"], ["the movie", "was great ."], ["bad bad bad movie the plot was bad , awful awful ."]]}"#,
    );
    assert_eq!(batch.status, 200, "{batch:?}");
    let lists = batch.body.as_array().expect("list per input");
    assert_eq!(lists.len(), 4);
    for (list, want) in lists.iter().zip(&expected) {
        let got = by_label(list);
        assert!(close(&got, want), "{got:?} vs {want:?}");
        assert!((got.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }

    // raw scores are the logits: their softmax is the probabilities
    let raw = post(&s.url("/predict"), r#"{"inputs": "the movie was good .", "raw_scores": true}"#);
    let logits = by_label(&raw.body);
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    let soft: Vec<f32> = logits.iter().map(|l| (l - max).exp() / z).collect();
    assert!(soft.iter().zip(&expected[0]).all(|(a, b)| (a - b).abs() < 1e-5), "{soft:?} vs {:?}", expected[0]);
    assert!(!close(&logits, &expected[0]));
}

#[test]
fn every_error_is_json_with_its_status() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = small(dir.path());
    let config = ServeConfig { max_client_batch_size: 3, max_body_bytes: 512, ..ServeConfig::default() };
    let s = Running::start(&[&model], config);
    let url = s.url("/predict");
    assert_error(&post(&url, r#"{"inputs": "#), 400, "malformed", "malformed JSON");
    assert_error(&post(&url, r#"{"inputs": 7}"#), 400, "malformed", "inputs: expected a string");
    assert_error(&post(&url, r#"{"inputs": [["a"], ["b", 1]]}"#), 400, "malformed", "inputs[1][1]: expected a string");
    assert_error(&post(&url, r#"{"inputs": []}"#), 422, "validation", "empty batch");
    assert_error(&post(&url, r#"{"inputs": [["the movie"], ["  "]]}"#), 422, "validation", "inputs[1]: empty text");
    assert_error(&post(&url, r#"{"inputs": [["a"], ["b"], ["c"], ["d"]]}"#), 413, "too_large", "--max-client-batch-size 3");
    let huge = format!(r#"{{"inputs": "{}"}}"#, "the ".repeat(200));
    assert_error(&post(&url, &huge), 413, "too_large", "larger than 512 bytes");
    // 40 words > max_len 32: refused without truncate, answered with it (left and right differ)
    let long = format!("{} good", "bad ".repeat(40));
    assert_error(&post(&url, &json!({"inputs": long}).to_string()), 422, "validation", "more than the model's max_input_length 32");
    let right = post(&url, &json!({"inputs": long, "truncate": true}).to_string());
    let left = post(&url, &json!({"inputs": long, "truncate": true, "truncation_direction": "Left"}).to_string());
    assert_eq!((right.status, left.status), (200, 200), "{right:?} {left:?}");
    assert_ne!(by_label(&right.body), by_label(&left.body), "left truncation keeps the end");
    assert_error(&get(&s.url("/nowhere")), 404, "not_found", "Not Found");
    assert_error(&get(&url), 405, "method_not_allowed", "Method Not Allowed");
    // the server is fine after all that
    assert_eq!(get(&s.url("/health")).status, 200);
    let metrics = get(&s.url("/metrics")).text;
    for outcome in ["malformed", "validation", "too_large", "not_found", "method_not_allowed", "success"] {
        assert!(metrics.contains(&format!("outcome=\"{outcome}\"")), "{outcome} not counted:\n{metrics}");
    }
}

#[test]
fn auto_truncate_sets_the_default() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = small(dir.path());
    let s = Running::start(&[&model], ServeConfig { auto_truncate: true, ..ServeConfig::default() });
    let long = format!("{} good", "bad ".repeat(40));
    assert_eq!(post(&s.url("/predict"), &json!({"inputs": long}).to_string()).status, 200);
    let refused = post(&s.url("/predict"), &json!({"inputs": long, "truncate": false}).to_string());
    assert_error(&refused, 422, "validation", "max_input_length");
}

#[test]
fn bearer_token_guards_every_route_but_health() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = small(dir.path());
    let s = Running::start(&[&model], ServeConfig { api_key: Some("s3cret".into()), ..ServeConfig::default() });
    let body = r#"{"inputs": "the movie"}"#;
    assert_error(&post(&s.url("/predict"), body), 401, "unauthorized", "missing");
    let wrong = answer(ureq::post(&s.url("/predict")).set("authorization", "Bearer s3cre").send_string(body));
    assert_error(&wrong, 401, "unauthorized", "wrong bearer token");
    assert_eq!(wrong.header("www-authenticate"), Some("Bearer"));
    let right = answer(ureq::post(&s.url("/predict")).set("authorization", "Bearer s3cret").send_string(body));
    assert_eq!(right.status, 200, "{right:?}");
    // the scheme is case-insensitive
    let upper = answer(ureq::post(&s.url("/predict")).set("authorization", "BEARER s3cret").send_string(body));
    assert_eq!(upper.status, 200, "{upper:?}");
    let basic = answer(ureq::post(&s.url("/predict")).set("authorization", "Basic s3cret").send_string(body));
    assert_error(&basic, 401, "unauthorized", "missing");
    assert_eq!(get(&s.url("/info")).status, 401);
    assert_eq!(get(&s.url("/health")).status, 200);
}

#[test]
fn keys_with_whitespace_and_limits_below_one_input_are_refused() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = small(dir.path());
    for (config, says) in [
        (ServeConfig { api_key: Some("two words".into()), ..ServeConfig::default() }, "whitespace"),
        (ServeConfig { api_key: Some(" ".into()), ..ServeConfig::default() }, "empty key"),
        (ServeConfig { max_batch_tokens: 16, ..ServeConfig::default() }, "max_input_length 32"),
        (ServeConfig { tokenization_workers: 0, ..ServeConfig::default() }, "tokenization-workers"),
    ] {
        let err = Server::new(ensemble(&[&model]), "test".into(), config).expect_err(says);
        assert!(err.to_string().contains(says), "{err}");
    }
}

#[test]
fn info_metrics_and_openapi() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = small(dir.path());
    let s = Running::start(&[&model], ServeConfig::default());
    let info = get(&s.url("/info"));
    assert_eq!(info.status, 200);
    assert_eq!(info.body["labels"], json!(LABELS));
    assert_eq!(info.body["model_type"]["classifier"]["id2label"]["2"], "pos");
    assert_eq!(info.body["model_type"]["classifier"]["label2id"]["neu"], 1);
    assert_eq!(info.body["max_input_length"], 32);
    assert_eq!(info.body["model_dtype"], "f32");
    assert_eq!(info.body["device"], "cpu");
    assert_eq!(info.body["families"], json!(["bert"]));
    assert_eq!(post(&s.url("/predict"), r#"{"inputs": [["the movie"], ["was good"]]}"#).status, 200);
    let m = get(&s.url("/metrics"));
    assert!(m.header("content-type").is_some_and(|c| c.starts_with("text/plain")));
    for line in [
        r#"bertfit_requests_total{route="/predict",outcome="success"} 1"#,
        "bertfit_batch_size_count",
        "bertfit_queue_duration_seconds_bucket",
        "bertfit_tokenization_duration_seconds_bucket",
        "bertfit_inference_duration_seconds_bucket",
        "bertfit_request_duration_seconds_bucket",
        "bertfit_queue_depth 0",
        "bertfit_requests_in_flight 0",
    ] {
        assert!(m.text.contains(line), "missing `{line}`:\n{}", m.text);
    }
    let doc = get(&s.url("/openapi.json"));
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in ["/predict", "/health", "/info", "/metrics", "/openapi.json"] {
        assert!(doc.body["paths"].get(path).is_some(), "{path} not documented");
    }
    assert!(doc.body["components"]["schemas"].get("PredictRequest").is_some());
    assert!(doc.body["paths"]["/predict"]["post"]["responses"].get("429").is_some());
}

#[test]
fn an_ensemble_serves_the_members_mean() {
    let dir = tempfile::tempdir().expect("tmp");
    let a = small(dir.path());
    let b = classifier(dir.path(), "other", (32, 2, 32), 9);
    let s = Running::start(&[&a, &b], ServeConfig::default());
    let expected = ensemble(&[&a, &b]).predict_texts(&[("the plot was great", None), ("the movie was bad .", None)], 8).expect("predict");
    let got = post(&s.url("/predict"), r#"{"inputs": [["the plot was great"], ["the movie was bad ."]]}"#);
    assert_eq!(got.status, 200, "{got:?}");
    for (list, want) in got.body.as_array().expect("lists").iter().zip(&expected) {
        assert!(close(&by_label(list), want), "{list} vs {want:?}");
    }
    assert_eq!(get(&s.url("/info")).body["members"].as_array().map(Vec::len), Some(2));
}

/// A request of `n` full-length texts for the slow model, answered after a while.
fn heavy(n: usize) -> String {
    let text = "the movie was good . ".repeat(120);
    json!({"inputs": (0..n).map(|_| vec![text.clone()]).collect::<Vec<_>>(), "truncate": true}).to_string()
}

/// Waits until `/metrics` shows `line`.
fn wait_for_metric(s: &Running, line: &str) {
    let until = Instant::now() + Duration::from_secs(60);
    while !get(&s.url("/metrics")).text.contains(line) {
        assert!(Instant::now() < until, "`{line}` never showed");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts a heavy request and returns once its batch runs (its inputs, tokenized, left the queue).
fn occupy(s: &Running) -> JoinHandle<Answer> {
    let url = s.url("/predict");
    let busy = std::thread::spawn(move || post(&url, &heavy(16)));
    wait_for_metric(s, "bertfit_tokenization_duration_seconds_count 1");
    wait_for_metric(s, "bertfit_queue_depth 0");
    std::thread::sleep(Duration::from_millis(20));
    busy
}

fn finished(busy: JoinHandle<Answer>) {
    let first = busy.join().expect("busy");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body.as_array().map(Vec::len), Some(16));
}

#[test]
fn a_request_past_the_queue_deadline_is_503_at_the_deadline() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = slow(dir.path());
    let s = Running::start(&[&model], ServeConfig { max_queue: Duration::from_millis(100), ..ServeConfig::default() });
    let busy = occupy(&s);
    let started = Instant::now();
    let late = post(&s.url("/predict"), r#"{"inputs": "the movie"}"#);
    let waited = started.elapsed();
    assert_error(&late, 503, "queue_timeout", "--max-queue-ms");
    assert_eq!(late.header("retry-after"), Some("1"));
    finished(busy);
    assert!(waited < Duration::from_millis(1000), "answered {waited:?} after sending: at the deadline, not after the batch");
    assert!(get(&s.url("/metrics")).text.contains(r#"outcome="queue_timeout"} 1"#));
}

#[test]
fn requests_beyond_the_admitted_ones_are_429_at_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = slow(dir.path());
    let s = Running::start(&[&model], ServeConfig { max_concurrent_requests: 2, ..ServeConfig::default() });
    let busy = occupy(&s);
    // a second request is admitted and waits in the queue; a third is refused
    let waiting = {
        let url = s.url("/predict");
        std::thread::spawn(move || post(&url, r#"{"inputs": "the movie"}"#))
    };
    wait_for_metric(&s, "bertfit_requests_in_flight 2");
    let started = Instant::now();
    for _ in 0..5 {
        let refused = post(&s.url("/predict"), r#"{"inputs": "the movie"}"#);
        assert_error(&refused, 429, "overloaded", "--max-concurrent-requests");
        assert_eq!(refused.header("retry-after"), Some("1"));
    }
    assert!(started.elapsed() < Duration::from_millis(500), "429 comes at once");
    finished(busy);
    assert_eq!(waiting.join().expect("waiting").status, 200);
    assert!(get(&s.url("/metrics")).text.contains(r#"outcome="overloaded"} 5"#));
}

#[test]
fn shutdown_finishes_admitted_requests_and_refuses_new_ones() {
    let dir = tempfile::tempdir().expect("tmp");
    let model = slow(dir.path());
    let mut s = Running::start(&[&model], ServeConfig::default());
    let url = s.url("/predict");
    let busy = occupy(&s);
    if let Some(stop) = s.stop.take() {
        stop.send(()).expect("stop");
    }
    // while the admitted request finishes, health and new requests answer 503
    let until = Instant::now() + Duration::from_secs(10);
    let health = loop {
        let h = get(&s.url("/health"));
        if h.status == 503 || Instant::now() > until {
            break h;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    assert_error(&health, 503, "unhealthy", "shutting down");
    assert_error(&post(&url, r#"{"inputs": "the movie"}"#), 503, "unhealthy", "shutting down");
    finished(busy);
    assert_eq!(s.shutdown(), Shutdown { abandoned: 0 });
    assert!(std::net::TcpStream::connect(s.addr).is_err(), "the listener is closed");
}
