//! The server's Prometheus metrics: request counts by outcome, duration histograms for the queue,
//! tokenization and inference, batch sizes and the queue depth. Recorded through the `metrics` facade
//! into this server's own recorder (not a process-wide one), rendered by `GET /metrics`.

use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Requests answered, by `outcome` (`success` or an error kind) and `route`.
pub const REQUESTS: &str = "bertfit_requests_total";
/// Time from a request's arrival to its answer, seconds.
pub const REQUEST_DURATION: &str = "bertfit_request_duration_seconds";
/// Time an input waited in the queue before its batch started, seconds.
pub const QUEUE_DURATION: &str = "bertfit_queue_duration_seconds";
/// Time tokenizing one request, seconds.
pub const TOKENIZATION_DURATION: &str = "bertfit_tokenization_duration_seconds";
/// Time running one model batch, seconds.
pub const INFERENCE_DURATION: &str = "bertfit_inference_duration_seconds";
/// Inputs in one model batch.
pub const BATCH_SIZE: &str = "bertfit_batch_size";
/// Tokens of one model batch, padding included.
pub const BATCH_TOKENS: &str = "bertfit_batch_tokens";
/// Inputs waiting in the queue.
pub const QUEUE_DEPTH: &str = "bertfit_queue_depth";
/// Requests admitted and not yet answered.
pub const IN_FLIGHT: &str = "bertfit_requests_in_flight";

/// This server's recorder and the handle that renders it.
#[derive(Debug)]
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
}

const SECONDS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
const COUNTS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];
const TOKENS: &[f64] = &[64.0, 256.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0, 65536.0];

impl Metrics {
    /// A fresh recorder with histogram buckets for every duration and size.
    pub fn new() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_SIZE.into()), COUNTS))
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(BATCH_TOKENS.into()), TOKENS));
        // the bucket lists are constant and non-empty: building cannot fail; fall back to summaries
        let recorder = match builder {
            Ok(b) => b.build_recorder(),
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        let m = Metrics { recorder, handle };
        m.with(|| {
            metrics::describe_counter!(REQUESTS, "Requests answered, by route and outcome.");
            metrics::describe_histogram!(REQUEST_DURATION, metrics::Unit::Seconds, "Time from arrival to answer.");
            metrics::describe_histogram!(QUEUE_DURATION, metrics::Unit::Seconds, "Time an input waited for its batch.");
            metrics::describe_histogram!(TOKENIZATION_DURATION, metrics::Unit::Seconds, "Time tokenizing one request.");
            metrics::describe_histogram!(INFERENCE_DURATION, metrics::Unit::Seconds, "Time running one model batch.");
            metrics::describe_histogram!(BATCH_SIZE, "Inputs per model batch.");
            metrics::describe_histogram!(BATCH_TOKENS, "Tokens per model batch, padding included.");
            metrics::describe_gauge!(QUEUE_DEPTH, "Inputs waiting in the queue.");
            metrics::describe_gauge!(IN_FLIGHT, "Requests admitted and not yet answered.");
            gauge!(QUEUE_DEPTH).set(0.0);
            gauge!(IN_FLIGHT).set(0.0);
        });
        m
    }

    fn with(&self, f: impl FnOnce()) {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        self.handle.render()
    }

    /// Drains recorded histogram samples into their buckets. Rendering does it too; without a scraper
    /// the samples would pile up, so the server calls this every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep()
    }

    /// A request to `route` answered with `outcome` after `elapsed`.
    pub fn request(&self, route: &'static str, outcome: &'static str, elapsed: Duration) {
        self.with(|| {
            counter!(REQUESTS, "route" => route, "outcome" => outcome).increment(1);
            histogram!(REQUEST_DURATION, "route" => route).record(elapsed.as_secs_f64());
        })
    }

    /// One request's tokenization time.
    pub fn tokenization(&self, elapsed: Duration) {
        self.with(|| histogram!(TOKENIZATION_DURATION).record(elapsed.as_secs_f64()))
    }

    /// One input's wait in the queue.
    pub fn queued(&self, elapsed: Duration) {
        self.with(|| histogram!(QUEUE_DURATION).record(elapsed.as_secs_f64()))
    }

    /// One model batch: its inputs, padded tokens and run time.
    pub fn batch(&self, size: usize, tokens: usize, elapsed: Duration) {
        self.with(|| {
            histogram!(BATCH_SIZE).record(size as f64);
            histogram!(BATCH_TOKENS).record(tokens as f64);
            histogram!(INFERENCE_DURATION).record(elapsed.as_secs_f64());
        })
    }

    /// Inputs now waiting in the queue.
    pub fn queue_depth(&self, depth: usize) {
        self.with(|| gauge!(QUEUE_DEPTH).set(depth as f64))
    }

    /// Requests now admitted.
    pub fn in_flight(&self, n: usize) {
        self.with(|| gauge!(IN_FLIGHT).set(n as f64))
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_servers_count_apart() {
        let (a, b) = (Metrics::new(), Metrics::new());
        a.request("/predict", "success", Duration::from_millis(3));
        a.batch(4, 128, Duration::from_millis(2));
        let text = a.render();
        assert!(text.contains(r#"bertfit_requests_total{route="/predict",outcome="success"} 1"#), "{text}");
        assert!(text.contains("bertfit_batch_size_bucket{le=\"4\"} 1"), "{text}");
        assert!(!b.render().contains("bertfit_requests_total{"), "{}", b.render());
    }
}
