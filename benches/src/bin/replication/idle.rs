//! Idle CPU: many replicated partitions with leaders and nothing to write. Measures how long
//! bringing them up takes, then the process's CPU time over an idle window, then how long
//! closing them takes.

use crate::cluster::{Cluster, NODES, NodeOptions};
use anyhow::{Context, Result};
use bytes::Bytes;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_benches::counting_disk::DiskCounts;
use strata_benches::cpu::{ThreadCpu, process_cpu_time, resident_bytes};
use strata_benches::stats::{Percentiles, latency_histogram, record};
use strata_raft::transport::ServerCounts;

/// What the idle phase measured.
#[derive(Debug, Clone)]
pub struct IdleResult {
    /// Partitions (each a Raft group with a replica on every node).
    pub partitions: usize,
    /// Replicas opened or initialized at a time.
    pub concurrency: usize,
    /// Opening every replica on every node (logs created, Raft groups started).
    pub open: Duration,
    /// Initializing every group, electing, until every partition had a ready leader.
    pub elect: Duration,
    /// Until every replica had applied its leader's last entry.
    pub settle: Duration,
    /// Then until every replica slept (the liveness ticker puts a group to sleep after
    /// `LivenessConfig::idle_ms` without client activity); `None` without liveness tickers.
    pub fall_asleep: Option<Duration>,
    /// Partitions led by each node when the window started.
    pub leader_counts: [usize; NODES],
    /// Wall time of the idle window.
    pub window: Duration,
    /// Process CPU time (user + system) over the window.
    pub cpu: Duration,
    /// CPU time over the window by thread name (threads alive at its end).
    pub threads: BTreeMap<String, Duration>,
    /// What the three peer servers received over the window.
    pub received: ServerCounts,
    /// Disk operations of the three nodes over the window.
    pub disk: DiskCounts,
    /// Sum of all replicas' terms at the end minus at the start (0: no election).
    pub term_increase: u64,
    /// Partitions whose replicas all named the same leader at the end of the window.
    pub agreed_leaders: usize,
    /// Replicas asleep at the end of the window.
    pub asleep: usize,
    /// After the window: the first `acks=all` write to each of some idle partitions, one at a
    /// time (when they sleep: wake the leader, renew its lease with a heartbeat round, commit).
    pub wake_writes: Percentiles,
    /// Resident memory of the process at the end of the window.
    pub resident_bytes: Option<u64>,
    /// Closing every replica, the servers and flushers, and deleting the data.
    pub shutdown: Duration,
}

impl IdleResult {
    /// CPU over the window as a fraction of one core.
    pub fn core_fraction(&self) -> f64 {
        self.cpu.as_secs_f64() / self.window.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Partitions written after the idle window to time the first write to a sleeping group.
const WAKE_WRITES: usize = 16;

/// How long every replica may take to fall asleep.
const FALL_ASLEEP_MAX: Duration = Duration::from_secs(120);

/// Brings up `partitions` replicated partitions under `dir` (`concurrency` at a time), waits
/// until each has a ready leader, every replica caught up and every replica sleeps, measures
/// an idle window of `idle`, writes `batch` once to a few idle partitions, and closes
/// everything. The nodes run as `options` says; without liveness tickers nothing sleeps and
/// the wait for sleep is skipped.
pub async fn idle_cpu(
    dir: &Path,
    partitions: usize,
    idle: Duration,
    concurrency: usize,
    options: NodeOptions,
    batch: Bytes,
) -> Result<IdleResult> {
    let t = Instant::now();
    let cluster = Arc::new(Cluster::open(dir, partitions, concurrency, options).await?);
    let open = t.elapsed();
    eprintln!("  opened {} replicas in {open:.1?}", partitions * NODES);
    let t = Instant::now();
    cluster.elect_all(concurrency).await?;
    let elect = t.elapsed();
    eprintln!("  {partitions} groups initialized with ready leaders in {elect:.1?}");
    let t = Instant::now();
    cluster.wait_caught_up().await?;
    let settle = t.elapsed();
    let leader_counts = cluster.leader_counts();
    let t = Instant::now();
    let fall_asleep = if options.liveness {
        cluster.wait_all_asleep(FALL_ASLEEP_MAX).await?;
        eprintln!("  every replica asleep {:.1?} later", t.elapsed());
        Some(t.elapsed())
    } else {
        None
    };

    let threads_before = ThreadCpu::now()?;
    let received_before = cluster.server_counts();
    let disk_before = cluster.disk_counts();
    let terms_before = cluster.term_sum();
    let cpu_before = process_cpu_time()?;
    let at = Instant::now();
    eprintln!("  idle window of {idle:?}");
    tokio::time::sleep(idle).await;
    let cpu = process_cpu_time()?.saturating_sub(cpu_before);
    let window = at.elapsed();
    let threads = ThreadCpu::now()?.since(&threads_before);
    let received = difference(&cluster.server_counts(), &received_before);
    let disk = cluster.disk_counts().since(&disk_before);
    let term_increase = cluster.term_sum().saturating_sub(terms_before);
    let agreed_leaders = cluster.agreed_leaders();
    let asleep = cluster.asleep();
    let resident_bytes = resident_bytes();
    let mut wake = latency_histogram();
    for p in 0..partitions.min(WAKE_WRITES) {
        let sent = Instant::now();
        cluster
            .append(p, batch.clone())
            .await
            .with_context(|| format!("write to sleeping partition {p}"))?;
        record(&mut wake, sent.elapsed());
    }
    let wake_writes = Percentiles::of(&wake);

    let t = Instant::now();
    let cluster = Arc::try_unwrap(cluster)
        .ok()
        .context("the cluster is still shared")?;
    cluster.shutdown(concurrency).await?;
    let shutdown = t.elapsed();
    Ok(IdleResult {
        partitions,
        concurrency,
        open,
        elect,
        settle,
        fall_asleep,
        leader_counts,
        window,
        cpu,
        threads,
        received,
        disk,
        term_increase,
        agreed_leaders,
        asleep,
        wake_writes,
        resident_bytes,
        shutdown,
    })
}

fn difference(after: &ServerCounts, before: &ServerCounts) -> ServerCounts {
    ServerCounts {
        votes: after.votes - before.votes,
        appends: after.appends - before.appends,
        append_streams: after.append_streams - before.append_streams,
        heartbeat_batches: after.heartbeat_batches - before.heartbeat_batches,
        heartbeats: after.heartbeats - before.heartbeats,
        snapshots: after.snapshots - before.snapshots,
        transfers: after.transfers - before.transfers,
        rejected: after.rejected - before.rejected,
    }
}
