//! The markdown report: each figure beside its target from the replication issue, then the
//! diagnostics that explain the figures (CPU, fsyncs, messages).

use crate::cluster::{NODES, NodeOptions, Serving};
use crate::idle::IdleResult;
use crate::load::{CellResult, RateResult, Usage};
use std::fmt::Write as _;
use std::time::Duration;
use strata_benches::stats::{Percentiles, micros, millis};

/// Records per second the cluster must reach with [`THROUGHPUT_WRITERS`] writers on
/// [`THROUGHPUT_PARTITIONS`] partitions.
pub const THROUGHPUT_RECORDS_MIN: f64 = 150_000.0;
/// Writers of the throughput target.
pub const THROUGHPUT_WRITERS: usize = 256;
/// Partitions of the throughput target.
pub const THROUGHPUT_PARTITIONS: usize = 16;
/// Commit p99 at the fixed rate must stay below this.
pub const RATE_P99_MAX: Duration = Duration::from_millis(5);
/// Idle replicated partitions of the idle target.
pub const IDLE_PARTITIONS_TARGET: usize = 1_000;
/// Idle CPU of those partitions must stay below this fraction of one core.
pub const IDLE_CORE_FRACTION_MAX: f64 = 0.10;

/// Everything the binary measured (phases not run are empty).
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Closed-loop cells.
    pub cells: Vec<CellResult>,
    /// Open-loop runs.
    pub rates: Vec<RateResult>,
    /// The idle phase.
    pub idle: Option<IdleResult>,
    /// How the nodes ran.
    pub nodes: NodeOptions,
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

fn per_s(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(f64::MIN_POSITIVE)
}

fn us(d: Duration) -> String {
    format!("{:.0}", micros(d))
}

/// Thousands separated by commas, for counts and rates.
fn grouped(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn cores(u: &Usage) -> String {
    format!(
        "{:.2}",
        u.cpu.as_secs_f64() / u.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    )
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn batch_name(records: usize) -> String {
    if records == 1 {
        "1 (latency)".to_string()
    } else {
        format!("{records} (batched)")
    }
}

impl CellResult {
    fn records_per_s(&self) -> f64 {
        per_s(self.records(), self.duration)
    }

    fn is_target_cell(&self) -> bool {
        self.writers == THROUGHPUT_WRITERS && self.partitions == THROUGHPUT_PARTITIONS
    }
}

fn throughput_tables(out: &mut String, cells: &[CellResult]) {
    let _ = writeln!(
        out,
        "### Throughput and commit latency (closed loop, acks=all)\n\n\
         | Partitions | Writers | Records per batch | Records/s | MB/s | Appends/s | p50 µs | p99 µs | p999 µs | Target | Met |\n\
         | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    );
    for c in cells {
        let (target, verdict) = if c.is_target_cell() {
            (
                format!("≥ {} records/s", grouped(THROUGHPUT_RECORDS_MIN)),
                met(c.records_per_s() >= THROUGHPUT_RECORDS_MIN).to_string(),
            )
        } else {
            ("—".to_string(), "—".to_string())
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.1} | {} | {} | {} | {} | {target} | {verdict} |",
            c.partitions,
            c.writers,
            batch_name(c.records_per_batch),
            grouped(c.records_per_s()),
            c.bytes as f64 / 1e6 / c.duration.as_secs_f64(),
            grouped(per_s(c.appends, c.duration)),
            us(c.latency.p50),
            us(c.latency.p99),
            us(c.latency.p999),
        );
    }
    let _ = writeln!(
        out,
        "\nDiagnostics over the same windows (CPU of the whole process, of {} cores; syncs of the \
         three nodes; each replica writes every batch once):\n\n\
         | Partitions | Writers | Records per batch | CPU (cores busy) | Context switches per append | fdatasync/s | Batches per fdatasync | Disk MB/s written | Redirects | Indeterminate |\n\
         | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        available_cores()
    );
    for c in cells {
        let syncs = c.usage.disk.data_syncs;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {} | {:.1} | {:.1} | {} | {} |",
            c.partitions,
            c.writers,
            batch_name(c.records_per_batch),
            cores(&c.usage),
            c.usage.context_switches as f64 / c.appends.max(1) as f64,
            grouped(per_s(syncs, c.usage.wall)),
            (c.appends * NODES as u64) as f64 / syncs.max(1) as f64,
            c.usage.disk.bytes_written as f64 / 1e6 / c.usage.wall.as_secs_f64(),
            c.redirects,
            c.indeterminate,
        );
    }
}

fn rate_tables(out: &mut String, rates: &[RateResult]) {
    let _ = writeln!(
        out,
        "\n### Commit latency at a fixed rate (open loop, acks=all, latency from the scheduled send)\n\n\
         | Partitions | Offered records/s | Acknowledged records/s | p50 µs | p99 µs | p999 µs | max µs | Target | Met |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"
    );
    for r in rates {
        let ok = !r.overloaded && r.indeterminate == 0 && r.latency.p99 < RATE_P99_MAX;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | p99 < {} ms | {} |",
            r.partitions,
            grouped((r.rate as usize * r.records_per_batch) as f64),
            grouped(per_s(
                r.acknowledged * r.records_per_batch as u64,
                r.duration
            )),
            us(r.latency.p50),
            us(r.latency.p99),
            us(r.latency.p999),
            us(r.latency.max),
            millis(RATE_P99_MAX),
            met(ok),
        );
    }
    let _ = writeln!(
        out,
        "\nDiagnostics: service time (from the actual send), the generator's lateness (part of \
         the latency above), CPU and syncs:\n\n\
         | Partitions | Sends scheduled / acknowledged | Service p50 / p99 µs | Send lateness p50 / p99 µs | CPU (cores busy) | fdatasync/s | Batches per fdatasync | Indeterminate | Overloaded |\n\
         | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    for r in rates {
        let syncs = r.usage.disk.data_syncs;
        let _ = writeln!(
            out,
            "| {} | {} / {} | {} / {} | {} / {} | {} | {} | {:.1} | {} | {} |",
            r.partitions,
            grouped(r.scheduled as f64),
            grouped(r.acknowledged as f64),
            us(r.service.p50),
            us(r.service.p99),
            us(r.lateness.p50),
            us(r.lateness.p99),
            cores(&r.usage),
            grouped(per_s(syncs, r.usage.wall)),
            (r.acknowledged * NODES as u64) as f64 / syncs.max(1) as f64,
            r.indeterminate,
            if r.overloaded { "yes" } else { "no" },
        );
    }
}

fn idle_tables(out: &mut String, i: &IdleResult) {
    let w = i.window;
    let _ = writeln!(
        out,
        "\n### Idle replicated partitions\n\n\
         | Partitions (replicas) | CPU over {:.0} s idle | Share of one core | Target | Met |\n\
         | ---: | ---: | ---: | --- | --- |\n\
         | {} ({}) | {:.2} s | {:.1}% | < {:.0}% of one core for {} partitions | {} |",
        w.as_secs_f64(),
        grouped(i.partitions as f64),
        grouped((i.partitions * NODES) as f64),
        i.cpu.as_secs_f64(),
        i.core_fraction() * 100.0,
        IDLE_CORE_FRACTION_MAX * 100.0,
        grouped(IDLE_PARTITIONS_TARGET as f64),
        met(i.core_fraction() < IDLE_CORE_FRACTION_MAX),
    );
    let threads: Vec<String> = i
        .threads
        .iter()
        .map(|(name, d)| format!("{name} {:.2} s", d.as_secs_f64()))
        .collect();
    let _ = writeln!(
        out,
        "\n| Idle diagnostics | Figure |\n| --- | --- |\n\
         | Open every replica ({} at a time per node) | {:.1} s |\n\
         | Initialize and elect every group, until each has a ready leader ({} at a time) | {:.1} s |\n\
         | Until every replica applied its leader's last entry | {:.1} s |\n\
         | Then until every replica slept | {} |\n\
         | Partitions led by node 1 / 2 / 3 | {} / {} / {} |\n\
         | Heartbeats received (3 nodes) | {}/s in {}/s batches |\n\
         | Appends / votes received (3 nodes) | {}/s / {} |\n\
         | Sum of terms gained in the window (elections) | {} |\n\
         | fdatasync + directory fsync (3 nodes) | {}/s |\n\
         | At the end: partitions whose replicas agree on the leader / replicas asleep | {} / {} |\n\
         | Then the first write to each of {} idle partitions, one at a time | {} |\n\
         | CPU by thread name over the window (threads alive at its end) | {} |\n\
         | Resident memory | {} |\n\
         | Close every replica, servers, flushers; delete the data | {:.1} s |",
        i.concurrency,
        i.open.as_secs_f64(),
        i.concurrency,
        i.elect.as_secs_f64(),
        i.settle.as_secs_f64(),
        i.fall_asleep
            .map_or("— (no liveness tickers)".to_string(), |d| format!(
                "{:.1} s",
                d.as_secs_f64()
            )),
        i.leader_counts[0],
        i.leader_counts[1],
        i.leader_counts[2],
        grouped(per_s(i.received.heartbeats, w)),
        grouped(per_s(i.received.heartbeat_batches, w)),
        grouped(per_s(i.received.appends, w)),
        i.received.votes,
        i.term_increase,
        grouped(per_s(i.disk.syncs(), w)),
        i.agreed_leaders,
        i.asleep,
        i.wake_writes.count,
        ms_brief(&i.wake_writes),
        threads.join(" · "),
        i.resident_bytes
            .map_or("—".to_string(), |b| format!("{} MiB", b >> 20)),
        i.shutdown.as_secs_f64(),
    );
}

fn target_summary(out: &mut String, r: &Results) {
    let _ = writeln!(
        out,
        "\n### Targets\n\n| Target | Figure | Met |\n| --- | --- | --- |"
    );
    for c in r.cells.iter().filter(|c| c.is_target_cell()) {
        let _ = writeln!(
            out,
            "| ≥ {} records/s, {} writers on {} partitions ({} per batch) | {} records/s | {} |",
            grouped(THROUGHPUT_RECORDS_MIN),
            THROUGHPUT_WRITERS,
            THROUGHPUT_PARTITIONS,
            plural(c.records_per_batch, "record"),
            grouped(c.records_per_s()),
            met(c.records_per_s() >= THROUGHPUT_RECORDS_MIN),
        );
    }
    for rate in &r.rates {
        let ok = !rate.overloaded && rate.indeterminate == 0 && rate.latency.p99 < RATE_P99_MAX;
        let _ = writeln!(
            out,
            "| commit p99 < {} ms at {} records/s ({}) | p99 {:.2} ms | {} |",
            millis(RATE_P99_MAX),
            grouped((rate.rate as usize * rate.records_per_batch) as f64),
            plural(rate.partitions, "partition"),
            millis(rate.latency.p99),
            met(ok),
        );
    }
    if let Some(i) = &r.idle {
        let _ = writeln!(
            out,
            "| {} idle replicated partitions < {:.0}% of one core | {} partitions: {:.1}% | {} |",
            grouped(IDLE_PARTITIONS_TARGET as f64),
            IDLE_CORE_FRACTION_MAX * 100.0,
            grouped(i.partitions as f64),
            i.core_fraction() * 100.0,
            met(i.core_fraction() < IDLE_CORE_FRACTION_MAX),
        );
    }
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The report: throughput cells, fixed-rate runs, idle phase, then the targets.
pub fn render(r: &Results) -> String {
    let mut out = String::new();
    if !r.cells.is_empty() {
        throughput_tables(&mut out, &r.cells);
    }
    if !r.rates.is_empty() {
        rate_tables(&mut out, &r.rates);
    }
    if let Some(i) = &r.idle {
        idle_tables(&mut out, i);
    }
    target_summary(&mut out, r);
    let _ = writeln!(
        out,
        "\nRecords: 16-byte key, 1024-byte value. MB = 10^6 bytes of producer batches. \
         Latencies from the append call to its acks=all acknowledgement. Peer servers: {}; \
         liveness tickers (idle groups sleep): {}.",
        match r.nodes.serving {
            Serving::Transport => "strata_raft::transport::serve (as a node runs it)",
            Serving::NoDelay => "router with TCP_NODELAY on accepted connections (diagnostic)",
        },
        if r.nodes.liveness {
            "on"
        } else {
            "off (diagnostic)"
        },
    );
    out
}

fn ms_brief(p: &Percentiles) -> String {
    format!("p50 {:.2} ms · max {:.2} ms", millis(p.p50), millis(p.max))
}

/// Percentiles as "p50 / p99 / p999" in microseconds (for progress lines).
pub fn brief(p: &Percentiles) -> String {
    format!(
        "p50 {} / p99 {} / p999 {} µs",
        us(p.p50),
        us(p.p99),
        us(p.p999)
    )
}
