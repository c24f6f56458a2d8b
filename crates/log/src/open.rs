//! Opening a log: [`Log::open`] and [`Log::open_verified`] run recovery (`recover`), then
//! apply the cut a failed flush recorded in the state file, with a truncation.

use crate::config::LogConfig;
use crate::disk::Disk;
use crate::error::Result;
use crate::flusher::FlusherHandle;
use crate::log::Log;
use crate::shared::lock;
use std::path::Path;
use std::sync::Arc;

impl Log {
    /// Opens (recovering) or creates the log in `dir`. Recovery trusts the sealed segments and
    /// the active segment's checkpoint that the manifest records, checks every frame after the
    /// checkpoint and cuts the log at the first bad one, and removes the files the log does not
    /// list; then the cut a failed flush recorded is applied (see [`crate::log`], step 6).
    pub fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
        disk: Arc<dyn Disk>,
        flusher: &FlusherHandle,
    ) -> Result<Log> {
        crate::recover::open(dir.as_ref(), config, disk, flusher, false)?.cut_after_failure()
    }

    /// As [`Log::open`], but checks every frame of every segment, sealed ones and the
    /// checkpointed prefix included (a normal open trusts them), and cuts the log at the first
    /// bad frame. What was lost is reported by [`Log::damage`]. Used after a failure, when a
    /// read found a corrupt frame: the cost is a read of the whole log.
    pub fn open_verified(
        dir: impl AsRef<Path>,
        config: LogConfig,
        disk: Arc<dyn Disk>,
        flusher: &FlusherHandle,
    ) -> Result<Log> {
        crate::recover::open(dir.as_ref(), config, disk, flusher, true)?.cut_after_failure()
    }

    /// Applies the cut a failed flush recorded (see `StateRecord::cut_after`): recovery read
    /// the tail through the page cache, where a failed sync's writes stay readable although
    /// they never reached the disk. Then clears the record.
    fn cut_after_failure(mut self) -> Result<Log> {
        let Some(durable) = lock(&self.shared.sync).state_written.cut_after else {
            return Ok(self);
        };
        let last = self.next_index().prev();
        if durable < last {
            let keep = durable.max(self.reader().bounds().first_index.prev());
            tracing::warn!(dir = %self.shared.dir.display(), durable = durable.get(), last = last.get(),
                "a flush failed before: dropping the entries no successful sync covered");
            self.truncate_after(keep)?;
        }
        self.shared.mark_cut_after(None)?;
        Ok(self)
    }
}
