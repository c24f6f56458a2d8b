//! The read path: record batches below the high watermark (waiting for new ones), offsets by
//! time, and the high watermark and log bounds a reader sees. Offsets are [`Offset`]s inside
//! and Kafka's `i64` in this API (see the module docs of [`super`]).

use super::Partition;
use crate::error::PartitionError;
use bytes::Bytes;
use std::time::Duration;
use strata_log::{LogIndex, LogReader, Offset};
use strata_record::Batch;

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetched {
    /// Record batches (stamped with base offset and leader epoch), views of the log.
    pub batches: Vec<Bytes>,
    /// The high watermark when the read was served.
    pub high_watermark: i64,
    /// The first readable offset.
    pub log_start_offset: i64,
}

impl Partition {
    /// The high watermark as applied on this replica (authoritative only on a ready leader).
    pub fn high_watermark(&self) -> i64 {
        self.state.high_watermark().get()
    }

    /// The highest log index a successful sync of this replica's log covered.
    pub fn durable_log_index(&self) -> LogIndex {
        self.store.durable_index()
    }

    /// A reader of this replica's log (tests compare replicas byte for byte with it).
    pub fn log_reader(&self) -> LogReader {
        self.reader.clone()
    }

    /// The first readable offset.
    pub fn log_start_offset(&self) -> i64 {
        self.reader.bounds().log_start_offset.get()
    }

    /// Record batches from `from` on, up to about `max_bytes` (at least one batch when one is
    /// available), only below the high watermark. When `from` is at the high watermark it waits
    /// up to `max_wait` for new records. Served by the leader only.
    pub async fn read(
        &self,
        from: i64,
        max_bytes: usize,
        max_wait: Duration,
    ) -> Result<Fetched, PartitionError> {
        self.ready_leader().await?;
        let from = Offset::new(from);
        let start = self.reader.bounds().log_start_offset;
        let hw = self.state.high_watermark();
        if from < start || from > hw {
            return Err(PartitionError::offset_out_of_range(from, start, hw));
        }
        let mut hw = hw;
        if from == hw && !max_wait.is_zero() {
            let mut rx = self.state.watch_high_watermark();
            let mut closed = self.closed.subscribe();
            tokio::select! {
                _ = tokio::time::timeout(max_wait, rx.wait_for(|h| *h > from)) => {}
                _ = closed.wait_for(|c| *c) => {}
            }
            self.check_open()?;
            hw = self.state.high_watermark();
        }
        let reader = self.reader.clone();
        let entries = tokio::task::spawn_blocking(move || reader.read(from, max_bytes, hw))
            .await
            .map_err(PartitionError::task)?
            .map_err(|e| match e {
                strata_log::LogError::OffsetOutOfRange {
                    requested, start, ..
                } => PartitionError::offset_out_of_range(requested, start, hw),
                e @ strata_log::LogError::Corrupt { .. } => {
                    // Damaged data is never served; the replica is reopened with a full check
                    // (it then repairs from the other replicas).
                    self.damaged.send_replace(Some(e.to_string()));
                    PartitionError::log(e)
                }
                other => PartitionError::log(other),
            })?;
        Ok(Fetched {
            batches: entries.into_iter().map(|e| e.payload).collect(),
            high_watermark: hw.get(),
            log_start_offset: self.log_start_offset(),
        })
    }

    /// The offset of the first committed record whose timestamp is at least `timestamp`, or
    /// `None` if there is none (Kafka's ListOffsets by time).
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<i64>, PartitionError> {
        self.ready_leader().await?;
        let hw = self.state.high_watermark();
        let reader = self.reader.clone();
        let entry = tokio::task::spawn_blocking(move || reader.entry_for_timestamp(timestamp))
            .await
            .map_err(PartitionError::task)?
            .map_err(PartitionError::log)?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        if entry.base_offset >= hw {
            return Ok(None);
        }
        let batch = Batch::parse(entry.payload).map_err(|e| PartitionError::Corrupt {
            reason: format!(
                "the data entry at offset {} is not a record batch: {e}",
                entry.base_offset
            ),
        })?;
        Ok(batch
            .first_offset_at_or_after_timestamp(timestamp)
            .filter(|o| Offset::new(*o) < hw))
    }
}
