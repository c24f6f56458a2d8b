use super::*;
use crate::LogError;
use crate::sim::CrashMode;

#[test]
fn append_read_and_reopen() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    let mut expected = Vec::new();
    for i in 1..=50u64 {
        let b = batch(1 + (i as usize % 4), 100, i, 1000 + i as i64 * 10);
        let a = log.append(&[data(1, i, &b)]).unwrap();
        assert_eq!(a[0].index, ix(i));
        expected.push((a[0].base_offset, b));
    }
    log.flush_wait().unwrap();
    let reader = log.reader();
    let all = reader.read(off(0), usize::MAX, NO_LIMIT).unwrap();
    assert_eq!(all.len(), 50);
    let mut next = off(0);
    for (e, (base, b)) in all.iter().zip(&expected) {
        assert_eq!(e.base_offset, next);
        assert_eq!(e.base_offset, *base);
        // The stored batch differs only in the stamped base offset and leader epoch.
        assert_eq!(&e.payload[16..], &b[16..]);
        let parsed = strata_record::Batch::parse(e.payload.clone()).unwrap();
        assert_eq!(parsed.base_offset(), e.base_offset.get());
        next = e.next_offset();
    }
    // Random reads by offset land in the right batch.
    for o in 0..next.get() {
        let r = reader.read(off(o), 1, NO_LIMIT).unwrap();
        assert!(r[0].base_offset <= off(o) && off(o) < r[0].next_offset());
    }
    assert!(matches!(
        reader.read(next.plus_records(1), 1, NO_LIMIT),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(reader.read(next, 1, NO_LIMIT).unwrap().is_empty());
    log.close().unwrap();
    let log = h.open().unwrap();
    let again = log.reader().read(off(0), usize::MAX, NO_LIMIT).unwrap();
    assert_eq!(again, all);
    assert_eq!(log.next_index(), ix(51));
}

#[test]
fn crash_keeps_synced_and_drops_unsynced() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    for i in 1..=30u64 {
        let b = batch(2, 200, i, i as i64);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    log.flush_wait().unwrap();
    for i in 31..=40u64 {
        let b = batch(2, 200, i, i as i64);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    assert_eq!(log.next_index(), ix(31));
    assert_eq!(log.next_offset(), off(60));
    let entries = log.reader().entries(ix(1), ix(31), usize::MAX).unwrap();
    assert_eq!(entries.len(), 30);
}

#[test]
fn truncate_then_append_and_crash() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    for i in 1..=20u64 {
        let b = batch(1, 300, i, 0);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    log.truncate_after(ix(12)).unwrap();
    assert_eq!(log.next_index(), ix(13));
    assert_eq!(log.next_offset(), off(12));
    for i in 13..=15u64 {
        let b = batch(3, 10, 100 + i, 0);
        log.append(&[data(2, i, &b)]).unwrap();
    }
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    let e = log.reader().entries(ix(1), ix(16), usize::MAX).unwrap();
    assert_eq!(e.len(), 15);
    assert_eq!(e[12].term, 2);
    assert_eq!(e[12].base_offset, off(12));
    assert_eq!(log.next_offset(), off(21));
}

#[test]
fn purge_and_reset() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    for i in 1..=40u64 {
        let b = batch(1, 300, i, 0);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    log.purge(lid(1, 25)).unwrap();
    log.flush_wait().unwrap();
    let r = log.reader();
    assert_eq!(r.bounds().first_index, ix(26));
    assert_eq!(r.bounds().log_start_offset, off(25));
    assert!(matches!(
        r.read(off(3), 10, NO_LIMIT),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(r.read(off(25), 1, NO_LIMIT).unwrap()[0].index, ix(26));
    log.close().unwrap();
    let mut log = h.open().unwrap();
    assert_eq!(log.reader().bounds().first_index, ix(26));
    assert_eq!(log.last_purged(), Some(lid(1, 25)));
    log.reset_to(lid(3, 100), off(500)).unwrap();
    let b = batch(2, 10, 1, 0);
    let a = log.append(&[data(3, 101, &b)]).unwrap();
    assert_eq!(a[0].base_offset, off(500));
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    assert_eq!(log.next_index(), ix(102));
    assert_eq!(log.next_offset(), off(502));
    assert_eq!(log.last_purged(), Some(lid(3, 100)));
}

#[test]
fn non_data_entries_take_no_offsets() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    let b = batch(3, 10, 1, 0);
    let a = log
        .append(&[
            NewEntry {
                term: 1,
                index: ix(1),
                kind: EntryKind::Blank,
                payload: b"",
                stamped: false,
                verified: false,
            },
            data(1, 2, &b),
            NewEntry {
                term: 1,
                index: ix(3),
                kind: EntryKind::Membership,
                payload: b"members",
                stamped: false,
                verified: false,
            },
            data(1, 4, &b),
        ])
        .unwrap();
    let offsets: Vec<i64> = a.iter().map(|x| x.base_offset.get()).collect();
    assert_eq!(offsets, vec![0, 0, 3, 3]);
    let read = log.reader().read(off(0), usize::MAX, NO_LIMIT).unwrap();
    assert_eq!(read.len(), 2);
    let m = log.reader().entry(ix(3)).unwrap();
    assert_eq!(&m.payload[..], b"members");
}

#[test]
fn rejects_bad_entries_without_writing() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    let b = batch(1, 10, 1, 0);
    let mut bad = b.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        log.append(&[data(1, 1, &bad)]),
        Err(LogError::InvalidEntry { .. })
    ));
    log.append(&[data(5, 1, &b)]).unwrap();
    assert!(matches!(
        log.append(&[data(4, 2, &b)]),
        Err(LogError::InvalidEntry { .. })
    ));
    assert!(matches!(
        log.append(&[data(5, 3, &b)]),
        Err(LogError::InvalidEntry { .. })
    ));
    assert_eq!(log.next_index(), ix(2));
}

#[test]
fn a_new_log_starts_at_its_first_index() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    let b = batch(2, 10, 1, 0);
    let mut bad = b.to_vec();
    bad[30] ^= 1;
    // A refused first append does not move the start.
    assert!(log.append(&[data(1, 9, &bad)]).is_err());
    assert_eq!(log.next_index(), ix(1));
    log.append(&[data(1, 7, &b)]).unwrap();
    assert_eq!(log.reader().bounds().first_index, ix(7));
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let mut log = h.open().unwrap();
    assert_eq!(log.reader().bounds().first_index, ix(7));
    assert_eq!(log.next_index(), ix(8));
    assert!(
        log.append(&[data(1, 10, &b)]).is_err(),
        "only a new log may start anywhere"
    );
}

#[test]
fn vote_and_committed_survive_crash() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    log.save_vote(b"vote-1").unwrap();
    let b = batch(1, 10, 1, 0);
    log.append(&[data(1, 1, &b), data(1, 2, &b)]).unwrap();
    log.save_committed(lid(1, 2));
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    assert_eq!(log.read_vote().unwrap().as_deref(), Some(&b"vote-1"[..]));
    assert_eq!(log.read_committed(), Some(lid(1, 2)));
}

#[test]
fn timestamp_lookup() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    for i in 1..=40u64 {
        let b = batch(2, 100, i, i as i64 * 100);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    let r = log.reader();
    for i in 1..=40i64 {
        let e = r.entry_for_timestamp(i * 100).unwrap().unwrap();
        assert_eq!(e.index.get() as i64, i);
        let e = r.entry_for_timestamp(i * 100 + 1).unwrap().unwrap();
        assert_eq!(e.index.get() as i64, i);
    }
    assert!(r.entry_for_timestamp(10_000).unwrap().is_none());
    assert_eq!(r.entry_for_timestamp(-5).unwrap().unwrap().index, ix(1));
}

#[test]
fn segments_roll_by_age() {
    let config = LogConfig {
        segment_ms_max: 1,
        ..small_config()
    };
    let h = Harness::new(config);
    let mut log = h.open().unwrap();
    let b = batch(1, 10, 1, 0);
    log.append(&[data(1, 1, &b)]).unwrap();
    let created = log.shared.read_view().segments[0].created;
    while created.elapsed() < std::time::Duration::from_millis(2) {
        std::thread::yield_now();
    }
    log.append(&[data(1, 2, &b)]).unwrap();
    let view = log.shared.read_view();
    assert_eq!(view.segments.len(), 2, "the aged segment rolled");
    assert!(view.segments[0].sealed);
}

#[test]
fn a_halted_log_does_no_more_io() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    let b = batch(1, 10, 1, 0);
    log.append(&[data(1, 1, &b)]).unwrap();
    log.halt();
    let ops = h.sim.op_count();
    assert!(matches!(
        log.append(&[data(1, 2, &b)]),
        Err(LogError::Failed { .. })
    ));
    assert!(matches!(log.flush_wait(), Err(LogError::Failed { .. })));
    assert!(log.truncate_after(ix(0)).is_err());
    drop(log);
    assert_eq!(h.sim.op_count(), ops, "a halted log touched the disk");
}

/// Preallocation starts at `preallocate_bytes_min` (an idle log holds little disk) and doubles
/// with each extension up to `preallocate_bytes_step` (a busy log extends rarely).
#[test]
fn preallocation_starts_small_and_grows_with_the_write_rate() {
    let config = LogConfig {
        segment_bytes_max: 1 << 20,
        segment_ms_max: 0,
        preallocate_bytes_step: 64 << 10,
        preallocate_bytes_min: 8 << 10,
        index_interval_bytes: 4096,
        entry_bytes_max: 64 << 10,
    };
    let h = Harness::new(config);
    let mut log = h.open().unwrap();
    let b = batch(1, 100, 1, 0);
    log.append(&[data(1, 1, &b)]).unwrap();
    let file_len = |log: &Log| {
        let path = log.shared.read_view().segments.last().unwrap().path.clone();
        std::fs::metadata(path).unwrap().len()
    };
    assert_eq!(file_len(&log), 8 << 10, "a new log starts small");
    let mut sizes = vec![file_len(&log)];
    let big = batch(1, 3000, 2, 0);
    for i in 2..200 {
        log.append(&[data(1, i, &big)]).unwrap();
        let l = file_len(&log);
        if l != *sizes.last().unwrap() {
            sizes.push(l);
        }
    }
    let steps: Vec<u64> = sizes.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(
        steps[..4],
        [8 << 10, 16 << 10, 32 << 10, 64 << 10],
        "steps double: {steps:?}"
    );
    assert!(
        steps[4..].iter().all(|s| *s == 64 << 10),
        "capped: {steps:?}"
    );
}

/// A simulated power loss must not shrink a file under a mapping the crashed instance left
/// behind (in a test process its threads outlive the crash: a read in flight, a replication
/// message): the fault schedules died of SIGBUS when it did.
#[test]
fn crash_leaves_old_mappings_readable() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    for i in 1..=30u64 {
        let b = batch(2, 200, i, i as i64);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    log.flush_wait().unwrap();
    // Unsynced, and into segments created (and preallocated) after the last sync.
    for i in 31..=60u64 {
        let b = batch(2, 200, i, i as i64);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    let views = log.reader().entries(ix(1), ix(61), usize::MAX).unwrap();
    let copies: Vec<Vec<u8>> = views.iter().map(|e| e.payload.to_vec()).collect();
    assert_eq!(views.len(), 60);
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    for (v, c) in views.iter().zip(&copies) {
        assert_eq!(&v.payload[..], &c[..]);
    }
    let log = h.open().unwrap();
    assert_eq!(log.next_index(), ix(31));
}

#[test]
fn a_batch_verified_by_its_caller_is_not_checked_again() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    let b = batch(1, 10, 1, 0);
    let mut bad = b.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    // From a peer or a file: the log verifies the CRC and refuses it.
    assert!(matches!(
        log.append(&[data(1, 1, &bad)]),
        Err(LogError::InvalidEntry { .. })
    ));
    // A leader's own proposal was checked when it arrived: the log reads its header only
    // (so a CRC is computed once on the leader's path), and takes the caller's word for it.
    let appended = log
        .append(&[NewEntry {
            verified: true,
            ..data(1, 1, &bad)
        }])
        .unwrap();
    assert_eq!(appended[0].base_offset.get(), 0);
}

/// The writer keeps zeros written ahead of its data in the active segment (so a sync of an
/// append rewrites blocks instead of converting unwritten extents), in steps: about half of
/// `ZERO_AHEAD_BYTES` of data between two zero writes, never past the allocation, never over
/// data. `fits_in_place` says yes exactly when an append needs no roll, no extension and no
/// zeros.
#[test]
fn zeros_are_written_ahead_of_the_data_in_steps() {
    use crate::append::ZERO_AHEAD_BYTES;
    let config = LogConfig {
        segment_bytes_max: 16 << 20,
        segment_ms_max: 0,
        preallocate_bytes_step: 8 << 20,
        preallocate_bytes_min: 4 << 20,
        index_interval_bytes: 4096,
        entry_bytes_max: 64 << 10,
    };
    let h = Harness::new(config);
    let mut log = h.open().unwrap();
    assert!(!log.fits_in_place(100, 1), "no active segment yet");
    let big = batch(1, 30_000, 2, 0);
    log.append(&[data(1, 1, &big)]).unwrap();
    let state = |log: &Log| {
        let a = log.active.as_ref().unwrap();
        (a.len, a.written, a.alloc)
    };
    let (len, written, alloc) = state(&log);
    assert_eq!(alloc, 4 << 20);
    assert_eq!(
        written,
        len + ZERO_AHEAD_BYTES,
        "zeros 1 MiB ahead of the data"
    );
    let path = log.shared.read_view().segments[0].path.clone();
    let mut zero_writes = 0;
    let mut last_written = written;
    for i in 2..=150u64 {
        let (len, written, alloc) = state(&log);
        let end = len + (big.len() + crate::frame::FRAME_HEADER_LEN) as u64;
        let in_place = log.fits_in_place(big.len() as u64, 1);
        assert_eq!(
            in_place,
            end <= alloc && (end + ZERO_AHEAD_BYTES / 2).min(alloc) <= written,
            "in place while half the zeros remain ahead, or zeros reach the allocation (entry {i})"
        );
        log.append(&[data(1, i, &big)]).unwrap();
        let (len, written, alloc) = state(&log);
        assert!(len <= written && written <= alloc);
        if written != last_written {
            zero_writes += 1;
            assert!(!in_place, "an append in place writes no zeros");
            last_written = written;
        }
        // Everything between the data and the frontier reads as zeros.
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            bytes[len as usize..written as usize]
                .iter()
                .all(|b| *b == 0)
        );
    }
    let (len, ..) = state(&log);
    // About one zero write per half step of data.
    let expected = len / (ZERO_AHEAD_BYTES / 2);
    assert!(
        zero_writes >= expected.saturating_sub(2) && zero_writes <= expected + 2,
        "{zero_writes} zero writes for {len} bytes"
    );
    // The data reads back, and survives a crash and a reopen with zeros after it.
    log.flush_wait().unwrap();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let mut log = h.open().unwrap();
    assert_eq!(log.next_index(), ix(151));
    let b = batch(1, 100, 3, 0);
    log.append(&[data(1, 151, &b)]).unwrap();
    let all = log.reader().entries(ix(1), ix(152), usize::MAX).unwrap();
    assert_eq!(all.len(), 151);
}

/// A pool of flusher threads serves many logs at once; every completion fires, in order per
/// log, and each log's durable index reaches its end.
#[test]
fn a_flusher_pool_syncs_many_logs() {
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start_pool("pool", 3).unwrap();
    let mut threads = Vec::new();
    for p in 0..8u64 {
        let handle = flusher.handle();
        let dir = root.path().join(format!("p{p}"));
        threads.push(std::thread::spawn(move || {
            let disk: Arc<dyn Disk> = Arc::new(crate::RealDisk);
            let mut log = Log::open(dir, small_config(), disk, &handle).unwrap();
            let done = Arc::new(std::sync::Mutex::new(Vec::new()));
            for i in 1..=200u64 {
                let b = batch(1, 50, p * 1000 + i, 0);
                log.append(&[data(1, i, &b)]).unwrap();
                let done = done.clone();
                log.flush(move |r| {
                    r.unwrap();
                    done.lock().unwrap().push(i);
                });
            }
            log.flush_wait().unwrap();
            assert_eq!(log.durable_index(), ix(200));
            let done = done.lock().unwrap().clone();
            assert_eq!(done, (1..=200).collect::<Vec<_>>(), "completions in order");
            log.close().unwrap();
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
}
