//! Hibernation: an idle, fully replicated group turns its timers off (leader asleep, then its
//! followers told by the liveness ticker), and wakes on the next request or when its leader no
//! longer sleeps.

use super::leadership::quorum_acked_within;
use super::{Partition, lock};
use crate::types::{NodeId, TypeConfig};
use openraft::{RaftMetrics, ServerState};
use std::time::Duration;

/// Whether this replica's timers are off because its group is idle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepState {
    /// Timers on (normal Raft).
    Awake,
    /// Leader of an idle, fully replicated group: heartbeats and ticks off, in this term.
    LeaderAsleep {
        /// The term it leads.
        term: u64,
    },
    /// Follower of a leader that said it sleeps: ticks (so elections) off.
    FollowerAsleep {
        /// The sleeping leader.
        leader: NodeId,
        /// Its term.
        term: u64,
    },
}

#[derive(Debug)]
pub(super) struct Sleep {
    pub(super) state: SleepState,
    pub(super) last_activity: std::time::Instant,
}

impl Partition {
    /// The hibernation state.
    pub fn sleep_state(&self) -> SleepState {
        lock(&self.sleep).state
    }

    /// Turns this leader's timers off if its group is idle: no client activity for `idle`,
    /// and every follower has the whole log. A sleeping group costs no timer, heartbeat or
    /// message; the node's liveness ticker tells its followers' nodes that it sleeps, so they
    /// turn their election timers off too. Returns the term it sleeps in.
    pub fn hibernate_if_idle(&self, idle: Duration) -> Option<u64> {
        {
            let sleep = lock(&self.sleep);
            if sleep.state == SleepState::Awake && sleep.last_activity.elapsed() < idle {
                return None;
            }
            if let SleepState::FollowerAsleep { .. } = sleep.state {
                return None;
            }
        }
        self.with_metrics(|m| self.hibernate_with(m, idle))
    }

    fn hibernate_with(&self, m: &RaftMetrics<TypeConfig>, idle: Duration) -> Option<u64> {
        let mut sleep = lock(&self.sleep);
        if let SleepState::LeaderAsleep { term } = sleep.state {
            if m.state == ServerState::Leader && m.current_term == term {
                return Some(term);
            }
            // Lost leadership while asleep (another node won an election): wake up.
            sleep.state = SleepState::Awake;
            self.set_timers(true);
            return None;
        }
        if sleep.state != SleepState::Awake
            || m.state != ServerState::Leader
            || sleep.last_activity.elapsed() < idle
        {
            return None;
        }
        let last = m.last_log_index;
        let caught_up = m
            .replication
            .as_ref()
            .is_some_and(|r| r.values().all(|matched| matched.map(|l| l.index) == last));
        let applied = m.last_applied.map(|l| l.index) == last;
        // Only a leader a quorum answered recently may sleep: one cut off from its followers
        // stays awake (and not ready), so it never looks like a sleeping, healthy leader.
        let acked = quorum_acked_within(m, self.node_id, self.lease_ms);
        if !caught_up || !applied || !acked {
            return None;
        }
        sleep.state = SleepState::LeaderAsleep {
            term: m.current_term,
        };
        self.set_timers(false);
        Some(m.current_term)
    }

    /// A follower's node heard that `leader` sleeps in `term`: if that is this replica's leader
    /// and term, turn its election timer off too.
    pub fn follow_asleep(&self, leader: NodeId, term: u64) {
        let follows = self.with_metrics(|m| {
            m.state != ServerState::Leader
                && m.current_leader == Some(leader)
                && m.current_term == term
        });
        let mut sleep = lock(&self.sleep);
        if sleep.state == SleepState::Awake && follows {
            sleep.state = SleepState::FollowerAsleep { leader, term };
            self.raft.runtime_config().tick(false);
        }
    }

    /// Turns a follower's timers back on if its leader no longer says it sleeps (or its node
    /// went silent): the group is active again, or needs an election.
    pub fn wake_follower(&self) {
        let mut sleep = lock(&self.sleep);
        if let SleepState::FollowerAsleep { .. } = sleep.state {
            sleep.state = SleepState::Awake;
            self.raft.runtime_config().tick(true);
        }
    }

    /// Wakes the group if this leader sleeps: timers on and a heartbeat at once, so the lease
    /// renews (a sleeping leader's lease has expired: it serves again once a quorum answers).
    pub async fn wake(&self) {
        let was_asleep = {
            let mut sleep = lock(&self.sleep);
            sleep.last_activity = std::time::Instant::now();
            let asleep = matches!(sleep.state, SleepState::LeaderAsleep { .. });
            if asleep {
                sleep.state = SleepState::Awake;
                self.set_timers(true);
            }
            asleep
        };
        if was_asleep {
            let _ = self.raft.trigger().heartbeat().await;
        }
    }

    fn set_timers(&self, on: bool) {
        let rc = self.raft.runtime_config();
        rc.heartbeat(on);
        rc.tick(on);
    }
}
