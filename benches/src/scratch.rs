//! Scratch space on the real disk: benchmark directories, preallocated files, and a probe of
//! how much of a file the page cache holds.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Environment variable that overrides where benchmarks put their data.
pub const BENCH_DIR_ENV: &str = "STRATA_BENCH_DIR";

/// Where benchmark data goes: `$STRATA_BENCH_DIR`, else `<workspace>/target/bench-tmp`.
///
/// Not `/tmp`: that may be a tmpfs, which would measure memory rather than the disk.
pub fn bench_root() -> PathBuf {
    match std::env::var_os(BENCH_DIR_ENV) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("target")
            .join("bench-tmp"),
    }
}

/// A fresh directory under `root` (created if missing), removed with everything in it when
/// the returned guard drops.
pub fn scratch_dir(root: &Path) -> io::Result<TempDir> {
    std::fs::create_dir_all(root)?;
    tempfile::Builder::new()
        .prefix("strata-bench-")
        .tempdir_in(root)
}

/// Creates `path` and reserves `len` bytes for it with `fallocate`, as the log does for its
/// segments, so the baselines write into the same kind of extents.
pub fn preallocated_file(path: &Path, len: u64) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)?;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "length exceeds off_t"))?;
    // SAFETY: fallocate on a descriptor this function owns, with a non-negative range.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(file)
}

/// Fraction (0.0 to 1.0) of the pages of the file at `path` that are in the page cache, from
/// `mincore` on a fresh read-only mapping. An empty file counts as fully resident.
pub fn page_cache_residency(path: &Path) -> io::Result<f64> {
    let file = File::open(path)?;
    let len = usize::try_from(file.metadata()?.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
    if len == 0 {
        return Ok(1.0);
    }
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    // SAFETY: a fresh shared read-only mapping of an open file; it is only passed to mincore
    // (never dereferenced) and unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let mut residency = vec![0u8; len.div_ceil(page)];
    // SAFETY: `addr` is a live mapping of `len` bytes and `residency` has one byte per page.
    let rc = unsafe { libc::mincore(addr, len, residency.as_mut_ptr()) };
    let err = io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(addr, len) };
    if rc != 0 {
        return Err(err);
    }
    let resident = residency.iter().filter(|b| *b & 1 == 1).count();
    Ok(resident as f64 / residency.len() as f64)
}

/// Bytes of dirty page cache system-wide (`Dirty:` of `/proc/meminfo`): data written but not
/// yet on disk. `None` where `/proc/meminfo` is unavailable.
pub fn dirty_page_cache_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("Dirty:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Total size in bytes of the regular files directly in `dir` (benchmark logs are flat).
pub fn dir_bytes(dir: &Path) -> io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let meta = entry?.metadata()?;
        if meta.is_file() {
            total += meta.len();
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_just_written_is_resident_and_preallocation_sets_the_length() -> io::Result<()> {
        let root = std::env::temp_dir();
        let dir = scratch_dir(&root)?;
        let path = dir.path().join("f");
        let file = preallocated_file(&path, 1 << 20)?;
        assert_eq!(file.metadata()?.len(), 1 << 20);
        std::os::unix::fs::FileExt::write_all_at(&file, &[7u8; 1 << 16], 0)?;
        let residency = page_cache_residency(&path)?;
        assert!(residency > 0.0 && residency <= 1.0, "{residency}");
        Ok(())
    }
}
