//! Conversions between the client API's protobuf messages and the broker's values.

use super::status::invalid;
use bytes::Bytes;
use strata_broker::types::{Acks, Fetched, NodeView, PartitionView, Position, TopicView};
use strata_proto::v1 as pb;
use strata_record::{Batch, NewRecord};
use tonic::Status;

/// The acks of a request (unspecified means all).
pub fn acks(a: i32) -> Result<Acks, Status> {
    match pb::Acks::try_from(a) {
        Ok(pb::Acks::Unspecified | pb::Acks::All) => Ok(Acks::All),
        Ok(pb::Acks::Leader) => Ok(Acks::Leader),
        Ok(pb::Acks::None) => Ok(Acks::None),
        Err(_) => Err(invalid("acks", format!("unknown acks value {a}"))),
    }
}

/// A position (absent means latest).
pub fn position(p: Option<&pb::Position>) -> Position {
    use pb::position::At;
    match p.and_then(|p| p.at) {
        Some(At::Earliest(_)) => Position::Earliest,
        None | Some(At::Latest(_)) => Position::Latest,
        Some(At::Offset(o)) => Position::Offset(o),
        Some(At::TimestampMs(t)) => Position::Timestamp(t),
    }
}

/// The records of a `RecordSet` (a timestamp of 0 is "now", set by the broker).
pub fn records(set: pb::RecordSet) -> Vec<NewRecord> {
    set.records
        .into_iter()
        .map(|r| NewRecord {
            timestamp: r.timestamp_ms,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|h| strata_record::Header {
                    key: h.key,
                    value: h.value,
                })
                .collect(),
        })
        .collect()
}

/// A topic as the API describes it.
pub fn topic_info(t: TopicView) -> pb::TopicInfo {
    pb::TopicInfo {
        name: t.name,
        topic_id: t.topic_id,
        partitions: t.partitions.into_iter().map(partition_info).collect(),
        replication_factor: t.replication_factor,
        configs: t.configs.into_iter().collect(),
    }
}

fn partition_info(p: PartitionView) -> pb::PartitionInfo {
    pb::PartitionInfo {
        partition: p.partition,
        leader_id: p.leader_id,
        replicas: p.replicas,
        voters: p.voters,
        leader_term: p.leader_term,
        high_watermark: p.high_watermark,
        group_id: p.group_id.get(),
    }
}

/// A node as the API describes it.
pub fn node_info(n: NodeView) -> pb::NodeInfo {
    pb::NodeInfo {
        node_id: n.node_id,
        client_addr: n.client_addr,
        peer_addr: n.peer_addr,
        http_addr: n.http_addr,
        state: n.state.as_str().to_string(),
        alive: n.alive,
    }
}

/// The records of `batches` from offset `from` on, and the offset after the last one.
fn decode_records(batches: &[Bytes], from: i64) -> Result<(Vec<pb::ConsumedRecord>, i64), Status> {
    let mut out = Vec::new();
    let mut next = from;
    for raw in batches {
        let batch = Batch::parse(raw.clone())
            .map_err(|e| Status::internal(format!("stored batch failed its check: {e}")))?;
        for r in batch.records() {
            if r.offset < from {
                continue;
            }
            next = r.offset + 1;
            out.push(pb::ConsumedRecord {
                offset: r.offset,
                timestamp_ms: r.timestamp,
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .into_iter()
                    .map(|h| pb::Header {
                        key: h.key,
                        value: h.value,
                    })
                    .collect(),
            });
        }
        next = next.max(batch.last_offset() + 1);
    }
    Ok((out, next))
}

/// The offset after the last record of `batches` (`from` when there are none).
fn next_after(batches: &[Bytes], from: i64) -> i64 {
    batches
        .last()
        .and_then(|b| strata_record::BatchHeader::parse(b).ok())
        .map_or(from, |h| h.base_offset + i64::from(h.last_offset_delta) + 1)
}

/// A fetch answer in the requested format: raw batches, or decoded records from `from` on.
pub fn fetch_response(format: i32, f: Fetched, from: i64) -> Result<pb::FetchResponse, Status> {
    let raw = matches!(
        pb::FetchFormat::try_from(format),
        Ok(pb::FetchFormat::Batches)
    );
    let (records, batches, next) = if raw {
        let next = next_after(&f.batches, from);
        (Vec::new(), f.batches, next)
    } else {
        let (records, next) = decode_records(&f.batches, from)?;
        (records, Vec::new(), next)
    };
    Ok(pb::FetchResponse {
        records,
        batches,
        high_watermark: f.high_watermark,
        log_start_offset: f.log_start_offset,
        next_offset: next,
    })
}
