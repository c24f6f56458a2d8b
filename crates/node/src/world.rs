//! [`World`]: what a node takes from its surroundings, so that one process can run several
//! whole nodes (the in-process node harness in `tests/`) as easily as the binary runs one.
//!
//! A world supplies:
//! - **listeners**: the client, peer and HTTP sockets. By default the node binds the addresses
//!   of its config (a restarted node asked for port 0 takes its previous ports when they are
//!   free); a test may hand over sockets it bound itself.
//! - **the disk**: the [`Disk`] every log of the node (controller and partitions) writes
//!   through. Production uses [`RealDisk`]; tests pass a `SimDisk`, whose crash drops every
//!   write no sync covered. The node's small identity and address files are written with
//!   their own fsyncs outside this seam: they are not part of the log's durability protocol.
//! - **peer links**: a [`LinkControl`] consulted before every Raft message, liveness message
//!   and forwarded controller call the node sends, so a test can cut, drop and delay links
//!   between nodes of one process. Production has none (one atomic load per message when
//!   present and clear).
//! - **the peer transport settings** ([`TransportConfig`]).
//!
//! Time is not part of the seam: openraft schedules its timers on tokio's clock through its
//! own runtime, so a test clock would have to be a paused tokio runtime, which cannot run real
//! sockets. Tests shorten the configured timeouts instead.

use std::sync::Arc;
use strata_log::{Disk, RealDisk};
use strata_raft::transport::{LinkControl, TransportConfig};
use tokio::net::TcpListener;

/// Sockets a test bound itself, handed to the node instead of the config's addresses.
pub struct Listeners {
    /// The client API (Strata and Admin services).
    pub client: TcpListener,
    /// The peer port (Raft, liveness, controller forwarding).
    pub peer: TcpListener,
    /// `/livez`, `/readyz`, `/metrics`.
    pub http: TcpListener,
}

/// What a node takes from its surroundings (see the module docs).
pub struct World {
    /// Pre-bound sockets; `None` binds the config's addresses.
    pub listeners: Option<Listeners>,
    /// The disk every log of the node writes through.
    pub disk: Arc<dyn Disk>,
    /// Fault control of the links from this node to its peers, if any.
    pub links: Option<Arc<LinkControl>>,
    /// Peer transport settings.
    pub transport: TransportConfig,
}

impl World {
    /// The production world: the config's addresses, the real disk, no link faults, the
    /// default transport.
    pub fn real() -> World {
        World {
            listeners: None,
            disk: Arc::new(RealDisk),
            links: None,
            transport: TransportConfig::default(),
        }
    }

    /// The real world with another disk (tests of storage faults).
    pub fn with_disk(mut self, disk: Arc<dyn Disk>) -> World {
        self.disk = disk;
        self
    }

    /// The world with link faults controlled by `links` (shared by every node of a test).
    pub fn with_links(mut self, links: Arc<LinkControl>) -> World {
        self.links = Some(links);
        self
    }
}

impl Default for World {
    fn default() -> World {
        World::real()
    }
}
