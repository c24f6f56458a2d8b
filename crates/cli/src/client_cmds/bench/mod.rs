//! `strata bench produce|consume|e2e|groups|queues|kafka`: throughput and latency against a
//! running cluster (`groups`, `queues`, `kafka`: see their modules).
//!
//! - The topic is `--topic` if it exists, else created (default name `bench-<random>`,
//!   `--partitions` partitions, replication factor min(3, active nodes)) and kept afterwards,
//!   so `bench consume --topic` can replay it.
//! - produce: `--producers` tasks, each with its own [`strata_client::Producer`] (its own
//!   buffer, batches and requests in flight), send `--records` records in all of
//!   `--record-size`-byte values as fast as backpressure allows. Each record's latency runs
//!   from the call to `send` (so it includes waiting for buffer space) to its acknowledgement,
//!   taken by a small task per record so that acknowledgements are timed when they arrive.
//! - consume: produces what the topic lacks to hold `--records` records, then replays it from
//!   the earliest offsets of every partition with one consumer.
//! - e2e: a consumer assigned at the latest offsets reads what the producers send at
//!   `--rate` records/s; each value starts with its send time (8 bytes, big-endian
//!   microseconds since an instant this process shares with the consumer), so the
//!   produce-to-consume latency needs no clock agreement.

use super::produce::producer_config;
use super::{
    AcksArg, BenchArgs, BenchCmd, CREATE_LEADERS_WAIT, connect, created_or_err, exit_code,
    wait_for_leaders,
};
use crate::Format;
use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;
use std::hash::{BuildHasher, Hasher};
use std::process::ExitCode;
use std::time::{Duration, Instant};
use strata_client::{Client, ConsumerConfig, Error, Offset, ProducerRecord};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

mod groups;
mod kafka;
mod queues;
mod report;
use report::{Percentiles, Report};

/// Largest latency the histograms hold, in microseconds (an hour); larger values count as it.
const LATENCY_MICROS_MAX: u64 = 3_600_000_000;

/// How long the e2e consumer waits for a record, once the producers are done, before it gives
/// up on the ones it has not seen.
const E2E_DRAIN_WAIT: Duration = Duration::from_secs(10);

/// Bytes of the send-time stamp at the start of every e2e value.
const STAMP_BYTES: usize = 8;

/// Which bench.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Produce,
    Consume,
    E2e,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Produce => "produce",
            Mode::Consume => "consume",
            Mode::E2e => "e2e",
        }
    }
}

/// Runs `strata bench ...`.
pub async fn run(brokers: &str, format: Format, cmd: BenchCmd) -> anyhow::Result<ExitCode> {
    let (mode, args) = match cmd {
        BenchCmd::Produce(args) => (Mode::Produce, args),
        BenchCmd::Consume(args) => (Mode::Consume, args),
        BenchCmd::E2e(args) => (Mode::E2e, args),
        BenchCmd::Queues(args) => {
            check(&args)?;
            queues::run(&connect(brokers).await?, format, &args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Kafka(args) => {
            check(&args)?;
            kafka::run(&connect(brokers).await?, &args).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BenchCmd::Groups(args) => {
            check(&args)?;
            groups::run(&connect(brokers).await?, format, &args).await?;
            return Ok(ExitCode::SUCCESS);
        }
    };
    check(&args)?;
    let client = connect(brokers).await?;
    let (topic, partitions) = ensure_topic(&client, &args).await?;
    let report = match mode {
        Mode::Produce => bench_produce(&client, &topic, partitions, &args).await?,
        Mode::Consume => bench_consume(&client, &topic, partitions, &args).await?,
        Mode::E2e => bench_e2e(&client, &topic, partitions, &args).await?,
    };
    report.print(format)?;
    if let Some(path) = &args.json_out {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if report.errors > 0 {
        eprintln!(
            "error: {} records failed; the first: {}",
            report.errors,
            report.first_error.as_deref().unwrap_or("unknown")
        );
    }
    Ok(exit_code(report.errors == 0))
}

fn check(args: &BenchArgs) -> anyhow::Result<()> {
    if args.records == 0 {
        anyhow::bail!("--records must be at least 1");
    }
    if args.producers == 0 {
        anyhow::bail!("--producers must be at least 1");
    }
    if args.partitions == 0 {
        anyhow::bail!("--partitions must be at least 1");
    }
    Ok(())
}

fn acks_name(acks: AcksArg) -> &'static str {
    match acks {
        AcksArg::All => "all",
        AcksArg::Leader => "leader",
        AcksArg::None => "none",
    }
}

/// A fresh topic name: `bench-` and 8 random hex digits.
fn random_topic_name() -> String {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    format!("bench-{:08x}", random as u32)
}

/// The bench topic and its partition count: `--topic` if it exists, else created.
async fn ensure_topic(client: &Client, args: &BenchArgs) -> anyhow::Result<(String, u32)> {
    let name = args.topic.clone().unwrap_or_else(random_topic_name);
    let metadata = client.metadata([name.clone()]).await?;
    if let Some(t) = metadata.topics.iter().find(|t| t.name == name) {
        return Ok((name, partition_count(t.partitions.len())));
    }
    let active = metadata
        .nodes
        .iter()
        .filter(|n| n.state == "ACTIVE")
        .count();
    let replication_factor = active.clamp(1, 3) as u32;
    let admin = client.admin();
    let created = admin
        .create_topic(&name, args.partitions, replication_factor, BTreeMap::new())
        .await;
    match created {
        // Another bench made it at the same moment: use it.
        Err(Error::TopicExists { .. }) => {}
        created => created_or_err(&name, created)?,
    }
    let topic = wait_for_leaders(&admin, &name, CREATE_LEADERS_WAIT).await?;
    Ok((name, partition_count(topic.partitions.len())))
}

fn partition_count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::new_with_bounds(1, LATENCY_MICROS_MAX, 3)?)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Per second over `elapsed` (0 when nothing elapsed).
fn per_second(amount: f64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 { amount / s } else { 0.0 }
}

/// What the producer tasks did.
struct Load {
    /// Send-to-acknowledgement latency in microseconds.
    latency: Histogram<u64>,
    acknowledged: u64,
    errors: u64,
    first_error: Option<String>,
    /// From the start to the last outcome.
    elapsed: Duration,
}

impl Load {
    fn new() -> anyhow::Result<Load> {
        Ok(Load {
            latency: histogram()?,
            acknowledged: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
        })
    }
}

/// How the producer tasks make values.
#[derive(Clone)]
enum Values {
    /// The same bytes every time.
    Fixed(Bytes),
    /// `size` bytes starting with the send time (microseconds since `origin`).
    Stamped { origin: Instant, size: usize },
}

impl Values {
    fn next(&self) -> Bytes {
        match self {
            Values::Fixed(b) => b.clone(),
            Values::Stamped { origin, size } => {
                let mut b = BytesMut::with_capacity(*size);
                b.put_u64(micros(origin.elapsed()));
                b.resize(*size, b'x');
                b.freeze()
            }
        }
    }
}

/// Sends `records` records to `topic` from `args.producers` tasks, each with its own producer,
/// paced at `rate` records/s in all when given, and waits for every outcome.
async fn produce_load(
    client: &Client,
    topic: &str,
    args: &BenchArgs,
    records: u64,
    values: Values,
    rate: Option<u64>,
) -> anyhow::Result<Load> {
    let tasks = args.producers as u64;
    let started = Instant::now();
    let mut set = JoinSet::new();
    for i in 0..tasks {
        let share = records / tasks + u64::from(i < records % tasks);
        if share == 0 {
            continue;
        }
        let producer = client.producer(producer_config(
            args.acks,
            Duration::from_millis(args.linger_ms),
        ))?;
        // Each task sends 1/tasks of the rate.
        let period = rate
            .filter(|r| *r > 0)
            .map(|r| Duration::from_nanos((1_000_000_000u64.saturating_mul(tasks) / r).max(1)));
        let (topic, values) = (topic.to_string(), values.clone());
        let in_flight = args.in_flight;
        set.spawn(async move {
            let mut load = Load::new()?;
            let mut acks = JoinSet::new();
            let mut ticker = period.map(|p| {
                let mut t = tokio::time::interval(p);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            for _ in 0..share {
                if let Some(t) = &mut ticker {
                    t.tick().await;
                }
                let record = ProducerRecord::new(topic.clone(), values.next());
                let sent_at = Instant::now();
                match producer.send(record).await {
                    Ok(ack) => {
                        acks.spawn(async move { ack.await.map(|_| sent_at.elapsed()) });
                    }
                    Err(e) => tally(&mut load, started, Ok(Err(e))),
                }
                while let Some(done) = acks.try_join_next() {
                    tally(&mut load, started, done);
                }
                while in_flight > 0 && acks.len() >= in_flight {
                    match acks.join_next().await {
                        Some(done) => tally(&mut load, started, done),
                        None => break,
                    }
                }
            }
            while let Some(done) = acks.join_next().await {
                tally(&mut load, started, done);
            }
            producer.close().await;
            anyhow::Ok(load)
        });
    }
    let mut total = Load::new()?;
    while let Some(joined) = set.join_next().await {
        let load = match joined {
            Ok(load) => load?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => anyhow::bail!("a producer task stopped: {e}"),
        };
        total.latency.add(&load.latency)?;
        total.acknowledged += load.acknowledged;
        total.errors += load.errors;
        total.first_error = total.first_error.or(load.first_error);
        total.elapsed = total.elapsed.max(load.elapsed);
    }
    Ok(total)
}

/// Counts one record's outcome.
fn tally(
    load: &mut Load,
    started: Instant,
    done: Result<Result<Duration, Error>, tokio::task::JoinError>,
) {
    match done {
        Ok(Ok(latency)) => {
            load.acknowledged += 1;
            load.latency.saturating_record(micros(latency).max(1));
        }
        Ok(Err(e)) => {
            load.errors += 1;
            load.first_error.get_or_insert_with(|| e.to_string());
        }
        Err(e) => {
            load.errors += 1;
            load.first_error
                .get_or_insert_with(|| format!("acknowledgement task failed: {e}"));
        }
    }
    load.elapsed = started.elapsed();
}

fn fixed_values(size: usize) -> Values {
    Values::Fixed(Bytes::from(vec![b'x'; size]))
}

async fn bench_produce(
    client: &Client,
    topic: &str,
    partitions: u32,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let load = produce_load(
        client,
        topic,
        args,
        args.records,
        fixed_values(args.record_size),
        None,
    )
    .await?;
    Ok(Report {
        bench: Mode::Produce.name(),
        topic: topic.to_string(),
        partitions,
        producers: args.producers,
        acks: acks_name(args.acks),
        linger_ms: Some(args.linger_ms),
        in_flight: Some(args.in_flight),
        records: load.acknowledged,
        errors: load.errors,
        record_size: args.record_size,
        elapsed_s: load.elapsed.as_secs_f64(),
        records_per_s: per_second(load.acknowledged as f64, load.elapsed),
        mb_per_s: per_second(
            load.acknowledged as f64 * args.record_size as f64 / 1e6,
            load.elapsed,
        ),
        latency_ms: Some(Percentiles::of(&load.latency)),
        e2e_latency_ms: None,
        target_rate: None,
        first_error: load.first_error,
    })
}

/// Records stored in `topic` now: the sum over partitions of high watermark minus log start.
async fn stored_records(client: &Client, topic: &str) -> anyhow::Result<u64> {
    let mut consumer = client.consumer(ConsumerConfig::default())?;
    consumer.assign_all(topic, Offset::Earliest).await?;
    let ends = consumer.end_offsets().await?;
    Ok(ends
        .iter()
        .map(|(tp, end)| {
            let start = consumer.position(&tp.topic, tp.partition).unwrap_or(*end);
            u64::try_from(end - start).unwrap_or(0)
        })
        .sum())
}

async fn bench_consume(
    client: &Client,
    topic: &str,
    partitions: u32,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let stored = stored_records(client, topic).await?;
    let mut producers = 0;
    if stored < args.records {
        producers = args.producers;
        let load = produce_load(
            client,
            topic,
            args,
            args.records - stored,
            fixed_values(args.record_size),
            None,
        )
        .await?;
        if load.errors > 0 {
            anyhow::bail!(
                "filling {topic} failed: {} of {} records failed; the first: {}",
                load.errors,
                args.records - stored,
                load.first_error.as_deref().unwrap_or("unknown")
            );
        }
    }
    let mut consumer = client.consumer(ConsumerConfig::default())?;
    consumer.assign_all(topic, Offset::Earliest).await?;
    let started = Instant::now();
    let (mut consumed, mut bytes) = (0u64, 0u64);
    while consumed < args.records {
        let records = consumer.poll().await?;
        for r in records
            .iter()
            .take(usize::try_from(args.records - consumed).unwrap_or(usize::MAX))
        {
            consumed += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
        if consumed < args.records && consumer.caught_up() {
            // The topic holds fewer records than asked for (retention removed some).
            break;
        }
    }
    let elapsed = started.elapsed();
    Ok(Report {
        bench: Mode::Consume.name(),
        topic: topic.to_string(),
        partitions,
        producers,
        acks: acks_name(args.acks),
        linger_ms: None,
        in_flight: None,
        records: consumed,
        errors: 0,
        record_size: args.record_size,
        elapsed_s: elapsed.as_secs_f64(),
        records_per_s: per_second(consumed as f64, elapsed),
        mb_per_s: per_second(bytes as f64 / 1e6, elapsed),
        latency_ms: None,
        e2e_latency_ms: None,
        target_rate: None,
        first_error: None,
    })
}

async fn bench_e2e(
    client: &Client,
    topic: &str,
    partitions: u32,
    args: &BenchArgs,
) -> anyhow::Result<Report> {
    let origin = Instant::now();
    let size = args.record_size.max(STAMP_BYTES);
    let mut consumer = client.consumer(ConsumerConfig::default())?;
    consumer.assign_all(topic, Offset::Latest).await?;
    let (expected_tx, expected_rx) = oneshot::channel();
    let reader = tokio::spawn(consume_stamped(consumer, origin, expected_rx));
    let load = produce_load(
        client,
        topic,
        args,
        args.records,
        Values::Stamped { origin, size },
        Some(args.rate),
    )
    .await;
    let load = match load {
        Ok(load) => load,
        Err(e) => {
            reader.abort();
            return Err(e);
        }
    };
    let _ = expected_tx.send(load.acknowledged);
    let (e2e, received) = match reader.await {
        Ok(r) => r?,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => anyhow::bail!("the consumer task stopped: {e}"),
    };
    let mut errors = load.errors;
    let mut first_error = load.first_error;
    if received < load.acknowledged {
        let missing = load.acknowledged - received;
        errors += missing;
        first_error.get_or_insert_with(|| {
            format!(
                "{missing} acknowledged records were not consumed within {} after the last send",
                humantime::format_duration(E2E_DRAIN_WAIT)
            )
        });
    }
    Ok(Report {
        bench: Mode::E2e.name(),
        topic: topic.to_string(),
        partitions,
        producers: args.producers,
        acks: acks_name(args.acks),
        linger_ms: Some(args.linger_ms),
        in_flight: Some(args.in_flight),
        records: load.acknowledged,
        errors,
        record_size: size,
        elapsed_s: load.elapsed.as_secs_f64(),
        records_per_s: per_second(load.acknowledged as f64, load.elapsed),
        mb_per_s: per_second(load.acknowledged as f64 * size as f64 / 1e6, load.elapsed),
        latency_ms: Some(Percentiles::of(&load.latency)),
        e2e_latency_ms: Some(Percentiles::of(&e2e)),
        target_rate: Some(args.rate),
        first_error,
    })
}

/// Reads stamped records until it has seen as many as `expected` says (sent once the
/// producers are done), or nothing came for [`E2E_DRAIN_WAIT`] after that. Returns the
/// produce-to-consume latencies (microseconds) and the records measured. Records without a
/// stamp are skipped.
async fn consume_stamped(
    mut consumer: strata_client::Consumer,
    origin: Instant,
    mut expected_rx: oneshot::Receiver<u64>,
) -> anyhow::Result<(Histogram<u64>, u64)> {
    let mut latency = histogram()?;
    let mut received = 0u64;
    let mut expected: Option<u64> = None;
    let mut give_up = tokio::time::Instant::now() + E2E_DRAIN_WAIT;
    loop {
        if expected.is_some_and(|e| received >= e) {
            return Ok((latency, received));
        }
        tokio::select! {
            records = consumer.poll() => {
                let records = records?;
                let now = micros(origin.elapsed());
                for r in &records {
                    let Some(stamp) = r
                        .value
                        .as_ref()
                        .and_then(|v| v.get(..STAMP_BYTES))
                        .and_then(|s| <[u8; STAMP_BYTES]>::try_from(s).ok())
                    else {
                        continue;
                    };
                    let sent = u64::from_be_bytes(stamp);
                    latency.saturating_record(now.saturating_sub(sent).max(1));
                    received += 1;
                }
                if !records.is_empty() {
                    give_up = tokio::time::Instant::now() + E2E_DRAIN_WAIT;
                }
            }
            n = &mut expected_rx, if expected.is_none() => {
                // A dropped sender (the producers failed) expects nothing more.
                expected = Some(n.unwrap_or(0));
                give_up = tokio::time::Instant::now() + E2E_DRAIN_WAIT;
            }
            _ = tokio::time::sleep_until(give_up), if expected.is_some() => {
                return Ok((latency, received));
            }
        }
    }
}
