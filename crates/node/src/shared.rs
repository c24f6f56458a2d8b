//! [`Shared`]: what the services and background tasks of one node share (config, identity,
//! controller, replicas, liveness, hints, broker), the readiness probe over it, and the
//! free-space check of the data directory.

use crate::config::NodeConfig;
use crate::controller::Controller;
use crate::meta::ClusterMeta;
use crate::observe::Probe;
use crate::replicas::Replicas;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use strata_broker::Broker;
use strata_raft::liveness::Liveness;
use strata_raft::transport::PeerIdentity;

/// Health summary of the cluster as one node sees it.
pub use strata_broker::types::Health;

/// What the services and tasks of a node share.
pub struct Shared {
    /// The configuration.
    pub config: NodeConfig,
    /// This node's identity on the peer port.
    pub identity: PeerIdentity,
    /// The controller.
    pub controller: Arc<Controller>,
    /// The replicas hosted here.
    pub replicas: Arc<Replicas>,
    /// Which nodes this node hears from.
    pub liveness: Arc<Liveness>,
    /// Leaders of partitions not hosted here, as other nodes said.
    pub hints: Arc<crate::controller::LeaderHints>,
    /// The broker the client API calls.
    pub broker: Arc<Broker>,
    pub(crate) registered: AtomicBool,
}

impl Shared {
    /// The cluster id as text.
    pub fn cluster_id_text(&self) -> String {
        self.broker.cluster_id().to_string()
    }

    /// Whether node `id` was heard from within the election timeout (this node: always).
    pub fn alive(&self, id: u64) -> bool {
        self.broker.alive(id)
    }

    /// The cluster's health as this node sees it.
    pub fn health(&self, meta: &ClusterMeta) -> Health {
        self.broker.health(meta)
    }

    pub(crate) fn refresh_disk(&self) {
        let free = free_bytes(&self.config.data_dir).unwrap_or(u64::MAX);
        self.broker.set_disk_free(free);
        metrics::gauge!("strata_disk_free_bytes").set(free as f64);
    }
}

impl Probe for Shared {
    fn ready(&self) -> Result<(), String> {
        if !self.registered.load(Ordering::Relaxed) {
            return Err("not registered with the controller yet".into());
        }
        // The controller must be able to act now, not merely be remembered: its leader is
        // this node and serves (a quorum acknowledged it within the lease), or another node
        // heard from within the election timeout. A leader known from before its quorum was
        // lost does not count.
        match self.controller.leader() {
            None => return Err("no controller leader known".into()),
            Some((id, _)) if id == self.identity.node_id => {
                if !self
                    .controller
                    .partition()
                    .is_some_and(|p| p.can_serve(|id| self.alive(id)))
                {
                    return Err("this node leads the controller but has no quorum".into());
                }
            }
            Some((id, _)) => {
                if !self.alive(id) {
                    return Err(format!(
                        "the controller leader (node {id}) has not been heard from"
                    ));
                }
            }
        }
        let down = self.replicas.down();
        if down > 0 {
            return Err(format!("{down} replicas are down (reopening)"));
        }
        Ok(())
    }

    fn refresh_gauges(&self) {
        let meta = self.controller.snapshot();
        let h = self.health(&meta);
        metrics::gauge!("strata_node_up").set(1.0);
        metrics::gauge!("strata_partitions_leaderless").set(h.leaderless as f64);
        metrics::gauge!("strata_partitions_under_replicated").set(h.under_replicated as f64);
        metrics::gauge!("strata_replicas_down").set(self.replicas.down() as f64);
        for r in self.replicas.all() {
            let Some(p) = r.partition() else { continue };
            let labels = [
                ("topic", r.topic.clone()),
                ("partition", r.partition.to_string()),
            ];
            let me = self.identity.node_id;
            let st = p.status();
            metrics::gauge!("strata_partition_leader", &labels).set(st.leader.unwrap_or(0) as f64);
            metrics::gauge!("strata_partition_term", &labels).set(st.term as f64);
            // 1 only while this replica can serve as leader (see `Partition::can_serve`), not
            // while it merely believes it leads (cut off from its quorum, or catching up).
            metrics::gauge!("strata_partition_is_leader", &labels).set(
                if p.can_serve(|id| self.alive(id)) {
                    1.0
                } else {
                    0.0
                },
            );
            if st.leader == Some(me) {
                let last = st.last_log_index.unwrap_or_default();
                for id in st.members.keys().filter(|id| **id != me) {
                    let matched = st.matched.get(id).copied().unwrap_or_default();
                    let mut l = labels.to_vec();
                    l.push(("replica", id.to_string()));
                    metrics::gauge!("strata_partition_replica_lag_entries", &l)
                        .set(last.entries_after(matched) as f64);
                }
            }
            metrics::gauge!("strata_partition_high_watermark", &labels)
                .set(p.high_watermark() as f64);
        }
    }
}

/// Free bytes on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut s = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated path and `s` points to writable memory of the
    // right size; statvfs writes it fully on success.
    let r = unsafe { libc::statvfs(c.as_ptr(), s.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialized `s`.
    let s = unsafe { s.assume_init() };
    #[allow(clippy::unnecessary_cast)] // c_ulong width differs across targets
    let free = (s.f_bavail as u64).saturating_mul(s.f_frsize as u64);
    Some(free)
}
