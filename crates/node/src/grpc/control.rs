//! `strata.internal.v1.NodeControl` on the peer port: proposals forwarded to the controller's
//! leader, and leadership hints. [`GrpcControlLink`] is the sending side (the controller's
//! [`ControlLink`]), [`ControlService`] the receiving side.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_cluster::controller::{Answer, ControlLink, Controller, ControllerError, LeaderHints};
use strata_cluster::meta::Outcome;
use strata_proto::internal::v1 as pb;
use strata_proto::internal::v1::node_control_client::NodeControlClient;
use strata_raft::transport::{LinkControl, PeerIdentity};
use strata_raft::{GroupId, RaftIndex};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

/// Request metadata key marking a proposal forwarded once (it is not forwarded again).
const FORWARDED: &str = "x-strata-forwarded";

/// How hints are sent: fire and forget, within a second.
const HINT_TIMEOUT: Duration = Duration::from_secs(1);

/// The controller's link to other nodes over their peer ports (one lazy channel per address).
pub struct GrpcControlLink {
    identity: PeerIdentity,
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
    links: Arc<LinkControl>,
}

impl GrpcControlLink {
    /// A link sending as `identity`, each proposal bounded by `timeout`. A link that `links`
    /// cuts fails at once as unavailable (its drops and delays apply to Raft traffic only).
    pub fn new(
        identity: PeerIdentity,
        timeout: Duration,
        links: Arc<LinkControl>,
    ) -> GrpcControlLink {
        GrpcControlLink {
            identity,
            timeout,
            channels: Mutex::default(),
            links,
        }
    }

    fn cut(&self, to: u64) -> bool {
        self.links.get(self.identity.node_id, to).cut
    }

    fn channel(&self, addr: &str) -> Result<Channel, ControllerError> {
        let mut ch = strata_record::sync::lock(&self.channels);
        if let Some(c) = ch.get(addr) {
            return Ok(c.clone());
        }
        let c = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| ControllerError::Unavailable(format!("bad peer address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(self.timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        ch.insert(addr.to_string(), c.clone());
        Ok(c)
    }
}

impl ControlLink for GrpcControlLink {
    fn propose(
        &self,
        to: u64,
        addr: &str,
        command: Bytes,
        forwarded: bool,
    ) -> BoxFuture<'static, Result<(RaftIndex, Outcome), ControllerError>> {
        if self.cut(to) {
            return Box::pin(async move {
                Err(ControllerError::Unavailable(format!(
                    "link to node {to} cut"
                )))
            });
        }
        let channel = self.channel(addr);
        let header = self.identity.header_to(to, 0);
        let timeout = self.timeout;
        Box::pin(async move {
            let mut client = NodeControlClient::new(channel?);
            let mut req = Request::new(pb::ProposeRequest {
                header: Some(header),
                command,
            });
            req.set_timeout(timeout);
            if forwarded {
                req.metadata_mut()
                    .insert(FORWARDED, tonic::metadata::MetadataValue::from_static("1"));
            }
            let resp = client
                .propose(req)
                .await
                .map_err(|s| ControllerError::Unavailable(format!("node {to}: {}", s.message())))?;
            let answer: Answer = serde_json::from_slice(&resp.into_inner().result)
                .map_err(|e| ControllerError::Unavailable(format!("bad answer from {to}: {e}")))?;
            Ok((answer.index, answer.outcome))
        })
    }

    fn hints(
        &self,
        to: u64,
        addr: &str,
        led: Vec<(GroupId, u64)>,
    ) -> BoxFuture<'static, Result<(), ControllerError>> {
        if self.cut(to) {
            return Box::pin(async move {
                Err(ControllerError::Unavailable(format!(
                    "link to node {to} cut"
                )))
            });
        }
        let channel = self.channel(addr);
        let header = self.identity.header_to(to, 0);
        Box::pin(async move {
            let mut client = NodeControlClient::new(channel?);
            let mut req = Request::new(pb::HintsRequest {
                header: Some(header),
                led: led
                    .into_iter()
                    .map(|(group, term)| pb::LedGroup {
                        group_id: group.get(),
                        term,
                    })
                    .collect(),
            });
            req.set_timeout(HINT_TIMEOUT);
            client
                .hints(req)
                .await
                .map(|_| ())
                .map_err(|s| ControllerError::Unavailable(s.message().to_string()))
        })
    }
}

/// The `NodeControl` service: proposals forwarded from other nodes, and leadership hints.
#[derive(Clone)]
pub struct ControlService {
    identity: PeerIdentity,
    controller: Arc<Controller>,
    hints: Arc<LeaderHints>,
}

impl ControlService {
    /// A service checking callers against `identity`, proposing through `controller` and
    /// recording hints into `hints`.
    pub fn new(
        identity: PeerIdentity,
        controller: Arc<Controller>,
        hints: Arc<LeaderHints>,
    ) -> ControlService {
        ControlService {
            identity,
            controller,
            hints,
        }
    }
}

#[tonic::async_trait]
impl pb::node_control_server::NodeControl for ControlService {
    async fn propose(
        &self,
        request: Request<pb::ProposeRequest>,
    ) -> Result<Response<pb::ProposeResponse>, Status> {
        let forwarded = request.metadata().contains_key(FORWARDED);
        let req = request.into_inner();
        self.identity.check(req.header.as_ref())?;
        let (index, outcome) = self
            .controller
            .propose_forwarded(&req.command, forwarded)
            .await
            .map_err(|e| match e {
                ControllerError::Refused(r) => Status::invalid_argument(r.to_string()),
                ControllerError::Unavailable(_) => Status::unavailable(e.to_string()),
            })?;
        let result = serde_json::to_vec(&Answer { index, outcome })
            .map_err(|e| Status::internal(format!("encode outcome: {e}")))?;
        Ok(Response::new(pb::ProposeResponse {
            result: Bytes::from(result),
        }))
    }

    async fn hints(
        &self,
        request: Request<pb::HintsRequest>,
    ) -> Result<Response<pb::HintsResponse>, Status> {
        let req = request.into_inner();
        self.identity.check(req.header.as_ref())?;
        let from = req.header.as_ref().map_or(0, |h| h.from_node);
        for g in req.led {
            self.hints.record(from, GroupId::new(g.group_id), g.term);
        }
        Ok(Response::new(pb::HintsResponse {}))
    }
}
