//! ApiVersions, Metadata and DescribeCluster: what a client learns before anything else.
//!
//! Metadata lists the nodes that run a Kafka listener (by their advertised Kafka address),
//! each partition's leader (its Raft leader), replicas, in-sync replicas (the Raft voters
//! this node hears from) and leader epoch (the Raft term), and the controller (the
//! controller group's leader). A partition whose leader runs no Kafka listener, or is not
//! known yet, is LEADER_NOT_AVAILABLE, which clients retry.

use crate::conn::Request;
use crate::{Ctx, broker_id, host_port, versions};
use kafka_protocol::ResponseError as E;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use strata_broker::BrokerError;
use strata_broker::types::{NodeView, TopicView};

/// "Authorized operations not asked for".
const OPERATIONS_OMITTED: i32 = i32::MIN;

/// The ApiVersions answer with `error_code` and the served table.
pub fn api_versions_body(error_code: i16) -> ApiVersionsResponse {
    let mut r = ApiVersionsResponse::default();
    r.error_code = error_code;
    r.api_keys = versions::SUPPORTED
        .iter()
        .map(|(k, lo, hi)| {
            ApiVersion::default()
                .with_api_key(*k as i16)
                .with_min_version(*lo)
                .with_max_version(*hi)
        })
        .collect();
    r.finalized_features_epoch = -1;
    r
}

/// The nodes that run a Kafka listener: id to (host, port).
pub(crate) fn kafka_nodes(nodes: &[NodeView]) -> BTreeMap<u64, (String, i32)> {
    nodes
        .iter()
        .filter_map(|n| host_port(&n.kafka_addr).map(|hp| (n.node_id, hp)))
        .collect()
}

/// The controller as Kafka clients see it: the controller group's leader when it runs a
/// Kafka listener, else any node that does (admin clients send controller requests there,
/// and every node takes them), else -1.
fn controller(kafka: &BTreeMap<u64, (String, i32)>, id: u64) -> BrokerId {
    if kafka.contains_key(&id) {
        broker_id(id).into()
    } else {
        kafka
            .keys()
            .next()
            .map_or((-1).into(), |id| broker_id(*id).into())
    }
}

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A topic's UUID (nil when its id is not one).
pub(crate) fn topic_uuid(id: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(id).unwrap_or(uuid::Uuid::nil())
}

fn topic_entry(
    t: &TopicView,
    kafka: &BTreeMap<u64, (String, i32)>,
    alive: &dyn Fn(u64) -> bool,
) -> MetadataResponseTopic {
    let mut out = MetadataResponseTopic::default();
    out.name = Some(str(&t.name).into());
    out.topic_id = topic_uuid(&t.topic_id);
    out.is_internal = strata_broker::is_internal(&t.name);
    out.topic_authorized_operations = OPERATIONS_OMITTED;
    out.partitions = t
        .partitions
        .iter()
        .map(|p| {
            let mut e = MetadataResponsePartition::default();
            e.partition_index = p.partition as i32;
            let leader_known = p.leader_id != 0 && kafka.contains_key(&p.leader_id);
            e.error_code = if leader_known {
                0
            } else {
                E::LeaderNotAvailable.code()
            };
            e.leader_id = if leader_known {
                broker_id(p.leader_id).into()
            } else {
                (-1).into()
            };
            // 0 means not known here (the partition is not hosted on this node): -1, which
            // clients take as "no epoch" rather than as a stale one.
            e.leader_epoch = match p.leader_term {
                0 => -1,
                t => i32::try_from(t).unwrap_or(i32::MAX),
            };
            e.replica_nodes = p.replicas.iter().map(|id| broker_id(*id).into()).collect();
            e.isr_nodes = p
                .voters
                .iter()
                .filter(|id| alive(**id))
                .map(|id| broker_id(*id).into())
                .collect();
            e.offline_replicas = p
                .replicas
                .iter()
                .filter(|id| !alive(**id))
                .map(|id| broker_id(*id).into())
                .collect();
            e
        })
        .collect();
    out
}

fn unknown_topic(name: Option<&str>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    let mut out = MetadataResponseTopic::default();
    out.name = name.map(|n| str(n).into());
    out.topic_id = id;
    out.error_code = code;
    out.topic_authorized_operations = OPERATIONS_OMITTED;
    out
}

/// Metadata: brokers, controller, and the topics asked for (every topic when the list is
/// null, or empty in v0), creating unknown ones when both the client and the node allow it.
pub async fn metadata(ctx: &Ctx, req: &Request, r: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let all = match &r.topics {
        None => true,
        Some(t) => t.is_empty() && req.version == 0,
    };
    let mut resp = MetadataResponse::default();
    let mut m = broker.metadata(&[]);
    if !all && r.allow_auto_topic_creation && ctx.config.auto_create_topics {
        for t in r.topics.iter().flatten() {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if m.topics.iter().any(|v| v.name == name) {
                continue;
            }
            match broker
                .create_topic(&name, ctx.config.num_partitions, 0, &BTreeMap::new())
                .await
            {
                Ok(_) => tracing::info!(topic = %name, client = %req.client_id,
                    "topic created by a Kafka Metadata request (kafka_auto_create_topics)"),
                Err(BrokerError::Refused(_)) => {}
                Err(e) => tracing::info!(topic = %name, error = %e, "cannot auto-create topic"),
            }
        }
        m = broker.metadata(&[]);
    }
    let kafka = kafka_nodes(&m.nodes);
    let alive_nodes: BTreeMap<u64, bool> = m.nodes.iter().map(|n| (n.node_id, n.alive)).collect();
    let alive = |id: u64| alive_nodes.get(&id).copied().unwrap_or(false);
    resp.brokers = kafka
        .iter()
        .map(|(id, (host, port))| {
            let mut b = MetadataResponseBroker::default();
            b.node_id = broker_id(*id).into();
            b.host = str(host);
            b.port = *port;
            b
        })
        .collect();
    resp.cluster_id = Some(str(&m.cluster_id));
    resp.controller_id = controller(&kafka, m.controller_id);
    resp.cluster_authorized_operations = OPERATIONS_OMITTED;
    if all {
        resp.topics = m
            .topics
            .iter()
            .map(|t| topic_entry(t, &kafka, &alive))
            .collect();
        return resp;
    }
    for t in r.topics.iter().flatten() {
        let found = match &t.name {
            Some(name) => m.topics.iter().find(|v| v.name == name.0.as_str()),
            None => m
                .topics
                .iter()
                .find(|v| topic_uuid(&v.topic_id) == t.topic_id),
        };
        resp.topics.push(match found {
            Some(v) => topic_entry(v, &kafka, &alive),
            None => {
                let name = t.name.as_ref().map(|n| n.0.as_str());
                let code = match name {
                    Some(n) if strata_broker::types::check_topic_name(n).is_err() => {
                        E::InvalidTopicException.code()
                    }
                    Some(_) => E::UnknownTopicOrPartition.code(),
                    None => E::UnknownTopicId.code(),
                };
                unknown_topic(name, t.topic_id, code)
            }
        });
    }
    resp
}

/// DescribeCluster: the brokers (nodes with a Kafka listener), the cluster id, the
/// controller.
pub async fn describe_cluster(
    ctx: &Ctx,
    _req: &Request,
    r: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let m = ctx.broker.cluster_status();
    let kafka = kafka_nodes(&m.nodes);
    let mut resp = DescribeClusterResponse::default();
    resp.endpoint_type = r.endpoint_type;
    if r.endpoint_type != 1 {
        resp.error_code = E::UnsupportedEndpointType.code();
        resp.error_message = Some(str("only broker endpoints (type 1) are served"));
        return resp;
    }
    resp.cluster_id = str(&m.cluster_id);
    resp.controller_id = controller(&kafka, m.health.controller_id);
    resp.cluster_authorized_operations = OPERATIONS_OMITTED;
    resp.brokers = kafka
        .iter()
        .map(|(id, (host, port))| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = broker_id(*id).into();
            b.host = str(host);
            b.port = *port;
            b
        })
        .collect();
    resp
}
