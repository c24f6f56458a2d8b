//! Node configuration: defaults ([`NodeConfig::default`]), then a TOML file, then `STRATA_*`
//! environment variables, then command-line flags ([`NodeFlags`]), each overriding the one
//! before. `deploy/node.example.toml` lists every key with its default.

use figment::Figment;
use figment::providers::{Env, Serialized};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The default log filter: Strata at info; openraft at error only. openraft's warnings are
/// the expected events of a running cluster seen from inside one Raft group (a heartbeat to a
/// slow or stopped peer timed out, a candidate's vote changed under a message, a replication
/// call to a node that is shutting down), repeated per group: with hundreds of groups they
/// bury everything else. Strata reports what they mean once per node (liveness, health,
/// readiness). `log = "info,openraft=warn"` shows them.
pub const DEFAULT_LOG: &str = "info,openraft=error";

/// Everything a node can be told. Keys are the TOML keys; the environment variable of a key is
/// `STRATA_` and the key in upper case (`data_dir` is `STRATA_DATA_DIR`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    /// This node's id when bootstrapping a new cluster (with `initial_cluster`). Later starts
    /// take the id from the data directory and only check this one against it.
    pub node_id: Option<u64>,
    /// Where the node keeps its identity, the controller log and the partitions.
    pub data_dir: PathBuf,
    /// Client API listen address (gRPC). Port 0 picks a free port (see `addresses.json`).
    pub client_addr: String,
    /// Peer (Raft) listen address.
    pub peer_addr: String,
    /// HTTP listen address (`/livez`, `/readyz`, `/metrics`).
    pub http_addr: String,
    /// Client address other nodes and clients should use (default: the bound address).
    pub advertise_client_addr: Option<String>,
    /// Peer address other nodes should use (default: the bound address).
    pub advertise_peer_addr: Option<String>,
    /// HTTP address to advertise (default: the bound address).
    pub advertise_http_addr: Option<String>,
    /// The voters of a new cluster: `1@host:port,2@host:port,...` (peer addresses). Used only
    /// when the data directory is empty.
    pub initial_cluster: Option<String>,
    /// Client address of any node of an existing cluster to join as a new node. Used only
    /// when the data directory is empty.
    pub join: Option<String>,
    /// Replication factor of topics created without one (capped by the active nodes).
    pub default_replication_factor: u32,
    /// Most partitions a topic may have.
    pub partitions_per_topic_max: u32,
    /// Default `max.message.bytes` of new topics: the largest batch a producer may send.
    pub message_bytes_max: u32,
    /// Default `segment.bytes` of new topics.
    pub segment_bytes: u64,
    /// Default `retention.ms` of new topics (-1: forever).
    pub retention_ms: i64,
    /// Default `retention.bytes` of new topics (-1: no limit).
    pub retention_bytes: i64,
    /// Most bytes one fetch returns (a larger request is capped to this).
    pub fetch_bytes_max: u32,
    /// Longest a fetch waits for new records (a longer request is capped to this).
    pub fetch_wait_max_ms: u32,
    /// Most client connections open at once; more are refused (closed at accept).
    pub connections_max: u32,
    /// Most concurrent requests (HTTP/2 streams) per client connection.
    pub streams_per_connection_max: u32,
    /// Longest a client request may take before the node cancels it (subscriptions excepted).
    pub request_timeout_ms: u64,
    /// Below this many free bytes on the data directory's disk, leaders refuse produce
    /// (RESOURCE_EXHAUSTED).
    pub disk_free_bytes_min: u64,
    /// How often leaders apply retention.
    pub retention_check_interval_ms: u64,
    /// Threads that make appends durable (`fdatasync`), shared by every partition log of the
    /// node: up to this many logs sync at once. One log's syncs never overlap, so more than
    /// one only helps with several busy partitions (4 by default).
    pub flush_threads: u32,
    /// Raft heartbeat interval.
    pub heartbeat_ms: u64,
    /// Raft election timeout, lower bound.
    pub election_timeout_min_ms: u64,
    /// Raft election timeout, upper bound.
    pub election_timeout_max_ms: u64,
    /// A partition group with no client activity for this long goes to sleep (no heartbeats or
    /// ticks; one liveness message per node instead). 0 keeps every group awake.
    pub idle_group_sleep_ms: u64,
    /// Longest a graceful shutdown spends handing leadership away.
    pub shutdown_timeout_ms: u64,
    /// Partitions of `__consumer_offsets`, the internal topic of consumer-group state, when
    /// the first group request creates it (fixed afterwards: a group's partition is a hash of
    /// its name modulo this count).
    pub group_offsets_partitions: u32,
    /// Segment size of `__consumer_offsets` (Kafka's `offsets.topic.segment.bytes`): its
    /// coordinators compact the log to the latest segment once it holds more than one.
    pub group_offsets_segment_bytes: u64,
    /// How often group members heartbeat, as coordinators tell them.
    pub group_heartbeat_interval_ms: u32,
    /// Most records one consumer of a queue group may hold locked on one partition (the
    /// largest `max_in_flight` a consumer may ask for).
    pub queue_in_flight_max: u32,
    /// Most records of a partition between a queue group's settled prefix and the newest
    /// record it handed out: bounds each group's replicated state per partition.
    pub queue_window: u32,
    /// Kafka wire-protocol listen address (`None`: no Kafka listener). Port 0 picks a free
    /// port (see `addresses.json`).
    pub kafka_addr: Option<String>,
    /// Kafka address other nodes' Metadata answers name (default: the bound address).
    pub advertise_kafka_addr: Option<String>,
    /// Most Kafka connections open at once; more are closed at accept.
    pub kafka_connections_max: u32,
    /// Most requests of one Kafka connection being served at once (clients pipeline); the
    /// connection reads no more until one is answered.
    pub kafka_in_flight_max: u32,
    /// Largest Kafka request frame in bytes (Kafka's `socket.request.max.bytes`).
    pub kafka_frame_bytes_max: u32,
    /// Whether a Kafka Metadata request that allows it creates the unknown topics it names
    /// (Kafka's `auto.create.topics.enable`; off by default).
    pub kafka_auto_create_topics: bool,
    /// Partitions of a topic created through the Kafka listener without a count (Kafka's
    /// `num.partitions`).
    pub kafka_num_partitions: u32,
    /// Log filter (tracing-subscriber `EnvFilter` syntax; `RUST_LOG` wins when set).
    pub log: String,
}

impl Default for NodeConfig {
    fn default() -> NodeConfig {
        NodeConfig {
            node_id: None,
            data_dir: PathBuf::from("./strata-data"),
            client_addr: "127.0.0.1:7101".into(),
            peer_addr: "127.0.0.1:7201".into(),
            http_addr: "127.0.0.1:7301".into(),
            advertise_client_addr: None,
            advertise_peer_addr: None,
            advertise_http_addr: None,
            initial_cluster: None,
            join: None,
            default_replication_factor: 3,
            partitions_per_topic_max: 1000,
            message_bytes_max: 1 << 20,
            segment_bytes: 1 << 30,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            fetch_bytes_max: 16 << 20,
            fetch_wait_max_ms: 10_000,
            connections_max: 1024,
            streams_per_connection_max: 256,
            request_timeout_ms: 30_000,
            disk_free_bytes_min: 100 << 20,
            retention_check_interval_ms: 5_000,
            flush_threads: 4,
            heartbeat_ms: 300,
            election_timeout_min_ms: 1_500,
            election_timeout_max_ms: 3_000,
            idle_group_sleep_ms: 3_000,
            shutdown_timeout_ms: 10_000,
            group_offsets_partitions: strata_groups::coordinator::OFFSETS_PARTITIONS_DEFAULT,
            group_offsets_segment_bytes: 64 << 20,
            group_heartbeat_interval_ms: strata_groups::plan::HEARTBEAT_INTERVAL_MS_DEFAULT,
            queue_in_flight_max: 1_000,
            queue_window: 5_000,
            kafka_addr: None,
            advertise_kafka_addr: None,
            kafka_connections_max: 1024,
            kafka_in_flight_max: 64,
            kafka_frame_bytes_max: 100 << 20,
            kafka_auto_create_topics: false,
            kafka_num_partitions: 1,
            log: DEFAULT_LOG.into(),
        }
    }
}

/// The keys read from `STRATA_*` variables (others, such as `STRATA_BROKERS`, belong to the
/// client commands).
const ENV_KEYS: &[&str] = &[
    "node_id",
    "data_dir",
    "client_addr",
    "peer_addr",
    "http_addr",
    "advertise_client_addr",
    "advertise_peer_addr",
    "advertise_http_addr",
    "initial_cluster",
    "join",
    "default_replication_factor",
    "partitions_per_topic_max",
    "message_bytes_max",
    "segment_bytes",
    "retention_ms",
    "retention_bytes",
    "fetch_bytes_max",
    "fetch_wait_max_ms",
    "connections_max",
    "streams_per_connection_max",
    "request_timeout_ms",
    "disk_free_bytes_min",
    "retention_check_interval_ms",
    "flush_threads",
    "heartbeat_ms",
    "election_timeout_min_ms",
    "election_timeout_max_ms",
    "idle_group_sleep_ms",
    "shutdown_timeout_ms",
    "group_offsets_partitions",
    "group_offsets_segment_bytes",
    "group_heartbeat_interval_ms",
    "queue_in_flight_max",
    "queue_window",
    "kafka_addr",
    "advertise_kafka_addr",
    "kafka_connections_max",
    "kafka_in_flight_max",
    "kafka_frame_bytes_max",
    "kafka_auto_create_topics",
    "kafka_num_partitions",
    "log",
];

/// Keys renamed so that units and bounds come last (`message_bytes_max`, as the log and the
/// transport name theirs): (old name, new name). The old names are still read, from the file
/// and from `STRATA_*` variables, for one release, with a warning naming the new one.
pub const DEPRECATED_KEYS: &[(&str, &str)] = &[
    ("max_partitions_per_topic", "partitions_per_topic_max"),
    ("max_message_bytes", "message_bytes_max"),
    ("fetch_max_bytes", "fetch_bytes_max"),
    ("fetch_max_wait_ms", "fetch_wait_max_ms"),
    ("max_connections", "connections_max"),
    ("max_concurrent_streams", "streams_per_connection_max"),
    ("min_free_disk_bytes", "disk_free_bytes_min"),
];

fn renamed(key: &str) -> Option<&'static str> {
    DEPRECATED_KEYS
        .iter()
        .find(|(old, _)| *old == key)
        .map(|(_, new)| *new)
}

/// Command-line flags of `strata node`; each set flag overrides the file and environment.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct NodeFlags {
    /// TOML config file (any option below can live there).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Node id (only when bootstrapping a new cluster with --initial-cluster).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    /// Data directory (identity, controller log, partitions).
    #[arg(long, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Client API listen address (port 0: any free port).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// Peer (Raft) listen address.
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<String>,
    /// HTTP listen address (/livez, /readyz, /metrics).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_addr: Option<String>,
    /// Client address to advertise (default: the bound one).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_client_addr: Option<String>,
    /// Peer address to advertise (default: the bound one).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_peer_addr: Option<String>,
    /// HTTP address to advertise (default: the bound one).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_http_addr: Option<String>,
    /// Kafka wire-protocol listen address (default: no Kafka listener).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_addr: Option<String>,
    /// Kafka address to advertise in Metadata (default: the bound one).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise_kafka_addr: Option<String>,
    /// Voters of a new cluster: ID@PEER_ADDR,... (with an empty data directory).
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_cluster: Option<String>,
    /// Client address of a node of an existing cluster to join (with an empty data directory).
    #[arg(long, value_name = "HOST:PORT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    /// Log filter (e.g. info, strata_node=debug).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(String);

impl NodeConfig {
    /// Loads defaults, then `file` (if any), then `STRATA_*` variables, then `flags`. Old key
    /// names ([`DEPRECATED_KEYS`]) are logged as warnings (see [`NodeConfig::load_reporting`]
    /// to report them once logging is set up).
    pub fn load(file: Option<&Path>, flags: &NodeFlags) -> Result<NodeConfig, ConfigError> {
        let (config, warnings) = NodeConfig::load_reporting(file, flags)?;
        for w in warnings {
            tracing::warn!("{w}");
        }
        Ok(config)
    }

    /// As [`NodeConfig::load`], returning the deprecation warnings instead of logging them.
    pub fn load_reporting(
        file: Option<&Path>,
        flags: &NodeFlags,
    ) -> Result<(NodeConfig, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let mut fig = Figment::from(Serialized::defaults(NodeConfig::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError(format!("read {}: {e}", path.display())))?;
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
            let mut renamed_table = toml::Table::new();
            for (k, v) in table {
                let key = match renamed(&k) {
                    Some(new) => {
                        warnings.push(format!(
                            "{}: `{k}` is deprecated; it is now `{new}`",
                            path.display()
                        ));
                        new.to_string()
                    }
                    None => k,
                };
                renamed_table.insert(key, v);
            }
            fig = fig.merge(Serialized::defaults(renamed_table));
        }
        for (old, new) in DEPRECATED_KEYS {
            let var = format!("STRATA_{}", old.to_uppercase());
            if std::env::var_os(&var).is_some() {
                warnings.push(format!(
                    "{var} is deprecated; it is now STRATA_{}",
                    new.to_uppercase()
                ));
            }
        }
        let env = Env::prefixed("STRATA_").filter_map(|k| {
            let k = k.as_str().to_ascii_lowercase();
            let k = renamed(&k).map_or(k, str::to_string);
            ENV_KEYS.contains(&k.as_str()).then(|| k.into())
        });
        fig = fig.merge(env).merge(Serialized::defaults(flags));
        let config: NodeConfig = fig.extract().map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok((config, warnings))
    }

    /// Checks values that cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError(m));
        if self.election_timeout_min_ms <= self.heartbeat_ms
            || self.election_timeout_max_ms <= self.election_timeout_min_ms
        {
            return bad(format!(
                "need heartbeat_ms ({}) < election_timeout_min_ms ({}) < election_timeout_max_ms ({})",
                self.heartbeat_ms, self.election_timeout_min_ms, self.election_timeout_max_ms
            ));
        }
        if self.message_bytes_max < 1024
            || self.message_bytes_max > crate::meta::MESSAGE_BYTES_LIMIT
        {
            return bad(format!(
                "message_bytes_max must be between 1024 and {} (a log entry and a peer message \
                 hold at most 16 MiB), got {}",
                crate::meta::MESSAGE_BYTES_LIMIT,
                self.message_bytes_max
            ));
        }
        if u64::from(self.fetch_wait_max_ms) + 1_000 > self.request_timeout_ms {
            return bad(format!(
                "fetch_wait_max_ms ({}) must be at least 1 s below request_timeout_ms ({})",
                self.fetch_wait_max_ms, self.request_timeout_ms
            ));
        }
        let mut topic = crate::meta::TopicConfig::default();
        for (k, v) in [
            ("segment.bytes", self.segment_bytes.to_string()),
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
        ] {
            topic
                .set(k, &v)
                .map_err(|e| ConfigError(format!("node default: {e}")))?;
        }
        if self.default_replication_factor == 0 {
            return bad("default_replication_factor must be at least 1".into());
        }
        topic
            .set(
                "segment.bytes",
                &self.group_offsets_segment_bytes.to_string(),
            )
            .map_err(|e| ConfigError(format!("group_offsets_segment_bytes: {e}")))?;
        if self.group_offsets_partitions == 0 {
            return bad("group_offsets_partitions must be at least 1".into());
        }
        if !(1..=64).contains(&self.flush_threads) {
            return bad("flush_threads must be between 1 and 64".into());
        }
        if self.group_heartbeat_interval_ms < 10 {
            return bad("group_heartbeat_interval_ms must be at least 10".into());
        }
        if self.queue_in_flight_max == 0 || self.queue_in_flight_max > 100_000 {
            return bad("queue_in_flight_max must be between 1 and 100000".into());
        }
        if self.queue_window < 10 || self.queue_window > 1_000_000 {
            return bad("queue_window must be between 10 and 1000000".into());
        }
        if self.kafka_connections_max == 0 {
            return bad("kafka_connections_max must be at least 1".into());
        }
        if self.kafka_in_flight_max == 0 || self.kafka_in_flight_max > 10_000 {
            return bad("kafka_in_flight_max must be between 1 and 10000".into());
        }
        if self.kafka_frame_bytes_max < self.message_bytes_max.saturating_add(64 << 10) {
            return bad(format!(
                "kafka_frame_bytes_max ({}) must be at least message_bytes_max ({}) + 64 KiB, \
                 or a batch of the largest size could never arrive",
                self.kafka_frame_bytes_max, self.message_bytes_max
            ));
        }
        if self.kafka_num_partitions == 0
            || self.kafka_num_partitions > self.partitions_per_topic_max
        {
            return bad(format!(
                "kafka_num_partitions must be between 1 and partitions_per_topic_max ({})",
                self.partitions_per_topic_max
            ));
        }
        if self.initial_cluster.is_some() && self.join.is_some() {
            return bad("initial_cluster and join exclude each other".into());
        }
        if let Some(ic) = &self.initial_cluster {
            parse_initial_cluster(ic).map_err(ConfigError)?;
        }
        Ok(())
    }

    /// The limits and defaults the broker enforces, from this configuration.
    pub fn broker_config(&self) -> strata_broker::BrokerConfig {
        strata_broker::BrokerConfig {
            fetch_bytes_max: self.fetch_bytes_max,
            fetch_wait_max_ms: self.fetch_wait_max_ms,
            partitions_per_topic_max: self.partitions_per_topic_max,
            default_replication_factor: self.default_replication_factor,
            disk_free_bytes_min: self.disk_free_bytes_min,
            election_timeout_max_ms: self.election_timeout_max_ms,
            topic_defaults: self.topic_defaults(),
            admin_patience: std::time::Duration::from_secs(15),
            group_offsets_partitions: self.group_offsets_partitions,
            group_offsets_segment_bytes: self.group_offsets_segment_bytes,
            queue_in_flight_max: self.queue_in_flight_max,
            queue_window: self.queue_window,
        }
    }

    /// The default topic config of this node.
    pub fn topic_defaults(&self) -> crate::meta::TopicConfig {
        crate::meta::TopicConfig {
            retention_ms: self.retention_ms,
            retention_bytes: self.retention_bytes,
            segment_bytes: self.segment_bytes,
            max_message_bytes: self.message_bytes_max,
            retention_policy_acked: false,
        }
    }
}

/// Parses `1@host:port,2@host:port`.
pub fn parse_initial_cluster(s: &str) -> Result<std::collections::BTreeMap<u64, String>, String> {
    let mut out = std::collections::BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('@')
            .ok_or_else(|| format!("initial_cluster entry {part:?} is not ID@HOST:PORT"))?;
        let id: u64 = id
            .parse()
            .map_err(|_| format!("initial_cluster entry {part:?}: {id:?} is not a node id"))?;
        if id == 0 {
            return Err(format!(
                "initial_cluster entry {part:?}: node ids start at 1"
            ));
        }
        if out.insert(id, addr.to_string()).is_some() {
            return Err(format!("initial_cluster names node {id} twice"));
        }
    }
    if out.is_empty() {
        return Err("initial_cluster is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "data_dir = \"/from/file\"\nclient_addr = \"127.0.0.1:1\"\nfetch_wait_max_ms = 7\n",
        )
        .expect("write");
        let flags = NodeFlags {
            client_addr: Some("127.0.0.1:2".into()),
            ..NodeFlags::default()
        };
        let c = NodeConfig::load(Some(&path), &flags).expect("load");
        assert_eq!(c.data_dir, PathBuf::from("/from/file"));
        assert_eq!(c.client_addr, "127.0.0.1:2");
        assert_eq!(c.fetch_wait_max_ms, 7);
        assert_eq!(c.peer_addr, NodeConfig::default().peer_addr);
    }

    /// Old key names still load, under their new names, with a warning naming both.
    #[test]
    fn deprecated_keys_still_load_with_a_warning() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "max_connections = 7\nmin_free_disk_bytes = 5\nfetch_wait_max_ms = 9\n",
        )
        .expect("write");
        let (c, warnings) =
            NodeConfig::load_reporting(Some(&path), &NodeFlags::default()).expect("load");
        assert_eq!(c.connections_max, 7);
        assert_eq!(c.disk_free_bytes_min, 5);
        assert_eq!(c.fetch_wait_max_ms, 9);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("`max_connections`") && w.contains("`connections_max`")),
            "{warnings:?}"
        );
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.toml");
        std::fs::write(&path, "data_dri = \"x\"\n").expect("write");
        let e = NodeConfig::load(Some(&path), &NodeFlags::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("data_dri"), "{e}");
    }

    #[test]
    fn initial_cluster_parses() {
        let m = parse_initial_cluster("1@a:1, 2@b:2").expect("parse");
        assert_eq!(m.len(), 2);
        assert!(parse_initial_cluster("1@a,1@b").is_err());
        assert!(parse_initial_cluster("x@a").is_err());
    }
}
