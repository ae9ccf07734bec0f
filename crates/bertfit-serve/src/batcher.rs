//! Dynamic batching: tokenized inputs from every request wait in one queue; one thread owns the model
//! and runs the queue's front as batches of up to `max_batch_tokens` (rows × padded length), answering
//! each input through its own channel. Inputs that waited past the queue deadline are answered
//! [`ErrorKind::QueueTimeout`] instead of being computed late.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bertfit::infer::{Encoders, Encodings, Ensemble, Scores, Session};
use tokio::sync::oneshot;

use crate::error::{ApiError, ErrorKind};
use crate::metrics::Metrics;

/// Bounds of one model batch and of the wait for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Rows × padded length of one batch (a single longer input still runs, alone).
    pub max_batch_tokens: usize,
    /// Rows of one batch, if bounded.
    pub max_batch_requests: Option<usize>,
    /// Longest wait in the queue.
    pub max_queue: Duration,
}

/// What the model thread answers for one input.
#[derive(Debug, Clone)]
pub struct Done {
    /// The input's scores.
    pub scores: Scores,
    /// Time it waited in the queue.
    pub queue: Duration,
    /// Run time of the batch it was in.
    pub inference: Duration,
}

/// The answer channel of one input.
pub type Reply = oneshot::Receiver<Result<Done, ApiError>>;

const QUEUED: u8 = 0;
const TAKEN: u8 = 1;
const CANCELLED: u8 = 2;

/// One input waiting for the model.
#[derive(Debug)]
struct Job {
    encodings: Encodings,
    tokens: usize,
    enqueued: Instant,
    state: Arc<AtomicU8>,
    reply: oneshot::Sender<Result<Done, ApiError>>,
}

/// A submitted input as its request holds it: the answer channel, and the right to withdraw it while
/// it still waits.
#[derive(Debug)]
pub struct Ticket {
    /// Where the answer arrives.
    pub reply: Reply,
    /// When the input entered the queue.
    pub enqueued: Instant,
    state: Arc<AtomicU8>,
}

impl Drop for Ticket {
    /// A request that stops waiting (its client went away) withdraws its inputs still queued.
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Ticket {
    /// Withdraws the input if the model thread has not taken it yet; true when withdrawn.
    pub fn cancel(&self) -> bool {
        self.state.compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    alive: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // a panic while holding the lock cannot leave the queue inconsistent (push/pop only)
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Marks the model thread stopped when dropped: refuses new inputs and answers those still queued.
struct Stopped<'a>(&'a Shared);

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        self.0.alive.store(false, Ordering::SeqCst);
        let mut q = self.0.lock();
        q.closed = true;
        for job in q.jobs.drain(..) {
            let _ = job.reply.send(Err(ApiError::new(ErrorKind::Backend, "the model thread stopped")));
        }
    }
}

/// The queue and the model thread.
#[derive(Debug)]
pub struct Batcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Batcher {
    /// Starts the model thread with `ensemble`; returns once its engines are built (their errors are
    /// this call's).
    pub fn start(ensemble: Ensemble, encoders: Encoders, limits: BatchLimits, metrics: Arc<Metrics>) -> bertfit::Result<Batcher> {
        let shared = Arc::new(Shared { queue: Mutex::new(Queue::default()), ready: Condvar::new(), alive: AtomicBool::new(true) });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bertfit::Result<()>>();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("bertfit-model".into())
            .spawn(move || {
                let session = match Session::new(&ensemble, encoders) {
                    Ok(s) => s,
                    Err(e) => {
                        thread_shared.alive.store(false, Ordering::SeqCst);
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                // however this thread ends (a panic outside a batch included): not alive, queue closed,
                // waiting inputs answered
                let _stopped = Stopped(&thread_shared);
                run(session, &thread_shared, limits, &metrics);
            })
            .map_err(|e| bertfit::Error::Backend(format!("cannot start the model thread: {e}").into()))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Batcher { shared, thread: Some(thread) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(bertfit::Error::Backend("the model thread stopped while loading".into()))
            }
        }
    }

    /// Queues one request's inputs (each with its longest encoding's length); one ticket per input.
    pub fn submit(&self, inputs: Vec<Encodings>, metrics: &Metrics) -> Result<Vec<Ticket>, ApiError> {
        let now = Instant::now();
        let mut q = self.shared.lock();
        if q.closed || !self.alive() {
            return Err(ApiError::new(ErrorKind::Unhealthy, "the server is shutting down"));
        }
        let mut tickets = Vec::with_capacity(inputs.len());
        for encodings in inputs {
            let tokens = encodings.iter().map(|e| e.ids.len()).max().unwrap_or(0);
            let (tx, rx) = oneshot::channel();
            let state = Arc::new(AtomicU8::new(QUEUED));
            q.jobs.push_back(Job { encodings, tokens, enqueued: now, state: Arc::clone(&state), reply: tx });
            tickets.push(Ticket { reply: rx, enqueued: now, state });
        }
        metrics.queue_depth(q.jobs.len());
        drop(q);
        self.shared.ready.notify_one();
        Ok(tickets)
    }

    /// Whether the model thread runs.
    pub fn alive(&self) -> bool {
        self.shared.alive.load(Ordering::SeqCst)
    }

    /// Inputs waiting now (withdrawn ones not counted).
    pub fn depth(&self) -> usize {
        self.shared.lock().jobs.iter().filter(|j| j.state.load(Ordering::Acquire) == QUEUED).count()
    }

    /// Refuses new inputs; the thread stops once the queue is empty.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The model thread: batches from the queue's front until it is closed and empty.
fn run(mut session: Session<'_>, shared: &Shared, limits: BatchLimits, metrics: &Metrics) {
    loop {
        let (mut batch, depth) = {
            let mut q = shared.lock();
            loop {
                let batch = take_batch(&mut q.jobs, limits, Instant::now(), metrics);
                if !batch.is_empty() {
                    break (batch, q.jobs.len());
                }
                if q.closed && q.jobs.is_empty() {
                    return;
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        metrics.queue_depth(depth);
        let started = Instant::now();
        let padded = batch.iter().map(|j| j.tokens).max().unwrap_or(0) * batch.len();
        let encodings: Vec<Encodings> = batch.iter_mut().map(|j| std::mem::take(&mut j.encodings)).collect();
        let rows = encodings.len();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| session.scores(&encodings, rows)));
        let inference = started.elapsed();
        metrics.batch(rows, padded, inference);
        match outcome {
            Ok(Ok(scores)) => {
                for (job, scores) in batch.into_iter().zip(scores) {
                    let queue = started.saturating_duration_since(job.enqueued);
                    metrics.queued(queue);
                    let _ = job.reply.send(Ok(Done { scores, queue, inference }));
                }
            }
            Ok(Err(e)) => fail_all(batch, &format!("the model failed on this batch: {e}")),
            Err(_) => fail_all(batch, "the model thread panicked on this batch (a bertfit bug); the server keeps running"),
        }
    }
}

fn fail_all(batch: Vec<Job>, message: &str) {
    for job in batch {
        let _ = job.reply.send(Err(ApiError::new(ErrorKind::Backend, message)));
    }
}

/// Pops the next batch off the front of `jobs`: inputs in arrival order while rows × longest stays within
/// the token budget (the first always fits). Withdrawn inputs are dropped; inputs that waited past the
/// deadline are answered [`ErrorKind::QueueTimeout`].
fn take_batch(jobs: &mut VecDeque<Job>, limits: BatchLimits, now: Instant, metrics: &Metrics) -> Vec<Job> {
    let mut batch: Vec<Job> = Vec::new();
    let mut longest = 0;
    while let Some(front) = jobs.front() {
        if front.state.load(Ordering::Acquire) == CANCELLED {
            jobs.pop_front();
            continue;
        }
        let waited = now.saturating_duration_since(front.enqueued);
        if waited > limits.max_queue {
            if let Some(job) = jobs.pop_front() {
                if job.state.compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                    metrics.queued(waited);
                    let _ = job.reply.send(Err(queue_timeout(limits.max_queue)));
                }
            }
            continue;
        }
        let next_longest = longest.max(front.tokens);
        let full_rows = limits.max_batch_requests.is_some_and(|m| batch.len() >= m);
        if !batch.is_empty() && (full_rows || next_longest * (batch.len() + 1) > limits.max_batch_tokens) {
            break;
        }
        let Some(job) = jobs.pop_front() else { break };
        if job.state.compare_exchange(QUEUED, TAKEN, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            longest = next_longest;
            batch.push(job);
        }
    }
    batch
}

/// The answer of an input that waited longer than `max_queue`.
pub fn queue_timeout(max_queue: Duration) -> ApiError {
    ApiError::new(ErrorKind::QueueTimeout, format!("the request waited more than {} ms in the queue (--max-queue-ms); retry later", max_queue.as_millis()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bertfit::tokenize::Encoded;

    fn job(tokens: usize, enqueued: Instant) -> (Job, Ticket) {
        let (tx, rx) = oneshot::channel();
        let state = Arc::new(AtomicU8::new(QUEUED));
        let enc = Encoded { ids: vec![1; tokens], type_ids: vec![0; tokens], truncated: false };
        (Job { encodings: vec![enc], tokens, enqueued, state: Arc::clone(&state), reply: tx }, Ticket { reply: rx, enqueued, state })
    }

    fn limits(tokens: usize, rows: Option<usize>) -> BatchLimits {
        BatchLimits { max_batch_tokens: tokens, max_batch_requests: rows, max_queue: Duration::from_millis(100) }
    }

    #[test]
    fn batches_fill_the_token_budget_in_arrival_order() {
        let now = Instant::now();
        let m = Metrics::new();
        let (mut jobs, _tickets): (VecDeque<Job>, Vec<Ticket>) = [10, 20, 5, 30, 8].iter().map(|&t| job(t, now)).unzip();
        // 10, 20 → 2 × 20 = 40; with 5: 3 × 20 = 60 > 50
        let b = take_batch(&mut jobs, limits(50, None), now, &m);
        assert_eq!(b.iter().map(|j| j.tokens).collect::<Vec<_>>(), [10, 20]);
        // a single input over budget still runs, alone
        let b = take_batch(&mut jobs, limits(4, None), now, &m);
        assert_eq!(b.iter().map(|j| j.tokens).collect::<Vec<_>>(), [5]);
        let b = take_batch(&mut jobs, limits(1000, Some(1)), now, &m);
        assert_eq!(b.iter().map(|j| j.tokens).collect::<Vec<_>>(), [30]);
        assert_eq!(jobs.len(), 1);
    }

    #[test]
    fn late_inputs_get_503_and_withdrawn_ones_are_skipped() {
        let m = Metrics::new();
        let now = Instant::now();
        let (late, mut late_ticket) = job(4, now - Duration::from_millis(500));
        let (gone, gone_ticket) = job(4, now);
        let (fresh, fresh_ticket) = job(4, now);
        assert!(gone_ticket.cancel());
        let mut jobs: VecDeque<Job> = VecDeque::from([late, gone, fresh]);
        let b = take_batch(&mut jobs, limits(100, None), now, &m);
        assert_eq!(b.len(), 1);
        assert!(jobs.is_empty());
        let answer = late_ticket.reply.try_recv().expect("answered");
        assert_eq!(answer.expect_err("timeout").kind, ErrorKind::QueueTimeout);
        // a taken input can no longer be withdrawn
        assert!(!fresh_ticket.cancel());
    }
}
