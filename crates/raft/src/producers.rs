//! Idempotent producer state: per producer id, its epoch, the sequence of its last batch and
//! the offsets of its last few batches (to answer a retried duplicate with its original
//! offset). Replicated: every replica updates it when it applies a batch. Expiry runs on a
//! replicated clock: the leader proposes its wall clock as a `Clock` entry (see
//! `Partition::append`), every replica advances [`ProducerTable::clock_ms`] when it applies
//! one, so every replica expires the same producers at the same entry. Record timestamps are
//! never used: a client sets them (backfills, mirroring, skewed clocks, -1), and a producer
//! forgotten early would have its retries written twice.

use std::collections::{HashMap, VecDeque};
use strata_log::Offset;

/// Batches remembered per producer for duplicate detection (Kafka keeps 5).
pub const RECENT_BATCHES_MAX: usize = 5;

/// One committed batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecentBatch {
    /// Sequence of its first record.
    pub first_sequence: i32,
    /// Sequence of its last record.
    pub last_sequence: i32,
    /// Offset of its first record.
    pub base_offset: Offset,
    /// Records in it.
    pub record_count: u32,
}

/// What the partition knows of one producer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch; a batch with a lower one is fenced.
    pub epoch: i16,
    /// The most recent batches, oldest first.
    pub recent: VecDeque<RecentBatch>,
    /// The replicated clock ([`ProducerTable::clock_ms`]) when its last batch was applied (for
    /// expiry).
    pub last_timestamp: i64,
}

impl ProducerEntry {
    /// The sequence the next batch must start at.
    pub fn next_sequence(&self) -> i32 {
        self.recent
            .back()
            .map_or(0, |b| next_sequence_after(b.last_sequence))
    }
}

pub use strata_record::sequence::{last_of as last_sequence, next_after as next_sequence_after};

/// Every producer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerTable {
    /// State by producer id.
    pub producers: HashMap<i64, ProducerEntry>,
    /// The replicated clock: the largest leader wall clock applied so far (milliseconds since
    /// the epoch; 0 before the first `Clock` entry). Not encoded: a decoded table restarts it
    /// at its producers' latest `last_timestamp`, and the next `Clock` entry moves it on.
    pub clock_ms: i64,
}

impl ProducerTable {
    /// Records a committed batch (called in apply order on every replica), seen at the
    /// replicated clock.
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: RecentBatch) {
        let now = self.clock_ms;
        let entry = self.producers.entry(producer_id).or_insert(ProducerEntry {
            epoch,
            recent: VecDeque::new(),
            last_timestamp: now,
        });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.recent.clear();
        }
        entry.recent.push_back(batch);
        while entry.recent.len() > RECENT_BATCHES_MAX {
            entry.recent.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(now);
    }

    /// Applies a leader's `Clock` entry: the clock moves to `now_ms` (never back: a new
    /// leader's clock may be behind its predecessor's), then producers idle for longer than
    /// `expiry_ms` by that clock are forgotten. Batches applied while the clock was still
    /// unknown (0: before the first `Clock` entry, which the leader proposes without waiting,
    /// so a concurrent batch can precede it, or after a snapshot without producers) count as
    /// seen at this clock, not at 0.
    pub fn advance_clock(&mut self, now_ms: i64, expiry_ms: i64) {
        if self.clock_ms == 0 {
            for p in self.producers.values_mut() {
                p.last_timestamp = p.last_timestamp.max(now_ms);
            }
        }
        self.clock_ms = self.clock_ms.max(now_ms);
        let horizon = self.clock_ms.saturating_sub(expiry_ms);
        self.producers.retain(|_, p| p.last_timestamp >= horizon);
    }

    /// Encodes the table (for snapshots).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut ids: Vec<&i64> = self.producers.keys().collect();
        ids.sort();
        out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
        for id in ids {
            let p = &self.producers[id];
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&p.epoch.to_le_bytes());
            out.extend_from_slice(&p.last_timestamp.to_le_bytes());
            out.push(p.recent.len() as u8);
            for b in &p.recent {
                out.extend_from_slice(&b.first_sequence.to_le_bytes());
                out.extend_from_slice(&b.last_sequence.to_le_bytes());
                out.extend_from_slice(&b.base_offset.get().to_le_bytes());
                out.extend_from_slice(&b.record_count.to_le_bytes());
            }
        }
    }

    /// Decodes [`ProducerTable::encode`]'s bytes from the front of `b`, advancing it.
    pub fn decode(b: &mut &[u8]) -> Option<ProducerTable> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            if b.len() < n {
                return None;
            }
            let (h, t) = b.split_at(n);
            *b = t;
            Some(h)
        }
        let n = u32::from_le_bytes(take(b, 4)?.try_into().ok()?) as usize;
        if n > b.len() / 19 {
            return None;
        }
        let mut producers = HashMap::with_capacity(n);
        for _ in 0..n {
            let id = i64::from_le_bytes(take(b, 8)?.try_into().ok()?);
            let epoch = i16::from_le_bytes(take(b, 2)?.try_into().ok()?);
            let last_timestamp = i64::from_le_bytes(take(b, 8)?.try_into().ok()?);
            let k = take(b, 1)?[0] as usize;
            let mut recent = VecDeque::with_capacity(k);
            for _ in 0..k {
                recent.push_back(RecentBatch {
                    first_sequence: i32::from_le_bytes(take(b, 4)?.try_into().ok()?),
                    last_sequence: i32::from_le_bytes(take(b, 4)?.try_into().ok()?),
                    base_offset: Offset::new(i64::from_le_bytes(take(b, 8)?.try_into().ok()?)),
                    record_count: u32::from_le_bytes(take(b, 4)?.try_into().ok()?),
                });
            }
            producers.insert(
                id,
                ProducerEntry {
                    epoch,
                    recent,
                    last_timestamp,
                },
            );
        }
        let clock_ms = producers
            .values()
            .map(|p| p.last_timestamp)
            .max()
            .unwrap_or(0);
        Some(ProducerTable {
            producers,
            clock_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEEK_MS: i64 = 7 * 24 * 3600 * 1000;
    const NOW_MS: i64 = 1_760_000_000_000;

    fn batch(first: i32, offset: i64) -> RecentBatch {
        RecentBatch {
            first_sequence: first,
            last_sequence: first,
            base_offset: Offset::new(offset),
            record_count: 1,
        }
    }

    /// Found by the fault schedules (seed 1085): the leader proposes its first `Clock` entry
    /// fire-and-forget, so a concurrent producer's batch can be applied before any clock, at
    /// clock 0; the first `Clock` entry then expired that producer (idle "since 1970"), and its
    /// next batch was refused as out of order (a retry of the first would have been written
    /// twice).
    #[test]
    fn a_batch_applied_before_the_first_clock_is_not_expired_by_it() {
        let mut t = ProducerTable::default();
        t.record(101, 0, batch(0, 0));
        t.advance_clock(NOW_MS, WEEK_MS);
        let p = t.producers.get(&101).expect("producer 101 kept");
        assert_eq!(p.next_sequence(), 1);
        // It is seen at that first clock: idle from then on.
        t.advance_clock(NOW_MS + WEEK_MS + 1, WEEK_MS);
        assert!(!t.producers.contains_key(&101));
    }

    /// The same after a retention snapshot without producers: the decoded clock restarts at 0.
    #[test]
    fn a_batch_applied_after_an_empty_snapshot_is_not_expired_by_the_next_clock() {
        let mut out = Vec::new();
        ProducerTable::default().encode(&mut out);
        let mut t = ProducerTable::decode(&mut &out[..]).expect("decode");
        t.record(7, 0, batch(0, 10));
        t.advance_clock(NOW_MS, WEEK_MS);
        assert!(t.producers.contains_key(&7));
    }
}
