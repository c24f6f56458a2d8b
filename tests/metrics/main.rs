//! The metrics a node exports, in a test binary of their own: the Prometheus recorder is
//! global to a process, so other tests running beside these (crashing leaders, stopping nodes)
//! would move the counters they check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;
use strata_client::Client;
use strata_log::sim::CrashMode;
use strata_tests::nodes::NodeCluster;
use strata_tests::workload::{produce, values};

/// `GET path` on `addr` over HTTP/1.0; the body.
async fn http_get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// The value of the first sample of `metric` whose line contains `labels`.
fn sample(body: &str, metric: &str, labels: &str) -> Option<f64> {
    body.lines()
        .filter(|l| l.starts_with(metric) && l.contains(labels))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Elections are counted by cause (a new group's first leader: `startup`; a leader handing
/// over at shutdown: `transfer`; a leader that crashed: `leader_lost`), and the commit-path
/// histograms are exported. The nodes of one process share one metrics recorder, so the
/// counts are the cluster's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elections_are_counted_by_cause_and_commit_latency_is_exported() {
    let mut c = NodeCluster::start(3, strata_tests::test_seed()).await;
    let client = Client::connect(c.brokers()).await.expect("connect");
    client
        .admin()
        .create_topic("t", 2, 3, Default::default())
        .await
        .expect("create");
    produce(&c.brokers(), "t", &values("a", 20)).await;
    let metrics = |c: &NodeCluster, id: u64| {
        let addr = c.http_addr(id);
        async move { http_get(&addr, "/metrics").await }
    };
    let leader_of = |p: usize| {
        let client = client.clone();
        async move {
            client
                .admin()
                .describe_topic("t")
                .await
                .expect("describe")
                .partitions[p]
                .leader_id
                .expect("leader")
        }
    };
    let before = metrics(&c, 1).await;
    let count = |body: &str, cause: &str| {
        sample(
            body,
            "strata_elections_won_total",
            &format!("cause=\"{cause}\""),
        )
        .unwrap_or(0.0)
    };
    assert!(count(&before, "startup") >= 1.0, "{before}");
    assert!(
        sample(&before, "strata_append_to_durable_seconds_count", "").is_some_and(|n| n > 0.0),
        "{before}"
    );
    assert!(
        sample(&before, "strata_propose_to_applied_seconds_count", "").is_some_and(|n| n > 0.0),
        "{before}"
    );
    // A graceful stop hands leadership over.
    let leader = leader_of(0).await;
    c.stop(leader).await;
    c.restart(leader).await;
    c.wait_healthy(Duration::from_secs(30)).await;
    let up = c.ids()[0];
    let after_stop = metrics(&c, up).await;
    assert!(
        count(&after_stop, "transfer") > count(&before, "transfer"),
        "{after_stop}"
    );
    // A crash leaves the others to notice the silence.
    let leader = leader_of(1).await;
    c.crash(leader, CrashMode::DropAll).await;
    produce(
        &c.ids()
            .iter()
            .filter(|i| **i != leader)
            .map(|i| c.client_addr(*i))
            .collect::<Vec<_>>(),
        "t",
        &values("b", 5),
    )
    .await;
    let other = c.ids().into_iter().find(|i| *i != leader).expect("a node");
    let after_crash = metrics(&c, other).await;
    assert!(
        count(&after_crash, "leader_lost") > count(&after_stop, "leader_lost"),
        "{after_crash}"
    );
    c.restart(leader).await;
    c.shutdown().await;
}
