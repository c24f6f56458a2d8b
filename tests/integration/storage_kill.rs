//! Process-kill test: a child appends and syncs in a loop reporting each synced index; the test
//! SIGKILLs it at random moments, many rounds; every reported index is present and intact.
//! (SIGKILL keeps the page cache, so this checks recovery of a live process's files, not
//! fsync; the simulated-crash tests in strata-log cover lost writes.)

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use strata_log::{Flusher, Log, LogConfig, LogIndex, Offset, RealDisk};

#[test]
fn sigkill_never_loses_a_synced_entry() {
    let seed = strata_tests::test_seed();
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("log");
    let mut reported = 0u64;
    for round in 0..25 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_log_writer"))
            .arg(&log_dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let opened = lines.next().unwrap().unwrap();
        let opened_at: u64 = opened.strip_prefix("opened ").unwrap().parse().unwrap();
        assert!(
            opened_at > reported,
            "round {round}: synced entries missing at open"
        );
        let kill_after = next() % 40;
        for _ in 0..kill_after {
            match lines.next() {
                Some(Ok(l)) => reported = l.strip_prefix("synced ").unwrap().parse().unwrap(),
                _ => break,
            }
        }
        // Let it run a little past the last line read, then kill mid-write.
        if next() % 2 == 0 {
            std::thread::yield_now();
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let flusher = Flusher::start("check").unwrap();
    let log = Log::open(
        &log_dir,
        LogConfig::default(),
        Arc::new(RealDisk),
        &flusher.handle(),
    )
    .unwrap();
    let last = log.next_index().prev();
    assert!(
        last.get() >= reported,
        "reported {reported}, recovered {last}"
    );
    let entries = log
        .reader()
        .entries(LogIndex::FIRST, last.next(), usize::MAX)
        .unwrap();
    assert_eq!(entries.len() as u64, last.get());
    let mut offset = Offset::new(0);
    for e in entries {
        let want = strata_tests::payload_for(e.index.get());
        assert_eq!(&e.payload[16..], &want[16..], "entry {} altered", e.index);
        assert_eq!(e.base_offset, offset, "offsets contiguous");
        offset = e.next_offset();
    }
}
