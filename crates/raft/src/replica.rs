//! [`Replica`]: keeps one partition replica running. A storage error stops the replica
//! (openraft reports it fatal); the supervisor then waits a backoff and reopens it from disk
//! (recovery returns the durable prefix), retrying with growing backoff. Meanwhile
//! [`Replica::status`] reports it down, which the node layer counts as under-replicated.

use crate::error::PartitionError;
use crate::partition::{Partition, PartitionConfig};
use crate::state_machine::StateHook;
use crate::types::TypeConfig;
use bytes::Bytes;
use openraft::network::RaftNetworkFactory;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use strata_log::FlusherHandle;
use tokio::sync::watch;

/// Longest wait between attempts to reopen a failed replica.
pub const REOPEN_BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Whether a replica is serving its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicaStatus {
    /// Open and taking part in its group.
    Running,
    /// Stopped by a failure; being reopened.
    Down {
        /// The failure.
        reason: String,
    },
    /// Stopped on purpose.
    Stopped,
}

type OnOpen = Arc<dyn Fn(&Arc<Partition>) + Send + Sync>;

/// A supervised partition replica.
pub struct Replica {
    slot: Arc<RwLock<Option<Arc<Partition>>>>,
    status: watch::Receiver<ReplicaStatus>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("status", &*self.status.borrow())
            .finish()
    }
}

fn read<T: Clone>(l: &RwLock<Option<T>>) -> Option<T> {
    strata_record::sync::read(l).clone()
}

use strata_record::sync::write;

impl Replica {
    /// Opens the replica and supervises it. `network` makes the group's network factory for
    /// each (re)open; `on_open` runs after each open (to register the Raft handle with the
    /// transport); `backoff` is the first wait before a reopen.
    pub async fn start<N, F>(
        config: PartitionConfig,
        flusher: FlusherHandle,
        network: F,
        hook: Option<Arc<dyn StateHook>>,
        on_open: impl Fn(&Arc<Partition>) + Send + Sync + 'static,
        backoff: Duration,
    ) -> Result<Replica, PartitionError>
    where
        N: RaftNetworkFactory<TypeConfig>,
        N::Network: openraft::network::NetSnapshot<TypeConfig, SnapshotData = Bytes>,
        F: Fn() -> N + Send + Sync + 'static,
    {
        let on_open: OnOpen = Arc::new(on_open);
        let first = match Partition::open(config.clone(), &flusher, network(), hook.clone()).await {
            Ok(p) => p,
            Err(e) => {
                // Reading the log at start found damage (or another failure): check every
                // frame and open what is intact (quarantined if recorded data was lost).
                tracing::warn!(group = config.group_id.get(), error = %e,
                    "opening the replica failed; retrying with a full check of its log");
                let mut verified = config.clone();
                verified.verify_on_open = true;
                Partition::open(verified, &flusher, network(), hook.clone()).await?
            }
        };
        let first = Arc::new(first);
        on_open(&first);
        let slot = Arc::new(RwLock::new(Some(first)));
        let (status_tx, status) = watch::channel(ReplicaStatus::Running);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(supervise(
            slot.clone(),
            status_tx,
            stop_rx,
            config,
            flusher,
            network,
            hook,
            on_open,
            backoff,
        ));
        Ok(Replica {
            slot,
            status,
            stop,
            task,
        })
    }

    /// The running partition, if the replica is up.
    pub fn partition(&self) -> Option<Arc<Partition>> {
        read(&self.slot)
    }

    /// The replica's status.
    pub fn status(&self) -> ReplicaStatus {
        self.status.borrow().clone()
    }

    /// A receiver of status changes.
    pub fn watch_status(&self) -> watch::Receiver<ReplicaStatus> {
        self.status.clone()
    }

    /// Stops supervising and returns the partition (if up) for the caller to stop.
    pub async fn into_partition(self) -> Option<Arc<Partition>> {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        write(&self.slot).take()
    }

    /// Stops supervising through a shared reference (others may hold the replica) and takes
    /// the partition (if up) for the caller to close; later [`Replica::partition`] calls
    /// return `None`. Waits until the supervisor has stopped, so no reopen can follow.
    pub async fn stop(&self) -> Option<Arc<Partition>> {
        let _ = self.stop.send(true);
        let mut status = self.status.clone();
        let _ = status
            .wait_for(|s| matches!(s, ReplicaStatus::Stopped))
            .await;
        write(&self.slot).take()
    }
}

#[allow(clippy::too_many_arguments)]
async fn supervise<N, F>(
    slot: Arc<RwLock<Option<Arc<Partition>>>>,
    status: watch::Sender<ReplicaStatus>,
    mut stop: watch::Receiver<bool>,
    config: PartitionConfig,
    flusher: FlusherHandle,
    network: F,
    hook: Option<Arc<dyn StateHook>>,
    on_open: OnOpen,
    first_backoff: Duration,
) where
    N: RaftNetworkFactory<TypeConfig>,
    N::Network: openraft::network::NetSnapshot<TypeConfig, SnapshotData = Bytes>,
    F: Fn() -> N + Send + Sync + 'static,
{
    use openraft::type_config::async_runtime::WatchReceiver;
    loop {
        // Wait until the running replica fails (or we are told to stop).
        let Some(p) = read(&slot) else {
            let _ = status.send(ReplicaStatus::Stopped);
            return;
        };
        // The full metrics change with every entry appended or applied; waking on each would
        // cost this task a wake-up per write. The server metrics change only with the vote,
        // the role or the membership, and close when the Raft core ends, which is how a fatal
        // error shows; the full metrics then hold its reason.
        let metrics = p.raft().metrics();
        let mut server = p.raft().server_metrics();
        let mut damage = p.watch_damage();
        drop(p);
        let stopped = || match &metrics.borrow_watched().running_state {
            Err(e) => e.to_string(),
            Ok(()) => "the replica stopped".to_string(),
        };
        let reason = loop {
            if let Err(e) = &metrics.borrow_watched().running_state {
                break e.to_string();
            }
            if let Some(d) = damage.borrow().clone() {
                break format!("damaged data: {d}");
            }
            tokio::select! {
                r = server.changed() => if r.is_err() { break stopped() },
                r = damage.changed() => if r.is_err() { break "the replica stopped".to_string() },
                _ = stop.changed() => {
                    let _ = status.send(ReplicaStatus::Stopped);
                    return;
                }
            }
        };
        tracing::error!(group = config.group_id.get(), %reason, "replica failed; reopening from disk");
        let _ = status.send(ReplicaStatus::Down {
            reason: reason.clone(),
        });
        let taken = write(&slot).take();
        let mut config = config.clone();
        if let Some(p) = &taken {
            // Reopen with nothing past what a successful sync covered (see
            // `PartitionConfig::durable_cut`). Read before the stop: the log is failed, so no
            // sync can complete and move it any more. If the process dies before the reopen
            // cuts, a restart reads the same page cache: see docs/testing.md.
            let durable = p.durable_log_index();
            config.durable_cut = Some(durable);
        }
        // Whatever failed (a read of damaged data, a storage error), check every frame on the
        // way back: recorded data that is damaged must be found now, not served later.
        config.verify_on_open = true;
        if let Some(p) = taken {
            // Wait for in-flight users to let go, then drop it without a clean close.
            let mut p = p;
            let p = loop {
                match Arc::try_unwrap(p) {
                    Ok(p) => break Some(p),
                    Err(back) => {
                        p = back;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        if *stop.borrow() {
                            break None;
                        }
                    }
                }
            };
            if let Some(p) = p {
                let _ = p.stop_abruptly().await;
            }
        }
        let mut backoff = first_backoff;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {
                    let _ = status.send(ReplicaStatus::Stopped);
                    return;
                }
            }
            match Partition::open(config.clone(), &flusher, network(), hook.clone()).await {
                Ok(p) => {
                    let p = Arc::new(p);
                    on_open(&p);
                    *write(&slot) = Some(p);
                    let _ = status.send(ReplicaStatus::Running);
                    tracing::info!(group = config.group_id.get(), "replica reopened");
                    break;
                }
                Err(e) => {
                    let _ = status.send(ReplicaStatus::Down {
                        reason: e.to_string(),
                    });
                    backoff = (backoff * 2).min(REOPEN_BACKOFF_MAX);
                }
            }
        }
    }
}
