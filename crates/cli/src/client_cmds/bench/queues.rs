//! `strata bench queues`: queue groups against a running cluster.
//!
//! - throughput: `--records` records of `--record-size` bytes produced to a fresh topic of 1
//!   partition and of 16, then consumed by a new queue group of 1, 4 and 16 consumers, each
//!   acknowledging what it received in one settle per batch: records acknowledged per
//!   second (acquire + acknowledge, both replicated). The same topic replayed by a plain
//!   group member gives the comparison.
//! - redelivery: a record not acknowledged, with a 1 s lock: the time from the lock's end
//!   to the record's next delivery (10 samples).
//! - request/reply: 500 requests one after another to 1 server: round-trip latency.

use super::report::Percentiles;
use super::{BenchArgs, Values, ensure_topic, histogram, micros, per_second, produce_load};
use crate::Format;
use crate::output::print_document;
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use strata_client::{
    Client, ConsumerConfig, GroupConsumerConfig, Offset, QueueConsumerConfig, QueueMessage,
    Settlement,
};
use tokio::task::JoinSet;

/// How long a stage may take before the bench gives up on it.
const STAGE_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Debug, Serialize)]
struct Line {
    partitions: u32,
    consumers: usize,
    records_per_s: f64,
}

#[derive(Debug, Serialize)]
struct QueuesReport {
    records: u64,
    record_size: usize,
    lines: Vec<Line>,
    group_replay_records_per_s: Vec<(u32, f64)>,
    redelivery_after_lock_ms: Percentiles,
    request_reply_ms: Percentiles,
}

fn tag() -> String {
    super::random_topic_name().replace("bench-", "")
}

/// Runs `strata bench queues`.
pub(super) async fn run(client: &Client, format: Format, args: &BenchArgs) -> anyhow::Result<()> {
    let mut lines = Vec::new();
    let mut replays = Vec::new();
    for partitions in [1u32, 16] {
        let fresh = BenchArgs {
            topic: None,
            partitions,
            ..args.clone()
        };
        let (topic, _) = ensure_topic(client, &fresh).await?;
        produce_load(
            client,
            &topic,
            &fresh,
            args.records,
            Values::Fixed(Bytes::from(vec![b'q'; args.record_size])),
            None,
        )
        .await?;
        for consumers in [1usize, 4, 16] {
            let rate = drain(client, &topic, consumers, args.records).await?;
            lines.push(Line {
                partitions,
                consumers,
                records_per_s: rate,
            });
        }
        replays.push((
            partitions,
            group_replay(client, &topic, args.records).await?,
        ));
    }
    let redelivery = redelivery(client, args).await?;
    let rr = request_reply(client).await?;
    let report = QueuesReport {
        records: args.records,
        record_size: args.record_size,
        lines,
        group_replay_records_per_s: replays,
        redelivery_after_lock_ms: redelivery,
        request_reply_ms: rr,
    };
    let mut text = String::new();
    for l in &report.lines {
        text.push_str(&format!(
            "queue {:>2} partitions, {:>2} consumers: {:.0} records/s acquired and acknowledged\n",
            l.partitions, l.consumers, l.records_per_s
        ));
    }
    for (p, r) in &report.group_replay_records_per_s {
        text.push_str(&format!(
            "group member replay of the {p}-partition topic: {r:.0} records/s\n"
        ));
    }
    text.push_str(&format!(
        "redelivery after the lock ran out: {}\nrequest/reply round trip: {}",
        report.redelivery_after_lock_ms.text(),
        report.request_reply_ms.text()
    ));
    print_document(format, &text, &serde_json::json!(report))?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// A new queue group of `consumers` consumers takes and acknowledges `records` records of
/// `topic`: acknowledged records per second.
async fn drain(
    client: &Client,
    topic: &str,
    consumers: usize,
    records: u64,
) -> anyhow::Result<f64> {
    let group = format!("bench-queue-{}", tag());
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..consumers {
        let mut q = client.queue_consumer(QueueConsumerConfig {
            max_in_flight: 200,
            ..QueueConsumerConfig::new(group.clone(), topic)
        })?;
        let acked = acked.clone();
        set.spawn(async move {
            while acked.load(Ordering::Relaxed) < records {
                let Ok(first) = tokio::time::timeout(Duration::from_millis(100), q.next()).await
                else {
                    continue;
                };
                let Some(first) = first else { break };
                let mut batch: Vec<QueueMessage> = vec![first?];
                while batch.len() < 200 {
                    match tokio::time::timeout(Duration::from_micros(200), q.next()).await {
                        Ok(Some(m)) => batch.push(m?),
                        _ => break,
                    }
                }
                let items: Vec<(&QueueMessage, Settlement)> =
                    batch.iter().map(|m| (m, Settlement::Ack)).collect();
                let done = q
                    .settle(&items)
                    .await?
                    .into_iter()
                    .filter(Result::is_ok)
                    .count();
                acked.fetch_add(done as u64, Ordering::Relaxed);
            }
            q.close().await?;
            anyhow::Ok(())
        });
    }
    let deadline = started + STAGE_TIMEOUT;
    while acked.load(Ordering::Relaxed) < records {
        if Instant::now() > deadline {
            anyhow::bail!(
                "queue of {consumers} consumers acknowledged {} of {records}",
                acked.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(per_second(records as f64, elapsed))
}

/// A new consumer group's member replays `topic` from the earliest offsets: records/s.
async fn group_replay(client: &Client, topic: &str, records: u64) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut member = client.group_consumer(
        ConsumerConfig::default(),
        GroupConsumerConfig {
            start: Offset::Earliest,
            ..GroupConsumerConfig::new(format!("bench-replay-{}", tag()), [topic])
        },
    )?;
    let mut read = 0u64;
    while read < records {
        read += member.poll().await?.records.len() as u64;
        if started.elapsed() > STAGE_TIMEOUT {
            anyhow::bail!("group member read {read} of {records}");
        }
    }
    let rate = per_second(read as f64, started.elapsed());
    member.close().await?;
    Ok(rate)
}

/// A record left unacknowledged under a 1 s lock, 10 times: from the lock's end to the
/// next delivery, in ms.
async fn redelivery(client: &Client, args: &BenchArgs) -> anyhow::Result<Percentiles> {
    let fresh = BenchArgs {
        topic: None,
        partitions: 1,
        ..args.clone()
    };
    let (topic, _) = ensure_topic(client, &fresh).await?;
    produce_load(
        client,
        &topic,
        &fresh,
        1,
        Values::Fixed(Bytes::from_static(b"r")),
        None,
    )
    .await?;
    let mut q = client.queue_consumer(QueueConsumerConfig {
        max_in_flight: 1,
        lock: Duration::from_secs(1),
        max_deliveries: 20,
        ..QueueConsumerConfig::new(format!("bench-redeliver-{}", tag()), topic)
    })?;
    let mut h = histogram()?;
    let mut m = next(&mut q).await?;
    for _ in 0..10 {
        let until = m.lock_until_ms;
        m = next(&mut q).await?;
        let now = strata_record::sync::now_ms();
        h.record(((now - until).max(0) as u64 * 1000).max(1))?;
    }
    q.close().await?;
    Ok(Percentiles::of(&h))
}

async fn next(q: &mut strata_client::QueueConsumer) -> anyhow::Result<QueueMessage> {
    match tokio::time::timeout(Duration::from_secs(30), q.next()).await {
        Ok(Some(m)) => Ok(m?),
        Ok(None) => anyhow::bail!("the queue consumer stopped"),
        Err(_) => anyhow::bail!("no message in 30 s"),
    }
}

/// 500 requests, one after another, answered by one server: round trip in ms.
async fn request_reply(client: &Client) -> anyhow::Result<Percentiles> {
    let topic = format!("bench-rr-{}", tag());
    client
        .admin()
        .create_topic(&topic, 1, 0, Default::default())
        .await?;
    let server = {
        let client = client.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            strata_client::serve(
                client,
                &topic,
                "bench-rr",
                4,
                |m: QueueMessage| async move { Ok(m.value.unwrap_or_default()) },
            )
            .await
        })
    };
    let requester = client.requester().await?;
    // The first requests wait for the server's streams to open.
    requester
        .request(&topic, "warm-up", Duration::from_secs(30))
        .await?;
    let mut h = histogram()?;
    for i in 0..500 {
        let t = Instant::now();
        requester
            .request(&topic, format!("{i}"), Duration::from_secs(10))
            .await?;
        h.record(micros(t.elapsed()).max(1))?;
    }
    server.abort();
    Ok(Percentiles::of(&h))
}
