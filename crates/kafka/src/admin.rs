//! CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, AlterConfigs and
//! IncrementalAlterConfigs, over the broker's admin calls. Every node takes them (the
//! broker forwards metadata changes to the controller). Topic configs are the ones Strata
//! has (`retention.ms`, `retention.bytes`, `segment.bytes`, `max.message.bytes`,
//! `retention.policy`...); others are INVALID_CONFIG naming the key. Manual replica
//! assignments are refused (INVALID_REPLICA_ASSIGNMENT): placement is the controller's.

use crate::Ctx;
use crate::conn::Request;
use crate::meta::topic_uuid;
use kafka_protocol::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Resource type of a topic in the config APIs.
const RESOURCE_TOPIC: i8 = 2;
/// Resource type of a broker.
const RESOURCE_BROKER: i8 = 4;
/// Config source: set on the topic.
const SOURCE_TOPIC: i8 = 1;
/// Config source: the default.
const SOURCE_DEFAULT: i8 = 5;

/// CreateTopics: partitions -1 take `kafka_num_partitions`, replication factor -1 the
/// node's default.
pub async fn create_topics(
    ctx: &Ctx,
    req: &Request,
    r: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    for t in r.topics {
        let name = t.name.0.to_string();
        let mut out = create_topics_response::CreatableTopicResult::default();
        out.name = t.name.clone();
        out.num_partitions = -1;
        out.replication_factor = -1;
        let fail =
            |out: &mut create_topics_response::CreatableTopicResult, code: i16, m: String| {
                out.error_code = code;
                out.error_message = Some(str(&m));
            };
        if !t.assignments.is_empty() {
            fail(
                &mut out,
                E::InvalidReplicaAssignment.code(),
                "manual replica assignments are not supported; the controller places replicas"
                    .into(),
            );
            resp.topics.push(out);
            continue;
        }
        let partitions = if t.num_partitions == -1 {
            ctx.config.num_partitions
        } else if t.num_partitions <= 0 {
            fail(
                &mut out,
                E::InvalidPartitions.code(),
                format!("partitions must be positive, got {}", t.num_partitions),
            );
            resp.topics.push(out);
            continue;
        } else {
            t.num_partitions as u32
        };
        let rf = match t.replication_factor {
            -1 => 0,
            n if n > 0 => n as u32,
            n => {
                fail(
                    &mut out,
                    E::InvalidReplicationFactor.code(),
                    format!("replication factor must be positive, got {n}"),
                );
                resp.topics.push(out);
                continue;
            }
        };
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        if r.validate_only {
            if let Err(e) = strata_broker::types::check_topic_name(&name) {
                fail(&mut out, E::InvalidTopicException.code(), e);
            } else if ctx.broker.describe_topic(&name).is_ok() {
                fail(
                    &mut out,
                    E::TopicAlreadyExists.code(),
                    format!("topic {name:?} already exists"),
                );
            } else {
                out.num_partitions = partitions as i32;
                out.replication_factor = rf as i16;
            }
            resp.topics.push(out);
            continue;
        }
        match ctx
            .broker
            .create_topic(&name, partitions, rf, &configs)
            .await
        {
            Ok(view) => {
                let view = view.or_else(|| ctx.broker.describe_topic(&name).ok());
                if let Some(v) = view {
                    out.topic_id = topic_uuid(&v.topic_id);
                    out.num_partitions = v.partitions.len() as i32;
                    out.replication_factor = v.replication_factor as i16;
                    if req.version >= 5 {
                        out.configs = Some(
                            v.configs
                                .iter()
                                .map(|(k, val)| {
                                    let mut c =
                                        create_topics_response::CreatableTopicConfigs::default();
                                    c.name = str(k);
                                    c.value = Some(str(val));
                                    c.config_source = if configs.contains_key(k) {
                                        SOURCE_TOPIC
                                    } else {
                                        SOURCE_DEFAULT
                                    };
                                    c
                                })
                                .collect(),
                        );
                    }
                }
                tracing::info!(topic = %name, partitions, client = %req.client_id,
                    "topic created through the Kafka listener");
            }
            Err(e) => {
                let (code, m) = crate::conn::err(&e);
                fail(&mut out, code, m);
            }
        }
        resp.topics.push(out);
    }
    resp
}

/// DeleteTopics: by name (v1-5) or by name or id (v6).
pub async fn delete_topics(
    ctx: &Ctx,
    req: &Request,
    r: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut resp = DeleteTopicsResponse::default();
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if req.version >= 6 {
        r.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    for (name, id) in wanted {
        let mut out = delete_topics_response::DeletableTopicResult::default();
        out.topic_id = id;
        let name = name.or_else(|| ctx.broker.topic_name(&id.to_string()));
        let Some(name) = name else {
            out.error_code = E::UnknownTopicId.code();
            out.error_message = Some(str(&format!("no topic has id {id}")));
            resp.responses.push(out);
            continue;
        };
        out.name = Some(str(&name).into());
        match ctx.broker.delete_topic(&name).await {
            Ok(deleted) => {
                out.topic_id = topic_uuid(&deleted);
                tracing::info!(topic = %name, client = %req.client_id,
                    "topic deleted through the Kafka listener");
            }
            Err(e) => {
                let (code, m) = crate::conn::err(&e);
                out.error_code = code;
                out.error_message = Some(str(&m));
            }
        }
        resp.responses.push(out);
    }
    resp
}

/// CreatePartitions: grows each topic to `count` partitions.
pub async fn create_partitions(
    ctx: &Ctx,
    _req: &Request,
    r: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    for t in r.topics {
        let name = t.name.0.to_string();
        let mut out = create_partitions_response::CreatePartitionsTopicResult::default();
        out.name = t.name.clone();
        let result = if t.assignments.as_ref().is_some_and(|a| !a.is_empty()) {
            Err((
                E::InvalidReplicaAssignment.code(),
                "manual replica assignments are not supported".to_string(),
            ))
        } else {
            match ctx.broker.describe_topic(&name) {
                Err(e) => Err(crate::conn::err(&e)),
                Ok(v) if t.count <= v.partitions.len() as i32 => Err((
                    E::InvalidPartitions.code(),
                    format!(
                        "topic {name:?} has {} partitions; the count can only grow, got {}",
                        v.partitions.len(),
                        t.count
                    ),
                )),
                Ok(_) if r.validate_only => Ok(()),
                Ok(_) => ctx
                    .broker
                    .add_partitions(&name, t.count as u32)
                    .await
                    .map(|_| ())
                    .map_err(|e| crate::conn::err(&e)),
            }
        };
        if let Err((code, m)) = result {
            out.error_code = code;
            out.error_message = Some(str(&m));
        }
        resp.results.push(out);
    }
    resp
}

/// DescribeConfigs: a topic's configs (each marked set on the topic or default); a
/// broker's (this listener keeps none that Kafka tools could change: an empty list).
pub async fn describe_configs(
    ctx: &Ctx,
    _req: &Request,
    r: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut resp = DescribeConfigsResponse::default();
    let defaults = ctx.broker.config().topic_defaults.to_map();
    for res in r.resources {
        let mut out = describe_configs_response::DescribeConfigsResult::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name.clone();
        match res.resource_type {
            RESOURCE_TOPIC => match ctx.broker.describe_topic(&res.resource_name) {
                Ok(v) => {
                    out.configs = v
                        .configs
                        .iter()
                        .filter(|(k, _)| {
                            res.configuration_keys
                                .as_ref()
                                .is_none_or(|keys| keys.iter().any(|x| x.as_str() == k.as_str()))
                        })
                        .map(|(k, val)| {
                            let mut c =
                                describe_configs_response::DescribeConfigsResourceResult::default();
                            c.name = str(k);
                            c.value = Some(str(val));
                            c.config_source = if defaults.get(k) == Some(val) {
                                SOURCE_DEFAULT
                            } else {
                                SOURCE_TOPIC
                            };
                            c
                        })
                        .collect();
                }
                Err(e) => {
                    let (code, m) = crate::conn::err(&e);
                    out.error_code = code;
                    out.error_message = Some(str(&m));
                }
            },
            RESOURCE_BROKER => {}
            other => {
                out.error_code = E::InvalidRequest.code();
                out.error_message = Some(str(&format!(
                    "config resource type {other} is not served (topics: 2, brokers: 4)"
                )));
            }
        }
        resp.results.push(out);
    }
    resp
}

/// Applies `set` and `remove` to topic `name` (or only checks the topic exists when
/// `validate_only`), answering the code and message.
async fn alter_topic(
    ctx: &Ctx,
    name: &str,
    set: BTreeMap<String, String>,
    remove: Vec<String>,
    validate_only: bool,
) -> (i16, Option<String>) {
    let result = if validate_only {
        ctx.broker.describe_topic(name).map(|_| ())
    } else {
        ctx.broker
            .alter_topic_config(name, &set, &remove)
            .await
            .map(|_| ())
    };
    match result {
        Ok(()) => (0, None),
        Err(e) => {
            let (code, m) = crate::conn::err(&e);
            (code, Some(m))
        }
    }
}

fn not_a_topic(rt: i8) -> (i16, Option<String>) {
    (
        E::InvalidRequest.code(),
        Some(format!(
            "only topic configs (resource type 2) can be altered, got resource type {rt}"
        )),
    )
}

/// AlterConfigs: replaces a topic's configs (keys not named return to their defaults).
pub async fn alter_configs(
    ctx: &Ctx,
    _req: &Request,
    r: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for res in r.resources {
        let (code, m) = if res.resource_type != RESOURCE_TOPIC {
            not_a_topic(res.resource_type)
        } else {
            let set: BTreeMap<String, String> = res
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.to_string(), v.to_string()))
                })
                .collect();
            let remove: Vec<String> = match ctx.broker.describe_topic(&res.resource_name) {
                Ok(v) => v
                    .configs
                    .keys()
                    .filter(|k| !set.contains_key(*k))
                    .cloned()
                    .collect(),
                Err(_) => Vec::new(),
            };
            alter_topic(ctx, &res.resource_name, set, remove, r.validate_only).await
        };
        let mut out = alter_configs_response::AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_code = code;
        out.error_message = m.map(|m| str(&m));
        resp.responses.push(out);
    }
    resp
}

/// IncrementalAlterConfigs: SET (0) and DELETE (1) on topic configs; APPEND and SUBTRACT
/// apply to list configs, which Strata's topics have none of.
pub async fn incremental_alter_configs(
    ctx: &Ctx,
    _req: &Request,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in r.resources {
        let (code, m) = if res.resource_type != RESOURCE_TOPIC {
            not_a_topic(res.resource_type)
        } else {
            let mut set = BTreeMap::new();
            let mut remove = Vec::new();
            let mut bad = None;
            for c in &res.configs {
                match (c.config_operation, &c.value) {
                    (0, Some(v)) => {
                        set.insert(c.name.to_string(), v.to_string());
                    }
                    (1, _) => remove.push(c.name.to_string()),
                    (op, _) => {
                        bad = Some(format!(
                            "config {}: operation {op} is not applicable (SET needs a value; \
                             APPEND and SUBTRACT apply to list configs, which topics do not have)",
                            c.name.as_str()
                        ));
                    }
                }
            }
            match bad {
                Some(m) => (E::InvalidConfig.code(), Some(m)),
                None => alter_topic(ctx, &res.resource_name, set, remove, r.validate_only).await,
            }
        };
        let mut out = incremental_alter_configs_response::AlterConfigsResourceResponse::default();
        out.resource_type = res.resource_type;
        out.resource_name = res.resource_name;
        out.error_code = code;
        out.error_message = m.map(|m| str(&m));
        resp.responses.push(out);
    }
    resp
}
