//! A single node is a real deployment: `strata dev --nodes 1` and one `strata node` with no
//! peers serve produce, consume and admin calls for as long as they run (issue 8, item 1: a
//! one-voter group stopped serving a lease after its election). RF 1 topics on a 3-node
//! cluster likewise; `/readyz` and `strata_partition_is_leader` report only what can serve;
//! deleting a topic stops its replica even while a long-poll fetch holds it (item 6).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use strata_proto::v1 as pb;

/// How long each workload runs: several leader leases (the bug showed after one).
const SPREAD: Duration = Duration::from_secs(10);

/// Produce, consume and admin calls through the CLI, spread over [`SPREAD`]: a new RF 1 topic
/// each round, records to a long-lived topic checked back in order, `cluster status` healthy
/// and `/readyz` ready throughout.
async fn workload(b: &str, http: &str, prefix: &str) {
    strata(
        b,
        &format!("topic create {prefix}-log --partitions 1 --replication-factor 1"),
    )
    .await
    .ok();
    let start = Instant::now();
    let mut round = 0u32;
    let mut expected = Vec::new();
    while start.elapsed() < SPREAD || round < 3 {
        let topic = format!("{prefix}-t{round}");
        let created = strata(
            b,
            &format!("topic create {topic} --partitions 1 --replication-factor 1 -o json"),
        )
        .await
        .ok()
        .json();
        assert_eq!(created["name"], topic.as_str(), "{created}");
        let value = format!("r{round}");
        let ack = strata(
            b,
            &format!("produce {prefix}-log --partition 0 {value} -o json"),
        )
        .await
        .ok()
        .json();
        assert_eq!(ack["offset"], expected.len() as i64, "round {round}: {ack}");
        expected.push(value);
        strata(b, &format!("produce {topic} --partition 0 x"))
            .await
            .ok();
        let status = strata(b, "cluster status -o json").await.ok().json();
        assert_eq!(status["healthy"], true, "round {round}: {status}");
        let (code, body) = http_get(http, "/readyz").await.expect("readyz");
        assert_eq!(code, 200, "round {round}: /readyz {body}");
        if round % 3 == 2 {
            strata(b, &format!("topic delete {topic}")).await.ok();
        }
        round += 1;
        // Paces the rounds over several leases (a workload, not a wait for a condition).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let records = strata(
        b,
        &format!("consume {prefix}-log --partition 0 --from earliest --exit-at-end -o json"),
    )
    .await
    .ok()
    .json_lines();
    let values: Vec<&str> = records
        .iter()
        .map(|r| r["value"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(values, expected, "records read back");
    let metrics = http_get(http, "/metrics").await.expect("metrics").1;
    let topic_label = format!("topic=\"{prefix}-log\"");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("strata_partition_is_leader{")
                && l.contains(&topic_label)
                && l.trim_end().ends_with(" 1")),
        "{prefix}-log is not led in /metrics:\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_strata_node_serves_produce_consume_and_admin() {
    let mut c = ProcCluster::empty();
    let id = c.add_node(Some(1)).await;
    let b = c.brokers().join(",");
    let http = c.node(id).addresses().expect("addresses").http_addr;
    workload(&b, &http, "solo").await;
    deleting_a_topic_stops_its_replica_under_a_long_poll(&mut c, id).await;
}

/// Runs `strata dev --nodes 1` (free ports, a kept data directory) and waits for its
/// "brokers:" line.
struct Dev {
    child: tokio::process::Child,
    root: tempfile::TempDir,
}

impl Dev {
    async fn start() -> (Dev, String) {
        use tokio::io::AsyncBufReadExt;
        let root = tempfile::tempdir().expect("tempdir");
        let mut cmd = tokio::process::Command::new(strata_bin());
        cmd.args(["dev", "--nodes", "1", "--base-port", "0", "--data-dir"])
            .arg(root.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn strata dev");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let brokers = tokio::time::timeout(Duration::from_secs(60), async {
            while let Ok(Some(l)) = lines.next_line().await {
                if let Some((_, b)) = l.split_once("brokers: ") {
                    return Some(b.trim().to_string());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("`strata dev --nodes 1` printed no brokers line");
        // Keep reading stdout so the process never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        (Dev { child, root }, brokers)
    }

    fn node_dir(&self) -> PathBuf {
        strata_node::node::dev_node_dir(self.root.path(), 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strata_dev_with_one_node_serves_produce_consume_and_admin() {
    let (mut dev, b) = Dev::start().await;
    let http = strata_node::node::read_addresses(&dev.node_dir())
        .expect("addresses")
        .http_addr;
    workload(&b, &http, "dev").await;
    let _ = dev.child.start_kill();
    let _ = dev.child.wait().await;
}

/// Open files and mappings of process `pid` under `dir`.
fn open_under(pid: u32, dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut out = Vec::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.display().to_string();
                if t.contains(&needle) {
                    out.push(t);
                }
            }
        }
    }
    if let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) {
        out.extend(
            maps.lines()
                .filter(|l| l.contains(&needle))
                .map(str::to_string),
        );
    }
    out
}

/// Item 6: closing a replica was skipped when anything else held it (a long-poll fetch, a
/// subscription, retention), while its directory was still removed: the Raft group kept
/// running on deleted files. Now the group stops regardless, and the long poll ends at once
/// with an error.
async fn deleting_a_topic_stops_its_replica_under_a_long_poll(c: &mut ProcCluster, id: u64) {
    let addr = c.node(id).client_addr();
    let mut a = admin(&addr).await.expect("admin");
    let t = a
        .create_topic(pb::CreateTopicRequest {
            name: "doomed".into(),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
        })
        .await
        .expect("create")
        .into_inner()
        .topic
        .expect("topic");
    let dir = c
        .node(id)
        .dir
        .join("partitions")
        .join(format!("{}-0", t.topic_id));
    wait_until("the replica directory", Duration::from_secs(10), || {
        let d = dir.clone();
        async move { d.is_dir() }
    })
    .await;
    let mut d = data(&addr).await.expect("data");
    let poll = tokio::spawn(async move {
        let mut req = fetch_from("doomed", 0, 0);
        req.max_wait_ms = 15_000;
        let started = Instant::now();
        let r = d.fetch(req).await;
        (started.elapsed(), r.map(|r| r.into_inner().records.len()))
    });
    // Lets the fetch reach its wait (pacing, not a condition: either order is checked below).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deleted = Instant::now();
    a.delete_topic(pb::DeleteTopicRequest {
        name: "doomed".into(),
    })
    .await
    .expect("delete");
    let (waited, r) = poll.await.expect("poll task");
    assert!(
        deleted.elapsed() < Duration::from_secs(5),
        "the long poll held on for {waited:?} after its topic was deleted: {r:?}"
    );
    assert!(r.is_err(), "a long poll on a deleted topic answered {r:?}");
    let pid = c.node(id).pid().expect("pid");
    wait_until(
        "the deleted replica's files to be closed",
        Duration::from_secs(5),
        || {
            let d = dir.clone();
            async move { open_under(pid, &d).is_empty() && !d.exists() }
        },
    )
    .await;
}

/// Produces one record to `topic`/`partition` at `addr` with `acks=all`: its offset.
async fn produce_one(addr: &str, topic: &str, partition: u32, value: &str) -> Result<i64, String> {
    let mut d = data(addr).await.map_err(|e| e.to_string())?;
    d.produce(pb::ProduceRequest {
        topic: topic.into(),
        partition,
        acks: pb::Acks::All as i32,
        payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
            records: vec![pb::Record {
                key: None,
                value: Some(bytes::Bytes::from(value.to_string())),
                headers: vec![],
                timestamp_ms: 0,
            }],
        })),
    })
    .await
    .map(|r| r.into_inner().base_offset)
    .map_err(|e| e.to_string())
}

/// The value of `strata_partition_is_leader` for `topic`/`partition` on the node at `http`.
async fn is_leader_gauge(http: &str, topic: &str, partition: u32) -> Option<f64> {
    let metrics = http_get(http, "/metrics").await?.1;
    let t = format!("topic=\"{topic}\"");
    let p = format!("partition=\"{partition}\"");
    metrics
        .lines()
        .find(|l| l.starts_with("strata_partition_is_leader{") && l.contains(&t) && l.contains(&p))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// RF 1 topics on a 3-node cluster serve for as long as their node runs (a one-voter group
/// stopped after a lease: item 1), including after the other two nodes die; and `/readyz` and
/// `strata_partition_is_leader` report what can serve, not what a node last believed: a node
/// left alone leads its RF 3 partition in name only and has no controller quorum (item 6).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rf1_topics_serve_and_readiness_follows_what_can_serve() {
    let mut c = ProcCluster::start(3).await;
    create_topic_rf3(&mut c, "rf3", 1).await;
    let survivor = c.leader_of("rf3", 0).await.expect("rf3 leader");
    let b = c.brokers()[0].clone();
    let mut a = admin(&b).await.expect("admin");
    a.create_topic(pb::CreateTopicRequest {
        name: "rf1".into(),
        partitions: 3,
        replication_factor: 1,
        configs: Default::default(),
    })
    .await
    .expect("create rf1");
    c.wait_healthy(Duration::from_secs(30)).await;
    let mut leaders = Vec::new();
    for p in 0..3 {
        leaders.push(c.leader_of("rf1", p).await.expect("rf1 leader"));
    }
    // Every RF 1 partition takes writes throughout several leases.
    let start = Instant::now();
    let mut next = [0i64; 3];
    while start.elapsed() < SPREAD {
        for p in 0..3u32 {
            let addr = c.node(leaders[p as usize]).client_addr();
            let off = produce_one(&addr, "rf1", p, "x")
                .await
                .unwrap_or_else(|e| panic!("rf1/{p} after {:?}: {e}", start.elapsed()));
            assert_eq!(off, next[p as usize]);
            next[p as usize] += 1;
        }
        // Paces the workload over several leases.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let http = c.node(survivor).addresses().expect("addresses").http_addr;
    assert_eq!(is_leader_gauge(&http, "rf3", 0).await, Some(1.0));
    // The others die: the survivor keeps believing it leads rf3/0 (openraft does not step a
    // leader down), but it cannot serve, and the controller has no quorum.
    let others: Vec<u64> = c.ids().into_iter().filter(|id| *id != survivor).collect();
    for id in &others {
        c.node(*id).kill();
    }
    let h = http.clone();
    wait_until(
        "/readyz to report not ready",
        Duration::from_secs(10),
        || {
            let h = h.clone();
            async move {
                http_get(&h, "/readyz")
                    .await
                    .is_some_and(|(code, _)| code == 503)
            }
        },
    )
    .await;
    let h = http.clone();
    wait_until(
        "rf3/0's is_leader gauge to drop",
        Duration::from_secs(10),
        || {
            let h = h.clone();
            async move { is_leader_gauge(&h, "rf3", 0).await == Some(0.0) }
        },
    )
    .await;
    // An RF 1 partition of the survivor still serves: it is its own quorum.
    if let Some(p) = leaders.iter().position(|l| *l == survivor) {
        let addr = c.node(survivor).client_addr();
        let off = produce_one(&addr, "rf1", p as u32, "alone")
            .await
            .expect("an RF 1 partition of a lone node");
        assert_eq!(off, next[p]);
        assert_eq!(is_leader_gauge(&http, "rf1", p as u32).await, Some(1.0));
    }
    for id in &others {
        c.restart(*id).await;
    }
    let h = http.clone();
    wait_until(
        "/readyz to report ready again",
        Duration::from_secs(30),
        || {
            let h = h.clone();
            async move {
                http_get(&h, "/readyz")
                    .await
                    .is_some_and(|(code, _)| code == 200)
            }
        },
    )
    .await;
}
