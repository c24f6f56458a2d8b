//! Consumer groups through the `strata` binary against one real `strata node`: consuming as
//! a group commits as it goes, `group describe`'s lag is exactly the records left, a reset is
//! refused while a member runs and works once it left, and a deleted group is gone.

mod common;

use common::*;
use std::time::Duration;

/// The total lag `group describe` reports.
async fn total_lag(b: &str, group: &str) -> i64 {
    let d = strata(b, &format!("group describe {group} -o json"))
        .await
        .ok()
        .json();
    d["total_lag"]
        .as_i64()
        .unwrap_or_else(|| panic!("no total_lag: {d}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_as_a_group_then_describe_reset_and_delete_it() {
    let mut c = ProcCluster::empty();
    let id = c.add_node(Some(1)).await;
    let b = c.brokers().join(",");
    strata(&b, "topic create t --partitions 3 --replication-factor 1")
        .await
        .ok();
    let lines: String = (0..30).map(|i| format!("v{i}\n")).collect();
    strata_stdin(&b, "produce t", lines).await.ok();

    // An ephemeral pattern subscription (no group) from the earliest offsets.
    let sub = strata_args(
        &b,
        &[
            "consume",
            "--pattern",
            "*",
            "--from",
            "earliest",
            "-n",
            "30",
            "-o",
            "json",
        ],
        None,
    )
    .await
    .ok()
    .json_lines();
    assert_eq!(sub.len(), 30);
    assert!(sub.iter().all(|r| r["topic"] == "t"));

    // A member reads some records and commits at the end; the lag is what is left, and a
    // second run reads exactly that many.
    let first = strata(&b, "consume t --group g --from earliest -n 10 -o json")
        .await
        .ok()
        .json_lines();
    assert_eq!(first.len(), 10);
    let lag = total_lag(&b, "g").await;
    assert!((0..=20).contains(&lag), "lag {lag}");
    // The coordinator publishes the same lag on /metrics.
    let http = c.node(id).addresses().expect("addresses").http_addr;
    wait_until("strata_group_lag", Duration::from_secs(10), || async {
        let Some((_, body)) = http_get(&http, "/metrics").await else {
            return false;
        };
        let values: Vec<f64> = body
            .lines()
            .filter(|l| l.starts_with("strata_group_lag{") && l.contains("group=\"g\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        !values.is_empty() && values.iter().sum::<f64>() as i64 == lag
    })
    .await;
    let rest = strata(&b, "consume t --group g --exit-at-end -o json")
        .await
        .ok()
        .json_lines();
    assert_eq!(rest.len() as i64, lag, "records left = lag");
    assert_eq!(total_lag(&b, "g").await, 0);

    // A running member blocks a reset; once it stops (and leaves), the reset goes through.
    let brokers_arg = format!("--brokers={b}");
    let mut member = tokio::process::Command::new(strata_bin())
        .args([brokers_arg.as_str(), "consume", "t", "--group", "g"])
        .env_remove("STRATA_BROKERS")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn consume");
    wait_until("the member joined", Duration::from_secs(30), || async {
        let d = strata(&b, "group describe g -o json").await;
        d.code == 0 && d.json()["members"].as_array().is_some_and(|m| m.len() == 1)
    })
    .await;
    strata(&b, "group reset g --topic t --to earliest")
        .await
        .fails_with("GROUP_NOT_EMPTY");
    let pid = member.id().expect("pid") as i32;
    // SAFETY: kill(2) on a child of this process; SIGTERM makes it leave the group.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let _ = tokio::time::timeout(Duration::from_secs(30), member.wait()).await;
    wait_until("the member left", Duration::from_secs(30), || async {
        let d = strata(&b, "group describe g -o json").await;
        d.code == 0 && d.json()["members"].as_array().is_some_and(|m| m.is_empty())
    })
    .await;
    strata(&b, "group reset g --topic t --to earliest --dry-run")
        .await
        .ok();
    assert_eq!(total_lag(&b, "g").await, 0, "a dry run changes nothing");
    strata(&b, "group reset g --topic t --to earliest")
        .await
        .ok();
    assert_eq!(total_lag(&b, "g").await, 30);

    let list = strata(&b, "group list -o json").await.ok().json();
    assert!(
        list.as_array()
            .is_some_and(|l| l.iter().any(|g| g["group"] == "g")),
        "{list}"
    );
    strata(&b, "group delete g").await.ok();
    strata(&b, "group describe g")
        .await
        .fails_with("UNKNOWN_GROUP");
    strata_args(&b, &["group", "describe", ""], None)
        .await
        .fails_with("INVALID_GROUP");
}
