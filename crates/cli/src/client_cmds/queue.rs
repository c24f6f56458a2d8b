//! `strata queue consume|describe|delete`, `strata dlq list|replay`, `strata request` and
//! `strata reply`: queue groups, their dead letters, and request/reply.

use crate::Format;
use crate::output::{self, Out, json_bytes, print_document, text_bytes};
use anyhow::Context as _;
use bytes::Bytes;
use serde_json::json;
use std::process::{ExitCode, Stdio};
use std::time::Duration;
use strata_client::{
    Client, ConsumerConfig, DeadLetter, Offset, ProducerConfig, ProducerRecord,
    QueueConsumerConfig, QueueMessage, QueueStart, Settlement,
};
use tokio::io::AsyncWriteExt as _;

/// What `strata queue consume` does with each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Acknowledge: done.
    Ack,
    /// Reject: to the dead-letter topic.
    Reject,
    /// Release: delivered again.
    Release,
}

/// `strata queue ...`
#[derive(Debug, clap::Subcommand)]
pub enum QueueCmd {
    /// Reads messages as a consumer of a queue group, settling each as told (by default
    /// acknowledging it once printed).
    Consume {
        /// The topic.
        topic: String,
        /// The queue group.
        #[arg(long)]
        group: String,
        /// Acknowledge each message (the default).
        #[arg(long, conflicts_with_all = ["reject", "release"])]
        ack: bool,
        /// Reject each message (it goes to the dead-letter topic).
        #[arg(long, conflicts_with = "release")]
        reject: bool,
        /// Release each message (it is delivered again).
        #[arg(long)]
        release: bool,
        /// Stop after this many messages.
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
        /// Stop once no message came for this long (e.g. 2s).
        #[arg(long, value_parser = humantime::parse_duration)]
        idle_exit: Option<Duration>,
        /// How long each message stays locked to this consumer.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        lock: Duration,
        /// Messages held at once per partition.
        #[arg(long, default_value_t = 100)]
        max_in_flight: u32,
        /// Deliveries before dead-lettering (when this consumer creates the group).
        #[arg(long, default_value_t = 5)]
        max_deliveries: u32,
        /// The dead-letter topic (when this consumer creates the group); "none" drops them.
        #[arg(long)]
        dead_letter: Option<String>,
        /// Where a new group starts: earliest (every stored record) or latest.
        #[arg(long, default_value = "earliest")]
        from: String,
    },
    /// Per partition: settled offset, available, acquired, delayed, acknowledged and
    /// dead-lettered counts, the oldest unacknowledged age, and consumers with their
    /// in-flight counts.
    Describe {
        /// The queue group ("" or omitted: every queue group).
        group: Option<String>,
    },
    /// Deletes a queue group's state on every partition of a topic (refused while consumers
    /// hold messages).
    Delete {
        /// The topic.
        topic: String,
        /// The queue group.
        #[arg(long)]
        group: String,
    },
}

/// `strata dlq ...`
#[derive(Debug, clap::Subcommand)]
pub enum DlqCmd {
    /// Prints the dead letters of a topic with where they came from and why.
    List {
        /// The source topic (its dead-letter topic is `<TOPIC>.dlq` unless --dlq names it).
        topic: String,
        /// The dead-letter topic.
        #[arg(long)]
        dlq: Option<String>,
        /// Stop after this many.
        #[arg(short = 'n', long = "count")]
        count: Option<u64>,
    },
    /// Publishes dead letters again (to their source topic, or --to), then settles them in
    /// the queue group --group over the dead-letter topic, so a second replay does not
    /// publish them twice. Stops once none came for --idle-exit.
    Replay {
        /// The source topic.
        topic: String,
        /// The dead-letter topic.
        #[arg(long)]
        dlq: Option<String>,
        /// Where to publish (default: the topic each came from).
        #[arg(long)]
        to: Option<String>,
        /// The queue group that records what was replayed.
        #[arg(long, default_value = "strata-dlq-replay")]
        group: String,
        /// Stop once no dead letter came for this long.
        #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
        idle_exit: Duration,
    },
}

/// `strata request TOPIC VALUE`
#[derive(Debug, clap::Args)]
pub struct RequestArgs {
    /// The topic the servers read.
    pub topic: String,
    /// The request's value.
    pub value: String,
    /// How long to wait for the reply.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// `strata reply TOPIC --group G -- COMMAND...` (creates TOPIC with one partition if it
/// does not exist)
#[derive(Debug, clap::Args)]
pub struct ReplyArgs {
    /// The topic requests are sent to.
    pub topic: String,
    /// The queue group the servers share.
    #[arg(long)]
    pub group: String,
    /// Requests handled at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Longest a command may run; it is then killed and the request gets an error reply.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// The command: it gets the request's value on standard input, and its standard output
    /// is the reply (a non-zero exit is an error reply).
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

fn message_line(format: Format, m: &QueueMessage) -> String {
    match format {
        Format::Json => {
            let headers: Vec<serde_json::Value> = m
                .headers
                .iter()
                .map(|(key, value)| json!({ "key": key, "value": json_bytes(value.as_ref()) }))
                .collect();
            json!({
                "topic": m.topic, "partition": m.partition, "offset": m.offset,
                "timestamp": m.timestamp_ms, "delivery_count": m.delivery_count,
                "key": json_bytes(m.key.as_ref()), "value": json_bytes(m.value.as_ref()),
                "headers": headers,
            })
            .to_string()
        }
        Format::Table | Format::Text => format!(
            "{} {} {} {} {}",
            m.partition,
            m.offset,
            m.delivery_count,
            text_bytes(m.key.as_ref()),
            text_bytes(m.value.as_ref()),
        ),
    }
}

/// Runs `strata queue ...`.
pub async fn run(client: &Client, format: Format, cmd: QueueCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        QueueCmd::Consume {
            topic,
            group,
            ack: _,
            reject,
            release,
            count,
            idle_exit,
            lock,
            max_in_flight,
            max_deliveries,
            dead_letter,
            from,
        } => {
            let mut config = QueueConsumerConfig::new(group, topic);
            config.lock = lock;
            // No more locked than it will print.
            config.max_in_flight = match count {
                Some(c) => max_in_flight
                    .min(u32::try_from(c).unwrap_or(u32::MAX))
                    .max(1),
                None => max_in_flight,
            };
            config.max_deliveries = max_deliveries;
            config.dead_letter = match dead_letter.as_deref() {
                None => DeadLetter::Default,
                Some("none") => DeadLetter::Drop,
                Some(t) => DeadLetter::Topic(t.to_string()),
            };
            config.start = match from.as_str() {
                "earliest" => QueueStart::Earliest,
                "latest" => QueueStart::Latest,
                other => anyhow::bail!("--from must be earliest or latest, got {other:?}"),
            };
            if count == Some(0) {
                return Ok(ExitCode::SUCCESS);
            }
            let mut consumer = client.queue_consumer(config)?;
            let mut out = Out::new();
            let mut seen = 0u64;
            loop {
                let next = match idle_exit {
                    Some(d) => match tokio::time::timeout(d, consumer.next()).await {
                        Ok(n) => n,
                        Err(_) => break,
                    },
                    None => consumer.next().await,
                };
                let Some(m) = next else { break };
                let m = m?;
                out.line(&message_line(format, &m))?;
                out.flush()?;
                let s = if reject {
                    Settlement::Reject("rejected with strata queue consume --reject".into())
                } else if release {
                    Settlement::Release(Duration::ZERO)
                } else {
                    Settlement::Ack
                };
                for r in consumer.settle(&[(&m, s)]).await? {
                    r.with_context(|| format!("settling offset {}", m.offset))?;
                }
                seen += 1;
                if count.is_some_and(|c| seen >= c) || out.closed() {
                    break;
                }
            }
            consumer.close().await?;
        }
        QueueCmd::Describe { group } => {
            let rows = client
                .queues()
                .describe(group.as_deref().unwrap_or(""))
                .await?;
            let mut t = output::table(&[
                "GROUP",
                "TOPIC",
                "PARTITION",
                "SETTLED BELOW",
                "END",
                "AVAILABLE",
                "ACQUIRED",
                "DELAYED",
                "ACKED",
                "DEAD-LETTERED",
                "OLDEST UNACKED",
                "CONSUMERS",
            ]);
            for r in &rows {
                t.add_row(vec![
                    r.group.clone(),
                    r.topic.clone(),
                    r.partition.to_string(),
                    r.settled_below.to_string(),
                    r.high_watermark.to_string(),
                    r.available.to_string(),
                    r.acquired.to_string(),
                    r.delayed.to_string(),
                    r.acked_total.to_string(),
                    (r.dead_lettered_total + r.dead_letter_pending).to_string(),
                    humantime::format_duration(Duration::from_millis(
                        r.oldest_unacked_age.as_millis() as u64,
                    ))
                    .to_string(),
                    r.consumers
                        .iter()
                        .map(|(c, n)| format!("{c}:{n}"))
                        .collect::<Vec<_>>()
                        .join(","),
                ]);
            }
            let json: Vec<serde_json::Value> = rows
                .iter()
                .map(|r| {
                    json!({
                        "group": r.group, "topic": r.topic, "partition": r.partition,
                        "settled_below": r.settled_below, "high_watermark": r.high_watermark,
                        "available": r.available, "acquired": r.acquired, "delayed": r.delayed,
                        "acked": r.acked_total, "dead_lettered": r.dead_lettered_total,
                        "dead_letter_pending": r.dead_letter_pending,
                        "oldest_unacked_ms": r.oldest_unacked_age.as_millis() as u64,
                        "max_deliveries": r.max_deliveries,
                        "dead_letter_topic": r.dead_letter_topic, "consumers": r.consumers,
                    })
                })
                .collect();
            print_document(format, &t.to_string(), &json!(json))?;
        }
        QueueCmd::Delete { topic, group } => {
            let n = client.queues().delete(&topic, &group).await?;
            print_document(
                format,
                &format!("deleted queue group {group} of {topic} on {n} partitions"),
                &json!({ "group": group, "topic": topic, "partitions": n }),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn header<'a>(headers: &'a [(String, Option<Bytes>)], key: &str) -> Option<&'a Bytes> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_ref())
}

fn header_text(headers: &[(String, Option<Bytes>)], key: &str) -> String {
    header(headers, key)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// Runs `strata dlq ...`.
pub async fn run_dlq(client: &Client, format: Format, cmd: DlqCmd) -> anyhow::Result<ExitCode> {
    match cmd {
        DlqCmd::List { topic, dlq, count } => {
            let dlq = dlq.unwrap_or_else(|| format!("{topic}.dlq"));
            let mut consumer = client.consumer(ConsumerConfig {
                fetch_wait: Duration::from_millis(200),
                ..ConsumerConfig::default()
            })?;
            consumer.assign_all(&dlq, Offset::Earliest).await?;
            let mut out = Out::new();
            let mut seen = 0u64;
            loop {
                for r in consumer.poll().await? {
                    if count.is_some_and(|c| seen >= c) {
                        break;
                    }
                    let h = |k: &str| header_text(&r.headers, k);
                    let line = match format {
                        Format::Json => json!({
                            "dlq_partition": r.partition, "dlq_offset": r.offset,
                            "topic": h("strata-dlq-topic"), "partition": h("strata-dlq-partition"),
                            "offset": h("strata-dlq-offset"), "deliveries": h("strata-dlq-deliveries"),
                            "group": h("strata-dlq-group"), "reason": h("strata-dlq-reason"),
                            "key": json_bytes(r.key.as_ref()), "value": json_bytes(r.value.as_ref()),
                        })
                        .to_string(),
                        Format::Table | Format::Text => format!(
                            "{}/{}@{} deliveries={} group={} reason={:?} {}",
                            h("strata-dlq-topic"),
                            h("strata-dlq-partition"),
                            h("strata-dlq-offset"),
                            h("strata-dlq-deliveries"),
                            h("strata-dlq-group"),
                            h("strata-dlq-reason"),
                            text_bytes(r.value.as_ref()),
                        ),
                    };
                    out.line(&line)?;
                    seen += 1;
                }
                if consumer.caught_up() || count.is_some_and(|c| seen >= c) {
                    break;
                }
            }
            out.flush()?;
        }
        DlqCmd::Replay {
            topic,
            dlq,
            to,
            group,
            idle_exit,
        } => {
            let dlq = dlq.unwrap_or_else(|| format!("{topic}.dlq"));
            let mut config = QueueConsumerConfig::new(group, dlq);
            config.dead_letter = DeadLetter::Drop;
            let mut consumer = client.queue_consumer(config)?;
            let producer = client.producer(ProducerConfig::default())?;
            let mut replayed = 0u64;
            while let Ok(Some(m)) = tokio::time::timeout(idle_exit, consumer.next()).await {
                let m = m?;
                let target = to
                    .clone()
                    .unwrap_or_else(|| header_text(&m.headers, "strata-dlq-topic"));
                let target = if target.is_empty() {
                    topic.clone()
                } else {
                    target
                };
                let mut record = ProducerRecord::new(target, m.value.clone().unwrap_or_default());
                record.key = m.key.clone();
                record.headers = m
                    .headers
                    .iter()
                    .filter(|(k, _)| !k.starts_with("strata-dlq-"))
                    .cloned()
                    .collect();
                producer.send(record).await?.await?;
                consumer.ack(&m).await?;
                replayed += 1;
            }
            consumer.close().await?;
            print_document(
                format,
                &format!("replayed {replayed} dead letters"),
                &json!({ "replayed": replayed }),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata request`.
pub async fn run_request(
    client: &Client,
    format: Format,
    args: RequestArgs,
) -> anyhow::Result<ExitCode> {
    let requester = client.requester().await?;
    let reply = requester
        .request(&args.topic, Bytes::from(args.value), args.timeout)
        .await?;
    print_document(
        format,
        &text_bytes(reply.value.as_ref()),
        &json!({ "offset": reply.offset, "value": json_bytes(reply.value.as_ref()) }),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `strata reply`: serves until interrupted.
pub async fn run_reply(client: &Client, args: ReplyArgs) -> anyhow::Result<ExitCode> {
    // Requests need a topic: one partition unless it exists already.
    match client
        .admin()
        .create_topic(&args.topic, 1, 0, Default::default())
        .await
    {
        Ok(_) => eprintln!("created topic {} (1 partition)", args.topic),
        Err(strata_client::Error::TopicExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let command = std::sync::Arc::new(args.command);
    let timeout = args.timeout;
    strata_client::serve(
        client.clone(),
        &args.topic,
        &args.group,
        args.concurrency,
        move |m| {
            let command = command.clone();
            async move {
                let mut child = tokio::process::Command::new(&command[0])
                    .args(&command[1..])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::inherit())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| format!("cannot run {:?}: {e}", command[0]))?;
                // Written while the output is read, so neither side waits on the other.
                if let Some(mut stdin) = child.stdin.take() {
                    let value = m.value.clone().unwrap_or_default();
                    tokio::spawn(async move {
                        let _ = stdin.write_all(&value).await;
                    });
                }
                let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
                    Ok(out) => out.map_err(|e| format!("waiting for {:?}: {e}", command[0]))?,
                    // Dropping the child kills it (kill_on_drop).
                    Err(_) => {
                        return Err(format!(
                            "{:?} did not finish within {timeout:?}",
                            command[0]
                        ));
                    }
                };
                if out.status.success() {
                    Ok(Bytes::from(out.stdout))
                } else {
                    Err(format!("{:?} exited with {}", command[0], out.status))
                }
            }
        },
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
