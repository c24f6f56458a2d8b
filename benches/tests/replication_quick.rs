//! Smoke run of the `replication` binary with `--quick`: three nodes start, every cell, both
//! fixed-rate runs and the idle phase finish, the tables have every row, and nothing is left
//! behind in its directory.

use anyhow::{Context, Result, ensure};
use std::process::Command;

#[test]
fn quick_run_prints_the_tables_and_removes_its_files() -> Result<()> {
    let root = tempfile::Builder::new()
        .prefix("replication-quick-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let output = Command::new(env!("CARGO_BIN_EXE_replication"))
        .args(["--quick", "--seed", "7", "--dir"])
        .arg(root.path())
        .output()
        .context("run replication")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "replication --quick failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for row in [
        "### Throughput and commit latency (closed loop, acks=all)",
        "| 1 | 1 | 1 (latency) |",
        "| 16 | 256 | 16 (batched) |",
        "### Commit latency at a fixed rate",
        "| 16 | 5,000 |",
        "### Idle replicated partitions",
        "| 20 (60) |",
        "### Targets",
        "≥ 150,000 records/s, 256 writers on 16 partitions (1 record per batch)",
        "commit p99 < 5 ms at 5,000 records/s (1 partition)",
        "1,000 idle replicated partitions < 10% of one core",
    ] {
        ensure!(stdout.contains(row), "no {row:?} in the output:\n{stdout}");
    }
    ensure!(
        stderr.contains("seed 7"),
        "the seed is not printed:\n{stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(root.path())?.collect::<Result<_, _>>()?;
    ensure!(
        left.is_empty(),
        "files left behind: {:?}",
        left.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
    Ok(())
}
