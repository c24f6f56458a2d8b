//! [`CountingDisk`]: the real file system ([`RealDisk`]) with counters of the syncs and writes
//! that go through it, so a benchmark can report fsyncs per second and records per fsync.
//!
//! Every call is passed to [`RealDisk`] unchanged: data is written and synced exactly as in
//! production. A counter costs one relaxed atomic add per call.

use std::fs::File;
use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use strata_log::{Disk, RealDisk};

/// [`RealDisk`] plus counters.
#[derive(Debug, Default)]
pub struct CountingDisk {
    data_syncs: AtomicU64,
    dir_syncs: AtomicU64,
    writes: AtomicU64,
    bytes_written: AtomicU64,
}

/// A copy of a [`CountingDisk`]'s counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DiskCounts {
    /// `fdatasync` calls on files (segments, manifests, vote and state files).
    pub data_syncs: u64,
    /// `fsync` calls on directories.
    pub dir_syncs: u64,
    /// `pwritev` calls.
    pub writes: u64,
    /// Bytes written by those calls.
    pub bytes_written: u64,
}

impl DiskCounts {
    /// The counts accumulated between `earlier` and `self`.
    pub fn since(&self, earlier: &DiskCounts) -> DiskCounts {
        DiskCounts {
            data_syncs: self.data_syncs.saturating_sub(earlier.data_syncs),
            dir_syncs: self.dir_syncs.saturating_sub(earlier.dir_syncs),
            writes: self.writes.saturating_sub(earlier.writes),
            bytes_written: self.bytes_written.saturating_sub(earlier.bytes_written),
        }
    }

    /// The sum of two counts (e.g. of several nodes).
    pub fn plus(&self, other: &DiskCounts) -> DiskCounts {
        DiskCounts {
            data_syncs: self.data_syncs + other.data_syncs,
            dir_syncs: self.dir_syncs + other.dir_syncs,
            writes: self.writes + other.writes,
            bytes_written: self.bytes_written + other.bytes_written,
        }
    }

    /// File and directory syncs together.
    pub fn syncs(&self) -> u64 {
        self.data_syncs + self.dir_syncs
    }
}

impl CountingDisk {
    /// A disk with every counter at zero.
    pub fn new() -> CountingDisk {
        CountingDisk::default()
    }

    /// The counters now.
    pub fn counts(&self) -> DiskCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DiskCounts {
            data_syncs: get(&self.data_syncs),
            dir_syncs: get(&self.dir_syncs),
            writes: get(&self.writes),
            bytes_written: get(&self.bytes_written),
        }
    }
}

fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Disk for CountingDisk {
    fn create_file(&self, path: &Path) -> io::Result<File> {
        RealDisk.create_file(path)
    }

    fn open_file(&self, path: &Path) -> io::Result<File> {
        RealDisk.open_file(path)
    }

    fn write_at(&self, file: &File, bufs: &[IoSlice<'_>], pos: u64) -> io::Result<()> {
        bump(&self.writes, 1);
        bump(
            &self.bytes_written,
            bufs.iter().map(|b| b.len() as u64).sum(),
        );
        RealDisk.write_at(file, bufs, pos)
    }

    fn allocate(&self, file: &File, len: u64) -> io::Result<()> {
        RealDisk.allocate(file, len)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        RealDisk.set_len(file, len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        bump(&self.data_syncs, 1);
        RealDisk.sync_data(file)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        bump(&self.dir_syncs, 1);
        RealDisk.sync_dir(dir)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealDisk.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        RealDisk.remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        RealDisk.create_dir_all(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_syncs_reach_the_file_and_are_counted() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let disk = CountingDisk::new();
        let path = dir.path().join("f");
        let file = disk.create_file(&path)?;
        disk.write_at(&file, &[IoSlice::new(b"abc"), IoSlice::new(b"de")], 0)?;
        disk.sync_data(&file)?;
        disk.sync_dir(dir.path())?;
        assert_eq!(std::fs::read(&path)?, b"abcde");
        let counts = disk.counts();
        assert_eq!(
            counts,
            DiskCounts {
                data_syncs: 1,
                dir_syncs: 1,
                writes: 1,
                bytes_written: 5
            }
        );
        assert_eq!(counts.since(&DiskCounts::default()).syncs(), 2);
        Ok(())
    }
}
