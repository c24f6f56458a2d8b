//! [`Admin`]: topic and cluster operations. Any node accepts them (changes are forwarded to
//! the controller); unavailable nodes and a controller without a leader are retried with
//! backoff, trying the other nodes, within the request timeout.
//!
//! A create or delete retried after a lost answer may find its own earlier attempt applied:
//! it then reports [`Error::TopicExists`] or [`Error::UnknownTopic`].

use std::collections::BTreeMap;
use std::future::Future;

use strata_proto::v1 as pb;
use strata_proto::v1::admin_client::AdminClient;
use tonic::transport::Channel;

use crate::client::{self, Client, RetryPolicy};
use crate::error::Error;
use crate::model::{ClusterStatus, TopicDescription};

/// First wait before retrying an admin request.
const BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);
/// Longest wait between retries of an admin request.
const BACKOFF_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Topic and cluster administration; made by [`Client::admin`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Admin {
        Admin { client }
    }

    /// Sends a request built by `op` to any node, with retries.
    async fn call<T, F, Fut>(&self, op: F) -> Result<T, Error>
    where
        F: Fn(AdminClient<Channel>, std::time::Duration) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        let timeout = self.client.config().request_timeout;
        let policy = RetryPolicy::within(timeout, BACKOFF, BACKOFF_MAX);
        let client = &self.client;
        let op = &op;
        client
            .any_node_call(policy, |addr| async move {
                op(client.admin_stub(&addr)?, timeout).await
            })
            .await
    }

    /// Creates a topic with `partitions` partitions of `replication_factor` replicas (0: the
    /// cluster's default) and `configs` (`retention.ms`, `retention.bytes`, `segment.bytes`,
    /// `max.message.bytes`). Returns once the topic is in the cluster metadata; its partitions
    /// elect leaders shortly after (producers and consumers wait for them).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicDescription, Error> {
        let request = pb::CreateTopicRequest {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs: configs.into_iter().collect(),
        };
        let response = self
            .call(|mut stub, timeout| {
                let request = client::request(request.clone(), timeout);
                async move {
                    Client::call(timeout, "CreateTopic", stub.create_topic(request)).await
                }
            })
            .await?;
        let topic = response.topic.ok_or_else(|| Error::Other {
            code: "InvalidResponse".into(),
            message: format!("CreateTopic({name}) answered without the topic"),
        })?;
        Ok(self.learn(topic))
    }

    /// Deletes a topic (its data is removed on every replica). Returns the deleted topic's id.
    pub async fn delete_topic(&self, name: &str) -> Result<String, Error> {
        let request = pb::DeleteTopicRequest {
            name: name.to_string(),
        };
        let response = self
            .call(|mut stub, timeout| {
                let request = client::request(request.clone(), timeout);
                async move {
                    Client::call(timeout, "DeleteTopic", stub.delete_topic(request)).await
                }
            })
            .await?;
        self.client.write_cache().remove_topic(name);
        Ok(response.topic_id)
    }

    /// Every topic, by name.
    pub async fn list_topics(&self) -> Result<Vec<TopicDescription>, Error> {
        let response = self
            .call(|mut stub, timeout| {
                let request = client::request(pb::ListTopicsRequest {}, timeout);
                async move { Client::call(timeout, "ListTopics", stub.list_topics(request)).await }
            })
            .await?;
        let mut topics: Vec<TopicDescription> =
            response.topics.into_iter().map(Into::into).collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(topics)
    }

    /// One topic.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, Error> {
        let request = pb::DescribeTopicRequest {
            name: name.to_string(),
        };
        let topic = self
            .call(|mut stub, timeout| {
                let request = client::request(request.clone(), timeout);
                async move {
                    Client::call(timeout, "DescribeTopic", stub.describe_topic(request)).await
                }
            })
            .await?;
        Ok(self.learn(topic))
    }

    /// Grows a topic to `partitions` partitions in all (the count only grows). Keys hash to
    /// other partitions afterwards.
    pub async fn add_partitions(
        &self,
        name: &str,
        partitions: u32,
    ) -> Result<TopicDescription, Error> {
        let request = pb::AddPartitionsRequest {
            name: name.to_string(),
            partitions,
        };
        let topic = self
            .call(|mut stub, timeout| {
                let request = client::request(request.clone(), timeout);
                async move {
                    Client::call(timeout, "AddPartitions", stub.add_partitions(request)).await
                }
            })
            .await?;
        Ok(self.learn(topic))
    }

    /// Sets the configs in `set` and returns those in `remove` to their defaults.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        remove: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<TopicDescription, Error> {
        let request = pb::AlterTopicConfigRequest {
            name: name.to_string(),
            set: set.into_iter().collect(),
            remove: remove.into_iter().map(Into::into).collect(),
        };
        let topic = self
            .call(|mut stub, timeout| {
                let request = client::request(request.clone(), timeout);
                async move {
                    Client::call(
                        timeout,
                        "AlterTopicConfig",
                        stub.alter_topic_config(request),
                    )
                    .await
                }
            })
            .await?;
        Ok(self.learn(topic))
    }

    /// Cluster health: nodes, controller, leaderless and under-replicated partitions.
    pub async fn cluster_status(&self) -> Result<ClusterStatus, Error> {
        let response = self
            .call(|mut stub, timeout| {
                let request = client::request(pb::ClusterStatusRequest {}, timeout);
                async move {
                    Client::call(timeout, "ClusterStatus", stub.cluster_status(request)).await
                }
            })
            .await?;
        Ok(response.into())
    }

    /// Moves replicas so every active node holds an even share. Returns the moves started.
    pub async fn rebalance(&self) -> Result<u32, Error> {
        let response = self
            .call(|mut stub, timeout| {
                let request = client::request(pb::RebalanceRequest {}, timeout);
                async move { Client::call(timeout, "Rebalance", stub.rebalance(request)).await }
            })
            .await?;
        Ok(response.moves)
    }

    /// Moves every replica off node `node_id` (it may be stopped once none is left). Returns
    /// the moves started.
    pub async fn decommission(&self, node_id: u64) -> Result<u32, Error> {
        let response = self
            .call(|mut stub, timeout| {
                let request = client::request(pb::DecommissionRequest { node_id }, timeout);
                async move {
                    Client::call(timeout, "Decommission", stub.decommission(request)).await
                }
            })
            .await?;
        Ok(response.moves)
    }

    /// Converts `topic` and puts it in the client's metadata cache.
    fn learn(&self, topic: pb::TopicInfo) -> TopicDescription {
        let topic = TopicDescription::from(topic);
        self.client.write_cache().merge_topic(
            &topic.name,
            topic.partitions.iter().map(|p| (p.partition, p.leader_id)),
        );
        topic
    }
}
