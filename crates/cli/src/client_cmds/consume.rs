//! `strata consume`: prints records of one topic (all partitions, or one) from a start
//! position, until a count, the end of the log (`--exit-at-end`), or Ctrl-C. With `--group`
//! it joins a consumer group instead (topics or a pattern), prints what the group assigns it
//! from the committed offsets, commits as it goes and at the end, and leaves the group.

use super::parse_time::{parse_from, time_from_millis};
use super::{ConsumeArgs, connect};
use crate::Format;
use crate::output::{Out, json_bytes, text_bytes};
use serde_json::json;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};
use strata_client::{
    Client, ConsumedRecord, ConsumerConfig, GroupConsumerConfig, Offset, SubscriptionConfig,
};

/// The fetch wait with `--exit-at-end`: a caught-up partition answers an empty fetch after
/// this long, so the command ends soon after the last record.
const EXIT_AT_END_FETCH_WAIT: Duration = Duration::from_millis(100);

/// Runs `strata consume`.
pub async fn run(brokers: &str, format: Format, args: ConsumeArgs) -> anyhow::Result<ExitCode> {
    let start =
        parse_from(&args.from, SystemTime::now()).map_err(|e| anyhow::anyhow!("--from: {e}"))?;
    if args.count == Some(0) {
        return Ok(ExitCode::SUCCESS);
    }
    let client = connect(brokers).await?;
    let mut config = ConsumerConfig::default();
    if args.exit_at_end {
        config.fetch_wait = EXIT_AT_END_FETCH_WAIT;
    }
    if let Some(group) = args.group.clone() {
        return run_group(&client, format, config, group, start, args).await;
    }
    if let Some(pattern) = args.pattern.clone() {
        return run_subscription(&client, format, pattern, start, args).await;
    }
    let Some(topic) = args.topic.as_deref() else {
        anyhow::bail!("name a topic, or a --pattern");
    };
    let mut consumer = client.consumer(config)?;
    match args.partition {
        Some(p) => consumer.assign(topic, [p], start).await?,
        None => consumer.assign_all(topic, start).await?,
    }
    let mut printer = Printer::new(format, args.count);
    let signal = crate::shutdown_signal();
    tokio::pin!(signal);
    loop {
        let records = tokio::select! {
            records = consumer.poll() => records?,
            _ = &mut signal => break,
        };
        if printer.print(&records)? || (args.exit_at_end && consumer.caught_up()) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints records until a count: what every consume mode shares.
struct Printer {
    out: Out,
    format: Format,
    printed: u64,
    count: Option<u64>,
}

impl Printer {
    fn new(format: Format, count: Option<u64>) -> Printer {
        Printer {
            out: Out::new(),
            format,
            printed: 0,
            count,
        }
    }

    /// Prints `records` (up to the count) and flushes; true when the command should stop
    /// (the count reached, or stdout closed).
    fn print(&mut self, records: &[ConsumedRecord]) -> anyhow::Result<bool> {
        for record in records {
            if self.done() {
                break;
            }
            self.out.line(&record_line(self.format, record))?;
            self.printed += 1;
        }
        self.out.flush()?;
        Ok(self.out.closed() || self.done())
    }

    fn done(&self) -> bool {
        self.count.is_some_and(|count| self.printed >= count)
    }
}

/// One record as a line: `partition offset timestamp key value` (text and table), or a JSON
/// object.
fn record_line(format: Format, r: &ConsumedRecord) -> String {
    match format {
        Format::Json => {
            let headers: Vec<serde_json::Value> = r
                .headers
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": json_bytes(value.as_ref()) }))
                .collect();
            json!({
                "topic": r.topic,
                "partition": r.partition,
                "offset": r.offset,
                "timestamp": r.timestamp_ms,
                "key": json_bytes(r.key.as_ref()),
                "value": json_bytes(r.value.as_ref()),
                "headers": headers,
            })
            .to_string()
        }
        Format::Table | Format::Text => format!(
            "{} {} {} {} {}",
            r.partition,
            r.offset,
            humantime::format_rfc3339_millis(time_from_millis(r.timestamp_ms)),
            text_bytes(r.key.as_ref()),
            text_bytes(r.value.as_ref()),
        ),
    }
}

/// `strata consume --group`: a member of `group` until a count, Ctrl-C, or (with
/// `--exit-at-end`) the end of every partition it holds.
async fn run_group(
    client: &Client,
    format: Format,
    config: ConsumerConfig,
    group: String,
    start: Offset,
    args: ConsumeArgs,
) -> anyhow::Result<ExitCode> {
    if args.partition.is_some() {
        anyhow::bail!("--partition does not go with --group: the group assigns partitions");
    }
    if args.topic.is_none() && args.pattern.is_none() {
        anyhow::bail!("name a topic or a --pattern");
    }
    let member = GroupConsumerConfig {
        pattern: args.pattern.clone(),
        client_id: "strata-cli".into(),
        start,
        ..GroupConsumerConfig::new(group, args.topic.clone())
    };
    let mut consumer = client.group_consumer(config, member)?;
    let mut printer = Printer::new(format, args.count);
    let signal = crate::shutdown_signal();
    tokio::pin!(signal);
    loop {
        let polled = tokio::select! {
            polled = consumer.poll() => polled?,
            _ = &mut signal => break,
        };
        for event in &polled.events {
            tracing::info!(?event, "assignment changed");
        }
        if printer.print(&polled.records)? || (args.exit_at_end && consumer.caught_up()) {
            break;
        }
    }
    consumer.close().await?;
    Ok(ExitCode::SUCCESS)
}

/// `strata consume --pattern P` without a group: an ephemeral subscription to the matching
/// topics (and the topic named, if any) until a count or Ctrl-C.
async fn run_subscription(
    client: &Client,
    format: Format,
    pattern: String,
    start: Offset,
    args: ConsumeArgs,
) -> anyhow::Result<ExitCode> {
    if args.partition.is_some() || args.exit_at_end {
        anyhow::bail!(
            "--partition and --exit-at-end do not go with a --pattern subscription (it follows new topics until stopped)"
        );
    }
    let mut config = SubscriptionConfig::pattern(pattern);
    config.topics = args.topic.into_iter().collect();
    config.start = start;
    let mut sub = client.subscribe(config)?;
    let mut printer = Printer::new(format, args.count);
    let signal = crate::shutdown_signal();
    tokio::pin!(signal);
    loop {
        let next = tokio::select! {
            next = sub.next() => next,
            _ = &mut signal => break,
        };
        let Some(records) = next else { break };
        if printer.print(&records?)? {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}
