//! Injected ENOSPC and EIO at append, sync and roll: a storage error, nothing corrupted,
//! appends resume when the fault clears, and a failed sync is never reported durable.

use super::*;
use crate::LogError;
use crate::sim::{CrashMode, Op};

fn fill(log: &mut Log, from: u64, to: u64, term: u64) {
    for i in from..=to {
        let b = batch(1, 200, i, 0);
        log.append(&[data(term, i, &b)]).unwrap();
    }
}

#[test]
fn enospc_reserving_space_is_an_error_and_appends_resume() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    fill(&mut log, 1, 5, 1);
    h.sim.inject(Op::Allocate, libc::ENOSPC, None);
    let b = batch(1, 3000, 77, 0);
    let mut failures = 0;
    for _ in 0..3 {
        match log.append(&[data(1, 6, &b)]) {
            Err(LogError::Io { source, .. }) => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC));
                failures += 1;
            }
            other => panic!("expected ENOSPC, got {other:?}"),
        }
    }
    assert_eq!(failures, 3);
    assert_eq!(log.next_index(), ix(6));
    h.sim.clear_faults();
    log.append(&[data(1, 6, &b)]).unwrap();
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    assert_eq!(log.next_index(), ix(7));
    assert_eq!(
        log.reader()
            .entries(ix(1), ix(7), usize::MAX)
            .unwrap()
            .len(),
        6
    );
}

#[test]
fn failed_roll_leaves_the_log_usable() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    fill(&mut log, 1, 10, 1); // 4 KiB segments: the next appends roll
    for op in [Op::Create, Op::Allocate] {
        h.sim.inject(op, libc::ENOSPC, Some(1));
        let b = batch(1, 3900, 5, 0);
        let next = log.next_index();
        let r = log.append(&[data(1, next.get(), &b)]);
        assert!(matches!(r, Err(LogError::Io { .. })), "{op:?}: {r:?}");
        assert_eq!(log.next_index(), next);
        log.append(&[data(1, next.get(), &b)]).unwrap();
    }
    let last = log.next_index().get() - 1;
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    assert_eq!(log.next_index().get() - 1, last);
}

#[test]
fn eio_on_write_fails_the_log_until_reopened() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    fill(&mut log, 1, 3, 1);
    log.flush_wait().unwrap();
    h.sim.inject(Op::Write, libc::EIO, Some(1));
    let b = batch(1, 100, 9, 0);
    assert!(matches!(
        log.append(&[data(1, 4, &b)]),
        Err(LogError::Io { .. })
    ));
    assert!(matches!(
        log.append(&[data(1, 4, &b)]),
        Err(LogError::Failed { .. })
    ));
    assert!(matches!(log.flush_wait(), Err(LogError::Failed { .. })));
    drop(log);
    let mut log = h.open().unwrap();
    assert_eq!(log.next_index(), ix(4));
    fill(&mut log, 4, 8, 1);
    log.flush_wait().unwrap();
    assert_eq!(
        log.reader()
            .entries(ix(1), ix(9), usize::MAX)
            .unwrap()
            .len(),
        8
    );
}

#[test]
fn failed_sync_is_never_reported_durable() {
    for op in [Op::Sync, Op::SyncDir, Op::Rename] {
        let h = Harness::new(small_config());
        let mut log = h.open().unwrap();
        fill(&mut log, 1, 4, 1);
        log.flush_wait().unwrap();
        // Enough to roll (so the round also writes a manifest: dir sync and rename).
        fill(&mut log, 5, 30, 1);
        h.sim.inject(op, libc::EIO, None);
        let r = log.flush_wait();
        assert!(r.is_err(), "{op:?}: a failed sync reported durable");
        assert!(matches!(log.flush_wait(), Err(LogError::Failed { .. })));
        let b = batch(1, 10, 1, 0);
        assert!(log.append(&[data(1, 31, &b)]).is_err());
        drop(log);
        h.sim.crash(CrashMode::DropAll).unwrap();
        let mut log = h.open().unwrap();
        // Entries 1..=4 were durable; the rest may or may not have survived, but what
        // survived is intact and appends continue after it.
        let last = log.next_index().get() - 1;
        assert!(last >= 4, "{op:?}: durable entries lost");
        let got = log
            .reader()
            .entries(ix(1), ix(last + 1), usize::MAX)
            .unwrap();
        assert_eq!(got.len() as u64, last);
        fill(&mut log, last + 1, last + 3, 2);
        log.flush_wait().unwrap();
    }
}

/// Issue 8, item 4: a truncation synced only the files still marked dirty and then wrote a
/// manifest sealing the cut segment, while a flusher round that had taken those files was
/// still inside their fdatasync. If that sync failed (or the power went), the manifest sealed
/// frames that never reached the disk; a sealed segment is trusted without a scan, so the log
/// claimed entries it could not read. Now a truncation waits for the round.
#[test]
fn a_truncation_racing_a_flusher_round_never_seals_unsynced_frames() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    fill(&mut log, 1, 3, 1);
    log.flush_wait().unwrap();
    fill(&mut log, 4, 8, 1);
    h.sim
        .hold_syncs(|p| p.extension().is_some_and(|e| e == "log"));
    log.flush(|_| {});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.sim.held_syncs() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the round never synced"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let truncation = std::thread::spawn(move || {
        let r = log.truncate_after(ix(6));
        (log, r)
    });
    // Gives a truncation that does not wait for the round the time to finish (pacing; with
    // the fix it blocks until the release below).
    std::thread::sleep(std::time::Duration::from_millis(200));
    h.sim.release_syncs(true);
    let (log, _truncated) = truncation.join().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    let last = log.next_index().get() - 1;
    assert!(last >= 3, "synced entries lost: the log ends at {last}");
    let got = log.reader().entries(ix(1), ix(last + 1), usize::MAX);
    assert!(
        got.as_ref().is_ok_and(|g| g.len() as u64 == last),
        "the log claims entries up to {last} but reads {got:?}"
    );
}

/// SimDisk: bytes a failed sync lost and a later write rewrote are durable once a later sync
/// succeeds (a crash used to put the lost writes' old bytes back over them).
#[test]
fn a_rewrite_synced_after_a_failed_sync_survives_a_crash() {
    use std::io::IoSlice;
    let h = Harness::new(small_config());
    let path = h.root.path().join("f");
    let disk: &dyn Disk = &*h.sim;
    let f = disk.create_file(&path).unwrap();
    disk.sync_dir(h.root.path()).unwrap();
    disk.write_at(&f, &[IoSlice::new(&[1u8; 100])], 0).unwrap();
    h.sim.inject(Op::Sync, libc::EIO, Some(1));
    assert!(disk.sync_data(&f).is_err());
    disk.write_at(&f, &[IoSlice::new(&[2u8; 60])], 20).unwrap();
    disk.sync_data(&f).unwrap();
    drop(f);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let got = std::fs::read(&path).unwrap();
    assert_eq!(got.len(), 100, "the size the later sync made durable");
    assert!(
        got[..20].iter().all(|b| *b == 0),
        "lost bytes come back as before"
    );
    assert!(
        got[20..80].iter().all(|b| *b == 2),
        "the synced rewrite is durable"
    );
    assert!(got[80..].iter().all(|b| *b == 0));
}

/// The path of fault schedule seed 4791 as far as it is understood (a failed sync, the replica
/// reopened from the page cache and cut at its last good sync, more entries synced, then a
/// power loss): every entry synced after the cut is readable. This passes with and without the
/// SimDisk fix above; what made seed 4791's replica find a zeroed frame inside a sealed
/// segment is not explained yet (docs/testing.md).
#[test]
fn entries_rewritten_after_a_failed_sync_survive_a_power_loss() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    fill(&mut log, 1, 4, 1);
    log.flush_wait().unwrap();
    fill(&mut log, 5, 12, 1);
    h.sim.inject(Op::Sync, libc::EIO, Some(1));
    assert!(log.flush_wait().is_err());
    drop(log);
    // The supervisor reopens from the page cache and cuts at the last good sync.
    let mut log = h.open().unwrap();
    log.truncate_after(ix(4)).unwrap();
    fill(&mut log, 5, 40, 2);
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    assert_eq!(log.next_index(), ix(41));
    let got = log.reader().entries(ix(1), ix(41), usize::MAX).unwrap();
    assert_eq!(got.len(), 40);
}

/// Issue 8, item 3's last window: a process that dies after a failed fdatasync, before its log
/// is reopened with the durable cut, restarts on the same page cache, where the failed sync's
/// writes are still readable. The failed flush records the last durable index in the state
/// file, and the next open cuts there.
#[test]
fn a_restart_after_a_failed_sync_does_not_take_the_page_cache_as_durable() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    fill(&mut log, 1, 3, 1);
    log.flush_wait().unwrap();
    fill(&mut log, 4, 6, 1);
    h.sim.inject(Op::Sync, libc::EIO, Some(1));
    assert!(log.flush_wait().is_err(), "a failed sync reported durable");
    // The process dies: no power loss, the page cache (the files as they are) survives.
    drop(log);
    let mut log = h.open().unwrap();
    assert_eq!(
        log.next_index(),
        ix(4),
        "entries only the page cache held came back as durable"
    );
    // Appends continue after the cut; a power loss now keeps what was synced since.
    fill(&mut log, 4, 5, 2);
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    assert_eq!(log.next_index(), ix(6));
    let got = log.reader().entries(ix(1), ix(6), usize::MAX).unwrap();
    assert_eq!(got.len(), 5);
    assert!(got[3..].iter().all(|e| e.term == 2));
}

/// Issue 8, item 6: a truncation used to take the trim and the index files away from every
/// file waiting for the flusher, segments sealed earlier by a roll included: they stayed
/// padded to their preallocation and rebuilt their indexes at every open. Only the cut
/// segment loses them now.
#[test]
fn a_truncation_keeps_the_trim_of_segments_sealed_before_it() {
    let h = Harness::new(LogConfig {
        preallocate_bytes_min: 8192,
        preallocate_bytes_step: 8192,
        ..small_config()
    });
    let mut log = h.open().unwrap();
    // Several rolls, nothing flushed: the sealed segments wait in the flusher's list.
    fill(&mut log, 1, 40, 1);
    let (sealed, last) = {
        let v = log.shared.read_view();
        assert!(v.segments.len() >= 3, "no roll");
        let s = &v.segments[0];
        (
            (s.path.clone(), s.len),
            v.segments.last().unwrap().first_index,
        )
    };
    // Cut inside the last segment, then flush.
    log.truncate_after(last.next()).unwrap();
    log.flush_wait().unwrap();
    let (path, len) = sealed;
    let file_len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(file_len, len, "a segment sealed by a roll stayed padded");
    assert!(
        path.with_extension("index").exists(),
        "a segment sealed by a roll lost its index files"
    );
}

/// Issue 8, item 6: `reset_to` (a snapshot install) and a running flusher round both wrote
/// the next slot of the state file; the round, finishing after the reset, wrote the purge
/// point it had taken at its start over the reset's newer one. The reset now waits for the
/// round.
#[test]
fn a_reset_racing_a_flusher_round_keeps_its_purge_point() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    fill(&mut log, 1, 10, 1);
    log.flush_wait().unwrap();
    fill(&mut log, 11, 12, 1);
    log.save_committed(lid(1, 10));
    h.sim
        .hold_syncs(|p| p.extension().is_some_and(|e| e == "log"));
    log.flush(|_| {});
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while h.sim.held_syncs() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the round never synced"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let installed = lid(5, 100);
    let reset = std::thread::spawn(move || {
        let r = log.reset_to(installed, off(1000));
        (log, r)
    });
    // Gives a reset that does not wait for the round the time to write its state first
    // (pacing; with the fix it waits for the release below).
    std::thread::sleep(std::time::Duration::from_millis(200));
    h.sim.release_syncs(false);
    let (log, r) = reset.join().unwrap();
    r.unwrap();
    // As a crash would find it now (a later round would write the state again).
    drop(log);
    let bytes = std::fs::read(h.dir().join(crate::manifest::STATE_FILE)).unwrap();
    let state = crate::manifest::StateRecord::read_best(&bytes).unwrap();
    assert_eq!(
        state.last_purged,
        Some(installed),
        "the state file's purge point went back: {state:?}"
    );
}
