//! `strata.v1.Groups`: consumer-group membership, offsets and administration, over the
//! broker.

use super::ClientService;
use super::status::{broker_status, invalid};
use std::collections::{BTreeMap, BTreeSet};
use strata_broker::types::{CommittedView, MemberView};
use strata_groups::plan::Heartbeat;
use strata_groups::{Subscription, TopicPartition};
use strata_proto::v1 as pb;
use tonic::{Request, Response, Status};

/// `(topic name, partition)` pairs grouped by topic, as the API lists partitions.
fn by_topic(parts: &[(String, TopicPartition)]) -> Vec<pb::TopicPartitions> {
    let mut m: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    for (name, tp) in parts {
        m.entry((name.as_str(), tp.topic_id.as_str()))
            .or_default()
            .push(tp.partition);
    }
    m.into_iter()
        .map(|((topic, id), partitions)| pb::TopicPartitions {
            topic: topic.to_string(),
            topic_id: id.to_string(),
            partitions,
        })
        .collect()
}

fn committed(c: CommittedView) -> pb::CommittedOffset {
    pb::CommittedOffset {
        topic: c.topic,
        topic_id: c.topic_id,
        partition: c.partition,
        offset: c.offset,
        metadata: c.metadata,
        commit_time_ms: c.commit_ms as i64,
    }
}

fn member(m: MemberView) -> pb::GroupMember {
    pb::GroupMember {
        member_id: m.member_id,
        client_id: m.client_id,
        host: m.host,
        member_epoch: m.member_epoch as i64,
        owned: by_topic(&m.owned),
        target: by_topic(&m.target),
        topics: m.topics,
        pattern: m.pattern.unwrap_or_default(),
    }
}

fn opt_ms(v: u32) -> Option<u32> {
    (v != 0).then_some(v)
}

#[tonic::async_trait]
impl pb::groups_server::Groups for ClientService {
    async fn heartbeat(
        &self,
        request: Request<pb::GroupHeartbeatRequest>,
    ) -> Result<Response<pb::GroupHeartbeatResponse>, Status> {
        let host = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let req = request.into_inner();
        let subscription =
            (!req.topics.is_empty() || !req.pattern.is_empty()).then(|| Subscription {
                topics: req.topics.iter().cloned().collect(),
                pattern: (!req.pattern.is_empty()).then(|| req.pattern.clone()),
            });
        let owned: Vec<TopicPartition> = req
            .owned
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic_id.clone(), *p))
            })
            .collect();
        let hb = Heartbeat {
            group: req.group,
            member_id: req.member_id,
            member_epoch: req.member_epoch,
            client_id: req.client_id,
            host,
            subscription,
            owned: Some(owned),
            assignor: (!req.assignor.is_empty()).then_some(req.assignor),
            session_timeout_ms: opt_ms(req.session_timeout_ms),
            rebalance_timeout_ms: opt_ms(req.rebalance_timeout_ms),
            heartbeat_interval_ms: opt_ms(req.heartbeat_interval_ms),
        };
        let a = self
            .broker
            .group_heartbeat(hb)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::GroupHeartbeatResponse {
            member_id: a.member_id,
            member_epoch: a.member_epoch,
            heartbeat_interval_ms: a.heartbeat_interval_ms,
            assignment: by_topic(&a.partitions),
        }))
    }

    async fn commit_offsets(
        &self,
        request: Request<pb::CommitOffsetsRequest>,
    ) -> Result<Response<pb::CommitOffsetsResponse>, Status> {
        let req = request.into_inner();
        if req.member_epoch < 0 {
            return Err(invalid(
                "member_epoch",
                format!("a member epoch is not negative, got {}", req.member_epoch),
            ));
        }
        let offsets = req
            .offsets
            .into_iter()
            .map(|o| (o.topic, o.partition, o.offset, o.metadata))
            .collect();
        self.broker
            .commit_offsets(&req.group, &req.member_id, req.member_epoch as u64, offsets)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::CommitOffsetsResponse {}))
    }

    async fn fetch_offsets(
        &self,
        request: Request<pb::FetchOffsetsRequest>,
    ) -> Result<Response<pb::FetchOffsetsResponse>, Status> {
        let req = request.into_inner();
        let offsets = self
            .broker
            .fetch_offsets(&req.group, &req.topics)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::FetchOffsetsResponse {
            offsets: offsets.into_iter().map(committed).collect(),
        }))
    }

    async fn describe_group(
        &self,
        request: Request<pb::DescribeGroupRequest>,
    ) -> Result<Response<pb::GroupDescription>, Status> {
        let req = request.into_inner();
        let g = self
            .broker
            .describe_group(&req.group)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::GroupDescription {
            group: g.name,
            state: g.state.to_string(),
            epoch: g.epoch,
            members: g.members.into_iter().map(member).collect(),
            offsets: g.offsets.into_iter().map(committed).collect(),
            coordinator_id: g.coordinator_id,
        }))
    }

    async fn list_groups(
        &self,
        _request: Request<pb::ListGroupsRequest>,
    ) -> Result<Response<pb::ListGroupsResponse>, Status> {
        let groups = self
            .broker
            .list_groups()
            .into_iter()
            .map(|g| pb::GroupSummary {
                group: g.name,
                state: g.state.to_string(),
                members: g.members,
                coordinator_id: g.coordinator_id,
            })
            .collect();
        Ok(Response::new(pb::ListGroupsResponse { groups }))
    }

    async fn reset_offsets(
        &self,
        request: Request<pb::ResetOffsetsRequest>,
    ) -> Result<Response<pb::ResetOffsetsResponse>, Status> {
        let req = request.into_inner();
        let mut seen = BTreeSet::new();
        let mut offsets = Vec::with_capacity(req.offsets.len());
        for (i, o) in req.offsets.into_iter().enumerate() {
            if o.offset < 0 {
                return Err(invalid(
                    &format!("offsets[{i}].offset"),
                    format!("offsets are not negative, got {}", o.offset),
                ));
            }
            if !seen.insert((o.topic.clone(), o.partition)) {
                return Err(invalid(
                    &format!("offsets[{i}]"),
                    format!("{}/{} is listed twice", o.topic, o.partition),
                ));
            }
            offsets.push((o.topic, o.partition, o.offset));
        }
        self.broker
            .reset_offsets(&req.group, offsets)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::ResetOffsetsResponse {}))
    }

    async fn delete_group(
        &self,
        request: Request<pb::DeleteGroupRequest>,
    ) -> Result<Response<pb::DeleteGroupResponse>, Status> {
        let req = request.into_inner();
        self.broker
            .delete_group(&req.group)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::DeleteGroupResponse {}))
    }
}
