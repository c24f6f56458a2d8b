//! Produce, Fetch, ListOffsets, InitProducerId, OffsetForLeaderEpoch and DeleteRecords.
//!
//! Produce hands each partition's batch to the broker as it came (base offset 0, the
//! producer's id, epoch and sequence, compressed or not): the broker checks it (CRC, counts,
//! offset deltas, no transactional or control bits, the records of a compressed batch after
//! decompressing them) and appends it with the acks asked for (0: none, 1: the
//! leader, -1: all), with the idempotence of the native API (a duplicate gets its original
//! offset, a gap OUT_OF_ORDER_SEQUENCE_NUMBER). Fetch returns whole stored batches, waiting
//! up to `max_wait_ms` for `min_bytes`. Fetch sessions are not kept: a request that asks for
//! one gets session id 0, which tells the client to go on with full fetches (KIP-227's
//! documented fallback).

use crate::conn::Request;
use crate::{Ctx, codes};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use kafka_protocol::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;
use strata_broker::BrokerError;
use strata_broker::types::{Acks, Fetched, Position, ProducePayload};

fn msg(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}

/// The partition's batch, which the broker checks whole (CRC, counts, offset deltas, and
/// the records of a compressed batch, decompressed within a limit).
fn check_batch(records: Option<&Bytes>) -> Result<Bytes, (i16, String)> {
    records.cloned().ok_or_else(|| {
        (
            E::InvalidRecord.code(),
            "the partition carries no records".to_string(),
        )
    })
}

/// Produce: every partition of the request in parallel.
pub async fn produce(ctx: &Ctx, req: &Request, r: ProduceRequest) -> ProduceResponse {
    let mut resp = ProduceResponse::default();
    let acks = match r.acks {
        0 => Some(Acks::None),
        1 => Some(Acks::Leader),
        -1 => Some(Acks::All),
        _ => None,
    };
    let txn = r.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty());
    let mut topics = Vec::new();
    for t in r.topic_data {
        let name = t.name.0.to_string();
        let futs = t.partition_data.into_iter().map(|p| {
            let name = name.clone();
            async move {
                let mut out = produce_response::PartitionProduceResponse::default();
                out.index = p.index;
                out.base_offset = -1;
                out.log_append_time_ms = -1;
                out.log_start_offset = -1;
                let Some(acks) = acks else {
                    out.error_code = E::InvalidRequiredAcks.code();
                    out.error_message = msg(format!("acks must be 0, 1 or -1, got {}", r.acks));
                    return out;
                };
                if txn {
                    out.error_code = E::TransactionalIdAuthorizationFailed.code();
                    out.error_message = msg("transactions are not supported".into());
                    return out;
                }
                let batch = match check_batch(p.records.as_ref()) {
                    Ok(b) => b,
                    Err((code, m)) => {
                        out.error_code = code;
                        out.error_message = msg(m);
                        return out;
                    }
                };
                let Ok(partition) = u32::try_from(p.index) else {
                    out.error_code = E::UnknownTopicOrPartition.code();
                    return out;
                };
                let started = std::time::Instant::now();
                match ctx
                    .broker
                    .produce(&name, partition, ProducePayload::Batch(batch), acks)
                    .await
                {
                    Ok(done) => {
                        out.base_offset = done.base_offset.unwrap_or(-1);
                        crate::produced(&name, done.record_count, started.elapsed());
                    }
                    Err(e) => {
                        if !matches!(e, BrokerError::NotLeader { .. }) {
                            tracing::debug!(topic = %name, partition, client = %req.client_id,
                                error = %e, "kafka produce refused");
                        }
                        out.error_code = codes::broker(&e);
                        out.error_message = msg(e.to_string());
                    }
                }
                out
            }
        });
        let parts = futures_util::future::join_all(futs).await;
        let mut tr = produce_response::TopicProduceResponse::default();
        tr.name = t.name;
        tr.topic_id = t.topic_id;
        tr.partition_responses = parts;
        topics.push(tr);
    }
    resp.responses = topics;
    resp
}

/// One partition of a fetch: where to read and how much.
struct Want {
    topic_index: usize,
    name: String,
    partition: i32,
    offset: i64,
    max_bytes: u32,
}

fn concat(batches: &[Bytes]) -> Bytes {
    match batches {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut b = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for x in many {
                b.extend_from_slice(x);
            }
            b.freeze()
        }
    }
}

fn partition_data(
    w: &Want,
    got: &Result<Fetched, BrokerError>,
    budget: &mut usize,
) -> fetch_response::PartitionData {
    let mut d = fetch_response::PartitionData::default();
    d.partition_index = w.partition;
    d.high_watermark = -1;
    d.last_stable_offset = -1;
    d.log_start_offset = -1;
    d.preferred_read_replica = (-1).into();
    match got {
        Ok(f) => {
            d.high_watermark = f.high_watermark;
            d.last_stable_offset = f.high_watermark;
            d.log_start_offset = f.log_start_offset;
            // The response's max_bytes: past it, partitions answer without records (the
            // first partition with records always gets them, as Kafka does).
            let bytes: usize = f.batches.iter().map(Bytes::len).sum();
            if *budget > 0 || bytes == 0 {
                d.records = Some(concat(&f.batches));
                *budget = budget.saturating_sub(bytes);
            } else {
                d.records = Some(Bytes::new());
            }
        }
        Err(e) => {
            d.error_code = codes::broker(e);
            d.records = Some(Bytes::new());
        }
    }
    d
}

async fn read_all(ctx: &Ctx, wants: &[Want], wait_ms: u32) -> Vec<Result<Fetched, BrokerError>> {
    let futs = wants.iter().map(|w| async move {
        let Ok(p) = u32::try_from(w.partition) else {
            return Err(BrokerError::UnknownPartition {
                topic: w.name.clone(),
                partition: 0,
                partitions: 0,
            });
        };
        ctx.broker
            .fetch(&w.name, p, w.offset, w.max_bytes, wait_ms)
            .await
    });
    futures_util::future::join_all(futs).await
}

fn has_data(r: &Result<Fetched, BrokerError>) -> usize {
    match r {
        Ok(f) => f.batches.iter().map(Bytes::len).sum(),
        Err(_) => 1,
    }
}

/// Fetch: reads every partition at once; when less than `min_bytes` came and the client
/// waits, waits until any partition has records or `max_wait_ms` passes, then reads again.
pub async fn fetch(ctx: &Ctx, _req: &Request, r: FetchRequest) -> FetchResponse {
    let mut resp = FetchResponse::default();
    if r.session_id != 0 {
        // No sessions are kept: the client starts over with a full fetch.
        resp.error_code = E::FetchSessionIdNotFound.code();
        return resp;
    }
    resp.session_id = 0;
    let mut wants = Vec::new();
    let mut unknown: Vec<(usize, i32)> = Vec::new();
    let mut topics = Vec::new();
    for (ti, t) in r.topics.iter().enumerate() {
        let name = if t.topic.0.is_empty() {
            ctx.broker.topic_name(&t.topic_id.to_string())
        } else {
            Some(t.topic.0.to_string())
        };
        let mut tr = fetch_response::FetchableTopicResponse::default();
        tr.topic = t.topic.clone();
        tr.topic_id = t.topic_id;
        topics.push(tr);
        for p in &t.partitions {
            match &name {
                Some(n) => wants.push(Want {
                    topic_index: ti,
                    name: n.clone(),
                    partition: p.partition,
                    offset: p.fetch_offset,
                    max_bytes: p.partition_max_bytes.max(0) as u32,
                }),
                None => unknown.push((ti, p.partition)),
            }
        }
    }
    let started = std::time::Instant::now();
    let min_bytes = r.min_bytes.max(0) as usize;
    let max_wait = r.max_wait_ms.max(0) as u32;
    let mut got = read_all(ctx, &wants, 0).await;
    let total: usize = got.iter().map(has_data).sum();
    // min_bytes 0 answers at once, as Kafka does.
    if total < min_bytes && max_wait > 0 && !wants.is_empty() {
        // Wait for the first partition to have something, within max_wait.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(u64::from(max_wait));
        let mut waits: FuturesUnordered<_> = wants
            .iter()
            .map(|w| async move {
                let p = u32::try_from(w.partition).unwrap_or(u32::MAX);
                ctx.broker
                    .fetch(&w.name, p, w.offset, w.max_bytes, max_wait)
                    .await
            })
            .collect();
        loop {
            match tokio::time::timeout_at(deadline, waits.next()).await {
                Ok(Some(r)) if has_data(&r) == 0 => continue,
                _ => break,
            }
        }
        drop(waits);
        got = read_all(ctx, &wants, 0).await;
    }
    let mut budget = if r.max_bytes <= 0 {
        usize::MAX
    } else {
        r.max_bytes as usize
    };
    for (w, g) in wants.iter().zip(got.iter()) {
        let d = partition_data(w, g, &mut budget);
        if let Some(records) = d.records.as_ref().filter(|r| !r.is_empty()) {
            crate::fetched(&w.name, records, started.elapsed());
        }
        topics[w.topic_index].partitions.push(d);
    }
    for (ti, p) in unknown {
        let mut d = fetch_response::PartitionData::default();
        d.partition_index = p;
        d.error_code = if r.topics[ti].topic.0.is_empty() {
            E::UnknownTopicId.code()
        } else {
            E::UnknownTopicOrPartition.code()
        };
        d.high_watermark = -1;
        d.last_stable_offset = -1;
        d.log_start_offset = -1;
        d.preferred_read_replica = (-1).into();
        d.records = Some(Bytes::new());
        topics[ti].partitions.push(d);
    }
    resp.responses = topics;
    resp
}

/// ListOffsets: earliest (-2), latest (-1), the latest record (-3, max timestamp), or the
/// first record at or after a time.
pub async fn list_offsets(ctx: &Ctx, req: &Request, r: ListOffsetsRequest) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    let version = req.version;
    for t in r.topics {
        let name = t.name.0.to_string();
        let mut tr = list_offsets_response::ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        let futs = t.partitions.into_iter().map(|p| {
            let name = name.clone();
            async move {
                let mut out = list_offsets_response::ListOffsetsPartitionResponse::default();
                out.partition_index = p.partition_index;
                out.timestamp = -1;
                out.offset = -1;
                out.leader_epoch = -1;
                let Ok(partition) = u32::try_from(p.partition_index) else {
                    out.error_code = E::UnknownTopicOrPartition.code();
                    return out;
                };
                let pos = match p.timestamp {
                    // -4 (v8+) is the earliest offset on local storage: all of it, here.
                    -2 | -4 => Position::Earliest,
                    -1 | -3 => Position::Latest,
                    t if t >= 0 => Position::Timestamp(t),
                    t => {
                        out.error_code = E::InvalidRequest.code();
                        tracing::debug!(timestamp = t, "ListOffsets: unknown special timestamp");
                        return out;
                    }
                };
                match ctx.broker.list_offsets(&name, partition, pos).await {
                    Ok(o) => {
                        out.offset = match p.timestamp {
                            // The newest record, if any.
                            -3 if o.high_watermark > o.log_start_offset => o.high_watermark - 1,
                            -3 => -1,
                            // No record at or after the time: -1, as Kafka answers.
                            t if t >= 0 && o.offset >= o.high_watermark => -1,
                            _ => o.offset,
                        };
                        if version >= 4 {
                            out.leader_epoch = ctx
                                .broker
                                .leader_epoch(&name, partition)
                                .map_or(-1, |e| i32::try_from(e).unwrap_or(i32::MAX));
                        }
                    }
                    Err(e) => out.error_code = codes::broker(&e),
                }
                out
            }
        });
        tr.partitions = futures_util::future::join_all(futs).await;
        resp.topics.push(tr);
    }
    resp
}

/// InitProducerId: a new producer id and epoch for an idempotent producer. Transactional
/// ids are refused (transactions are not served).
pub async fn init_producer_id(
    ctx: &Ctx,
    req: &Request,
    r: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = (-1).into();
    resp.producer_epoch = -1;
    resp.ongoing_txn_producer_id = (-1).into();
    resp.ongoing_txn_producer_epoch = -1;
    if r.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
        tracing::info!(client = %req.client_id, peer = %req.peer,
            "InitProducerId with a transactional id refused: transactions are not supported");
        resp.error_code = E::TransactionalIdAuthorizationFailed.code();
        return resp;
    }
    match ctx.broker.init_producer().await {
        Ok((id, epoch)) => {
            resp.producer_id = id.into();
            resp.producer_epoch = epoch;
        }
        Err(e) => {
            resp.error_code = match e {
                BrokerError::NotController { .. } | BrokerError::Indeterminate { .. } => {
                    E::CoordinatorNotAvailable.code()
                }
                other => codes::broker(&other),
            };
        }
    }
    resp
}

/// OffsetForLeaderEpoch: the end offset of an epoch (Raft term). Records a consumer has
/// read are committed, and committed records are never truncated, so every epoch up to the
/// current one ends, for a consumer's purpose, at the high watermark.
pub async fn offset_for_leader_epoch(
    ctx: &Ctx,
    _req: &Request,
    r: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in r.topics {
        let name = t.topic.0.to_string();
        let mut tr = offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut e = offset_for_leader_epoch_response::EpochEndOffset::default();
            e.partition = p.partition;
            e.leader_epoch = -1;
            e.end_offset = -1;
            let Ok(partition) = u32::try_from(p.partition) else {
                e.error_code = E::UnknownTopicOrPartition.code();
                tr.partitions.push(e);
                continue;
            };
            match ctx
                .broker
                .list_offsets(&name, partition, Position::Latest)
                .await
            {
                Ok(o) => {
                    let term = ctx
                        .broker
                        .leader_epoch(&name, partition)
                        .map_or(-1, |e| i32::try_from(e).unwrap_or(i32::MAX));
                    if p.current_leader_epoch >= 0 && p.current_leader_epoch > term {
                        e.error_code = E::UnknownLeaderEpoch.code();
                    } else if p.current_leader_epoch >= 0 && p.current_leader_epoch < term {
                        e.error_code = E::FencedLeaderEpoch.code();
                    } else if p.leader_epoch > term {
                        e.leader_epoch = -1;
                        e.end_offset = -1;
                    } else {
                        e.leader_epoch = p.leader_epoch;
                        e.end_offset = o.high_watermark;
                    }
                }
                Err(err) => e.error_code = codes::broker(&err),
            }
            tr.partitions.push(e);
        }
        resp.topics.push(tr);
    }
    resp
}

/// DeleteRecords: moves each partition's log start up to the offset, as far as whole
/// segments allow; answers the new log start.
pub async fn delete_records(
    ctx: &Ctx,
    _req: &Request,
    r: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    for t in r.topics {
        let name = t.name.0.to_string();
        let mut tr = delete_records_response::DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut out = delete_records_response::DeleteRecordsPartitionResult::default();
            out.partition_index = p.partition_index;
            out.low_watermark = -1;
            match u32::try_from(p.partition_index) {
                Ok(partition) => {
                    match ctx.broker.delete_records(&name, partition, p.offset).await {
                        Ok(start) => out.low_watermark = start,
                        Err(e) => out.error_code = codes::broker(&e),
                    }
                }
                Err(_) => out.error_code = E::UnknownTopicOrPartition.code(),
            }
            tr.partitions.push(out);
        }
        resp.topics.push(tr);
    }
    resp
}
