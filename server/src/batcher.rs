//! Concurrent queries to the same catalog version, scored together in one pass.
//!
//! Each version has a bounded queue and one worker. The worker takes the first waiting
//! query, waits at most the batching window for more (up to the batch size), and scores
//! them in one pass over the catalog on the blocking pool, off the async runtime. A full
//! queue is refused at once (the caller answers 503 with Retry-After) rather than growing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

use blindscore_common::ProtocolError;

use crate::metrics::Metrics;
use crate::{ResponseMessage, ServedCatalog};

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
    query: axum::body::Bytes,
    reply: oneshot::Sender<Result<ResponseMessage, ProtocolError>>,
}

/// The queue of one version.
pub struct Batcher {
    tx: mpsc::Sender<Job>,
}

/// Why a query was not scored.
#[derive(Debug)]
pub enum SubmitError {
    /// The queue is full: try again later.
    Busy,
    /// The worker is gone (the version is being dropped).
    Closed,
    /// The query was refused.
    Protocol(ProtocolError),
}

impl Batcher {
    /// Start the worker of a version. It ends when the batcher is dropped.
    pub fn spawn(served: Arc<ServedCatalog>, config: BatchConfig, metrics: Arc<Metrics>) -> Self {
        let (tx, rx) = mpsc::channel(config.queue_depth.max(1));
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(worker(served, config, metrics, rx));
        }
        Batcher { tx }
    }

    /// Queue a checked query and wait for its encoded response.
    pub async fn submit(&self, query: axum::body::Bytes) -> Result<ResponseMessage, SubmitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send(Job { query, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Busy,
                mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
            })?;
        match answer.await {
            Ok(result) => result.map_err(SubmitError::Protocol),
            Err(_) => Err(SubmitError::Closed),
        }
    }

    /// Queries waiting.
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
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
        let queries: Vec<axum::body::Bytes> = jobs.iter().map(|j| j.query.clone()).collect();
        let catalog = served.clone();
        let started = Instant::now();
        let results = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = queries.iter().map(|q| q.as_ref()).collect();
            catalog.score_encoded_batch(&refs)
        })
        .await;
        metrics.record_batch(jobs.len(), started.elapsed());
        tracing::info!(
            catalog = %served.catalog_ref().catalog_id,
            version = %&served.catalog_ref().version.to_hex()[..16],
            items = served.shape().geometry.items,
            batch = jobs.len(),
            ms = started.elapsed().as_secs_f64() * 1e3,
            "scored"
        );
        match results {
            Ok(results) => {
                for (job, result) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(result);
                }
            }
            Err(_) => {
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(ProtocolError::Malformed("scoring failed".into())));
                }
            }
        }
    }
}
