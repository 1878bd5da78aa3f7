//! The targets at 1M x 128 on one thread, and where a 16-query pass spends its time.

use crate::format::{bytes, ratio, time, Report};
use crate::records::{EndToEndRecord, ScoringRecord, ScoringShape};

pub fn section(r: &mut Report, s: &ScoringRecord, e2e: Option<&EndToEndRecord>) {
    r.line("## Targets (one thread, 1M x 128)");
    r.line("");
    r.line("| target | measured | limit | result |");
    r.line("|---|---|---|---|");
    let column = s.shape(1_000_000, 128, 1);
    if let Some(x) = column {
        let stream = x.stream_floor_seconds;
        let fma = x.fma_floor_seconds;
        if let Some(one) = x.run(1, 1, "avx512") {
            r.line(format!(
                "| one query within 1.25x the time to stream the Fourier catalog once | {} | {} x 1.25 = {} | {} ({}) |",
                time(one),
                time(stream),
                time(1.25 * stream),
                if one <= 1.25 * stream { "met" } else { "**not met**" },
                ratio(one, stream)
            ));
        }
        if let Some(b16) = x.run(16, 1, "avx512") {
            r.line(format!(
                "| 16 batched queries within 2x the FMA floor per query | {} per query | {} x 2 = {} | {} ({}) |",
                time(b16),
                time(fma),
                time(2.0 * fma),
                if b16 <= 2.0 * fma { "met" } else { "**not met**" },
                ratio(b16, fma)
            ));
        }
    }
    if let Some(warm) = e2e.and_then(|e| e.catalog_100k.warm_seconds) {
        r.line(format!(
            "| end to end at 100k x 128, warm, under 40 ms | {} | 40 ms | {} |",
            time(warm),
            if warm < 0.040 { "met" } else { "**not met**" }
        ));
    }
    r.line("");
    if let Some(i) = column.and_then(|x| x.interleaved.as_ref()) {
        r.line(format!(
            "Each pass beside its own floor probe ({} rounds of a read probe, one query, an FMA burst, a 16-query pass; medians of the rounds' ratios: each pass set against the limits measured just before it, the best of 2 reads and 2 FMA bursts, where the table's floors come from the best of 10 and 5 at the run's start): one query {} the streaming floor (read {:.1} GB/s), 16 per pass {} the FMA floor ({:.1} G FMA/s).",
            i.rounds,
            ratio(i.one_query_over_stream_floor, 1.0),
            i.bandwidth_bytes_per_s / 1e9,
            ratio(i.batch16_over_fma_floor, 1.0),
            i.fma_per_s / 1e9
        ));
        r.line("");
    }
    if let Some(x) = column.filter(|x| !x.tunings.is_empty()) {
        let runs: Vec<String> = x
            .tunings
            .iter()
            .map(|t| {
                format!(
                    "{}{} {} per query at {} per pass",
                    t.preset,
                    if t.this_cpu { " (this CPU's)" } else { "" },
                    time(t.seconds_per_query),
                    t.batch
                )
            })
            .collect();
        r.line(format!(
            "The scan's tuning is chosen at run time by CPU vendor (`server/src/scan/tuning.rs`). Each family's preset on this CPU, one thread, in this run: {}.",
            runs.join("; ")
        ));
        r.line("");
    }
    r.line(
        "The streaming floor is the Fourier catalog's size over the measured read bandwidth; the",
    );
    r.line(
        "FMA floor is 2 d real f64 FMAs per item and query (one complex multiply-add per Fourier",
    );
    r.line(
        "point of each of d products per block of N items, over N/2 points) at the measured rate.",
    );
    r.line("");
    if let Some(x) = column {
        batch_story(r, s, x);
    }
}

/// Where the 16-query pass at 1M x 128 spends its time, beside the limits it meets.
fn batch_story(r: &mut Report, s: &ScoringRecord, x: &ScoringShape) {
    let (Some(b16), Some(phases)) = (x.run(16, 1, "avx512"), &x.pass_phases_b16_t1) else {
        return;
    };
    let kernel = s.kernel_fma_per_s_in_l1;
    let fma_rate = s.limits.fma_per_s;
    let catalog = x.fourier_bytes as f64;
    let mac = phases.multiply_accumulate;
    r.line(format!(
        "Where a pass of 16 queries goes (1M x 128, one thread; {} per query in the table, {} \
         in {} passes timed phase by phase, medians per query): preparing the queries \
         (unpacking and transforming their bodies) {}; the multiply-accumulate against the \
         catalog {}, while the Fourier catalog ({}, read once per pass) streams in at {:.1} \
         GB/s, against {:.1} GB/s for a plain sequential read on one thread; the inverse side \
         (gathering each block's sums, the inverse transforms, rounding and packing the \
         scores) {}; the rest (taking buffers, and zeroing them as they are released) {}. The \
         multiply-accumulate kernel alone, on data held in L1, runs at {:.1} G FMA/s ({:.0}% \
         of the FMA rate), so the FMAs alone take {} per query at best.",
        time(b16),
        time(phases.total),
        phases.runs,
        time(phases.prepare),
        time(mac),
        bytes(catalog),
        catalog / (16.0 * mac) / 1e9,
        s.limits.bandwidth_bytes_per_s / 1e9,
        time(phases.inverse),
        time(phases.total - phases.prepare - mac - phases.inverse),
        kernel / 1e9,
        100.0 * kernel / fma_rate,
        time(x.fma_floor_seconds * fma_rate / kernel),
    ));
    if let Some(tile) = s.kernel_fma_per_s_on_a_tile {
        r.line("");
        r.line(format!(
            "Over one tile of the pass as the scan cuts it (a chunk a slice of groups at a \
             time, the 8 pairs of queries passing over each slice), with the tile's data held \
             in cache, no catalog streaming from memory, and without the scan's requests \
             ahead and stores of the sums, the kernel runs at {:.1} G FMA/s: \
             {} per query for the FMAs of a pass, against the pass's {} multiply-accumulate.",
            tile / 1e9,
            time(x.fma_floor_seconds * fma_rate / tile),
            time(mac),
        ));
    }
    r.line("");
}
