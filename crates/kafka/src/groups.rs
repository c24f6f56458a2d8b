//! The group coordinator APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups.
//!
//! The coordinator of a group is the leader of its `__consumer_offsets` partition, as for
//! native groups, and the state is the same replicated state; the classic barrier runs in
//! [`strata_groups::classic`]. A request that reaches another node is NOT_COORDINATOR, and
//! the client looks the coordinator up again. Static membership (`group.instance.id`) is
//! not kept: such members are treated as dynamic ones.

use crate::conn::Request;
use crate::meta::kafka_nodes;
use crate::{Ctx, broker_id, codes};
use bytes::Bytes;
use kafka_protocol::ResponseError as E;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strata_broker::ClassicFailure;
use strata_groups::classic::{ClassicError, JoinRequest as ClassicJoin, Phase};

fn str(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// FindCoordinator for groups (key type 0); transactions (1) and share groups (2) are not
/// served.
pub async fn find_coordinator(
    ctx: &Ctx,
    req: &Request,
    r: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<String> = if req.version >= 4 {
        r.coordinator_keys.iter().map(|k| k.to_string()).collect()
    } else {
        vec![r.key.to_string()]
    };
    let nodes = kafka_nodes(&ctx.broker.cluster_status().nodes);
    let mut resp = FindCoordinatorResponse::default();
    for key in keys {
        let mut c = find_coordinator_response::Coordinator::default();
        c.key = str(&key);
        c.node_id = (-1).into();
        c.port = -1;
        if r.key_type != 0 {
            c.error_code = E::InvalidRequest.code();
            c.error_message = Some(str(&format!(
                "coordinator key type {} is not served: only consumer groups (0) are; \
                 transactions and share groups are not supported",
                r.key_type
            )));
        } else {
            match ctx.broker.group_coordinator_node(&key).await {
                Ok(Some(id)) if nodes.contains_key(&id) => {
                    let (host, port) = &nodes[&id];
                    c.node_id = broker_id(id).into();
                    c.host = str(host);
                    c.port = *port;
                }
                Ok(_) => {
                    c.error_code = E::CoordinatorNotAvailable.code();
                    c.error_message = Some(str("the group's coordinator is not known yet"));
                }
                Err(e) => {
                    c.error_code = codes::coordinator(&e);
                    c.error_message = Some(str(&e.to_string()));
                }
            }
        }
        resp.coordinators.push(c);
    }
    if req.version < 4
        && let Some(c) = resp.coordinators.pop()
    {
        resp.error_code = c.error_code;
        resp.error_message = c.error_message;
        resp.node_id = c.node_id;
        resp.host = c.host;
        resp.port = c.port;
    }
    resp
}

/// JoinGroup: answered when the group's barrier closes.
pub async fn join_group(ctx: &Ctx, req: &Request, r: JoinGroupRequest) -> JoinGroupResponse {
    let mut resp = JoinGroupResponse::default();
    resp.generation_id = -1;
    let join = ClassicJoin {
        group: r.group_id.0.to_string(),
        member_id: r.member_id.to_string(),
        id_required: req.version >= 4,
        client_id: req.client_id.clone(),
        host: format!("/{}", req.peer.ip()),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: if req.version >= 1 {
            r.rebalance_timeout_ms
        } else {
            r.session_timeout_ms
        },
        protocol_type: r.protocol_type.to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.to_vec()))
            .collect(),
    };
    match ctx.broker.classic_join(join).await {
        Ok(j) => {
            resp.generation_id = j.generation;
            resp.protocol_type = Some(str(&j.protocol_type));
            resp.protocol_name = Some(str(&j.protocol));
            resp.leader = str(&j.leader);
            resp.member_id = str(&j.member_id);
            resp.members = j
                .members
                .into_iter()
                .map(|(id, meta)| {
                    let mut m = join_group_response::JoinGroupResponseMember::default();
                    m.member_id = str(&id);
                    m.metadata = Bytes::from(meta);
                    m
                })
                .collect();
        }
        Err(e) => {
            if let ClassicFailure::Classic(ClassicError::MemberIdRequired(id)) = &e {
                resp.member_id = str(id);
            } else {
                resp.member_id = r.member_id.clone();
            }
            resp.error_code = codes::classic_failure(&e);
            if resp.error_code != E::MemberIdRequired.code() {
                tracing::debug!(group = %r.group_id.0, error = ?e, "JoinGroup refused");
            }
        }
    }
    resp
}

/// SyncGroup: the leader's brings the assignments; each member gets its own.
pub async fn sync_group(ctx: &Ctx, _req: &Request, r: SyncGroupRequest) -> SyncGroupResponse {
    let mut resp = SyncGroupResponse::default();
    let assignments = r
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.to_vec()))
        .collect();
    match ctx
        .broker
        .classic_sync(&r.group_id.0, &r.member_id, r.generation_id, assignments)
        .await
    {
        Ok(s) => {
            resp.protocol_type = Some(str(&s.protocol_type));
            resp.protocol_name = Some(str(&s.protocol));
            resp.assignment = Bytes::from(s.assignment);
        }
        Err(e) => {
            tracing::debug!(group = %r.group_id.0, error = ?e, "SyncGroup refused");
            resp.error_code = codes::classic_failure(&e);
        }
    }
    resp
}

/// Heartbeat.
pub async fn heartbeat(ctx: &Ctx, _req: &Request, r: HeartbeatRequest) -> HeartbeatResponse {
    let mut resp = HeartbeatResponse::default();
    if let Err(e) = ctx
        .broker
        .classic_heartbeat(&r.group_id.0, &r.member_id, r.generation_id)
        .await
    {
        resp.error_code = codes::classic_failure(&e);
    }
    resp
}

/// LeaveGroup: one member (v0-2) or a list (v3+).
pub async fn leave_group(ctx: &Ctx, req: &Request, r: LeaveGroupRequest) -> LeaveGroupResponse {
    let mut resp = LeaveGroupResponse::default();
    let ids: Vec<String> = if req.version >= 3 {
        r.members.iter().map(|m| m.member_id.to_string()).collect()
    } else {
        vec![r.member_id.to_string()]
    };
    match ctx.broker.classic_leave(&r.group_id.0, &ids).await {
        Ok(outcomes) => {
            if req.version >= 3 {
                resp.members = outcomes
                    .iter()
                    .map(|(id, e)| {
                        let mut m = leave_group_response::MemberResponse::default();
                        m.member_id = str(id);
                        m.error_code = e.as_ref().map_or(0, codes::classic);
                        m
                    })
                    .collect();
            } else if let Some((_, Some(e))) = outcomes.first() {
                resp.error_code = codes::classic(e);
            }
        }
        Err(e) => resp.error_code = codes::classic_failure(&e),
    }
    resp
}

/// OffsetCommit: all partitions of the request or none (each answered with the same code).
pub async fn offset_commit(
    ctx: &Ctx,
    _req: &Request,
    r: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let mut offsets = Vec::new();
    for t in &r.topics {
        for p in &t.partitions {
            offsets.push((
                t.name.0.to_string(),
                u32::try_from(p.partition_index).unwrap_or(u32::MAX),
                p.committed_offset,
                p.committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default(),
            ));
        }
    }
    let code = match ctx
        .broker
        .classic_commit(
            &r.group_id.0,
            &r.member_id,
            r.generation_id_or_member_epoch,
            offsets,
        )
        .await
    {
        Ok(()) => 0,
        Err(e) => {
            tracing::debug!(group = %r.group_id.0, error = ?e, "OffsetCommit refused");
            codes::classic_failure(&e)
        }
    };
    let mut resp = OffsetCommitResponse::default();
    resp.topics = r
        .topics
        .iter()
        .map(|t| {
            let mut tr = offset_commit_response::OffsetCommitResponseTopic::default();
            tr.name = t.name.clone();
            tr.topic_id = t.topic_id;
            tr.partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let mut pr = offset_commit_response::OffsetCommitResponsePartition::default();
                    pr.partition_index = p.partition_index;
                    pr.error_code = code;
                    pr
                })
                .collect();
            tr
        })
        .collect();
    resp
}

/// One group's committed offsets for `topics` (name and partitions; `None`: every
/// committed partition), as (topic, [(partition, offset, metadata)]) or an error code.
async fn committed(
    ctx: &Ctx,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> Result<Vec<(String, Vec<(i32, i64, String)>)>, i16> {
    let names: Vec<String> = topics
        .as_ref()
        .map(|t| t.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let got = ctx
        .broker
        .fetch_offsets(group, &names)
        .await
        .map_err(|e| codes::coordinator(&e))?;
    Ok(match topics {
        Some(list) => list
            .into_iter()
            .map(|(name, parts)| {
                let rows = parts
                    .into_iter()
                    .map(|p| {
                        got.iter()
                            .find(|c| c.topic == name && i64::from(c.partition) == i64::from(p))
                            .map_or((p, -1, String::new()), |c| {
                                (p, c.offset, c.metadata.clone())
                            })
                    })
                    .collect();
                (name, rows)
            })
            .collect(),
        None => {
            let mut by: std::collections::BTreeMap<String, Vec<(i32, i64, String)>> =
                Default::default();
            for c in got {
                by.entry(c.topic.clone()).or_default().push((
                    c.partition as i32,
                    c.offset,
                    c.metadata.clone(),
                ));
            }
            by.into_iter().collect()
        }
    })
}

/// OffsetFetch: one group (v1-7) or several (v8+); -1 for partitions without a commit.
pub async fn offset_fetch(ctx: &Ctx, req: &Request, r: OffsetFetchRequest) -> OffsetFetchResponse {
    let mut resp = OffsetFetchResponse::default();
    if req.version >= 8 {
        for g in &r.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            let mut gr = offset_fetch_response::OffsetFetchResponseGroup::default();
            gr.group_id = g.group_id.clone();
            match committed(ctx, &g.group_id.0, topics).await {
                Ok(list) => {
                    gr.topics = list
                        .into_iter()
                        .map(|(name, rows)| {
                            let mut t = offset_fetch_response::OffsetFetchResponseTopics::default();
                            t.name = str(&name).into();
                            t.partitions = rows
                                .into_iter()
                                .map(|(p, o, m)| {
                                    let mut x =
                                        offset_fetch_response::OffsetFetchResponsePartitions::default();
                                    x.partition_index = p;
                                    x.committed_offset = o;
                                    x.committed_leader_epoch = -1;
                                    x.metadata = Some(str(&m));
                                    x
                                })
                                .collect();
                            t
                        })
                        .collect();
                }
                Err(code) => gr.error_code = code,
            }
            resp.groups.push(gr);
        }
        return resp;
    }
    let topics = r.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    match committed(ctx, &r.group_id.0, topics).await {
        Ok(list) => {
            resp.topics = list
                .into_iter()
                .map(|(name, rows)| {
                    let mut t = offset_fetch_response::OffsetFetchResponseTopic::default();
                    t.name = str(&name).into();
                    t.partitions = rows
                        .into_iter()
                        .map(|(p, o, m)| {
                            let mut x =
                                offset_fetch_response::OffsetFetchResponsePartition::default();
                            x.partition_index = p;
                            x.committed_offset = o;
                            x.committed_leader_epoch = -1;
                            x.metadata = Some(str(&m));
                            x
                        })
                        .collect();
                    t
                })
                .collect();
        }
        Err(code) => resp.error_code = code,
    }
    resp
}

fn native_state(s: &str) -> &'static str {
    match s {
        "stable" => "Stable",
        "reconciling" => "Reconciling",
        _ => "Empty",
    }
}

/// DescribeGroups: classic groups with their members' metadata and assignments; native
/// groups with their members (no protocol data).
pub async fn describe_groups(
    ctx: &Ctx,
    req: &Request,
    r: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let mut resp = DescribeGroupsResponse::default();
    for g in r.groups {
        let name = g.0.to_string();
        let mut d = describe_groups_response::DescribedGroup::default();
        d.group_id = g.clone();
        d.authorized_operations = i32::MIN;
        match ctx.broker.classic_describe(&name).await {
            Ok(Some(c)) => {
                d.group_state = str(c.phase.as_str());
                d.protocol_type = str(&c.protocol_type);
                d.protocol_data = str(
                    if c.phase == Phase::Stable || c.phase == Phase::CompletingRebalance {
                        &c.protocol
                    } else {
                        ""
                    },
                );
                d.members = c
                    .members
                    .into_iter()
                    .map(|v| {
                        let mut m = describe_groups_response::DescribedGroupMember::default();
                        m.member_id = str(&v.member_id);
                        m.client_id = str(&v.client_id);
                        m.client_host = str(&v.host);
                        m.member_metadata = Bytes::from(v.metadata);
                        m.member_assignment = Bytes::from(v.assignment);
                        m
                    })
                    .collect();
            }
            Ok(None) => match ctx.broker.describe_group(&name).await {
                Ok(v) => {
                    d.group_state = str(native_state(v.state));
                    d.members = v
                        .members
                        .iter()
                        .map(|m| {
                            let mut x = describe_groups_response::DescribedGroupMember::default();
                            x.member_id = str(&m.member_id);
                            x.client_id = str(&m.client_id);
                            x.client_host = str(&m.host);
                            x
                        })
                        .collect();
                }
                Err(strata_broker::BrokerError::Group(
                    strata_groups::GroupError::UnknownGroup(_),
                )) => {
                    // Kafka describes an unknown group as Dead (v6+: GROUP_ID_NOT_FOUND).
                    d.group_state = str("Dead");
                    if req.version >= 6 {
                        d.error_code = E::GroupIdNotFound.code();
                    }
                }
                Err(e) => d.error_code = codes::coordinator(&e),
            },
            Err(e) => d.error_code = codes::coordinator(&e),
        }
        resp.groups.push(d);
    }
    resp
}

/// ListGroups: the groups this node coordinates (admin clients ask every broker).
pub async fn list_groups(ctx: &Ctx, _req: &Request, r: ListGroupsRequest) -> ListGroupsResponse {
    let mut resp = ListGroupsResponse::default();
    for g in ctx.broker.list_groups() {
        let classic = !g.protocol_type.is_empty();
        let state = if classic {
            if g.members > 0 { "Stable" } else { "Empty" }
        } else {
            native_state(g.state)
        };
        let kind = if classic { "classic" } else { "consumer" };
        if !r.states_filter.is_empty()
            && !r
                .states_filter
                .iter()
                .any(|s| s.eq_ignore_ascii_case(state))
        {
            continue;
        }
        if !r.types_filter.is_empty()
            && !r.types_filter.iter().any(|s| s.eq_ignore_ascii_case(kind))
        {
            continue;
        }
        let mut x = list_groups_response::ListedGroup::default();
        x.group_id = str(&g.name).into();
        x.protocol_type = str(if classic {
            &g.protocol_type
        } else {
            "consumer"
        });
        x.group_state = str(state);
        x.group_type = str(kind);
        resp.groups.push(x);
    }
    resp
}

/// DeleteGroups: each group must have no members.
pub async fn delete_groups(
    ctx: &Ctx,
    _req: &Request,
    r: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut resp = DeleteGroupsResponse::default();
    for g in r.groups_names {
        let mut x = delete_groups_response::DeletableGroupResult::default();
        x.group_id = g.clone();
        if let Err(e) = ctx.broker.delete_group(&g.0).await {
            x.error_code = codes::coordinator(&e);
        }
        resp.results.push(x);
    }
    resp
}
