//! `storage_latency`: the hdrhistogram latency harness of the storage layer.
//!
//! Measures, on the real disk under `target/bench-tmp` (or `--dir`), and prints a markdown
//! table with each figure beside its target:
//! - baseline B: a loop of 64 KiB `pwrite` + `fdatasync` (throughput, fdatasync percentiles);
//! - group commit: 16 appenders sharing one log, each waiting for durability before appending
//!   again (throughput, append-to-durable percentiles);
//! - random reads by offset in a 1 GiB log on a warm page cache;
//! - `Log::open` after a clean close and after a crash (a drop without close) with a 1 GiB tail.
//!
//! Usage: `storage_latency [--quick] [--dir PATH] [--seed N]`. `--quick` runs small sizes for a
//! smoke test. Every file it writes is removed before it exits.

// The binary's crate root sits in `src/bin/`, so its modules are named by path.
#[path = "storage_latency/report.rs"]
mod report;
#[path = "storage_latency/scenarios.rs"]
mod scenarios;

use anyhow::{Context, Result, bail};
use scenarios::Sizes;
use std::path::PathBuf;
use strata_benches::scratch::bench_root;
use strata_benches::workload::{RECORDS_PER_BATCH, VALUE_BYTES, record_batch};

const USAGE: &str = "usage: storage_latency [--quick] [--dir PATH] [--seed N]
  --quick     small sizes (a smoke run of a few seconds)
  --dir PATH  where to write (default: target/bench-tmp, or $STRATA_BENCH_DIR)
  --seed N    seed of the random read offsets (default: from the clock, printed)";

/// Parsed command line.
struct Args {
    quick: bool,
    dir: PathBuf,
    seed: u64,
}

fn parse_args() -> Result<Option<Args>> {
    let mut args = Args {
        quick: false,
        dir: bench_root(),
        seed: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--dir" => args.dir = PathBuf::from(it.next().context("--dir needs a path")?),
            "--seed" => {
                args.seed = it
                    .next()
                    .context("--seed needs a number")?
                    .parse()
                    .context("--seed needs a number")?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(Some(args))
}

fn main() -> Result<()> {
    let Some(args) = parse_args()? else {
        return Ok(());
    };
    let sizes = if args.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let batch = record_batch();
    let root = &args.dir;
    eprintln!(
        "storage_latency: {} run in {} ({} records of {VALUE_BYTES}-byte values per batch, {} bytes per batch), seed {}",
        if args.quick { "quick" } else { "full" },
        root.display(),
        RECORDS_PER_BATCH,
        batch.len(),
        args.seed
    );

    eprintln!(
        "baseline B: {} rounds of pwrite + fdatasync",
        sizes.sync_loop_iterations
    );
    let sync_loop = scenarios::sync_loop(root, &batch, sizes.sync_loop_iterations)?;
    eprintln!(
        "group commit: {} appenders for {:?}",
        sizes.appender_threads, sizes.group_commit_duration
    );
    let group_commit = scenarios::group_commit(
        root,
        &batch,
        sizes.appender_threads,
        sizes.group_commit_duration,
        sizes.group_commit_bytes_max,
    )?;
    eprintln!(
        "random reads: writing a {} MiB log, then {} reads twice; then clean reopens",
        sizes.log_bytes >> 20,
        sizes.random_reads
    );
    let (random_reads, clean_reopen) =
        scenarios::random_reads_and_clean_reopen(root, &batch, &sizes, args.seed)?;
    eprintln!("crash reopen, tail flushed before the crash");
    let crash_flushed =
        scenarios::crash_reopen(root, &batch, sizes.log_bytes, sizes.crash_reopens, true)?;
    eprintln!("crash reopen, tail dirty in the page cache");
    let crash_unflushed = scenarios::crash_reopen(root, &batch, sizes.log_bytes, 1, false)?;

    let results = report::Results {
        sync_loop,
        group_commit,
        random_reads,
        clean_reopen,
        crash_flushed,
        crash_unflushed,
    };
    print!("{}", report::render(&results));
    Ok(())
}
