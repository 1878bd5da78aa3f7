//! Prometheus metrics, rendered in the text exposition format. Counters carry routes and
//! status codes, never anything from a request body. The catalogs' gauges are rendered
//! from a snapshot the service takes ([`CatalogGauges`]); of the rest of the server it
//! reads only the scan's memory counts.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// A gauge's value for one catalog, as exposition text.
type Gauge = fn(&CatalogGauges) -> String;

/// One catalog's gauges at the moment the metrics are rendered.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogGauges {
    pub name: String,
    /// Items in the current version.
    pub items: usize,
    /// Versions held: the current one, and one in its grace period.
    pub versions_held: usize,
    /// Bytes held by those versions.
    pub memory_bytes: usize,
    /// Seconds the current version took to build.
    pub build_seconds: f64,
    /// Queries waiting for the current version.
    pub queue_depth: usize,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    queries_scored: AtomicU64,
    batches: AtomicU64,
    scoring_micros: AtomicU64,
    /// Passes and their microseconds, by the number of queries scored together.
    passes_by_size: Mutex<BTreeMap<usize, (u64, u64)>>,
    busy_rejections: AtomicU64,
    swaps: AtomicU64,
    peak_swap_resident: AtomicU64,
}

impl Metrics {
    /// Count a finished request by route template and status.
    pub fn record_request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry((route.to_string(), status)).or_default() += 1;
    }

    /// Count a scored batch.
    pub fn record_batch(&self, queries: usize, took: Duration) {
        self.queries_scored
            .fetch_add(queries as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.scoring_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let mut map = self
            .passes_by_size
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (passes, micros) = map.entry(queries).or_default();
        *passes += 1;
        *micros += took.as_micros() as u64;
    }

    /// Count a query refused because the queue was full.
    pub fn record_busy(&self) {
        self.busy_rejections.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a catalog swap and the resident memory at its peak.
    pub fn record_swap(&self, peak_resident: u64) {
        self.swaps.fetch_add(1, Ordering::Relaxed);
        self.peak_swap_resident
            .fetch_max(peak_resident, Ordering::Relaxed);
    }

    /// Requests counted for a route (all statuses).
    pub fn requests_for(&self, route: &str) -> u64 {
        let map = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        map.iter()
            .filter(|((r, _), _)| r == route)
            .map(|(_, n)| n)
            .sum()
    }

    /// The exposition text.
    pub fn render(&self, catalogs: &[CatalogGauges]) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP blindscore_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE blindscore_http_requests_total counter");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "blindscore_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "blindscore_queries_scored_total",
            "Encrypted queries scored.",
            self.queries_scored.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "blindscore_batches_total",
            "Passes over a catalog.",
            self.batches.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP blindscore_scoring_seconds_total Time spent scoring.\n# TYPE blindscore_scoring_seconds_total counter\nblindscore_scoring_seconds_total {}",
            self.scoring_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        // The passes by size: what a pass of a given batch takes in service, to compare
        // with the scoring benchmark's pass of the same batch.
        let by_size: Vec<(usize, (u64, u64))> = self
            .passes_by_size
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(&size, &figures)| (size, figures))
            .collect();
        let _ = writeln!(
            out,
            "# HELP blindscore_passes_total Passes over a catalog, by the queries scored together.\n# TYPE blindscore_passes_total counter"
        );
        for (size, (passes, _)) in &by_size {
            let _ = writeln!(
                out,
                "blindscore_passes_total{{queries=\"{size}\"}} {passes}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP blindscore_pass_seconds_total Time spent in passes, by the queries scored together.\n# TYPE blindscore_pass_seconds_total counter"
        );
        for (size, (_, micros)) in &by_size {
            let _ = writeln!(
                out,
                "blindscore_pass_seconds_total{{queries=\"{size}\"}} {}",
                *micros as f64 / 1e6
            );
        }
        counter(
            &mut out,
            "blindscore_busy_rejections_total",
            "Queries refused with 503 because the queue was full.",
            self.busy_rejections.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "blindscore_catalog_swaps_total",
            "Catalog versions installed by replacement.",
            self.swaps.load(Ordering::Relaxed),
        );
        let gauge_header = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        };
        // One gauge per catalog, each line labelled with the catalog's name.
        let per_catalog: [(&str, &str, Gauge); 5] = [
            (
                "blindscore_catalog_items",
                "Items in the current version.",
                |c| c.items.to_string(),
            ),
            (
                "blindscore_catalog_versions_held",
                "Versions held (current and in grace).",
                |c| c.versions_held.to_string(),
            ),
            (
                "blindscore_catalog_memory_bytes",
                "Bytes held by the versions of a catalog.",
                |c| c.memory_bytes.to_string(),
            ),
            (
                "blindscore_catalog_build_seconds",
                "Time the current version took to build.",
                |c| c.build_seconds.to_string(),
            ),
            (
                "blindscore_queue_depth",
                "Queries waiting for the current version.",
                |c| c.queue_depth.to_string(),
            ),
        ];
        for (name, help, value) in per_catalog {
            gauge_header(&mut out, name, help);
            for c in catalogs {
                let _ = writeln!(out, "{name}{{catalog=\"{}\"}} {}", c.name, value(c));
            }
        }
        let mem = process_memory();
        gauge_header(
            &mut out,
            "blindscore_process_resident_bytes",
            "Resident memory now.",
        );
        let _ = writeln!(out, "blindscore_process_resident_bytes {}", mem.resident);
        gauge_header(
            &mut out,
            "blindscore_process_resident_peak_bytes",
            "Highest resident memory since start.",
        );
        let _ = writeln!(out, "blindscore_process_resident_peak_bytes {}", mem.peak);
        if let Some(heap) = crate::scan::memory::heap_in_use_bytes() {
            gauge_header(
                &mut out,
                "blindscore_process_heap_in_use_bytes",
                "Heap bytes allocated and not freed now (the resident size also counts freed memory the allocator keeps).",
            );
            let _ = writeln!(out, "blindscore_process_heap_in_use_bytes {heap}");
        }
        gauge_header(
            &mut out,
            "blindscore_scan_pool_bytes",
            "Bytes of scan buffers kept for reuse (part of the heap in use).",
        );
        let _ = writeln!(
            out,
            "blindscore_scan_pool_bytes {}",
            crate::scan::memory::pooled_bytes()
        );
        gauge_header(
            &mut out,
            "blindscore_swap_resident_peak_bytes",
            "Highest resident memory seen at the end of a swap.",
        );
        let _ = writeln!(
            out,
            "blindscore_swap_resident_peak_bytes {}",
            self.peak_swap_resident.load(Ordering::Relaxed)
        );
        out
    }
}

/// Resident memory of this process, now and at its peak (Linux; zero elsewhere).
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessMemory {
    pub resident: u64,
    pub peak: u64,
}

/// Read the process's resident memory from /proc.
pub fn process_memory() -> ProcessMemory {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return ProcessMemory::default();
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    ProcessMemory {
        resident: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}
