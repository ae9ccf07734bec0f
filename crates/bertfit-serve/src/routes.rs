//! The HTTP routes: `POST /predict` (admission, validation, tokenization on worker threads, the batcher),
//! `GET /health`, `/info`, `/metrics`, `/openapi.json`; the bearer-token check and the middleware that
//! records every answer in the metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bertfit::tokenize::Side;
use subtle::ConstantTimeEq;

use crate::api::{ranked, Health, Info, PredictInput, PredictRequest, PredictResponse, Sequence, TruncationDirection};
use crate::batcher::queue_timeout;
use crate::error::{ApiError, ErrorBody, ErrorKind};
use crate::AppState;

/// The outcome a handler reports for the request metrics (when its status alone does not tell it).
#[derive(Debug, Clone, Copy)]
struct Outcome(&'static str);

/// Admission of one request: counted in flight until dropped.
struct Admitted<'a>(&'a AppState);

impl<'a> Admitted<'a> {
    fn try_new(s: &'a AppState) -> Result<Self, ApiError> {
        // counted first, then checked: a shutdown that reads zero in flight has set its flag before
        // this request could count itself, so the request sees the flag and is refused
        let before = s.in_flight.fetch_add(1, Ordering::SeqCst);
        let admitted = Admitted(s);
        if s.shutting_down.load(Ordering::SeqCst) || !s.batcher.alive() {
            return Err(ApiError::new(ErrorKind::Unhealthy, "the server is shutting down"));
        }
        if before >= s.config.max_concurrent_requests {
            return Err(ApiError::new(
                ErrorKind::Overloaded,
                format!("{} requests in flight already (--max-concurrent-requests); retry later", s.config.max_concurrent_requests),
            ));
        }
        Ok(admitted)
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Per-request timings, for TEI's headers.
#[derive(Debug, Default)]
struct Timings {
    tokenization: Duration,
    queue: Duration,
    inference: Duration,
}

/// Classify texts or text pairs; TEI's `/predict`.
#[utoipa::path(
    post,
    path = "/predict",
    request_body = PredictRequest,
    responses(
        (status = 200, description = "Scores of every class, highest first: one list per input (a list of lists for a batch). Headers x-compute-time, x-total-time, x-tokenization-time, x-queue-time and x-inference-time give milliseconds (queue and inference: the longest over the request's inputs).", body = PredictResponse),
        (status = 400, description = "Malformed JSON or wrong shapes", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 413, description = "Body or batch too large", body = ErrorBody),
        (status = 422, description = "Empty batch or text; text too long without truncate", body = ErrorBody),
        (status = 429, description = "Too many requests in flight (Retry-After)", body = ErrorBody),
        (status = 503, description = "Shutting down, or waited past the queue deadline (Retry-After)", body = ErrorBody),
        (status = 500, description = "A server fault", body = ErrorBody),
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn predict(State(s): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    let arrived = Instant::now();
    match predict_inner(&s, body, arrived).await {
        Ok(resp) => resp,
        Err(e) => {
            let outcome = e.kind.outcome();
            let mut resp = e.into_response();
            resp.extensions_mut().insert(Outcome(outcome));
            resp
        }
    }
}

async fn predict_inner(s: &AppState, body: Result<Bytes, BytesRejection>, arrived: Instant) -> Result<Response, ApiError> {
    let _admitted = Admitted::try_new(s)?;
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorKind::TooLarge, format!("the request body is larger than {} bytes (--max-body-bytes)", s.config.max_body_bytes))
        }
        status => ApiError::new(ErrorKind::for_status(status), r.body_text()),
    })?;
    let req = PredictRequest::parse(&body)?;
    let sequences = req.inputs.sequences();
    if sequences.len() > s.config.max_client_batch_size {
        return Err(ApiError::new(
            ErrorKind::TooLarge,
            format!("{} inputs in one request, more than --max-client-batch-size {}", sequences.len(), s.config.max_client_batch_size),
        ));
    }
    let path = |i: usize| match &req.inputs {
        PredictInput::Single(_) => "inputs".to_string(),
        PredictInput::Batch(_) => format!("inputs[{i}]"),
    };
    for (i, seq) in sequences.iter().enumerate() {
        let (a, b) = seq.as_pair();
        if a.trim().is_empty() {
            let at = if b.is_some() { format!("{}[0]", path(i)) } else { path(i) };
            return Err(ApiError::new(ErrorKind::Validation, format!("{at}: empty text")));
        }
        if b.is_some_and(|b| b.trim().is_empty()) {
            return Err(ApiError::new(ErrorKind::Validation, format!("{}[1]: empty text", path(i))));
        }
    }
    let truncate = req.truncate.unwrap_or(s.config.auto_truncate);
    let side = match req.truncation_direction {
        TruncationDirection::Left => Side::Left,
        TruncationDirection::Right => Side::Right,
    };

    // tokenize on a worker thread, at most `tokenization_workers` requests at once
    let tokenizing = Instant::now();
    let (encodings, too_long) = {
        let _permit = s.tokenizers.acquire().await.map_err(|_| ApiError::new(ErrorKind::Unhealthy, "the server is shutting down"))?;
        let encoders = s.encoders.clone();
        let owned: Vec<Sequence> = sequences.to_vec();
        tokio::task::spawn_blocking(move || -> bertfit::Result<_> {
            let texts: Vec<(&str, Option<&str>)> = owned.iter().map(Sequence::as_pair).collect();
            let encodings = encoders.encode(&texts, side)?;
            // without truncation, the first text that was cut and its full length (for the message)
            let too_long = match truncate {
                true => None,
                false => encodings
                    .iter()
                    .position(|e| e.iter().any(|x| x.truncated))
                    .map(|i| (i, encoders.full_length(texts[i]).unwrap_or(0))),
            };
            Ok((encodings, too_long))
        })
        .await
        .map_err(|e| ApiError::new(ErrorKind::Backend, format!("tokenization stopped: {e}")))?
        .map_err(|e| ApiError::new(ErrorKind::Validation, format!("cannot tokenize: {e}")))?
    };
    let mut timings = Timings { tokenization: tokenizing.elapsed(), ..Default::default() };
    s.metrics.tokenization(timings.tokenization);
    {
        if let Some((i, full)) = too_long {
            return Err(ApiError::new(
                ErrorKind::Validation,
                format!(
                    "{}: {full} tokens, more than the model's max_input_length {}; send \"truncate\": true to cut it",
                    path(i),
                    s.encoders.max_len()
                ),
            ));
        }
    }

    let tickets = s.batcher.submit(encodings, &s.metrics)?;
    let mut scores = Vec::with_capacity(tickets.len());
    let mut tickets = tickets.into_iter();
    while let Some(mut t) = tickets.next() {
        let deadline = tokio::time::Instant::from_std(t.enqueued + s.config.max_queue);
        let answer = match tokio::time::timeout_at(deadline, &mut t.reply).await {
            Ok(a) => a,
            Err(_) if t.cancel() => {
                tickets.for_each(|rest| {
                    rest.cancel();
                });
                return Err(queue_timeout(s.config.max_queue));
            }
            Err(_) => (&mut t.reply).await,
        };
        let done = answer.map_err(|_| ApiError::new(ErrorKind::Backend, "the model thread stopped"))??;
        timings.queue = timings.queue.max(done.queue);
        timings.inference = timings.inference.max(done.inference);
        scores.push(if req.raw_scores { done.scores.logits } else { done.scores.probs });
    }
    let lists: Vec<_> = scores.iter().map(|sc| ranked(&s.labels, sc)).collect();
    let response = match req.inputs {
        PredictInput::Single(_) => PredictResponse::Single(lists.into_iter().next().unwrap_or_default()),
        PredictInput::Batch(_) => PredictResponse::Batch(lists),
    };
    let chars: usize = sequences.iter().map(Sequence::chars).sum();
    let mut resp = Json(response).into_response();
    timing_headers(resp.headers_mut(), &timings, arrived.elapsed(), chars, &s.compute_type);
    Ok(resp)
}

fn timing_headers(h: &mut HeaderMap, t: &Timings, total: Duration, chars: usize, compute_type: &str) {
    let ms = |d: Duration| HeaderValue::from(d.as_millis() as u64);
    h.insert("x-compute-type", HeaderValue::from_str(compute_type).unwrap_or(HeaderValue::from_static("cpu")));
    h.insert("x-compute-time", ms(t.tokenization + t.queue + t.inference));
    h.insert("x-compute-characters", HeaderValue::from(chars as u64));
    h.insert("x-total-time", ms(total));
    h.insert("x-tokenization-time", ms(t.tokenization));
    h.insert("x-queue-time", ms(t.queue));
    h.insert("x-inference-time", ms(t.inference));
}

/// Liveness and readiness: 200 while serving, 503 once shutting down or if the model thread stopped.
#[utoipa::path(get, path = "/health", responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub(crate) async fn health(State(s): State<Arc<AppState>>) -> Response {
    if s.shutting_down.load(Ordering::SeqCst) {
        return ApiError::new(ErrorKind::Unhealthy, "the server is shutting down").into_response();
    }
    if !s.batcher.alive() {
        return ApiError::new(ErrorKind::Unhealthy, "the model thread stopped").into_response();
    }
    Json(Health { status: "ok".into() }).into_response()
}

/// The model, its labels, precision, device and the server's limits.
#[utoipa::path(get, path = "/info", responses((status = 200, body = Info)), security((), ("bearer" = [])))]
pub(crate) async fn info(State(s): State<Arc<AppState>>) -> Json<Info> {
    Json(s.info.clone())
}

/// Prometheus metrics, text exposition format.
#[utoipa::path(get, path = "/metrics", responses((status = 200, description = "Prometheus text", body = String, content_type = "text/plain")), security((), ("bearer" = [])))]
pub(crate) async fn metrics(State(s): State<Arc<AppState>>) -> Response {
    s.metrics.queue_depth(s.batcher.depth());
    s.metrics.in_flight(s.in_flight.load(Ordering::SeqCst));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render()).into_response()
}

/// This API as an OpenAPI 3 document.
#[utoipa::path(get, path = "/openapi.json", responses((status = 200, description = "OpenAPI document", content_type = "application/json")), security((), ("bearer" = [])))]
pub(crate) async fn openapi() -> Response {
    match crate::openapi::document() {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(e) => ApiError::new(ErrorKind::Backend, format!("cannot render the OpenAPI document: {e}")).into_response(),
    }
}

/// Requires `Authorization: Bearer <key>` on every route but `/health` when the server has a key;
/// compares in constant time.
pub(crate) async fn require_key(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(key) = &s.config.api_key else { return next.run(req).await };
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    match given {
        Some(g) if bool::from(g.as_bytes().ct_eq(key.as_bytes())) => next.run(req).await,
        Some(_) => ApiError::new(ErrorKind::Unauthorized, "wrong bearer token").into_response(),
        None => ApiError::new(ErrorKind::Unauthorized, "missing `Authorization: Bearer <key>` header").into_response(),
    }
}

/// Records every answer: its route (the matched one, or `unmatched`), outcome and duration.
pub(crate) async fn record(State(s): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route: &'static str = match req.extensions().get::<MatchedPath>().map(MatchedPath::as_str) {
        Some("/predict") => "/predict",
        Some("/health") => "/health",
        Some("/info") => "/info",
        Some("/metrics") => "/metrics",
        Some("/openapi.json") => "/openapi.json",
        _ => "unmatched",
    };
    let resp = next.run(req).await;
    let outcome = match resp.extensions().get::<Outcome>() {
        Some(o) => o.0,
        None if resp.status().is_success() => "success",
        None => ErrorKind::for_status(resp.status()).outcome(),
    };
    s.metrics.request(route, outcome, started.elapsed());
    resp
}
