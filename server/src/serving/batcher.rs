//! Concurrent queries to the same catalog version, scored together in one pass.
//!
//! Each version has a bounded queue and one worker. The worker takes the first waiting
//! query, waits at most the batching window for more (up to the batch size), and scores
//! them in one pass over the catalog on the blocking pool, off the async runtime. A full
//! queue is refused at once (the caller answers 503 with Retry-After) rather than growing.
//! Queries arrive checked ([`CheckedQuery`]): a pass cannot fail on a query's content, so a
//! pass that fails at all (a panic) is the server's fault, answered as such.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use super::metrics::Metrics;
use crate::scan::{CheckedQuery, ResponseMessage, ServedCatalog};

/// Batching settings.
#[derive(Clone, Copy, Debug)]
pub struct BatchConfig {
    /// How long the first query of a batch waits for company.
    pub window: Duration,
    /// Most queries per pass.
    pub max_batch: usize,
    /// Most queries waiting per version.
    pub queue_depth: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            window: Duration::from_millis(2),
            max_batch: 16,
            queue_depth: 64,
        }
    }
}

struct Job {
    query: CheckedQuery,
    reply: oneshot::Sender<Result<ResponseMessage, SubmitError>>,
}

/// The queue of one version.
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

/// Why a query was not scored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: try again later.
    Busy,
    /// The worker is gone (the version is being dropped).
    Closed,
    /// The scoring pass failed: the server's fault, logged.
    Failed,
}

impl Batcher {
    /// Start the worker of a version on `runtime`. It ends when the batcher is dropped.
    pub fn start(
        runtime: &tokio::runtime::Handle,
        served: Arc<ServedCatalog>,
        config: BatchConfig,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        runtime.spawn(worker(served, config, metrics, rx));
        Batcher { tx }
    }

    /// Queue a checked query and wait for its encoded response.
    pub async fn submit(&self, query: CheckedQuery) -> Result<ResponseMessage, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Job { query, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
                mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
            })?;
        answer.await.unwrap_or(Err(SubmitError::Closed))
    }

    /// Queries waiting.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Whether the queue is full: [`Batcher::submit`] would answer busy now.
    pub fn is_full(&self) -> bool {
        self.tx.capacity() == 0
    }
}

async fn worker(
    served: Arc<ServedCatalog>,
    config: BatchConfig,
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<Job>,
) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + config.window;
        while jobs.len() < config.max_batch {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => jobs.push(job),
                _ => break,
            }
        }
        let (queries, replies): (Vec<_>, Vec<_>) =
            jobs.into_iter().map(|j| (j.query, j.reply)).unzip();
        let catalog = served.clone();
        let batch = queries.len();
        // The pass is timed on its own thread, as the scoring benchmark times it.
        let results = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let responses = catalog.score(&queries);
            (responses, started.elapsed())
        })
        .await;
        match results {
            Ok((responses, took)) => {
                metrics.record_batch(batch, took);
                tracing::info!(
                    catalog = %served.catalog_ref().catalog_id,
                    version = %&served.catalog_ref().version.to_hex()[..16],
                    items = served.shape().geometry.items,
                    batch,
                    ms = took.as_secs_f64() * 1e3,
                    "scored"
                );
                for (reply, response) in replies.into_iter().zip(responses) {
                    let _ = reply.send(Ok(response));
                }
            }
            Err(e) => {
                tracing::error!(
                    catalog = %served.catalog_ref().catalog_id,
                    batch,
                    error = %e,
                    "a scoring pass failed"
                );
                for reply in replies {
                    let _ = reply.send(Err(SubmitError::Failed));
                }
            }
        }
    }
}
