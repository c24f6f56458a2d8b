//! Criterion throughput benches of the log, in record-batch bytes per second, for 1 KiB records
//! in 64 KiB batches (one batch built once and written again and again):
//! - `log/pwrite_baseline` (baseline A): `pwrite` of the batch into a preallocated file;
//! - `log/append_no_sync`: `Log::append` of the batch (CRC32C check of the batch, framing with a
//!   CRC32 frame header, `pwritev`), never flushed;
//! - `log/sequential_read`: `LogReader::read` from offset 0 of a pre-written 1 GiB log in 1 MiB
//!   chunks, every frame's CRC verified by the reader, every payload touched.
//!
//! Data goes under `target/bench-tmp` (see `strata_benches::scratch::bench_root`). The writers
//! move to a new file or log directory (deleting the old one, outside the timed region) every
//! [`ROLL_BYTES`], so little bench data is on disk or dirty in the page cache at a time and the
//! deleted data never needs writing back.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_benches::scratch::{bench_root, preallocated_file, scratch_dir};
use strata_benches::workload::{MIB, fill_log, frame_len, log_config, next_entry, record_batch};
use strata_log::{Flusher, Log, LogReader, Offset, RealDisk};
use tempfile::TempDir;

/// Bytes written into one file or log directory before moving to a fresh one. Below the 1 GiB
/// segment size, so the append bench never rolls a segment: it measures the steady append path.
///
/// 256 MiB rather than 1 GiB: on the benchmark VM, with 1 GiB files (up to 2 GiB dirty at a
/// roll) single samples of both write benches varied from 13 to 60 µs per batch; with 256 MiB
/// they stay within a few percent. Both write benches use the same size.
const ROLL_BYTES: u64 = 256 << 20;

/// Log size of the sequential read bench.
const READ_LOG_BYTES: u64 = 1 << 30;

/// `max_bytes` of each read of the sequential read bench.
const READ_CHUNK_BYTES: usize = MIB as usize;

/// A destination of fixed-size writes that is replaced by a fresh one when full.
trait RollingSink {
    /// How many more writes fit before a roll.
    fn room(&self) -> u64;
    /// Deletes the current destination, then makes a fresh one.
    fn roll(&mut self);
    /// One write.
    fn write_one(&mut self);
}

/// Does `iters` writes into `sink`, rolling it when full; returns the time spent writing only.
fn timed_with_rolls(iters: u64, sink: &mut impl RollingSink) -> Duration {
    let mut elapsed = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = sink.room().min(left);
        if n == 0 {
            sink.roll();
            continue;
        }
        let start = Instant::now();
        for _ in 0..n {
            sink.write_one();
        }
        elapsed += start.elapsed();
        left -= n;
    }
    elapsed
}

/// Baseline A's destination: a file preallocated with `fallocate`, in its own scratch
/// directory under the same root as the logs.
struct PreallocatedSink<'a> {
    root: &'a Path,
    batch: &'a [u8],
    current: Option<(TempDir, File)>,
    position: u64,
}

impl<'a> PreallocatedSink<'a> {
    fn new(root: &'a Path, batch: &'a [u8]) -> Self {
        let mut sink = PreallocatedSink {
            root,
            batch,
            current: None,
            position: 0,
        };
        sink.roll();
        sink
    }
}

impl RollingSink for PreallocatedSink<'_> {
    fn room(&self) -> u64 {
        (ROLL_BYTES - self.position) / self.batch.len() as u64
    }

    fn roll(&mut self) {
        self.current = None;
        let dir = scratch_dir(self.root).expect("create a scratch directory");
        let file = preallocated_file(&dir.path().join("baseline.dat"), ROLL_BYTES)
            .expect("preallocate the baseline file");
        self.current = Some((dir, file));
        self.position = 0;
    }

    fn write_one(&mut self) {
        let (_, file) = self.current.as_ref().expect("a file is open between rolls");
        file.write_all_at(self.batch, self.position)
            .expect("pwrite into the preallocated file");
        self.position += self.batch.len() as u64;
    }
}

/// A log in its own scratch directory.
struct BenchLog {
    log: Log,
    _dir: TempDir,
}

fn open_bench_log(root: &Path, flusher: &Flusher) -> BenchLog {
    let dir = scratch_dir(root).expect("create a scratch directory");
    let log = Log::open(
        dir.path().join("log"),
        log_config(),
        Arc::new(RealDisk),
        &flusher.handle(),
    )
    .expect("open a new log");
    BenchLog { log, _dir: dir }
}

/// The append bench's destination: a log, replaced by a new one in a new directory when full.
struct LogSink<'a> {
    root: &'a Path,
    batch: &'a [u8],
    flusher: &'a Flusher,
    current: Option<BenchLog>,
    written: u64,
}

impl RollingSink for LogSink<'_> {
    fn room(&self) -> u64 {
        (ROLL_BYTES - self.written) / frame_len(self.batch.len())
    }

    fn roll(&mut self) {
        // Dropped without close: there is nothing to make durable, the directory is deleted.
        self.current = None;
        self.current = Some(open_bench_log(self.root, self.flusher));
        self.written = 0;
    }

    fn write_one(&mut self) {
        let log = &mut self
            .current
            .as_mut()
            .expect("a log is open between rolls")
            .log;
        let entry = next_entry(log, self.batch);
        log.append(&[entry]).expect("append");
        self.written += frame_len(self.batch.len());
    }
}

// Each bench sets up lazily, on the first call of its closure (criterion calls it many times,
// and not at all when a filter on the command line leaves the bench out).

/// Baseline A: `pwrite` of one batch per iteration.
fn pwrite_baseline(group: &mut BenchmarkGroup<'_, WallTime>, root: &Path, batch: &[u8]) {
    let mut sink = None;
    group.bench_function("pwrite_baseline", |b| {
        let sink = sink.get_or_insert_with(|| PreallocatedSink::new(root, batch));
        b.iter_custom(|iters| timed_with_rolls(iters, sink));
    });
}

/// `Log::append` of one batch per iteration, never flushed.
fn append_no_sync(group: &mut BenchmarkGroup<'_, WallTime>, root: &Path, batch: &[u8]) {
    let flusher = Flusher::start("bench").expect("start the flusher");
    let mut sink = None;
    group.bench_function("append_no_sync", |b| {
        let sink = sink.get_or_insert_with(|| LogSink {
            root,
            batch,
            flusher: &flusher,
            current: Some(open_bench_log(root, &flusher)),
            written: 0,
        });
        b.iter_custom(|iters| timed_with_rolls(iters, sink));
    });
}

/// A pre-written, flushed log for the read bench.
struct ReadLog {
    reader: LogReader,
    end_offset: Offset,
    /// Kept for its log and directory, which the reader needs.
    _bench_log: BenchLog,
}

/// `LogReader::read` of 1 MiB chunks from offset 0 to the end of a 1 GiB log, wrapping around.
fn sequential_read(group: &mut BenchmarkGroup<'_, WallTime>, root: &Path, batch: &[u8]) {
    let flusher = Flusher::start("bench").expect("start the flusher");
    let per_read = (READ_CHUNK_BYTES / batch.len()) as u64;
    let mut read_log = None;
    let mut offset = Offset::new(0);
    group.throughput(Throughput::BytesDecimal(per_read * batch.len() as u64));
    group.bench_function("sequential_read", |b| {
        let ReadLog {
            reader, end_offset, ..
        } = read_log.get_or_insert_with(|| {
            let mut bench_log = open_bench_log(root, &flusher);
            fill_log(&mut bench_log.log, batch, READ_LOG_BYTES, per_read)
                .expect("pre-write the log");
            // Durable before reading, so write-back does not compete with the reads.
            bench_log
                .log
                .flush_wait()
                .expect("flush the pre-written log");
            let reader = bench_log.log.reader();
            let end_offset = bench_log.log.next_offset();
            ReadLog {
                _bench_log: bench_log,
                reader,
                end_offset,
            }
        });
        let end_offset = *end_offset;
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let entries = reader
                    .read(offset, READ_CHUNK_BYTES, Offset::new(i64::MAX))
                    .expect("read");
                assert_eq!(
                    entries.len() as u64,
                    per_read,
                    "every read returns a full chunk"
                );
                let mut touched = 0u8;
                for e in &entries {
                    // The reader already read every byte for the CRC; touch one byte per cache
                    // line anyway, as a consumer copying the payload out would.
                    touched ^= e.payload.iter().step_by(64).fold(0, |a, b| a ^ b);
                }
                std::hint::black_box(touched);
                offset = entries.last().map_or(Offset::new(0), |e| e.next_offset());
                if offset >= end_offset {
                    offset = Offset::new(0);
                }
            }
            start.elapsed()
        });
    });
    // The reader, then the log, then its directory go when `read_log` drops here.
}

fn log_benches(c: &mut Criterion) {
    let root: PathBuf = bench_root();
    let batch = record_batch();
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::BytesDecimal(batch.len() as u64));
    pwrite_baseline(&mut group, &root, &batch);
    append_no_sync(&mut group, &root, &batch);
    sequential_read(&mut group, &root, &batch);
    group.finish();
}

criterion_group!(benches, log_benches);
criterion_main!(benches);
