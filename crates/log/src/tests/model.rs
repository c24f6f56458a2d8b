//! Model test: with 4 KiB segments, random sequences of append, flush, read, truncate, purge,
//! reset, close/reopen and crash behave like a `Vec` of entries. Every entry made durable
//! survives a crash; a truncated entry never comes back.

use super::*;
use crate::sim::CrashMode;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Entries to append: (is_data, records, value_len).
    Append(Vec<(bool, u8, u16)>),
    Flush,
    Read(u16),
    Truncate(u16),
    /// Raise the term, truncate, and append entries of the same sizes as those cut.
    TruncateAndReplace(u16),
    Purge(u16),
    Reset(u8),
    Reopen,
    Crash(Option<u64>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((prop::bool::weighted(0.85), 1u8..5, 0u16..700), 1..4).prop_map(Op::Append),
        3 => Just(Op::Flush),
        3 => any::<u16>().prop_map(Op::Read),
        1 => any::<u16>().prop_map(Op::Truncate),
        1 => any::<u16>().prop_map(Op::TruncateAndReplace),
        1 => any::<u16>().prop_map(Op::Purge),
        1 => any::<u8>().prop_map(Op::Reset),
        1 => Just(Op::Reopen),
        2 => prop::option::of(any::<u64>()).prop_map(Op::Crash),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct M {
    term: u64,
    kind: EntryKind,
    payload: Bytes,
    base_offset: i64,
    count: u32,
    /// What `append` was asked for, to append again an entry of the same size.
    spec: (bool, u8, u16),
}

/// The model: entries by index, from `first` on; `start_offset` the first readable offset.
struct Model {
    entries: std::collections::BTreeMap<u64, M>,
    first: u64,
    next_index: u64,
    next_offset: i64,
    term: u64,
    durable: u64,
    /// First index made durable by a completed flush after a purge (purges ride on flushes).
    durable_first: u64,
    /// Offset at the start of the log when no entry before it is known (0, or a reset's).
    reset_offset: i64,
    seq: u64,
}

impl Model {
    fn new() -> Model {
        Model {
            entries: Default::default(),
            first: 1,
            next_index: 1,
            next_offset: 0,
            term: 1,
            durable: 0,
            durable_first: 1,
            reset_offset: 0,
            seq: 0,
        }
    }

    fn last(&self) -> u64 {
        self.next_index - 1
    }

    fn cut_after(&mut self, k: u64) {
        self.entries.retain(|i, _| *i <= k);
        self.next_index = k + 1;
        self.next_offset = self
            .entries
            .get(&k)
            .map_or(self.reset_offset, |e| e.base_offset + e.count as i64);
        self.durable = self.durable.min(k);
    }
}

fn append(log: &mut Log, m: &mut Model, spec: &[(bool, u8, u16)]) {
    let mut payloads = Vec::new();
    for (is_data, records, len) in spec {
        m.seq += 1;
        payloads.push(if *is_data {
            (
                EntryKind::Data,
                batch(*records as usize, *len as usize, m.seq, m.seq as i64),
            )
        } else {
            (
                EntryKind::Blank,
                Bytes::from(vec![m.seq as u8; *len as usize % 64]),
            )
        });
    }
    let entries: Vec<NewEntry<'_>> = payloads
        .iter()
        .enumerate()
        .map(|(i, (kind, p))| NewEntry {
            term: m.term,
            index: ix(m.next_index + i as u64),
            kind: *kind,
            payload: p,
            stamped: false,
            verified: false,
        })
        .collect();
    let out = log.append(&entries).unwrap();
    for (((kind, p), a), spec) in payloads.into_iter().zip(out).zip(spec) {
        assert_eq!(a.index, ix(m.next_index));
        assert_eq!(a.base_offset, off(m.next_offset), "offsets are contiguous");
        m.entries.insert(
            a.index.get(),
            M {
                term: m.term,
                kind,
                payload: p,
                base_offset: a.base_offset.get(),
                count: a.record_count,
                spec: *spec,
            },
        );
        m.next_index += 1;
        m.next_offset += a.record_count as i64;
    }
}

/// The log holds exactly the model's entries.
fn check(log: &Log, m: &Model) {
    let r = log.reader();
    let b = r.bounds();
    assert_eq!(b.first_index, ix(m.first));
    assert_eq!(log.next_index(), ix(m.next_index));
    assert_eq!(log.next_offset(), off(m.next_offset));
    if m.next_index > m.first {
        let got = r
            .entries(ix(m.first), ix(m.next_index), usize::MAX)
            .unwrap();
        assert_eq!(got.len() as u64, m.next_index - m.first);
        for e in got {
            let want = &m.entries[&e.index.get()];
            assert_eq!(e.term, want.term, "term at {}", e.index);
            assert_eq!(e.kind, want.kind);
            assert_eq!(e.base_offset, off(want.base_offset));
            if e.kind == EntryKind::Data {
                assert_eq!(
                    &e.payload[16..],
                    &want.payload[16..],
                    "payload at {}",
                    e.index
                );
                let batch = strata_record::Batch::parse(e.payload.clone()).unwrap();
                assert_eq!(batch.base_offset(), e.base_offset.get());
                assert_eq!(batch.header().partition_leader_epoch as u64, e.term);
            } else {
                assert_eq!(e.payload, want.payload);
            }
        }
    }
}

/// After a crash the log holds a prefix of the model from a first index between the durable
/// purge point and the current one, and at least everything durable.
fn adopt_after_crash(log: &Log, m: &mut Model) {
    let first_index = log.reader().bounds().first_index.get();
    assert!(
        first_index >= m.durable_first.min(m.first) && first_index <= m.first.max(m.durable_first),
        "first index {} outside [{}, {}]",
        first_index,
        m.durable_first,
        m.first
    );
    let last = log.next_index().get() - 1;
    assert!(
        last >= m.durable,
        "durable entry lost: last {last} < durable {}",
        m.durable
    );
    assert!(
        last <= m.last(),
        "entry appeared from nowhere: {last} > {}",
        m.last()
    );
    // A purge that had not ridden a sync yet may be undone: its entries are still there.
    m.first = first_index;
    m.cut_after(last);
    m.durable_first = m.first;
    check(log, m);
}

fn run(ops: Vec<Op>) {
    let h = Harness::new(small_config());
    let mut log = h.open().unwrap();
    let mut m = Model::new();
    // Keep purged entries in the model until a purge is durable, so a crash can bring them back.
    for op in ops {
        match op {
            Op::Append(spec) => append(&mut log, &mut m, &spec),
            Op::Flush => {
                log.flush_wait().unwrap();
                m.durable = m.last();
                m.durable_first = m.first;
            }
            Op::Read(x) => {
                let start = log.reader().bounds().log_start_offset.get();
                if m.next_offset > start {
                    let o = off(start + (x as i64 % (m.next_offset - start)));
                    let got = log.reader().read(o, 1, NO_LIMIT).unwrap();
                    let e = &got[0];
                    assert!(e.base_offset <= o && o < e.next_offset());
                    assert_eq!(&e.payload[16..], &m.entries[&e.index.get()].payload[16..]);
                }
            }
            Op::Truncate(x) | Op::TruncateAndReplace(x) => {
                let span = m.last() + 1 - (m.first - 1);
                let k = m.first - 1 + x as u64 % span;
                let cut: Vec<(bool, u8, u16)> = m
                    .entries
                    .range(k + 1..)
                    .map(|(_, e)| {
                        let len = if e.kind == EntryKind::Data {
                            0
                        } else {
                            e.payload.len() as u16
                        };
                        (e.kind == EntryKind::Data, e.count.max(1) as u8, len)
                    })
                    .collect();
                log.truncate_after(ix(k)).unwrap();
                if k < m.last() {
                    // A cut syncs the kept prefix before recording itself.
                    m.durable = k;
                }
                m.cut_after(k);
                if matches!(op, Op::TruncateAndReplace(_)) && !cut.is_empty() {
                    m.term += 1;
                    append(&mut log, &mut m, &cut);
                }
            }
            Op::Purge(x) => {
                if m.last() >= m.first {
                    let k = m.first + x as u64 % (m.last() + 1 - m.first);
                    let term = m.entries[&k].term;
                    log.purge(lid(term, k)).unwrap();
                    m.first = k + 1;
                }
            }
            Op::Reset(x) => {
                let last = m.last() + 1 + x as u64 % 5;
                let next_offset = m.next_offset + x as i64 % 7;
                log.reset_to(lid(m.term, last), off(next_offset)).unwrap();
                m.entries.clear();
                m.first = last + 1;
                m.next_index = last + 1;
                m.next_offset = next_offset;
                m.reset_offset = next_offset;
                m.durable = last;
                m.durable_first = m.first;
            }
            Op::Reopen => {
                log.close().unwrap();
                log = h.open().unwrap();
                m.durable = m.last();
                m.durable_first = m.first;
                check(&log, &m);
            }
            Op::Crash(seed) => {
                drop(log);
                let mode = seed.map_or(CrashMode::DropAll, CrashMode::TornPrefix);
                h.sim.crash(mode).unwrap();
                log = h.open().unwrap();
                adopt_after_crash(&log, &mut m);
            }
        }
    }
    check(&log, &m);
    // A final crash after a flush loses nothing.
    log.flush_wait().unwrap();
    m.durable = m.last();
    drop(log);
    h.sim.crash(CrashMode::DropAll).unwrap();
    let log = h.open().unwrap();
    let first_index = log.reader().bounds().first_index.get();
    assert!(first_index <= m.first);
    m.first = first_index.max(m.first);
    assert_eq!(log.next_index(), ix(m.next_index));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn log_acts_like_a_vec(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
