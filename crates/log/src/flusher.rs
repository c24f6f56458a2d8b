//! [`Flusher`]: one thread per data directory that makes appends durable for many logs.
//!
//! Group commit: a round for a log takes every flush request queued so far, syncs each file
//! with unsynced writes once (`fdatasync`), persists a pending manifest and the state record,
//! then runs the requests' completions in order. Requests arriving during a round wait for the
//! next one, so one sync covers every append queued before it.

use crate::error::{LogError, Result};
use crate::numbers::LogIndex;
pub use crate::shared::FlushCallback;
use crate::shared::{FlushRequest, Shared, lock};
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

#[derive(Default)]
struct Queue {
    logs: VecDeque<Arc<Shared>>,
    shutdown: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    wake: Condvar,
}

/// The flusher's threads; dropping it finishes queued rounds and stops them.
pub struct Flusher {
    handle: FlusherHandle,
    threads: Vec<JoinHandle<()>>,
}

/// A cheap handle logs use to queue work with a [`Flusher`].
#[derive(Clone)]
pub struct FlusherHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FlusherHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlusherHandle")
    }
}

impl std::fmt::Debug for Flusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Flusher")
    }
}

impl Flusher {
    /// Starts one flusher thread named `strata-flush-{name}`.
    pub fn start(name: &str) -> std::io::Result<Flusher> {
        Flusher::start_pool(name, 1)
    }

    /// Starts `threads` flusher threads (at least one) sharing one queue: up to that many
    /// logs sync at once. One log's rounds never overlap (a round waits for the previous one
    /// to finish), so a pool only helps when several logs have appends to sync.
    pub fn start_pool(name: &str, threads: usize) -> std::io::Result<Flusher> {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let mut flusher = Flusher {
            handle: FlusherHandle {
                inner: inner.clone(),
            },
            threads: Vec::new(),
        };
        for i in 0..threads.max(1) {
            let worker = inner.clone();
            let thread = std::thread::Builder::new()
                .name(format!("strata-flush-{name}-{i}"))
                .spawn(move || run(&worker))?;
            flusher.threads.push(thread);
        }
        Ok(flusher)
    }

    /// A handle for [`crate::Log::open`].
    pub fn handle(&self) -> FlusherHandle {
        self.handle.clone()
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        lock(&self.handle.inner.queue).shutdown = true;
        self.handle.inner.wake.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn run(inner: &Inner) {
    loop {
        let log = {
            let mut q = lock(&inner.queue);
            loop {
                if let Some(l) = q.logs.pop_front() {
                    break l;
                }
                if q.shutdown {
                    return;
                }
                q = inner.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
        };
        round(&log);
    }
}

impl FlusherHandle {
    /// Queues a flush request for `shared` covering appends up to `target`.
    pub(crate) fn submit(&self, shared: &Arc<Shared>, target: LogIndex, done: FlushCallback) {
        let mut s = lock(&shared.sync);
        if let Some(reason) = s.failed.clone() {
            drop(s);
            done(Err(shared.failed_error(&reason)));
            return;
        }
        s.requests.push(FlushRequest { target, done });
        let enqueue = !s.queued;
        s.queued = true;
        drop(s);
        if enqueue {
            self.enqueue(shared);
        }
    }

    /// Queues a round with no completion (to persist a purge in the background).
    pub(crate) fn submit_background(&self, shared: &Arc<Shared>) {
        let mut s = lock(&shared.sync);
        let enqueue = !s.queued;
        s.queued = true;
        drop(s);
        if enqueue {
            self.enqueue(shared);
        }
    }

    fn enqueue(&self, shared: &Arc<Shared>) {
        let mut q = lock(&self.inner.queue);
        if q.shutdown {
            drop(q);
            let requests = {
                let mut s = lock(&shared.sync);
                s.queued = false;
                std::mem::take(&mut s.requests)
            };
            for r in requests {
                (r.done)(Err(LogError::FlusherStopped));
            }
            return;
        }
        q.logs.push_back(shared.clone());
        drop(q);
        self.inner.wake.notify_one();
    }
}

/// One group commit for one log. See the module docs and [`crate::log`] for the steps.
fn round(shared: &Shared) {
    let (dirty, manifest, unlinks, requests, target, committed, purged) = {
        let mut s = lock(&shared.sync);
        // A truncation, reset or close holds the log's sync work (see `Shared::exclusive`).
        while s.busy {
            s = shared.idle.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.queued = false;
        // A dropped log is treated as crashed: no IO on its files any more.
        let stop = s
            .failed
            .clone()
            .or_else(|| s.closed.then(|| "the log was dropped".to_string()));
        if let Some(reason) = stop {
            let requests = std::mem::take(&mut s.requests);
            drop(s);
            for r in requests {
                (r.done)(Err(shared.failed_error(&reason)));
            }
            return;
        }
        s.busy = true;
        let target = s
            .requests
            .iter()
            .map(|r| r.target)
            .max()
            .unwrap_or(s.appended_index)
            .min(s.appended_index);
        (
            std::mem::take(&mut s.dirty),
            s.manifest.take(),
            std::mem::take(&mut s.unlinks),
            std::mem::take(&mut s.requests),
            target,
            s.committed,
            s.last_purged,
        )
    };
    let disk = &*shared.disk;
    let result = (|| -> Result<()> {
        for d in &dirty {
            if let Some(len) = d.trim_to {
                disk.set_len(&d.file, len)
                    .map_err(|e| LogError::io("trim segment", &d.path, e))?;
            }
            disk.sync_data(&d.file)
                .map_err(|e| LogError::io("fdatasync segment", &d.path, e))?;
        }
        for d in &dirty {
            for (path, bytes) in d.indexes.iter().flatten() {
                if let Err(e) = crate::segment::write_index_file(disk, path, bytes) {
                    tracing::warn!(error = %e, "index file not written; it will be rebuilt");
                }
            }
        }
        if let Some(m) = &manifest {
            // New segment files must be durable entries before a manifest names them.
            disk.sync_dir(&shared.dir)
                .map_err(|e| LogError::io("fsync directory", &shared.dir, e))?;
            shared.persist_manifest(m)?;
            for path in &unlinks {
                if path.exists()
                    && let Err(e) = disk.remove_file(path)
                {
                    tracing::warn!(path = %path.display(), error = %e,
                        "could not remove a purged file; the next open removes it");
                }
            }
        }
        shared.persist_state(committed, purged, false)
    })();
    let mut s = lock(&shared.sync);
    s.busy = false;
    let reason = match &result {
        Ok(()) => {
            s.durable_index = s.durable_index.max(target);
            None
        }
        Err(e) => {
            let reason = e.to_string();
            if s.failed.is_none() {
                s.failed = Some(reason.clone());
            }
            tracing::error!(dir = %shared.dir.display(), %reason, "flush failed; log must be reopened");
            // What this round wrote may now live only in the page cache (a failed fdatasync
            // loses its writes while they stay readable): the next open must cut after the
            // last index a successful sync covered, whoever opens it (a reopening replica, or
            // this process restarted). Recorded in the state file, a different file.
            let durable = s.durable_index;
            drop(s);
            if let Err(e) = shared.mark_cut_after(Some(durable)) {
                tracing::error!(dir = %shared.dir.display(), error = %e,
                    "could not record the durable point after a failed flush");
            }
            s = lock(&shared.sync);
            Some(reason)
        }
    };
    shared.idle.notify_all();
    drop(s);
    for r in requests {
        (r.done)(match &reason {
            None => Ok(()),
            Some(reason) => Err(shared.failed_error(reason)),
        });
    }
}
