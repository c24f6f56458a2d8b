//! Readers scanning while the writer appends, rolls, truncates and purges never see a partial
//! frame, a wrong offset, or bytes that change under them.

use super::*;
use crate::LogError;
use std::sync::atomic::{AtomicBool, Ordering};

/// Deterministic payload for (term, index): readers can check what they got.
fn payload(term: u64, index: u64) -> Bytes {
    batch(
        1 + (index % 3) as usize,
        50 + (index % 200) as usize,
        term * 100_000 + index,
        0,
    )
}

fn check_entry(e: &crate::Entry) {
    let b = strata_record::Batch::parse(e.payload.clone()).expect("a whole, valid batch");
    assert_eq!(b.base_offset(), e.base_offset.get());
    let want = payload(e.term, e.index.get());
    assert_eq!(
        &e.payload[16..],
        &want[16..],
        "bytes of ({}, {})",
        e.term,
        e.index
    );
}

#[test]
fn readers_never_see_partial_or_changing_bytes() {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    for r in 0..2u64 {
        let reader = log.reader();
        let stop = stop.clone();
        readers.push(std::thread::spawn(move || {
            let mut held: Vec<(Bytes, Vec<u8>)> = Vec::new();
            let mut reads = 0u64;
            let mut x = r + 1;
            while !stop.load(Ordering::Relaxed) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let b = reader.bounds();
                if b.next_offset <= b.log_start_offset {
                    continue;
                }
                let (start, end) = (b.log_start_offset.get(), b.next_offset.get());
                let from = off(start + (x >> 33) as i64 % (end - start));
                match reader.read(from, 16 * 1024, NO_LIMIT) {
                    Ok(entries) => {
                        let mut expect = None;
                        for e in &entries {
                            check_entry(e);
                            if let Some(o) = expect {
                                assert_eq!(e.base_offset, o, "offsets contiguous within a read");
                            }
                            expect = Some(e.next_offset());
                        }
                        if let Some(e) = entries.first() {
                            assert!(e.base_offset <= from && from < e.next_offset());
                            if held.len() < 64 {
                                held.push((e.payload.clone(), e.payload.to_vec()));
                            }
                        }
                        reads += 1;
                    }
                    // The log moved (purge or truncation) between bounds() and read().
                    Err(LogError::OffsetOutOfRange { .. }) => {}
                    Err(e) => panic!("reader error: {e}"),
                }
                for (view, copy) in &held {
                    assert_eq!(&view[..], &copy[..], "bytes changed under a reader");
                }
            }
            reads
        }));
    }
    let mut term = 1;
    let mut next = 1u64;
    for round in 0..300u64 {
        let p = payload(term, next);
        log.append(&[data(term, next, &p)]).unwrap();
        next += 1;
        if round % 37 == 36 {
            let k = next - 1 - (round % 5);
            log.truncate_after(ix(k)).unwrap();
            next = k + 1;
            term += 1;
        }
        if round % 53 == 52 {
            let first = log.reader().bounds().first_index.get();
            let upto = first + (next - first) / 2;
            let t = log.reader().entry(ix(upto)).unwrap().term;
            log.purge(lid(t, upto)).unwrap();
        }
        if round % 10 == 0 {
            log.flush_wait().unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}
