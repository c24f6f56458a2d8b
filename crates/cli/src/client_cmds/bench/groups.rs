//! `strata bench groups`: consumer groups against a running cluster.
//!
//! - commits: `--commits` offset commits from 8 tasks, each its own group (commits of one
//!   group are not serialized by the client, so this measures the coordinators), each
//!   acknowledged once replicated: throughput and latency.
//! - rebalance: 3 members of a group share a 64-partition topic; a 4th joins; the time from
//!   its creation until the coordinator reports 4 members all holding their targets.
//! - fan-out: 0, 1, 4 and 16 groups (one member each) read a fresh topic while `--records`
//!   records are produced to it: produce throughput (compared with no group) and the rate at
//!   which all groups together read. An unreported line with no group runs first (warm-up).
//! - consumption: the same records replayed by a plain consumer (assigned partitions) and by
//!   a new group's member, from the earliest offsets.

use super::report::Percentiles;
use super::{BenchArgs, Values, ensure_topic, histogram, micros, per_second, produce_load};
use crate::Format;
use crate::output::print_document;
use bytes::Bytes;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use strata_client::{Client, ConsumerConfig, GroupConsumerConfig, Offset, TopicPartition};
use tokio::task::JoinSet;

/// Concurrent committers.
const COMMIT_TASKS: usize = 8;

/// Partitions of the rebalance topic.
const REBALANCE_PARTITIONS: u32 = 64;

/// How long a stage may take before the bench gives up on it.
const STAGE_TIMEOUT: Duration = Duration::from_secs(120);

/// One fan-out line.
#[derive(Debug, Clone, Serialize)]
struct FanOut {
    groups: usize,
    produce_records_per_s: f64,
    /// Produce throughput against the line with no group, in percent (negative: slower).
    produce_change_pct: f64,
    /// Records read by all groups together, per second, from the first send to the last read.
    read_records_per_s: f64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
struct GroupsReport {
    commits: u64,
    commit_tasks: usize,
    commits_per_s: f64,
    commit_latency_ms: Percentiles,
    rebalance_partitions: u32,
    rebalance_3_to_4_ms: f64,
    records: u64,
    record_size: usize,
    fan_out: Vec<FanOut>,
    plain_consume_records_per_s: f64,
    group_consume_records_per_s: f64,
}

fn fresh(args: &BenchArgs, partitions: u32) -> BenchArgs {
    BenchArgs {
        topic: None,
        partitions,
        ..args.clone()
    }
}

fn member(group: &str, topic: &str, start: Offset) -> GroupConsumerConfig {
    GroupConsumerConfig {
        client_id: "strata-bench".into(),
        start,
        ..GroupConsumerConfig::new(group, [topic])
    }
}

fn tag() -> String {
    super::random_topic_name().replace("bench-", "")
}

/// Runs `strata bench groups`.
pub(super) async fn run(client: &Client, format: Format, args: &BenchArgs) -> anyhow::Result<()> {
    let (commits_per_s, commit_latency) = commits(client, args).await?;
    let rebalance = rebalance(client, args).await?;
    // A first produce line pays for connections and new producers: run one, unreported, so
    // that the line with no group is a fair baseline.
    fan_out_line(client, args, 0).await?;
    let mut fan_out = Vec::new();
    let mut last_topic = String::new();
    for groups in [0, 1, 4, 16] {
        let (line, topic) = fan_out_line(client, args, groups).await?;
        fan_out.push(line);
        last_topic = topic;
    }
    let base = fan_out.first().map_or(0.0, |f| f.produce_records_per_s);
    for f in &mut fan_out {
        f.produce_change_pct = if base > 0.0 {
            (f.produce_records_per_s / base - 1.0) * 100.0
        } else {
            0.0
        };
    }
    let (plain, group) = consumption(client, args, &last_topic).await?;
    let report = GroupsReport {
        commits: args.commits,
        commit_tasks: COMMIT_TASKS,
        commits_per_s,
        commit_latency_ms: commit_latency,
        rebalance_partitions: REBALANCE_PARTITIONS,
        rebalance_3_to_4_ms: rebalance.as_secs_f64() * 1000.0,
        records: args.records,
        record_size: args.record_size,
        fan_out,
        plain_consume_records_per_s: plain,
        group_consume_records_per_s: group,
    };
    let mut text = format!(
        "commits: {} from {} tasks, {:.0}/s, latency {}\nrebalance 3 -> 4 members on {} partitions: {:.0} ms\n",
        report.commits,
        report.commit_tasks,
        report.commits_per_s,
        report.commit_latency_ms.text(),
        report.rebalance_partitions,
        report.rebalance_3_to_4_ms
    );
    for f in &report.fan_out {
        text.push_str(&format!(
            "fan-out {:>2} groups: produce {:.0} records/s ({:+.1}%), read {:.0} records/s\n",
            f.groups, f.produce_records_per_s, f.produce_change_pct, f.read_records_per_s
        ));
    }
    text.push_str(&format!(
        "replay {} records: plain consumer {:.0} records/s, group member {:.0} records/s",
        report.records, report.plain_consume_records_per_s, report.group_consume_records_per_s
    ));
    print_document(format, &text, &serde_json::json!(report))?;
    if let Some(path) = &args.json_out {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// `--commits` commits from [`COMMIT_TASKS`] tasks, each its own group.
async fn commits(client: &Client, args: &BenchArgs) -> anyhow::Result<(f64, Percentiles)> {
    let (topic, _) = ensure_topic(client, &fresh(args, 1)).await?;
    // One record, so that offset 1 may be committed.
    produce_load(
        client,
        &topic,
        &fresh(args, 1),
        1,
        Values::Fixed(Bytes::from_static(b"x")),
        None,
    )
    .await?;
    let started = Instant::now();
    let mut set = JoinSet::new();
    let run = tag();
    for i in 0..COMMIT_TASKS as u64 {
        let share =
            args.commits / COMMIT_TASKS as u64 + u64::from(i < args.commits % COMMIT_TASKS as u64);
        let (groups, topic, group) = (
            client.groups(),
            topic.clone(),
            format!("bench-commit-{run}-{i}"),
        );
        set.spawn(async move {
            let mut h = histogram()?;
            let offsets = BTreeMap::from([(TopicPartition::new(topic, 0), 1)]);
            for _ in 0..share {
                let t = Instant::now();
                groups.commit(&group, &offsets).await?;
                h.record(micros(t.elapsed()).max(1))?;
            }
            anyhow::Ok(h)
        });
    }
    let mut all = histogram()?;
    while let Some(r) = set.join_next().await {
        all.add(r??)?;
    }
    let elapsed = started.elapsed();
    Ok((
        per_second(args.commits as f64, elapsed),
        Percentiles::of(&all),
    ))
}

/// Polls `c` until `stop` says so, counting the records read.
fn spawn_member(
    set: &mut JoinSet<anyhow::Result<()>>,
    client: &Client,
    config: GroupConsumerConfig,
    read: Arc<AtomicU64>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let mut c = client.group_consumer(ConsumerConfig::default(), config)?;
    set.spawn(async move {
        while !*stop.borrow() {
            let polled = c.poll().await?;
            read.fetch_add(polled.records.len() as u64, Ordering::Relaxed);
        }
        c.close().await?;
        anyhow::Ok(())
    });
    Ok(())
}

/// Waits until the coordinator reports `members` members all holding their targets.
async fn wait_stable(client: &Client, group: &str, members: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + STAGE_TIMEOUT;
    loop {
        if let Ok(d) = client.groups().describe(group).await
            && d.members.len() == members
            && d.state == "stable"
            && d.members.iter().all(|m| !m.owned.is_empty())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("group {group} did not settle with {members} members");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The time a 4th member takes to settle into a group of 3 on 64 partitions.
async fn rebalance(client: &Client, args: &BenchArgs) -> anyhow::Result<Duration> {
    let (topic, _) = ensure_topic(client, &fresh(args, REBALANCE_PARTITIONS)).await?;
    let group = format!("bench-rebalance-{}", tag());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut set = JoinSet::new();
    let read = Arc::new(AtomicU64::new(0));
    for _ in 0..3 {
        spawn_member(
            &mut set,
            client,
            member(&group, &topic, Offset::Latest),
            read.clone(),
            stop.clone(),
        )?;
    }
    wait_stable(client, &group, 3).await?;
    let started = Instant::now();
    spawn_member(
        &mut set,
        client,
        member(&group, &topic, Offset::Latest),
        read,
        stop,
    )?;
    wait_stable(client, &group, 4).await?;
    let took = started.elapsed();
    let _ = stop_tx.send(true);
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok(took)
}

/// `groups` groups read a fresh topic while `--records` records are produced to it.
async fn fan_out_line(
    client: &Client,
    args: &BenchArgs,
    groups: usize,
) -> anyhow::Result<(FanOut, String)> {
    let (topic, partitions) = ensure_topic(client, &fresh(args, args.partitions)).await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut set = JoinSet::new();
    let counters: Vec<Arc<AtomicU64>> = (0..groups).map(|_| Arc::new(AtomicU64::new(0))).collect();
    let run = tag();
    for (i, read) in counters.iter().enumerate() {
        let group = format!("bench-fanout-{run}-{i}");
        spawn_member(
            &mut set,
            client,
            member(&group, &topic, Offset::Earliest),
            read.clone(),
            stop.clone(),
        )?;
    }
    for i in 0..groups {
        let group = format!("bench-fanout-{run}-{i}");
        let deadline = Instant::now() + STAGE_TIMEOUT;
        loop {
            let d = client.groups().describe(&group).await;
            if d.is_ok_and(|d| {
                d.members.iter().map(|m| m.owned.len()).sum::<usize>() == partitions as usize
            }) {
                break;
            }
            if Instant::now() > deadline {
                anyhow::bail!("group {group} never held every partition");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let value = Values::Fixed(Bytes::from(vec![b'x'; args.record_size]));
    let started = Instant::now();
    let load = produce_load(client, &topic, args, args.records, value, None).await?;
    let produce_rate = per_second(load.acknowledged as f64, load.elapsed);
    let want = load.acknowledged;
    let deadline = Instant::now() + STAGE_TIMEOUT;
    while counters.iter().any(|c| c.load(Ordering::Relaxed) < want) {
        if Instant::now() > deadline {
            anyhow::bail!("{groups} groups did not read all {want} records");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let read_elapsed = started.elapsed();
    let _ = stop_tx.send(true);
    while let Some(r) = set.join_next().await {
        r??;
    }
    Ok((
        FanOut {
            groups,
            produce_records_per_s: produce_rate,
            produce_change_pct: 0.0,
            read_records_per_s: per_second((want * groups as u64) as f64, read_elapsed),
        },
        topic,
    ))
}

/// Replays `topic` from the earliest offsets with a plain consumer, then with a new group's
/// member: records per second each (the member's includes joining).
async fn consumption(client: &Client, args: &BenchArgs, topic: &str) -> anyhow::Result<(f64, f64)> {
    let want = args.records;
    let started = Instant::now();
    let mut plain = client.consumer(ConsumerConfig::default())?;
    plain.assign_all(topic, Offset::Earliest).await?;
    let mut read = 0u64;
    while read < want {
        read += plain.poll().await?.len() as u64;
        if started.elapsed() > STAGE_TIMEOUT {
            anyhow::bail!("plain consumer read {read} of {want}");
        }
    }
    let plain_rate = per_second(read as f64, started.elapsed());
    let started = Instant::now();
    let mut member = client.group_consumer(
        ConsumerConfig::default(),
        member(&format!("bench-consume-{}", tag()), topic, Offset::Earliest),
    )?;
    let mut read = 0u64;
    while read < want {
        read += member.poll().await?.records.len() as u64;
        if started.elapsed() > STAGE_TIMEOUT {
            anyhow::bail!("group member read {read} of {want}");
        }
    }
    let group_rate = per_second(read as f64, started.elapsed());
    member.close().await?;
    Ok((plain_rate, group_rate))
}
