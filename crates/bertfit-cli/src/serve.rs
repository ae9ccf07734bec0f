//! `bertfit serve`: loads the model (or ensemble), binds the address and runs the HTTP server of
//! `bertfit-serve` on a Tokio runtime until SIGTERM or Ctrl-C, then shuts it down gracefully.

use std::time::Duration;

use anyhow::{Context, Result};
use bertfit_serve::{ServeConfig, Server};

use crate::args::ServeArgs;
use crate::commands::{inference_device, load_ensemble};

/// Runs the server; returns once it has shut down.
pub fn run(a: &ServeArgs) -> Result<()> {
    let config = ServeConfig {
        max_batch_tokens: a.max_batch_tokens,
        max_batch_requests: a.max_batch_requests,
        max_concurrent_requests: a.max_concurrent_requests,
        max_client_batch_size: a.max_client_batch_size,
        max_queue: Duration::from_millis(a.max_queue_ms),
        max_body_bytes: a.max_body_bytes,
        auto_truncate: a.auto_truncate,
        tokenization_workers: a.tokenization_workers,
        // a key from a file or an environment variable often ends in a newline
        api_key: a.api_key.as_deref().map(|k| k.trim().to_string()),
        grace: Duration::from_secs(a.grace_secs),
    };
    let device = inference_device(&a.model, a.device);
    let ensemble = load_ensemble(&a.model, a.threads, a.precision, a.max_len, a.engine, device)?;
    let server = Server::new(ensemble, a.model.join(","), config)?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bertfit-http")
        .enable_all()
        .build()
        .context("cannot start the HTTP runtime")?;
    tokio.block_on(async {
        let addr = std::net::SocketAddr::new(a.host, a.port);
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr().context("cannot read the bound address")?;
        let info = server.info();
        eprintln!(
            "serving {} ({} label{}, {}, {}, max_input_length {}) on http://{bound}",
            info.model_id,
            info.labels.len(),
            if info.labels.len() == 1 { "" } else { "s" },
            info.device,
            info.model_dtype,
            info.max_input_length
        );
        let report = server.run(listener, shutdown_signal()).await.context("the HTTP server failed")?;
        if report.abandoned > 0 {
            anyhow::bail!("shut down with {} request(s) still unanswered after the grace period (--grace-secs)", report.abandoned);
        }
        eprintln!("shut down: every admitted request was answered");
        Ok(())
    })
}

/// Resolves on the first SIGTERM or Ctrl-C (SIGINT).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    eprintln!("shutting down: refusing new requests, finishing admitted ones");
}
