//! The client commands: cluster, topic, group, produce, consume, bench.
//!
//! - this file: the arguments of every client command, the dispatch, and the admin commands
//!   (`cluster ...`, `topic ...`)
//! - `client_cmds/produce.rs`: `strata produce` (one value, or pipelined stdin lines)
//! - `client_cmds/consume.rs`: `strata consume` (assigned partitions, or as a group member)
//! - `client_cmds/group.rs`: `strata group list|describe|reset|delete`
//! - `client_cmds/parse_time.rs`: `--from` (earliest, latest, offset, RFC 3339, `-10m`)
//! - `client_cmds/bench.rs`: `strata bench produce|consume|e2e`
//! - `output.rs` (the crate's): formats, tables, buffered stdout

mod bench;
mod consume;
mod group;
pub use group::GroupCmd;
mod parse_time;
mod produce;
mod queue;
pub use queue::{DlqCmd, QueueCmd, ReplyArgs, RequestArgs};

use crate::output::{self, id_list, or_dash, print_document};
use crate::{Cmd, Format};
use anyhow::Context;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use strata_client::{Admin, Client, ClusterStatus, TopicDescription};

/// `strata cluster ...`
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCmd {
    /// Nodes, controller, partition health. Exits 0 only when the cluster is healthy.
    Status,
    /// Moves replicas so every active node holds an even share.
    Rebalance,
    /// Moves every replica off node ID (then it may be stopped).
    Decommission {
        /// The node.
        id: u64,
    },
}

/// `strata topic ...`
#[derive(Debug, clap::Subcommand)]
pub enum TopicCmd {
    /// Creates a topic.
    Create {
        /// Topic name.
        name: String,
        /// Partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Replication factor (default: the cluster's default).
        #[arg(long)]
        replication_factor: Option<u32>,
        /// Topic config KEY=VALUE (retention.ms, retention.bytes, segment.bytes,
        /// max.message.bytes); repeatable.
        #[arg(long = "config", value_name = "KEY=VALUE")]
        configs: Vec<String>,
    },
    /// Lists topics.
    List,
    /// Describes a topic: partitions, leaders, replicas, configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Deletes a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Grows a topic's partition count.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total.
        #[arg(long)]
        partitions: u32,
    },
    /// Sets or removes topic configs.
    AlterConfig {
        /// Topic name.
        name: String,
        /// KEY=VALUE to set; repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        /// KEY to reset to the default; repeatable.
        #[arg(long = "remove", value_name = "KEY")]
        remove: Vec<String>,
    },
}

/// Acknowledgement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AcksArg {
    /// Committed by a majority, each fsynced.
    All,
    /// Appended by the leader.
    Leader,
    /// Not acknowledged.
    None,
}

/// Codec of produced batches (Kafka's `compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressionArg {
    /// Uncompressed.
    None,
    /// gzip.
    Gzip,
    /// snappy (xerial framing, as the Java client writes it).
    Snappy,
    /// lz4 (frame format).
    Lz4,
    /// zstd.
    Zstd,
}

impl From<CompressionArg> for strata_record::Compression {
    fn from(c: CompressionArg) -> strata_record::Compression {
        match c {
            CompressionArg::None => strata_record::Compression::None,
            CompressionArg::Gzip => strata_record::Compression::Gzip,
            CompressionArg::Snappy => strata_record::Compression::Snappy,
            CompressionArg::Lz4 => strata_record::Compression::Lz4,
            CompressionArg::Zstd => strata_record::Compression::Zstd,
        }
    }
}

/// `strata produce`
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    /// Topic.
    pub topic: String,
    /// The record's value; without it, one record per stdin line.
    pub value: Option<String>,
    /// Record key.
    #[arg(long)]
    pub key: Option<String>,
    /// Partition (default: by key hash, else spread).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Acknowledgement level.
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    pub acks: AcksArg,
    /// Header KEY=VALUE; repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE")]
    pub headers: Vec<String>,
    /// Compress batches with this codec (batches that would not shrink go uncompressed).
    #[arg(long, value_enum, default_value_t = CompressionArg::None)]
    pub compression: CompressionArg,
}

/// `strata consume`
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// Topic (optional with `--pattern`).
    pub topic: Option<String>,
    /// Join this consumer group: the group assigns partitions and the command commits as it
    /// goes (`--from` then applies only to partitions without a committed offset).
    #[arg(long)]
    pub group: Option<String>,
    /// Read every topic whose name matches this subject pattern (`orders.*`: one more token;
    /// `orders.>`: one or more), including topics created later: as a group member with
    /// `--group`, else as an ephemeral subscription (no stored state) until Ctrl-C or a count.
    #[arg(long)]
    pub pattern: Option<String>,
    /// Partition (default: all).
    #[arg(long)]
    pub partition: Option<u32>,
    /// Start: earliest, latest, an offset, an RFC 3339 time, or a relative time like -10m.
    #[arg(long, default_value = "earliest", allow_hyphen_values = true)]
    pub from: String,
    /// Stop after COUNT records.
    #[arg(short = 'n', long = "count")]
    pub count: Option<u64>,
    /// Stop once caught up with the end of every partition.
    #[arg(long)]
    pub exit_at_end: bool,
}

/// `strata bench ...`
#[derive(Debug, clap::Subcommand)]
pub enum BenchCmd {
    /// Produce throughput and latency.
    Produce(BenchArgs),
    /// Consume (replay) throughput.
    Consume(BenchArgs),
    /// End-to-end latency at a fixed rate.
    E2e(BenchArgs),
    /// Consumer groups: commit throughput and latency, rebalance time (3 to 4 members on 64
    /// partitions), fan-out to 0/1/4/16 groups while producing, group against plain replay.
    Groups(BenchArgs),
    /// Queue groups: acquire + acknowledge throughput with 1, 4 and 16 consumers on 1 and
    /// 16 partitions against a group member's replay, redelivery latency, request/reply
    /// round trip.
    Queues(BenchArgs),
    /// Produce through the Kafka listener (`--kafka-bootstrap`) with a small pipelined
    /// idempotent Kafka producer, to set beside `bench produce` on the same cluster.
    Kafka(BenchArgs),
}

/// Options of `strata bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Records to produce (or consume).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
    /// `bench kafka`: a node's Kafka listener.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub kafka_bootstrap: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Concurrent producers.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Partitions of the bench topic.
    #[arg(long, default_value_t = 1)]
    pub partitions: u32,
    /// Acknowledgement level.
    #[arg(long, value_enum, default_value_t = AcksArg::All)]
    pub acks: AcksArg,
    /// Topic (created if missing; default: a new topic per run).
    #[arg(long)]
    pub topic: Option<String>,
    /// Producer linger in milliseconds.
    #[arg(long, default_value_t = 1)]
    pub linger_ms: u64,
    /// Records each producer task keeps sent and not yet acknowledged: it sends the next one
    /// only when fewer are outstanding (a client that waits for its acknowledgements, as NATS
    /// and Redis clients do). 0: no bound beyond the producer's buffer.
    #[arg(long, default_value_t = 0)]
    pub in_flight: usize,
    /// Offset commits to time (groups).
    #[arg(long, default_value_t = 5000)]
    pub commits: u64,
    /// Records per second (e2e; 0 = as fast as possible).
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// Write the result as JSON to this file too.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// How long `topic create` waits for every new partition to elect a leader, so that a
/// produce right after it finds one.
const CREATE_LEADERS_WAIT: Duration = Duration::from_secs(30);

/// Runs a client command against `brokers` (comma-separated client addresses).
pub async fn run(brokers: &str, format: Format, cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Cluster(cmd) => cluster(&connect(brokers).await?, format, cmd).await,
        Cmd::Topic(cmd) => topic(&connect(brokers).await?, format, cmd).await,
        Cmd::Group(cmd) => group::run(&connect(brokers).await?, format, cmd).await,
        Cmd::Queue(cmd) => queue::run(&connect(brokers).await?, format, cmd).await,
        Cmd::Dlq(cmd) => queue::run_dlq(&connect(brokers).await?, format, cmd).await,
        Cmd::Request(args) => queue::run_request(&connect(brokers).await?, format, args).await,
        Cmd::Reply(args) => queue::run_reply(&connect(brokers).await?, args).await,
        Cmd::Produce(args) => produce::run(brokers, format, args).await,
        Cmd::Consume(args) => consume::run(brokers, format, args).await,
        Cmd::Bench(cmd) => bench::run(brokers, format, cmd).await,
        Cmd::Node(_) | Cmd::Dev(_) => anyhow::bail!("not a client command"),
    }
}

/// Connects to the cluster through any of `brokers`.
async fn connect(brokers: &str) -> anyhow::Result<Client> {
    Client::connect(brokers.split(','))
        .await
        .with_context(|| format!("cannot reach the cluster at {brokers}"))
}

/// Splits `KEY=VALUE` (`what` names the option in the error).
fn parse_key_value(what: &str, s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.to_string()))
        }
        _ => anyhow::bail!("{what} {s:?} is not KEY=VALUE"),
    }
}

/// `KEY=VALUE` options as a map (a repeated key keeps its last value).
fn parse_configs(what: &str, items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    items.iter().map(|s| parse_key_value(what, s)).collect()
}

fn exit_code(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn cluster(client: &Client, format: Format, cmd: ClusterCmd) -> anyhow::Result<ExitCode> {
    let admin = client.admin();
    match cmd {
        ClusterCmd::Status => {
            let status = admin.cluster_status().await?;
            print_document(format, &status_text(format, &status), &json!(status))?;
            if !status.healthy {
                eprintln!("cluster is not healthy: {}", unhealthy_reasons(&status));
            }
            Ok(exit_code(status.healthy))
        }
        ClusterCmd::Rebalance => {
            let moves = admin.rebalance().await?;
            print_document(
                format,
                &format!("moves started: {moves}"),
                &json!({ "moves": moves }),
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ClusterCmd::Decommission { id } => {
            let moves = admin
                .decommission(id)
                .await
                .with_context(|| format!("cannot decommission node {id}"))?;
            print_document(
                format,
                &format!("node {id} is decommissioning; moves started: {moves}"),
                &json!({ "node_id": id, "moves": moves }),
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn status_text(format: Format, s: &ClusterStatus) -> String {
    let mut out = String::new();
    if format == Format::Table {
        let health = if s.healthy { "healthy" } else { "NOT HEALTHY" };
        let _ = writeln!(out, "Cluster {}: {health}", s.cluster_id);
        let _ = writeln!(out, "Controller: {}", or_dash(s.controller_id));
        let _ = writeln!(
            out,
            "Partitions: {}, leaderless: {}, under-replicated: {}, moves in progress: {}\n",
            s.partitions, s.leaderless, s.under_replicated, s.moves_in_progress
        );
        let mut t = output::table(&[
            "ID",
            "CLIENT ADDR",
            "PEER ADDR",
            "HTTP ADDR",
            "STATE",
            "ALIVE",
        ]);
        for n in &s.nodes {
            t.add_row(vec![
                n.node_id.to_string(),
                n.client_addr.clone(),
                n.peer_addr.clone(),
                n.http_addr.clone(),
                n.state.clone(),
                if n.alive { "yes" } else { "NO" }.to_string(),
            ]);
        }
        let _ = write!(out, "{t}");
    } else {
        let _ = writeln!(
            out,
            "cluster_id={} healthy={} controller={} partitions={} leaderless={} \
             under_replicated={} moves_in_progress={}",
            s.cluster_id,
            s.healthy,
            or_dash(s.controller_id),
            s.partitions,
            s.leaderless,
            s.under_replicated,
            s.moves_in_progress
        );
        for n in &s.nodes {
            let _ = writeln!(
                out,
                "node={} client_addr={} peer_addr={} http_addr={} state={} alive={}",
                n.node_id, n.client_addr, n.peer_addr, n.http_addr, n.state, n.alive
            );
        }
    }
    out
}

/// Why `s` is not healthy, in words.
fn unhealthy_reasons(s: &ClusterStatus) -> String {
    let mut reasons = Vec::new();
    if s.controller_id.is_none() {
        reasons.push("the controller has no leader".to_string());
    }
    let down: Vec<u64> = s
        .nodes
        .iter()
        .filter(|n| !n.alive)
        .map(|n| n.node_id)
        .collect();
    if !down.is_empty() {
        reasons.push(format!("nodes not alive: {}", id_list(&down)));
    }
    if s.leaderless > 0 {
        reasons.push(format!("{} leaderless partitions", s.leaderless));
    }
    if s.under_replicated > 0 {
        reasons.push(format!(
            "{} under-replicated partitions",
            s.under_replicated
        ));
    }
    if reasons.is_empty() {
        reasons.push("as reported by the cluster".to_string());
    }
    reasons.join(", ")
}

async fn topic(client: &Client, format: Format, cmd: TopicCmd) -> anyhow::Result<ExitCode> {
    let admin = client.admin();
    match cmd {
        TopicCmd::Create {
            name,
            partitions,
            replication_factor,
            configs,
        } => {
            let configs = parse_configs("--config", &configs)?;
            let created = admin
                .create_topic(&name, partitions, replication_factor.unwrap_or(0), configs)
                .await;
            created_or_err(&name, created)?;
            let topic = wait_for_leaders(&admin, &name, CREATE_LEADERS_WAIT).await?;
            print_topic(format, &topic)?;
        }
        TopicCmd::List => {
            let topics = admin.list_topics().await?;
            let text = if format == Format::Table {
                let mut t = output::table(&["NAME", "PARTITIONS", "REPLICATION FACTOR", "ID"]);
                for topic in &topics {
                    t.add_row(vec![
                        topic.name.clone(),
                        topic.partitions.len().to_string(),
                        topic.replication_factor.to_string(),
                        topic.topic_id.clone(),
                    ]);
                }
                t.to_string()
            } else {
                topics
                    .iter()
                    .map(|t| {
                        format!(
                            "{} partitions={} replication_factor={} id={}\n",
                            t.name,
                            t.partitions.len(),
                            t.replication_factor,
                            t.topic_id
                        )
                    })
                    .collect()
            };
            print_document(format, &text, &json!(topics))?;
        }
        TopicCmd::Describe { name } => {
            let topic = admin.describe_topic(&name).await?;
            print_topic(format, &topic)?;
        }
        TopicCmd::Delete { name } => {
            let id = admin.delete_topic(&name).await?;
            print_document(
                format,
                &format!("deleted topic {name} (id {id})"),
                &json!({ "deleted": name, "topic_id": id }),
            )?;
        }
        TopicCmd::AddPartitions { name, partitions } => {
            let topic = admin.add_partitions(&name, partitions).await?;
            print_topic(format, &topic)?;
        }
        TopicCmd::AlterConfig { name, set, remove } => {
            if set.is_empty() && remove.is_empty() {
                anyhow::bail!("nothing to change: give --set KEY=VALUE or --remove KEY");
            }
            let set = parse_configs("--set", &set)?;
            let topic = admin.alter_topic_config(&name, set, remove).await?;
            print_topic(format, &topic)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The outcome of creating `name`, where an answer without the topic counts as created: a
/// node that forwarded the creation to the controller may answer before it applied it
/// itself. [`wait_for_leaders`] then waits for the topic to show up.
fn created_or_err(
    name: &str,
    created: Result<TopicDescription, strata_client::Error>,
) -> anyhow::Result<()> {
    match created {
        Ok(_) => Ok(()),
        Err(strata_client::Error::Other { code, .. }) if code == "InvalidResponse" => Ok(()),
        Err(e) => Err(anyhow::Error::from(e).context(format!("cannot create topic {name:?}"))),
    }
}

/// Describes the topic `name`, just created, until every partition reports a leader in two
/// answers in a row (successive answers come from different nodes, which learn of leaders at
/// different moments), or fails after `timeout` naming the partitions without one. A node
/// that does not know the topic yet counts as not ready.
async fn wait_for_leaders(
    admin: &Admin,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<TopicDescription> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut wait = Duration::from_millis(20);
    let mut ready_answers = 0;
    loop {
        let leaderless: Vec<u64> = match admin.describe_topic(name).await {
            Ok(topic) => {
                let leaderless: Vec<u64> = topic
                    .partitions
                    .iter()
                    .filter(|p| p.leader_id.is_none())
                    .map(|p| u64::from(p.partition))
                    .collect();
                if leaderless.is_empty() {
                    ready_answers += 1;
                    if ready_answers == 2 {
                        return Ok(topic);
                    }
                    continue;
                }
                leaderless
            }
            Err(strata_client::Error::UnknownTopic { .. })
                if tokio::time::Instant::now() + wait <= deadline =>
            {
                Vec::new()
            }
            Err(e) => return Err(e.into()),
        };
        ready_answers = 0;
        if tokio::time::Instant::now() + wait > deadline {
            anyhow::bail!(
                "topic {name:?} was created, but partitions {} have no leader after {}",
                id_list(&leaderless),
                humantime::format_duration(timeout)
            );
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_millis(200));
    }
}

fn print_topic(format: Format, t: &TopicDescription) -> anyhow::Result<()> {
    print_document(format, &topic_text(format, t), &json!(t))
}

fn topic_text(format: Format, t: &TopicDescription) -> String {
    let mut out = String::new();
    let configs: Vec<String> = t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if format == Format::Table {
        let _ = writeln!(
            out,
            "Topic: {}  id: {}  partitions: {}  replication factor: {}",
            t.name,
            t.topic_id,
            t.partitions.len(),
            t.replication_factor
        );
        let configs = if configs.is_empty() {
            "(defaults)".to_string()
        } else {
            configs.join("  ")
        };
        let _ = writeln!(out, "Configs: {configs}\n");
        let mut table = output::table(&[
            "PARTITION",
            "LEADER",
            "REPLICAS",
            "VOTERS",
            "HIGH WATERMARK",
        ]);
        for p in &t.partitions {
            table.add_row(vec![
                p.partition.to_string(),
                or_dash(p.leader_id),
                id_list(&p.replicas),
                id_list(&p.voters),
                or_dash(p.high_watermark),
            ]);
        }
        let _ = write!(out, "{table}");
    } else {
        let _ = writeln!(
            out,
            "topic={} id={} partitions={} replication_factor={}",
            t.name,
            t.topic_id,
            t.partitions.len(),
            t.replication_factor
        );
        for c in configs {
            let _ = writeln!(out, "config {c}");
        }
        for p in &t.partitions {
            let _ = writeln!(
                out,
                "partition={} leader={} replicas={} voters={} high_watermark={}",
                p.partition,
                or_dash(p.leader_id),
                id_list(&p.replicas),
                id_list(&p.voters),
                or_dash(p.high_watermark)
            );
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("--config", "retention.ms=1000").unwrap(),
            ("retention.ms".to_string(), "1000".to_string())
        );
        assert_eq!(
            parse_key_value("--header", "h=a=b").unwrap(),
            ("h".to_string(), "a=b".to_string())
        );
        assert_eq!(
            parse_key_value("--header", "h=").unwrap(),
            ("h".to_string(), String::new())
        );
        let e = parse_key_value("--config", "retention.ms").unwrap_err();
        assert!(e.to_string().contains("KEY=VALUE"));
        assert!(parse_key_value("--config", "=1").is_err());
        let m = parse_configs("--set", &["a=1".into(), "a=2".into()]).unwrap();
        assert_eq!(m["a"], "2");
    }
}
