//! A follower whose disk fills up: the partition stays available on the other two replicas,
//! and the follower recovers (reopens from disk, catches up) once space is back. The
//! follower's data directory is a small tmpfs mounted by the test (root only; the test says
//! so and returns when it cannot mount, e.g. as a normal user).

mod common;

use bytes::Bytes;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use strata_client::{Client, ProducerConfig, ProducerRecord};

/// Unmounts (lazily) when dropped, before the cluster's directory is removed.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> bool {
    std::fs::create_dir_all(dir).expect("mkdir");
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_follower_disk_keeps_partition_available_and_recovers() {
    let mut c = ProcCluster::start(2).await;
    let config = c.root.path().join("n3.toml");
    // The small disk is below the default free-disk threshold: this node must still start and
    // follow (the threshold only stops leaders taking produce).
    std::fs::write(&config, "disk_free_bytes_min = 0\n").expect("config");
    let mut mount = None;
    let n3 = c
        .add_node_with(
            None,
            &["--config".into(), config.display().to_string()],
            |dir| {
                if mount_tmpfs(dir, "40m") {
                    mount = Some(Mount(dir.to_path_buf()));
                }
            },
        )
        .await;
    let Some(mount) = mount else {
        eprintln!(
            "SKIPPED: cannot mount a tmpfs here (needs root); the disk-full test did not run"
        );
        return;
    };
    c.wait_healthy(Duration::from_secs(60)).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    let configs = BTreeMap::from([("segment.bytes".to_string(), "1048576".to_string())]);
    client
        .admin()
        .create_topic("full", 1, 3, configs)
        .await
        .expect("create");
    c.wait_healthy(Duration::from_secs(30)).await;
    // Keep node 3 a follower: if it leads, hand leadership away by restarting nothing, just
    // wait for the preferred leader; the test works either way, since a replica that fails
    // loses leadership.
    let producer = client
        .producer(ProducerConfig::default())
        .expect("producer");
    let value = Bytes::from(vec![7u8; 1024]);
    let n3_http = c.node(n3).addresses().expect("addrs").http_addr;
    let mut acked = 0u64;
    let mut down_seen = false;
    // 60 MiB through a 40 MiB disk: node 3's replica fails on the way.
    for chunk in 0..60 {
        let mut futs = Vec::new();
        for _ in 0..1000 {
            let rec = ProducerRecord::new("full", value.clone()).with_partition(0);
            futs.push(producer.send(rec).await.expect("send"));
        }
        for f in futs {
            f.await
                .unwrap_or_else(|e| panic!("a record failed in chunk {chunk}: {e}"));
            acked += 1;
        }
        if !down_seen
            && http_get(&n3_http, "/readyz")
                .await
                .is_some_and(|(code, body)| code == 503 && body.contains("down"))
        {
            down_seen = true;
        }
    }
    assert!(
        down_seen,
        "node 3's replica never failed: the disk did not fill up (df: {:?})",
        Command::new("df")
            .arg(&mount.0)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    );
    // Space comes back: the replica reopens from disk and catches up.
    let grown = Command::new("mount")
        .args(["-o", "remount,size=400m"])
        .arg(&mount.0)
        .status()
        .is_ok_and(|s| s.success());
    assert!(grown, "remount");
    c.wait_healthy(Duration::from_secs(120)).await;
    let addr = c.node(n3).client_addr();
    wait_until("node 3 caught up", Duration::from_secs(60), || {
        let addr = addr.clone();
        async move {
            partition_at(&addr, "full", 0)
                .await
                .is_some_and(|p| p.high_watermark >= acked as i64)
        }
    })
    .await;
    producer.close().await;
    drop(mount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_below_the_free_disk_threshold_refuses_produce() {
    use tonic_types::StatusExt;
    let mut c = ProcCluster::empty();
    let config = c.root.path().join("n1.toml");
    // More free space than any disk has: the threshold is always crossed.
    std::fs::write(&config, "min_free_disk_bytes = 1000000000000000000\n").expect("config");
    c.add_node_with(
        Some(1),
        &["--config".into(), config.display().to_string()],
        |_| {},
    )
    .await;
    c.wait_healthy(Duration::from_secs(60)).await;
    let b = c.brokers()[0].clone();
    let mut a = admin(&b).await.expect("admin");
    a.create_topic(strata_proto::v1::CreateTopicRequest {
        name: "t".into(),
        partitions: 1,
        replication_factor: 1,
        configs: Default::default(),
    })
    .await
    .expect("create");
    c.wait_healthy(Duration::from_secs(30)).await;
    let mut d = data(&b).await.expect("data");
    let e = d
        .produce(strata_proto::v1::ProduceRequest {
            topic: "t".into(),
            partition: 0,
            acks: 0,
            payload: Some(strata_proto::v1::produce_request::Payload::Records(
                strata_proto::v1::RecordSet {
                    records: vec![strata_proto::v1::Record {
                        key: None,
                        value: Some(Bytes::from_static(b"x")),
                        headers: vec![],
                        timestamp_ms: 0,
                    }],
                },
            )),
        })
        .await
        .expect_err("disk full");
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e}");
    let info = e.get_details_error_info().expect("error info");
    assert_eq!(info.reason, "DISK_FULL");
    assert!(info.metadata.contains_key("free_bytes"));
    assert!(e.message().contains("disk_free_bytes_min"), "{e}");
}
