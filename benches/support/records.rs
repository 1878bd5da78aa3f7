//! The figures each benchmark leaves in `target/blindscore-bench/` and the report reads
//! (`examples/bench_report/`): one type per record file, written by its benchmark through
//! serde and read back by the same type. A figure that is missing from a run (a benchmark
//! filtered out) is an `Option`; a field missing from a file is an error, never a NaN.

use serde::{Deserialize, Serialize};

/// The machine a run is on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub simd: Vec<String>,
    pub threads: usize,
    pub memory_gib: Option<f64>,
    pub tfhe_avx512_kernels: bool,
}

/// This machine's physical limits, measured on one thread.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct MachineLimits {
    /// Sequential memory read, bytes per second.
    pub bandwidth_bytes_per_s: f64,
    /// f64 fused multiply-adds per second (AVX-512 where available).
    pub fma_per_s: f64,
}

/// `scoring.json`: the server's scan against the plaintext scan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoringRecord {
    pub machine: Machine,
    pub limits: MachineLimits,
    /// f64 FMAs per second of the batch kernel on data held in L1.
    pub kernel_fma_per_s_in_l1: f64,
    /// The same kernel in the scan's own loop over one tile of a 16-query pass at d = 128,
    /// its data in cache.
    pub kernel_fma_per_s_on_a_tile: Option<f64>,
    /// Threads of the "all threads" runs.
    pub threads: usize,
    pub shapes: Vec<ScoringShape>,
}

impl ScoringRecord {
    /// The figures of one shape and layout.
    pub fn shape(
        &self,
        items: usize,
        dimension: usize,
        group_size: usize,
    ) -> Option<&ScoringShape> {
        self.shapes
            .iter()
            .find(|x| x.items == items && x.dimension == dimension && x.group_size == group_size)
    }
}

/// One catalog shape in one layout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScoringShape {
    pub items: usize,
    pub dimension: usize,
    pub layout: String,
    pub group_size: usize,
    /// Whether this is the layout the layout objective picks for the shape.
    pub cost_model_pick: bool,
    pub plaintext_seconds_t1: Option<f64>,
    pub plaintext_seconds_all: Option<f64>,
    pub encrypted: Vec<EncryptedRun>,
    /// The Fourier catalog's size over the measured read bandwidth.
    pub stream_floor_seconds: f64,
    /// Where a 16-query pass on one thread goes (1M x 128, column layout only).
    pub pass_phases_b16_t1: Option<PassPhases>,
    /// Each CPU family's scan tuning on this CPU, one thread (1M x 128, column only).
    pub tunings: Vec<TuningRun>,
    /// 2 d f64 FMAs per item at the measured FMA rate.
    pub fma_floor_seconds: f64,
    /// The two targets' ratios with each pass timed right after its own floor probe
    /// (1M x 128, column only).
    pub interleaved: Option<InterleavedTargets>,
    pub build_seconds: f64,
    pub fourier_bytes: usize,
    pub server_bytes_per_item: f64,
    pub query_message_bytes: usize,
    pub response_message_bytes: usize,
    pub hint_message_bytes: usize,
    pub bits: WireWidths,
    pub delta_log2: u32,
    /// Bytes of every layout the layout objective considers for this shape.
    pub layouts: Vec<LayoutBytes>,
}

impl ScoringShape {
    /// Seconds per query of the run with this batch size, thread count and kernel.
    pub fn run(&self, batch: usize, threads: usize, kernel: &str) -> Option<f64> {
        self.encrypted
            .iter()
            .find(|r| r.batch == batch && r.threads == threads && r.kernel == kernel)
            .map(|r| r.seconds_per_query)
    }
}

/// One timed configuration of the encrypted scan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EncryptedRun {
    pub batch: usize,
    pub threads: usize,
    /// `avx512` or `portable`.
    pub kernel: String,
    pub seconds_per_pass: f64,
    pub seconds_per_query: f64,
}

/// One CPU family's scan tuning, timed on this CPU.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TuningRun {
    /// `amd` or `intel`.
    pub preset: String,
    /// Whether this CPU's scan chooses it.
    pub this_cpu: bool,
    pub batch: usize,
    pub seconds_per_query: f64,
}

/// The targets' ratios measured in rounds, each a read probe, one query's pass, an FMA
/// burst and a 16-query pass, one thread: on a machine whose speed drifts during a run,
/// each pass is set against the limits measured beside it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InterleavedTargets {
    pub rounds: usize,
    /// Medians over the rounds of one query's pass over its round's streaming floor...
    pub one_query_over_stream_floor: f64,
    /// ...and of a 16-query pass per query over its round's FMA floor.
    pub batch16_over_fma_floor: f64,
    /// Medians of the rounds' read bandwidth (bytes per second) and FMA rate.
    pub bandwidth_bytes_per_s: f64,
    pub fma_per_s: f64,
}

/// Medians per query of a pass's phases.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PassPhases {
    pub runs: usize,
    pub prepare: f64,
    pub multiply_accumulate: f64,
    pub inverse: f64,
    pub total: f64,
}

/// Bits per word of each wire part.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct WireWidths {
    pub query: u32,
    pub response: u32,
    pub hint: u32,
}

/// Payload bytes of one layout at the budget's widths for the worst-case int8 block norm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayoutBytes {
    pub layout: String,
    pub group_size: usize,
    pub query_bytes: usize,
    pub response_bytes: usize,
    pub hint_bytes: usize,
    pub delta_log2: u32,
}

/// `client_avx512.json` and `client_portable.json`: the client's work per query.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientRecord {
    pub machine: Machine,
    pub limits: MachineLimits,
    /// `avx512` or `portable` (tfhe's FFT kernels).
    pub build: String,
    pub layouts: Vec<ClientLayout>,
}

/// The client's figures for one catalog layout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClientLayout {
    pub layout: String,
    pub group_size: usize,
    pub items: usize,
    pub dimension: usize,
    pub plaintext_seconds_t1: Option<f64>,
    pub key_generation_seconds: Option<f64>,
    pub encrypt_seconds: Option<f64>,
    pub decrypt_top10_seconds: Option<f64>,
    pub decrypt_top10_fresh_seconds: Option<f64>,
    pub query_message_bytes: usize,
    pub response_message_bytes: usize,
    pub hint_message_bytes: usize,
}

/// `end_to_end.json`: the SDK against the real server over loopback HTTP.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndToEndRecord {
    pub machine: Machine,
    pub limits: MachineLimits,
    pub catalog_100k: EndToEndCatalog,
    pub pnns_4096x128: PnnsShape,
}

/// A catalog as the benchmark's server built it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServedShape {
    pub items: usize,
    pub dimension: usize,
    pub layout: String,
    pub group_size: usize,
    pub catalog_bits: u32,
    pub query_bits: u32,
    pub load_seconds: f64,
    /// The server's own time for one query, one thread, best of 20.
    pub server_seconds_t1_best_of_20: f64,
}

/// What a client pays per query and once per version.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct ClientBytes {
    pub bytes_up: usize,
    pub bytes_down: usize,
    pub bytes_once_per_version: usize,
}

/// 100k x 128 with the operator's defaults, step by step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EndToEndCatalog {
    #[serde(flatten)]
    pub served: ServedShape,
    #[serde(flatten)]
    pub bytes: ClientBytes,
    pub plaintext_t1_seconds: Option<f64>,
    pub warm_seconds: Option<f64>,
    pub cold_seconds: Option<f64>,
    pub warm_step_encrypt_seconds: Option<f64>,
    pub warm_step_http_and_scoring_seconds: Option<f64>,
    pub warm_step_decrypt_rank_seconds: Option<f64>,
}

/// Apple PNNS's shape, 4,096 x 128, in every layout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PnnsShape {
    pub plaintext_t1_seconds: Option<f64>,
    pub layouts: Vec<PnnsLayout>,
}

/// One layout at PNNS's shape, end to end warm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PnnsLayout {
    #[serde(flatten)]
    pub served: ServedShape,
    #[serde(flatten)]
    pub bytes: ClientBytes,
    pub warm_seconds: Option<f64>,
}

/// `layouts.json`: the server time of every layout the objective may choose.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayoutsRecord {
    pub machine: Machine,
    pub limits: MachineLimits,
    /// Items of the measured catalogs.
    pub items: [usize; 2],
    /// Items of the committed table's measurements.
    pub table_items: [usize; 2],
    pub rows: Vec<LayoutTime>,
    /// The objective's choice for a few catalog shapes.
    pub choices: Vec<ObjectiveChoice>,
}

/// The layout objective's choice for one catalog shape (L2-normalised rows).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ObjectiveChoice {
    pub items: usize,
    pub dimension: usize,
    /// The widest width the budget allows, chosen with the layout.
    pub catalog_bits: u32,
    pub queries_per_version: u32,
    /// Seconds the width and layout search took.
    pub search_seconds: f64,
    /// The most server seconds per query a layout may take.
    pub allowed_seconds: Option<f64>,
    /// The quantized catalog, packed: what ranking on the device downloads.
    pub plaintext_catalog_bytes: usize,
    pub candidates: Vec<CandidateBytes>,
}

/// One layout the objective considered (payload bytes).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CandidateBytes {
    pub layout: String,
    pub group_size: usize,
    /// The widest width the budget allows this layout.
    pub catalog_bits: u32,
    pub query_bytes: usize,
    pub response_bytes: usize,
    pub hint_bytes: usize,
    pub first_query_bytes: usize,
    pub bytes_over_queries: usize,
    /// From the committed table.
    pub server_seconds: Option<f64>,
    /// Within the server-time allowance.
    pub allowed: bool,
    pub chosen: bool,
}

/// One group size: seconds per query (16-query pass, one thread) at two dimensions and two
/// item counts (`seconds[dimension][items]`), as measured and as the committed table has
/// them at the table's item counts.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayoutTime {
    pub group_size: u32,
    pub dimensions: [u32; 2],
    pub seconds: [[f64; 2]; 2],
    pub committed: [[Option<f64>; 2]; 2],
}

/// `naive.json`: the naive tfhe-rs route (benches/naive).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NaiveRecord {
    pub items: usize,
    pub dimension: usize,
    pub threads: usize,
    /// tfhe's version and API.
    pub tfhe: String,
    pub key_generation_seconds: f64,
    pub seconds: Option<f64>,
    pub plaintext_seconds: Option<f64>,
    pub seconds_per_coordinate: Option<f64>,
}

/// `sharding.json`: shards and the router as processes of the server binary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardingRecord {
    pub machine: Machine,
    pub items: usize,
    pub dimension: usize,
    pub layout: String,
    pub shards: usize,
    pub replicas: usize,
    pub plaintext_t1_seconds: Option<f64>,
    /// Warm end to end (seal, send, score, decrypt, top-10), the whole catalog's process
    /// directly.
    pub direct_whole_seconds: Option<f64>,
    /// The same through a router in front of that process.
    pub router_whole_seconds: Option<f64>,
    /// Through the router of the sharded artefact.
    pub router_sharded_seconds: Option<f64>,
    /// router_whole / direct_whole.
    pub router_overhead: Option<f64>,
    /// Resident memory of the whole catalog's process, MiB.
    pub whole_resident_mib: f64,
    pub shard_processes: Vec<ShardProcess>,
    /// Per query, the same on every path.
    pub bytes_up: usize,
    pub bytes_down: usize,
    pub checked_queries_per_path: usize,
    pub wrong_scores: usize,
}

/// One shard replica's process.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShardProcess {
    pub shard: usize,
    pub items: usize,
    pub resident_mib: f64,
    /// Its resident memory over (its items / all items) x the whole process's.
    pub ratio_to_share_of_whole: f64,
}

/// `lscpu`'s description of the machine.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lscpu {
    pub model: String,
    pub vcpus: usize,
    pub threads_per_core: Option<usize>,
    /// Its cache lines (L1d, L1i, L2, L3), as printed.
    pub caches: Vec<String>,
}

/// `throughput.json`: the server binary under wrk.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThroughputRecord {
    pub machine: Machine,
    pub lscpu: Lscpu,
    /// wrk's version line.
    pub wrk: String,
    pub seconds_per_run: u64,
    /// The batch whose pass is compared in service and in process.
    pub batch: usize,
    pub cases: Vec<ThroughputCase>,
}

/// One catalog served in one layout.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThroughputCase {
    pub items: usize,
    pub dimension: usize,
    pub layout: String,
    /// Whether the layout objective picked this layout.
    pub objective_pick: bool,
    /// Whether it is the column layout.
    pub also_column: bool,
    pub bytes_up: usize,
    pub bytes_down: usize,
    /// Recorded queries sent with the real client and every score checked, before and
    /// after the load.
    pub checked_queries: usize,
    pub wrong_scores: usize,
    /// The same pass of `batch` queries in process (checked, then scored, every thread),
    /// median of the passes before and after the load.
    pub bench_pass_seconds: Option<f64>,
    /// The CPU seconds of those passes, per query.
    pub bench_cpu_per_query_seconds: f64,
    pub runs: Vec<ThroughputRun>,
}

/// One wrk run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ThroughputRun {
    pub connections: usize,
    pub seconds: f64,
    pub requests: u64,
    pub queries_per_second: f64,
    pub p50_seconds: f64,
    pub p99_seconds: f64,
    /// Mean queries scored together in the server's passes during the run.
    pub mean_queries_per_pass: Option<f64>,
    /// The server's passes of `batch` queries during the run, and their mean time (the
    /// server's own timing, from /metrics).
    pub full_passes: u64,
    pub service_pass_seconds: Option<f64>,
    /// Where the machine's CPU went during the run, per query answered.
    pub cpu_per_query: CpuPerQuery,
}

/// CPU seconds per query: the server's scan threads, its other threads (the async runtime:
/// reading bodies, checking queries, writing responses), and the load generator.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct CpuPerQuery {
    pub scan_seconds: f64,
    pub server_other_seconds: f64,
    pub load_generator_seconds: f64,
    /// The server's minor page faults per query (fresh memory mapped for it).
    pub server_minor_faults: f64,
}
