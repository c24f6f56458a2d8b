//! [`PartitionError`]'s variants: what each openraft, log and IO error becomes, and the ones a
//! live partition answers (already initialized, closed).

use crate::GroupId;
use crate::error::PartitionError;
use crate::partition::{Partition, PartitionConfig, RaftTiming};
use crate::transport::{PeerIdentity, PeerNetwork, Peers, TransportConfig};
use crate::types::TypeConfig;
use openraft::error::{
    ChangeMembershipError, ClientWriteError, EmptyMembership, ErrorSource, Fatal, ForwardToLeader,
    RaftError,
};
use openraft::{BasicNode, StorageError};
use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use strata_log::{Flusher, LogError};

#[test]
fn forward_to_leader_is_not_leader_with_the_hint() {
    let f = ForwardToLeader::<TypeConfig>::new(3, BasicNode::new("10.0.0.3:7000"));
    assert_eq!(
        PartitionError::from(f),
        PartitionError::NotLeader {
            leader_id: Some(3),
            leader_addr: Some("10.0.0.3:7000".into()),
        }
    );
    let write = ClientWriteError::<TypeConfig>::ForwardToLeader(ForwardToLeader::empty());
    assert_eq!(
        PartitionError::from(RaftError::APIError(write)),
        PartitionError::NotLeader {
            leader_id: None,
            leader_addr: None,
        }
    );
}

#[test]
fn client_write_errors_are_told_apart() {
    let discarded = ClientWriteError::<TypeConfig>::LogEntryDiscarded(ForwardToLeader::new(
        2,
        BasicNode::new("b"),
    ));
    assert!(matches!(
        PartitionError::from(discarded),
        PartitionError::Indeterminate { reason } if reason.contains("Some(2)")
    ));
    let refused = ClientWriteError::<TypeConfig>::ChangeMembershipError(
        ChangeMembershipError::EmptyMembership(EmptyMembership {}),
    );
    assert!(matches!(
        PartitionError::from(refused),
        PartitionError::MembershipRefused { .. }
    ));
}

#[test]
fn a_stopped_group_is_storage_stopped_or_internal() {
    let storage = StorageError::<TypeConfig>::write(ErrorSource::from_string("disk gone"));
    assert!(matches!(
        PartitionError::from(Fatal::StorageError(storage)),
        PartitionError::Storage { reason } if reason.contains("disk gone")
    ));
    assert_eq!(
        PartitionError::from(Fatal::<TypeConfig>::Stopped),
        PartitionError::Stopped
    );
    assert!(matches!(
        PartitionError::from(
            RaftError::<TypeConfig, ClientWriteError<TypeConfig>>::Fatal(Fatal::Panicked)
        ),
        PartitionError::Internal { .. }
    ));
}

fn corrupt() -> LogError {
    LogError::Corrupt {
        path: PathBuf::from("00000000000000000000.log"),
        position: 4096,
        reason: "frame checksum mismatch".into(),
    }
}

#[test]
fn log_errors_are_corrupt_storage_or_internal() {
    assert!(matches!(
        PartitionError::log(corrupt()),
        PartitionError::Corrupt { reason } if reason.contains("checksum")
    ));
    let io = LogError::Io {
        op: "sync",
        path: PathBuf::from("x"),
        source: io::Error::from_raw_os_error(5),
    };
    assert!(matches!(
        PartitionError::log(io),
        PartitionError::Storage { .. }
    ));
    let failed = LogError::Failed {
        dir: PathBuf::from("p"),
        reason: "a sync failed".into(),
    };
    assert!(matches!(
        PartitionError::log(failed),
        PartitionError::Storage { .. }
    ));
    let invalid = LogError::InvalidEntry {
        index: strata_log::LogIndex::new(7),
        reason: "expected index 6".into(),
    };
    assert!(matches!(
        PartitionError::log(invalid),
        PartitionError::Internal { .. }
    ));
}

#[test]
fn io_errors_carrying_a_log_error_map_as_the_log_error() {
    assert!(matches!(
        PartitionError::io(io::Error::other(corrupt())),
        PartitionError::Corrupt { .. }
    ));
    assert!(matches!(
        PartitionError::io(io::Error::new(io::ErrorKind::InvalidData, "bad vote")),
        PartitionError::Corrupt { .. }
    ));
    assert!(matches!(
        PartitionError::io(io::Error::from_raw_os_error(28)),
        PartitionError::Storage { .. }
    ));
}

#[test]
fn the_closed_and_already_initialized_messages_say_what_happened() {
    assert!(PartitionError::Closed.to_string().contains("closed"));
    assert!(
        PartitionError::AlreadyInitialized
            .to_string()
            .contains("already initialized")
    );
}

/// A one-voter group on a real log (its peer transport is never used).
async fn single(dir: &std::path::Path, flusher: &Flusher) -> Partition {
    let identity = PeerIdentity {
        cluster_id: 1,
        node_id: 1,
        incarnation: 1,
    };
    let peers = Peers::new(identity, TransportConfig::default()).expect("peers");
    let mut config = PartitionConfig::new(GroupId::new(1), 1, dir.join("p"));
    config.timing = RaftTiming {
        heartbeat_ms: 50,
        election_timeout_min_ms: 200,
        election_timeout_max_ms: 400,
    };
    Partition::open(
        config,
        &flusher.handle(),
        PeerNetwork::new(GroupId::new(1), peers),
        None,
    )
    .await
    .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_initialize_is_already_initialized_and_a_closed_replica_says_closed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flusher = Flusher::start("errors").expect("flusher");
    let p = Arc::new(single(dir.path(), &flusher).await);
    let voters = BTreeMap::from([(1, "127.0.0.1:1".to_string())]);
    p.initialize(voters.clone()).await.expect("initialize");
    assert_eq!(
        p.initialize(voters).await,
        Err(PartitionError::AlreadyInitialized)
    );
    p.elect().await.expect("elect");
    p.raft()
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader == Some(1), "leader")
        .await
        .expect("leads");
    p.ensure_serving().await.expect("a ready leader");

    // Another holder's handle outlives the close: its calls fail with `Closed`.
    let other = p.clone();
    p.close().await.expect("close");
    assert_eq!(
        other.read(0, 1 << 10, Duration::ZERO).await,
        Err(PartitionError::Closed)
    );
    assert_eq!(other.ensure_serving().await, Err(PartitionError::Closed));
}
