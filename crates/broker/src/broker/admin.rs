//! The admin calls of [`Broker`]: producer ids, topics and their configs, cluster status,
//! joins, rebalancing and decommissioning, all through the controller.

use super::Broker;
use crate::error::BrokerError;
use crate::types::{ClusterStatus, JoinRequest, Joined, TopicView};
use std::collections::BTreeMap;
use strata_cluster::controller::ControllerError;
use strata_cluster::meta::{Command, NodeMeta, NodeState, Outcome, Refusal, TopicConfig};

fn parse_configs(
    base: TopicConfig,
    kv: &BTreeMap<String, String>,
) -> Result<TopicConfig, BrokerError> {
    let mut c = base;
    for (k, v) in kv {
        c.set(k, v)
            .map_err(|e| BrokerError::invalid(format!("configs[{k}]"), e))?;
    }
    Ok(c)
}

impl Broker {
    async fn propose(&self, cmd: &Command) -> Result<Outcome, BrokerError> {
        self.controller
            .propose(cmd, self.config.admin_patience)
            .await
            .map_err(|e| self.controller_error(e))
    }

    /// A new producer id (epoch 0) for an idempotent producer.
    pub async fn init_producer(&self) -> Result<(i64, i16), BrokerError> {
        match self.propose(&Command::AllocateProducerId).await? {
            Outcome::ProducerId(id) => Ok((id, 0)),
            other => Err(BrokerError::Internal(format!(
                "unexpected outcome {other:?}"
            ))),
        }
    }

    /// Creates a topic (`replication_factor` 0: the default, capped at the active nodes;
    /// `configs` over the defaults) and describes it as this node then sees it.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u32,
        configs: &BTreeMap<String, String>,
    ) -> Result<Option<TopicView>, BrokerError> {
        strata_cluster::meta::check_topic_name(name)
            .map_err(|e| BrokerError::invalid("name", e))?;
        if super::is_internal(name) {
            return Err(BrokerError::invalid(
                "name",
                format!(
                    "topic names starting with \"__\" are reserved for internal topics, got {name:?}"
                ),
            ));
        }
        let max = self.config.partitions_per_topic_max;
        if partitions == 0 {
            return Err(BrokerError::invalid(
                "partitions",
                "a topic needs at least 1 partition",
            ));
        }
        if partitions > max {
            return Err(BrokerError::LimitExceeded {
                limit: "partitions_per_topic_max",
                max,
                value: partitions,
            });
        }
        let active = self.meta().active_nodes().len() as u32;
        let rf = if replication_factor == 0 {
            self.config.default_replication_factor.min(active.max(1))
        } else {
            replication_factor
        };
        let config = parse_configs(self.config.topic_defaults.clone(), configs)?;
        let id = uuid::Uuid::new_v4().to_string();
        let cmd = Command::CreateTopic {
            name: name.to_string(),
            id: id.clone(),
            partitions,
            replication_factor: rf,
            config,
        };
        match self
            .controller
            .propose(&cmd, self.config.admin_patience)
            .await
        {
            Ok(_) => {}
            // A retry of our own creation after an indeterminate outcome.
            Err(ControllerError::Refused(Refusal::TopicExists(_)))
                if self.meta().topics.get(name).is_some_and(|t| t.id == id) => {}
            Err(e) => return Err(self.controller_error(e)),
        }
        Ok(self.topic_view(&self.meta(), name))
    }

    /// Deletes a topic (by the id it has now, so a retry never deletes a topic recreated
    /// under the same name); returns that id.
    pub async fn delete_topic(&self, name: &str) -> Result<String, BrokerError> {
        if super::is_internal(name) {
            return Err(BrokerError::invalid(
                "name",
                format!("{name:?} is an internal topic; it cannot be deleted"),
            ));
        }
        let id = self
            .meta()
            .topics
            .get(name)
            .map(|t| t.id.clone())
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            })?;
        let cmd = Command::DeleteTopic {
            name: name.to_string(),
            id: Some(id.clone()),
        };
        match self
            .controller
            .propose(&cmd, self.config.admin_patience)
            .await
        {
            Ok(_) => {}
            Err(ControllerError::Refused(Refusal::UnknownTopic(_)))
                if self.meta().deleted_topics.contains(&id) => {}
            Err(e) => return Err(self.controller_error(e)),
        }
        Ok(id)
    }

    /// Every topic.
    pub fn list_topics(&self) -> Vec<TopicView> {
        let meta = self.meta();
        meta.topics
            .keys()
            .filter_map(|n| self.topic_view(&meta, n))
            .collect()
    }

    /// One topic.
    pub fn describe_topic(&self, name: &str) -> Result<TopicView, BrokerError> {
        self.topic_view(&self.meta(), name)
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            })
    }

    /// Grows a topic to `partitions` partitions.
    pub async fn add_partitions(
        &self,
        name: &str,
        partitions: u32,
    ) -> Result<TopicView, BrokerError> {
        let max = self.config.partitions_per_topic_max;
        if partitions > max {
            return Err(BrokerError::LimitExceeded {
                limit: "partitions_per_topic_max",
                max,
                value: partitions,
            });
        }
        let cmd = Command::AddPartitions {
            name: name.to_string(),
            partitions,
        };
        self.change_then_describe(&cmd, name).await
    }

    /// Sets topic configs, and returns those in `remove` to their defaults.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<TopicView, BrokerError> {
        let current = self
            .meta()
            .topics
            .get(name)
            .map(|t| t.config.clone())
            .ok_or_else(|| BrokerError::UnknownTopic {
                topic: name.to_string(),
            })?;
        let defaults = self.config.topic_defaults.to_map();
        let mut config = current;
        for k in remove {
            let v = defaults.get(k).ok_or_else(|| {
                BrokerError::invalid(format!("remove[{k}]"), "unknown topic config")
            })?;
            config
                .set(k, v)
                .map_err(|e| BrokerError::invalid(format!("remove[{k}]"), e))?;
        }
        let config = parse_configs(config, set)?;
        let cmd = Command::SetTopicConfig {
            name: name.to_string(),
            config,
        };
        self.change_then_describe(&cmd, name).await
    }

    /// Applies a topic change through the controller and describes the topic as this node
    /// then sees it (the controller answers once this node applied the change).
    async fn change_then_describe(
        &self,
        cmd: &Command,
        name: &str,
    ) -> Result<TopicView, BrokerError> {
        self.propose(cmd).await?;
        self.describe_topic(name)
    }

    /// `cluster status`: nodes and health.
    pub fn cluster_status(&self) -> ClusterStatus {
        let meta = self.meta();
        ClusterStatus {
            cluster_id: self.cluster_id.clone(),
            nodes: self.nodes(&meta),
            health: self.health(&meta),
        }
    }

    /// Admits a new node: gives it an id and the controller's members to follow.
    pub async fn join_node(&self, req: JoinRequest) -> Result<Joined, BrokerError> {
        if req.incarnation == 0 {
            return Err(BrokerError::invalid("incarnation", "must not be 0"));
        }
        for (field, v) in [
            ("client_addr", &req.client_addr),
            ("peer_addr", &req.peer_addr),
        ] {
            if v.parse::<std::net::SocketAddr>().is_err() && !v.contains(':') {
                return Err(BrokerError::invalid(
                    field,
                    format!("{v:?} is not HOST:PORT"),
                ));
            }
        }
        let cmd = Command::JoinNode {
            meta: NodeMeta {
                incarnation: req.incarnation,
                client_addr: req.client_addr,
                peer_addr: req.peer_addr,
                http_addr: req.http_addr,
                kafka_addr: String::new(),
                state: NodeState::Active,
                boot: 0,
            },
        };
        let o = self.propose(&cmd).await?;
        let Outcome::NodeId(node_id) = o else {
            return Err(BrokerError::Internal(format!("unexpected outcome {o:?}")));
        };
        let controller_voters = self
            .controller
            .partition()
            .map(|p| p.status().members.into_iter().collect())
            .unwrap_or_default();
        Ok(Joined {
            cluster_id: self.cluster_id.clone(),
            node_id,
            controller_voters,
        })
    }

    /// Starts the replica moves that even out the load; returns how many started.
    pub async fn rebalance(&self) -> Result<u32, BrokerError> {
        let plan = self.meta().plan_rebalance();
        let mut started = 0;
        for (topic, partition, target) in plan {
            let cmd = Command::StartMove {
                topic,
                partition,
                target,
            };
            match self
                .controller
                .propose(&cmd, self.config.admin_patience)
                .await
            {
                Ok(_) => started += 1,
                Err(ControllerError::Refused(r)) => {
                    tracing::info!(reason = %r, "move not started");
                }
                Err(e) => return Err(self.controller_error(e)),
            }
        }
        Ok(started)
    }

    /// Marks a node for removal and starts moving its replicas away; returns how many moves
    /// started.
    pub async fn decommission(&self, node_id: u64) -> Result<u32, BrokerError> {
        self.propose(&Command::Decommission { node_id }).await?;
        self.rebalance().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Topic configs are applied over the defaults; an unknown key or a bad value names the
    /// config.
    #[test]
    fn configs_apply_over_defaults_and_name_bad_keys() {
        let base = TopicConfig::default();
        let set = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let c = parse_configs(base.clone(), &set).expect("valid");
        assert_eq!(c.retention_ms, 1000);
        let bad = BTreeMap::from([("no.such".to_string(), "1".to_string())]);
        assert!(matches!(
            parse_configs(base, &bad),
            Err(BrokerError::InvalidArgument { field, .. }) if field == "configs[no.such]"
        ));
    }
}
