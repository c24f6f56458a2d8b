//! The Kafka listener on real `strata node` processes, spoken to byte for byte (with the
//! `kafka-protocol` codecs on the client side): bad input closes only the connection that
//! sent it, with a log line naming the problem; Metadata names every node, leader, replica
//! and in-sync replica; the native API and the Kafka API see the same records at the same
//! offsets; idempotent produce keeps its semantics; classic and native groups stay apart.
//! Real Kafka clients are exercised in `kafka_clients.rs`.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::time::Duration;
use strata_record::{BatchBuilder, NewRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A Kafka connection that sends one request at a time (or several, then reads).
struct Wire {
    s: TcpStream,
    corr: i32,
}

impl Wire {
    async fn connect(addr: &str) -> Wire {
        Wire {
            s: TcpStream::connect(addr)
                .await
                .expect("connect to the kafka listener"),
            corr: 0,
        }
    }

    async fn send<R: Encodable + HeaderVersion>(&mut self, key: ApiKey, v: i16, req: &R) -> i32 {
        self.corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(self.corr)
            .with_client_id(Some(StrBytes::from_static_str("strata-test")));
        let mut b = BytesMut::new();
        b.put_i32(0);
        header
            .encode(&mut b, key.request_header_version(v))
            .expect("encode header");
        req.encode(&mut b, v).expect("encode request");
        let len = (b.len() - 4) as i32;
        b[..4].copy_from_slice(&len.to_be_bytes());
        self.s.write_all(&b).await.expect("write");
        self.corr
    }

    /// The next answer's correlation id and body, or `None` if the connection closed.
    async fn recv<T: Decodable>(&mut self, key: ApiKey, v: i16) -> Option<(i32, T)> {
        let mut len = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(30), self.s.read_exact(&mut len))
            .await
            .expect("an answer within 30 s")
            .ok()?;
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.s.read_exact(&mut buf).await.ok()?;
        let mut b = Bytes::from(buf);
        let hv = if key == ApiKey::ApiVersions {
            0
        } else {
            key.response_header_version(v)
        };
        let h = ResponseHeader::decode(&mut b, hv).expect("response header");
        let body = T::decode(&mut b, v).expect("response body");
        Some((h.correlation_id, body))
    }

    async fn call<R: Encodable + HeaderVersion, T: Decodable>(
        &mut self,
        key: ApiKey,
        v: i16,
        req: &R,
    ) -> T {
        let corr = self.send(key, v, req).await;
        let (got, body) = self.recv(key, v).await.expect("connection closed");
        assert_eq!(got, corr, "answers come in request order");
        body
    }

    /// Whether the listener closed the connection (reads EOF within 10 s).
    async fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(
            tokio::time::timeout(Duration::from_secs(10), self.s.read(&mut b)).await,
            Ok(Ok(0)) | Ok(Err(_))
        )
    }
}

/// One node holding topic `topic` (one partition) with `lines` produced into it: the
/// cluster, its client address, its Kafka address.
async fn one_node_with(topic: &str, lines: &str) -> (ProcCluster, String, String) {
    let mut c = ProcCluster::empty();
    let id = c.add_node(Some(1)).await;
    let b = c.brokers().join(",");
    strata(
        &b,
        &format!("topic create {topic} --partitions 1 --replication-factor 1"),
    )
    .await
    .ok();
    strata_stdin(&b, &format!("produce {topic}"), lines.to_string())
        .await
        .ok();
    let addr = kafka_addr(&mut c, id);
    (c, b, addr)
}

/// A JoinGroup at version `v`, retried as a client does while the group's coordinator is
/// not serving yet (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE).
async fn join_ready(w: &mut Wire, v: i16, req: &JoinGroupRequest) -> JoinGroupResponse {
    for _ in 0..200 {
        let r: JoinGroupResponse = w.call(ApiKey::JoinGroup, v, req).await;
        if r.error_code != 15 && r.error_code != 16 {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the group coordinator did not serve within 10 s");
}

fn kafka_addr(c: &mut ProcCluster, id: u64) -> String {
    c.node(id).addresses().expect("addresses").kafka_addr
}

fn name(s: &str) -> TopicName {
    StrBytes::from_string(s.to_string()).into()
}

fn batch(values: &[&str]) -> Bytes {
    let mut b = BatchBuilder::new();
    for v in values {
        b.append(&NewRecord::new(
            1_700_000_000_000,
            None,
            Some(Bytes::from(v.to_string())),
        ))
        .expect("append");
    }
    b.build()
}

fn idem_batch(values: &[&str], pid: i64, epoch: i16, seq: i32) -> Bytes {
    let mut b = BatchBuilder::new().with_producer(pid, epoch, seq);
    for v in values {
        b.append(&NewRecord::new(
            1_700_000_000_000,
            None,
            Some(Bytes::from(v.to_string())),
        ))
        .expect("append");
    }
    b.build()
}

fn produce_req(topic: &str, partition: i32, acks: i16, records: Bytes) -> ProduceRequest {
    let mut p = produce_request::PartitionProduceData::default();
    p.index = partition;
    p.records = Some(records);
    let mut t = produce_request::TopicProduceData::default();
    t.name = name(topic);
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = acks;
    r.timeout_ms = 10_000;
    r.topic_data = vec![t];
    r
}

/// (error code, base offset) of the single partition of a produce answer.
fn produced(r: &ProduceResponse) -> (i16, i64) {
    let p = &r.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn fetch_req(topic: &str, partition: i32, offset: i64, wait_ms: i32) -> FetchRequest {
    let mut p = fetch_request::FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = offset;
    p.partition_max_bytes = 1 << 20;
    p.current_leader_epoch = -1;
    p.last_fetched_epoch = -1;
    p.log_start_offset = -1;
    let mut t = fetch_request::FetchTopic::default();
    t.topic = name(topic);
    t.partitions = vec![p];
    let mut r = FetchRequest::default();
    r.replica_id = (-1).into();
    r.max_wait_ms = wait_ms;
    r.min_bytes = 1;
    r.max_bytes = 50 << 20;
    r.session_epoch = -1;
    r.topics = vec![t];
    r
}

/// (error code, high watermark, [(offset, value)]) of the single partition of a fetch.
fn fetched(r: &FetchResponse) -> (i16, i64, Vec<(i64, String)>) {
    let p = &r.responses[0].partitions[0];
    let mut out = Vec::new();
    let mut bytes = p.records.clone().unwrap_or_default();
    while bytes.has_remaining() {
        let (b, rest) = strata_record::Batch::parse_prefix(bytes).expect("a valid batch");
        for rec in b.records() {
            out.push((
                rec.offset,
                String::from_utf8_lossy(rec.value.as_deref().unwrap_or_default()).into_owned(),
            ));
        }
        bytes = rest;
    }
    (p.error_code, p.high_watermark, out)
}

fn metadata_req(topics: &[&str]) -> MetadataRequest {
    let mut r = MetadataRequest::default();
    r.topics = Some(
        topics
            .iter()
            .map(|t| {
                let mut x = metadata_request::MetadataRequestTopic::default();
                x.name = Some(name(t));
                x
            })
            .collect(),
    );
    r
}

/// Garbage, a negative length, an oversize frame, an unknown API key, an unsupported
/// version and a frame cut short each close their own connection with a log line naming
/// the problem; ApiVersions at an unknown version answers UNSUPPORTED_VERSION with the
/// table; a connection opened before goes on answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_bad_input_closes_only_its_connection() {
    let mut c = ProcCluster::empty();
    let id = c.add_node(Some(1)).await;
    let addr = kafka_addr(&mut c, id);
    let mut good = Wire::connect(&addr).await;
    let v: ApiVersionsResponse = good
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    assert_eq!(v.error_code, 0);
    let produce = v
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Produce as i16)
        .expect("Produce is listed");
    assert_eq!((produce.min_version, produce.max_version), (3, 12));

    let raw = |bytes: Vec<u8>| {
        let addr = addr.clone();
        async move {
            let mut w = Wire::connect(&addr).await;
            w.s.write_all(&bytes).await.expect("write");
            w
        }
    };
    // An HTTP request: its first four bytes read as a length of about 1.2 GB.
    let mut w = raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()).await;
    assert!(w.closed().await, "garbage closes the connection");
    let mut w = raw((-5i32).to_be_bytes().to_vec()).await;
    assert!(w.closed().await, "a negative length closes the connection");
    let mut w = raw((200i32 << 20).to_be_bytes().to_vec()).await;
    assert!(w.closed().await, "an oversize frame closes the connection");
    let mut unknown = BytesMut::new();
    unknown.put_i32(10);
    unknown.put_i16(999);
    unknown.put_i16(0);
    unknown.put_i32(7);
    unknown.put_i16(-1);
    let mut w = raw(unknown.to_vec()).await;
    assert!(w.closed().await, "an unknown API key closes the connection");
    let mut v2 = BytesMut::new();
    v2.put_i32(14);
    v2.put_i16(ApiKey::Produce as i16);
    v2.put_i16(2);
    v2.put_i32(8);
    v2.put_i16(-1);
    v2.put_i32(0);
    let mut w = raw(v2.to_vec()).await;
    assert!(
        w.closed().await,
        "Produce v2 (not served) closes the connection"
    );
    let mut cut = BytesMut::new();
    cut.put_i32(100);
    cut.put_slice(&[0u8; 20]);
    drop(raw(cut.to_vec()).await);

    // ApiVersions at a version this listener does not know: v0 layout, error 35, table.
    let mut w = Wire::connect(&addr).await;
    let mut frame = BytesMut::new();
    frame.put_i32(0);
    frame.put_i16(ApiKey::ApiVersions as i16);
    frame.put_i16(99);
    frame.put_i32(42);
    frame.put_i16(-1);
    frame.put_u8(0);
    let len = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&len.to_be_bytes());
    w.s.write_all(&frame).await.expect("write");
    let (corr, v0): (i32, ApiVersionsResponse) =
        w.recv(ApiKey::ApiVersions, 0).await.expect("an answer");
    assert_eq!(corr, 42);
    assert_eq!(v0.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(!v0.api_keys.is_empty(), "the table comes with it");

    // The first connection is unaffected.
    let m: MetadataResponse = good
        .call(ApiKey::Metadata, 12, &MetadataRequest::default())
        .await;
    assert_eq!(m.brokers.len(), 1);
    let log = c.node(id).log.clone();
    for needle in [
        "exceeds kafka_frame_bytes_max",
        "negative frame length",
        "unknown API key 999",
        "Produce v2 is not served",
        "connection cut mid-frame",
    ] {
        wait_until(needle, Duration::from_secs(10), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move { text.contains(needle) }
        })
        .await;
    }
}

/// On three nodes: Metadata lists each node's Kafka address, each partition's leader with
/// its epoch, replicas and in-sync replicas; a produce to a follower is
/// NOT_LEADER_OR_FOLLOWER; records produced natively are fetched through Kafka at the same
/// offsets and the other way round; acks=0 gets no answer; idempotent batches keep the
/// native semantics (a duplicate gets its first offset, a gap is OUT_OF_ORDER_SEQUENCE);
/// bad batches, unknown topics and offsets out of range get their codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_and_native_clients_share_one_log() {
    let mut c = ProcCluster::start(3).await;
    let b = c.brokers().join(",");
    strata(
        &b,
        "topic create shared --partitions 1 --replication-factor 3",
    )
    .await
    .ok();
    let lines: String = (0..5).map(|i| format!("native{i}\n")).collect();
    strata_stdin(&b, "produce shared --partition 0", lines)
        .await
        .ok();

    let first = c.ids()[0];
    let mut w = Wire::connect(&kafka_addr(&mut c, first)).await;
    let m: MetadataResponse = w
        .call(ApiKey::Metadata, 12, &metadata_req(&["shared", "nope"]))
        .await;
    assert_eq!(m.brokers.len(), 3, "{m:?}");
    for id in c.ids() {
        let addr = kafka_addr(&mut c, id);
        assert!(
            m.brokers
                .iter()
                .any(|b| b.node_id.0 as u64 == id
                    && format!("{}:{}", b.host.as_str(), b.port) == addr),
            "node {id} at {addr} in {m:?}"
        );
    }
    assert!(m.controller_id.0 > 0);
    let t = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "shared"))
        .expect("shared");
    assert_eq!(t.error_code, 0);
    assert!(!t.topic_id.is_nil());
    let p = &t.partitions[0];
    assert_eq!(p.replica_nodes.len(), 3);
    assert_eq!(p.isr_nodes.len(), 3);
    assert!(p.leader_epoch > 0);
    let leader = p.leader_id.0 as u64;
    let nope = m
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == "nope"))
        .expect("the unknown topic is answered");
    assert_eq!(nope.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    // A follower refuses the write and names no offset.
    let follower = c
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let mut f = Wire::connect(&kafka_addr(&mut c, follower)).await;
    let r: ProduceResponse = f
        .call(
            ApiKey::Produce,
            9,
            &produce_req("shared", 0, -1, batch(&["x"])),
        )
        .await;
    assert_eq!(produced(&r).0, 6, "NOT_LEADER_OR_FOLLOWER");

    // Native records, read through Kafka at their offsets.
    let mut l = Wire::connect(&kafka_addr(&mut c, leader)).await;
    let r: FetchResponse = l
        .call(ApiKey::Fetch, 12, &fetch_req("shared", 0, 0, 100))
        .await;
    let (code, hw, recs) = fetched(&r);
    assert_eq!((code, hw), (0, 5));
    let want: Vec<(i64, String)> = (0..5).map(|i| (i, format!("native{i}"))).collect();
    assert_eq!(recs, want);

    // Kafka records (acks=all), read natively at the offsets the answer named.
    let r: ProduceResponse = l
        .call(
            ApiKey::Produce,
            9,
            &produce_req("shared", 0, -1, batch(&["k5", "k6"])),
        )
        .await;
    assert_eq!(produced(&r), (0, 5));
    // acks=0: no answer; the next answer is the next request's.
    l.send(
        ApiKey::Produce,
        9,
        &produce_req("shared", 0, 0, batch(&["k7"])),
    )
    .await;
    let r: ProduceResponse = l
        .call(
            ApiKey::Produce,
            9,
            &produce_req("shared", 0, 1, batch(&["k8"])),
        )
        .await;
    assert_eq!(produced(&r), (0, 8));
    let out = strata(&b, "consume shared --partition 0 --from 5 -n 4 -o json")
        .await
        .ok()
        .json_lines();
    let got: Vec<(i64, String)> = out
        .iter()
        .map(|m| {
            (
                m["offset"].as_i64().expect("offset"),
                m["value"].as_str().expect("value").to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(5, "k5"), (6, "k6"), (7, "k7"), (8, "k8")]
            .map(|(o, v)| (o, v.to_string()))
            .to_vec()
    );

    // Long-poll: a fetch at the end waits, and returns as soon as a record arrives.
    let mut poller = Wire::connect(&kafka_addr(&mut c, leader)).await;
    let waiting = tokio::spawn(async move {
        let r: FetchResponse = poller
            .call(ApiKey::Fetch, 12, &fetch_req("shared", 0, 9, 20_000))
            .await;
        fetched(&r)
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!waiting.is_finished(), "the fetch waits for records");
    let r: ProduceResponse = l
        .call(
            ApiKey::Produce,
            9,
            &produce_req("shared", 0, -1, batch(&["late"])),
        )
        .await;
    assert_eq!(produced(&r), (0, 9));
    let (code, _, recs) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("the waiting fetch returns once the record is there")
        .expect("join");
    assert_eq!((code, recs), (0, vec![(9, "late".to_string())]));

    // Idempotence: the same batch twice gets its first offset; a gap is refused.
    let init: InitProducerIdResponse = l
        .call(ApiKey::InitProducerId, 4, &InitProducerIdRequest::default())
        .await;
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    assert!(pid >= 0);
    let first = idem_batch(&["i0", "i1"], pid, epoch, 0);
    let r: ProduceResponse = l
        .call(
            ApiKey::Produce,
            9,
            &produce_req("shared", 0, -1, first.clone()),
        )
        .await;
    assert_eq!(produced(&r), (0, 10));
    let r: ProduceResponse = l
        .call(ApiKey::Produce, 9, &produce_req("shared", 0, -1, first))
        .await;
    assert_eq!(
        produced(&r),
        (0, 10),
        "a duplicate gets its original offset"
    );
    let r: ProduceResponse = l
        .call(
            ApiKey::Produce,
            9,
            &produce_req("shared", 0, -1, idem_batch(&["i5"], pid, epoch, 5)),
        )
        .await;
    assert_eq!(produced(&r).0, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    let mut txn = InitProducerIdRequest::default();
    txn.transactional_id = Some(StrBytes::from_static_str("tx").into());
    let r: InitProducerIdResponse = l.call(ApiKey::InitProducerId, 4, &txn).await;
    assert_ne!(r.error_code, 0, "transactions are refused");

    // Bad batches and names.
    let mut corrupt = BytesMut::from(&batch(&["c"])[..]);
    let n = corrupt.len();
    corrupt[n - 1] ^= 0xff;
    let r: ProduceResponse = l
        .call(
            ApiKey::Produce,
            9,
            &produce_req("shared", 0, -1, corrupt.freeze()),
        )
        .await;
    assert_eq!(produced(&r).0, 87, "INVALID_RECORD for a bad CRC");
    let big = "x".repeat(2 << 20);
    let r: ProduceResponse = l
        .call(
            ApiKey::Produce,
            9,
            &produce_req("shared", 0, -1, batch(&[&big])),
        )
        .await;
    assert_eq!(produced(&r).0, 10, "MESSAGE_TOO_LARGE");
    let r: ProduceResponse = l
        .call(
            ApiKey::Produce,
            9,
            &produce_req("nope", 0, -1, batch(&["x"])),
        )
        .await;
    assert_eq!(produced(&r).0, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let r: FetchResponse = l
        .call(ApiKey::Fetch, 12, &fetch_req("shared", 0, 999, 0))
        .await;
    assert_eq!(fetched(&r).0, 1, "OFFSET_OUT_OF_RANGE");
    // Nothing refused was written: the log ends where it did.
    let r: FetchResponse = l
        .call(ApiKey::Fetch, 12, &fetch_req("shared", 0, 10, 0))
        .await;
    let (_, hw, recs) = fetched(&r);
    assert_eq!(hw, 12);
    assert_eq!(recs.len(), 2);

    // ListOffsets: earliest, latest, by time (every record is stamped 1_700_000_000_000
    // or later).
    let mut lo = ListOffsetsRequest::default();
    lo.replica_id = (-1).into();
    let mut t = list_offsets_request::ListOffsetsTopic::default();
    t.name = name("shared");
    for ts in [-2i64, -1, 4_000_000_000_000] {
        let mut p = list_offsets_request::ListOffsetsPartition::default();
        p.partition_index = 0;
        p.timestamp = ts;
        p.current_leader_epoch = -1;
        t.partitions.push(p);
    }
    lo.topics = vec![t];
    let r: ListOffsetsResponse = l.call(ApiKey::ListOffsets, 7, &lo).await;
    let offs: Vec<(i16, i64)> = r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.offset))
        .collect();
    assert_eq!(offs, [(0, 0), (0, 12), (0, -1)]);
}

fn join_req(group: &str, member: &str) -> JoinGroupRequest {
    let mut p = join_group_request::JoinGroupRequestProtocol::default();
    p.name = StrBytes::from_static_str("range");
    // ConsumerProtocolSubscription v0: topics ["classic"], no user data.
    let mut meta = BytesMut::new();
    meta.put_i16(0);
    meta.put_i32(1);
    meta.put_i16(7);
    meta.put_slice(b"classic");
    meta.put_i32(-1);
    p.metadata = meta.freeze();
    let mut r = JoinGroupRequest::default();
    r.group_id = StrBytes::from_string(group.to_string()).into();
    r.session_timeout_ms = 2_000;
    r.rebalance_timeout_ms = 10_000;
    r.member_id = StrBytes::from_string(member.to_string());
    r.protocol_type = StrBytes::from_static_str("consumer");
    r.protocols = vec![p];
    r
}

fn commit_req(group: &str, member: &str, generation: i32, offset: i64) -> OffsetCommitRequest {
    let mut p = offset_commit_request::OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = offset;
    p.committed_leader_epoch = -1;
    let mut t = offset_commit_request::OffsetCommitRequestTopic::default();
    t.name = name("classic");
    t.partitions = vec![p];
    let mut r = OffsetCommitRequest::default();
    r.group_id = StrBytes::from_string(group.to_string()).into();
    r.member_id = StrBytes::from_string(member.to_string());
    r.generation_id_or_member_epoch = generation;
    r.topics = vec![t];
    r
}

fn committed_offset(r: &OffsetFetchResponse) -> i64 {
    r.topics[0].partitions[0].committed_offset
}

/// A classic group through the coordinator APIs: FindCoordinator, JoinGroup (a first join
/// is asked to come back with its id), SyncGroup, Heartbeat, OffsetCommit fenced by
/// generation, OffsetFetch, DescribeGroups, LeaveGroup; a native group of the same name is
/// refused while the classic one has members, and a native group on the same topic keeps
/// its own offsets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_classic_group_lifecycle_beside_a_native_group() {
    let lines: String = (0..10).map(|i| format!("r{i}\n")).collect();
    let (c, b, addr) = one_node_with("classic", &lines).await;
    let id = c.ids()[0];
    let mut w = Wire::connect(&addr).await;

    let mut fc = FindCoordinatorRequest::default();
    fc.key = StrBytes::from_static_str("kg");
    let r: FindCoordinatorResponse = w.call(ApiKey::FindCoordinator, 3, &fc).await;
    assert_eq!((r.error_code, r.node_id.0 as u64), (0, id), "{r:?}");

    // The coordinator's partition was created by FindCoordinator.
    let r = join_ready(&mut w, 5, &join_req("kg", "")).await;
    assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = r.member_id.to_string();
    assert!(!member.is_empty());
    let r: JoinGroupResponse = w.call(ApiKey::JoinGroup, 5, &join_req("kg", &member)).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    assert_eq!(r.leader.as_str(), member);
    assert_eq!(r.members.len(), 1);
    let generation = r.generation_id;
    assert!(generation >= 1);

    // ConsumerProtocolAssignment v0: classic partition 0.
    let mut assignment = BytesMut::new();
    assignment.put_i16(0);
    assignment.put_i32(1);
    assignment.put_i16(7);
    assignment.put_slice(b"classic");
    assignment.put_i32(1);
    assignment.put_i32(0);
    assignment.put_i32(-1);
    let assignment = assignment.freeze();
    let mut sync = SyncGroupRequest::default();
    sync.group_id = StrBytes::from_static_str("kg").into();
    sync.member_id = StrBytes::from_string(member.clone());
    sync.generation_id = generation;
    let mut a = sync_group_request::SyncGroupRequestAssignment::default();
    a.member_id = StrBytes::from_string(member.clone());
    a.assignment = assignment.clone();
    sync.assignments = vec![a];
    let r: SyncGroupResponse = w.call(ApiKey::SyncGroup, 3, &sync).await;
    assert_eq!(
        (r.error_code, r.assignment.clone()),
        (0, assignment.clone())
    );

    let mut hb = HeartbeatRequest::default();
    hb.group_id = StrBytes::from_static_str("kg").into();
    hb.member_id = StrBytes::from_string(member.clone());
    hb.generation_id = generation;
    let r: HeartbeatResponse = w.call(ApiKey::Heartbeat, 3, &hb).await;
    assert_eq!(r.error_code, 0);
    // A member that heartbeats outlives its session timeout (2 s) many times over: the
    // native groups' expiry leaves classic members to the classic clocks.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until {
        let r: HeartbeatResponse = w.call(ApiKey::Heartbeat, 3, &hb).await;
        assert_eq!(r.error_code, 0, "the member stays while it heartbeats");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    hb.generation_id = generation + 7;
    let r: HeartbeatResponse = w.call(ApiKey::Heartbeat, 3, &hb).await;
    assert_eq!(r.error_code, 22, "ILLEGAL_GENERATION");

    let r: OffsetCommitResponse = w
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_req("kg", &member, generation, 4),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r: OffsetCommitResponse = w
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_req("kg", &member, generation - 1, 6),
        )
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 22,
        "a stale generation is fenced"
    );
    let r: OffsetCommitResponse = w
        .call(
            ApiKey::OffsetCommit,
            8,
            &commit_req("kg", "someone", generation, 6),
        )
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 25,
        "UNKNOWN_MEMBER_ID"
    );

    // A native consumer cannot join the classic group while it has members.
    let refused = strata(&b, "consume classic --group kg -n 1").await;
    assert_ne!(
        refused.code, 0,
        "a native member is refused: {}",
        refused.stdout
    );

    // A native group on the same topic keeps its own offsets.
    strata(&b, "consume classic --group ng -n 10").await.ok();
    let mut of = OffsetFetchRequest::default();
    of.group_id = StrBytes::from_static_str("kg").into();
    let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
    t.name = name("classic");
    t.partition_indexes = vec![0];
    of.topics = Some(vec![t.clone()]);
    let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, 5, &of).await;
    assert_eq!(committed_offset(&r), 4);
    of.group_id = StrBytes::from_static_str("ng").into();
    let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, 5, &of).await;
    assert_eq!(
        committed_offset(&r),
        10,
        "the native group committed what it read"
    );
    of.group_id = StrBytes::from_static_str("none").into();
    let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, 5, &of).await;
    assert_eq!(committed_offset(&r), -1, "no commit: -1");

    let mut dg = DescribeGroupsRequest::default();
    dg.groups = vec![StrBytes::from_static_str("kg").into()];
    let r: DescribeGroupsResponse = w.call(ApiKey::DescribeGroups, 5, &dg).await;
    let g = &r.groups[0];
    assert_eq!(
        (
            g.error_code,
            g.group_state.as_str(),
            g.protocol_type.as_str(),
            g.protocol_data.as_str()
        ),
        (0, "Stable", "consumer", "range")
    );
    assert_eq!(g.members[0].member_assignment, assignment);

    let r: ListGroupsResponse = w
        .call(ApiKey::ListGroups, 4, &ListGroupsRequest::default())
        .await;
    let mut listed: Vec<(String, String)> = r
        .groups
        .iter()
        .map(|g| (g.group_id.0.to_string(), g.protocol_type.to_string()))
        .collect();
    listed.sort();
    assert!(
        listed.contains(&("kg".into(), "consumer".into())),
        "{listed:?}"
    );
    assert!(listed.iter().any(|(n, _)| n == "ng"), "{listed:?}");

    // A group with members is not deleted; after the leave it is.
    let mut del = DeleteGroupsRequest::default();
    del.groups_names = vec![StrBytes::from_static_str("kg").into()];
    let r: DeleteGroupsResponse = w.call(ApiKey::DeleteGroups, 2, &del).await;
    assert_eq!(r.results[0].error_code, 68, "NON_EMPTY_GROUP");
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = StrBytes::from_static_str("kg").into();
    let mut mi = leave_group_request::MemberIdentity::default();
    mi.member_id = StrBytes::from_string(member.clone());
    leave.members = vec![mi];
    let r: LeaveGroupResponse = w.call(ApiKey::LeaveGroup, 4, &leave).await;
    assert_eq!((r.error_code, r.members[0].error_code), (0, 0));
    // An empty group takes commits from outside the membership (generation -1), never
    // moving an offset back.
    let r: OffsetCommitResponse = w
        .call(ApiKey::OffsetCommit, 8, &commit_req("kg", "", -1, 7))
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    let r: OffsetCommitResponse = w
        .call(ApiKey::OffsetCommit, 8, &commit_req("kg", "", -1, 2))
        .await;
    assert_ne!(
        r.topics[0].partitions[0].error_code, 0,
        "offsets never go back"
    );
    let r: DeleteGroupsResponse = w.call(ApiKey::DeleteGroups, 2, &del).await;
    assert_eq!(r.results[0].error_code, 0);
    of.group_id = StrBytes::from_static_str("kg").into();
    let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, 5, &of).await;
    assert_eq!(committed_offset(&r), -1, "deleted with its offsets");
}

/// Sends `req` at version `v` if the client codec can encode it there, and returns whether
/// an answer came (the listener closes the connection when it cannot encode one).
async fn answers<R, T>(w: &mut Wire, key: ApiKey, v: i16, req: &R) -> Option<bool>
where
    R: Encodable + HeaderVersion,
    T: Decodable,
{
    let mut scratch = BytesMut::new();
    req.encode(&mut scratch, v).ok()?;
    let corr = w.send(key, v, req).await;
    Some(matches!(w.recv::<T>(key, v).await, Some((c, _)) if c == corr))
}

/// Every API at every version the listener announces is answered (the answer encodes at
/// that version), with requests that take each handler through its main path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_every_served_version_answers() {
    let mut c = ProcCluster::empty();
    let id = c.add_node(Some(1)).await;
    let b = c.brokers().join(",");
    strata(
        &b,
        "topic create sweep --partitions 1 --replication-factor 1",
    )
    .await
    .ok();
    let addr = kafka_addr(&mut c, id);
    let mut w = Wire::connect(&addr).await;
    let table: ApiVersionsResponse = w
        .call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let s = |x: &str| StrBytes::from_string(x.to_string());
    // The group coordinator's partition serves first, so that group calls take their main
    // path rather than NOT_COORDINATOR.
    let mut of = OffsetFetchRequest::default();
    of.group_id = s("sweep-g").into();
    for _ in 0..200 {
        let r: OffsetFetchResponse = w.call(ApiKey::OffsetFetch, 5, &of).await;
        if r.error_code == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut tested = 0;
    for k in &table.api_keys {
        let key = ApiKey::try_from(k.api_key).expect("a known key");
        for v in k.min_version..=k.max_version {
            macro_rules! check {
                ($resp:ty, $req:expr) => {{
                    let req = $req;
                    answers::<_, $resp>(&mut w, key, v, &req).await
                }};
            }
            let got = match key {
                ApiKey::ApiVersions => check!(ApiVersionsResponse, ApiVersionsRequest::default()),
                ApiKey::Metadata => check!(MetadataResponse, {
                    let mut r = metadata_req(&["sweep"]);
                    if v == 0 {
                        r.topics = Some(Vec::new());
                    }
                    r
                }),
                ApiKey::Produce => {
                    check!(ProduceResponse, produce_req("sweep", 0, 1, batch(&["s"])))
                }
                ApiKey::Fetch => check!(FetchResponse, fetch_req("sweep", 0, 0, 0)),
                ApiKey::ListOffsets => check!(ListOffsetsResponse, {
                    let mut r = ListOffsetsRequest::default();
                    r.replica_id = (-1).into();
                    let mut t = list_offsets_request::ListOffsetsTopic::default();
                    t.name = name("sweep");
                    let mut p = list_offsets_request::ListOffsetsPartition::default();
                    p.timestamp = -2;
                    t.partitions = vec![p];
                    r.topics = vec![t];
                    r
                }),
                ApiKey::OffsetCommit => check!(OffsetCommitResponse, {
                    let mut r = commit_req("sweep-g", "", -1, 0);
                    r.topics[0].name = name("sweep");
                    r
                }),
                ApiKey::OffsetFetch => check!(OffsetFetchResponse, {
                    let mut r = OffsetFetchRequest::default();
                    if v >= 8 {
                        let mut g = offset_fetch_request::OffsetFetchRequestGroup::default();
                        g.group_id = s("sweep-g").into();
                        r.groups = vec![g];
                    } else {
                        r.group_id = s("sweep-g").into();
                    }
                    r
                }),
                ApiKey::FindCoordinator => check!(FindCoordinatorResponse, {
                    let mut r = FindCoordinatorRequest::default();
                    if v >= 4 {
                        r.coordinator_keys = vec![s("sweep-g")];
                    } else {
                        r.key = s("sweep-g");
                    }
                    r
                }),
                ApiKey::JoinGroup => {
                    check!(JoinGroupResponse, join_req(&format!("sweep-j{v}"), ""))
                }
                ApiKey::SyncGroup => check!(SyncGroupResponse, {
                    let mut r = SyncGroupRequest::default();
                    r.group_id = s("sweep-g").into();
                    r.member_id = s("nobody");
                    r
                }),
                ApiKey::Heartbeat => check!(HeartbeatResponse, {
                    let mut r = HeartbeatRequest::default();
                    r.group_id = s("sweep-g").into();
                    r.member_id = s("nobody");
                    r
                }),
                ApiKey::LeaveGroup => check!(LeaveGroupResponse, {
                    let mut r = LeaveGroupRequest::default();
                    r.group_id = s("sweep-g").into();
                    if v >= 3 {
                        let mut m = leave_group_request::MemberIdentity::default();
                        m.member_id = s("nobody");
                        r.members = vec![m];
                    } else {
                        r.member_id = s("nobody");
                    }
                    r
                }),
                ApiKey::DescribeGroups => check!(DescribeGroupsResponse, {
                    let mut r = DescribeGroupsRequest::default();
                    r.groups = vec![s("sweep-g").into(), s("sweep-j0").into()];
                    r
                }),
                ApiKey::ListGroups => check!(ListGroupsResponse, ListGroupsRequest::default()),
                ApiKey::DeleteGroups => check!(DeleteGroupsResponse, {
                    let mut r = DeleteGroupsRequest::default();
                    r.groups_names = vec![s("sweep-none").into()];
                    r
                }),
                ApiKey::CreateTopics => check!(CreateTopicsResponse, {
                    let mut t = create_topics_request::CreatableTopic::default();
                    t.name = name(&format!("sweep-c{v}"));
                    t.num_partitions = -1;
                    t.replication_factor = -1;
                    let mut r = CreateTopicsRequest::default();
                    r.topics = vec![t];
                    r.timeout_ms = 10_000;
                    r
                }),
                ApiKey::DeleteTopics => check!(DeleteTopicsResponse, {
                    let mut r = DeleteTopicsRequest::default();
                    let n = format!("sweep-c{}", 2 + (v % 6));
                    if v >= 6 {
                        let mut t = delete_topics_request::DeleteTopicState::default();
                        t.name = Some(name(&n));
                        r.topics = vec![t];
                    } else {
                        r.topic_names = vec![name(&n)];
                    }
                    r.timeout_ms = 10_000;
                    r
                }),
                ApiKey::DeleteRecords => check!(DeleteRecordsResponse, {
                    let mut p = delete_records_request::DeleteRecordsPartition::default();
                    p.offset = 0;
                    let mut t = delete_records_request::DeleteRecordsTopic::default();
                    t.name = name("sweep");
                    t.partitions = vec![p];
                    let mut r = DeleteRecordsRequest::default();
                    r.topics = vec![t];
                    r
                }),
                ApiKey::InitProducerId => {
                    check!(InitProducerIdResponse, InitProducerIdRequest::default())
                }
                ApiKey::OffsetForLeaderEpoch => check!(OffsetForLeaderEpochResponse, {
                    let mut p =
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
                    p.leader_epoch = 1;
                    p.current_leader_epoch = -1;
                    let mut t = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
                    t.topic = name("sweep");
                    t.partitions = vec![p];
                    let mut r = OffsetForLeaderEpochRequest::default();
                    r.replica_id = (-1).into();
                    r.topics = vec![t];
                    r
                }),
                ApiKey::DescribeConfigs => check!(DescribeConfigsResponse, {
                    let mut res = describe_configs_request::DescribeConfigsResource::default();
                    res.resource_type = 2;
                    res.resource_name = s("sweep");
                    let mut r = DescribeConfigsRequest::default();
                    r.resources = vec![res];
                    r
                }),
                ApiKey::AlterConfigs => check!(AlterConfigsResponse, {
                    let mut c = alter_configs_request::AlterableConfig::default();
                    c.name = s("retention.ms");
                    c.value = Some(s("3600000"));
                    let mut res = alter_configs_request::AlterConfigsResource::default();
                    res.resource_type = 2;
                    res.resource_name = s("sweep");
                    res.configs = vec![c];
                    let mut r = AlterConfigsRequest::default();
                    r.resources = vec![res];
                    r
                }),
                ApiKey::IncrementalAlterConfigs => check!(IncrementalAlterConfigsResponse, {
                    let mut c = incremental_alter_configs_request::AlterableConfig::default();
                    c.name = s("retention.ms");
                    c.value = Some(s("7200000"));
                    let mut res =
                        incremental_alter_configs_request::AlterConfigsResource::default();
                    res.resource_type = 2;
                    res.resource_name = s("sweep");
                    res.configs = vec![c];
                    let mut r = IncrementalAlterConfigsRequest::default();
                    r.resources = vec![res];
                    r
                }),
                ApiKey::CreatePartitions => check!(CreatePartitionsResponse, {
                    let mut t = create_partitions_request::CreatePartitionsTopic::default();
                    t.name = name("sweep");
                    t.count = 1;
                    let mut r = CreatePartitionsRequest::default();
                    r.topics = vec![t];
                    r
                }),
                ApiKey::DescribeCluster => {
                    check!(DescribeClusterResponse, DescribeClusterRequest::default())
                }
                other => panic!("{other:?} is announced but not exercised here"),
            };
            match got {
                Some(true) => tested += 1,
                Some(false) => panic!("{key:?} v{v}: no answer (the connection closed)"),
                None => eprintln!("{key:?} v{v}: the client codec cannot encode this request"),
            }
        }
    }
    eprintln!("{tested} (API, version) pairs answered");
    assert!(
        tested > 120,
        "only {tested} (API, version) pairs could be encoded"
    );
    // The Kafka listener's produces and fetches count in the node's metrics, as the gRPC
    // listener's do (topic `sweep` was written and read only through Kafka).
    let http = c.node(id).addresses().expect("addresses").http_addr;
    let (_, metrics) = http_get(&http, "/metrics").await.expect("/metrics");
    for name in ["strata_produce_records_total", "strata_fetch_records_total"] {
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with(name) && l.contains("topic=\"sweep\"")),
            "{name} for topic sweep in /metrics"
        );
    }
}

async fn sync(
    w: &mut Wire,
    group: &str,
    member: &str,
    generation: i32,
    give: &[(&str, Bytes)],
) -> SyncGroupResponse {
    let mut r = SyncGroupRequest::default();
    r.group_id = StrBytes::from_string(group.to_string()).into();
    r.member_id = StrBytes::from_string(member.to_string());
    r.generation_id = generation;
    r.assignments = give
        .iter()
        .map(|(m, a)| {
            let mut x = sync_group_request::SyncGroupRequestAssignment::default();
            x.member_id = StrBytes::from_string(m.to_string());
            x.assignment = a.clone();
            x
        })
        .collect();
    w.call(ApiKey::SyncGroup, 3, &r).await
}

fn heartbeat_req(group: &str, member: &str, generation: i32) -> HeartbeatRequest {
    let mut hb = HeartbeatRequest::default();
    hb.group_id = StrBytes::from_string(group.to_string()).into();
    hb.member_id = StrBytes::from_string(member.to_string());
    hb.generation_id = generation;
    hb
}

/// A second member joining a stable classic group: the first learns of the rebalance from
/// its heartbeat, its commit at the old generation is still taken while members rejoin (as
/// Kafka takes it), both get the new generation with one leader, and the old generation is
/// fenced afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_classic_rebalance_takes_commits_and_fences_the_old_generation() {
    let (_c, _b, addr) = one_node_with("classic", "a\nb\nc\nd\n").await;
    let mut a = Wire::connect(&addr).await;
    // JoinGroup v3: no MEMBER_ID_REQUIRED round.
    let r = join_ready(&mut a, 3, &join_req("rb", "")).await;
    assert_eq!(r.error_code, 0, "{r:?}");
    let ma = r.member_id.to_string();
    let g1 = r.generation_id;
    let s = sync(
        &mut a,
        "rb",
        &ma,
        g1,
        &[(&ma, Bytes::from_static(b"for-a"))],
    )
    .await;
    assert_eq!((s.error_code, &s.assignment[..]), (0, &b"for-a"[..]));

    // B joins: its JoinGroup waits for A to rejoin.
    let mut bw = Wire::connect(&addr).await;
    let joining = tokio::spawn(async move {
        let r: JoinGroupResponse = bw.call(ApiKey::JoinGroup, 3, &join_req("rb", "")).await;
        (bw, r)
    });
    let mut rebalancing = false;
    for _ in 0..100 {
        let h: HeartbeatResponse = a
            .call(ApiKey::Heartbeat, 3, &heartbeat_req("rb", &ma, g1))
            .await;
        if h.error_code == 27 {
            rebalancing = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rebalancing, "A's heartbeat reports REBALANCE_IN_PROGRESS");
    let r: OffsetCommitResponse = a
        .call(ApiKey::OffsetCommit, 8, &commit_req("rb", &ma, g1, 2))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 0,
        "a commit at the current generation is taken while members rejoin"
    );

    let ra: JoinGroupResponse = a.call(ApiKey::JoinGroup, 3, &join_req("rb", &ma)).await;
    let (mut bw, rb) = joining.await.expect("join");
    assert_eq!((ra.error_code, rb.error_code), (0, 0));
    let g2 = ra.generation_id;
    assert_eq!(rb.generation_id, g2);
    assert!(g2 > g1);
    let mb = rb.member_id.to_string();
    // One leader, who alone gets the members' metadata.
    let leader = ra.leader.to_string();
    assert_eq!(rb.leader.as_str(), leader);
    let (lw, lid, fw, fid) = if leader == ma {
        assert_eq!((ra.members.len(), rb.members.len()), (2, 0));
        (&mut a, ma.clone(), &mut bw, mb.clone())
    } else {
        assert_eq!((ra.members.len(), rb.members.len()), (0, 2));
        (&mut bw, mb.clone(), &mut a, ma.clone())
    };
    // Between the join and the leader's sync, commits wait for the assignment.
    let r: OffsetCommitResponse = fw
        .call(ApiKey::OffsetCommit, 8, &commit_req("rb", &fid, g2, 3))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 27,
        "REBALANCE_IN_PROGRESS"
    );
    let give = [
        (lid.as_str(), Bytes::from_static(b"L")),
        (fid.as_str(), Bytes::from_static(b"F")),
    ];
    let s = sync(lw, "rb", &lid, g2, &give).await;
    assert_eq!((s.error_code, &s.assignment[..]), (0, &b"L"[..]));
    let s = sync(fw, "rb", &fid, g2, &[]).await;
    assert_eq!((s.error_code, &s.assignment[..]), (0, &b"F"[..]));
    // The old generation is fenced; the new one commits.
    let r: OffsetCommitResponse = fw
        .call(ApiKey::OffsetCommit, 8, &commit_req("rb", &fid, g1, 3))
        .await;
    assert_eq!(
        r.topics[0].partitions[0].error_code, 22,
        "ILLEGAL_GENERATION"
    );
    let r: OffsetCommitResponse = fw
        .call(ApiKey::OffsetCommit, 8, &commit_req("rb", &fid, g2, 3))
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
}

/// With `kafka_auto_create_topics` on, a Metadata request that allows it creates the topics
/// it names with `kafka_num_partitions` partitions; one that does not allow it, or a node
/// with the setting off (the default, see `kafka_and_native_clients_share_one_log`), gets
/// UNKNOWN_TOPIC_OR_PARTITION; an invalid name is INVALID_TOPIC_EXCEPTION.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_metadata_creates_topics_when_allowed() {
    let config = tempfile::NamedTempFile::new().expect("config file");
    std::fs::write(
        config.path(),
        "kafka_auto_create_topics = true\nkafka_num_partitions = 3\n",
    )
    .expect("write the config");
    let mut c = ProcCluster::empty();
    let id = c
        .add_node_with(
            Some(1),
            &["--config".to_string(), config.path().display().to_string()],
            |_| {},
        )
        .await;
    let mut w = Wire::connect(&kafka_addr(&mut c, id)).await;
    let mut r = metadata_req(&["made-by-kafka"]);
    r.allow_auto_topic_creation = true;
    let m: MetadataResponse = w.call(ApiKey::Metadata, 9, &r).await;
    let t = &m.topics[0];
    assert_eq!(t.partitions.len(), 3, "{m:?}");
    let mut r = metadata_req(&["not-made"]);
    r.allow_auto_topic_creation = false;
    let m: MetadataResponse = w.call(ApiKey::Metadata, 9, &r).await;
    assert_eq!(m.topics[0].error_code, 3);
    let mut r = metadata_req(&["bad/name"]);
    r.allow_auto_topic_creation = true;
    let m: MetadataResponse = w.call(ApiKey::Metadata, 9, &r).await;
    assert_eq!(m.topics[0].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    let b = c.brokers().join(",");
    let listed = strata(&b, "topic list -o json").await.ok().stdout;
    assert!(
        listed.contains("made-by-kafka") && !listed.contains("not-made"),
        "{listed}"
    );
}

/// Produce requests pipelined on one connection by a producer without idempotence land in
/// the order they were sent (as Kafka serves a connection), even when a large compressed
/// batch, slower to check, is followed by a small one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_pipelined_produce_keeps_request_order() {
    let (_c, _b, addr) = one_node_with("ordered", "first\n").await;
    let mut w = Wire::connect(&addr).await;
    let big_values: Vec<String> = (0..400).map(|i| format!("{i:0>1000}")).collect();
    let big: Vec<&str> = big_values.iter().map(String::as_str).collect();
    let mut corrs = Vec::new();
    for i in 0..30 {
        let records = if i % 2 == 0 {
            let mut b = BatchBuilder::new().with_compression(strata_record::Compression::Gzip);
            for v in &big {
                b.append(&NewRecord::new(
                    1_700_000_000_000,
                    None,
                    Some(Bytes::from(v.to_string())),
                ))
                .expect("append");
            }
            b.build()
        } else {
            batch(&["small"])
        };
        corrs.push(
            w.send(ApiKey::Produce, 9, &produce_req("ordered", 0, -1, records))
                .await,
        );
    }
    let mut last = 0;
    for corr in corrs {
        let (got, r): (i32, ProduceResponse) = w.recv(ApiKey::Produce, 9).await.expect("answer");
        assert_eq!(got, corr);
        let (code, base) = produced(&r);
        assert_eq!(code, 0);
        assert!(
            base > last,
            "request {corr} landed at {base}, after an offset {last} of a later one"
        );
        last = base;
    }
}
