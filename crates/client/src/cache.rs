//! [`MetadataCache`]: what the client knows of the cluster (node addresses, topics, partition
//! counts, leaders), replaced by each metadata refresh and patched by leader hints.

use std::collections::{BTreeMap, HashMap};

use crate::model::ClusterMetadata;

/// Where requests for one partition go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// The leader's client address.
    Leader(String),
    /// The partition exists but its leader (or the leader's address) is unknown.
    NoLeader,
    /// The topic is not in the cache.
    UnknownTopic,
    /// The topic has fewer partitions.
    UnknownPartition {
        /// How many it has.
        partitions: u32,
    },
}

/// What the client knows of one partition's leader.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Leader {
    /// The leader's node id, if known.
    id: Option<u64>,
    /// The leader's address from a hint, which wins over the node table (a hint may name a
    /// node the last refresh did not list).
    addr: Option<String>,
}

/// The metadata cache. `generation` counts full refreshes, so that a task that saw stale data
/// can tell whether someone refreshed since.
#[derive(Debug, Default)]
pub(crate) struct MetadataCache {
    generation: u64,
    /// Client address by node id.
    nodes: HashMap<u64, String>,
    /// Leaders by topic, then partition number (a map, not a vector: a partition number from
    /// the server never sizes an allocation).
    topics: HashMap<String, BTreeMap<u32, Leader>>,
}

impl MetadataCache {
    /// Full refreshes so far.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    /// Replaces everything with `metadata` (which describes every topic).
    pub(crate) fn replace(&mut self, metadata: &ClusterMetadata) {
        self.nodes = metadata
            .nodes
            .iter()
            .filter(|n| !n.client_addr.is_empty())
            .map(|n| (n.node_id, n.client_addr.clone()))
            .collect();
        self.topics.clear();
        for topic in &metadata.topics {
            self.merge_topic(
                &topic.name,
                topic.partitions.iter().map(|p| (p.partition, p.leader_id)),
            );
        }
        self.generation += 1;
    }

    /// Sets one topic's partitions and leaders, as (partition, leader id) pairs.
    pub(crate) fn merge_topic(
        &mut self,
        topic: &str,
        partitions: impl IntoIterator<Item = (u32, Option<u64>)>,
    ) {
        let leaders = partitions
            .into_iter()
            .map(|(partition, id)| (partition, Leader { id, addr: None }))
            .collect();
        self.topics.insert(topic.to_string(), leaders);
    }

    /// Forgets a topic (deleted).
    pub(crate) fn remove_topic(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// Partitions of `topic` (numbered from 0), if known.
    pub(crate) fn partition_count(&self, topic: &str) -> Option<u32> {
        self.topics.get(topic).map(count)
    }

    /// Where requests for `topic`/`partition` go.
    pub(crate) fn route(&self, topic: &str, partition: u32) -> Route {
        let Some(leaders) = self.topics.get(topic) else {
            return Route::UnknownTopic;
        };
        let Some(leader) = leaders.get(&partition) else {
            return Route::UnknownPartition {
                partitions: count(leaders),
            };
        };
        if let Some(addr) = &leader.addr {
            return Route::Leader(addr.clone());
        }
        match leader.id.and_then(|id| self.nodes.get(&id)) {
            Some(addr) => Route::Leader(addr.clone()),
            None => Route::NoLeader,
        }
    }

    /// Records a leader hint from a `NOT_LEADER` answer. The address is the leader's client
    /// address; with an id too, the node table learns it.
    pub(crate) fn follow_hint(
        &mut self,
        topic: &str,
        partition: u32,
        leader_id: Option<u64>,
        leader_addr: Option<&str>,
    ) {
        if let (Some(id), Some(addr)) = (leader_id, leader_addr) {
            self.nodes.insert(id, addr.to_string());
        }
        let Some(leader) = self
            .topics
            .get_mut(topic)
            .and_then(|leaders| leaders.get_mut(&partition))
        else {
            return;
        };
        *leader = Leader {
            id: leader_id,
            addr: leader_addr.map(str::to_string),
        };
    }

    /// Every known node's client address, by node id.
    pub(crate) fn node_addrs(&self) -> Vec<String> {
        let mut nodes: Vec<(&u64, &String)> = self.nodes.iter().collect();
        nodes.sort();
        nodes.into_iter().map(|(_, addr)| addr.clone()).collect()
    }
}

/// A topic's partition count: its partitions are numbered from 0.
fn count(leaders: &BTreeMap<u32, Leader>) -> u32 {
    u32::try_from(leaders.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NodeDescription, PartitionDescription, TopicDescription};

    fn node(node_id: u64, addr: &str) -> NodeDescription {
        NodeDescription {
            node_id,
            client_addr: addr.into(),
            peer_addr: String::new(),
            http_addr: String::new(),
            state: "ACTIVE".into(),
            alive: true,
        }
    }

    fn partition(partition: u32, leader_id: Option<u64>) -> PartitionDescription {
        PartitionDescription {
            partition,
            leader_id,
            replicas: vec![],
            voters: vec![],
            leader_term: None,
            high_watermark: None,
            group_id: 0,
        }
    }

    fn metadata() -> ClusterMetadata {
        ClusterMetadata {
            cluster_id: "c".into(),
            controller_id: Some(1),
            nodes: vec![node(1, "a:1"), node(2, "b:2")],
            topics: vec![TopicDescription {
                name: "t".into(),
                topic_id: "id".into(),
                partitions: vec![partition(0, Some(1)), partition(1, None)],
                replication_factor: 2,
                configs: Default::default(),
            }],
            unknown_topics: vec![],
        }
    }

    #[test]
    fn routes() {
        let mut cache = MetadataCache::default();
        assert_eq!(cache.route("t", 0), Route::UnknownTopic);
        cache.replace(&metadata());
        assert_eq!(cache.generation(), 1);
        assert_eq!(cache.route("t", 0), Route::Leader("a:1".into()));
        assert_eq!(cache.route("t", 1), Route::NoLeader);
        assert_eq!(
            cache.route("t", 2),
            Route::UnknownPartition { partitions: 2 }
        );
        assert_eq!(cache.partition_count("t"), Some(2));
        assert_eq!(
            cache.node_addrs(),
            vec!["a:1".to_string(), "b:2".to_string()]
        );
    }

    #[test]
    fn hints_patch_the_cache_until_the_next_refresh() {
        let mut cache = MetadataCache::default();
        cache.replace(&metadata());
        cache.follow_hint("t", 0, Some(2), Some("b:2"));
        assert_eq!(cache.route("t", 0), Route::Leader("b:2".into()));
        // A hint naming an address only.
        cache.follow_hint("t", 1, None, Some("c:3"));
        assert_eq!(cache.route("t", 1), Route::Leader("c:3".into()));
        // A hint with a new node id teaches the node table.
        cache.follow_hint("t", 0, Some(3), Some("c:3"));
        assert!(cache.node_addrs().contains(&"c:3".to_string()));
        // Hints for unknown topics are ignored.
        cache.follow_hint("u", 0, Some(2), Some("b:2"));
        assert_eq!(cache.route("u", 0), Route::UnknownTopic);
        cache.replace(&metadata());
        assert_eq!(cache.route("t", 0), Route::Leader("a:1".into()));
        assert_eq!(cache.generation(), 2);
    }
}
