//! bertfit's HTTP server: a fine-tuned classifier (or an ensemble of them) behind text-embeddings-
//! inference's `/predict` API, with dynamic batching on one model thread, bounded admission (429), a
//! queue deadline (503), Prometheus metrics, an OpenAPI document, an optional bearer token and a
//! graceful shutdown that finishes admitted requests.
//!
//! [`Server::new`] loads nothing itself: it takes an [`Ensemble`] already loaded on its runtime, starts
//! the model thread and answers through [`Server::run`] on any Tokio listener.

#![warn(missing_docs)]

pub mod api;
mod batcher;
pub mod error;
pub mod metrics;
mod openapi;
mod routes;

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use bertfit::infer::{Encoders, Ensemble};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use api::Info;
pub use batcher::BatchLimits;
pub use error::{ApiError, ErrorKind};

/// The server's limits and options (the `bertfit serve` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    /// Token budget of one model batch: rows × padded length.
    pub max_batch_tokens: usize,
    /// Rows of one model batch, if bounded.
    pub max_batch_requests: Option<usize>,
    /// Requests admitted at once; more are answered 429 at once.
    pub max_concurrent_requests: usize,
    /// Inputs allowed in one request; more are answered 413.
    pub max_client_batch_size: usize,
    /// Longest wait in the queue; longer waits are answered 503.
    pub max_queue: Duration,
    /// Largest request body, bytes; larger ones are answered 413.
    pub max_body_bytes: usize,
    /// Whether `truncate` defaults to true.
    pub auto_truncate: bool,
    /// Requests tokenized at once, each on a worker thread.
    pub tokenization_workers: usize,
    /// A bearer token every route but `/health` requires.
    pub api_key: Option<String>,
    /// How long a shutdown waits for admitted requests.
    pub grace: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            max_batch_tokens: 16384,
            max_batch_requests: None,
            max_concurrent_requests: 512,
            max_client_batch_size: 32,
            max_queue: Duration::from_millis(30_000),
            max_body_bytes: 2 * 1024 * 1024,
            auto_truncate: false,
            tokenization_workers: 2,
            api_key: None,
            grace: Duration::from_secs(30),
        }
    }
}

impl ServeConfig {
    /// Checks the limits against each other and the model's length; errors name the flag.
    pub fn validate(&self, max_input_length: usize) -> bertfit::Result<()> {
        let positive = [
            ("max-batch-tokens", self.max_batch_tokens),
            ("max-concurrent-requests", self.max_concurrent_requests),
            ("max-client-batch-size", self.max_client_batch_size),
            ("max-body-bytes", self.max_body_bytes),
            ("tokenization-workers", self.tokenization_workers),
        ];
        for (flag, v) in positive {
            if v == 0 {
                return Err(bertfit::Error::config(flag, "must be at least 1"));
            }
        }
        if self.max_batch_tokens < max_input_length {
            return Err(bertfit::Error::config(
                "max-batch-tokens",
                format!("{} is less than the model's max_input_length {max_input_length}: one full-length input must fit a batch", self.max_batch_tokens),
            ));
        }
        if let Some(key) = self.api_key.as_deref() {
            if key.trim().is_empty() {
                return Err(bertfit::Error::config("api-key", "empty key"));
            }
            if key.trim() != key || key.chars().any(char::is_whitespace) {
                return Err(bertfit::Error::config("api-key", "the key holds whitespace (a bearer token cannot)"));
            }
        }
        Ok(())
    }
}

/// What every handler shares.
#[derive(Debug)]
struct AppState {
    config: ServeConfig,
    labels: Vec<String>,
    info: Info,
    compute_type: String,
    encoders: Encoders,
    batcher: batcher::Batcher,
    metrics: Arc<metrics::Metrics>,
    tokenizers: Semaphore,
    in_flight: AtomicUsize,
    shutting_down: AtomicBool,
}

/// A server ready to answer: the model thread runs.
#[derive(Debug)]
pub struct Server {
    state: Arc<AppState>,
}

/// How a shutdown ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shutdown {
    /// Requests still in flight when the grace period ended (0: every admitted request was answered).
    pub abandoned: usize,
}

impl Server {
    /// Starts the model thread for `ensemble` (engines built here). `model_id` is what `--model` named.
    pub fn new(ensemble: Ensemble, model_id: String, config: ServeConfig) -> bertfit::Result<Server> {
        let encoders = Encoders::of(&ensemble)?;
        config.validate(encoders.max_len())?;
        let info = describe(&ensemble, &encoders, model_id, &config);
        let labels = ensemble.labels().to_vec();
        let compute_type = if info.device.starts_with("cuda") { "gpu" } else { "cpu" }.to_string();
        let metrics = Arc::new(metrics::Metrics::new());
        let limits = BatchLimits { max_batch_tokens: config.max_batch_tokens, max_batch_requests: config.max_batch_requests, max_queue: config.max_queue };
        let batcher = batcher::Batcher::start(ensemble, encoders.clone(), limits, Arc::clone(&metrics))?;
        let tokenizers = Semaphore::new(config.tokenization_workers);
        let state = AppState {
            config,
            labels,
            info,
            compute_type,
            encoders,
            batcher,
            metrics,
            tokenizers,
            in_flight: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
        };
        Ok(Server { state: Arc::new(state) })
    }

    /// What `GET /info` answers.
    pub fn info(&self) -> &Info {
        &self.state.info
    }

    /// The routes with their middleware.
    fn router(&self) -> Router {
        let s = Arc::clone(&self.state);
        Router::new()
            .route("/predict", post(routes::predict))
            .route("/health", get(routes::health))
            .route("/info", get(routes::info))
            .route("/metrics", get(routes::metrics))
            .route("/openapi.json", get(routes::openapi))
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&s), routes::require_key))
            .layer(axum::middleware::map_response(error::json_errors))
            .layer(axum::middleware::from_fn_with_state(Arc::clone(&s), routes::record))
            .layer(DefaultBodyLimit::max(s.config.max_body_bytes))
            .with_state(s)
    }

    /// Answers on `listener` until `shutdown` resolves; then refuses new requests (503, `/health`
    /// included), waits up to the grace period for admitted ones, closes the listener and closes the
    /// queue (the model thread ends once it is empty; it is joined when the server is dropped).
    pub async fn run(self, listener: TcpListener, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<Shutdown> {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = self.router();
        let metrics = Arc::clone(&self.state.metrics);
        let upkeep = tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                metrics.upkeep();
            }
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await
        });
        shutdown.await;
        let s = &self.state;
        s.shutting_down.store(true, Ordering::SeqCst);
        let now = Instant::now();
        let deadline = now.checked_add(s.config.grace).unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        while s.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let abandoned = s.in_flight.load(Ordering::SeqCst);
        let _ = stop_tx.send(());
        // open connections close once their answers are written; the rest of the grace period bounds it
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
        let served = tokio::time::timeout(left, server).await;
        s.batcher.close();
        upkeep.abort();
        match served {
            Ok(Ok(result)) => result.map(|()| Shutdown { abandoned }),
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_) => Ok(Shutdown { abandoned }),
        }
    }
}

/// `/info` of a loaded ensemble.
fn describe(ensemble: &Ensemble, encoders: &Encoders, model_id: String, config: &ServeConfig) -> Info {
    let labels = ensemble.labels().to_vec();
    let first = &ensemble.members()[0];
    let model = first.model();
    let rt = model.runtime();
    let mut families: Vec<String> = Vec::new();
    for m in ensemble.members() {
        let f = m.model().config.model_type.clone();
        if !families.contains(&f) {
            families.push(f);
        }
    }
    Info {
        model_id,
        members: ensemble.members().iter().map(|m| m.source().display().to_string()).collect(),
        model_type: api::ModelType {
            classifier: api::ClassifierInfo {
                id2label: labels.iter().enumerate().map(|(i, l)| (i.to_string(), l.clone())).collect(),
                label2id: labels.iter().enumerate().map(|(i, l)| (l.clone(), i)).collect(),
            },
        },
        labels,
        families,
        model_dtype: rt.precision().name().to_string(),
        device: rt.accelerator().resolve().name(),
        max_input_length: encoders.max_len(),
        max_batch_tokens: config.max_batch_tokens,
        max_concurrent_requests: config.max_concurrent_requests,
        max_client_batch_size: config.max_client_batch_size,
        max_queue_ms: config.max_queue.as_millis() as u64,
        max_body_bytes: config.max_body_bytes,
        auto_truncate: config.auto_truncate,
        tokenization_workers: config.tokenization_workers,
        api_key_required: config.api_key.is_some(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    }
}
