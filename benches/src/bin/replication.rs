//! `replication`: the benchmark harness of strata-raft.
//!
//! Three nodes in one process, each with its own data directory on the real disk (under
//! `target/bench-tmp`, or `--dir`), its own flusher, and its own peer server on 127.0.0.1:0;
//! every partition is a Raft group with a replica on each node (replication factor 3), and
//! every replica fsyncs an entry before it counts toward the majority. Default partition
//! timing (heartbeat 300 ms, election timeout 1.5-3 s) and transport limits.
//!
//! Phases (`--phases`, all by default):
//! - `throughput`: closed-loop writers (1, 16 and 256, each with one append in flight) on 1 and
//!   16 partitions, with producer batches of 1 record (the latency figure) and of 16 records
//!   (batched), `acks=all`: records/s, MB/s, commit latency p50/p99/p999.
//! - `rate`: an open-loop fixed rate (`--rate`, 5,000 records/s, 1 record per batch) on 1 and
//!   16 partitions, latency from each send's scheduled instant.
//! - `idle`: `--idle-partitions` (1,000) replicated partitions with leaders and no load; process
//!   CPU time (`getrusage`) over `--idle-secs` (60).
//!
//! Records have a 16-byte key and a 1 KiB value. Each phase's data is deleted when it ends.
//! Two diagnostics change how the nodes run (`cluster::NodeOptions`): `--server-nodelay` serves
//! the peer service with TCP_NODELAY on accepted connections instead of through
//! `strata_raft::transport::serve`, and `--no-liveness` runs no liveness tickers (idle groups
//! never sleep).
//!
//! Usage: `replication [--quick] [--dir PATH] [--seed N] [--duration S] [--warmup S]
//! [--rate N] [--idle-partitions N] [--idle-secs S] [--concurrency N] [--phases LIST]
//! [--server-nodelay] [--no-liveness]`.

// The binary's crate root sits in `src/bin/`, so its modules are named by path.
#[path = "replication/cluster.rs"]
mod cluster;
#[path = "replication/idle.rs"]
mod idle;
#[path = "replication/load.rs"]
mod load;
#[path = "replication/report.rs"]
mod report;

use anyhow::{Context, Result, bail, ensure};
use cluster::{Cluster, NodeOptions, Serving};
use load::{Window, Workload};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_benches::scratch::{bench_root, scratch_dir};
use strata_benches::workload::keyed_batches;

const USAGE: &str = "usage: replication [options]
  --quick               smoke run: short windows, 20 idle partitions for 2 s
  --dir PATH            where to write (default: target/bench-tmp, or $STRATA_BENCH_DIR)
  --seed N              seed of the record contents (default: from the clock, printed)
  --duration S          measured seconds per throughput cell and fixed-rate run (default 10)
  --warmup S            unmeasured seconds before each (default 2)
  --rate N              records/s of the fixed-rate run (default 5000)
  --idle-partitions N   partitions of the idle phase (default 1000)
  --idle-secs S         idle window in seconds (default 60)
  --concurrency N       replicas opened / groups initialized at a time (default 32)
  --writers LIST        writer counts of the throughput cells (default 1,16,256)
  --partitions LIST     partition counts of the cells and fixed-rate runs (default 1,16)
  --records-per-batch LIST  batch sizes of the cells; the first is also the fixed-rate
                        runs' (default 1,16)
  --phases LIST         comma-separated: throughput,rate,idle (default all)
  --server-nodelay      diagnostic: serve the peer service with TCP_NODELAY on accepted
                        connections (strata_raft::transport::serve leaves them without it)
  --no-liveness         diagnostic: no liveness tickers, so idle groups never sleep";

/// Writer counts of the throughput cells.
const WRITERS: [usize; 3] = [1, 16, 256];
/// Partition counts of the throughput cells and fixed-rate runs.
const PARTITIONS: [usize; 2] = [1, 16];
/// Records per producer batch: 1 (the latency figure) and a batched variant. The fixed-rate
/// runs use the first.
const RECORDS_PER_BATCH: [usize; 2] = [1, 16];
/// Distinct batches built per variant (writers take them in turn).
const BATCHES_PER_WORKLOAD: usize = 256;

/// Parsed command line.
struct Args {
    quick: bool,
    dir: PathBuf,
    seed: u64,
    window: Window,
    rate: u64,
    idle_partitions: usize,
    idle: Duration,
    concurrency: usize,
    writers: Vec<usize>,
    partitions: Vec<usize>,
    records_per_batch: Vec<usize>,
    throughput: bool,
    fixed_rate: bool,
    idle_phase: bool,
    nodes: NodeOptions,
}

fn seconds(v: Option<String>, flag: &str) -> Result<Duration> {
    let s: f64 = v
        .with_context(|| format!("{flag} needs seconds"))?
        .parse()
        .with_context(|| format!("{flag} needs seconds"))?;
    ensure!(s.is_finite() && s >= 0.0, "{flag} needs seconds");
    Ok(Duration::from_secs_f64(s))
}

fn number<T: std::str::FromStr>(v: Option<String>, flag: &str) -> Result<T> {
    v.with_context(|| format!("{flag} needs a number"))?
        .parse()
        .ok()
        .with_context(|| format!("{flag} needs a number"))
}

fn numbers(v: Option<String>, flag: &str) -> Result<Vec<usize>> {
    let list = v.with_context(|| format!("{flag} needs a comma-separated list"))?;
    let numbers = list
        .split(',')
        .map(|n| n.parse::<usize>().ok().filter(|n| *n > 0))
        .collect::<Option<Vec<_>>>()
        .with_context(|| format!("{flag} needs positive numbers, got {list:?}"))?;
    ensure!(!numbers.is_empty(), "{flag} needs at least one number");
    Ok(numbers)
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        quick: false,
        dir: bench_root(),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        window: Window {
            warmup: Duration::from_secs(2),
            duration: Duration::from_secs(10),
        },
        rate: 5_000,
        idle_partitions: 1_000,
        idle: Duration::from_secs(60),
        concurrency: 32,
        writers: WRITERS.to_vec(),
        partitions: PARTITIONS.to_vec(),
        records_per_batch: RECORDS_PER_BATCH.to_vec(),
        throughput: true,
        fixed_rate: true,
        idle_phase: true,
        nodes: NodeOptions::default(),
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    if raw.iter().any(|a| a == "--quick") {
        // Quick defaults first, so explicit options below still override them.
        args.quick = true;
        args.window = Window {
            warmup: Duration::from_millis(200),
            duration: Duration::from_millis(300),
        };
        args.idle_partitions = 20;
        args.idle = Duration::from_secs(2);
    }
    let mut it = raw.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => {}
            "--server-nodelay" => args.nodes.serving = Serving::NoDelay,
            "--no-liveness" => args.nodes.liveness = false,
            "--dir" => args.dir = PathBuf::from(it.next().context("--dir needs a path")?),
            "--seed" => args.seed = number(it.next(), "--seed")?,
            "--duration" => args.window.duration = seconds(it.next(), "--duration")?,
            "--warmup" => args.window.warmup = seconds(it.next(), "--warmup")?,
            "--rate" => args.rate = number(it.next(), "--rate")?,
            "--idle-partitions" => args.idle_partitions = number(it.next(), "--idle-partitions")?,
            "--idle-secs" => args.idle = seconds(it.next(), "--idle-secs")?,
            "--concurrency" => args.concurrency = number(it.next(), "--concurrency")?,
            "--writers" => args.writers = numbers(it.next(), "--writers")?,
            "--partitions" => args.partitions = numbers(it.next(), "--partitions")?,
            "--records-per-batch" => {
                args.records_per_batch = numbers(it.next(), "--records-per-batch")?;
            }
            "--phases" => {
                let list = it.next().context("--phases needs a list")?;
                (args.throughput, args.fixed_rate, args.idle_phase) = (false, false, false);
                for phase in list.split(',') {
                    match phase {
                        "throughput" => args.throughput = true,
                        "rate" => args.fixed_rate = true,
                        "idle" => args.idle_phase = true,
                        other => bail!("unknown phase {other:?}\n{USAGE}"),
                    }
                }
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    ensure!(args.rate > 0, "--rate must be positive");
    ensure!(args.concurrency > 0, "--concurrency must be positive");
    ensure!(
        args.idle_partitions > 0,
        "--idle-partitions must be positive"
    );
    Ok(Some(args))
}

fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let scratch = scratch_dir(&args.dir)?;
    eprintln!(
        "replication: {} run in {}, seed {}, windows {:?} after {:?} warm-up, nodes {:?}",
        if args.quick { "quick" } else { "full" },
        scratch.path().display(),
        args.seed,
        args.window.duration,
        args.window.warmup,
        args.nodes,
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strata-rt")
        .build()?;
    let results = runtime.block_on(run(&args, scratch.path()))?;
    drop(runtime);
    print!("{}", report::render(&results));
    eprintln!("seed {}", args.seed);
    scratch.close().context("remove the scratch directory")?;
    Ok(())
}

async fn run(args: &Args, root: &Path) -> Result<report::Results> {
    let mut results = report::Results {
        nodes: args.nodes,
        ..report::Results::default()
    };
    let timestamp_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let workloads: Vec<Arc<Workload>> = args
        .records_per_batch
        .iter()
        .enumerate()
        .map(|(i, &records_per_batch)| {
            Arc::new(Workload {
                records_per_batch,
                batches: keyed_batches(
                    records_per_batch,
                    BATCHES_PER_WORKLOAD,
                    args.seed.wrapping_add(i as u64),
                    timestamp_ms,
                ),
            })
        })
        .collect();
    if args.throughput || args.fixed_rate {
        for &partitions in &args.partitions {
            let dir = root.join(format!("load-{partitions}-partitions"));
            let t = Instant::now();
            let cluster = Cluster::open(&dir, partitions, args.concurrency, args.nodes).await?;
            let cluster = Arc::new(cluster);
            cluster.elect_all(args.concurrency).await?;
            eprintln!(
                "{partitions} partitions up in {:.1?}; leaders per node {:?}",
                t.elapsed(),
                cluster.leader_counts()
            );
            if args.throughput {
                throughput_cells(args, &cluster, &workloads, &mut results).await?;
            }
            if args.fixed_rate {
                let r =
                    load::fixed_rate(&cluster, &workloads[0], partitions, args.rate, args.window)
                        .await?;
                eprintln!(
                    "  rate {}/s on {partitions} partitions: {}",
                    args.rate,
                    report::brief(&r.latency)
                );
                results.rates.push(r);
            }
            let cluster = Arc::try_unwrap(cluster)
                .ok()
                .context("the cluster is still shared")?;
            cluster.shutdown(args.concurrency).await?;
        }
    }
    if args.idle_phase {
        eprintln!("idle: {} partitions", args.idle_partitions);
        let dir = root.join("idle");
        results.idle = Some(
            idle::idle_cpu(
                &dir,
                args.idle_partitions,
                args.idle,
                args.concurrency,
                args.nodes,
                workloads[0].batches[0].clone(),
            )
            .await?,
        );
    }
    Ok(results)
}

async fn throughput_cells(
    args: &Args,
    cluster: &Arc<Cluster>,
    workloads: &[Arc<Workload>],
    results: &mut report::Results,
) -> Result<()> {
    let partitions = cluster.partitions();
    for workload in workloads {
        for &writers in &args.writers {
            let cell = load::closed_loop(cluster, workload, writers, partitions, args.window)
                .await
                .with_context(|| {
                    format!(
                        "{writers} writers on {partitions} partitions, {} records per batch",
                        workload.records_per_batch
                    )
                })?;
            eprintln!(
                "  {partitions} partitions, {writers} writers, {} records per batch ({} bytes): {:.0} records/s, {}",
                workload.records_per_batch,
                workload.batch_bytes(),
                cell.records() as f64 / cell.duration.as_secs_f64(),
                report::brief(&cell.latency)
            );
            results.cells.push(cell);
        }
    }
    Ok(())
}
