//! The two load generators: closed-loop writers (each with one append in flight, as many as the
//! cell says) and an open-loop fixed rate (sends scheduled at the rate and timed from their
//! scheduled instant, so a stall is charged to every send it delayed: no coordinated
//! omission).

use crate::cluster::Cluster;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use strata_benches::counting_disk::DiskCounts;
use strata_benches::cpu::{process_context_switches, process_cpu_time};
use strata_benches::stats::{Percentiles, latency_histogram, record};
use strata_raft::error::PartitionError;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Most sends of the open-loop generator allowed in flight at once; past it the cluster is
/// not keeping up with the rate and the run stops (reported as overloaded).
const IN_FLIGHT_MAX: usize = 100_000;

/// Producer batches to send, all with the same number of records; writers take them in turn.
#[derive(Debug)]
pub struct Workload {
    /// Records in every batch.
    pub records_per_batch: usize,
    /// The batches (distinct contents, built once before the run: building a batch is the
    /// producer's work, not the cluster's).
    pub batches: Vec<Bytes>,
}

impl Workload {
    /// Mean bytes of one batch.
    pub fn batch_bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum::<usize>() / self.batches.len().max(1)
    }

    fn batch(&self, i: usize) -> Bytes {
        self.batches[i % self.batches.len()].clone()
    }
}

/// When a run measures: after `warmup`, for `duration`.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// Load runs but is not measured.
    pub warmup: Duration,
    /// The measured span.
    pub duration: Duration,
}

/// Process CPU time, disk counters and wall time over a measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Wall time between the two probes.
    pub wall: Duration,
    /// Process CPU time (user + system) between them.
    pub cpu: Duration,
    /// Context switches of the process between them.
    pub context_switches: u64,
    /// Disk operations of the three nodes between them.
    pub disk: DiskCounts,
}

/// A probe at the start of a window; [`Probe::finish`] gives the [`Usage`] since.
struct Probe {
    at: Instant,
    cpu: Duration,
    context_switches: u64,
    disk: DiskCounts,
}

impl Probe {
    fn start(cluster: &Cluster) -> Result<Probe> {
        Ok(Probe {
            at: Instant::now(),
            cpu: process_cpu_time()?,
            context_switches: process_context_switches()?,
            disk: cluster.disk_counts(),
        })
    }

    fn finish(&self, cluster: &Cluster) -> Result<Usage> {
        Ok(Usage {
            wall: self.at.elapsed(),
            cpu: process_cpu_time()?.saturating_sub(self.cpu),
            context_switches: process_context_switches()?.saturating_sub(self.context_switches),
            disk: cluster.disk_counts().since(&self.disk),
        })
    }
}

/// The [`Usage`] between `from` and `to` (the two readings bound a measurement span; this is
/// not a wait for a condition).
async fn window_usage(cluster: Arc<Cluster>, from: Instant, to: Instant) -> Result<Usage> {
    tokio::time::sleep_until(from.into()).await;
    let probe = Probe::start(&cluster)?;
    tokio::time::sleep_until(to.into()).await;
    probe.finish(&cluster)
}

/// The outcome of one closed-loop cell.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// Partitions written.
    pub partitions: usize,
    /// Concurrent writers (each with one append in flight).
    pub writers: usize,
    /// Records per producer batch (one append).
    pub records_per_batch: usize,
    /// Appends acknowledged within the window.
    pub appends: u64,
    /// Bytes of those batches.
    pub bytes: u64,
    /// The measured window.
    pub duration: Duration,
    /// Append-to-acknowledgement latency of those appends.
    pub latency: Percentiles,
    /// `NotLeader` redirections followed (any time in the run).
    pub redirects: u64,
    /// Appends answered `Indeterminate` (any time in the run).
    pub indeterminate: u64,
    /// CPU and disk over the window.
    pub usage: Usage,
}

impl CellResult {
    /// Records acknowledged within the window.
    pub fn records(&self) -> u64 {
        self.appends * self.records_per_batch as u64
    }
}

/// What one closed-loop writer saw.
struct Tally {
    latency: Histogram<u64>,
    appends: u64,
    bytes: u64,
    redirects: u64,
    indeterminate: u64,
}

/// Runs `writers` closed-loop writers for the window; writer `w` writes partition
/// `w % partitions` at its leader with `acks=all`. An append counts if it is acknowledged within
/// the window; its latency runs from the first attempt (redirections included).
pub async fn closed_loop(
    cluster: &Arc<Cluster>,
    workload: &Arc<Workload>,
    writers: usize,
    partitions: usize,
    window: Window,
) -> Result<CellResult> {
    let from = Instant::now() + window.warmup;
    let to = from + window.duration;
    let mut tasks = JoinSet::new();
    for w in 0..writers {
        let (cluster, workload) = (cluster.clone(), workload.clone());
        tasks.spawn(async move { write(&cluster, &workload, w, w % partitions, from, to).await });
    }
    let usage = window_usage(cluster.clone(), from, to).await?;
    let mut total = Tally::new();
    while let Some(done) = tasks.join_next().await {
        let tally = done?.context("a writer failed")?;
        total.merge(&tally)?;
    }
    Ok(CellResult {
        partitions,
        writers,
        records_per_batch: workload.records_per_batch,
        appends: total.appends,
        bytes: total.bytes,
        duration: window.duration,
        latency: Percentiles::of(&total.latency),
        redirects: total.redirects,
        indeterminate: total.indeterminate,
        usage,
    })
}

impl Tally {
    fn new() -> Tally {
        Tally {
            latency: latency_histogram(),
            appends: 0,
            bytes: 0,
            redirects: 0,
            indeterminate: 0,
        }
    }

    fn merge(&mut self, other: &Tally) -> Result<()> {
        self.latency
            .add(&other.latency)
            .context("merge latency histograms")?;
        self.appends += other.appends;
        self.bytes += other.bytes;
        self.redirects += other.redirects;
        self.indeterminate += other.indeterminate;
        Ok(())
    }
}

async fn write(
    cluster: &Cluster,
    workload: &Workload,
    w: usize,
    p: usize,
    from: Instant,
    to: Instant,
) -> Result<Tally> {
    let mut tally = Tally::new();
    // Writers start at different batches so that concurrent appends carry different bytes.
    let mut next = w;
    while Instant::now() < to {
        let batch = workload.batch(next);
        next += 1;
        let len = batch.len() as u64;
        let sent = Instant::now();
        match cluster.append(p, batch).await {
            Ok((_, routed)) => {
                let done = Instant::now();
                tally.redirects += u64::from(routed.redirects);
                if done >= from && done < to {
                    record(&mut tally.latency, done - sent);
                    tally.appends += 1;
                    tally.bytes += len;
                }
            }
            Err(PartitionError::Indeterminate { .. }) => tally.indeterminate += 1,
            Err(e) => bail!("append to partition {p} failed: {e}"),
        }
    }
    Ok(tally)
}

/// The outcome of an open-loop run.
#[derive(Debug, Clone)]
pub struct RateResult {
    /// Partitions written (sends go round-robin).
    pub partitions: usize,
    /// Sends scheduled per second.
    pub rate: u64,
    /// Records per producer batch (one send).
    pub records_per_batch: usize,
    /// Sends scheduled within the measured window.
    pub scheduled: u64,
    /// Of those, acknowledged.
    pub acknowledged: u64,
    /// Of those, answered `Indeterminate`.
    pub indeterminate: u64,
    /// The measured window.
    pub duration: Duration,
    /// From the scheduled instant to the acknowledgement (the figure held to the target).
    pub latency: Percentiles,
    /// From the actual send to the acknowledgement (diagnostic).
    pub service: Percentiles,
    /// How late the generator sent, after the scheduled instant (diagnostic: part of
    /// `latency`, caused by the generator's thread not getting a core in time).
    pub lateness: Percentiles,
    /// Whether the run stopped because more than `IN_FLIGHT_MAX` sends were in flight.
    pub overloaded: bool,
    /// CPU and disk over the window.
    pub usage: Usage,
}

/// What one open-loop send reports.
struct Outcome {
    due: Instant,
    sent: Instant,
    done: Instant,
    result: Result<(), PartitionError>,
}

/// What the pacer thread reports.
struct Paced {
    lateness: Histogram<u64>,
    overloaded: bool,
}

/// Sends `rate` batches per second for the window, round-robin over `partitions`, each at its
/// partition's leader with `acks=all`. A dedicated thread paces the sends (`thread::sleep` until
/// each scheduled instant, far finer than tokio's 1 ms timer) and spawns each onto the runtime;
/// latency is measured from the scheduled instant.
pub async fn fixed_rate(
    cluster: &Arc<Cluster>,
    workload: &Arc<Workload>,
    partitions: usize,
    rate: u64,
    window: Window,
) -> Result<RateResult> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Outcome>();
    let start = Instant::now() + Duration::from_millis(10);
    let from = start + window.warmup;
    let to = from + window.duration;
    let pacer = {
        let (cluster, workload) = (cluster.clone(), workload.clone());
        let runtime = tokio::runtime::Handle::current();
        let plan = Plan {
            partitions,
            rate,
            start,
            to,
        };
        tokio::task::spawn_blocking(move || pace(&runtime, &cluster, &workload, plan, tx))
    };
    let mut latency = latency_histogram();
    let mut service = latency_histogram();
    let (mut scheduled, mut acknowledged, mut indeterminate) = (0, 0, 0);
    let usage = tokio::spawn(window_usage(cluster.clone(), from, to));
    // Every send holds a sender: the channel closes once the pacer and all sends are done.
    while let Some(o) = rx.recv().await {
        if o.due < from {
            continue;
        }
        scheduled += 1;
        match o.result {
            Ok(()) => {
                acknowledged += 1;
                record(&mut latency, o.done - o.due);
                record(&mut service, o.done - o.sent);
            }
            Err(PartitionError::Indeterminate { .. }) => indeterminate += 1,
            Err(e) => bail!("append failed: {e}"),
        }
    }
    let usage = usage.await??;
    let paced = pacer.await?;
    Ok(RateResult {
        partitions,
        rate,
        records_per_batch: workload.records_per_batch,
        scheduled,
        acknowledged,
        indeterminate,
        duration: window.duration,
        latency: Percentiles::of(&latency),
        service: Percentiles::of(&service),
        lateness: Percentiles::of(&paced.lateness),
        overloaded: paced.overloaded,
        usage,
    })
}

/// The schedule of the pacer: send `i` is due at `start + i / rate`, until `to`.
struct Plan {
    partitions: usize,
    rate: u64,
    start: Instant,
    to: Instant,
}

fn pace(
    runtime: &tokio::runtime::Handle,
    cluster: &Arc<Cluster>,
    workload: &Arc<Workload>,
    plan: Plan,
    tx: mpsc::UnboundedSender<Outcome>,
) -> Paced {
    let in_flight = Arc::new(AtomicUsize::new(0));
    let mut paced = Paced {
        lateness: latency_histogram(),
        overloaded: false,
    };
    let interval = Duration::from_secs(1).as_nanos() as u64 / plan.rate.max(1);
    for i in 0u64.. {
        let due = plan.start + Duration::from_nanos(i * interval);
        if due >= plan.to {
            break;
        }
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if in_flight.fetch_add(1, Ordering::Relaxed) >= IN_FLIGHT_MAX {
            paced.overloaded = true;
            break;
        }
        let sent = Instant::now();
        record(&mut paced.lateness, sent - due);
        let p = (i % plan.partitions as u64) as usize;
        let batch = workload.batch(i as usize);
        let (cluster, tx, in_flight) = (cluster.clone(), tx.clone(), in_flight.clone());
        runtime.spawn(async move {
            let result = cluster.append(p, batch).await.map(|_| ());
            let done = Instant::now();
            in_flight.fetch_sub(1, Ordering::Relaxed);
            // Release the cluster before the last sender goes: once the channel closes the
            // caller may take the cluster back to shut it down.
            drop(cluster);
            let _ = tx.send(Outcome {
                due,
                sent,
                done,
                result,
            });
        });
    }
    paced
}
