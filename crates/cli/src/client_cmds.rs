//! The client commands: cluster, topic, produce, consume, bench.

use crate::{Cmd, Format};
use std::path::PathBuf;

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
}

/// `strata consume`
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    /// Topic.
    pub topic: String,
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
}

/// Options of `strata bench`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Records to produce (or consume).
    #[arg(long, default_value_t = 100_000)]
    pub records: u64,
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
    /// Records per second (e2e; 0 = as fast as possible).
    #[arg(long, default_value_t = 5000)]
    pub rate: u64,
    /// Write the result as JSON to this file too.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

/// Runs a client command against `brokers`.
pub async fn run(
    brokers: &str,
    format: Format,
    cmd: Cmd,
) -> anyhow::Result<std::process::ExitCode> {
    let _ = (brokers, format, cmd);
    anyhow::bail!("client commands are being written")
}
