//! Retention from topic configs: every `retention_check_interval_ms`, each partition leader
//! computes the first offset to keep from `retention.ms` (by the time index) and
//! `retention.bytes` (by segment sizes) and calls the partition's `retain_before`, which drops
//! whole segments below it on every replica. A topic with `retention.policy = acked` also
//! drops what every queue group of the partition has settled.

use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;
use strata_log::Offset;
use strata_record::sync::now_ms;
use tokio::sync::watch;

/// Runs until `stop`.
pub async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(shared.config.retention_check_interval_ms.max(100));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let meta = shared.controller.snapshot();
        for h in shared.replicas.all() {
            let Some(p) = h.partition() else { continue };
            if !p.is_ready_leader() {
                continue;
            }
            let Some(config) = meta
                .topics
                .get(&h.topic)
                .filter(|t| t.id == h.topic_id)
                .map(|t| t.config.clone())
            else {
                continue;
            };
            let hw = p.high_watermark();
            let mut keep_from = None::<i64>;
            if config.retention_ms > 0 {
                let cutoff = now_ms() - config.retention_ms;
                match p.offset_for_timestamp(cutoff).await {
                    Ok(Some(o)) => keep_from = Some(o),
                    Ok(None) => keep_from = Some(hw),
                    Err(_) => continue,
                }
            }
            if config.retention_bytes > 0 {
                let limit = config.retention_bytes as u64;
                let by_size =
                    keep_from_size(p.log_reader().segment_sizes(), limit).map(Offset::get);
                if let Some(o) = by_size {
                    keep_from = Some(keep_from.map_or(o, |k| k.max(o)));
                }
            }
            // A work queue: what every queue group settled goes too.
            if config.retention_policy_acked
                && let Some(floor) = shared.broker.queue_settled_floor(&h.topic, h.partition)
            {
                keep_from = Some(keep_from.map_or(floor, |k| k.max(floor)));
            }
            let Some(keep) = keep_from.map(|k| k.min(hw)) else {
                continue;
            };
            if keep <= p.log_start_offset() {
                continue;
            }
            match p.retain_before(keep).await {
                Ok(Some(start)) => {
                    tracing::info!(topic = %h.topic, partition = h.partition, start,
                        "retention dropped old segments");
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(topic = %h.topic, error = %e, "retention"),
            }
        }
    }
}

/// The base offset of the oldest segment to keep so that the segments kept (newest first)
/// hold at most `limit` bytes of data, beyond the active one; `None` if all fit. `segs` are
/// (base offset, data bytes), oldest first (`LogReader::segment_sizes`).
fn keep_from_size(segs: Vec<(Offset, u64)>, limit: u64) -> Option<Offset> {
    let mut total = 0u64;
    for i in (0..segs.len()).rev() {
        total += segs[i].1;
        if total > limit && i + 1 < segs.len() {
            return Some(segs[i + 1].0);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::keep_from_size;
    use strata_log::Offset;

    /// Sizes are data bytes (an active segment preallocated to megabytes but holding 5 bytes
    /// counts 5), the active segment is always kept, and whole segments go oldest first.
    #[test]
    fn retention_by_size_counts_data_and_keeps_the_newest() {
        let o = Offset::new;
        let segs = vec![(o(0), 100), (o(10), 100), (o(20), 100), (o(30), 5)];
        assert_eq!(keep_from_size(segs.clone(), 150), Some(o(20)));
        assert_eq!(keep_from_size(segs.clone(), 305), None);
        assert_eq!(keep_from_size(segs.clone(), 1), Some(o(30)));
        assert_eq!(keep_from_size(vec![(o(0), 1 << 30)], 1), None);
    }
}
