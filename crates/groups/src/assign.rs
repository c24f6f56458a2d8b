//! Server-side assignors: which member of a group should hold which partition.
//!
//! Every assignor is a pure function of the members (each with the partitions it may take,
//! from its subscription, and what it was given before) and is deterministic: members and
//! partitions are visited in sorted order. Each gives every eligible partition to exactly one
//! member that subscribes to it.
//!
//! - `sticky` (the default): keeps every partition where it was while the balance allows, and
//!   moves only what must move for no member to hold two more than another eligible one.
//! - `range`: per topic, contiguous ranges of partitions, the first members taking one more.
//! - `roundrobin`: all partitions in order, dealt to the members in turn.

use crate::model::TopicPartition;
use std::collections::{BTreeMap, BTreeSet};

/// The assignors, by name.
pub const ASSIGNORS: &[&str] = &["sticky", "range", "roundrobin"];

/// The assignor of a group whose members name none.
pub const DEFAULT_ASSIGNOR: &str = "sticky";

/// One member, as an assignor sees it.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    /// The partitions it may take (its subscription, resolved).
    pub eligible: BTreeSet<TopicPartition>,
    /// What it was given before.
    pub previous: BTreeSet<TopicPartition>,
}

/// Targets by member id.
pub type Targets = BTreeMap<String, BTreeSet<TopicPartition>>;

/// Assigns with the named assignor (an unknown name uses the default).
pub fn assign(assignor: &str, members: &BTreeMap<String, Candidate>) -> Targets {
    match assignor {
        "range" => range(members),
        "roundrobin" => round_robin(members),
        _ => sticky(members),
    }
}

fn all_partitions(members: &BTreeMap<String, Candidate>) -> BTreeSet<TopicPartition> {
    members
        .values()
        .flat_map(|c| c.eligible.iter().cloned())
        .collect()
}

fn empty_targets(members: &BTreeMap<String, Candidate>) -> Targets {
    members
        .keys()
        .map(|id| (id.clone(), BTreeSet::new()))
        .collect()
}

/// Kafka's range assignor: per topic, members that subscribe to it in id order take
/// contiguous ranges.
pub fn range(members: &BTreeMap<String, Candidate>) -> Targets {
    let mut out = empty_targets(members);
    let mut by_topic: BTreeMap<&str, Vec<&TopicPartition>> = BTreeMap::new();
    let all = all_partitions(members);
    for tp in &all {
        by_topic.entry(&tp.topic_id).or_default().push(tp);
    }
    for (topic, parts) in by_topic {
        let takers: Vec<&String> = members
            .iter()
            .filter(|(_, c)| c.eligible.iter().any(|tp| tp.topic_id == topic))
            .map(|(id, _)| id)
            .collect();
        if takers.is_empty() {
            continue;
        }
        let per = parts.len() / takers.len();
        let extra = parts.len() % takers.len();
        let mut next = 0;
        for (i, id) in takers.iter().enumerate() {
            let n = per + usize::from(i < extra);
            for tp in &parts[next..next + n] {
                if let Some(set) = out.get_mut(*id) {
                    set.insert((*tp).clone());
                }
            }
            next += n;
        }
    }
    out
}

/// Round-robin: every partition in order to the next member (in id order) that may take it.
pub fn round_robin(members: &BTreeMap<String, Candidate>) -> Targets {
    let mut out = empty_targets(members);
    let ids: Vec<&String> = members.keys().collect();
    if ids.is_empty() {
        return out;
    }
    let mut turn = 0;
    for tp in all_partitions(members) {
        for k in 0..ids.len() {
            let id = ids[(turn + k) % ids.len()];
            if members[id].eligible.contains(&tp) {
                if let Some(set) = out.get_mut(id) {
                    set.insert(tp.clone());
                }
                turn = (turn + k + 1) % ids.len();
                break;
            }
        }
    }
    out
}

/// Sticky: previous holders keep their partitions; unassigned partitions go to the eligible
/// member holding the fewest; then, while a member holds two more than another member
/// eligible for one of its partitions, that partition moves from the most loaded member to
/// the least loaded one.
pub fn sticky(members: &BTreeMap<String, Candidate>) -> Targets {
    let mut out = empty_targets(members);
    let mut placed = BTreeSet::new();
    for (id, c) in members {
        for tp in c.previous.intersection(&c.eligible) {
            if placed.insert(tp.clone())
                && let Some(set) = out.get_mut(id)
            {
                set.insert(tp.clone());
            }
        }
    }
    for tp in all_partitions(members) {
        if placed.contains(&tp) {
            continue;
        }
        let best = members
            .iter()
            .filter(|(_, c)| c.eligible.contains(&tp))
            .min_by_key(|(id, _)| (out[*id].len(), (*id).clone()))
            .map(|(id, _)| id.clone());
        if let Some(id) = best
            && let Some(set) = out.get_mut(&id)
        {
            set.insert(tp.clone());
            placed.insert(tp);
        }
    }
    // Balance: each move lowers the sum of squared counts, so this ends.
    loop {
        let mut moved = false;
        let ids: Vec<String> = out.keys().cloned().collect();
        // The most loaded members give first, so partitions move only towards the least
        // loaded, never back and forth between the others.
        let mut givers = ids.clone();
        givers.sort_by_key(|id| std::cmp::Reverse(out[id].len()));
        'from: for from in &givers {
            let from_len = out[from].len();
            // Move the last partition (in order) that some less loaded member may take.
            let candidates: Vec<TopicPartition> = out[from].iter().rev().cloned().collect();
            for tp in candidates {
                let to = ids
                    .iter()
                    .filter(|to| *to != from && members[*to].eligible.contains(&tp))
                    .filter(|to| out[*to].len() + 1 < from_len)
                    .min_by_key(|to| (out[*to].len(), (*to).clone()))
                    .cloned();
                if let Some(to) = to {
                    if let Some(set) = out.get_mut(from) {
                        set.remove(&tp);
                    }
                    if let Some(set) = out.get_mut(&to) {
                        set.insert(tp);
                    }
                    moved = true;
                    break 'from;
                }
            }
        }
        if !moved {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(topic: &str, n: u32) -> BTreeSet<TopicPartition> {
        (0..n).map(|p| TopicPartition::new(topic, p)).collect()
    }

    fn members(n: usize, eligible: &BTreeSet<TopicPartition>) -> BTreeMap<String, Candidate> {
        (0..n)
            .map(|i| {
                (
                    format!("m{i}"),
                    Candidate {
                        eligible: eligible.clone(),
                        previous: BTreeSet::new(),
                    },
                )
            })
            .collect()
    }

    fn check_complete(t: &Targets, all: &BTreeSet<TopicPartition>) {
        let mut seen = BTreeSet::new();
        for set in t.values() {
            for tp in set {
                assert!(seen.insert(tp.clone()), "{tp} assigned twice");
            }
        }
        assert_eq!(&seen, all, "every partition assigned");
    }

    #[test]
    fn each_assignor_assigns_every_partition_once_and_balances() {
        let all = parts("t", 12);
        for name in ASSIGNORS {
            let t = assign(name, &members(5, &all));
            check_complete(&t, &all);
            let sizes: Vec<usize> = t.values().map(|s| s.len()).collect();
            let (min, max) = (sizes.iter().min(), sizes.iter().max());
            assert!(
                max.zip(min).is_some_and(|(a, b)| a - b <= 1),
                "{name}: {sizes:?}"
            );
        }
    }

    #[test]
    fn sticky_moves_only_what_it_must_when_a_member_joins() {
        let all = parts("t", 64);
        let mut m = members(3, &all);
        let before = sticky(&m);
        for (id, set) in &before {
            if let Some(c) = m.get_mut(id) {
                c.previous = set.clone();
            }
        }
        m.insert(
            "m3".into(),
            Candidate {
                eligible: all.clone(),
                previous: BTreeSet::new(),
            },
        );
        let after = sticky(&m);
        check_complete(&after, &all);
        let moved: usize = before
            .iter()
            .map(|(id, set)| set.difference(&after[id]).count())
            .sum();
        // 64 over 4 is 16 each: the newcomer's 16 are the only moves.
        assert_eq!(moved, 16);
        assert_eq!(after["m3"].len(), 16);
    }

    #[test]
    fn members_only_get_what_they_subscribe_to() {
        let a = parts("a", 4);
        let b = parts("b", 2);
        let mut m = BTreeMap::new();
        m.insert(
            "x".to_string(),
            Candidate {
                eligible: a.clone(),
                previous: BTreeSet::new(),
            },
        );
        m.insert(
            "y".to_string(),
            Candidate {
                eligible: a.union(&b).cloned().collect(),
                previous: BTreeSet::new(),
            },
        );
        let all: BTreeSet<TopicPartition> = a.union(&b).cloned().collect();
        for name in ASSIGNORS {
            let t = assign(name, &m);
            check_complete(&t, &all);
            assert!(t["x"].iter().all(|tp| tp.topic_id == "a"), "{name}");
        }
    }
}
