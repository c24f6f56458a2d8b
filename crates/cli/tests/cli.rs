//! The client commands of the `strata` binary (cluster, topic, produce, consume, bench), run
//! as processes against real node processes: output in every format, exit codes, errors.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime};

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string in {v}"))
}

fn int_of(v: &Value, field: &str) -> i64 {
    v[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not an integer in {v}"))
}

fn len_of(v: &Value, field: &str) -> usize {
    v[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} is not a list in {v}"))
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_against_a_cluster() {
    let mut c = ProcCluster::start(3).await;
    let brokers = c.brokers().join(",");
    let b = brokers.as_str();
    cluster_status(b).await;
    topics(b).await;
    produce(b).await;
    consume(b).await;
    produce_errors(b).await;
    alter_topics(b).await;
    bench(b).await;
    delete_topic(b).await;
    cluster_moves(&mut c, b).await;
}

async fn cluster_status(b: &str) {
    let run = strata(b, "cluster status").await.ok();
    assert!(run.stdout.starts_with("cluster_id="), "{}", run.stdout);
    assert!(run.stdout.contains(" healthy=true "), "{}", run.stdout);
    assert_eq!(
        run.lines()
            .iter()
            .filter(|l| l.starts_with("node="))
            .count(),
        3
    );

    let status = strata(b, "cluster status -o json").await.ok().json();
    assert_eq!(status["healthy"], true);
    assert!(status["controller_id"].is_u64(), "{status}");
    assert_eq!(status["leaderless"], 0);
    assert_eq!(len_of(&status, "nodes"), 3);
    for n in status["nodes"].as_array().into_iter().flatten() {
        assert_eq!(n["alive"], true, "{n}");
        assert_eq!(n["state"], "ACTIVE", "{n}");
        assert!(str_of(n, "client_addr").starts_with("127.0.0.1:"), "{n}");
    }

    let table = strata(b, "cluster status -o table").await.ok();
    assert!(table.stdout.contains("CLIENT ADDR"), "{}", table.stdout);
    assert!(table.stdout.contains(": healthy"), "{}", table.stdout);
}

async fn topics(b: &str) {
    let create = "topic create orders --partitions 3 --replication-factor 3 -o json";
    let created = strata(b, create).await.ok().json();
    assert_eq!(created["name"], "orders");
    assert_eq!(created["replication_factor"], 3);
    assert_eq!(len_of(&created, "partitions"), 3);
    for p in created["partitions"].as_array().into_iter().flatten() {
        // `create` returns once every partition has a leader.
        assert!(p["leader_id"].is_u64(), "no leader: {p}");
        assert_eq!(len_of(p, "replicas"), 3, "{p}");
    }

    let small = strata(b, "topic create small --config max.message.bytes=1024")
        .await
        .ok();
    assert!(small.stdout.starts_with("topic=small "), "{}", small.stdout);
    assert!(
        small.stdout.contains("\nconfig max.message.bytes=1024\n"),
        "{}",
        small.stdout
    );
    assert!(
        small.stdout.contains("\npartition=0 leader="),
        "{}",
        small.stdout
    );

    strata(b, "topic create orders")
        .await
        .fails_with("already exists");
    strata(b, "topic create x --config retention.ms")
        .await
        .fails_with("KEY=VALUE");

    let list = strata(b, "topic list -o json").await.ok().json();
    let names: Vec<&str> = list
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| str_of(t, "name"))
        .collect();
    assert_eq!(names, ["orders", "small"]);
    let text = strata(b, "topic list").await.ok();
    assert!(
        text.stdout
            .starts_with("orders partitions=3 replication_factor=3 id="),
        "{}",
        text.stdout
    );
    assert_eq!(text.lines().len(), 2);

    let described = strata(b, "topic describe orders -o json").await.ok().json();
    assert_eq!(described["topic_id"], created["topic_id"]);
    assert_eq!(described["configs"]["max.message.bytes"], "1048576");
    for p in described["partitions"].as_array().into_iter().flatten() {
        assert_eq!(len_of(p, "voters"), 3, "{p}");
    }
    let table = strata(b, "topic describe orders -o table").await.ok();
    assert!(table.stdout.contains("HIGH WATERMARK"), "{}", table.stdout);
    strata(b, "topic describe nosuch")
        .await
        .fails_with("unknown topic \"nosuch\"");
}

async fn produce(b: &str) {
    let one = "produce orders --partition 0 --key k1 --header h=1 hello -o json";
    let ack = strata(b, one).await.ok().json();
    let expected =
        json!({"topic": "orders", "partition": 0, "offset": 0, "key": "k1", "value": "hello"});
    assert_eq!(ack, expected);
    let text = strata(b, "produce orders --partition 0 world").await.ok();
    assert_eq!(text.stdout, "partition=0 offset=1\n");

    // Stdin, one partition: offsets in input order, contiguous.
    let input: String = (0..20).map(|i| format!("line-{i}\n")).collect();
    let run = strata_stdin(b, "produce orders --partition 1", input)
        .await
        .ok();
    let expected: Vec<String> = (0..20).map(|i| format!("partition=1 offset={i}")).collect();
    assert_eq!(run.lines(), expected);

    // Stdin spread over the partitions, JSON, CRLF: one line per record in input order, and
    // within each partition the offsets follow the input order without gaps.
    let input: String = (0..30).map(|i| format!("v-{i}\r\n")).collect();
    let acks = strata_stdin(b, "produce orders -o json", input)
        .await
        .ok()
        .json_lines();
    assert_eq!(acks.len(), 30);
    let mut next: [Option<i64>; 3] = [None; 3];
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack["value"], format!("v-{i}"), "{ack}");
        assert_eq!(ack["key"], Value::Null);
        let p = usize::try_from(int_of(ack, "partition")).expect("partition");
        let offset = int_of(ack, "offset");
        if let Some(expected) = next[p] {
            assert_eq!(
                offset, expected,
                "partition {p} skipped or reordered: {ack}"
            );
        }
        next[p] = Some(offset + 1);
    }

    // Without acknowledgement there is no offset.
    let none = strata(b, "produce small --acks none tiny -o json")
        .await
        .ok()
        .json();
    assert_eq!(none["offset"], Value::Null, "{none}");
    let leader = strata(b, "produce small --acks leader tiny").await.ok();
    assert!(
        leader.stdout.starts_with("partition=0 offset="),
        "{}",
        leader.stdout
    );
}

async fn consume(b: &str) {
    let command = "consume orders --partition 0 --from earliest -n 2 -o json";
    let records = strata(b, command).await.ok().json_lines();
    assert_eq!(records.len(), 2);
    let first = &records[0];
    assert_eq!(first["topic"], "orders");
    assert_eq!(first["partition"], 0);
    assert_eq!(first["offset"], 0);
    assert_eq!(first["key"], "k1");
    assert_eq!(first["value"], "hello");
    assert_eq!(first["headers"], json!([{"key": "h", "value": "1"}]));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock");
    let now_ms = i64::try_from(now.as_millis()).expect("ms");
    let ts = int_of(first, "timestamp");
    assert!(
        (now_ms - 600_000..=now_ms).contains(&ts),
        "timestamp {ts}, now {now_ms}"
    );
    assert_eq!(records[1]["offset"], 1);
    assert_eq!(records[1]["key"], Value::Null);
    assert_eq!(records[1]["value"], "world");
    assert_eq!(records[1]["headers"], json!([]));

    // From an offset, text: `partition offset timestamp key value`.
    let run = strata(b, "consume orders --partition 1 --from 15 --exit-at-end")
        .await
        .ok();
    let lines = run.lines();
    assert!(lines.len() >= 5, "{}", run.stdout);
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 5, "{line}");
        assert_eq!(
            fields[..2],
            ["1".to_string(), (15 + i).to_string()],
            "{line}"
        );
        assert!(humantime::parse_rfc3339(fields[2]).is_ok(), "{line}");
        assert_eq!(fields[3], "-");
        if i < 5 {
            assert_eq!(fields[4], format!("line-{}", 15 + i));
        }
    }

    // Every record of `orders` (2 + 20 + 30), by relative and by absolute time.
    let all = strata(b, "consume orders --from -10m --exit-at-end -o json")
        .await
        .ok()
        .json_lines();
    let mut values: Vec<&str> = all.iter().map(|r| str_of(r, "value")).collect();
    values.sort_unstable();
    let mut expected: Vec<String> = ["hello".to_string(), "world".to_string()]
        .into_iter()
        .chain((0..20).map(|i| format!("line-{i}")))
        .chain((0..30).map(|i| format!("v-{i}")))
        .collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
    let ten_minutes_ago = rfc3339(SystemTime::now() - Duration::from_secs(600));
    let command = format!("consume orders --from {ten_minutes_ago} --exit-at-end");
    assert_eq!(strata(b, &command).await.ok().lines().len(), 52);
    let in_an_hour = rfc3339(SystemTime::now() + Duration::from_secs(3600));
    let command = format!("consume orders --from {in_an_hour} --exit-at-end");
    assert_eq!(strata(b, &command).await.ok().stdout, "");
    assert_eq!(
        strata(b, "consume orders --from latest --exit-at-end")
            .await
            .ok()
            .stdout,
        ""
    );

    // Errors name the valid range or the partition count.
    strata(b, "consume orders --partition 1 --from 1000 --exit-at-end")
        .await
        .fails_with("offset 1000 is out of range: valid offsets are 0..=");
    strata(b, "consume orders --partition 7")
        .await
        .fails_with("has no partition 7");
    strata(b, "consume nosuch --exit-at-end")
        .await
        .fails_with("unknown topic \"nosuch\"");
}

async fn produce_errors(b: &str) {
    strata(b, "produce nosuch x")
        .await
        .fails_with("unknown topic \"nosuch\"");
    strata_stdin(b, "produce nosuch", "a\nb\n")
        .await
        .fails_with("unknown topic \"nosuch\"");

    // Over the default max.message.bytes (1 MiB), through stdin: the failed record is
    // reported on its line, the others are written.
    let mut input = b"before\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 1_100_000));
    input.extend(b"\nafter\n");
    let run = strata_stdin(b, "produce orders --partition 2", input)
        .await
        .fails_with("1 of 3 records failed");
    let lines = run.lines();
    assert_eq!(lines.len(), 3, "{}", run.stdout);
    assert!(lines[0].starts_with("partition=2 offset="), "{}", lines[0]);
    assert!(
        lines[1].starts_with("error: message too large"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("over the limit of 1048576 bytes"),
        "{}",
        lines[1]
    );
    assert!(lines[2].starts_with("partition=2 offset="), "{}", lines[2]);

    // A topic's own limit, one value.
    let big = "y".repeat(2000);
    strata_args(b, &["produce", "small", &big], None)
        .await
        .fails_with("over the limit of 1024 bytes");
    strata(b, "produce orders --partition 9 x")
        .await
        .fails_with("has no partition 9 (it has 3 partitions)");
    strata(b, "produce orders --header nokey x")
        .await
        .fails_with("KEY=VALUE");
}

async fn alter_topics(b: &str) {
    let t = strata(
        b,
        "topic alter-config orders --set retention.ms=3600000 -o json",
    )
    .await
    .ok()
    .json();
    assert_eq!(t["configs"]["retention.ms"], "3600000");
    let t = strata(b, "topic alter-config orders --remove retention.ms -o json")
        .await
        .ok()
        .json();
    assert_ne!(t["configs"]["retention.ms"], "3600000", "{t}");
    strata(b, "topic alter-config orders")
        .await
        .fails_with("nothing to change");

    let t = strata(b, "topic add-partitions small --partitions 2 -o json")
        .await
        .ok()
        .json();
    assert_eq!(len_of(&t, "partitions"), 2);
    strata(b, "topic add-partitions small --partitions 1")
        .await
        .fails_with("must be larger");
}

/// Checks a bench report's counts and throughput.
fn check_rates(report: &Value, records: i64) {
    assert_eq!(report["records"], records, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    assert!(
        report["records_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{report}"
    );
    assert!(
        report["mb_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{report}"
    );
}

/// Checks a bench report's percentiles: positive, ordered, over `count` records.
fn check_latency(report: &Value, field: &str, count: i64) {
    let l = &report[field];
    let p = |q: &str| {
        l[q].as_f64()
            .unwrap_or_else(|| panic!("no {field}.{q} in {report}"))
    };
    assert!(p("p50") > 0.0, "{report}");
    assert!(
        p("p50") <= p("p99") && p("p99") <= p("p999") && p("p999") <= p("max"),
        "{report}"
    );
    assert_eq!(l["count"], count, "{report}");
}

async fn bench(b: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let json_out = dir.path().join("bench.json");
    let command = format!(
        "bench produce --records 2000 --record-size 100 --topic benchy --partitions 2 \
         --producers 2 -o json --json-out {}",
        json_out.display()
    );
    let report = strata(b, &command).await.ok().json();
    assert_eq!(report["bench"], "produce");
    assert_eq!(report["topic"], "benchy");
    assert_eq!(report["partitions"], 2);
    assert_eq!(report["record_size"], 100);
    check_rates(&report, 2000);
    check_latency(&report, "latency_ms", 2000);
    let written = std::fs::read_to_string(&json_out).expect("--json-out");
    assert_eq!(
        serde_json::from_str::<Value>(&written).expect("JSON"),
        report
    );

    // A bounded window per producer, linger 0 (each producer waits for its acknowledgements).
    let command = "bench produce --records 400 --record-size 10 --producers 2 --in-flight 4 \
                   --linger-ms 0 -o json";
    let report = strata(b, command).await.ok().json();
    assert_eq!(report["in_flight"], 4, "{report}");
    assert_eq!(report["linger_ms"], 0, "{report}");
    check_rates(&report, 400);

    // Text, on a new topic.
    let run = strata(b, "bench produce --records 500 --record-size 10")
        .await
        .ok();
    assert!(run.stdout.contains("topic: bench-"), "{}", run.stdout);
    assert!(
        run.stdout.contains("linger / in flight: 1 ms / unbounded"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(" records/s, "), "{}", run.stdout);
    assert!(
        run.stdout.contains("produce latency ms: p50 "),
        "{}",
        run.stdout
    );

    // Replays what `bench produce` wrote (so it produces nothing first).
    let command = "bench consume --records 2000 --topic benchy -o json";
    let report = strata(b, command).await.ok().json();
    assert_eq!(report["producers"], 0, "{report}");
    check_rates(&report, 2000);

    let command = "bench e2e --records 300 --rate 1000 --record-size 64 -o json";
    let report = strata(b, command).await.ok().json();
    check_rates(&report, 300);
    check_latency(&report, "latency_ms", 300);
    check_latency(&report, "e2e_latency_ms", 300);
    assert_eq!(report["target_rate"], 1000);
}

async fn delete_topic(b: &str) {
    let run = strata(b, "topic delete small").await.ok();
    assert!(
        run.stdout.starts_with("deleted topic small (id "),
        "{}",
        run.stdout
    );
    let list = strata(b, "topic list -o json").await.ok().json();
    assert!(
        list.as_array()
            .into_iter()
            .flatten()
            .all(|t| t["name"] != "small"),
        "{list}"
    );
    strata(b, "topic delete small")
        .await
        .fails_with("unknown topic \"small\"");
}

/// Rebalances onto a new node, decommissions it, and waits for `cluster status` to exit 0
/// once the moves are done.
async fn cluster_moves(c: &mut ProcCluster, b: &str) {
    strata(b, "cluster decommission 99")
        .await
        .fails_with("unknown node 99");
    let node = c.add_node(None).await;
    let brokers = c.brokers().join(",");
    let b = brokers.as_str();
    let run = strata(b, "cluster rebalance").await.ok();
    assert!(run.stdout.starts_with("moves started: "), "{}", run.stdout);
    let report = strata(b, &format!("cluster decommission {node} -o json"))
        .await
        .ok()
        .json();
    assert_eq!(report["node_id"], node);
    assert!(report["moves"].is_u64(), "{report}");
    wait_until(
        "cluster status exits 0",
        Duration::from_secs(60),
        || async { strata(b, "cluster status").await.code == 0 },
    )
    .await;
    let status = strata(b, "cluster status -o json").await.ok().json();
    let nodes = status["nodes"].as_array().into_iter().flatten();
    let state: Vec<&Value> = nodes
        .filter(|n| n["node_id"] == node)
        .map(|n| &n["state"])
        .collect();
    assert_eq!(state, [&json!("DECOMMISSIONING")], "{status}");
}

/// Bad input is refused before connecting; an unreachable cluster exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_without_a_cluster() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let b = listener.local_addr().expect("addr").to_string();
    drop(listener);
    strata(&b, "topic list")
        .await
        .fails_with(&format!("cannot reach the cluster at {b}"));
    strata(&b, "consume t --from yesterday")
        .await
        .fails_with("--from accepts earliest, latest");
    strata(&b, "consume t --from -10")
        .await
        .fails_with("time ago");
    strata(&b, "bench produce --records 0")
        .await
        .fails_with("--records must be at least 1");
}
