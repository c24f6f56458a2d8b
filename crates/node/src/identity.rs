//! A node's identity and the small files of its data directory: `identity.json` (cluster,
//! node id, incarnation, controller seeds), `addresses.json`, and how an empty directory gets
//! an identity (bootstrap from the initial cluster, or join through a running node).

use crate::config::{NodeConfig, parse_initial_cluster};
use crate::error::NodeError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strata_log::RealDisk;

/// File in the data directory holding the node's identity.
pub const IDENTITY_FILE: &str = "identity.json";
/// File in the data directory holding the node's addresses (rewritten every start): the ones it
/// bound (so port 0 resolves to the real port), or the `advertise_*` ones when set.
pub const ADDRESSES_FILE: &str = "addresses.json";

/// The identity a node keeps in its data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The cluster (hex).
    pub cluster_id: String,
    /// This node's id.
    pub node_id: u64,
    /// This life of the node (random, never 0).
    pub incarnation: u64,
    /// Controller peers to contact when the leader is unknown (node id to peer address).
    pub seeds: BTreeMap<u64, String>,
    /// Whether this node bootstraps the controller group with `seeds` as voters.
    pub bootstrap: bool,
}

/// The addresses a node bound and advertises (written to `addresses.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Addresses {
    /// Client API.
    pub client_addr: String,
    /// Peer (Raft) API.
    pub peer_addr: String,
    /// HTTP.
    pub http_addr: String,
    /// The Kafka listener (empty: none).
    #[serde(default)]
    pub kafka_addr: String,
}

/// Replaces `name` in `dir` durably and atomically (the log's temp file, fsync, rename and
/// directory fsync; on the real disk: these small files are not part of the log's seam).
pub(crate) fn write_file(
    dir: &Path,
    name: &str,
    bytes: &[u8],
    what: &'static str,
) -> Result<(), NodeError> {
    strata_log::manifest::replace_file(&RealDisk, dir, name, bytes)
        .map_err(|source| NodeError::Write { what, source })
}

pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, NodeError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            NodeError::Config(format!(
                "{} is damaged ({e}); restore it or start with an empty data directory and --join",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(NodeError::Io {
            what: format!("read {}", path.display()),
            source: e,
        }),
    }
}

/// A cluster id derived from the initial cluster (the same on every bootstrapping node).
fn cluster_id_of(voters: &BTreeMap<u64, String>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (id, addr) in voters {
        for b in format!("{id}@{addr},").bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

pub(crate) fn parse_cluster_id(s: &str) -> Result<u64, NodeError> {
    u64::from_str_radix(s, 16)
        .map_err(|_| NodeError::Config(format!("cluster id {s:?} is not 16 hex digits")))
}

pub(crate) fn random_incarnation() -> u64 {
    loop {
        let v: u64 = rand::random();
        if v != 0 {
            return v;
        }
    }
}

/// Reads the identity from the data directory, or creates one (bootstrap or join).
pub(crate) async fn establish_identity(
    config: &NodeConfig,
    addresses: &Addresses,
) -> Result<Identity, NodeError> {
    let path = config.data_dir.join(IDENTITY_FILE);
    if let Some(id) = read_json::<Identity>(&path)? {
        if let Some(want) = config.node_id
            && want != id.node_id
        {
            return Err(NodeError::Config(format!(
                "--node-id {want} does not match node id {} in {}; a data directory belongs to one node",
                id.node_id,
                path.display()
            )));
        }
        return Ok(id);
    }
    let incarnation = random_incarnation();
    let identity = if let Some(join) = &config.join {
        join_cluster(join, addresses, incarnation).await?
    } else {
        let voters = match &config.initial_cluster {
            Some(ic) => parse_initial_cluster(ic).map_err(NodeError::Config)?,
            None => {
                let id = config.node_id.unwrap_or(1);
                BTreeMap::from([(id, addresses.peer_addr.clone())])
            }
        };
        let node_id = match config.node_id {
            Some(id) => id,
            None if voters.len() == 1 => *voters.keys().next().unwrap_or(&1),
            None => {
                return Err(NodeError::Config(
                    "--node-id is required with --initial-cluster (which entry is this node?)"
                        .into(),
                ));
            }
        };
        if !voters.contains_key(&node_id) {
            return Err(NodeError::Config(format!(
                "node {node_id} is not in the initial cluster {voters:?}"
            )));
        }
        Identity {
            cluster_id: cluster_id_of(&voters),
            node_id,
            incarnation,
            seeds: voters,
            bootstrap: true,
        }
    };
    let bytes = serde_json::to_vec_pretty(&identity).map_err(|source| NodeError::Encode {
        what: "identity",
        source,
    })?;
    write_file(&config.data_dir, IDENTITY_FILE, &bytes, "the identity file")?;
    Ok(identity)
}

async fn join_cluster(
    join: &str,
    addresses: &Addresses,
    incarnation: u64,
) -> Result<Identity, NodeError> {
    use strata_proto::v1::admin_client::AdminClient;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{join}"))
            .map_err(|e| NodeError::Config(format!("--join {join}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(20));
        match endpoint.connect().await {
            Ok(ch) => {
                let r = AdminClient::new(ch)
                    .join_node(strata_proto::v1::JoinNodeRequest {
                        client_addr: addresses.client_addr.clone(),
                        peer_addr: addresses.peer_addr.clone(),
                        http_addr: addresses.http_addr.clone(),
                        incarnation,
                    })
                    .await;
                match r {
                    Ok(resp) => {
                        let resp = resp.into_inner();
                        return Ok(Identity {
                            cluster_id: resp.cluster_id,
                            node_id: resp.node_id,
                            incarnation,
                            seeds: resp.controller_voters.into_iter().collect(),
                            bootstrap: false,
                        });
                    }
                    Err(s) if s.code() == tonic::Code::Unavailable => last = s.message().into(),
                    Err(s) => {
                        return Err(NodeError::Refused(format!(
                            "join via {join}: {}",
                            s.message()
                        )));
                    }
                }
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(NodeError::Join {
        via: join.to_string(),
        last,
    })
}

/// Where a node's data directory says it listens (tests and `strata dev`).
pub fn read_addresses(data_dir: &Path) -> Option<Addresses> {
    read_json(&data_dir.join(ADDRESSES_FILE)).ok().flatten()
}

/// The identity stored in a data directory.
pub fn read_identity(data_dir: &Path) -> Option<Identity> {
    read_json(&data_dir.join(IDENTITY_FILE)).ok().flatten()
}

/// The data directory of node `id` under a dev root.
pub fn dev_node_dir(root: &Path, id: u64) -> PathBuf {
    root.join(format!("node-{id}"))
}
