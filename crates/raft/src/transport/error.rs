//! The transport's error enum, and how a failed call becomes openraft's `RPCError`.
//!
//! openraft reacts to the kind of a network error: `Unreachable` makes it back off before the
//! next try, `Network` and `Timeout` retry soon. A call fails as
//! - `Unreachable` when the peer cannot take it: no connection (refused, reset, peer stopping:
//!   gRPC `UNAVAILABLE`), the wrong node at that address (`FAILED_PRECONDITION`), the group not
//!   hosted there (`NOT_FOUND`), a message over a size limit (`OUT_OF_RANGE`,
//!   `RESOURCE_EXHAUSTED`, or refused before sending), or a link cut by [`super::LinkControl`];
//! - `Timeout` when its deadline passed (`DEADLINE_EXCEEDED`; `CANCELLED`, which is how tonic
//!   reports an expired `grpc-timeout`; or our own timer), or when
//!   [`super::LinkControl`] dropped it;
//! - `Network` otherwise (a malformed answer, an internal error of the peer).

use crate::numbers::GroupId;
use crate::types::{NodeId, TypeConfig};
use openraft::RPCTypes;
use openraft::error::{NetworkError, RPCError, Timeout, Unreachable};
use std::time::Duration;
use tonic::{Code, Status};

/// Why the transport could not be set up or serve.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A [`super::TransportConfig`] field breaks its rule.
    #[error("invalid transport config: {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        reason: String,
    },
    /// The peer server stopped with an error (the listener failed).
    #[error("peer server failed")]
    Serve(#[source] tonic::transport::Error),
}

/// One outgoing call, for naming it in errors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Call {
    /// What kind of RPC.
    pub action: RPCTypes,
    /// This node.
    pub from: NodeId,
    /// The peer.
    pub target: NodeId,
    /// The group the call is for.
    pub group_id: GroupId,
    /// The deadline the call runs under.
    pub timeout: Duration,
}

impl Call {
    /// The call took longer than its deadline.
    pub fn timeout_error(&self) -> RPCError<TypeConfig> {
        RPCError::Timeout(Timeout {
            action: self.action,
            id: self.from,
            target: self.target,
            timeout: self.timeout,
        })
    }

    /// The peer cannot take the call now: openraft backs off.
    pub fn unreachable(&self, reason: impl std::fmt::Display) -> RPCError<TypeConfig> {
        RPCError::Unreachable(Unreachable::from_string(self.describe(reason)))
    }

    /// Any other failure: openraft retries soon.
    pub fn network(&self, reason: impl std::fmt::Display) -> RPCError<TypeConfig> {
        RPCError::Network(NetworkError::from_string(self.describe(reason)))
    }

    /// Classifies a gRPC status as the module doc says.
    pub fn status_error(&self, status: &Status) -> RPCError<TypeConfig> {
        let reason = format!("{:?}: {}", status.code(), status.message());
        match status.code() {
            // tonic reports a passed `grpc-timeout` as CANCELLED ("Timeout expired").
            Code::DeadlineExceeded | Code::Cancelled => self.timeout_error(),
            Code::Unavailable
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::OutOfRange
            | Code::ResourceExhausted => self.unreachable(reason),
            _ => self.network(reason),
        }
    }

    fn describe(&self, reason: impl std::fmt::Display) -> String {
        format!(
            "{} of group {} from node {} to node {}: {reason}",
            self.action, self.group_id, self.from, self.target
        )
    }
}
