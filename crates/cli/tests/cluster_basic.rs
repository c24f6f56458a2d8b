//! A 3-process cluster through the raw gRPC API: create, produce, fetch, offsets, replay.

mod common;

use common::*;
use std::time::Duration;
use strata_proto::v1 as pb;

fn record(v: &str, ts: i64) -> pb::Record {
    pb::Record {
        key: Some(bytes::Bytes::from(format!("k-{v}"))),
        value: Some(bytes::Bytes::from(v.to_string())),
        headers: vec![pb::Header {
            key: "h".into(),
            value: Some(bytes::Bytes::from_static(b"1")),
        }],
        timestamp_ms: ts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_produce_fetch_replay() {
    let mut c = ProcCluster::start(3).await;
    let b = c.brokers()[0].clone();
    let mut admin = admin(&b).await.expect("admin");
    let created = admin
        .create_topic(pb::CreateTopicRequest {
            name: "orders".into(),
            partitions: 3,
            replication_factor: 3,
            configs: Default::default(),
        })
        .await
        .expect("create")
        .into_inner();
    let t = created.topic.expect("topic");
    assert_eq!(t.partitions.len(), 3);
    c.wait_healthy(Duration::from_secs(30)).await;
    // Produce 10 batches of 10 to partition 0 on its leader.
    let leader = c.leader_of("orders", 0).await.expect("leader");
    let addr = c.node(leader).client_addr();
    let mut d = data(&addr).await.expect("data");
    let mut offsets = Vec::new();
    for i in 0..10 {
        let records = (0..10)
            .map(|j| {
                record(
                    &format!("{}", i * 10 + j),
                    1_000_000 + i as i64 * 10 + j as i64,
                )
            })
            .collect();
        let r = d
            .produce(pb::ProduceRequest {
                topic: "orders".into(),
                partition: 0,
                acks: pb::Acks::All as i32,
                payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
                    records,
                })),
            })
            .await
            .expect("produce")
            .into_inner();
        offsets.push(r.base_offset);
    }
    assert_eq!(offsets, (0..10).map(|i| i * 10).collect::<Vec<i64>>());
    // Fetch from 35: records 35.. in order.
    let f = d
        .fetch(fetch_from("orders", 0, 35))
        .await
        .expect("fetch")
        .into_inner();
    assert_eq!(f.high_watermark, 100);
    assert_eq!(f.records.first().map(|r| r.offset), Some(35));
    let values: Vec<String> = f
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values[0], "35");
    // By timestamp: the first record at or after ts 1_000_052 is offset 52.
    let o = d
        .list_offsets(pb::ListOffsetsRequest {
            topic: "orders".into(),
            partition: 0,
            position: Some(pb::Position {
                at: Some(pb::position::At::TimestampMs(1_000_052)),
            }),
        })
        .await
        .expect("offsets")
        .into_inner();
    assert_eq!(o.offset, 52);
    assert_eq!(o.high_watermark, 100);
    // A follower redirects.
    let follower = c
        .nodes
        .keys()
        .copied()
        .find(|id| *id != leader)
        .expect("follower");
    let faddr = c.node(follower).client_addr();
    let mut fd = data(&faddr).await.expect("data");
    let e = fd
        .fetch(fetch_from("orders", 0, 0))
        .await
        .expect_err("not leader");
    assert_eq!(e.code(), tonic::Code::Unavailable);
    assert!(e.message().contains(&addr), "{}", e.message());
    // Out of range names the range.
    let e = d
        .fetch(fetch_from("orders", 0, 500))
        .await
        .expect_err("out of range");
    assert_eq!(e.code(), tonic::Code::OutOfRange);
    assert!(e.message().contains("0 to 100"), "{}", e.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_health_metrics_and_topic_admin() {
    use futures_util::StreamExt;
    let mut c = ProcCluster::start(3).await;
    let b = c.brokers()[0].clone();
    let mut admin = admin(&b).await.expect("admin");
    admin
        .create_topic(pb::CreateTopicRequest {
            name: "events".into(),
            partitions: 1,
            replication_factor: 3,
            configs: [("retention.ms".to_string(), "3600000".to_string())].into(),
        })
        .await
        .expect("create");
    c.wait_healthy(Duration::from_secs(30)).await;
    // Alter and add partitions.
    let t = admin
        .alter_topic_config(pb::AlterTopicConfigRequest {
            name: "events".into(),
            set: [("max.message.bytes".to_string(), "2048".to_string())].into(),
            remove: vec!["retention.ms".into()],
        })
        .await
        .expect("alter")
        .into_inner();
    assert_eq!(
        t.configs.get("max.message.bytes").map(String::as_str),
        Some("2048")
    );
    assert_eq!(
        t.configs.get("retention.ms").map(String::as_str),
        Some("604800000")
    );
    let t = admin
        .add_partitions(pb::AddPartitionsRequest {
            name: "events".into(),
            partitions: 3,
        })
        .await
        .expect("add partitions")
        .into_inner();
    assert_eq!(t.partitions.len(), 3);
    let e = admin
        .add_partitions(pb::AddPartitionsRequest {
            name: "events".into(),
            partitions: 2,
        })
        .await
        .expect_err("shrink");
    assert!(e.message().contains("must be larger"), "{e}");
    c.wait_healthy(Duration::from_secs(30)).await;
    let list = admin
        .list_topics(pb::ListTopicsRequest {})
        .await
        .expect("list")
        .into_inner();
    assert_eq!(list.topics.len(), 1);

    // Subscribe from earliest, then produce: records stream in as they commit.
    let leader = c.leader_of("events", 0).await.expect("leader");
    let addr = c.node(leader).client_addr();
    let mut d = data(&addr).await.expect("data");
    let mut stream = d
        .subscribe(pb::SubscribeRequest {
            topic: "events".into(),
            partition: 0,
            start: Some(pb::Position {
                at: Some(pb::position::At::Earliest(true)),
            }),
            max_bytes: 0,
            format: 0,
        })
        .await
        .expect("subscribe")
        .into_inner();
    for i in 0..5 {
        d.produce(pb::ProduceRequest {
            topic: "events".into(),
            partition: 0,
            acks: 0,
            payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
                records: vec![record(&format!("e{i}"), 0)],
            })),
        })
        .await
        .expect("produce");
    }
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let msg = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("stream stalled")
            .expect("stream ended")
            .expect("stream error");
        seen.extend(msg.records.iter().map(|r| r.offset));
    }
    assert_eq!(seen, vec![0, 1, 2, 3, 4]);
    // The topic's own limit applies.
    let e = d
        .produce(pb::ProduceRequest {
            topic: "events".into(),
            partition: 0,
            acks: 0,
            payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
                records: vec![pb::Record {
                    key: None,
                    value: Some(bytes::Bytes::from(vec![1u8; 4096])),
                    headers: vec![],
                    timestamp_ms: 0,
                }],
            })),
        })
        .await
        .expect_err("over the topic limit");
    assert!(e.message().contains("2048"), "{e}");

    // Health and metrics.
    let http = c.node(leader).addresses().expect("addrs").http_addr;
    assert_eq!(http_get(&http, "/livez").await.map(|r| r.0), Some(200));
    assert_eq!(http_get(&http, "/readyz").await.map(|r| r.0), Some(200));
    let (code, body) = http_get(&http, "/metrics").await.expect("metrics");
    assert_eq!(code, 200);
    for name in [
        "strata_produce_records_total",
        "strata_partition_high_watermark",
        "strata_partition_leader",
        "strata_partitions_under_replicated",
        "strata_produce_latency_seconds",
    ] {
        assert!(body.contains(name), "{name} missing from /metrics:\n{body}");
    }
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(ch);
    let h = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "strata.v1.Strata".into(),
        })
        .await
        .expect("health")
        .into_inner();
    assert_eq!(
        h.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_a_replica_points_at_the_leader_and_reflection_lists_services() {
    use futures_util::StreamExt;
    let mut c = ProcCluster::start(4).await;
    let b = c.brokers()[0].clone();
    let t = create_topic_rf3(&mut c, "spread", 4).await;
    for p in &t.partitions {
        let outsider = c
            .nodes
            .keys()
            .copied()
            .find(|id| !p.replicas.contains(id))
            .expect("a node without a replica");
        let leader = loop {
            let replica = c.node(p.replicas[0]).client_addr();
            let mut d = data(&replica).await.expect("data");
            let m = d
                .metadata(pb::MetadataRequest {
                    topics: vec!["spread".into()],
                })
                .await
                .expect("metadata")
                .into_inner();
            let l = m.topics[0].partitions[p.partition as usize].leader_id;
            if l != 0 {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        // The outsider learns the leader from the hints the leader sends every second, and
        // answers a produce with the leader's client address: one redirect.
        let out_addr = c.node(outsider).client_addr();
        let leader_addr = c.node(leader).client_addr();
        wait_until("hint reaches the outsider", Duration::from_secs(10), || {
            let (out_addr, leader_addr) = (out_addr.clone(), leader_addr.clone());
            let partition = p.partition;
            async move {
                let Ok(mut d) = data(&out_addr).await else {
                    return false;
                };
                let e = d
                    .produce(pb::ProduceRequest {
                        topic: "spread".into(),
                        partition,
                        acks: 0,
                        payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
                            records: vec![record("x", 0)],
                        })),
                    })
                    .await;
                e.is_err_and(|e| e.message().contains(&leader_addr))
            }
        })
        .await;
        let mut d = data(&leader_addr).await.expect("data");
        d.produce(pb::ProduceRequest {
            topic: "spread".into(),
            partition: p.partition,
            acks: 0,
            payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
                records: vec![record("y", 0)],
            })),
        })
        .await
        .expect("produce at the hinted leader");
    }
    // Server reflection (what grpcurl uses) lists the services.
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{b}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut r = ServerReflectionClient::new(ch);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = r
        .server_reflection_info(futures_util::stream::iter(vec![req]))
        .await
        .expect("reflection")
        .into_inner();
    let msg = resp.next().await.expect("answer").expect("ok");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "strata.v1.Strata",
        "strata.v1.Admin",
        "grpc.health.v1.Health",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
}
