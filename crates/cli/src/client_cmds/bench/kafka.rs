//! `strata bench kafka`: produce throughput through the Kafka listener, with a small Kafka
//! producer written here (the `kafka-protocol` codecs, one connection per producer and
//! leader, idempotent batches, up to `--in-flight` requests pipelined per connection,
//! acks=all), so that the client costs about what the native Rust producer costs and the
//! figure compares the two server paths rather than two clients. `strata bench produce`
//! against the same cluster gives the native figure.
//!
//! Each of `--producers` tasks takes its own producer id and sends `--records` / producers
//! records of `--record-size` bytes, spread over the partitions in turn, in batches of up to
//! 256 KiB (the native producer's default). Reported: records/s, and each batch's time from
//! its request to its answer (the native bench reports each record's time from `send`, which
//! includes waiting in the producer's buffer; compare throughputs, and latencies only with
//! that in mind).

use super::{BenchArgs, ensure_topic, histogram, micros};
use anyhow::{Context, bail};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use strata_client::Client;
use strata_record::{BatchBuilder, NewRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Batch size, as the native producer's default `batch_bytes`.
const BATCH_BYTES: usize = 256 << 10;
/// Produce version used (idempotent, non-flexible headers... any served version works).
const PRODUCE_VERSION: i16 = 9;

struct Conn {
    s: TcpStream,
    corr: i32,
}

impl Conn {
    async fn open(addr: &str) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connect to the Kafka listener at {addr}"))?;
        s.set_nodelay(true)?;
        Ok(Conn { s, corr: 0 })
    }

    async fn send<R: Encodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        v: i16,
        req: &R,
    ) -> anyhow::Result<()> {
        self.corr += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(v)
            .with_correlation_id(self.corr)
            .with_client_id(Some(StrBytes::from_static_str("strata-bench")));
        let mut b = BytesMut::new();
        b.put_i32(0);
        header.encode(&mut b, key.request_header_version(v))?;
        req.encode(&mut b, v)?;
        let len = (b.len() - 4) as i32;
        b[..4].copy_from_slice(&len.to_be_bytes());
        self.s.write_all(&b).await?;
        Ok(())
    }

    async fn recv<T: Decodable>(&mut self, key: ApiKey, v: i16) -> anyhow::Result<T> {
        let len = self.s.read_i32().await?;
        let mut buf = vec![0u8; usize::try_from(len).context("negative answer length")?];
        self.s.read_exact(&mut buf).await?;
        let mut b = Bytes::from(buf);
        ResponseHeader::decode(&mut b, key.response_header_version(v))?;
        let body = T::decode(&mut b, v)?;
        if b.has_remaining() {
            tracing::debug!("bytes after a {key:?} answer");
        }
        Ok(body)
    }

    async fn call<R: Encodable + HeaderVersion, T: Decodable>(
        &mut self,
        key: ApiKey,
        v: i16,
        req: &R,
    ) -> anyhow::Result<T> {
        self.send(key, v, req).await?;
        self.recv(key, v).await
    }
}

/// Partition to its leader's Kafka address, once every partition has one (a new topic's
/// leaders reach the bootstrap node's Metadata within moments).
async fn leaders(bootstrap: &str, topic: &str) -> anyhow::Result<BTreeMap<i32, String>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match leaders_now(bootstrap, topic).await {
            Ok(l) => return Ok(l),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "waiting for leaders");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn leaders_now(bootstrap: &str, topic: &str) -> anyhow::Result<BTreeMap<i32, String>> {
    let mut c = Conn::open(bootstrap).await?;
    let mut r = MetadataRequest::default();
    let mut t = metadata_request::MetadataRequestTopic::default();
    t.name = Some(StrBytes::from_string(topic.to_string()).into());
    r.topics = Some(vec![t]);
    let m: MetadataResponse = c.call(ApiKey::Metadata, 12, &r).await?;
    let brokers: BTreeMap<i32, String> = m
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let t = m
        .topics
        .first()
        .context("no topic in the Metadata answer")?;
    let mut out = BTreeMap::new();
    for p in &t.partitions {
        let addr = brokers.get(&p.leader_id.0).with_context(|| {
            format!(
                "partition {} has no leader with a Kafka listener",
                p.partition_index
            )
        })?;
        out.insert(p.partition_index, addr.clone());
    }
    Ok(out)
}

/// Reads the oldest outstanding answer on `conn` and times it.
async fn answer(
    conn: &mut Conn,
    q: &mut VecDeque<(Instant, i32)>,
    lat: &mut Vec<u64>,
) -> anyhow::Result<()> {
    let started = q.pop_front();
    let r: ProduceResponse = conn.recv(ApiKey::Produce, PRODUCE_VERSION).await?;
    let p = r
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .context("an empty produce answer")?;
    if p.error_code != 0 {
        bail!("produce to partition {}: error {}", p.index, p.error_code);
    }
    if let Some((t, _)) = started {
        lat.push(micros(t.elapsed()));
    }
    Ok(())
}

/// What one producer task measured.
struct Measured {
    records: u64,
    batch_micros: Vec<u64>,
}

async fn producer(
    bootstrap: String,
    topic: String,
    leaders: BTreeMap<i32, String>,
    records: u64,
    record_size: usize,
    window: usize,
) -> anyhow::Result<Measured> {
    let mut boot = Conn::open(&bootstrap).await?;
    let init: InitProducerIdResponse = boot
        .call(ApiKey::InitProducerId, 4, &InitProducerIdRequest::default())
        .await?;
    if init.error_code != 0 {
        bail!("InitProducerId: error {}", init.error_code);
    }
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    let mut conns: BTreeMap<String, (Conn, VecDeque<(Instant, i32)>)> = BTreeMap::new();
    for addr in leaders.values() {
        if !conns.contains_key(addr) {
            conns.insert(addr.clone(), (Conn::open(addr).await?, VecDeque::new()));
        }
    }
    let parts: Vec<i32> = leaders.keys().copied().collect();
    let mut seq: BTreeMap<i32, i32> = BTreeMap::new();
    let value = Bytes::from(vec![0x5a; record_size]);
    let per_batch = (BATCH_BYTES / (record_size + 16)).max(1) as u64;
    let mut sent = 0u64;
    let mut turn = 0usize;
    let mut lat = Vec::new();
    let name: TopicName = StrBytes::from_string(topic.clone()).into();
    while sent < records {
        let p = parts[turn % parts.len()];
        turn += 1;
        let n = per_batch.min(records - sent);
        let s = seq.entry(p).or_insert(0);
        let mut b = BatchBuilder::new().with_producer(pid, epoch, *s);
        let now = strata_record::sync::now_ms();
        for _ in 0..n {
            b.append(&NewRecord::new(now, None, Some(value.clone())))?;
        }
        *s = s.wrapping_add(n as i32);
        let mut data = produce_request::PartitionProduceData::default();
        data.index = p;
        data.records = Some(b.build());
        let mut td = produce_request::TopicProduceData::default();
        td.name = name.clone();
        td.partition_data = vec![data];
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = 30_000;
        req.topic_data = vec![td];
        let addr = &leaders[&p];
        let (conn, q) = conns.get_mut(addr).context("connection")?;
        while q.len() >= window {
            answer(conn, q, &mut lat).await?;
        }
        conn.send(ApiKey::Produce, PRODUCE_VERSION, &req).await?;
        q.push_back((Instant::now(), p));
        sent += n;
    }
    for (conn, q) in conns.values_mut() {
        while !q.is_empty() {
            answer(conn, q, &mut lat).await?;
        }
    }
    Ok(Measured {
        records: sent,
        batch_micros: lat,
    })
}

/// Runs the bench and prints one line per figure.
pub(super) async fn run(client: &Client, args: &BenchArgs) -> anyhow::Result<()> {
    let (topic, _) = ensure_topic(client, args).await?;
    let leaders = leaders(&args.kafka_bootstrap, &topic).await?;
    let producers = args.producers.max(1);
    let per = args.records / producers as u64;
    let window = if args.in_flight == 0 {
        5
    } else {
        args.in_flight
    };
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..producers {
        tasks.spawn(producer(
            args.kafka_bootstrap.clone(),
            topic.clone(),
            leaders.clone(),
            per,
            args.record_size,
            window,
        ));
    }
    let mut h = histogram()?;
    let mut total = 0;
    while let Some(r) = tasks.join_next().await {
        let m = r??;
        total += m.records;
        for v in m.batch_micros {
            h.record(v.max(1))?;
        }
    }
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "bench: kafka produce (the Kafka listener at {})",
        args.kafka_bootstrap
    );
    println!(
        "topic: {topic}, {} partitions, {producers} producers, {window} requests in flight per connection",
        leaders.len()
    );
    println!("elapsed: {:.3} s", elapsed.as_secs_f64());
    println!(
        "throughput: {:.1} records/s, {:.2} MB/s",
        total as f64 / elapsed.as_secs_f64(),
        (total as f64 * args.record_size as f64) / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "batch ack latency ms: p50 {:.3}  p99 {:.3}  max {:.3}",
        ms(0.5),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
    Ok(())
}
