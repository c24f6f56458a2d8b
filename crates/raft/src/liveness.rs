//! [`Liveness`]: one per node, so idle groups cost almost nothing.
//!
//! Every `interval` the node's ticker
//! 1. puts to sleep each group it leads that is idle and fully replicated
//!    ([`Partition::hibernate_if_idle`]: heartbeats and ticks off);
//! 2. sends every peer node one [`LivenessMessage`] listing the (group, term) pairs it leads
//!    that sleep: one small message per peer per tick replaces a heartbeat per group;
//! 3. wakes every follower replica whose sleeping leader's node has been silent for `silence`
//!    (its timers resume and, the leader being gone, an election follows);
//! 4. asks every follower replica whose leader's node has been silent for `silence` to stand for
//!    election ([`Partition::elect`], with a pre-vote) until a new leader is known; the voters
//!    of one group take turns, one tick each, in order of node id and round after round, so
//!    that two candidates never stand in the same tick and split the vote
//!    ([`Liveness::orphaned`], `stands_now`).
//!    openraft itself does nothing while the replica's leader lease (the election timeout's
//!    upper bound since the leader was last heard) runs, and the pre-vote fails while the other
//!    voters still hear the leader, so this never disturbs a live leader. What it saves: a
//!    follower whose own election timer fired while the other voters' leases still ran retries
//!    only after another full election timeout (one whose pre-vote a longer log refused, after
//!    twice the upper bound more), so a dead leader's groups took 3-6 s to elect a successor with the default timing; with
//!    the ticker they elect one within a tick of the lease's end.
//!
//! A node that receives a message puts to sleep its follower replicas of the listed groups
//! (when the sender is their leader in that term: election timers off) and wakes those whose
//! group is no longer listed (the leader woke for a write, or lost leadership). Any client
//! operation on a sleeping leader wakes it first ([`Partition::wake`]).

use crate::numbers::GroupId;
use crate::partition::{Partition, SleepState};
use crate::types::NodeId;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// What a node tells its peers every liveness tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessMessage {
    /// The sending node.
    pub from: NodeId,
    /// Groups the sender leads that sleep, with the term they sleep in.
    pub sleeping: Vec<(GroupId, u64)>,
}

/// Delivers liveness messages to peer nodes (the transport implements it).
pub trait LivenessSender: Send + Sync + 'static {
    /// Sends `msg` to node `to` at peer address `addr`; an error means it did not arrive.
    fn send(
        &self,
        to: NodeId,
        addr: &str,
        msg: LivenessMessage,
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;
}

/// Timing of the liveness ticker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivenessConfig {
    /// Tick period (the Raft heartbeat interval is a good value).
    pub interval_ms: u64,
    /// A leader's group sleeps after this long without client activity.
    pub idle_ms: u64,
    /// Followers of a sleeping leader wake when its node is silent this long (the election
    /// timeout's lower bound).
    pub silence_ms: u64,
    /// How long openraft refuses to stand for election after it last heard its leader (the
    /// election timeout's upper bound). The voters' turns to stand are counted from the end
    /// of this lease, so that they fall in different ticks.
    pub lease_ms: u64,
}

impl Default for LivenessConfig {
    fn default() -> LivenessConfig {
        LivenessConfig {
            interval_ms: 300,
            idle_ms: 3_000,
            silence_ms: 1_500,
            lease_ms: 3_000,
        }
    }
}

/// The node's liveness ticker and its view of peers.
pub struct Liveness {
    me: NodeId,
    config: LivenessConfig,
    /// Weak: the ticker must not keep a stopped replica alive.
    groups: RwLock<HashMap<GroupId, std::sync::Weak<Partition>>>,
    last_heard: Mutex<HashMap<NodeId, Instant>>,
}

impl std::fmt::Debug for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Liveness")
            .field("me", &self.me)
            .finish_non_exhaustive()
    }
}

impl Liveness {
    /// The ticker of node `me`.
    pub fn new(me: NodeId, config: LivenessConfig) -> Arc<Liveness> {
        Arc::new(Liveness {
            me,
            config,
            groups: RwLock::new(HashMap::new()),
            last_heard: Mutex::new(HashMap::new()),
        })
    }

    /// Registers (or replaces) the local replica of `group`.
    pub fn register(&self, group: GroupId, partition: &Arc<Partition>) {
        strata_record::sync::write(&self.groups).insert(group, Arc::downgrade(partition));
    }

    /// Forgets the local replica of `group`.
    pub fn unregister(&self, group: GroupId) {
        strata_record::sync::write(&self.groups).remove(&group);
    }

    fn local(&self) -> Vec<(GroupId, Arc<Partition>)> {
        strata_record::sync::read(&self.groups)
            .iter()
            .filter_map(|(g, p)| p.upgrade().map(|p| (*g, p)))
            .collect()
    }

    /// How long ago node `node`'s last liveness message arrived, if any did.
    pub fn heard_from(&self, node: NodeId) -> Option<Duration> {
        strata_record::sync::lock(&self.last_heard)
            .get(&node)
            .map(|t| t.elapsed())
    }

    /// Handles a peer's message (see the module docs).
    pub fn on_message(&self, msg: &LivenessMessage) {
        strata_record::sync::lock(&self.last_heard).insert(msg.from, Instant::now());
        let listed: HashSet<(GroupId, u64)> = msg.sleeping.iter().copied().collect();
        let sleeping_groups: HashMap<GroupId, u64> = msg.sleeping.iter().copied().collect();
        for (group, p) in self.local() {
            match p.sleep_state() {
                SleepState::FollowerAsleep { leader, term }
                    if leader == msg.from && !listed.contains(&(group, term)) =>
                {
                    p.wake_follower();
                }
                SleepState::Awake => {
                    if let Some(term) = sleeping_groups.get(&group) {
                        p.follow_asleep(msg.from, *term);
                    }
                }
                _ => {}
            }
        }
    }

    /// One tick: sleep idle groups, build the message, wake followers of silent leaders.
    /// Returns the message and the peers to send it to.
    pub fn tick(&self) -> (LivenessMessage, BTreeMap<NodeId, String>) {
        let idle = Duration::from_millis(self.config.idle_ms);
        let silence = Duration::from_millis(self.config.silence_ms);
        let mut sleeping = Vec::new();
        let mut peers = BTreeMap::new();
        let heard = strata_record::sync::lock(&self.last_heard).clone();
        for (group, p) in self.local() {
            if let Some(term) = p.hibernate_if_idle(idle) {
                sleeping.push((group, term));
            }
            p.with_metrics(|m| {
                for (id, node) in m.membership_config.membership().nodes() {
                    if *id != self.me && !peers.contains_key(id) {
                        peers.insert(*id, node.addr.clone());
                    }
                }
            });
            if let SleepState::FollowerAsleep { leader, .. } = p.sleep_state() {
                let silent = heard.get(&leader).is_none_or(|t| t.elapsed() > silence);
                if silent {
                    p.wake_follower();
                }
            }
        }
        sleeping.sort_unstable();
        (
            LivenessMessage {
                from: self.me,
                sleeping,
            },
            peers,
        )
    }

    /// Follower replicas whose leader's node has been silent (no liveness message) for
    /// `silence` although it was heard before, and whose turn it is to stand for election (see
    /// the module docs, step 4, and `stands_now`).
    pub fn orphaned(&self) -> Vec<Arc<Partition>> {
        // Openraft does nothing before its leader lease ends, so turns counted from `silence`
        // alone would all fall due at once when the lease is longer: count them from the end
        // of whichever is later.
        let first = Duration::from_millis(self.config.silence_ms.max(self.config.lease_ms));
        let tick = Duration::from_millis(self.config.interval_ms);
        let heard = strata_record::sync::lock(&self.last_heard).clone();
        self.local()
            .into_iter()
            .filter(|(_, p)| {
                p.with_metrics(|m| {
                    m.state == openraft::ServerState::Follower
                        && m.current_leader.is_some_and(|leader| {
                            let voters = m.membership_config.membership();
                            let others = voters.voter_ids().filter(|v| *v != leader);
                            let (rank, candidates) = others.fold((0u32, 0u32), |(r, n), v| {
                                (r + u32::from(v < self.me), n + 1)
                            });
                            leader != self.me
                                && heard.get(&leader).is_some_and(|t| {
                                    stands_now(t.elapsed(), first, tick, rank, candidates)
                                })
                        })
                })
            })
            .map(|(_, p)| p)
            .collect()
    }

    /// Runs the ticker until `shutdown` resolves.
    pub async fn run(
        self: Arc<Self>,
        sender: Arc<dyn LivenessSender>,
        shutdown: impl Future<Output = ()>,
    ) {
        let mut interval = tokio::time::interval(Duration::from_millis(self.config.interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = &mut shutdown => return,
            }
            let (msg, peers) = self.tick();
            for (peer, addr) in peers {
                let send = sender.send(peer, &addr, msg.clone());
                tokio::spawn(async move {
                    let _ = send.await;
                });
            }
            for p in self.orphaned() {
                tokio::spawn(async move {
                    let _ = p.elect().await;
                });
            }
        }
    }
}

/// Whether the voter of rank `rank` (its place by node id among the `candidates` voters other
/// than the silent leader) stands for election `elapsed` after the leader was last heard,
/// counting turns from `first`.
///
/// Time after `first` is cut into windows of one `tick`, taken by the candidates in turn,
/// round after round: rank 0 owns windows 0, n, 2n, ..., rank 1 windows 1, n + 1, ..., for
/// `n` candidates. Each node's ticker fires about once per window, so two candidates never
/// stand in the same tick: two candidates asking at once split the vote, and both then wait
/// out a whole randomized election timeout (the multi-process drill saw a successor after
/// 5.5 s when both voters stood every tick once their turns had come). A candidate that is
/// refused (a longer log elsewhere, or its own lease still running) or is down just loses its
/// window; the next candidate stands one tick later.
pub(crate) fn stands_now(
    elapsed: Duration,
    first: Duration,
    tick: Duration,
    rank: u32,
    candidates: u32,
) -> bool {
    if elapsed <= first || candidates == 0 || tick.is_zero() {
        return false;
    }
    let window = (elapsed - first).as_millis() / tick.as_millis().max(1);
    window % u128::from(candidates) == u128::from(rank % candidates)
}

#[cfg(test)]
mod tests {
    use super::stands_now;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// No voter stands before the turns begin; after, the windows go round the candidates and
    /// exactly one candidate owns each window.
    #[test]
    fn voters_stand_in_turn_one_window_each() {
        let (first, tick) = (ms(3_000), ms(300));
        for candidates in 1..=4u32 {
            for rank in 0..candidates {
                assert!(!stands_now(ms(0), first, tick, rank, candidates));
                assert!(!stands_now(first, first, tick, rank, candidates));
            }
            for at in (3_001..9_000).step_by(37) {
                let standing: Vec<u32> = (0..candidates)
                    .filter(|r| stands_now(ms(at), first, tick, *r, candidates))
                    .collect();
                assert_eq!(standing.len(), 1, "one candidate per window (at {at} ms)");
                let window = (at - 3_000) / 300;
                assert_eq!(standing[0] as u64, window % candidates as u64);
            }
        }
        // Two candidates: the first stands right after the lease, the second a tick later,
        // then the first again, never both.
        assert!(stands_now(ms(3_100), first, tick, 0, 2));
        assert!(!stands_now(ms(3_100), first, tick, 1, 2));
        assert!(stands_now(ms(3_400), first, tick, 1, 2));
        assert!(stands_now(ms(3_700), first, tick, 0, 2));
        assert!(!stands_now(ms(3_700), first, tick, 1, 2));
        // No candidates (this node is not a voter) or no tick: never.
        assert!(!stands_now(ms(5_000), first, tick, 0, 0));
        assert!(!stands_now(ms(5_000), first, ms(0), 0, 1));
    }
}
