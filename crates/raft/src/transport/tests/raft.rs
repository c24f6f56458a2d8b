//! Three real partition replicas (openraft over strata-log) replicating through the real
//! transport on loopback: election with pre-vote, pipelined appends, coalesced heartbeats and
//! leader transfer all cross the wire.

use super::harness::{TestServer, test_config};
use super::*;
use crate::partition::{Acks, Partition, PartitionConfig, RaftTiming};
use openraft::async_runtime::watch::WatchReceiver;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use strata_log::Flusher;
use strata_record::{BatchBuilder, NewRecord};

const GROUP: GroupId = GroupId::new(1);

struct Replica {
    server: TestServer,
    peers: Arc<Peers>,
    partition: Partition,
    _flusher: Flusher,
}

fn batch(i: u64) -> Bytes {
    let mut b = BatchBuilder::new();
    let record = NewRecord::new(i as i64, None, Some(Bytes::from(format!("record {i}"))));
    b.append(&record).expect("append record");
    b.build()
}

async fn start(id: u64, dir: &std::path::Path, config: &TransportConfig) -> Replica {
    let identity = PeerIdentity {
        cluster_id: 7,
        node_id: id,
        incarnation: 1,
    };
    let server = TestServer::start_as(identity, config).await;
    let peers = Peers::new(identity, config.clone()).expect("peers");
    let flusher = Flusher::start(&format!("t{id}")).expect("flusher");
    let mut cfg = PartitionConfig::new(GROUP, id, dir.join(format!("node-{id}")));
    cfg.timing = RaftTiming {
        heartbeat_ms: 100,
        election_timeout_min_ms: 500,
        election_timeout_max_ms: 1000,
    };
    let network = PeerNetwork::new(GROUP, peers.clone());
    let partition = Partition::open(cfg, &flusher.handle(), network, None)
        .await
        .expect("open partition");
    server
        .registry()
        .insert(GROUP, Arc::new(partition.raft().clone()));
    Replica {
        server,
        peers,
        partition,
        _flusher: flusher,
    }
}

async fn wait_for_leader(replicas: &[Replica], not: Option<u64>) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        for (i, r) in replicas.iter().enumerate() {
            if r.partition.is_ready_leader() && Some(i as u64 + 1) != not {
                return i;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no ready leader");
        // Wake on any replica's metrics change (or re-check after a short while).
        let mut metrics = replicas[0].partition.raft().metrics();
        let _ = tokio::time::timeout(Duration::from_millis(50), metrics.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_replicate_over_the_transport() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = test_config();
    let mut replicas = Vec::new();
    for id in 1..=3 {
        replicas.push(start(id, dir.path(), &config).await);
    }
    let voters: BTreeMap<u64, String> = replicas
        .iter()
        .enumerate()
        .map(|(i, r)| (i as u64 + 1, r.server.addr.to_string()))
        .collect();
    replicas[0]
        .partition
        .initialize(voters)
        .await
        .expect("initialize");

    let leader = wait_for_leader(&replicas, None).await;
    for i in 0..20 {
        let offset = replicas[leader].partition.append(batch(i), Acks::All).await;
        assert_eq!(offset.expect("append"), Some(i as i64));
    }
    let fetched = replicas[leader]
        .partition
        .read(0, 1 << 20, Duration::ZERO)
        .await
        .expect("read");
    assert_eq!((fetched.batches.len(), fetched.high_watermark), (20, 20));

    // Every follower holds the whole log, received over append streams.
    let last = replicas[leader].partition.metrics().last_log_index;
    for r in &replicas {
        let applied = r.partition.raft().wait(Some(Duration::from_secs(10)));
        applied
            .applied_index_at_least(last, "follower caught up")
            .await
            .expect("caught up");
    }
    let streams: u64 = replicas
        .iter()
        .map(|r| r.server.stats.counts().append_streams)
        .sum();
    assert!(streams > 0, "appends went over AppendStream");

    // Leadership moves over TransferLeader; the new leader serves writes.
    let target = (leader + 1) % 3;
    replicas[leader]
        .partition
        .transfer_leader(target as u64 + 1)
        .await
        .expect("transfer");
    let new_leader = wait_for_leader(&replicas, Some(leader as u64 + 1)).await;
    assert_eq!(new_leader, target);
    assert!(replicas[target].server.stats.counts().transfers > 0);
    let offset = replicas[new_leader]
        .partition
        .append(batch(20), Acks::All)
        .await;
    assert_eq!(offset.expect("append after transfer"), Some(20));

    let counts: Vec<ServerCounts> = replicas.iter().map(|r| r.server.stats.counts()).collect();
    println!("server counts: {counts:?}");
    assert!(counts.iter().map(|c| c.votes).sum::<u64>() > 0);
    for r in replicas {
        r.partition.shutdown().await.expect("shutdown");
        drop(r.peers);
        r.server.stop().await;
    }
}
