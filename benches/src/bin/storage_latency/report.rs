//! The markdown report: each figure beside its target from the foundation issue.

use crate::scenarios::{GroupCommit, RandomReads, Reopen, SyncLoop};
use std::fmt::Write as _;
use std::time::Duration;
use strata_benches::stats::{Percentiles, micros, millis};

/// Group commit throughput must reach this fraction of the pwrite + fdatasync loop's.
pub const GROUP_COMMIT_THROUGHPUT_RATIO_MIN: f64 = 0.70;
/// Group commit p99 append-to-durable may be at most this many times the loop's p99 fdatasync.
pub const GROUP_COMMIT_P99_RATIO_MAX: f64 = 2.0;
/// Random read p99 must stay below this.
pub const RANDOM_READ_P99_MAX: Duration = Duration::from_micros(20);
/// Opening a cleanly closed log must take less than this per GiB.
pub const CLEAN_REOPEN_PER_GIB_MAX: Duration = Duration::from_millis(100);
/// Opening a crashed log must take less than this per GiB of unchecked tail.
pub const CRASH_REOPEN_PER_GIB_MAX: Duration = Duration::from_secs(1);

/// Everything the binary measured.
#[derive(Debug, Clone)]
pub struct Results {
    /// Baseline B.
    pub sync_loop: SyncLoop,
    /// Group commit.
    pub group_commit: GroupCommit,
    /// Random reads.
    pub random_reads: RandomReads,
    /// Opens after a clean close.
    pub clean_reopen: Reopen,
    /// Opens after a crash whose tail had been flushed.
    pub crash_flushed: Reopen,
    /// Open after a crash whose tail was still dirty in the page cache.
    pub crash_unflushed: Reopen,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What was measured.
    pub measurement: String,
    /// The figure.
    pub figure: String,
    /// The target it is held to.
    pub target: String,
    /// Whether the target is met (`None` for baselines).
    pub met: Option<bool>,
}

/// Decimal megabytes per second.
fn mb_per_s(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / 1e6 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn us_triple(p: &Percentiles) -> String {
    format!(
        "p50 {:.1} µs · p99 {:.1} µs · p999 {:.1} µs",
        micros(p.p50),
        micros(p.p99),
        micros(p.p999)
    )
}

fn ms_triple(p: &Percentiles) -> String {
    format!(
        "p50 {:.2} ms · p99 {:.2} ms · p999 {:.2} ms",
        millis(p.p50),
        millis(p.p99),
        millis(p.p999)
    )
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64
}

fn reopen_row(name: &str, r: &Reopen, limit: Duration, seconds: bool) -> Row {
    let per_gib = r.per_gib(r.max());
    let fmt = |d: Duration| {
        if seconds {
            format!("{:.3} s", d.as_secs_f64())
        } else {
            format!("{:.1} ms", millis(d))
        }
    };
    Row {
        measurement: format!(
            "{name} ({:.3} GiB, {} opens)",
            gib(r.log_bytes),
            r.opens.len()
        ),
        figure: format!(
            "median {}, max {} → **{} per GiB** (max)",
            fmt(r.median()),
            fmt(r.max()),
            fmt(per_gib)
        ),
        target: format!("< {} per GiB", fmt(limit)),
        met: Some(per_gib < limit),
    }
}

/// The rows of the report.
pub fn rows(r: &Results) -> Vec<Row> {
    let b = &r.sync_loop;
    let b_mbps = mb_per_s(b.bytes, b.elapsed);
    let g = &r.group_commit;
    let g_mbps = mb_per_s(g.bytes, g.elapsed);
    let g_records = g.records() as f64 / g.elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let p99_limit = b.fdatasync.p99.mul_f64(GROUP_COMMIT_P99_RATIO_MAX);
    let rr = &r.random_reads;
    vec![
        Row {
            measurement: format!(
                "Baseline B: 64 KiB pwrite + fdatasync loop ({} rounds)",
                b.fdatasync.count
            ),
            figure: format!("{b_mbps:.1} MB/s"),
            target: "baseline".into(),
            met: None,
        },
        Row {
            measurement: "Baseline B: fdatasync latency".into(),
            figure: us_triple(&b.fdatasync),
            target: "baseline".into(),
            met: None,
        },
        Row {
            measurement: format!(
                "Group commit throughput ({} appenders, {} appends)",
                g.threads, g.appends
            ),
            figure: format!(
                "{g_mbps:.1} MB/s, {g_records:.0} records/s ({:.0}% of baseline B)",
                100.0 * g_mbps / b_mbps.max(f64::MIN_POSITIVE)
            ),
            target: format!(
                "≥ {:.0}% of baseline B (≥ {:.1} MB/s)",
                100.0 * GROUP_COMMIT_THROUGHPUT_RATIO_MIN,
                GROUP_COMMIT_THROUGHPUT_RATIO_MIN * b_mbps
            ),
            met: Some(g_mbps >= GROUP_COMMIT_THROUGHPUT_RATIO_MIN * b_mbps),
        },
        Row {
            measurement: "Group commit append-to-durable latency".into(),
            figure: ms_triple(&g.append_to_durable),
            target: format!(
                "p99 ≤ {GROUP_COMMIT_P99_RATIO_MAX}× baseline B p99 fdatasync (≤ {:.2} ms)",
                millis(p99_limit)
            ),
            met: Some(g.append_to_durable.p99 <= p99_limit),
        },
        Row {
            measurement: "Group commit, parts of append-to-durable (diagnostic)".into(),
            figure: format!(
                "mutex wait p50 {:.2} / p99 {:.2} ms · append + flush call p50 {:.3} / p99 {:.3} ms · \
                 wait for the callback p50 {:.2} / p99 {:.2} ms",
                millis(g.lock_wait.p50),
                millis(g.lock_wait.p99),
                millis(g.append_call.p50),
                millis(g.append_call.p99),
                millis(g.durable_wait.p50),
                millis(g.durable_wait.p99),
            ),
            target: "—".into(),
            met: None,
        },
        Row {
            measurement: format!(
                "Random read by offset, {:.3} GiB log, first pass ({} reads)",
                gib(rr.log_bytes),
                rr.first_pass.count
            ),
            figure: us_triple(&rr.first_pass),
            target: format!("p99 < {:.0} µs", micros(RANDOM_READ_P99_MAX)),
            met: Some(rr.first_pass.p99 < RANDOM_READ_P99_MAX),
        },
        Row {
            measurement: format!(
                "Random read by offset, after a sequential pass ({} reads)",
                rr.after_sequential_pass.count
            ),
            figure: us_triple(&rr.after_sequential_pass),
            target: format!("p99 < {:.0} µs", micros(RANDOM_READ_P99_MAX)),
            met: Some(rr.after_sequential_pass.p99 < RANDOM_READ_P99_MAX),
        },
        reopen_row(
            "Reopen after clean close",
            &r.clean_reopen,
            CLEAN_REOPEN_PER_GIB_MAX,
            false,
        ),
        reopen_row(
            "Reopen after crash, tail flushed before the crash",
            &r.crash_flushed,
            CRASH_REOPEN_PER_GIB_MAX,
            true,
        ),
        reopen_row(
            "Reopen after crash, tail still dirty in the page cache",
            &r.crash_unflushed,
            CRASH_REOPEN_PER_GIB_MAX,
            true,
        ),
    ]
}

fn residency_line(out: &mut String, name: &str, residency: f64, dirty: Option<u64>) {
    let warm = if residency >= 0.99 {
        "warm"
    } else {
        "NOT warm"
    };
    let _ = write!(
        out,
        "- {name}: page cache {warm} ({:.1}% of the segment resident",
        100.0 * residency
    );
    if let Some(d) = dirty {
        let _ = write!(
            out,
            "; {:.0} MiB dirty system-wide",
            d as f64 / (1 << 20) as f64
        );
    }
    let _ = writeln!(out, ")");
}

/// The markdown table and the page-cache notes.
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "| Measurement | Figure | Target | Met |");
    let _ = writeln!(out, "| --- | --- | --- | --- |");
    for row in rows(r) {
        let met = match row.met {
            None => "—",
            Some(true) => "met",
            Some(false) => "**missed**",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {met} |",
            row.measurement, row.figure, row.target
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "MB = 10^6 bytes of record batches (frame headers not counted); 64 records per batch."
    );
    residency_line(&mut out, "Random reads", r.random_reads.residency, None);
    residency_line(
        &mut out,
        "Clean reopen",
        r.clean_reopen.residency,
        r.clean_reopen.dirty_bytes,
    );
    residency_line(
        &mut out,
        "Crash reopen, flushed tail",
        r.crash_flushed.residency,
        r.crash_flushed.dirty_bytes,
    );
    residency_line(
        &mut out,
        "Crash reopen, dirty tail",
        r.crash_unflushed.residency,
        r.crash_unflushed.dirty_bytes,
    );
    let _ = writeln!(out, "- Random read offsets seed: {}", r.random_reads.seed);
    out
}
