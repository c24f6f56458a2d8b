//! Recovery, run by [`crate::Log::open`] and [`crate::Log::open_verified`]: read the manifest,
//! open every listed segment, trust sealed lengths and the active segment's checkpoint, scan the
//! tail after the checkpoint checking every frame (CRC, index continuity, term never going
//! back, offsets contiguous) and cut at the first bad one. Index files are loaded when they
//! match, rebuilt otherwise. Unlisted files are removed.
//!
//! Without a usable manifest every segment is scanned in full, in order of first index, each
//! ending where the next begins; the purge point then comes from the state file.
//!
//! Before it returns, what it recovered is durable: the last segment is `fdatasync`ed (its tail
//! may have been read from the page cache), and a new manifest is written when recovery
//! rebuilt, sealed or cut the log (else the directory is `fsync`ed if files were removed).

use crate::codec::Malformed;
use crate::config::LogConfig;
use crate::disk::Disk;
use crate::error::{LogError, Result};
use crate::flusher::FlusherHandle;
use crate::frame::{EntryKind, FrameHeader};
use crate::log::Log;
use crate::manifest::{self, Manifest, StateRecord};
use crate::numbers::{LogIndex, Offset};
use crate::segment::{FrameWalker, Segment, load_indexes, map_file, parse_stem};
use crate::shared::{Shared, SyncState, View};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::Instant;
use strata_record::BatchHeader;

struct Plan {
    base_offset: Offset,
    first_index: LogIndex,
    path: PathBuf,
    sealed: bool,
    /// Bytes trusted without a scan (sealed length, or the active checkpoint).
    trusted_len: u64,
    /// Where a scan of this segment stops: a verified open scans a sealed segment only up to
    /// its recorded length (the bytes after it are dead: a truncation seals a segment without
    /// trimming it, and those frames must never come back).
    scan_limit: Option<u64>,
    last_index: LogIndex,
    last_term: u64,
    next_offset: Offset,
}

/// The continuity a frame must keep with the one before it.
#[derive(Debug, Clone, Copy)]
struct Expect {
    index: LogIndex,
    offset: Offset,
    term: u64,
}

pub(crate) fn open(
    dir: &Path,
    config: LogConfig,
    disk: Arc<dyn Disk>,
    flusher: &FlusherHandle,
    verify: bool,
) -> Result<Log> {
    config.validate()?;
    disk.create_dir_all(dir)
        .map_err(|e| LogError::io("create directory", dir, e))?;
    let unrecoverable = |reason: String| LogError::Unrecoverable {
        dir: dir.to_path_buf(),
        reason,
    };

    // The files present.
    let mut logs: BTreeMap<LogIndex, (Offset, PathBuf)> = BTreeMap::new();
    let mut others: Vec<PathBuf> = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| LogError::io("list directory", dir, e))? {
        let entry = entry.map_err(|e| LogError::io("list directory", dir, e))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(manifest::TMP_SUFFIX) {
            others.push(path);
            continue;
        }
        if let Some(stem) = name.strip_suffix(".log")
            && let Some((base, first)) = parse_stem(stem)
        {
            logs.insert(first, (base, path));
        } else if name.ends_with(".index") || name.ends_with(".timeindex") {
            others.push(path);
        }
    }

    let state = fs::read(dir.join(manifest::STATE_FILE))
        .ok()
        .and_then(|b| StateRecord::read_best(&b))
        .unwrap_or_default();
    let manifest = match fs::read(dir.join(manifest::MANIFEST_FILE)) {
        Ok(b) => match Manifest::decode(&b) {
            Ok(m) => Some(m),
            Err(Malformed(why)) => {
                tracing::warn!(dir = %dir.display(), why, "manifest damaged; rebuilding from segments");
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if !logs.is_empty() {
                tracing::warn!(dir = %dir.display(), "manifest missing; rebuilding from segments");
            }
            None
        }
        Err(e) => {
            return Err(LogError::io(
                "read manifest",
                dir.join(manifest::MANIFEST_FILE),
                e,
            ));
        }
    };
    let rebuilt = manifest.is_none() && !logs.is_empty();

    let (plans, header) = match &manifest {
        Some(m) => {
            let mut plans = Vec::new();
            for (i, rec) in m.segments.iter().enumerate() {
                let path = dir.join(format!(
                    "{}.log",
                    crate::segment::segment_stem(rec.base_offset, rec.first_index)
                ));
                let last = i + 1 == m.segments.len();
                if !path.exists() {
                    if last && !rec.sealed && rec.len == 0 {
                        continue; // created by a roll whose directory entry did not persist
                    }
                    return Err(unrecoverable(format!(
                        "segment {} listed in the manifest is missing",
                        path.display()
                    )));
                }
                plans.push(Plan {
                    base_offset: rec.base_offset,
                    first_index: rec.first_index,
                    path,
                    sealed: rec.sealed,
                    trusted_len: rec.len,
                    scan_limit: None,
                    last_index: rec.last_index,
                    last_term: rec.last_term,
                    next_offset: rec.next_offset,
                });
            }
            (plans, m.clone())
        }
        None => {
            let purged = state.last_purged;
            let first_index = purged.map_or(LogIndex::FIRST, |p| p.index.next());
            let n = logs.len();
            let plans = logs
                .iter()
                .enumerate()
                .map(|(i, (first, (base, path)))| Plan {
                    base_offset: *base,
                    first_index: *first,
                    path: path.clone(),
                    sealed: i + 1 < n,
                    trusted_len: 0,
                    scan_limit: None,
                    last_index: first.prev(),
                    last_term: 0,
                    next_offset: *base,
                })
                .collect();
            let header = Manifest {
                generation: 0,
                first_index,
                log_start_offset: Offset::new(0),
                last_purged: purged,
                next_index: first_index,
                next_offset: Offset::new(0),
                last_term: purged.map_or(0, |p| p.term),
                segments: Vec::new(),
            };
            (plans, header)
        }
    };

    let mut segments: Vec<Segment> = Vec::new();
    let mut needs_seal = false;
    let mut expect: Option<Expect> = None;
    let mut damage: Option<crate::log::Damage> = None;
    let recorded_last_index = plans
        .iter()
        .filter(|p| p.trusted_len > 0)
        .map(|p| p.last_index)
        .max()
        .unwrap_or_default();
    let plan_count = plans.len();
    for (i, mut plan) in plans.into_iter().enumerate() {
        let last = i + 1 == plan_count;
        // What the manifest recorded for this segment, before a verified scan ignores it.
        let recorded = (plan.trusted_len > 0).then_some(plan.last_index);
        if verify {
            if plan.sealed {
                plan.scan_limit = Some(plan.trusted_len);
            }
            plan.sealed = false;
            plan.trusted_len = 0;
            plan.last_index = plan.first_index.prev();
            plan.last_term = 0;
            plan.next_offset = plan.base_offset;
        }
        if rebuilt
            && let Some(x) = expect
            && (plan.first_index != x.index || plan.base_offset != x.offset)
        {
            tracing::warn!(path = %plan.path.display(), "segment does not continue the log; dropped");
            break;
        }
        let scan = !plan.sealed || rebuilt;
        let seg = if scan {
            let (seg, dirty_tail) = open_scanned(&*disk, &config, &plan, expect, last)?;
            needs_seal |= dirty_tail && last;
            seg
        } else {
            open_sealed(&*disk, &config, &plan)?
        };
        expect = Some(Expect {
            index: seg.last_index.next(),
            offset: seg.next_offset,
            term: seg.last_term,
        });
        let empty_scanned = scan && seg.len == 0;
        if rebuilt && empty_scanned && !last {
            break;
        }
        if verify && let Some(r) = recorded.filter(|r| seg.last_index < *r) {
            // Frames the manifest recorded are damaged: the log ends before the first bad one.
            tracing::error!(path = %seg.path.display(), valid_to = seg.last_index.get(), recorded = r.get(),
                "verified open: damaged frames in recorded data; the log is cut before them");
            damage = Some(crate::log::Damage {
                first_lost_index: seg.last_index.next(),
                recorded_last_index,
            });
            needs_seal = true;
            let drop_it = seg.len == 0;
            if !drop_it {
                segments.push(seg);
            }
            break;
        }
        if verify && !last {
            // A scanned segment that is not the last one stays sealed.
            let mut seg = seg;
            seg.sealed = true;
            segments.push(seg);
            continue;
        }
        segments.push(seg);
    }
    if damage.is_some() && segments.is_empty() {
        // Nothing valid is left: the log restarts after its purge point.
        needs_seal = false;
    }
    if (rebuilt || damage.is_some()) && segments.len() < plan_count {
        // Later segments did not connect: they are not part of the log.
        needs_seal = true;
    }
    // A sealed segment with nothing valid in it is dropped (its files are removed below).
    if segments
        .last()
        .is_some_and(|s| s.len == 0 && (s.sealed || needs_seal))
    {
        segments.pop();
        needs_seal = false;
    }

    // Where the log starts and ends.
    let first_index = if rebuilt {
        header.last_purged.map_or(
            segments.first().map_or(LogIndex::FIRST, |s| s.first_index),
            |p| p.index.next(),
        )
    } else {
        header.first_index
    };
    let (next_index, next_offset, last_term) = match segments.last() {
        Some(s) => (s.last_index.next(), s.next_offset, s.last_term),
        // Damage took every segment: the log ends at its purge point.
        None if damage.is_some() => (
            first_index,
            header.log_start_offset,
            header.last_purged.map_or(0, |p| p.term),
        ),
        None => (header.next_index, header.next_offset, header.last_term),
    };
    let log_start_offset = if rebuilt {
        start_offset_of(&segments, first_index, &config).unwrap_or(next_offset)
    } else {
        header.log_start_offset
    };
    let last_sealed = segments.last().is_none_or(|s| s.sealed) || needs_seal;
    if needs_seal && let Some(s) = segments.last_mut() {
        s.sealed = true;
    }

    // Remove what the log does not reference.
    let live: HashSet<PathBuf> = segments
        .iter()
        .flat_map(|s| crate::segment::segment_files(&s.path))
        .collect();
    let mut removed_any = false;
    for (_, (_, path)) in logs.iter() {
        if !live.contains(path) {
            disk.remove_file(path)
                .map_err(|e| LogError::io("remove orphan segment", path, e))?;
            removed_any = true;
        }
    }
    for path in others {
        if !live.contains(&path) {
            disk.remove_file(&path)
                .map_err(|e| LogError::io("remove orphan file", &path, e))?;
            removed_any = true;
        }
    }

    // What was recovered from the page cache may not be on disk yet: make it durable now, so
    // that what the log reports after open survives a power loss.
    if let Some(s) = segments.last() {
        disk.sync_data(&s.file)
            .map_err(|e| LogError::io("fdatasync segment", &s.path, e))?;
    }

    let active = match segments.last() {
        Some(seg) if !last_sealed => Some(crate::log::Active {
            file: seg.file.clone(),
            path: seg.path.clone(),
            len: seg.len,
            written: seg.len,
            alloc: seg
                .file
                .metadata()
                .map_err(|e| LogError::io("stat segment", &seg.path, e))?
                .len(),
            created: seg.created,
        }),
        _ => None,
    };
    let view = View {
        segments,
        first_index,
        log_start_offset,
        last_purged: header.last_purged,
        next_index,
        next_offset,
        last_term,
        generation: header.generation,
    };
    let rewrite = rebuilt || needs_seal || manifest.is_none() || damage.is_some();
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        config,
        disk: disk.clone(),
        view: RwLock::new(view),
        sync: Mutex::new(SyncState {
            committed: state.committed,
            last_purged: header.last_purged,
            state_written: state,
            appended_index: next_index.prev(),
            durable_index: next_index.prev(),
            ..SyncState::default()
        }),
        idle: Condvar::new(),
        manifest_persisted: Mutex::new(header.generation),
        state_file: Mutex::new(None),
    });
    if rewrite {
        let m = {
            let mut v = shared.write_view();
            v.generation += 1;
            v.manifest()
        };
        shared.persist_manifest(&m)?;
    } else if removed_any {
        disk.sync_dir(dir)
            .map_err(|e| LogError::io("fsync directory", dir, e))?;
    }
    let prealloc_step = shared.config.preallocate_bytes_min;
    Ok(Log {
        shared,
        flusher: flusher.clone(),
        active,
        damage,
        prealloc_step,
    })
}

/// Offset of the first record at or after `first_index`.
fn start_offset_of(
    segments: &[Segment],
    first_index: LogIndex,
    config: &LogConfig,
) -> Option<Offset> {
    for s in segments {
        if s.last_index < first_index {
            continue;
        }
        for item in FrameWalker::new(s.valid(), 0, false, config.entry_bytes_max) {
            let (_, h) = item.ok()?;
            if h.index >= first_index {
                return Some(h.base_offset);
            }
        }
    }
    None
}

fn new_segment(plan: &Plan, file: fs::File, map: bytes::Bytes) -> Segment {
    Segment {
        base_offset: plan.base_offset,
        first_index: plan.first_index,
        path: plan.path.clone(),
        file: Arc::new(file),
        map,
        len: 0,
        sealed: plan.sealed,
        last_index: plan.first_index.prev(),
        last_term: 0,
        next_offset: plan.base_offset,
        max_timestamp: -1,
        index: Vec::new(),
        time_index: Vec::new(),
        last_indexed_position: 0,
        created: Instant::now(),
    }
}

/// Fills the indexes of `seg` for its first `len` bytes: from the index files if they match,
/// else by walking frame headers (without CRC checks: this prefix is trusted).
fn build_indexes(seg: &mut Segment, len: u64, config: &LogConfig) {
    if let Some(ix) = load_indexes(
        &seg.path.with_extension("index"),
        &seg.path.with_extension("timeindex"),
        len,
    ) {
        seg.index = ix.index;
        seg.time_index = ix.time_index;
        seg.max_timestamp = ix.max_timestamp;
        seg.last_indexed_position = seg.index.last().map_or(0, |e| e.position as u64);
        return;
    }
    let end = (len as usize).min(seg.map.len());
    let map = seg.map.clone();
    let mut max_ts = -1;
    let mut index = Vec::new();
    let mut time_index = Vec::new();
    let mut last_indexed: Option<u64> = None;
    for item in FrameWalker::new(&map[..end], 0, false, config.entry_bytes_max) {
        let Ok((pos, h)) = item else {
            break; // reads past here report the damage
        };
        if last_indexed.is_none_or(|p| pos >= p + config.index_interval_bytes) {
            index.push(crate::segment::IndexEntry {
                offset: h.base_offset,
                index: h.index,
                position: pos as u32,
            });
            last_indexed = Some(pos);
        }
        if h.kind == EntryKind::Data && h.max_timestamp > max_ts {
            if time_index
                .last()
                .is_none_or(|t: &crate::segment::TimeEntry| {
                    pos >= t.position as u64 + config.index_interval_bytes
                })
            {
                time_index.push(crate::segment::TimeEntry {
                    timestamp: h.max_timestamp,
                    offset: h.base_offset,
                    position: pos as u32,
                });
            }
            max_ts = h.max_timestamp;
        }
    }
    seg.index = index;
    seg.time_index = time_index;
    seg.max_timestamp = max_ts;
    seg.last_indexed_position = last_indexed.unwrap_or(0);
}

fn open_segment_file(disk: &dyn Disk, path: &Path) -> Result<(fs::File, u64)> {
    let file = disk
        .open_file(path)
        .map_err(|e| LogError::io("open segment", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| LogError::io("stat segment", path, e))?
        .len();
    Ok((file, len))
}

fn open_sealed(disk: &dyn Disk, config: &LogConfig, plan: &Plan) -> Result<Segment> {
    let (file, file_len) = open_segment_file(disk, &plan.path)?;
    if file_len < plan.trusted_len {
        tracing::error!(path = %plan.path.display(), file_len, expected = plan.trusted_len,
            "sealed segment is shorter than recorded; reads past its end report corruption");
    }
    let map = map_file(&file, file_len, &plan.path)
        .map_err(|e| LogError::io("map segment", &plan.path, e))?;
    let mut seg = new_segment(plan, file, map);
    seg.len = plan.trusted_len;
    seg.last_index = plan.last_index;
    seg.last_term = plan.last_term;
    seg.next_offset = plan.next_offset;
    build_indexes(&mut seg, plan.trusted_len, config);
    Ok(seg)
}

/// Opens a segment whose tail must be scanned. Returns it and whether bytes other than zeros
/// follow its valid end (then appends must not continue in it).
fn open_scanned(
    disk: &dyn Disk,
    config: &LogConfig,
    plan: &Plan,
    expect: Option<Expect>,
    last: bool,
) -> Result<(Segment, bool)> {
    let (file, file_len) = open_segment_file(disk, &plan.path)?;
    let map_len = if last {
        file_len.max(config.segment_capacity())
    } else {
        file_len
    };
    let map = map_file(&file, map_len, &plan.path)
        .map_err(|e| LogError::io("map segment", &plan.path, e))?;
    let mut seg = new_segment(plan, file, map);
    let trusted = if plan.trusted_len > 0 && plan.trusted_len <= file_len {
        plan.trusted_len
    } else {
        0
    };
    if trusted > 0 {
        build_indexes(&mut seg, trusted, config);
        seg.len = trusted;
        seg.last_index = plan.last_index;
        seg.last_term = plan.last_term;
        seg.next_offset = plan.next_offset;
    }
    let mut next = Expect {
        index: seg.last_index.next(),
        offset: seg.next_offset,
        term: seg.last_term.max(expect.map_or(0, |e| e.term)),
    };
    let map = seg.map.clone();
    let end = plan.scan_limit.map_or(file_len, |l| l.min(file_len)) as usize;
    for item in FrameWalker::new(&map[..end], trusted, true, config.entry_bytes_max) {
        let Ok((pos, h)) = item else {
            break;
        };
        if h.index != next.index || h.term < next.term || h.base_offset != next.offset {
            tracing::warn!(path = %plan.path.display(), pos, "frame breaks continuity; log cut here");
            break;
        }
        if h.kind == EntryKind::Data && !data_frame_consistent(&map[pos as usize..], &h) {
            tracing::warn!(path = %plan.path.display(), pos, "batch disagrees with its frame; log cut here");
            break;
        }
        seg.note_frame(&h, pos, config.index_interval_bytes);
        next = Expect {
            index: h.index.next(),
            offset: h.next_offset(),
            term: h.term,
        };
    }
    let tail = &map[(seg.len as usize).min(end)..end];
    let dirty_tail = tail.iter().any(|b| *b != 0);
    if dirty_tail {
        tracing::warn!(path = %plan.path.display(), valid = seg.len, file_len,
            "bytes after the last valid frame; the segment is sealed at its valid end");
    }
    Ok((seg, dirty_tail))
}

/// The batch inside a data frame carries the frame's base offset and record count.
fn data_frame_consistent(frame: &[u8], h: &FrameHeader) -> bool {
    let payload = &frame[crate::frame::FRAME_HEADER_LEN..h.frame_len as usize];
    match BatchHeader::parse(payload) {
        Ok(b) => {
            Offset::new(b.base_offset) == h.base_offset
                && b.record_count as u32 == h.record_count
                && b.total_len() == payload.len()
        }
        Err(_) => false,
    }
}
