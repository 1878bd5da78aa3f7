//! A router's scoring: one encrypted query sent to every shard of the catalog in parallel,
//! each shard's response checked (wire version, catalog version, payload length) and the
//! payloads joined in shard order under one response prefix, byte for byte, without
//! unpacking. Every shard shares the catalog's version and masks, and its score payload
//! ends on a byte boundary (see `Geometry::shard_ranges`), so the join is the response the
//! whole catalog would give.
//!
//! A shard that cannot be reached, is slow, or answers anything but a right response makes
//! the whole query fail ([`FanoutError`]): never a partial or wrong response. A transport
//! error or a gateway's 502/503/504 (a load balancer whose replica died under the request)
//! is retried once, within the deadline.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use blindscore_common::api::{CatalogInfo, ShardOf};
use blindscore_common::wire::{self, ResponseView, HEADER_ALLOWANCE, WIRE_VERSION};
use blindscore_common::{CatalogRef, CatalogShape};

/// One shard as the router calls it.
#[derive(Clone, Debug)]
pub struct ShardTarget {
    /// Its index in the artefact.
    pub index: usize,
    /// Its base URL (a load-balanced service of its replicas).
    pub url: String,
    /// The shape it answers in: its share of the catalog.
    pub shape: CatalogShape,
}

/// Why a routed query failed: a shard did not answer rightly within the deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("shard {shard}: {reason}")]
pub struct FanoutError {
    /// The first shard found failing.
    pub shard: usize,
    /// What went wrong (for the log and the error message; never query content).
    pub reason: String,
}

/// The shards of one catalog version.
pub struct Fanout {
    client: reqwest::Client,
    catalog_ref: CatalogRef,
    whole: CatalogShape,
    shards: Arc<[(ShardTarget, String)]>,
    deadline: Duration,
    in_flight: Arc<AtomicUsize>,
}

impl Fanout {
    /// The shards of `catalog_ref` (whole shape `whole`), in order; each call of a query
    /// within `deadline` in all.
    pub fn new(
        catalog_ref: CatalogRef,
        whole: CatalogShape,
        shards: Vec<ShardTarget>,
        deadline: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            // A router's calls stay within the cluster: no redirects, no proxies.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(deadline.min(Duration::from_secs(2)))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        let path = format!(
            "/v1/catalogs/{}/versions/{}/score",
            catalog_ref.catalog_id,
            catalog_ref.version.to_hex()
        );
        let shards = shards
            .into_iter()
            .map(|s| {
                let url = format!("{}{path}", s.url.trim_end_matches('/'));
                (s, url)
            })
            .collect();
        Ok(Fanout {
            client,
            catalog_ref,
            whole,
            shards,
            deadline,
            in_flight: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The shards, in order.
    pub fn shards(&self) -> impl Iterator<Item = &ShardTarget> {
        self.shards.iter().map(|(s, _)| s)
    }

    /// Queries being scored now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether every shard answers ready for this version: its catalog info, asked of each
    /// shard's base URL in parallel, must name this version, this shard's index of this
    /// many (a process of the whole catalog counts as shard 0 of 1), and its share's items. The first shard found otherwise is the error. A
    /// version becomes a router's current one only once this holds.
    pub async fn probe(&self) -> Result<(), FanoutError> {
        let count = self.shards.len();
        let probes: Vec<_> = self
            .shards
            .iter()
            .map(|(shard, _)| {
                let url = format!(
                    "{}/v1/catalogs/{}",
                    shard.url.trim_end_matches('/'),
                    self.catalog_ref.catalog_id
                );
                let probe = probe(
                    self.client.clone(),
                    url,
                    self.catalog_ref.version.to_hex(),
                    ShardOf {
                        index: shard.index,
                        count,
                    },
                    shard.shape.geometry.items,
                    self.deadline,
                );
                (shard.index, tokio::spawn(probe))
            })
            .collect();
        for (shard, handle) in probes {
            let answer = handle.await.map_err(|e| FanoutError {
                shard,
                reason: format!("the probe failed: {e}"),
            })?;
            answer.map_err(|reason| FanoutError { shard, reason })?;
        }
        Ok(())
    }

    /// Score one checked, encoded query on every shard: the whole catalog's response.
    pub async fn score(&self, query: Bytes) -> Result<Bytes, FanoutError> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let _done = InFlight(&self.in_flight);
        let calls: Vec<_> = self
            .shards
            .iter()
            .map(|(shard, url)| {
                let call = call(
                    self.client.clone(),
                    url.clone(),
                    query.clone(),
                    self.catalog_ref.clone(),
                    shard.shape,
                    self.deadline,
                );
                (shard.index, tokio::spawn(call))
            })
            .collect();
        let handles: Vec<_> = calls.iter().map(|(i, h)| (*i, h.abort_handle())).collect();
        let _abort = AbortOnDrop(handles.iter().map(|(_, h)| h.clone()).collect());
        let gathered = tokio::time::timeout(self.deadline, async {
            let mut payloads = Vec::with_capacity(calls.len());
            for (shard, handle) in calls {
                let answer = handle.await.map_err(|e| FanoutError {
                    shard,
                    reason: format!("the call failed: {e}"),
                })?;
                payloads.push(answer.map_err(|reason| FanoutError { shard, reason })?);
            }
            Ok::<_, FanoutError>(payloads)
        })
        .await;
        let payloads = match gathered {
            Ok(payloads) => payloads?,
            Err(_) => {
                let shard = handles
                    .iter()
                    .find(|(_, h)| !h.is_finished())
                    .map_or(0, |(i, _)| *i);
                return Err(FanoutError {
                    shard,
                    reason: format!("no answer within {:?}", self.deadline),
                });
            }
        };
        let total: usize = payloads.iter().map(|(_, range)| range.len()).sum();
        if total != self.whole.response_payload_bytes() {
            // The shards' shapes come from the artefact, whose ranges were checked to
            // cover the catalog: this cannot happen unless they disagree.
            return Err(FanoutError {
                shard: 0,
                reason: format!(
                    "the shards' payloads add up to {total} bytes, not the catalog's {}",
                    self.whole.response_payload_bytes()
                ),
            });
        }
        let prefix = wire::response_prefix(WIRE_VERSION, &self.catalog_ref, total);
        let mut out = Vec::with_capacity(prefix.len() + total);
        out.extend_from_slice(&prefix);
        for (body, range) in &payloads {
            out.extend_from_slice(&body[range.clone()]);
        }
        Ok(out.into())
    }
}

/// The scores of one shard's response: the body and where its payload lies in it.
type Payload = (Bytes, std::ops::Range<usize>);

/// One shard call, retried once on a transport error or a gateway's 502/503/504.
async fn call(
    client: reqwest::Client,
    url: String,
    query: Bytes,
    catalog_ref: CatalogRef,
    shape: CatalogShape,
    deadline: Duration,
) -> Result<Payload, String> {
    let limit = (shape.response_payload_bytes() + HEADER_ALLOWANCE) as u64;
    let mut last = String::new();
    for attempt in 0..2 {
        let sent = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .timeout(deadline)
            .body(query.clone())
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                last = format!("unreachable: {}", error_chain(&e));
                continue;
            }
        };
        let status = response.status();
        if matches!(status.as_u16(), 502..=504) && attempt == 0 {
            last = format!("answered {status}");
            continue;
        }
        if status != reqwest::StatusCode::OK {
            return Err(format!("answered {status}"));
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(format!("a response larger than {limit} bytes"));
        }
        let body = match response.bytes().await {
            Ok(b) => b,
            Err(e) => {
                last = format!("the response broke off: {}", error_chain(&e));
                continue;
            }
        };
        return payload(body, limit, &catalog_ref, &shape);
    }
    Err(last)
}

/// Catalog info is a few KiB: more from a shard is not an answer.
const INFO_LIMIT: usize = 64 << 10;

/// One shard's readiness for a version (see [`Fanout::probe`]).
async fn probe(
    client: reqwest::Client,
    url: String,
    version: String,
    shard: ShardOf,
    items: usize,
    deadline: Duration,
) -> Result<(), String> {
    let response = client
        .get(&url)
        .timeout(deadline)
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", error_chain(&e)))?;
    let status = response.status();
    if status != reqwest::StatusCode::OK {
        return Err(format!("answered {status}"));
    }
    if response
        .content_length()
        .is_some_and(|n| n > INFO_LIMIT as u64)
    {
        return Err(format!("catalog info larger than {INFO_LIMIT} bytes"));
    }
    let mut response = response;
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the answer broke off: {}", error_chain(&e)))?
    {
        if body.len() + chunk.len() > INFO_LIMIT {
            return Err(format!("catalog info larger than {INFO_LIMIT} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    let info: CatalogInfo =
        serde_json::from_slice(&body).map_err(|e| format!("undecodable catalog info: {e}"))?;
    let current = &info.current;
    if current.version != version {
        return Err(format!("serves version {}", current.version));
    }
    // A process serving the whole catalog is its one shard, when there is one.
    let serves = current.shard.unwrap_or(ShardOf { index: 0, count: 1 });
    if serves != shard || current.items != items {
        return Err(format!(
            "serves {:?} with {} items, not shard {} of {} with {items}",
            current.shard, current.items, shard.index, shard.count
        ));
    }
    Ok(())
}

/// Check a shard's response and find its payload.
fn payload(
    body: Bytes,
    limit: u64,
    catalog_ref: &CatalogRef,
    shape: &CatalogShape,
) -> Result<Payload, String> {
    if body.len() as u64 > limit {
        return Err(format!("a response larger than {limit} bytes"));
    }
    let view: ResponseView<'_> =
        wire::decode_view(&body, limit).map_err(|e| format!("an undecodable response: {e}"))?;
    view.check(catalog_ref, shape)
        .map_err(|e| format!("a wrong response: {e}"))?;
    let start = view.scores.as_ptr() as usize - body.as_ptr() as usize;
    let range = start..start + view.scores.len();
    Ok((body, range))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Abort the shard calls still running when a query ends early (an error, or the client
/// gone).
struct AbortOnDrop(Vec<tokio::task::AbortHandle>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for a in &self.0 {
            a.abort();
        }
    }
}
