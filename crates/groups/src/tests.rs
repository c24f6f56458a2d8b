//! The group protocol run against the state machine alone: members join, heartbeat, release
//! and leave; after every applied command no partition has two holders.

use crate::error::GroupError;
use crate::model::{Subscription, TopicPartition};
use crate::plan::{self, Assignment, Heartbeat, JOIN_EPOCH, LEAVE_EPOCH, Topics};
use crate::state::{Command, CommitEntry, GroupsState};
use std::collections::{BTreeMap, BTreeSet};

const G: &str = "g";

struct Sim {
    state: GroupsState,
    topics: Topics,
    next_id: u32,
    /// What each member holds, as the member sees it (its last answer).
    holding: BTreeMap<String, (i64, BTreeSet<TopicPartition>)>,
    /// Partitions moved between members (for the sticky check).
    moves: usize,
}

impl Sim {
    fn new(partitions: u32) -> Sim {
        let mut topics = Topics::default();
        topics
            .by_name
            .insert("t".into(), ("tid".into(), partitions));
        Sim {
            state: GroupsState::default(),
            topics,
            next_id: 0,
            holding: BTreeMap::new(),
            moves: 0,
        }
    }

    fn apply(&mut self, cmd: &Command) -> Result<(), GroupError> {
        let r = self.state.apply(cmd);
        if let Some(g) = self.state.groups.get(G) {
            assert_eq!(g.doubly_owned(), None, "a partition with two holders");
        }
        r
    }

    fn send(&mut self, req: &Heartbeat) -> Result<Assignment, GroupError> {
        self.next_id += 1;
        let id = format!("m{}", self.next_id);
        let plan = plan::heartbeat(&self.state, req, &self.topics, &id, 3000)?;
        if let Some(cmd) = &plan.command {
            self.apply(cmd)?;
        }
        Ok(plan.answer)
    }

    fn join(&mut self) -> String {
        let a = self
            .send(&Heartbeat {
                group: G.into(),
                member_epoch: JOIN_EPOCH,
                subscription: Some(Subscription {
                    topics: ["t".to_string()].into(),
                    pattern: None,
                }),
                ..Heartbeat::default()
            })
            .expect("join");
        self.holding
            .insert(a.member_id.clone(), (a.member_epoch, a.partitions.clone()));
        a.member_id
    }

    /// One heartbeat of `id`, reporting what it holds; it then holds what the answer lists.
    fn beat(&mut self, id: &str) -> Result<Assignment, GroupError> {
        let (epoch, held) = self.holding[id].clone();
        let a = self.send(&Heartbeat {
            group: G.into(),
            member_id: id.into(),
            member_epoch: epoch,
            owned: Some(held.iter().cloned().collect()),
            ..Heartbeat::default()
        })?;
        let lost = held.difference(&a.partitions).count();
        self.moves += lost;
        self.holding
            .insert(id.to_string(), (a.member_epoch, a.partitions.clone()));
        Ok(a)
    }

    /// Heartbeats every member until the group is stable.
    fn settle(&mut self) {
        for _ in 0..20 {
            let ids: Vec<String> = self.holding.keys().cloned().collect();
            for id in ids {
                self.beat(&id).expect("heartbeat");
            }
            let g = &self.state.groups[G];
            if g.members.values().all(|m| m.owned == m.target) {
                return;
            }
        }
        panic!("group did not settle");
    }

    fn counts(&self) -> Vec<usize> {
        self.state.groups[G]
            .members
            .values()
            .map(|m| m.owned.len())
            .collect()
    }
}

#[test]
fn three_members_share_twelve_partitions_and_a_fourth_takes_only_its_share() {
    let mut sim = Sim::new(12);
    for _ in 0..3 {
        sim.join();
    }
    sim.settle();
    assert_eq!(sim.counts(), vec![4, 4, 4]);
    let before = sim.moves;
    sim.join();
    sim.settle();
    assert_eq!(sim.counts(), vec![3, 3, 3, 3]);
    assert_eq!(sim.moves - before, 3, "only the newcomer's share moved");
}

#[test]
fn a_member_that_leaves_frees_its_partitions_for_the_others() {
    let mut sim = Sim::new(12);
    let a = sim.join();
    sim.join();
    sim.settle();
    let epoch = sim.holding[&a].0;
    sim.send(&Heartbeat {
        group: G.into(),
        member_id: a.clone(),
        member_epoch: LEAVE_EPOCH,
        ..Heartbeat::default()
    })
    .expect("leave");
    assert!(epoch > 0);
    sim.holding.remove(&a);
    sim.settle();
    assert_eq!(sim.counts(), vec![12]);
}

#[test]
fn commits_are_fenced_by_member_epoch_and_ownership_and_never_go_back() {
    let mut sim = Sim::new(2);
    let a = sim.join();
    sim.settle();
    let (epoch, held) = sim.holding[&a].clone();
    let tp = held.iter().next().cloned().expect("a partition");
    let commit = |member: &str, epoch: i64, offset: i64| Command::Commit {
        group: G.into(),
        member_id: member.into(),
        member_epoch: epoch as u64,
        offsets: vec![CommitEntry {
            tp: tp.clone(),
            offset,
            metadata: String::new(),
        }],
        now_ms: 1,
    };
    sim.apply(&commit(&a, epoch, 10)).expect("commit");
    assert!(matches!(
        sim.apply(&commit(&a, epoch, 9)),
        Err(GroupError::OffsetBehind { committed: 10, .. })
    ));
    assert!(matches!(
        sim.apply(&commit(&a, epoch + 7, 11)),
        Err(GroupError::FencedMemberEpoch { .. })
    ));
    assert!(matches!(
        sim.apply(&commit("nobody", epoch, 11)),
        Err(GroupError::UnknownMember(_))
    ));
    // A group with members takes no commit from outside them.
    assert!(matches!(
        sim.apply(&commit("", 0, 11)),
        Err(GroupError::GroupNotEmpty { .. })
    ));
    // A second member takes a partition away from the first; the first can no longer
    // commit for what it gave up.
    let b = sim.join();
    sim.settle();
    let given_up: Vec<TopicPartition> = sim.state.groups[G].members[&b]
        .owned
        .iter()
        .cloned()
        .collect();
    assert_eq!(given_up.len(), 1);
    let (epoch_a, _) = sim.holding[&a].clone();
    let refused = sim.apply(&Command::Commit {
        group: G.into(),
        member_id: a.clone(),
        member_epoch: epoch_a as u64,
        offsets: vec![CommitEntry {
            tp: given_up[0].clone(),
            offset: 100,
            metadata: String::new(),
        }],
        now_ms: 2,
    });
    assert!(
        matches!(refused, Err(GroupError::NotOwned { .. })),
        "{refused:?}"
    );
    assert_eq!(sim.state.groups[G].offsets[&tp].offset, 10);
}

#[test]
fn a_removed_member_is_fenced_and_its_partitions_move() {
    let mut sim = Sim::new(4);
    let a = sim.join();
    let b = sim.join();
    sim.settle();
    let cmd = plan::remove(
        &sim.state,
        G,
        std::slice::from_ref(&a),
        "session timeout",
        &sim.topics,
    )
    .expect("a removal");
    sim.apply(&cmd).expect("remove");
    let zombie = sim.beat(&a);
    assert!(
        matches!(zombie, Err(GroupError::UnknownMember(_))),
        "{zombie:?}"
    );
    sim.holding.remove(&a);
    sim.settle();
    assert_eq!(sim.state.groups[G].members[&b].owned.len(), 4);
}

#[test]
fn reset_and_delete_need_an_empty_group_and_deleted_topics_are_forgotten() {
    let mut sim = Sim::new(1);
    let a = sim.join();
    sim.settle();
    let tp = TopicPartition::new("tid", 0);
    let reset = Command::Reset {
        group: G.into(),
        offsets: vec![(tp.clone(), 0)],
        now_ms: 1,
    };
    assert!(matches!(
        sim.apply(&reset),
        Err(GroupError::GroupNotEmpty { members: 1, .. })
    ));
    assert!(matches!(
        sim.apply(&Command::Delete { group: G.into() }),
        Err(GroupError::GroupNotEmpty { .. })
    ));
    let epoch = sim.holding[&a].0;
    sim.send(&Heartbeat {
        group: G.into(),
        member_id: a,
        member_epoch: LEAVE_EPOCH,
        ..Heartbeat::default()
    })
    .expect("leave");
    sim.apply(&Command::Commit {
        group: G.into(),
        member_id: String::new(),
        member_epoch: 0,
        offsets: vec![CommitEntry {
            tp: tp.clone(),
            offset: 5,
            metadata: "m".into(),
        }],
        now_ms: 1,
    })
    .expect("a commit from outside an empty group");
    sim.apply(&reset).expect("reset of an empty group");
    assert_eq!(sim.state.groups[G].offsets[&tp].offset, 0);
    assert!(epoch > 0);
    sim.apply(&Command::DropTopic {
        topic_id: "tid".into(),
    })
    .expect("drop");
    assert!(
        !sim.state.groups.contains_key(G),
        "an empty group without offsets goes"
    );
}

#[test]
fn bad_requests_are_refused_with_a_reason_and_change_nothing() {
    let mut sim = Sim::new(1);
    let long = "x".repeat(300);
    for name in ["", long.as_str()] {
        let r = sim.send(&Heartbeat {
            group: name.into(),
            member_epoch: JOIN_EPOCH,
            subscription: Some(Subscription {
                topics: ["t".to_string()].into(),
                pattern: None,
            }),
            ..Heartbeat::default()
        });
        assert!(matches!(r, Err(GroupError::InvalidName(_))), "{r:?}");
    }
    let r = sim.send(&Heartbeat {
        group: G.into(),
        member_epoch: JOIN_EPOCH,
        subscription: Some(Subscription::default()),
        ..Heartbeat::default()
    });
    assert!(matches!(r, Err(GroupError::InvalidRequest(_))), "{r:?}");
    let r = sim.send(&Heartbeat {
        group: G.into(),
        member_id: "ghost".into(),
        member_epoch: 3,
        ..Heartbeat::default()
    });
    assert!(matches!(r, Err(GroupError::UnknownMember(_))), "{r:?}");
    let r = sim.apply(&Command::Commit {
        group: G.into(),
        member_id: String::new(),
        member_epoch: 0,
        offsets: vec![CommitEntry {
            tp: TopicPartition::new("tid", 0),
            offset: -4,
            metadata: String::new(),
        }],
        now_ms: 1,
    });
    assert!(matches!(r, Err(GroupError::InvalidOffset { .. })), "{r:?}");
    assert!(sim.state.groups.is_empty(), "nothing written");
}

#[test]
fn a_pattern_subscription_picks_up_new_topics() {
    let mut sim = Sim::new(0);
    sim.topics.by_name.clear();
    sim.topics
        .by_name
        .insert("orders.eu".into(), ("e".into(), 2));
    let a = sim
        .send(&Heartbeat {
            group: G.into(),
            member_epoch: JOIN_EPOCH,
            subscription: Some(Subscription {
                topics: BTreeSet::new(),
                pattern: Some("orders.*".into()),
            }),
            ..Heartbeat::default()
        })
        .expect("join");
    assert_eq!(a.partitions.len(), 2);
    sim.holding
        .insert(a.member_id.clone(), (a.member_epoch, a.partitions));
    sim.topics
        .by_name
        .insert("orders.us".into(), ("u".into(), 3));
    sim.topics.by_name.insert("other".into(), ("o".into(), 3));
    let a = sim.beat(&a.member_id).expect("heartbeat");
    assert_eq!(a.partitions.len(), 5);
    sim.topics.by_name.remove("orders.eu");
    let a = sim.beat(&a.member_id).expect("heartbeat");
    assert_eq!(
        a.partitions.len(),
        3,
        "a deleted topic leaves the assignment"
    );
}

#[test]
fn a_heartbeat_before_the_member_acted_on_its_answer_changes_nothing() {
    let mut sim = Sim::new(4);
    let a = sim.join();
    sim.settle();
    let (epoch, held) = sim.holding[&a].clone();
    assert_eq!(held.len(), 4);
    // The background heartbeat reports nothing held yet (poll has not applied the answer):
    // the partitions stay the member's, and nothing is proposed.
    let plan = plan::heartbeat(
        &sim.state,
        &Heartbeat {
            group: G.into(),
            member_id: a.clone(),
            member_epoch: epoch,
            owned: Some(Vec::new()),
            ..Heartbeat::default()
        },
        &sim.topics,
        "unused",
        3000,
    )
    .expect("heartbeat");
    assert!(plan.command.is_none(), "{:?}", plan.command);
    assert_eq!(plan.answer.partitions, held);
}
