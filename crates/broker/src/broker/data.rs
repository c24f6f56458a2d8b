//! The data calls of [`Broker`]: produce, fetch, subscribe, list offsets, with the record
//! encoding they share.

use super::{Broker, SUBSCRIBE_POLL, now_ms, partition_error};
use crate::error::BrokerError;
use crate::types::{Chunk, Offsets, Position, ProducePayload, Produced};
use bytes::Bytes;
use strata_raft::error::PartitionError;
use strata_raft::partition::{Acks, Fetched, Partition};
use strata_record::{BatchBuilder, BatchHeader, NewRecord};
use tokio::sync::mpsc;

/// The offset after the last record of `batches` (`from` when there are none).
fn next_after(batches: &[Bytes], from: i64) -> i64 {
    batches
        .last()
        .and_then(|b| BatchHeader::parse(b).ok())
        .map_or(from, |h| h.base_offset + i64::from(h.last_offset_delta) + 1)
}

/// Builds `records` into one batch, each record's size checked against `limit` on the way.
/// A timestamp of 0 means "now".
fn encode_records(records: &[NewRecord], limit: usize) -> Result<Bytes, BrokerError> {
    if records.is_empty() {
        return Err(BrokerError::invalid(
            "records",
            "at least one record is required",
        ));
    }
    let now = now_ms();
    let mut b = BatchBuilder::new();
    for (i, r) in records.iter().enumerate() {
        let mut rec = r.clone();
        if rec.timestamp == 0 {
            rec.timestamp = now;
        }
        let size = b.estimated_size_with(&rec);
        if size > limit {
            return Err(too_large(size, limit));
        }
        b.append(&rec)
            .map_err(|e| BrokerError::invalid(format!("records[{i}]"), e.to_string()))?;
    }
    Ok(b.build())
}

fn too_large(size: usize, limit: usize) -> BrokerError {
    BrokerError::MessageTooLarge {
        size,
        limit,
        limit_name: "max.message.bytes",
    }
}

impl Broker {
    /// Appends a batch (or records built into one) to `topic`/`partition` on this node, which
    /// must lead it, after the size limit and the disk floor are checked. Answers once `acks`
    /// is satisfied.
    pub async fn produce(
        &self,
        topic: &str,
        partition: u32,
        payload: ProducePayload,
        acks: Acks,
    ) -> Result<Produced, BrokerError> {
        if super::is_internal(topic) {
            return Err(BrokerError::invalid(
                "topic",
                format!("{topic:?} is an internal topic; clients do not produce to it"),
            ));
        }
        let (p, limit) = self.route(topic, partition)?;
        let batch = match payload {
            ProducePayload::Batch(b) => b,
            ProducePayload::Records(records) => encode_records(&records, limit)?,
        };
        if batch.len() > limit {
            return Err(too_large(batch.len(), limit));
        }
        if !p.leads() {
            return Err(BrokerError::NotLeader {
                what: format!("{topic}/{partition}"),
                leader: self.leader_hint(p.leader().map(|(id, _)| id)),
            });
        }
        self.check_disk()?;
        // The header alone gives the count; `append` checks the whole batch (CRC, records)
        // once, before anything is written.
        let record_count = BatchHeader::parse(&batch)
            .map(|h| h.record_count.max(0) as u32)
            .map_err(|e| BrokerError::InvalidBatch {
                reason: e.to_string(),
            })?;
        let base_offset = p
            .append(batch, acks)
            .await
            .map_err(|e| self.perr(topic, partition, e))?;
        Ok(Produced {
            base_offset,
            record_count,
        })
    }

    /// Reads batches of `topic`/`partition` from `offset` (the leader serves), up to about
    /// `max_bytes` (capped; 0: the default) and waiting up to `max_wait_ms` (capped) when
    /// `offset` is the high watermark.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
        max_bytes: u32,
        max_wait_ms: u32,
    ) -> Result<Fetched, BrokerError> {
        let p = self.partition(topic, partition)?;
        p.read(
            offset,
            self.max_bytes(max_bytes),
            self.max_wait(max_wait_ms),
        )
        .await
        .map_err(|e| self.perr(topic, partition, e))
    }

    /// Resolves `pos` on the serving leader (a follower or a deposed leader answers
    /// NotLeader whatever the position).
    async fn resolve(&self, p: &Partition, pos: Position) -> Result<i64, PartitionError> {
        p.ensure_serving().await?;
        match pos {
            Position::Earliest => Ok(p.log_start_offset()),
            Position::Latest => Ok(p.high_watermark()),
            Position::Offset(o) => Ok(o),
            Position::Timestamp(t) => match p.offset_for_timestamp(t).await? {
                Some(o) => Ok(o),
                None => Ok(p.high_watermark()),
            },
        }
    }

    /// Streams `topic`/`partition` from `start` for as long as the receiver is kept: each
    /// chunk holds what one read returned (never empty). An error ends the stream after it
    /// is delivered.
    pub async fn subscribe(
        &self,
        topic: &str,
        partition: u32,
        start: Position,
        max_bytes: u32,
    ) -> Result<mpsc::Receiver<Result<Chunk, BrokerError>>, BrokerError> {
        let p = self.partition(topic, partition)?;
        let start = self
            .resolve(&p, start)
            .await
            .map_err(|e| self.perr(topic, partition, e))?;
        let (tx, rx) = mpsc::channel(4);
        let max_bytes = self.max_bytes(max_bytes);
        // The task resolves leader hints through the controller's metadata.
        let what = format!("{topic}/{partition}");
        let controller = self.controller.clone();
        let resolve_error = move |e: PartitionError| -> BrokerError {
            partition_error(what.clone(), e, |id| {
                id.and_then(|id| {
                    controller
                        .meta()
                        .borrow()
                        .nodes
                        .get(&id)
                        .map(|n| (id, n.client_addr.clone()))
                })
            })
        };
        tokio::spawn(async move {
            let mut offset = start;
            loop {
                let msg = match p.read(offset, max_bytes, SUBSCRIBE_POLL).await {
                    Ok(fetched) => {
                        if fetched.batches.is_empty() {
                            if tx.is_closed() {
                                return;
                            }
                            continue;
                        }
                        let next_offset = next_after(&fetched.batches, offset);
                        let chunk = Chunk {
                            fetched,
                            from: offset,
                            next_offset,
                        };
                        offset = next_offset;
                        Ok(chunk)
                    }
                    Err(e) => Err(resolve_error(e)),
                };
                let end = msg.is_err();
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(rx)
    }

    /// Drops the records of `topic`/`partition` below `offset` (-1: the high watermark) as far
    /// as whole segments allow (Kafka's DeleteRecords; the log start moves only to a segment
    /// boundary, so records between it and `offset` stay readable). Returns the log start
    /// offset after the call.
    pub async fn delete_records(
        &self,
        topic: &str,
        partition: u32,
        offset: i64,
    ) -> Result<i64, BrokerError> {
        if super::is_internal(topic) {
            return Err(BrokerError::invalid(
                "topic",
                format!("{topic:?} is an internal topic; its records are not deleted by clients"),
            ));
        }
        let p = self.partition(topic, partition)?;
        p.ensure_serving()
            .await
            .map_err(|e| self.perr(topic, partition, e))?;
        let hw = p.high_watermark();
        let offset = if offset == -1 { hw } else { offset };
        if offset < 0 || offset > hw {
            return Err(BrokerError::OffsetOutOfRange {
                what: format!("{topic}/{partition}"),
                requested: offset,
                start: p.log_start_offset(),
                end: hw,
            });
        }
        match p.retain_before(offset).await {
            Ok(Some(start)) => Ok(start),
            Ok(None) => Ok(p.log_start_offset()),
            Err(e) => Err(self.perr(topic, partition, e)),
        }
    }

    /// The offset `pos` names in `topic`/`partition`, with the partition's bounds.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        pos: Position,
    ) -> Result<Offsets, BrokerError> {
        let p = self.partition(topic, partition)?;
        let offset = self
            .resolve(&p, pos)
            .await
            .map_err(|e| self.perr(topic, partition, e))?;
        Ok(Offsets {
            offset,
            log_start_offset: p.log_start_offset(),
            high_watermark: p.high_watermark(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(value_len: usize, timestamp: i64) -> NewRecord {
        NewRecord::new(timestamp, None, Some(Bytes::from(vec![7u8; value_len])))
    }

    /// Records are built into one batch whose offsets follow them; a timestamp of 0 becomes
    /// the broker's clock; an empty set and a record over the limit are refused, naming the
    /// field or the limit.
    #[test]
    fn records_are_encoded_within_the_topic_limit() {
        let before = now_ms();
        let b = encode_records(&[record(10, 0), record(10, 42)], 1 << 20).expect("encode");
        let batch = strata_record::Batch::parse(b.clone()).expect("a valid batch");
        let stamps: Vec<i64> = batch.records().map(|r| r.timestamp).collect();
        assert!(stamps[0] >= before, "{stamps:?}");
        assert_eq!(stamps[1], 42);
        assert_eq!(next_after(&[b], 0), 2);
        assert_eq!(next_after(&[], 9), 9);
        assert!(matches!(
            encode_records(&[], 1 << 20),
            Err(BrokerError::InvalidArgument { field, .. }) if field == "records"
        ));
        match encode_records(&[record(2000, 1)], 1024) {
            Err(BrokerError::MessageTooLarge {
                limit, limit_name, ..
            }) => {
                assert_eq!(limit, 1024);
                assert_eq!(limit_name, "max.message.bytes");
            }
            other => panic!("expected MessageTooLarge, got {other:?}"),
        }
    }
}
