//! [`SimDisk`]: a [`Disk`] over the real file system that remembers everything not yet made
//! durable, so a test can simulate a power loss and inject IO errors.
//!
//! A crash ([`SimDisk::crash`]) undoes every write and size change not covered by a successful
//! `sync_data` of its file, and puts every directory back to its entries at its last
//! `sync_dir`: files created since disappear, removed or renamed-over files come back. Killing a
//! process cannot test this: the page cache survives it.
//!
//! A crash writes the durable contents of each changed file as a new file in its place, so a
//! thread of the crashed instance that still maps the old file (a test process outlives the
//! instances it crashes) keeps reading what it mapped rather than faulting on a shrunk file.
//!
//! A failed `sync_data` has Linux's semantics ("fsyncgate"): the writes it covered stay
//! readable (the page cache keeps them, marked clean) but are not on disk, and a later
//! successful sync of the same file does not bring them back: a crash still undoes them.
//!
//! [`SimDisk::hold_syncs`] makes matching syncs block until [`SimDisk::release_syncs`], so a
//! test can keep one node's fsync behind its peers' or race another operation against a sync in
//! progress.
//!
//! A later successful sync of the same file makes durable what was written since, byte for
//! byte, over what a failed sync lost (a replica reopened after the failure cuts its log and
//! writes over the same bytes), and makes the file's current size durable.
//!
//! Simplifications: directories created through the seam are durable at once; hard links are
//! not modelled (the log makes none); bytes are durable or not one by one, not per page.

use crate::disk::{Disk, RealDisk};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, IoSlice};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The operations a fault can target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `create_file`.
    Create,
    /// `write_at`.
    Write,
    /// `allocate`.
    Allocate,
    /// `set_len`.
    SetLen,
    /// `sync_data`.
    Sync,
    /// `sync_dir`.
    SyncDir,
    /// `rename`.
    Rename,
    /// `remove_file`.
    Remove,
}

/// How the unsynced writes of a file fare in a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced write and size change is lost.
    DropAll,
    /// Per file, a random prefix of the unsynced writes survives, the next write is torn at a
    /// random byte, the rest is lost (seeded).
    TornPrefix(u64),
}

#[derive(Debug)]
enum Undo {
    /// Bytes that were at `pos` before a write, and the file length before it.
    Write {
        pos: u64,
        old: Vec<u8>,
        old_len: u64,
        new: Vec<u8>,
    },
    /// The file length (and bytes cut off) before a size change.
    Len { old_len: u64, old_tail: Vec<u8> },
}

#[derive(Debug, Default)]
struct Inode {
    path: PathBuf,
    undo: Vec<Undo>,
    /// Writes a failed sync covered: gone at a crash whatever later syncs do.
    lost: Vec<Undo>,
}

/// Which files' syncs [`SimDisk::hold_syncs`] blocks.
type SyncFilter = Box<dyn Fn(&Path) -> bool + Send>;

/// Which syncs block, and how the blocked ones end.
#[derive(Default)]
struct Hold {
    filter: Option<SyncFilter>,
    waiting: usize,
    /// Bumped by each release, so a waiter knows its hold ended.
    generation: u64,
    fail_released: bool,
}

#[derive(Debug)]
struct Fault {
    op: Op,
    errno: i32,
    remaining: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    /// Durable entries (name -> inode) of each directory touched.
    dirs: HashMap<PathBuf, HashMap<OsString, u64>>,
    faults: Vec<Fault>,
    trash_seq: u64,
    ops: u64,
}

/// A crash-simulating, fault-injecting [`Disk`]. See the module docs.
#[derive(Debug)]
pub struct SimDisk {
    trash: PathBuf,
    state: Mutex<State>,
    hold: Mutex<Hold>,
    released: std::sync::Condvar,
}

impl std::fmt::Debug for Hold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hold")
            .field("active", &self.filter.is_some())
            .field("waiting", &self.waiting)
            .finish()
    }
}

use strata_record::sync::lock;

fn ino(file: &File) -> io::Result<u64> {
    Ok(file.metadata()?.ino())
}

fn list_dir(dir: &Path) -> io::Result<HashMap<OsString, u64>> {
    let mut map = HashMap::new();
    for e in fs::read_dir(dir)? {
        let e = e?;
        let md = e.metadata()?;
        if md.is_file() {
            map.insert(e.file_name(), md.ino());
        }
    }
    Ok(map)
}

fn split(path: &Path) -> io::Result<(PathBuf, OsString)> {
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    Ok((parent.to_path_buf(), name.to_os_string()))
}

impl SimDisk {
    /// A simulated disk keeping removed files in `trash_dir` (same file system as the data,
    /// created if missing) until a directory sync makes the removal durable.
    pub fn new(trash_dir: impl Into<PathBuf>) -> io::Result<SimDisk> {
        let trash = trash_dir.into();
        fs::create_dir_all(&trash)?;
        Ok(SimDisk {
            trash,
            state: Mutex::new(State::default()),
            hold: Mutex::new(Hold::default()),
            released: std::sync::Condvar::new(),
        })
    }

    /// Makes operations of kind `op` fail with `errno`: the next `times` of them, or all until
    /// [`SimDisk::clear_faults`] when `times` is `None`.
    pub fn inject(&self, op: Op, errno: i32, times: Option<u32>) {
        lock(&self.state).faults.push(Fault {
            op,
            errno,
            remaining: times,
        });
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        lock(&self.state).faults.clear();
    }

    /// Number of operations performed through this disk (a coarse clock for fault schedules).
    pub fn op_count(&self) -> u64 {
        lock(&self.state).ops
    }

    /// Whether any write or size change is not yet durable.
    pub fn has_unsynced(&self) -> bool {
        lock(&self.state)
            .inodes
            .values()
            .any(|i| !i.undo.is_empty() || !i.lost.is_empty())
    }

    /// Makes every `sync_data` of a file whose path matches `filter` block until
    /// [`SimDisk::release_syncs`] (a slow or stuck device under that file).
    pub fn hold_syncs(&self, filter: impl Fn(&Path) -> bool + Send + 'static) {
        let mut h = strata_record::sync::lock(&self.hold);
        h.filter = Some(Box::new(filter));
    }

    /// How many syncs are blocked by [`SimDisk::hold_syncs`] now.
    pub fn held_syncs(&self) -> usize {
        strata_record::sync::lock(&self.hold).waiting
    }

    /// Ends the hold: blocked syncs go on, or fail with EIO (losing what they covered) when
    /// `fail`.
    pub fn release_syncs(&self, fail: bool) {
        let mut h = strata_record::sync::lock(&self.hold);
        h.filter = None;
        h.generation += 1;
        h.fail_released = fail;
        self.released.notify_all();
    }

    /// Blocks while `path`'s syncs are held; `Err` if the hold ended in a failure.
    fn wait_hold(&self, path: &Path) -> io::Result<()> {
        let mut h = strata_record::sync::lock(&self.hold);
        if !h.filter.as_ref().is_some_and(|f| f(path)) {
            return Ok(());
        }
        let generation = h.generation;
        h.waiting += 1;
        while h.generation == generation {
            h = self.released.wait(h).unwrap_or_else(|e| e.into_inner());
        }
        h.waiting -= 1;
        if h.fail_released {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    fn check(&self, st: &mut State, op: Op) -> io::Result<()> {
        st.ops += 1;
        let mut hit = None;
        for f in st.faults.iter_mut() {
            if f.op == op {
                match &mut f.remaining {
                    Some(0) => continue,
                    Some(n) => *n -= 1,
                    None => {}
                }
                hit = Some(f.errno);
                break;
            }
        }
        st.faults.retain(|f| f.remaining != Some(0));
        match hit {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    fn touch_dir(st: &mut State, dir: &Path) -> io::Result<()> {
        if !st.dirs.contains_key(dir) {
            let listing = list_dir(dir)?;
            st.dirs.insert(dir.to_path_buf(), listing);
        }
        Ok(())
    }

    fn inode<'a>(st: &'a mut State, file: &File) -> io::Result<&'a mut Inode> {
        let n = ino(file)?;
        Ok(st.inodes.entry(n).or_default())
    }

    fn to_trash(&self, st: &mut State, path: &Path) -> io::Result<()> {
        let md = fs::metadata(path)?;
        st.trash_seq += 1;
        let dest = self.trash.join(format!("t{}", st.trash_seq));
        fs::rename(path, &dest)?;
        st.inodes.entry(md.ino()).or_default().path = dest;
        Ok(())
    }

    /// Simulates a power loss: see the module docs. Every file the log had open must have been
    /// dropped first (the log must be dropped without a clean close).
    pub fn crash(&self, mode: CrashMode) -> io::Result<()> {
        let mut st = lock(&self.state);
        let mut rng = match mode {
            CrashMode::DropAll => None,
            CrashMode::TornPrefix(seed) => Some(SplitMix(seed)),
        };
        // 1. What no sync covered, per file, in path order (so torn-write draws depend on the
        // seed, not on hash order).
        let mut inodes: Vec<(u64, PathBuf, Vec<Undo>, Vec<Undo>)> = st
            .inodes
            .iter_mut()
            .map(|(n, i)| {
                (
                    *n,
                    i.path.clone(),
                    std::mem::take(&mut i.undo),
                    std::mem::take(&mut i.lost),
                )
            })
            .collect();
        inodes.sort_by(|a, b| a.1.cmp(&b.1));
        // 2. Directory entries: back to the last synced listing (before the contents: it finds
        // files by inode, and step 3 gives changed files new inodes).
        let dirs: Vec<(PathBuf, HashMap<OsString, u64>)> = st
            .dirs
            .iter()
            .map(|(d, m)| (d.clone(), m.clone()))
            .collect();
        for (dir, durable) in &dirs {
            let current = list_dir(dir)?;
            for (name, n) in &current {
                if durable.get(name) != Some(n) {
                    self.to_trash(&mut st, &dir.join(name))?;
                }
            }
            for (name, n) in durable {
                let here = dir.join(name);
                if here.exists() {
                    continue;
                }
                if let Some(inode) = st.inodes.get_mut(n)
                    && inode.path.exists()
                {
                    fs::rename(&inode.path, &here)?;
                    inode.path = here;
                }
            }
        }
        // 3. File contents: undo what no sync covered. The undo is done on a copy that then
        // replaces the file, so that a thread of the crashed instance still mapping the old file
        // (in a test process such threads outlive the crash; a power loss would end them) keeps
        // reading the old bytes instead of faulting on a shrunk file.
        for (n, _, undo, lost) in inodes {
            if undo.is_empty() && lost.is_empty() {
                continue;
            }
            let Some(path) = st.inodes.get(&n).map(|i| i.path.clone()) else {
                continue;
            };
            let fresh = path.with_file_name(format!(".crash-{n}"));
            if fs::copy(&path, &fresh).is_err() {
                continue;
            }
            let file = fs::OpenOptions::new().read(true).write(true).open(&fresh)?;
            // Writes 0..keep survive; write `keep` may be torn; the rest are undone.
            let keep = match &mut rng {
                None => 0,
                Some(r) => (r.next() % (undo.len() as u64 + 1)) as usize,
            };
            for (i, u) in undo.iter().enumerate().rev() {
                if i < keep {
                    break;
                }
                match u {
                    Undo::Write {
                        pos,
                        old,
                        old_len,
                        new,
                    } => {
                        file.write_all_at(old, *pos)?;
                        if file.metadata()?.len() > *old_len {
                            file.set_len(*old_len)?;
                        }
                        if i == keep
                            && let Some(r) = &mut rng
                        {
                            // A torn write: a random prefix of it reached the disk.
                            let torn = (r.next() % (new.len() as u64 + 1)) as usize;
                            let end = *pos + torn as u64;
                            if file.metadata()?.len() < end {
                                file.set_len(end)?;
                            }
                            file.write_all_at(&new[..torn], *pos)?;
                        }
                    }
                    Undo::Len { old_len, old_tail } => undo_len(&file, *old_len, old_tail)?,
                }
            }
            // What failed syncs covered is gone too (it is older than `undo`).
            for u in lost.iter().rev() {
                match u {
                    Undo::Write {
                        pos, old, old_len, ..
                    } => {
                        file.write_all_at(old, *pos)?;
                        if file.metadata()?.len() > *old_len {
                            file.set_len(*old_len)?;
                        }
                    }
                    Undo::Len { old_len, old_tail } => undo_len(&file, *old_len, old_tail)?,
                }
            }
            drop(file);
            fs::rename(&fresh, &path)?;
        }
        // 4. Forget everything: what is on disk now is the durable state.
        st.inodes.clear();
        st.dirs.clear();
        st.faults.clear();
        for e in fs::read_dir(&self.trash)? {
            let _ = fs::remove_file(e?.path());
        }
        Ok(())
    }
}

/// Copies the part of `src` (at file position `src_pos`) that overlaps `dst` (at `dst_pos`)
/// into `dst`.
fn overlay(dst: &mut [u8], dst_pos: u64, src: &[u8], src_pos: u64) {
    let start = dst_pos.max(src_pos);
    let end = (dst_pos + dst.len() as u64).min(src_pos + src.len() as u64);
    if start >= end {
        return;
    }
    let (d, s, n) = (
        (start - dst_pos) as usize,
        (start - src_pos) as usize,
        (end - start) as usize,
    );
    dst[d..d + n].copy_from_slice(&src[s..s + n]);
}

fn undo_len(file: &File, old_len: u64, old_tail: &[u8]) -> io::Result<()> {
    file.set_len(old_len)?;
    if !old_tail.is_empty() {
        file.write_all_at(old_tail, old_len - old_tail.len() as u64)?;
    }
    Ok(())
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Disk for SimDisk {
    fn create_file(&self, path: &Path) -> io::Result<File> {
        let mut st = lock(&self.state);
        self.check(&mut st, Op::Create)?;
        let (dir, _) = split(path)?;
        Self::touch_dir(&mut st, &dir)?;
        let file = RealDisk.create_file(path)?;
        Self::inode(&mut st, &file)?.path = path.to_path_buf();
        Ok(file)
    }

    fn open_file(&self, path: &Path) -> io::Result<File> {
        let mut st = lock(&self.state);
        let (dir, _) = split(path)?;
        Self::touch_dir(&mut st, &dir)?;
        let file = RealDisk.open_file(path)?;
        Self::inode(&mut st, &file)?.path = path.to_path_buf();
        Ok(file)
    }

    fn write_at(&self, file: &File, bufs: &[IoSlice<'_>], pos: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.check(&mut st, Op::Write)?;
        let new: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).collect();
        let old_len = file.metadata()?.len();
        let end = (pos + new.len() as u64).min(old_len);
        let mut old = vec![0u8; end.saturating_sub(pos) as usize];
        file.read_exact_at(&mut old, pos)?;
        RealDisk.write_at(file, bufs, pos)?;
        Self::inode(&mut st, file)?.undo.push(Undo::Write {
            pos,
            old,
            old_len,
            new,
        });
        Ok(())
    }

    fn allocate(&self, file: &File, len: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.check(&mut st, Op::Allocate)?;
        let old_len = file.metadata()?.len();
        RealDisk.allocate(file, len)?;
        Self::inode(&mut st, file)?.undo.push(Undo::Len {
            old_len,
            old_tail: Vec::new(),
        });
        Ok(())
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.check(&mut st, Op::SetLen)?;
        let old_len = file.metadata()?.len();
        let mut old_tail = Vec::new();
        if len < old_len {
            old_tail = vec![0u8; (old_len - len) as usize];
            file.read_exact_at(&mut old_tail, len)?;
        }
        RealDisk.set_len(file, len)?;
        Self::inode(&mut st, file)?
            .undo
            .push(Undo::Len { old_len, old_tail });
        Ok(())
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        let path = Self::inode(&mut lock(&self.state), file)?.path.clone();
        let held = self.wait_hold(&path);
        let mut st = lock(&self.state);
        // A failed sync loses the writes it covered for good (see the module docs): they stay
        // readable until the crash, and no later sync makes them durable.
        if let Err(e) = held.and_then(|()| self.check(&mut st, Op::Sync)) {
            let inode = Self::inode(&mut st, file)?;
            let failed = std::mem::take(&mut inode.undo);
            inode.lost.extend(failed);
            return Err(e);
        }
        let len = file.metadata()?.len();
        let inode = Self::inode(&mut st, file)?;
        let durable = std::mem::take(&mut inode.undo);
        if !inode.lost.is_empty() {
            // Bytes a failed sync lost and a later write rewrote (a replica reopened after the
            // failure cuts its log and appends over the same bytes) are durable now with the
            // later content, and so is the file's current size: a crash must not put the lost
            // writes' old bytes back over them, nor cut the file to a length before them.
            for l in inode.lost.iter_mut() {
                if let Undo::Write {
                    pos,
                    old,
                    old_len,
                    new,
                } = l
                {
                    // What the lost write added past the end was nothing before it: zeros in
                    // a file whose size is now durable.
                    if old.len() < new.len() {
                        old.resize(new.len(), 0);
                    }
                    for d in &durable {
                        if let Undo::Write {
                            pos: dpos,
                            new: dnew,
                            ..
                        } = d
                        {
                            overlay(old, *pos, dnew, *dpos);
                        }
                    }
                    *old_len = len;
                }
            }
            // A lost size change is overridden by the size this sync made durable.
            inode.lost.retain(|u| matches!(u, Undo::Write { .. }));
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.check(&mut st, Op::SyncDir)?;
        let listing = list_dir(dir)?;
        st.dirs.insert(dir.to_path_buf(), listing);
        Ok(())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.check(&mut st, Op::Rename)?;
        let (from_dir, _) = split(from)?;
        let (to_dir, _) = split(to)?;
        Self::touch_dir(&mut st, &from_dir)?;
        Self::touch_dir(&mut st, &to_dir)?;
        let moving = fs::metadata(from)?.ino();
        if to.exists() {
            // Keep the replaced file so a crash before the directory sync can restore it.
            self.to_trash(&mut st, to)?;
        }
        fs::rename(from, to)?;
        st.inodes.entry(moving).or_default().path = to.to_path_buf();
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        self.check(&mut st, Op::Remove)?;
        let (dir, _) = split(path)?;
        Self::touch_dir(&mut st, &dir)?;
        self.to_trash(&mut st, path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
}
