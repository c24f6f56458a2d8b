//! The replicated group state: [`Group`], its [`Member`]s and committed offsets.
//!
//! Partitions are named by topic id, not name, so the offsets of a deleted topic are never
//! read back by a new topic of the same name.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A partition of a topic, by the topic's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic's id (never reused).
    pub topic_id: String,
    /// The partition number.
    pub partition: u32,
}

impl TopicPartition {
    /// `topic_id`'s partition `partition`.
    pub fn new(topic_id: impl Into<String>, partition: u32) -> TopicPartition {
        TopicPartition {
            topic_id: topic_id.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.topic_id, self.partition)
    }
}

/// What a member reads: topics by name, and a subject pattern (`orders.*` matches exactly
/// one more token, `orders.>` one or more). Topics and the pattern's matches together.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Topic names.
    pub topics: BTreeSet<String>,
    /// A subject pattern over topic names, if any.
    pub pattern: Option<String>,
}

/// A group member's Kafka-classic protocol data (JoinGroup/SyncGroup members, whose
/// assignment a client-side leader computes). Native members have none. Kept so that the
/// Kafka listener drives the same coordinator and state, never a second one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassicMember {
    /// The protocols the member supports, by name, with its opaque metadata for each.
    pub protocols: Vec<(String, Vec<u8>)>,
    /// The assignment bytes the group leader computed for it (SyncGroup).
    pub assignment: Vec<u8>,
}

/// One member of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its id (the coordinator picks it at the first join).
    pub id: String,
    /// Its epoch: the group epoch at which its partitions last changed. A request carrying
    /// another epoch (other than [`Member::previous_epoch`], whose answer may have been lost)
    /// is fenced.
    pub epoch: u64,
    /// The epoch before the last change.
    pub previous_epoch: u64,
    /// The client's id, as the client named itself.
    pub client_id: String,
    /// The client's address, as the coordinator saw it.
    pub host: String,
    /// What it reads.
    pub subscription: Subscription,
    /// The assignor it asked for (`sticky`, `range`, `roundrobin`).
    pub assignor: String,
    /// Removed when not heard from for this long.
    pub session_timeout_ms: u32,
    /// Removed when it holds a partition it must give up for longer than this.
    pub rebalance_timeout_ms: u32,
    /// How often it heartbeats (0: as the coordinator's node says).
    #[serde(default)]
    pub heartbeat_interval_ms: u32,
    /// The partitions it holds. A partition is held by at most one member of a group; it is
    /// handed to another only after this member released it or was removed.
    pub owned: BTreeSet<TopicPartition>,
    /// The partitions the assignor gives it.
    pub target: BTreeSet<TopicPartition>,
    /// Kafka-classic protocol data, for members that joined through the Kafka listener.
    pub classic: Option<ClassicMember>,
}

/// An offset a group committed for a partition: the next offset to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    /// The next offset to read.
    pub offset: i64,
    /// The client's metadata string.
    pub metadata: String,
    /// When the coordinator accepted it (milliseconds since the epoch, the leader's clock).
    pub commit_ms: u64,
}

/// A consumer group.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Bumped on every change of members, subscriptions or assignment.
    pub epoch: u64,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// Committed offsets.
    #[serde(with = "offsets_as_list")]
    pub offsets: BTreeMap<TopicPartition, Committed>,
    /// For a Kafka-classic group: the protocol type (`consumer`) and the chosen protocol.
    pub classic_protocol: Option<(String, String)>,
}

impl Group {
    /// The member holding `tp`, if any.
    pub fn owner(&self, tp: &TopicPartition) -> Option<&Member> {
        self.members.values().find(|m| m.owned.contains(tp))
    }

    /// Whether the group has no members.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The first partition held by two members, if any (an invariant violation).
    pub fn doubly_owned(&self) -> Option<TopicPartition> {
        let mut seen = BTreeSet::new();
        self.members
            .values()
            .flat_map(|m| m.owned.iter())
            .find(|tp| !seen.insert(*tp))
            .cloned()
    }
}

/// JSON maps need string keys; offsets are written as a list of pairs.
mod offsets_as_list {
    use super::{Committed, TopicPartition};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<TopicPartition, Committed>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let list: Vec<(&TopicPartition, &Committed)> = map.iter().collect();
        list.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<TopicPartition, Committed>, D::Error> {
        let list: Vec<(TopicPartition, Committed)> = Vec::deserialize(d)?;
        Ok(list.into_iter().collect())
    }
}

pub use strata_record::subject::{check as check_pattern, matches as subject_matches};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_survive_json() {
        let mut g = Group::default();
        g.offsets.insert(
            TopicPartition::new("t1", 3),
            Committed {
                offset: 42,
                metadata: "m".into(),
                commit_ms: 7,
            },
        );
        let bytes = serde_json::to_vec(&g).expect("encode");
        let back: Group = serde_json::from_slice(&bytes).expect("decode");
        assert_eq!(back, g);
    }
}
