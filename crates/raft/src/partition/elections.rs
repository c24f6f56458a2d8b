//! Elections this replica wins, counted by cause in `strata_elections_won_total{cause}`, so
//! that elections nobody asked for show on `/metrics`:
//!
//! - `startup`: no leader had been seen since this replica opened (a new group, a restart);
//! - `transfer`: a leader handed its leadership here (`TransferLeader`: shutdown handoff,
//!   preferred leaders, moves);
//! - `leader_lost`: neither: the previous leader went silent (crashed, cut off, or too slow
//!   to send its heartbeats within an election timeout), whether openraft's timer or the
//!   liveness ticker ([`super::Partition::elect`]) started the election.
//!
//! The watch reads openraft's server metrics, which change only with the vote, the server
//! state, the leader or the membership, not on every append.

use super::Raft;
use crate::numbers::GroupId;
use crate::types::NodeId;
use openraft::ServerState;
use openraft::type_config::async_runtime::WatchReceiver;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What this node was asked to do that explains its next election.
#[derive(Debug)]
pub struct ElectionCauses {
    /// When a leader last handed its leadership here.
    transfer: Mutex<Option<Instant>>,
    /// How long a transfer explains an election: one that follows later (the transfer failed
    /// or was refused) has another cause.
    window: Duration,
}

impl ElectionCauses {
    /// Causes of one replica; a transfer explains an election won within `window` of it.
    pub fn new(window: Duration) -> ElectionCauses {
        ElectionCauses {
            transfer: Mutex::new(None),
            window,
        }
    }

    /// A leader handed its leadership to this replica.
    pub fn transfer_received(&self) {
        *strata_record::sync::lock(&self.transfer) = Some(Instant::now());
    }

    fn take(&self, seen_a_leader: bool) -> &'static str {
        // A transfer explains one election at most, and only soon after it.
        let transfer = strata_record::sync::lock(&self.transfer).take();
        if transfer.is_some_and(|t| t.elapsed() <= self.window) {
            "transfer"
        } else if !seen_a_leader {
            "startup"
        } else {
            "leader_lost"
        }
    }
}

/// Counts the elections `raft` wins until its metrics end (the group stopped).
pub(super) async fn count(
    raft: Raft,
    me: NodeId,
    group_id: GroupId,
    causes: std::sync::Arc<ElectionCauses>,
) {
    let mut rx = raft.server_metrics();
    drop(raft);
    let mut seen_a_leader = false;
    let mut counted_term = 0;
    loop {
        {
            let m = rx.borrow_watched();
            let term = m.vote.leader_id().term;
            if m.state == ServerState::Leader && m.current_leader == Some(me) {
                if term > counted_term {
                    counted_term = term;
                    let cause = causes.take(seen_a_leader);
                    metrics::counter!("strata_elections_won_total", "cause" => cause).increment(1);
                    if cause == "leader_lost" {
                        tracing::info!(
                            group = group_id.get(),
                            term,
                            "won an election after the leader went silent"
                        );
                    } else {
                        tracing::debug!(group = group_id.get(), term, cause, "won an election");
                    }
                }
                seen_a_leader = true;
            } else if m.current_leader.is_some() {
                seen_a_leader = true;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_explains_one_election() {
        let c = ElectionCauses::new(Duration::from_secs(60));
        assert_eq!(c.take(false), "startup");
        assert_eq!(c.take(true), "leader_lost");
        c.transfer_received();
        assert_eq!(c.take(true), "transfer");
        assert_eq!(c.take(true), "leader_lost");
        // A transfer long past (it failed) explains nothing.
        let stale = ElectionCauses::new(Duration::ZERO);
        stale.transfer_received();
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(stale.take(true), "leader_lost");
    }
}
