//! Damage tests: torn, flipped, zeroed and garbage bytes in the tail; deleted or corrupt index,
//! manifest and state files; corruption inside a sealed segment. Recovery returns exactly a
//! prefix of what was written, never an altered entry, and appends continue at the right offset.

use super::*;
use crate::{LogError, RealDisk};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

struct Written {
    entries: Vec<(u64, i64, Bytes)>, // index, base offset, payload as written (pre-stamp)
    frame_starts: Vec<u64>,
    segment: PathBuf,
}

fn open_real(dir: &Path, flusher: &Flusher, config: &LogConfig) -> crate::Result<Log> {
    Log::open(dir, config.clone(), Arc::new(RealDisk), &flusher.handle())
}

/// Writes `n` entries into one segment and drops the log without a clean close, so the whole
/// segment is tail to be scanned at the next open.
fn write_tail(dir: &Path, flusher: &Flusher, n: u64) -> Written {
    let config = LogConfig::default();
    let mut log = open_real(dir, flusher, &config).unwrap();
    let mut entries = Vec::new();
    let mut frame_starts = Vec::new();
    let mut pos = 0u64;
    for i in 1..=n {
        let b = batch(1 + i as usize % 3, 40 + i as usize * 3, i, i as i64);
        let a = log.append(&[data(1, i, &b)]).unwrap();
        frame_starts.push(pos);
        pos += (crate::frame::FRAME_HEADER_LEN + b.len()) as u64;
        entries.push((i, a[0].base_offset.get(), b));
    }
    log.flush_wait().unwrap();
    let segment = log.shared.read_view().segments[0].path.clone();
    drop(log);
    Written {
        entries,
        frame_starts,
        segment,
    }
}

/// The log recovered exactly the first `k` entries, unaltered, and appends continue.
fn assert_prefix(dir: &Path, flusher: &Flusher, w: &Written, k: usize) {
    let mut log = open_real(dir, flusher, &LogConfig::default()).unwrap();
    assert_eq!(log.next_index(), ix(k as u64 + 1), "recovered entries");
    if k > 0 {
        let got = log
            .reader()
            .entries(ix(1), ix(k as u64 + 1), usize::MAX)
            .unwrap();
        for (e, (i, base, b)) in got.iter().zip(&w.entries) {
            assert_eq!(e.index, ix(*i));
            assert_eq!(e.base_offset, off(*base));
            assert_eq!(&e.payload[16..], &b[16..]);
        }
    }
    let expected_next = w.entries.get(k).map_or_else(
        || w.entries.last().map_or(0, |(_, b, p)| b + rc(p)),
        |(_, b, _)| *b,
    );
    assert_eq!(log.next_offset(), off(expected_next));
    let b = batch(2, 10, 999, 0);
    let a = log.append(&[data(2, k as u64 + 1, &b)]).unwrap();
    assert_eq!(a[0].base_offset, off(expected_next));
    log.flush_wait().unwrap();
    log.close().unwrap();
    let log = open_real(dir, flusher, &LogConfig::default()).unwrap();
    assert_eq!(log.next_index(), ix(k as u64 + 2));
}

fn rc(payload: &Bytes) -> i64 {
    strata_record::BatchHeader::parse(payload)
        .unwrap()
        .record_count as i64
}

fn fresh(root: &Path, name: &str) -> PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn truncated_at_every_byte_of_the_last_frame() {
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start("t").unwrap();
    let dir = fresh(root.path(), "d");
    let w = write_tail(&dir, &flusher, 6);
    let last_start = *w.frame_starts.last().unwrap();
    let end = last_start + (crate::frame::FRAME_HEADER_LEN + w.entries[5].2.len()) as u64;
    let pristine = root.path().join("pristine");
    copy_dir(&dir, &pristine);
    for cut in last_start..end {
        let dir = fresh(root.path(), "d");
        copy_dir(&pristine, &dir);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&w.segment)
            .unwrap();
        f.set_len(cut).unwrap();
        drop(f);
        assert_prefix(&dir, &flusher, &w, 5);
    }
}

#[test]
fn flipped_bits_zeroed_pages_and_garbage() {
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start("t").unwrap();
    let dir = fresh(root.path(), "d");
    let w = write_tail(&dir, &flusher, 40);
    let pristine = root.path().join("pristine");
    copy_dir(&dir, &pristine);
    let total =
        w.frame_starts[39] + (crate::frame::FRAME_HEADER_LEN + w.entries[39].2.len()) as u64;
    // Which frame holds byte `p`.
    let frame_of = |p: u64| w.frame_starts.partition_point(|s| *s <= p) - 1;
    let mut rng = 0x1234_5678_u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for _ in 0..60 {
        let p = next() % total;
        let bit = 1u8 << (next() % 8);
        let dir = fresh(root.path(), "d");
        copy_dir(&pristine, &dir);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&w.segment)
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, p).unwrap();
        f.write_all_at(&[b[0] ^ bit], p).unwrap();
        drop(f);
        assert_prefix(&dir, &flusher, &w, frame_of(p));
    }
    // A zeroed 4 KiB page.
    let dir = fresh(root.path(), "d");
    copy_dir(&pristine, &dir);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&w.segment)
        .unwrap();
    f.write_all_at(&[0u8; 4096], 4096).unwrap();
    drop(f);
    assert_prefix(&dir, &flusher, &w, frame_of(4096));
    // Garbage after the last frame: everything survives; appends go to a new segment.
    let dir = fresh(root.path(), "d");
    copy_dir(&pristine, &dir);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&w.segment)
        .unwrap();
    f.write_all_at(b"\x07garbage garbage garbage", total)
        .unwrap();
    drop(f);
    assert_prefix(&dir, &flusher, &w, 40);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A clean log of several segments, closed cleanly; returns all entries read back.
fn multi_segment(dir: &Path, flusher: &Flusher) -> Vec<crate::Entry> {
    let mut log = open_real(dir, flusher, &small_config()).unwrap();
    for i in 1..=60u64 {
        let b = batch(2, 150, i, i as i64 * 10);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    let all = log.reader().entries(ix(1), ix(61), usize::MAX).unwrap();
    log.close().unwrap();
    all
}

fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn deleted_or_corrupt_metadata_files_are_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start("t").unwrap();
    type Damage = fn(&Path);
    let damages: Vec<(&str, Damage)> = vec![
        ("delete indexes", |d| {
            for p in files_with(d, "index")
                .into_iter()
                .chain(files_with(d, "timeindex"))
            {
                std::fs::remove_file(p).unwrap();
            }
        }),
        ("corrupt indexes", |d| {
            for p in files_with(d, "index")
                .into_iter()
                .chain(files_with(d, "timeindex"))
            {
                let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
                f.write_all_at(b"\xff\xff\xff\xff", 20).unwrap();
            }
        }),
        ("delete manifest", |d| {
            std::fs::remove_file(d.join("manifest")).unwrap()
        }),
        ("corrupt manifest", |d| {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .open(d.join("manifest"))
                .unwrap();
            f.write_all_at(b"\x00\x01", 30).unwrap();
        }),
        ("delete state", |d| {
            let _ = std::fs::remove_file(d.join("state"));
        }),
    ];
    for (name, damage) in damages {
        let dir = fresh(root.path(), name);
        let all = multi_segment(&dir, &flusher);
        damage(&dir);
        let mut log = open_real(&dir, &flusher, &small_config()).unwrap();
        let again = log.reader().entries(ix(1), ix(61), usize::MAX).unwrap();
        assert_eq!(again, all, "{name}");
        for e in &all {
            let t = log
                .reader()
                .entry_for_timestamp(e.max_timestamp)
                .unwrap()
                .unwrap();
            assert_eq!(t.index, e.index, "{name}: time lookup");
        }
        let b = batch(1, 10, 1, 0);
        let a = log.append(&[data(1, 61, &b)]).unwrap();
        assert_eq!(a[0].base_offset, off(120), "{name}");
    }
}

#[test]
fn corruption_inside_a_sealed_segment_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start("t").unwrap();
    let dir = root.path().join("d");
    let all = multi_segment(&dir, &flusher);
    let first = &files_with(&dir, "log")[0];
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(first)
        .unwrap();
    f.write_all_at(b"\xAA", 100).unwrap();
    drop(f);
    let log = open_real(&dir, &flusher, &small_config()).unwrap();
    let r = log.reader();
    match r.read(off(0), usize::MAX, NO_LIMIT) {
        Err(LogError::Corrupt { path, .. }) => assert_eq!(&path, first),
        other => panic!("expected corruption, got {other:?}"),
    }
    // Entries in other segments are still served.
    let last = all.last().unwrap();
    assert_eq!(r.entry(last.index).unwrap(), *last);
}

/// A verified open checks sealed segments and the checkpointed prefix too: damage there
/// (a flipped byte, a zeroed page, a truncated file) cuts the log before the first bad frame,
/// drops every later segment, and is reported with what the log had recorded; appends then
/// continue right after the cut. A clean log verifies with no damage.
#[test]
fn a_verified_open_cuts_damaged_recorded_data_and_reports_it() {
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start("t").unwrap();
    let clean = root.path().join("clean");
    let all = multi_segment(&clean, &flusher);
    {
        let log = Log::open_verified(
            &clean,
            small_config(),
            Arc::new(RealDisk),
            &flusher.handle(),
        )
        .unwrap();
        assert_eq!(log.damage(), None);
        assert_eq!(log.next_index(), ix(61));
    }
    type Harm = fn(&Path);
    let harms: Vec<(&str, Harm)> = vec![
        ("flipped byte", |p| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.write_all_at(b"\xAA", 700).unwrap();
        }),
        ("zeroed page", |p| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.write_all_at(&[0u8; 4096][..2000], 600).unwrap();
        }),
        ("truncated", |p| {
            let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
            f.set_len(650).unwrap();
        }),
    ];
    for (what, harm) in harms {
        let dir = root.path().join(what.replace(' ', "-"));
        copy_dir(&clean, &dir);
        let segments = files_with(&dir, "log");
        assert!(segments.len() > 3, "{what}: too few segments");
        harm(&segments[1]);
        let mut log =
            Log::open_verified(&dir, small_config(), Arc::new(RealDisk), &flusher.handle())
                .unwrap();
        let damage = log.damage().unwrap_or_else(|| panic!("{what}: no damage"));
        assert_eq!(damage.recorded_last_index, ix(60), "{what}");
        let last = log.next_index().get() - 1;
        assert_eq!(damage.first_lost_index, ix(last + 1), "{what}");
        assert!(
            last < 60 && last >= all[0].index.get(),
            "{what}: cut at {last}"
        );
        // Everything kept is intact; the later segments are gone.
        let kept = log
            .reader()
            .entries(ix(1), ix(last + 1), usize::MAX)
            .unwrap();
        assert_eq!(kept[..], all[..last as usize], "{what}");
        assert!(files_with(&dir, "log").len() <= 2, "{what}");
        // Appends continue after the cut, and a normal open agrees.
        let b = batch(1, 10, 999, 0);
        log.append(&[data(2, last + 1, &b)]).unwrap();
        log.flush_wait().unwrap();
        drop(log);
        let log = open_real(&dir, &flusher, &small_config()).unwrap();
        assert_eq!(log.next_index(), ix(last + 2), "{what}");
        assert_eq!(
            log.reader()
                .entries(ix(1), ix(last + 2), usize::MAX)
                .unwrap()
                .len() as u64,
            last + 1,
            "{what}"
        );
    }
}

/// A verified open checks a sealed segment up to its recorded length and no further: a
/// truncation seals the cut segment without trimming it, and the frames after the cut are
/// dead. Scanning them brought truncated entries back (seed 199 of the fault schedules: a
/// replica's log held the old term's entries again where the leader had replaced them, and
/// the apply check caught the offsets going back).
#[test]
fn a_verified_open_never_revives_truncated_entries() {
    let root = tempfile::tempdir().unwrap();
    let flusher = Flusher::start("t").unwrap();
    let dir = root.path().join("d");
    let mut log = open_real(&dir, &flusher, &small_config()).unwrap();
    for i in 1..=10u64 {
        let b = batch(1, 50, i, 0);
        log.append(&[data(1, i, &b)]).unwrap();
    }
    log.flush_wait().unwrap();
    log.truncate_after(ix(5)).unwrap();
    let mut kept = Vec::new();
    for i in 6..=8u64 {
        let b = batch(1, 60, 100 + i, 0);
        log.append(&[data(2, i, &b)]).unwrap();
        kept.push(b);
    }
    log.flush_wait().unwrap();
    let expected = log.reader().entries(ix(1), ix(9), usize::MAX).unwrap();
    drop(log);
    let log =
        Log::open_verified(&dir, small_config(), Arc::new(RealDisk), &flusher.handle()).unwrap();
    assert_eq!(log.damage(), None);
    assert_eq!(log.next_index(), ix(9), "truncated entries came back");
    let got = log.reader().entries(ix(1), ix(9), usize::MAX).unwrap();
    assert_eq!(got, expected);
    assert!(got[5..].iter().all(|e| e.term == 2));
}
