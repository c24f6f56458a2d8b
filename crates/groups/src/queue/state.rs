//! [`QueuesState`]: the queue groups of one data partition, and the [`QueueCommand`]s that
//! change them.
//!
//! A queue group's state on a partition is a settled prefix (every offset below
//! `settled_below` is acknowledged or dead-lettered) and a window of records above it that
//! were handed out at least once: each with its delivery count and whether it is available
//! again (perhaps not before a time), acquired by a consumer until a deadline, acknowledged,
//! rejected (waiting for its dead-lettering) or dead. Offsets above the window were never
//! handed out and are available. Settled records at the front of the window are dropped as
//! the prefix advances, so the state is bounded by the window, not by the log.
//!
//! `apply` is deterministic: times come in the command, stamped by the partition's leader,
//! and the state keeps the latest time it applied (`clock`), so a command stamped earlier
//! than one applied before it is judged at the later time (the order of the log is the order
//! of time). It enforces the invariants whatever the leader computed:
//! - an acknowledged or dead-lettered record is never acquired again (both are terminal);
//! - only the consumer holding a record's lock, before the lock's deadline, settles or
//!   extends it;
//! - a record is acquired at most `max_deliveries` times;
//! - the settled prefix never goes back.

use super::error::QueueError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The longest queue group name, in bytes.
pub const QUEUE_NAME_BYTES_MAX: usize = 255;

/// The longest consumer id, in bytes.
pub const CONSUMER_ID_BYTES_MAX: usize = 255;

/// The longest a record may be held back: a release's delay, and a `strata-deliver-at` time
/// beyond now (a later time counts as now plus this), 7 days.
pub const DELAY_MS_MAX: u64 = 7 * 24 * 3_600_000;

/// Deliveries of a record before it is dead-lettered when a group does not say.
pub const MAX_DELIVERIES_DEFAULT: u32 = 5;

/// The most deliveries a group may allow.
pub const MAX_DELIVERIES_LIMIT: u32 = 1000;

/// How a queue group treats its records; fixed when the group is created on a partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// Deliveries before a record is dead-lettered (1 to [`MAX_DELIVERIES_LIMIT`]).
    pub max_deliveries: u32,
    /// The dead-letter topic, or `None` to drop (archive) exhausted and rejected records.
    pub dead_letter: Option<String>,
}

impl QueueConfig {
    /// The defaults for a group reading `topic`: [`MAX_DELIVERIES_DEFAULT`] deliveries, dead
    /// letters to `<topic>.dlq`.
    pub fn for_topic(topic: &str) -> QueueConfig {
        QueueConfig {
            max_deliveries: MAX_DELIVERIES_DEFAULT,
            dead_letter: Some(format!("{topic}.dlq")),
        }
    }

    /// Refuses a configuration outside the limits.
    pub fn check(&self) -> Result<(), QueueError> {
        if self.max_deliveries == 0 || self.max_deliveries > MAX_DELIVERIES_LIMIT {
            return Err(QueueError::InvalidRequest(format!(
                "max_deliveries is {}; it must be between 1 and {MAX_DELIVERIES_LIMIT}",
                self.max_deliveries
            )));
        }
        if self.dead_letter.as_deref() == Some("") {
            return Err(QueueError::InvalidRequest(
                "the dead-letter topic name is empty".into(),
            ));
        }
        Ok(())
    }
}

/// Where a record in the window stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecState {
    /// Waiting to be acquired (again), not before `not_before` (epoch ms; 0: now).
    Available {
        /// Earliest time it may be handed out.
        not_before: u64,
    },
    /// Held by `consumer` until `until` (epoch ms); after that it may be acquired again.
    Acquired {
        /// The holder.
        consumer: String,
        /// The lock's deadline.
        until: u64,
    },
    /// Acknowledged: done. Terminal.
    Acked,
    /// Bound for the dead-letter topic (rejected by its consumer, or delivered
    /// `max_deliveries` times): written there, then dead. No settle applies to it.
    Rejected {
        /// Why: `rejected: <the consumer's reason>` or `max_deliveries`.
        reason: String,
    },
    /// Dead-lettered (or archived, without a dead-letter topic). Terminal.
    Dead,
}

/// A record of the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rec {
    /// How many times it was acquired.
    pub deliveries: u32,
    /// Where it stands.
    pub state: RecState,
}

impl Rec {
    /// Acknowledged or dead: nothing more happens to it.
    pub fn is_settled(&self) -> bool {
        matches!(self.state, RecState::Acked | RecState::Dead)
    }

    /// Whether it may be acquired at `now` under `max_deliveries`.
    pub fn acquirable(&self, now: u64, max_deliveries: u32) -> bool {
        self.deliveries < max_deliveries
            && match &self.state {
                RecState::Available { not_before } => *not_before <= now,
                RecState::Acquired { until, .. } => *until < now,
                RecState::Acked | RecState::Rejected { .. } | RecState::Dead => false,
            }
    }

    /// Why it is due for the dead-letter topic at `now`, if it is: rejected, or delivered
    /// `max_deliveries` times and neither locked nor settled.
    pub fn dead_letter_reason(&self, now: u64, max_deliveries: u32) -> Option<String> {
        match &self.state {
            RecState::Rejected { reason } => Some(reason.clone()),
            RecState::Available { .. } if self.deliveries >= max_deliveries => {
                Some("max_deliveries".into())
            }
            RecState::Acquired { until, .. }
                if self.deliveries >= max_deliveries && *until < now =>
            {
                Some("max_deliveries".into())
            }
            _ => None,
        }
    }

    /// The holder of a live lock at `now`.
    pub fn holder(&self, now: u64) -> Option<&str> {
        match &self.state {
            RecState::Acquired { consumer, until } if *until >= now => Some(consumer),
            _ => None,
        }
    }
}

/// One queue group on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePartition {
    /// Its configuration.
    pub config: QueueConfig,
    /// Every offset below this is settled.
    pub settled_below: i64,
    /// Records at or above `settled_below` handed out at least once, by offset.
    #[serde(with = "records_as_pairs")]
    pub records: BTreeMap<i64, Rec>,
    /// Records acknowledged since the group was created here.
    pub acked_total: u64,
    /// Records dead-lettered (or archived) since the group was created here.
    pub dead_total: u64,
    /// Records lost to retention before they were settled.
    pub expired_total: u64,
}

/// JSON maps have string keys; the window is kept as `[offset, record]` pairs.
mod records_as_pairs {
    use super::Rec;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(m: &BTreeMap<i64, Rec>, s: S) -> Result<S::Ok, S::Error> {
        let v: Vec<(&i64, &Rec)> = m.iter().collect();
        v.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<i64, Rec>, D::Error> {
        let v: Vec<(i64, Rec)> = Vec::deserialize(d)?;
        Ok(v.into_iter().collect())
    }
}

impl QueuePartition {
    /// A group created at `start` with `config`.
    pub fn new(config: QueueConfig, start: i64) -> QueuePartition {
        QueuePartition {
            config,
            settled_below: start,
            records: BTreeMap::new(),
            acked_total: 0,
            dead_total: 0,
            expired_total: 0,
        }
    }

    /// The record at `offset` as the group sees it: from the window, settled below it, or
    /// never delivered above it.
    pub fn record(&self, offset: i64) -> Rec {
        if offset < self.settled_below {
            return Rec {
                deliveries: 0,
                state: RecState::Acked,
            };
        }
        self.records.get(&offset).cloned().unwrap_or(Rec {
            deliveries: 0,
            state: RecState::Available { not_before: 0 },
        })
    }

    /// Records `consumer` holds at `now`.
    pub fn held_by(&self, consumer: &str, now: u64) -> usize {
        self.records
            .values()
            .filter(|r| r.holder(now) == Some(consumer))
            .count()
    }

    /// The first offset above the window (never handed out).
    pub fn window_end(&self) -> i64 {
        self.records
            .last_key_value()
            .map_or(self.settled_below, |(o, _)| *o + 1)
            .max(self.settled_below)
    }

    /// Drops the settled records at the front of the window, advancing the prefix.
    fn advance(&mut self) {
        while let Some(entry) = self.records.first_entry() {
            if *entry.key() != self.settled_below || !entry.get().is_settled() {
                break;
            }
            entry.remove();
            self.settled_below += 1;
        }
    }
}

/// What a consumer does with a record it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Settle {
    /// Done with it: never delivered again.
    Ack,
    /// Give it back for redelivery, not before `delay_ms` from now.
    Release {
        /// Delay before it may be delivered again.
        delay_ms: u64,
    },
    /// Give back a record the consumer never handed to its application (it closed first):
    /// available again at once, and this delivery is not counted.
    Return,
    /// Dead-letter it now, with a reason.
    Reject {
        /// Why (goes into the dead letter's headers).
        reason: String,
    },
    /// Keep the lock `lock_ms` longer from now.
    Extend {
        /// The new lock length from now.
        lock_ms: u64,
    },
}

/// A change to the queue groups of a partition, as proposed by its leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueueCommand {
    /// Locks `offsets` for `consumer` until `until`, skipping those that cannot be taken any
    /// more (settled or extended by a command applied since the leader planned); the
    /// outcome lists those taken. Creates the group at `create` (its config and first
    /// offset) when it does not exist on this partition. The records new to the window
    /// (acquired or delayed) must continue it without a hole, or nothing changes.
    Acquire {
        /// The group.
        group: String,
        /// The consumer.
        consumer: String,
        /// The offsets, ascending.
        offsets: Vec<i64>,
        /// The leader's clock.
        now_ms: u64,
        /// The lock's deadline.
        until_ms: u64,
        /// Records never delivered that must wait (a deliver-at header), with the time
        /// each may go: they join the window as available, not before then.
        delayed: Vec<(i64, u64)>,
        /// The group to create when absent.
        create: Option<(QueueConfig, i64)>,
    },
    /// Settles or extends records `consumer` holds; each item succeeds or fails on its own.
    Settle {
        /// The group.
        group: String,
        /// The consumer.
        consumer: String,
        /// What to do with each offset.
        items: Vec<(i64, Settle)>,
        /// The leader's clock.
        now_ms: u64,
        /// After the items, every record the consumer still holds becomes available again
        /// (a consumer closing cleanly), and those deliveries do not count.
        #[serde(default)]
        return_held: bool,
    },
    /// Marks the records delivered `max_deliveries` times, and neither locked nor settled,
    /// as bound for the dead-letter topic (skipping any no longer so): from then no settle
    /// applies to them.
    Condemn {
        /// The group.
        group: String,
        /// The offsets.
        offsets: Vec<i64>,
        /// The leader's clock.
        now_ms: u64,
    },
    /// Marks records bound for the dead-letter topic dead, once they are in it (or dropped);
    /// offsets not bound for it are skipped.
    DeadLettered {
        /// The group.
        group: String,
        /// The offsets.
        offsets: Vec<i64>,
        /// The leader's clock.
        now_ms: u64,
    },
    /// Settles every record below `below` (the log start moved past them: retention deleted
    /// them before they were settled).
    Expired {
        /// The group.
        group: String,
        /// The new log start.
        below: i64,
    },
    /// Deletes the group on this partition; refused while a consumer holds a live lock.
    Delete {
        /// The group.
        group: String,
        /// The leader's clock.
        now_ms: u64,
    },
}

/// What applying a command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueOutcome {
    /// The command applied whole.
    Done,
    /// An acquisition: the offsets taken.
    Acquired(Vec<i64>),
    /// A settle: the items refused (their index in the command, and why); the others were
    /// done. Only refusals are kept, so the outcomes every replica holds stay small.
    Settled(Vec<(u32, QueueError)>),
}

/// Checks a queue group name or consumer id (`what`).
pub fn check_name(what: &str, name: &str, max: usize) -> Result<(), QueueError> {
    if name.is_empty() || name.len() > max || name.chars().any(char::is_control) {
        return Err(QueueError::InvalidRequest(format!(
            "{what} {name:?} must be 1 to {max} bytes without control characters"
        )));
    }
    Ok(())
}

/// The queue groups of one partition, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuesState {
    /// The groups.
    pub groups: BTreeMap<String, QueuePartition>,
    /// The latest time a command applied carried (epoch ms); never goes back.
    #[serde(default)]
    pub clock: u64,
}

impl QueuesState {
    /// The time a command stamped `now` is judged at: the later of it and every time applied
    /// before (it becomes the state's clock).
    fn tick(&mut self, now: u64) -> u64 {
        self.clock = self.clock.max(now);
        self.clock
    }

    /// Applies `cmd`; a refused command (or settle item) changes nothing. In debug builds
    /// (every test), the state's invariants are checked after each command.
    pub fn apply(&mut self, cmd: &QueueCommand) -> Result<QueueOutcome, QueueError> {
        #[cfg(debug_assertions)]
        let before: BTreeMap<String, i64> = self
            .groups
            .iter()
            .map(|(n, g)| (n.clone(), g.settled_below))
            .collect();
        let outcome = self.apply_command(cmd);
        #[cfg(debug_assertions)]
        self.assert_invariants(&before);
        outcome
    }

    /// What every command leaves true: each group's settled prefix never goes back (a group
    /// deleted and created again starts afresh); the window holds only records above it,
    /// starting with an unsettled one; no record was delivered more than its group allows.
    #[cfg(debug_assertions)]
    fn assert_invariants(&self, before: &BTreeMap<String, i64>) {
        for (name, g) in &self.groups {
            if let Some(old) = before.get(name) {
                assert!(
                    g.settled_below >= *old,
                    "group {name:?}: settled prefix went back from {old} to {}",
                    g.settled_below
                );
            }
            if let Some((first, r)) = g.records.first_key_value() {
                assert!(
                    *first >= g.settled_below,
                    "group {name:?}: record {first} below the prefix"
                );
                assert!(
                    *first > g.settled_below || !r.is_settled(),
                    "group {name:?}: settled record {first} left at the front of the window"
                );
            }
            let max = g.config.max_deliveries;
            if let Some((o, r)) = g.records.iter().find(|(_, r)| r.deliveries > max) {
                panic!(
                    "group {name:?}: record {o} delivered {} times, over {max}",
                    r.deliveries
                );
            }
        }
    }

    fn apply_command(&mut self, cmd: &QueueCommand) -> Result<QueueOutcome, QueueError> {
        match cmd {
            QueueCommand::Acquire {
                group,
                consumer,
                offsets,
                now_ms,
                until_ms,
                delayed,
                create,
            } => {
                let mut created = None;
                let g = match self.groups.get(group) {
                    Some(g) => g,
                    None => {
                        let Some((config, start)) = create else {
                            return Err(QueueError::UnknownGroup(group.clone()));
                        };
                        config.check()?;
                        &*created.insert(QueuePartition::new(config.clone(), *start))
                    }
                };
                if offsets.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(QueueError::Invariant(
                        "acquired offsets are not strictly ascending".into(),
                    ));
                }
                // Records join the window in offset order, without holes: the offsets new to
                // it (acquired or delayed) continue it exactly.
                let end = g.window_end();
                let mut fresh: Vec<i64> = offsets
                    .iter()
                    .copied()
                    .filter(|o| *o >= end)
                    .chain(delayed.iter().map(|(o, _)| *o))
                    .collect();
                fresh.sort_unstable();
                if fresh.iter().enumerate().any(|(i, o)| *o != end + i as i64) {
                    return Err(QueueError::Invariant(format!(
                        "records new to group {group:?} must continue its window from offset {end}: {fresh:?}"
                    )));
                }
                let now = self.tick(*now_ms);
                let g = match created {
                    Some(g) => self.groups.entry(group.clone()).or_insert(g),
                    None => match self.groups.get_mut(group) {
                        Some(g) => g,
                        None => return Err(QueueError::UnknownGroup(group.clone())),
                    },
                };
                for &(o, not_before) in delayed {
                    g.records.insert(
                        o,
                        Rec {
                            deliveries: 0,
                            state: RecState::Available { not_before },
                        },
                    );
                }
                let max = g.config.max_deliveries;
                let mut taken = Vec::with_capacity(offsets.len());
                for &o in offsets {
                    let r = g.record(o);
                    // Settled, locked again or extended since the leader planned: skipped.
                    if !r.acquirable(now, max) {
                        continue;
                    }
                    g.records.insert(
                        o,
                        Rec {
                            deliveries: r.deliveries + 1,
                            state: RecState::Acquired {
                                consumer: consumer.clone(),
                                until: *until_ms,
                            },
                        },
                    );
                    taken.push(o);
                }
                Ok(QueueOutcome::Acquired(taken))
            }
            QueueCommand::Settle {
                group,
                consumer,
                items,
                now_ms,
                return_held,
            } => {
                if !self.groups.contains_key(group) {
                    return Err(QueueError::UnknownGroup(group.clone()));
                }
                let now = self.tick(*now_ms);
                let Some(g) = self.groups.get_mut(group) else {
                    return Err(QueueError::UnknownGroup(group.clone()));
                };
                let refused = items
                    .iter()
                    .enumerate()
                    .filter_map(|(i, (o, s))| {
                        settle_one(g, consumer, *o, s, now)
                            .err()
                            .map(|e| (i as u32, e))
                    })
                    .collect();
                if *return_held {
                    for r in g.records.values_mut() {
                        if r.holder(now) == Some(consumer.as_str()) {
                            r.deliveries = r.deliveries.saturating_sub(1);
                            r.state = RecState::Available { not_before: 0 };
                        }
                    }
                }
                g.advance();
                Ok(QueueOutcome::Settled(refused))
            }
            QueueCommand::Condemn {
                group,
                offsets,
                now_ms,
            } => {
                if !self.groups.contains_key(group) {
                    return Err(QueueError::UnknownGroup(group.clone()));
                }
                let now = self.tick(*now_ms);
                let Some(g) = self.groups.get_mut(group) else {
                    return Err(QueueError::UnknownGroup(group.clone()));
                };
                let max = g.config.max_deliveries;
                for &o in offsets {
                    let r = g.record(o);
                    if o < g.settled_below
                        || matches!(r.state, RecState::Rejected { .. })
                        || r.dead_letter_reason(now, max).is_none()
                    {
                        continue;
                    }
                    g.records.insert(
                        o,
                        Rec {
                            deliveries: r.deliveries,
                            state: RecState::Rejected {
                                reason: "max_deliveries".into(),
                            },
                        },
                    );
                }
                Ok(QueueOutcome::Done)
            }
            QueueCommand::DeadLettered {
                group,
                offsets,
                now_ms,
            } => {
                if !self.groups.contains_key(group) {
                    return Err(QueueError::UnknownGroup(group.clone()));
                }
                self.tick(*now_ms);
                let Some(g) = self.groups.get_mut(group) else {
                    return Err(QueueError::UnknownGroup(group.clone()));
                };
                for &o in offsets {
                    let r = g.record(o);
                    if o < g.settled_below || !matches!(r.state, RecState::Rejected { .. }) {
                        continue;
                    }
                    g.records.insert(
                        o,
                        Rec {
                            deliveries: r.deliveries,
                            state: RecState::Dead,
                        },
                    );
                    g.dead_total += 1;
                }
                g.advance();
                Ok(QueueOutcome::Done)
            }
            QueueCommand::Expired { group, below } => {
                let g = self
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| QueueError::UnknownGroup(group.clone()))?;
                if *below <= g.settled_below {
                    return Ok(QueueOutcome::Done);
                }
                let unsettled_in_window = g
                    .records
                    .range(..*below)
                    .filter(|(_, r)| !r.is_settled())
                    .count() as u64;
                let beyond_window = (*below - g.window_end()).max(0) as u64;
                g.expired_total += unsettled_in_window + beyond_window;
                g.records = g.records.split_off(below);
                g.settled_below = *below;
                g.advance();
                Ok(QueueOutcome::Done)
            }
            QueueCommand::Delete { group, now_ms } => {
                let g = self
                    .groups
                    .get(group)
                    .ok_or_else(|| QueueError::UnknownGroup(group.clone()))?;
                let now = self.clock.max(*now_ms);
                let held = g
                    .records
                    .values()
                    .filter(|r| r.holder(now).is_some())
                    .count();
                if held > 0 {
                    return Err(QueueError::GroupBusy {
                        group: group.clone(),
                        held,
                    });
                }
                self.tick(*now_ms);
                self.groups.remove(group);
                Ok(QueueOutcome::Done)
            }
        }
    }
}

/// Applies one settle item to `g`.
fn settle_one(
    g: &mut QueuePartition,
    consumer: &str,
    offset: i64,
    s: &Settle,
    now: u64,
) -> Result<(), QueueError> {
    let current = g.record(offset);
    if current.is_settled() || offset < g.settled_below {
        return Err(QueueError::AlreadySettled { offset });
    }
    match &current.state {
        RecState::Acquired { consumer: c, until } if c == consumer && *until >= now => {}
        RecState::Acquired { consumer: c, .. } if c == consumer => {
            return Err(QueueError::LockExpired { offset });
        }
        RecState::Acquired { consumer: c, until } if *until >= now => {
            return Err(QueueError::NotHeld {
                offset,
                holder: Some(c.clone()),
            });
        }
        _ => {
            return Err(QueueError::NotHeld {
                offset,
                holder: None,
            });
        }
    }
    let mut deliveries = current.deliveries;
    let state = match s {
        Settle::Return => {
            deliveries = deliveries.saturating_sub(1);
            RecState::Available { not_before: 0 }
        }
        Settle::Ack => {
            g.acked_total += 1;
            RecState::Acked
        }
        Settle::Release { delay_ms } => RecState::Available {
            not_before: now.saturating_add(*delay_ms),
        },
        Settle::Reject { reason } => RecState::Rejected {
            reason: format!("rejected: {reason}"),
        },
        Settle::Extend { lock_ms } => RecState::Acquired {
            consumer: consumer.to_string(),
            until: now.saturating_add(*lock_ms),
        },
    };
    g.records.insert(offset, Rec { deliveries, state });
    Ok(())
}
