//! [`Outcomes`]: what a [`StateHook`](crate::state_machine::StateHook) that answers proposals
//! keeps: the last entry it applied (so entries replayed after a reopen are skipped) and the
//! outcome of each recent entry by Raft index, for the proposer to collect once
//! `Partition::propose_control` returned that index.

use crate::numbers::RaftIndex;
use std::collections::VecDeque;

/// Outcomes kept for proposers to collect (a proposer reads its own right after apply).
pub const OUTCOMES_KEPT: usize = 4096;

/// The applied index and the recent outcomes of a hook.
#[derive(Debug)]
pub struct Outcomes<T> {
    applied: RaftIndex,
    recent: VecDeque<(RaftIndex, T)>,
}

impl<T> Default for Outcomes<T> {
    fn default() -> Outcomes<T> {
        Outcomes {
            applied: RaftIndex::default(),
            recent: VecDeque::new(),
        }
    }
}

impl<T> Outcomes<T> {
    /// Whether the entry at `index` is past the last entry applied (it now counts as
    /// applied); false for an entry already applied (a replay).
    pub fn admit(&mut self, index: RaftIndex) -> bool {
        if index <= self.applied {
            return false;
        }
        self.applied = index;
        true
    }

    /// Keeps the outcome of the entry at `index` (the oldest go past [`OUTCOMES_KEPT`]).
    pub fn record(&mut self, index: RaftIndex, outcome: T) {
        debug_assert!(
            self.recent.back().is_none_or(|(last, _)| *last < index),
            "outcome of entry {index} recorded after a later one"
        );
        self.recent.push_back((index, outcome));
        while self.recent.len() > OUTCOMES_KEPT {
            self.recent.pop_front();
        }
    }

    /// The outcome of the entry at `index`, once.
    pub fn take(&mut self, index: RaftIndex) -> Option<T> {
        let pos = self.recent.iter().position(|(i, _)| *i == index)?;
        self.recent.remove(pos).map(|(_, o)| o)
    }

    /// The last entry applied.
    pub fn applied(&self) -> RaftIndex {
        self.applied
    }

    /// Starts over from a snapshot taken at `applied` (recent outcomes are dropped).
    pub fn restore(&mut self, applied: RaftIndex) {
        self.applied = applied;
        self.recent.clear();
    }
}
