//! Node identity, topic delete and recreate, and bad input through the real API, on real
//! node processes.

mod common;

use bytes::Bytes;
use common::*;
use std::time::Duration;
use strata_proto::v1 as pb;
use tonic_types::StatusExt;

/// Produces `values` to partition 0 through its leader (waiting for one), one request each.
async fn produce(c: &mut ProcCluster, topic: &str, values: &[&str]) -> Vec<i64> {
    let mut out = Vec::new();
    for v in values {
        let mut tries = 0;
        loop {
            tries += 1;
            let Some(l) = c.leader_of(topic, 0).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let addr = c.node(l).client_addr();
            let mut d = data(&addr).await.expect("data");
            let r = d
                .produce(pb::ProduceRequest {
                    topic: topic.into(),
                    partition: 0,
                    acks: pb::Acks::All as i32,
                    payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
                        records: vec![pb::Record {
                            key: None,
                            value: Some(Bytes::from(v.to_string())),
                            headers: vec![],
                            timestamp_ms: 0,
                        }],
                    })),
                })
                .await;
            match r {
                Ok(r) => {
                    out.push(r.into_inner().base_offset);
                    break;
                }
                Err(e) if tries < 100 && e.code() == tonic::Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("produce: {e}"),
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_node_cannot_rejoin_under_its_old_id() {
    let mut c = ProcCluster::start_static(3).await;
    create_topic_rf3(&mut c, "t", 1).await;
    produce(&mut c, "t", &["a", "b"]).await;
    let n2 = c.node(2);
    n2.kill();
    std::fs::remove_dir_all(&n2.dir).expect("wipe");
    let p = c.node(2);
    // Same command, empty data directory.
    let status = {
        let args = p.args.clone();
        let out = std::process::Command::new(strata_bin())
            .args(&args)
            .envs(FAST_TIMING.iter().copied())
            .output()
            .expect("run");
        assert!(!out.status.success(), "the wiped node must refuse to start");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(
        status.contains("cannot rejoin under its old id"),
        "stderr: {status}"
    );
    // The others go on.
    let offs = produce(&mut c, "t", &["c"]).await;
    assert_eq!(offs, vec![2]);
}

fn info(s: &tonic::Status) -> (String, std::collections::HashMap<String, String>) {
    match s.get_details_error_info() {
        Some(i) => (i.reason, i.metadata),
        None => (String::new(), Default::default()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_documented_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = ProcCluster::start(3).await;
    create_topic_rf3(&mut c, "t", 2).await;
    let b = c.brokers()[0].clone();
    let mut a = admin(&b).await.expect("admin");
    // Topic names.
    for bad in ["", "..", "a/b", "../etc", &"x".repeat(250)] {
        let e = a
            .create_topic(pb::CreateTopicRequest {
                name: bad.to_string(),
                partitions: 1,
                replication_factor: 1,
                configs: Default::default(),
            })
            .await
            .expect_err("bad name");
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}: {e}");
        assert_eq!(info(&e).1.get("field").map(String::as_str), Some("name"));
    }
    let e = a
        .create_topic(pb::CreateTopicRequest {
            name: "big-rf".into(),
            partitions: 1,
            replication_factor: 5,
            configs: Default::default(),
        })
        .await
        .expect_err("rf");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("3 active nodes"), "{e}");
    let e = a
        .create_topic(pb::CreateTopicRequest {
            name: "t".into(),
            partitions: 1,
            replication_factor: 1,
            configs: Default::default(),
        })
        .await
        .expect_err("exists");
    assert_eq!(e.code(), tonic::Code::AlreadyExists);
    let e = a
        .create_topic(pb::CreateTopicRequest {
            name: "cfg".into(),
            partitions: 1,
            replication_factor: 1,
            configs: [("segment.bytes".to_string(), "12".to_string())].into(),
        })
        .await
        .expect_err("config");
    assert!(e.message().contains("segment.bytes"), "{e}");

    let leader = c.leader_of("t", 0).await.expect("leader");
    let addr = c.node(leader).client_addr();
    let mut d = data(&addr).await.expect("data");
    let produce = |topic: &str, partition: u32, payload| pb::ProduceRequest {
        topic: topic.into(),
        partition,
        acks: pb::Acks::All as i32,
        payload: Some(payload),
    };
    let one = |v: Bytes| {
        pb::produce_request::Payload::Records(pb::RecordSet {
            records: vec![pb::Record {
                key: None,
                value: Some(v),
                headers: vec![],
                timestamp_ms: 0,
            }],
        })
    };
    // Unknown topic, unknown partition.
    let e = d
        .produce(produce("nope", 0, one(Bytes::from_static(b"x"))))
        .await
        .expect_err("unknown topic");
    assert_eq!(e.code(), tonic::Code::NotFound);
    assert_eq!(info(&e).0, "UNKNOWN_TOPIC");
    let e = d
        .produce(produce("t", 7, one(Bytes::from_static(b"x"))))
        .await
        .expect_err("unknown partition");
    assert_eq!(info(&e).0, "UNKNOWN_PARTITION");
    assert_eq!(info(&e).1.get("partitions").map(String::as_str), Some("2"));
    // Too large: the limit is named.
    let e = d
        .produce(produce("t", 0, one(Bytes::from(vec![0u8; 2 << 20]))))
        .await
        .expect_err("too large");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(info(&e).0, "MESSAGE_TOO_LARGE");
    assert_eq!(info(&e).1.get("limit").map(String::as_str), Some("1048576"));
    // A garbage batch.
    let e = d
        .produce(produce(
            "t",
            0,
            pb::produce_request::Payload::Batch(Bytes::from_static(&[7u8; 100])),
        ))
        .await
        .expect_err("garbage batch");
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(info(&e).0, "INVALID_BATCH");
    // Nothing was written by any of these.
    let o = d
        .list_offsets(pb::ListOffsetsRequest {
            topic: "t".into(),
            partition: 0,
            position: None,
        })
        .await
        .expect("offsets")
        .into_inner();
    assert_eq!(o.high_watermark, 0);
    // A follower does not answer ListOffsets from its own state, whatever the position
    // (by offset it did: issue 8, item 6).
    let follower = c
        .brokers()
        .into_iter()
        .find(|b| *b != addr)
        .expect("a follower");
    let mut f = data(&follower).await.expect("data");
    for at in [
        pb::position::At::Offset(0),
        pb::position::At::Latest(true),
        pb::position::At::Earliest(true),
    ] {
        let e = f
            .list_offsets(pb::ListOffsetsRequest {
                topic: "t".into(),
                partition: 0,
                position: Some(pb::Position { at: Some(at) }),
            })
            .await
            .expect_err("a follower answered ListOffsets");
        assert_eq!(info(&e).0, "NOT_LEADER", "{at:?}: {e}");
    }

    // Garbage bytes on the client and peer ports, and silent connections, do not hurt others.
    let peer = c.node(leader).addresses().expect("addrs").peer_addr;
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    for target in [&addr, &peer] {
        let mut s = tokio::net::TcpStream::connect(target)
            .await
            .expect("connect");
        s.write_all(b"GET / HTTP/1.1\r\n\r\n\x00\x01garbage\xff\xfe")
            .await
            .expect("write");
        let mut buf = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "the server must close a garbage connection");
    }
    let r = d
        .produce(produce("t", 0, one(Bytes::from_static(b"ok"))))
        .await
        .expect("a good request still works");
    assert_eq!(r.into_inner().base_offset, 0);
    drop(idle);
    c.wait_healthy(Duration::from_secs(10)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_segments_by_size_and_time() {
    let mut c = ProcCluster::start(3).await;
    let b = c.brokers()[0].clone();
    let mut a = admin(&b).await.expect("admin");
    for (name, configs) in [
        (
            "by-size",
            [("segment.bytes", "1048576"), ("retention.bytes", "2097152")],
        ),
        (
            "by-time",
            [("segment.bytes", "1048576"), ("retention.ms", "1500")],
        ),
    ] {
        a.create_topic(pb::CreateTopicRequest {
            name: name.into(),
            partitions: 1,
            replication_factor: 3,
            configs: configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .await
        .expect("create");
    }
    c.wait_healthy(Duration::from_secs(30)).await;
    // About 6 MiB into each: several 1 MiB segments.
    for topic in ["by-size", "by-time"] {
        let leader = c.leader_of(topic, 0).await.expect("leader");
        let addr = c.node(leader).client_addr();
        let mut d = data(&addr).await.expect("data");
        for _ in 0..24 {
            let records = (0..16)
                .map(|_| pb::Record {
                    key: None,
                    value: Some(Bytes::from(vec![1u8; 16 << 10])),
                    headers: vec![],
                    timestamp_ms: 0,
                })
                .collect();
            d.produce(pb::ProduceRequest {
                topic: topic.into(),
                partition: 0,
                acks: pb::Acks::All as i32,
                payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
                    records,
                })),
            })
            .await
            .expect("produce");
        }
    }
    // Leaders apply retention every 200 ms in tests: the log start moves past 0, the high
    // watermark stays, and reading below the start is OUT_OF_RANGE.
    for topic in ["by-size", "by-time"] {
        let leader = c.leader_of(topic, 0).await.expect("leader");
        let addr = c.node(leader).client_addr();
        wait_until("retention", Duration::from_secs(30), || {
            let addr = addr.clone();
            async move {
                let Ok(mut d) = data(&addr).await else {
                    return false;
                };
                d.list_offsets(pb::ListOffsetsRequest {
                    topic: topic.into(),
                    partition: 0,
                    position: Some(pb::Position {
                        at: Some(pb::position::At::Earliest(true)),
                    }),
                })
                .await
                .is_ok_and(|o| {
                    let o = o.into_inner();
                    o.log_start_offset > 0 && o.high_watermark == 384
                })
            }
        })
        .await;
        let mut d = data(&addr).await.expect("data");
        let e = d
            .fetch(fetch_from(topic, 0, 0))
            .await
            .expect_err("below the log start");
        assert_eq!(e.code(), tonic::Code::OutOfRange, "{topic}: {e}");
    }
}
