//! `strata.v1.Admin`: topics, cluster status, joins, rebalancing, over the broker.

use super::ClientService;
use super::convert;
use super::status::{broker_status, unknown_topic};
use std::collections::BTreeMap;
use strata_broker::types::JoinRequest;
use strata_proto::v1 as pb;
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl pb::admin_server::Admin for ClientService {
    async fn create_topic(
        &self,
        request: Request<pb::CreateTopicRequest>,
    ) -> Result<Response<pb::CreateTopicResponse>, Status> {
        let req = request.into_inner();
        let configs: BTreeMap<String, String> = req.configs.into_iter().collect();
        let topic = self
            .broker
            .create_topic(&req.name, req.partitions, req.replication_factor, &configs)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::CreateTopicResponse {
            topic: topic.map(convert::topic_info),
        }))
    }

    async fn delete_topic(
        &self,
        request: Request<pb::DeleteTopicRequest>,
    ) -> Result<Response<pb::DeleteTopicResponse>, Status> {
        let req = request.into_inner();
        let topic_id = self
            .broker
            .delete_topic(&req.name)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::DeleteTopicResponse { topic_id }))
    }

    async fn list_topics(
        &self,
        _request: Request<pb::ListTopicsRequest>,
    ) -> Result<Response<pb::ListTopicsResponse>, Status> {
        let topics = self
            .broker
            .list_topics()
            .into_iter()
            .map(convert::topic_info)
            .collect();
        Ok(Response::new(pb::ListTopicsResponse { topics }))
    }

    async fn describe_topic(
        &self,
        request: Request<pb::DescribeTopicRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let req = request.into_inner();
        self.broker
            .describe_topic(&req.name)
            .map(|t| Response::new(convert::topic_info(t)))
            .map_err(|_| unknown_topic(&req.name))
    }

    async fn add_partitions(
        &self,
        request: Request<pb::AddPartitionsRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let req = request.into_inner();
        let t = self
            .broker
            .add_partitions(&req.name, req.partitions)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(convert::topic_info(t)))
    }

    async fn alter_topic_config(
        &self,
        request: Request<pb::AlterTopicConfigRequest>,
    ) -> Result<Response<pb::TopicInfo>, Status> {
        let req = request.into_inner();
        let set: BTreeMap<String, String> = req.set.into_iter().collect();
        let t = self
            .broker
            .alter_topic_config(&req.name, &set, &req.remove)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(convert::topic_info(t)))
    }

    async fn cluster_status(
        &self,
        _request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let s = self.broker.cluster_status();
        let h = s.health;
        Ok(Response::new(pb::ClusterStatusResponse {
            cluster_id: s.cluster_id,
            controller_id: h.controller_id,
            nodes: s.nodes.into_iter().map(convert::node_info).collect(),
            partitions: h.partitions,
            leaderless: h.leaderless,
            under_replicated: h.under_replicated,
            healthy: h.healthy,
            moves_in_progress: h.moves,
        }))
    }

    async fn join_node(
        &self,
        request: Request<pb::JoinNodeRequest>,
    ) -> Result<Response<pb::JoinNodeResponse>, Status> {
        let req = request.into_inner();
        let joined = self
            .broker
            .join_node(JoinRequest {
                incarnation: req.incarnation,
                client_addr: req.client_addr,
                peer_addr: req.peer_addr,
                http_addr: req.http_addr,
            })
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::JoinNodeResponse {
            cluster_id: joined.cluster_id,
            node_id: joined.node_id,
            controller_voters: joined.controller_voters.into_iter().collect(),
        }))
    }

    async fn rebalance(
        &self,
        _request: Request<pb::RebalanceRequest>,
    ) -> Result<Response<pb::RebalanceResponse>, Status> {
        let moves = self.broker.rebalance().await.map_err(broker_status)?;
        Ok(Response::new(pb::RebalanceResponse { moves }))
    }

    async fn decommission(
        &self,
        request: Request<pb::DecommissionRequest>,
    ) -> Result<Response<pb::DecommissionResponse>, Status> {
        let req = request.into_inner();
        let moves = self
            .broker
            .decommission(req.node_id)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::DecommissionResponse { moves }))
    }
}
