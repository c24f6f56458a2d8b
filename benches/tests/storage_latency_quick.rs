//! Smoke run of the `storage_latency` binary with `--quick`: it finishes, prints the table with
//! every row, and leaves nothing behind in its directory.

use anyhow::{Context, Result, ensure};
use std::process::Command;

#[test]
fn quick_run_prints_the_table_and_removes_its_files() -> Result<()> {
    let root = tempfile::Builder::new()
        .prefix("storage-latency-quick-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let output = Command::new(env!("CARGO_BIN_EXE_storage_latency"))
        .args(["--quick", "--seed", "7", "--dir"])
        .arg(root.path())
        .output()
        .context("run storage_latency")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "storage_latency --quick failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for row in [
        "| Measurement | Figure | Target | Met |",
        "Baseline B: 64 KiB pwrite + fdatasync loop",
        "Group commit throughput",
        "Group commit append-to-durable latency",
        "Random read by offset",
        "Reopen after clean close",
        "Reopen after crash, tail flushed",
        "Reopen after crash, tail still dirty",
        "Random read offsets seed: 7",
    ] {
        ensure!(stdout.contains(row), "no {row:?} in the output:\n{stdout}");
    }
    let left: Vec<_> = std::fs::read_dir(root.path())?.collect::<Result<_, _>>()?;
    ensure!(
        left.is_empty(),
        "files left behind: {:?}",
        left.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
    Ok(())
}
