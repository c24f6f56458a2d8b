//! The measured scenarios: each makes its own scratch directory, measures, and removes it.

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use hdrhistogram::Histogram;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::time::{Duration, Instant};
use strata_benches::scratch::{
    dirty_page_cache_bytes, page_cache_residency, preallocated_file, scratch_dir,
};
use strata_benches::stats::{Percentiles, latency_histogram, record};
use strata_benches::workload::{
    RECORDS_PER_BATCH, fill_log, frame_len, log_config, next_entry, splitmix64,
};
use strata_log::{Flusher, Log, Offset, RealDisk};

/// How big each scenario is.
#[derive(Debug, Clone)]
pub struct Sizes {
    /// Bytes of frames in the logs of the read and reopen scenarios.
    pub log_bytes: u64,
    /// Random reads to time.
    pub random_reads: u64,
    /// pwrite + fdatasync rounds of the baseline loop.
    pub sync_loop_iterations: u64,
    /// Appender threads of the group-commit scenario.
    pub appender_threads: usize,
    /// How long the group-commit scenario appends.
    pub group_commit_duration: Duration,
    /// The group-commit scenario stops early once this many bytes are appended.
    pub group_commit_bytes_max: u64,
    /// Timed opens after a clean close.
    pub clean_reopens: usize,
    /// Timed opens after a crash with a flushed tail.
    pub crash_reopens: usize,
}

impl Sizes {
    /// The sizes of the issue: 1 GiB logs, 100k random reads, 16 appenders.
    pub fn full() -> Sizes {
        Sizes {
            log_bytes: 1 << 30,
            random_reads: 100_000,
            sync_loop_iterations: 5_000,
            appender_threads: 16,
            group_commit_duration: Duration::from_secs(5),
            group_commit_bytes_max: 2 << 30,
            clean_reopens: 5,
            crash_reopens: 3,
        }
    }

    /// Small sizes for a smoke run (a test runs the binary with `--quick`).
    pub fn quick() -> Sizes {
        Sizes {
            log_bytes: 8 << 20,
            random_reads: 1_000,
            sync_loop_iterations: 50,
            appender_threads: 16,
            group_commit_duration: Duration::from_millis(200),
            group_commit_bytes_max: 16 << 20,
            clean_reopens: 1,
            crash_reopens: 1,
        }
    }
}

/// Baseline B: a loop of one 64 KiB `pwrite` and one `fdatasync`.
#[derive(Debug, Clone)]
pub struct SyncLoop {
    /// Bytes written.
    pub bytes: u64,
    /// Wall time of the whole loop.
    pub elapsed: Duration,
    /// Latency of each `fdatasync`.
    pub fdatasync: Percentiles,
}

/// Baseline B: `iterations` rounds of `pwrite` of `batch` then `fdatasync`, into a file
/// preallocated with `fallocate` (as the log's segments are).
pub fn sync_loop(root: &Path, batch: &[u8], iterations: u64) -> Result<SyncLoop> {
    let dir = scratch_dir(root).context("create the scratch directory")?;
    let path = dir.path().join("pwrite-fdatasync.dat");
    let len = batch.len() as u64;
    let file = preallocated_file(&path, iterations * len).context("preallocate the file")?;
    // The allocation itself is made durable first, so the first round does not carry it.
    file.sync_all().context("fsync the preallocated file")?;
    let mut histogram = latency_histogram();
    let start = Instant::now();
    for i in 0..iterations {
        file.write_all_at(batch, i * len).context("pwrite")?;
        let sync_start = Instant::now();
        file.sync_data().context("fdatasync")?;
        record(&mut histogram, sync_start.elapsed());
    }
    let elapsed = start.elapsed();
    Ok(SyncLoop {
        bytes: iterations * len,
        elapsed,
        fdatasync: Percentiles::of(&histogram),
    })
}

/// Group commit: appenders sharing one log, each waiting for durability before its next append.
#[derive(Debug, Clone)]
pub struct GroupCommit {
    /// Appender threads.
    pub threads: usize,
    /// Entries appended (and made durable).
    pub appends: u64,
    /// Payload bytes appended.
    pub bytes: u64,
    /// From releasing the appenders to the last one seeing its last append durable.
    pub elapsed: Duration,
    /// From just before taking the log's mutex to the flush callback of that append.
    pub append_to_durable: Percentiles,
    /// Part of it: waiting for the log's mutex (other appenders appending).
    pub lock_wait: Percentiles,
    /// Part of it: `append` and `flush` under the mutex.
    pub append_call: Percentiles,
    /// Part of it: from releasing the mutex to the flush callback.
    pub durable_wait: Percentiles,
}

/// Latencies of the appenders of [`group_commit`], one histogram per part.
struct AppenderLatencies {
    total: Histogram<u64>,
    lock_wait: Histogram<u64>,
    append_call: Histogram<u64>,
    durable_wait: Histogram<u64>,
}

impl AppenderLatencies {
    fn new() -> AppenderLatencies {
        AppenderLatencies {
            total: latency_histogram(),
            lock_wait: latency_histogram(),
            append_call: latency_histogram(),
            durable_wait: latency_histogram(),
        }
    }

    fn add(&mut self, other: &AppenderLatencies) -> Result<()> {
        self.total.add(&other.total)?;
        self.lock_wait.add(&other.lock_wait)?;
        self.append_call.add(&other.append_call)?;
        self.durable_wait.add(&other.durable_wait)?;
        Ok(())
    }
}

impl GroupCommit {
    /// Records appended.
    pub fn records(&self) -> u64 {
        self.appends * RECORDS_PER_BATCH as u64
    }
}

/// Group commit: `threads` appenders share one [`Log`] behind a mutex. Each appends `batch`,
/// calls [`Log::flush`] with a callback that signals it, releases the mutex and waits for the
/// signal before its next append, for `duration` or until `bytes_max` bytes are appended.
pub fn group_commit(
    root: &Path,
    batch: &Bytes,
    threads: usize,
    duration: Duration,
    bytes_max: u64,
) -> Result<GroupCommit> {
    let dir = scratch_dir(root).context("create the scratch directory")?;
    let flusher = Flusher::start("bench").context("start the flusher")?;
    let log = Log::open(
        dir.path().join("log"),
        log_config(),
        Arc::new(RealDisk),
        &flusher.handle(),
    )?;
    let log = Arc::new(Mutex::new(log));
    let appended = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut workers = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (log, appended, barrier, batch) = (
            log.clone(),
            appended.clone(),
            barrier.clone(),
            batch.clone(),
        );
        workers.push(std::thread::spawn(move || {
            barrier.wait();
            let deadline = Instant::now() + duration;
            appender(&log, &batch, &appended, deadline, bytes_max)
        }));
    }
    barrier.wait();
    let start = Instant::now();
    let mut latencies = AppenderLatencies::new();
    let mut appends = 0;
    for w in workers {
        let (l, n) = w
            .join()
            .map_err(|_| anyhow::anyhow!("an appender thread panicked"))??;
        latencies.add(&l).context("merge histograms")?;
        appends += n;
    }
    let elapsed = start.elapsed();
    Ok(GroupCommit {
        threads,
        appends,
        bytes: appends * batch.len() as u64,
        elapsed,
        append_to_durable: Percentiles::of(&latencies.total),
        lock_wait: Percentiles::of(&latencies.lock_wait),
        append_call: Percentiles::of(&latencies.append_call),
        durable_wait: Percentiles::of(&latencies.durable_wait),
    })
}

/// One appender of [`group_commit`]: returns its latencies and how many entries it appended.
fn appender(
    log: &Mutex<Log>,
    batch: &[u8],
    appended: &AtomicU64,
    deadline: Instant,
    bytes_max: u64,
) -> Result<(AppenderLatencies, u64)> {
    let mut latencies = AppenderLatencies::new();
    let (durable_tx, durable_rx) = mpsc::channel();
    let mut appends = 0;
    while Instant::now() < deadline && appended.load(Ordering::Relaxed) < bytes_max {
        let start = Instant::now();
        let (locked, unlocked) = {
            let mut log = strata_record::sync::lock(log);
            let locked = Instant::now();
            let entry = next_entry(&log, batch);
            log.append(&[entry])?;
            let tx = durable_tx.clone();
            log.flush(move |r| {
                let _ = tx.send(r);
            });
            (locked, Instant::now())
        };
        durable_rx
            .recv()
            .context("the flusher dropped a completion")??;
        let durable = Instant::now();
        record(&mut latencies.total, durable - start);
        record(&mut latencies.lock_wait, locked - start);
        record(&mut latencies.append_call, unlocked - locked);
        record(&mut latencies.durable_wait, durable - unlocked);
        appended.fetch_add(batch.len() as u64, Ordering::Relaxed);
        appends += 1;
    }
    Ok((latencies, appends))
}

/// Random reads by offset.
#[derive(Debug, Clone)]
pub struct RandomReads {
    /// Bytes of frames in the log read.
    pub log_bytes: u64,
    /// Fraction of the segment in the page cache before the reads.
    pub residency: f64,
    /// Seed of the offsets.
    pub seed: u64,
    /// Latency of each read, before any other read of the log (page cache warm from the
    /// writes, the log's mapping not yet touched, so first touches take minor page faults).
    pub first_pass: Percentiles,
    /// Latency of each read after one sequential pass over the whole log.
    pub after_sequential_pass: Percentiles,
}

/// Opens after a clean close or a crash.
#[derive(Debug, Clone)]
pub struct Reopen {
    /// Bytes of frames in the log (for a crash: all of them are the unchecked tail).
    pub log_bytes: u64,
    /// Fraction of the segment in the page cache before the first open.
    pub residency: f64,
    /// Dirty page cache (system-wide) just before the first open, if known.
    pub dirty_bytes: Option<u64>,
    /// Time of each `Log::open`.
    pub opens: Vec<Duration>,
}

impl Reopen {
    /// Median open time.
    pub fn median(&self) -> Duration {
        let mut v = self.opens.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }

    /// Slowest open.
    pub fn max(&self) -> Duration {
        self.opens.iter().copied().max().unwrap_or_default()
    }

    /// `d` scaled to one GiB of log.
    pub fn per_gib(&self, d: Duration) -> Duration {
        d.mul_f64((1u64 << 30) as f64 / self.log_bytes.max(1) as f64)
    }
}

/// The `.log` files in `dir`, sorted.
fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("list {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "log") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// Lowest residency over the segments of the log in `dir`.
fn log_residency(dir: &Path) -> Result<f64> {
    let mut lowest: f64 = 1.0;
    for p in segment_files(dir)? {
        lowest = lowest.min(page_cache_residency(&p).context("mincore")?);
    }
    Ok(lowest)
}

/// Times `count` reads of one entry at uniformly random offsets of `reader`'s log.
fn time_random_reads(
    reader: &strata_log::LogReader,
    end_offset: Offset,
    count: u64,
    seed: &mut u64,
) -> Result<Percentiles> {
    let mut histogram = latency_histogram();
    for _ in 0..count {
        let offset = Offset::new((splitmix64(seed) % end_offset.get() as u64) as i64);
        let start = Instant::now();
        let entries = reader.read(offset, 1, Offset::new(i64::MAX))?;
        record(&mut histogram, start.elapsed());
        let Some(e) = entries.first() else {
            bail!("read at offset {offset} returned nothing");
        };
        ensure!(
            e.base_offset <= offset && offset < e.next_offset(),
            "read at offset {offset} returned the batch at {}",
            e.base_offset
        );
        std::hint::black_box(&e.payload);
    }
    Ok(Percentiles::of(&histogram))
}

/// Writes a `log_bytes` log, times `count` random reads (twice: before and after a sequential
/// pass), closes it cleanly and times `reopens` opens of it (each followed by a clean close).
pub fn random_reads_and_clean_reopen(
    root: &Path,
    batch: &[u8],
    sizes: &Sizes,
    seed: u64,
) -> Result<(RandomReads, Reopen)> {
    let dir = scratch_dir(root).context("create the scratch directory")?;
    let log_dir = dir.path().join("log");
    let flusher = Flusher::start("bench").context("start the flusher")?;
    let mut log = Log::open(
        &log_dir,
        log_config(),
        Arc::new(RealDisk),
        &flusher.handle(),
    )?;
    let entries = fill_log(&mut log, batch, sizes.log_bytes, 1)?;
    let log_bytes = entries * frame_len(batch.len());
    // Durable before reading, so write-back does not compete with the reads.
    log.flush_wait()?;
    let residency = log_residency(&log_dir)?;

    let reader = log.reader();
    let end_offset = log.next_offset();
    let mut state = seed;
    let first_pass = time_random_reads(&reader, end_offset, sizes.random_reads, &mut state)?;
    let mut offset = Offset::new(0);
    while offset < end_offset {
        let chunk = reader.read(offset, 1 << 20, Offset::new(i64::MAX))?;
        let Some(last) = chunk.last() else {
            bail!("sequential read at offset {offset} returned nothing");
        };
        offset = last.next_offset();
    }
    let after_sequential_pass =
        time_random_reads(&reader, end_offset, sizes.random_reads, &mut state)?;
    drop(reader);
    log.close()?;

    let dirty_bytes = dirty_page_cache_bytes();
    let mut opens = Vec::with_capacity(sizes.clean_reopens);
    for _ in 0..sizes.clean_reopens {
        let start = Instant::now();
        let log = Log::open(
            &log_dir,
            log_config(),
            Arc::new(RealDisk),
            &flusher.handle(),
        )?;
        opens.push(start.elapsed());
        ensure!(
            log.next_index().get() == entries + 1,
            "reopen found {} entries, wrote {entries}",
            log.next_index().get() - 1
        );
        log.close()?;
    }
    Ok((
        RandomReads {
            log_bytes,
            residency,
            seed,
            first_pass,
            after_sequential_pass,
        },
        Reopen {
            log_bytes,
            residency,
            dirty_bytes,
            opens,
        },
    ))
}

/// Writes a `log_bytes` log into one segment (flushing after its first entry, so the manifest
/// names the segment), flushes it all if `flush_before_crash`, drops it
/// without closing (a process crash: the manifest has no checkpoint of the segment, so the
/// whole log is the tail that open scans), and times `reopens` opens, each dropped the same way.
pub fn crash_reopen(
    root: &Path,
    batch: &[u8],
    log_bytes: u64,
    reopens: usize,
    flush_before_crash: bool,
) -> Result<Reopen> {
    let dir = scratch_dir(root).context("create the scratch directory")?;
    let log_dir = dir.path().join("log");
    let flusher = Flusher::start("bench").context("start the flusher")?;
    let mut log = Log::open(
        &log_dir,
        log_config(),
        Arc::new(RealDisk),
        &flusher.handle(),
    )?;
    // The first entry is flushed in both variants: that round persists the manifest naming the
    // new segment. (A segment created after the last flush is not part of the log on reopen,
    // since nothing in it was acknowledged; recovery deletes it without scanning it.)
    let first = next_entry(&log, batch);
    log.append(&[first])?;
    log.flush_wait()?;
    let entries = 1 + fill_log(&mut log, batch, log_bytes - frame_len(batch.len()), 1)?;
    if flush_before_crash {
        log.flush_wait()?;
    }
    drop(log);
    ensure!(
        segment_files(&log_dir)?.len() == 1,
        "the crash scenario expects the whole log in one segment"
    );
    let residency = log_residency(&log_dir)?;
    let dirty_bytes = dirty_page_cache_bytes();
    let mut opens = Vec::with_capacity(reopens);
    for _ in 0..reopens {
        let start = Instant::now();
        let log = Log::open(
            &log_dir,
            log_config(),
            Arc::new(RealDisk),
            &flusher.handle(),
        )?;
        opens.push(start.elapsed());
        ensure!(
            log.next_index().get() == entries + 1,
            "recovery found {} entries, wrote {entries}",
            log.next_index().get() - 1
        );
        drop(log);
    }
    Ok(Reopen {
        log_bytes: entries * frame_len(batch.len()),
        residency,
        dirty_bytes,
        opens,
    })
}
