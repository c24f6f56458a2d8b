//! [`NodeError`]: why a node could not start, with what the operator can act on.

/// Why a node could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Configuration or identity problem the operator must fix.
    #[error("{0}")]
    Config(String),
    /// An IO failure.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The cluster refused this node.
    #[error("refused by the cluster: {0}")]
    Refused(String),
    /// The peer transport could not be set up (its configuration).
    #[error("peer transport: {0}")]
    Transport(#[from] strata_raft::transport::TransportError),
    /// The controller replica could not be opened.
    #[error("open the controller: {0}")]
    Controller(#[source] strata_raft::error::PartitionError),
    /// An empty data directory could not join the cluster at the address given.
    #[error("could not join the cluster via {via}: {last}")]
    Join {
        /// The address given to join through.
        via: String,
        /// The last error seen.
        last: String,
    },
    /// A file of the data directory could not be written durably.
    #[error("write {what}: {source}")]
    Write {
        /// What was being written.
        what: &'static str,
        /// The error.
        source: strata_log::LogError,
    },
    /// A file of the data directory could not be encoded.
    #[error("encode {what}: {source}")]
    Encode {
        /// What was being written.
        what: &'static str,
        /// The error.
        source: serde_json::Error,
    },
}

pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NodeError {
    let what = what.into();
    move |source| NodeError::Io { what, source }
}
