//! The disk seam: every write, allocation, sync, rename and directory operation of the log goes
//! through a [`Disk`], so tests can inject errors and simulate a crash ([`crate::sim::SimDisk`]).
//! Reads go through read-only memory maps and plain `read` calls, outside the seam.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::path::Path;

/// The operations the log performs on files and directories.
///
/// Contract for implementations:
/// - `write_at` writes every byte of `bufs` at `pos` or returns an error; after an error the
///   bytes in the range are unspecified.
/// - `allocate` makes the file at least `len` bytes long with its blocks reserved, so later
///   writes below `len` cannot fail for lack of space.
/// - `sync_data` returns `Ok` only when every write and size change made to the file before
///   the call is durable. After an error nothing is known about unsynced writes.
/// - `sync_dir` makes every entry created, renamed or removed in the directory durable.
pub trait Disk: Send + Sync + std::fmt::Debug + 'static {
    /// Creates a new file for reading and writing; fails if it exists.
    fn create_file(&self, path: &Path) -> io::Result<File>;
    /// Opens an existing file for reading and writing.
    fn open_file(&self, path: &Path) -> io::Result<File>;
    /// Writes all of `bufs`, in order, starting at `pos`.
    fn write_at(&self, file: &File, bufs: &[IoSlice<'_>], pos: u64) -> io::Result<()>;
    /// Extends the file to at least `len` bytes with allocated (zeroed) blocks.
    fn allocate(&self, file: &File, len: u64) -> io::Result<()>;
    /// Sets the file's length (used to trim a segment before it is sealed).
    fn set_len(&self, file: &File, len: u64) -> io::Result<()>;
    /// Makes the file's data and size durable (fdatasync).
    fn sync_data(&self, file: &File) -> io::Result<()>;
    /// Makes the directory's entries durable (fsync on the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing `to` atomically.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl Disk for RealDisk {
    fn create_file(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
    }

    fn open_file(&self, path: &Path) -> io::Result<File> {
        OpenOptions::new().read(true).write(true).open(path)
    }

    fn write_at(&self, file: &File, bufs: &[IoSlice<'_>], pos: u64) -> io::Result<()> {
        pwritev_all(file, bufs, pos)
    }

    fn allocate(&self, file: &File, len: u64) -> io::Result<()> {
        let current = file.metadata()?.len();
        if current >= len {
            return Ok(());
        }
        // SAFETY: fallocate on a valid open descriptor with in-range arguments.
        let rc = unsafe {
            libc::fallocate(
                file.as_raw_fd(),
                0,
                current as libc::off_t,
                (len - current) as libc::off_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
            // File systems without fallocate: extend with zeros written explicitly so the blocks
            // are allocated now and a full disk shows up here.
            return zero_fill(file, current, len);
        }
        Err(err)
    }

    fn set_len(&self, file: &File, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn sync_data(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
}

/// Creates `path` through `disk`, first removing a leftover file of that name (an orphan of a
/// crash or a cut that the caller knows is not part of the log).
pub(crate) fn create_replacing(
    disk: &dyn Disk,
    path: &Path,
) -> Result<File, crate::error::LogError> {
    if path.exists() {
        disk.remove_file(path)
            .map_err(|e| crate::error::LogError::io("remove leftover file", path, e))?;
    }
    disk.create_file(path)
        .map_err(|e| crate::error::LogError::io("create file", path, e))
}

fn zero_fill(file: &File, from: u64, to: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let zeros = vec![0u8; 1 << 16];
    let mut pos = from;
    while pos < to {
        let n = ((to - pos) as usize).min(zeros.len());
        file.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

/// Writes every byte of `bufs` at `pos` with `pwritev`, continuing after short writes.
pub fn pwritev_all(file: &File, bufs: &[IoSlice<'_>], mut pos: u64) -> io::Result<()> {
    const IOV_MAX: usize = 1024;
    let mut slices: Vec<&[u8]> = bufs
        .iter()
        .map(|b| &**b)
        .filter(|b| !b.is_empty())
        .collect();
    let mut first = 0;
    while first < slices.len() {
        let end = (first + IOV_MAX).min(slices.len());
        let iov: Vec<libc::iovec> = slices[first..end]
            .iter()
            .map(|s| libc::iovec {
                iov_base: s.as_ptr() as *mut libc::c_void,
                iov_len: s.len(),
            })
            .collect();
        // SAFETY: the iovecs point into live slices for the duration of the call.
        let rc = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                pos as libc::off_t,
            )
        };
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        if rc == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "pwritev wrote nothing",
            ));
        }
        let mut written = rc as usize;
        pos += written as u64;
        while first < end && written >= slices[first].len() {
            written -= slices[first].len();
            first += 1;
        }
        if written > 0 {
            slices[first] = &slices[first][written..];
        }
    }
    Ok(())
}
