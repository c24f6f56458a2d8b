//! Queue groups through the `strata` binary against one real `strata node`: `queue consume`
//! acknowledges, rejects and releases; `queue describe` counts them; `dlq list` shows the
//! dead letters with their headers and `dlq replay` publishes them again once; `reply` and
//! `request` answer a request with a command's output.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_consume_describe_dlq_and_request_reply() {
    let mut c = ProcCluster::empty();
    c.add_node(Some(1)).await;
    let b = c.brokers().join(",");
    strata(
        &b,
        "topic create jobs --partitions 1 --replication-factor 1",
    )
    .await
    .ok();
    let lines: String = (0..6).map(|i| format!("job{i}\n")).collect();
    strata_stdin(&b, "produce jobs", lines).await.ok();

    // Two acknowledged, in offset order, each once.
    let acked = strata(&b, "queue consume jobs --group w -n 2 -o json")
        .await
        .ok()
        .json_lines();
    let offsets: Vec<i64> = acked
        .iter()
        .map(|m| m["offset"].as_i64().expect("offset"))
        .collect();
    assert_eq!(offsets, [0, 1]);
    assert!(acked.iter().all(|m| m["delivery_count"] == 1));
    // One rejected: it goes to jobs.dlq with the reason.
    let rejected = strata(&b, "queue consume jobs --group w -n 1 --reject -o json")
        .await
        .ok()
        .json_lines();
    assert_eq!(rejected[0]["offset"], 2);
    // One released: the next consumer gets it again, delivered a second time.
    strata(&b, "queue consume jobs --group w -n 1 --release")
        .await
        .ok();
    let again = strata(&b, "queue consume jobs --group w -n 1 -o json")
        .await
        .ok()
        .json_lines();
    assert_eq!(
        (
            again[0]["offset"].as_i64(),
            again[0]["delivery_count"].as_u64()
        ),
        (Some(3), Some(2))
    );
    // Nothing acknowledged comes back; the rest is read once, then the consumer goes idle.
    let rest = strata(&b, "queue consume jobs --group w --idle-exit 5s -o json")
        .await
        .ok()
        .json_lines();
    let rest: Vec<i64> = rest
        .iter()
        .map(|m| m["offset"].as_i64().expect("offset"))
        .collect();
    assert_eq!(rest, [4, 5]);

    // The leader's queue duty writes the dead letter, then settles it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let described = loop {
        let d = strata(&b, "queue describe w -o json").await.ok().json();
        if d[0]["dead_lettered"] == 1 {
            break d;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not dead-lettered: {d}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let d = &described[0];
    assert_eq!(d["topic"], "jobs");
    assert_eq!(d["acked"], 5, "{d}");
    assert_eq!(d["settled_below"], 6, "{d}");
    assert_eq!(d["acquired"], 0, "{d}");

    let dead = strata(&b, "dlq list jobs -o json").await.ok().json_lines();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["offset"], "2");
    assert_eq!(dead[0]["group"], "w");
    assert_eq!(dead[0]["deliveries"], "1");
    assert!(
        dead[0]["reason"]
            .as_str()
            .expect("reason")
            .starts_with("rejected"),
        "{dead:?}"
    );
    // Replayed once: the record is back in jobs (without the dead-letter headers), and a
    // second replay publishes nothing.
    let replay = strata(&b, "dlq replay jobs -o json").await.ok().json();
    assert_eq!(replay["replayed"], 1);
    let replay = strata(&b, "dlq replay jobs -o json").await.ok().json();
    assert_eq!(replay["replayed"], 0);
    let back = strata(&b, "queue consume jobs --group w -n 1 -o json")
        .await
        .ok()
        .json_lines();
    assert_eq!(back[0]["offset"], 6);
    assert_eq!(back[0]["value"], "job2");

    // Deleted: gone from describe (nothing is locked: every consumer left).
    let deleted = strata(&b, "queue delete jobs --group w -o json")
        .await
        .ok()
        .json();
    assert_eq!(deleted["partitions"], 1);
    let d = strata(&b, "queue describe w -o json").await.ok().json();
    assert_eq!(d.as_array().map(Vec::len), Some(0), "{d}");

    // Bad input: an unknown topic, and a group that is its own dead-letter topic.
    strata(&b, "queue consume nope --group w -n 1")
        .await
        .fails_with("unknown topic");
    strata(&b, "queue consume jobs --group x --dead-letter jobs -n 1")
        .await
        .fails_with("own dead-letter topic");

    // Request/reply: a server running a command, and a request.
    let server = tokio::process::Command::new(strata_bin())
        .args([
            "--brokers",
            &b,
            "reply",
            "rpc",
            "--group",
            "servers",
            "--",
            "tr",
            "a-z",
            "A-Z",
        ])
        .env("RUST_LOG", "error")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn reply");
    wait_until("the reply server", Duration::from_secs(20), || {
        let b = b.clone();
        async move {
            let d = strata(&b, "queue describe servers -o json").await;
            d.code == 0 && d.json().as_array().is_some_and(|a| !a.is_empty())
        }
    })
    .await;
    let reply = strata(&b, "request rpc hello --timeout 10s").await.ok();
    assert_eq!(reply.stdout.trim(), "HELLO");
    drop(server);
}
