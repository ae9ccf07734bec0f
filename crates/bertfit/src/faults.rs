//! Test hooks for crash-safety tests: `BERTFIT_PAUSE_AT=POINT:N` makes the process announce
//! `bertfit: paused at POINT` on standard error the N-th time it reaches POINT and then sleep, so a test
//! can kill it with SIGKILL at exactly that moment; with `BERTFIT_PAUSE_SECS=S` it sleeps S seconds and
//! goes on (for signal tests). Unset (always, outside tests) it costs one lookup.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

static TARGET: OnceLock<Option<(String, usize)>> = OnceLock::new();
static HITS: AtomicUsize = AtomicUsize::new(0);

fn target() -> &'static Option<(String, usize)> {
    TARGET.get_or_init(|| {
        let v = std::env::var("BERTFIT_PAUSE_AT").ok()?;
        let (name, n) = v.rsplit_once(':')?;
        Some((name.to_string(), n.parse().ok()?))
    })
}

/// Marks a named point. Points: `step` (after backward, before the update), `checkpoint-write` (weights
/// written, manifest not yet), `epoch-end` (after the epoch's checkpoint), `eval` (inside an evaluation),
/// `predict-write` (a prediction chunk's rows written, its manifest not yet), `predict-finish` (every
/// row recorded, the file not yet renamed into place).
pub fn point(name: &str) {
    let Some((want, n)) = target() else { return };
    if want != name {
        return;
    }
    if HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n {
        #[allow(clippy::print_stderr)]
        {
            eprintln!("bertfit: paused at {name}");
        }
        match std::env::var("BERTFIT_PAUSE_SECS").ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(secs) => std::thread::sleep(std::time::Duration::from_secs(secs)),
            None => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
        }
    }
}
