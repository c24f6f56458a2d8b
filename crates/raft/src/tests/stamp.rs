//! A follower takes a leader's batch in only at the offset its own log gives it (see
//! `store::check_leader_stamps`): a batch the leader stamped at another offset is refused
//! before anything is written.

use crate::state_machine::PartitionState;
use crate::store::LogStore;
use crate::types::{BatchCommand, Command, Entry, LogId, Payload};
use crate::{RaftIndex, codec};
use bytes::Bytes;
use openraft::storage::{IOFlushed, RaftLogStorage};
use std::sync::{Arc, Mutex};
use strata_log::{EntryKind, Flusher, Log, LogConfig, LogIndex, Offset, RealDisk};
use strata_record::{BatchBuilder, NewRecord, stamp_base_offset};

/// A batch of `records` records stamped at `base_offset`, as a leader's log holds it.
fn stamped(base_offset: i64, records: usize) -> Bytes {
    let mut b = BatchBuilder::new();
    for i in 0..records {
        b.append(&NewRecord::new(i as i64, None, Some(Bytes::from("v"))))
            .expect("record");
    }
    let mut bytes = b.build().to_vec();
    stamp_base_offset(&mut bytes, base_offset);
    Bytes::from(bytes)
}

/// The entry a follower receives from its leader (decoded as the transport decodes it).
fn from_leader(raft_index: u64, batch: Bytes) -> Entry {
    codec::decode_entry(1, RaftIndex::new(raft_index), EntryKind::Data, batch).expect("entry")
}

async fn append(store: &mut LogStore, entries: Vec<Entry>) -> std::io::Result<()> {
    store.append(entries, IOFlushed::noop()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_refuses_a_batch_the_leader_stamped_at_another_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let flusher = Flusher::start("stamp").expect("flusher");
    let log = Log::open(
        dir.path().join("p"),
        LogConfig::default(),
        Arc::new(RealDisk),
        &flusher.handle(),
    )
    .expect("open log");
    let state = PartitionState::new(Offset::new(0), i64::MAX);
    let mut store = LogStore::new(log, 1 << 20, Some(state)).expect("store");
    let next_offset = |s: &LogStore| s.log_reader().bounds().next_offset.get();

    // In step: three records at 0, then a blank entry, then one record at 3.
    let blank = Entry {
        log_id: LogId::new(openraft::vote::leader_id_std::CommittedLeaderId::new(1), 1),
        payload: Payload::Blank,
    };
    append(&mut store, vec![from_leader(0, stamped(0, 3)), blank])
        .await
        .expect("batches in step are taken");
    assert_eq!(next_offset(&store), 3);

    // The leader stamped 5 where this log is at 3: refused, nothing written.
    let err = append(
        &mut store,
        vec![from_leader(2, stamped(3, 1)), from_leader(3, stamped(5, 1))],
    )
    .await
    .expect_err("a mis-stamped batch is refused");
    assert!(
        err.to_string()
            .contains("the leader stamped base offset 5 where this replica's log is at offset 4"),
        "{err}"
    );
    assert_eq!(
        next_offset(&store),
        3,
        "nothing of the refused append was written"
    );
    assert_eq!(
        store.log_reader().bounds().last_log_id.map(|l| l.index),
        Some(LogIndex::new(2))
    );

    // A batch stamped behind the log is refused too.
    let err = append(&mut store, vec![from_leader(2, stamped(2, 1))])
        .await
        .expect_err("a batch stamped behind is refused");
    assert!(err.to_string().contains("base offset 2"), "{err}");

    // The same entries stamped right are taken.
    append(
        &mut store,
        vec![from_leader(2, stamped(3, 1)), from_leader(3, stamped(4, 1))],
    )
    .await
    .expect("in step again");
    assert_eq!(next_offset(&store), 5);

    // A batch proposed on this replica is not stamped yet (its producer's header says 0): the
    // log stamps it at its next offset, and the local writer learns that offset.
    let got = Arc::new(Mutex::new(None));
    let ack = got.clone();
    let local = BatchCommand::with_local_ack(
        stamped(0, 2),
        Box::new(move |o| *ack.lock().expect("lock") = Some(o)),
    );
    let proposed = Entry {
        log_id: LogId::new(openraft::vote::leader_id_std::CommittedLeaderId::new(1), 4),
        payload: Payload::Normal(Command::Batch(local)),
    };
    append(&mut store, vec![proposed])
        .await
        .expect("a local proposal is stamped, not checked");
    assert_eq!(*got.lock().expect("lock"), Some(Offset::new(5)));
    assert_eq!(next_offset(&store), 7);
}
