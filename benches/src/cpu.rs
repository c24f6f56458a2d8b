//! CPU time and context switches of this process (`getrusage(RUSAGE_SELF)`), CPU time of its
//! threads by name (`/proc/self/task/*/stat`), and its resident memory.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

/// User plus system CPU time consumed by every thread of this process so far.
pub fn process_cpu_time() -> io::Result<Duration> {
    let usage = rusage()?;
    Ok(timeval(usage.ru_utime) + timeval(usage.ru_stime))
}

/// Context switches (voluntary and involuntary) of every thread of this process so far.
pub fn process_context_switches() -> io::Result<u64> {
    let usage = rusage()?;
    Ok(u64::try_from(usage.ru_nvcsw).unwrap_or(0) + u64::try_from(usage.ru_nivcsw).unwrap_or(0))
}

fn rusage() -> io::Result<libc::rusage> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which is valid and
    // large enough.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrusage succeeded, so the struct is initialized.
    Ok(unsafe { usage.assume_init() })
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

/// CPU time (user + system) of each live thread of this process, read from
/// `/proc/self/task/*/stat`.
#[derive(Debug, Clone, Default)]
pub struct ThreadCpu {
    /// Thread id to (name, CPU time so far). The name is `comm`, at most 15 bytes.
    by_tid: BTreeMap<u64, (String, Duration)>,
}

impl ThreadCpu {
    /// The CPU time of every live thread now.
    pub fn now() -> io::Result<ThreadCpu> {
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        let ticks = u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100);
        let mut by_tid = BTreeMap::new();
        for entry in std::fs::read_dir("/proc/self/task")? {
            let entry = entry?;
            let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let stat = match std::fs::read_to_string(entry.path().join("stat")) {
                Ok(s) => s,
                // The thread exited between the listing and the read.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if let Some((name, cpu_ticks)) = parse_stat(&stat) {
                let cpu = Duration::from_nanos(cpu_ticks.saturating_mul(1_000_000_000) / ticks);
                by_tid.insert(tid, (name, cpu));
            }
        }
        Ok(ThreadCpu { by_tid })
    }

    /// CPU time used since `earlier` by the threads alive now, summed by thread name (threads
    /// that started since count from zero; threads that exited since are missing, so the sum
    /// can fall short of the process's figure). Names with no CPU time are left out.
    pub fn since(&self, earlier: &ThreadCpu) -> BTreeMap<String, Duration> {
        let mut by_name = BTreeMap::new();
        for (tid, (name, cpu)) in &self.by_tid {
            let before = earlier
                .by_tid
                .get(tid)
                .map_or(Duration::ZERO, |(_, cpu)| *cpu);
            let used = cpu.saturating_sub(before);
            if !used.is_zero() {
                *by_name.entry(name.clone()).or_insert(Duration::ZERO) += used;
            }
        }
        by_name
    }
}

/// The name and utime + stime (clock ticks) of one `/proc/<pid>/task/<tid>/stat` line.
fn parse_stat(stat: &str) -> Option<(String, u64)> {
    // "tid (comm) state ppid ...": comm may contain spaces and parentheses, so split at the
    // last ')'. utime and stime are fields 14 and 15, i.e. the 12th and 13th after comm.
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_string();
    let mut rest = stat.get(close + 1..)?.split_whitespace();
    let utime: u64 = rest.nth(11)?.parse().ok()?;
    let stime: u64 = rest.next()?.parse().ok()?;
    Some((name, utime + stime))
}

/// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_gives_name_and_ticks() {
        let line = "4242 (strata (x) 1) S 1 2 3 4 5 6 7 8 9 10 250 30 0 0 20 0 1 0";
        assert_eq!(parse_stat(line), Some(("strata (x) 1".to_string(), 280)));
    }

    #[test]
    fn spinning_shows_up_in_process_and_thread_cpu() -> io::Result<()> {
        let before = process_cpu_time()?;
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(50) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(process_cpu_time()? > before);
        assert!(process_context_switches()? > 0);
        assert!(!ThreadCpu::now()?.since(&ThreadCpu::default()).is_empty());
        assert!(resident_bytes().is_some_and(|b| b > 0));
        Ok(())
    }
}
