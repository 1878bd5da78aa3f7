//! A router's routes, and its switch from one catalog version to the next.
//!
//! A route names an artefact and the base URLs of its shards (one per shard, each a
//! load-balanced service of that shard's replicas). A new catalog is a new artefact served
//! by its own shard services (blue/green): the router is given the new route, keeps
//! answering on the current version, and probes the new version's shards
//! ([`Fanout::probe`](crate::serving::Fanout::probe)) until every one of them answers ready
//! for that version. Then it makes the new version current in one step; the version it
//! replaces stays answerable for the grace period, and gets `version_gone` after it. A
//! version whose shards never all answer ready is never made current.
//!
//! Routes come from the command line (one artefact) or from a routes file, which the
//! router reads again whenever it changes (a Kubernetes ConfigMap mounted as a file is
//! updated in place):
//!
//! ```json
//! {"catalogs": [{"artefact": "/artefacts/products-2", "shard_urls": ["http://products-2-shard-0:8080", "http://products-2-shard-1:8080"]}]}
//! ```
//!
//! A file that cannot be read or parsed, or a route whose artefact does not check, changes
//! nothing: the router logs why and goes on serving what it serves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{routed_entry, Artefact};
use crate::serving::{AppState, VersionEntry};

/// The routes file.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routes {
    /// One route per catalog.
    pub catalogs: Vec<Route>,
}

/// One catalog's route: its artefact and where each of its shards is served.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// The artefact directory (made by `build`): its manifest, ids, scales and hint blocks
    /// are read; its items are not.
    pub artefact: PathBuf,
    /// Shard I's base URL at index I, one for every shard of the artefact.
    pub shard_urls: Vec<String>,
}

impl Routes {
    /// Parse and check a routes file's text.
    pub fn parse(text: &str) -> Result<Routes, String> {
        let routes: Routes =
            serde_json::from_str(text).map_err(|e| format!("not a routes file: {e}"))?;
        if routes.catalogs.is_empty() {
            return Err("the routes file names no catalog".into());
        }
        for route in &routes.catalogs {
            route.check()?;
        }
        Ok(routes)
    }

    /// Read and check a routes file.
    pub fn read(path: &Path) -> Result<Routes, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        Routes::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}

impl Route {
    fn check(&self) -> Result<(), String> {
        if self.shard_urls.is_empty() {
            return Err(format!("{}: no shard URLs", self.artefact.display()));
        }
        for url in &self.shard_urls {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "{}: shard URL {url:?} must start with http:// or https://",
                    self.artefact.display()
                ));
            }
        }
        Ok(())
    }
}

/// Where a router's routes come from.
#[derive(Clone, Debug)]
pub enum RouteSource {
    /// Fixed at start-up.
    Fixed(Routes),
    /// A routes file, read again whenever its contents change.
    File(PathBuf),
}

impl RouteSource {
    /// The routes as they are now.
    pub fn routes(&self) -> Result<Routes, String> {
        match self {
            RouteSource::Fixed(routes) => Ok(routes.clone()),
            RouteSource::File(path) => Routes::read(path),
        }
    }

    /// The catalogs the routes name now, from their artefacts' manifests.
    pub fn catalogs(&self) -> anyhow::Result<Vec<String>> {
        self.routes()
            .map_err(anyhow::Error::msg)?
            .catalogs
            .iter()
            .map(|route| {
                let artefact = Artefact::open(&route.artefact).map_err(|e| {
                    anyhow::anyhow!("opening the artefact {}: {e}", route.artefact.display())
                })?;
                Ok(artefact.manifest().catalog.clone())
            })
            .collect()
    }
}

/// How a router follows its routes.
#[derive(Clone, Copy, Debug)]
pub struct Following {
    /// Time limit of a query's shard calls, and of each probe.
    pub deadline: Duration,
    /// How often the routes file is read and waiting versions' shards are probed.
    pub poll: Duration,
    /// How often a version still waiting for its shards is logged.
    pub report: Duration,
}

/// A version given by a route, not yet current: waiting for its shards.
struct Waiting {
    route: Route,
    entry: Arc<VersionEntry>,
    since: Instant,
    reported: Option<Instant>,
}

/// What a route means for its catalog.
enum Decision {
    /// Its version is current already.
    Current,
    /// Its version is waiting already.
    Waiting,
    /// Its version waits from now on.
    Wait(Waiting),
}

/// A router's routes and the versions waiting to become current.
pub struct Router {
    state: Arc<AppState>,
    source: RouteSource,
    following: Following,
    /// The routes last applied (those of the last good file).
    applied: Option<Routes>,
    /// The last problem with the routes file, logged once.
    file_error: Option<String>,
    /// The routes last refused, and when.
    refused: Option<(Routes, Instant)>,
    /// By catalog.
    waiting: HashMap<String, Waiting>,
    /// The route of each catalog's current version.
    current: HashMap<String, Route>,
}

impl Router {
    /// A router over `state` (whose registry it installs versions into).
    pub fn new(state: Arc<AppState>, source: RouteSource, following: Following) -> Self {
        Router {
            state,
            source,
            following,
            applied: None,
            file_error: None,
            refused: None,
            waiting: HashMap::new(),
            current: HashMap::new(),
        }
    }

    /// Start-up: apply the routes (any error stops the start-up), then probe until every
    /// catalog has a current version, reading a routes file again as it changes.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let routes = self.source.routes().map_err(anyhow::Error::msg)?;
        self.apply(routes).await?;
        loop {
            self.probe().await;
            if self.waiting.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(self.following.poll).await;
            self.reread().await;
        }
    }

    /// Follow the routes for good: read the routes file when it changes, probe the
    /// waiting versions' shards, switch those whose shards are all ready.
    pub async fn follow(mut self) {
        loop {
            tokio::time::sleep(self.following.poll).await;
            self.reread().await;
            self.probe().await;
        }
    }

    /// Read a routes file again, and take in its routes if they changed.
    async fn reread(&mut self) {
        if let RouteSource::File(path) = &self.source {
            let path = path.clone();
            match tokio::task::spawn_blocking(move || Routes::read(&path)).await {
                Ok(Ok(routes)) if self.applied.as_ref() == Some(&routes) => {
                    self.file_error = None;
                }
                Ok(Ok(routes)) => {
                    // Refused routes are tried again (an artefact may still be being
                    // built), but not at every poll: checking one reads its files.
                    let due = self.refused.as_ref().is_none_or(|(refused, at)| {
                        *refused != routes || at.elapsed() >= self.following.report
                    });
                    if due {
                        match self.apply(routes.clone()).await {
                            Ok(()) => {
                                self.file_error = None;
                                self.refused = None;
                            }
                            Err(e) => {
                                self.refused = Some((routes, Instant::now()));
                                self.problem(format!(
                                    "the new routes were refused ({e:#}); serving the versions as they were"
                                ));
                            }
                        }
                    }
                }
                Ok(Err(e)) => self.problem(format!(
                    "the routes file cannot be used ({e}); serving the versions as they were"
                )),
                Err(e) => self.problem(format!("reading the routes file failed: {e}")),
            }
        }
    }

    /// Log a problem with the routes once, until it changes or goes away.
    fn problem(&mut self, text: String) {
        if self.file_error.as_ref() != Some(&text) {
            tracing::error!("{text}");
            self.file_error = Some(text);
        }
    }

    /// Take in a set of routes: every route whose version is not current already waits
    /// for its shards. Checked whole first: an error in any route changes nothing.
    async fn apply(&mut self, routes: Routes) -> anyhow::Result<()> {
        let deadline = self.following.deadline;
        let qpv = self.state.config.queries_per_version;
        let (opened, routes) = tokio::task::spawn_blocking(move || {
            let mut opened = Vec::new();
            for route in &routes.catalogs {
                let artefact = Artefact::open(&route.artefact).map_err(|e| {
                    anyhow::anyhow!("the artefact {}: {e}", route.artefact.display())
                })?;
                if opened.iter().any(|(a, _): &(Artefact, Route)| {
                    a.manifest().catalog == artefact.manifest().catalog
                }) {
                    anyhow::bail!("catalog {:?} has two routes", artefact.manifest().catalog);
                }
                opened.push((artefact, route.clone()));
            }
            Ok((opened, routes))
        })
        .await??;
        let mut decided = Vec::new();
        for (artefact, route) in opened {
            let name = artefact.manifest().catalog.clone();
            let version = artefact.manifest().version.clone();
            let current = self.state.registry.current(&name);
            if current.is_some_and(|c| c.version().to_hex() == version) {
                if self.current.get(&name) != Some(&route) {
                    tracing::warn!(catalog = %name, version = %version, "a route for the current version with other shard URLs is ignored: a version's shards are fixed (give the new shards a new artefact)");
                }
                decided.push((name, Decision::Current));
                continue;
            }
            if self.waiting.get(&name).is_some_and(|w| w.route == route) {
                decided.push((name, Decision::Waiting));
                continue;
            }
            let urls = route.shard_urls.clone();
            let entry =
                tokio::task::spawn_blocking(move || routed_entry(&artefact, urls, deadline, qpv))
                    .await?
                    .map_err(|e| {
                        anyhow::anyhow!("routing the artefact {}: {e}", route.artefact.display())
                    })?;
            decided.push((
                name,
                Decision::Wait(Waiting {
                    route,
                    entry: Arc::new(entry),
                    since: Instant::now(),
                    reported: None,
                }),
            ));
        }
        // Every route checked: now the waiting versions change.
        let named: Vec<&String> = decided.iter().map(|(name, _)| name).collect();
        self.waiting.retain(|name, w| {
            let kept = named.contains(&name);
            if !kept {
                tracing::warn!(catalog = %name, version = %w.entry.version(), "no longer routed: the version waiting for its shards is given up");
            }
            kept
        });
        for (name, decision) in decided {
            match decision {
                Decision::Current => {
                    if let Some(w) = self.waiting.remove(&name) {
                        tracing::info!(catalog = %name, version = %w.entry.version(), "the route is back to the current version: the waiting one is given up");
                    }
                }
                Decision::Waiting => {}
                Decision::Wait(w) => {
                    tracing::info!(catalog = %name, version = %w.entry.version(), shards = w.route.shard_urls.len(), "a new version waits for every shard to answer ready for it");
                    self.waiting.insert(name, w);
                }
            }
        }
        self.applied = Some(routes);
        Ok(())
    }

    /// Probe every waiting version's shards; make current each version whose shards all
    /// answer ready for it.
    async fn probe(&mut self) {
        let names: Vec<String> = self.waiting.keys().cloned().collect();
        for name in names {
            let Some(waiting) = self.waiting.get_mut(&name) else {
                continue;
            };
            let Some(fanout) = waiting.entry.fanout() else {
                continue;
            };
            match fanout.probe().await {
                Ok(()) => {
                    let waiting = self.waiting.remove(&name).expect("waiting");
                    let from = self
                        .state
                        .registry
                        .current(&name)
                        .map(|c| c.version().to_hex());
                    let version = waiting.entry.version().to_hex();
                    self.state.registry.install(&name, waiting.entry);
                    if from.is_some() {
                        self.state
                            .metrics
                            .record_swap(crate::serving::metrics::process_memory().resident);
                    }
                    tracing::info!(
                        catalog = %name,
                        version = %version,
                        replaced = ?from,
                        waited_seconds = waiting.since.elapsed().as_secs_f64(),
                        "every shard answers ready: the version is current"
                    );
                    self.current.insert(name, waiting.route);
                }
                Err(e) => {
                    let due = waiting
                        .reported
                        .is_none_or(|at| at.elapsed() >= self.following.report);
                    if due {
                        waiting.reported = Some(Instant::now());
                        tracing::warn!(
                            catalog = %name,
                            version = %waiting.entry.version(),
                            waiting_seconds = waiting.since.elapsed().as_secs_f64(),
                            "not current yet: {e}"
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deployed_routes_file_parses() {
        let text = include_str!("../../../deploy/kubernetes/routes.json");
        let routes = Routes::parse(text).unwrap();
        assert_eq!(routes.catalogs.len(), 1);
        assert_eq!(routes.catalogs[0].shard_urls.len(), 2);
    }

    #[test]
    fn bad_routes_are_refused_with_their_reason() {
        for (text, reason) in [
            ("{\"catalogs\": [", "not a routes file"),
            ("{\"catalogs\": []}", "names no catalog"),
            (
                "{\"catalogs\": [{\"artefact\": \"/a\", \"shard_urls\": []}]}",
                "no shard URLs",
            ),
            (
                "{\"catalogs\": [{\"artefact\": \"/a\", \"shard_urls\": [\"ftp://x\"]}]}",
                "must start with http",
            ),
            (
                "{\"catalogs\": [{\"artefact\": \"/a\", \"shard_urls\": [\"http://x\"], \"extra\": 1}]}",
                "unknown field",
            ),
        ] {
            let err = Routes::parse(text).unwrap_err();
            assert!(err.contains(reason), "{text}: {err}");
        }
    }
}
