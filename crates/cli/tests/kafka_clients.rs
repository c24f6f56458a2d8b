//! Real Kafka clients against a real 3-node cluster of `strata node` processes, each
//! process with its Kafka listener: kafka-python and confluent-kafka (librdkafka) through
//! `tests/kafka_clients/client.py`, kcat, and kafkajs through `tests/kafka_clients/client.js`.
//! For each: admin (create, describe, alter a config, delete); produce and consume with every
//! codec the client has; an idempotent producer whose partition leader is killed mid-stream
//! (every record once, in order); a group of three members with one killed (its partitions
//! move, commits go on).
//!
//! The clients come from the package registries: `.ci/run` installs them and sets
//! `STRATA_REQUIRE_KAFKA_CLIENTS=1`, which turns a missing client into a failure. Elsewhere a
//! missing client skips its part with a line saying so.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Every codec Kafka defines (kafkajs reads and writes lz4 and zstd only through native
/// add-on packages, left out here).
const ALL_CODECS: &[&str] = &["none", "gzip", "snappy", "lz4", "zstd"];

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/kafka_clients")
}

/// Whether `what` is there (by running `probe`); a missing client fails the test where
/// `STRATA_REQUIRE_KAFKA_CLIENTS` is set, and is skipped with a line elsewhere.
fn available(what: &str, probe: &mut std::process::Command) -> bool {
    let ok = probe
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("STRATA_REQUIRE_KAFKA_CLIENTS").is_none(),
            "{what} is not installed (.ci/run installs it)"
        );
        eprintln!("SKIPPED: {what} is not installed here (.ci/run installs it)");
    }
    ok
}

fn python_module(module: &str) -> bool {
    available(
        &format!("the Python module {module}"),
        std::process::Command::new("python3").args(["-c", &format!("import {module}")]),
    )
}

/// A client process whose stdout lines (JSON) arrive on a channel.
struct ClientProc {
    child: Child,
    lines: mpsc::UnboundedReceiver<Value>,
    what: String,
}

impl ClientProc {
    fn spawn(program: &str, args: &[String]) -> ClientProc {
        let mut child = Command::new(program)
            .args(args)
            .current_dir(clients_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {program}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(l)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&l) {
                    let _ = tx.send(v);
                }
            }
        });
        ClientProc {
            child,
            lines: rx,
            what: format!("{program} {}", args.join(" ")),
        }
    }

    /// The next line that has `key`, within `timeout`.
    async fn line_with(&mut self, key: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.lines.recv()).await {
                Ok(Some(v)) if v.get(key).is_some() => return v,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("{} ended without a {key:?} line", self.what),
                Err(_) => panic!("{} printed no {key:?} line within {timeout:?}", self.what),
            }
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }
}

fn python(lib: &str, role: &str, bootstrap: &str, args: &[&str]) -> ClientProc {
    let mut a = vec![
        "client.py".to_string(),
        lib.to_string(),
        role.to_string(),
        bootstrap.to_string(),
    ];
    a.extend(args.iter().map(|s| s.to_string()));
    ClientProc::spawn("python3", &a)
}

async fn kafka_cluster() -> (ProcCluster, String) {
    let mut c = ProcCluster::start(3).await;
    let bootstrap = bootstrap(&mut c);
    (c, bootstrap)
}

fn bootstrap(c: &mut ProcCluster) -> String {
    c.ids()
        .into_iter()
        .filter_map(|id| c.node(id).addresses().map(|a| a.kafka_addr))
        .collect::<Vec<_>>()
        .join(",")
}

/// The report of a `verify` run: every record once and in order.
fn assert_exact(report: &Value, what: &str) {
    assert_eq!(report["exact"], true, "{what}: {report}");
}

/// The checks shared by every client: `spawn(role, args)` starts the client in that role.
async fn scenario(
    c: &mut ProcCluster,
    lib: &str,
    codecs: &[&str],
    admin: bool,
    spawn: impl Fn(&str, &str, &[&str]) -> ClientProc,
) {
    let b = c.brokers().join(",");
    let bs = bootstrap(c);
    // Admin (kcat has none: it describes the cluster instead).
    let admin_topic = format!("admin-{lib}");
    if admin {
        let mut p = spawn("admin", &bs, &[&admin_topic]);
        let r = p.line_with("deleted", Duration::from_secs(60)).await;
        assert_eq!(
            (
                &r["listed"],
                &r["partitions"],
                &r["retention_set"],
                &r["deleted"]
            ),
            (
                &Value::Bool(true),
                &Value::from(3),
                &Value::Bool(true),
                &Value::Bool(true)
            ),
            "{lib} admin: {r}"
        );
    } else {
        strata(
            &b,
            &format!("topic create {admin_topic} --partitions 3 --replication-factor 3"),
        )
        .await
        .ok();
        let mut p = spawn("metadata", &bs, &[&admin_topic]);
        let r = p.line_with("brokers", Duration::from_secs(60)).await;
        assert_eq!(
            (&r["brokers"], &r["partitions"], &r["leaders"]),
            (&Value::from(3), &Value::from(3), &Value::Bool(true)),
            "{lib} metadata: {r}"
        );
    }

    // Every codec, produced and read back.
    for codec in codecs {
        let topic = format!("codec-{lib}-{codec}");
        strata(
            &b,
            &format!("topic create {topic} --partitions 1 --replication-factor 3"),
        )
        .await
        .ok();
        let mut p = spawn("produce", &bs, &[&topic, "300", codec]);
        let done = p.line_with("done", Duration::from_secs(60)).await;
        assert_eq!(done["errors"], 0, "{lib} {codec}: {done}");
        let mut v = spawn("verify", &bs, &[&topic, "300"]);
        assert_exact(&v.line_with("exact", Duration::from_secs(60)).await, codec);
        // The native consumer reads what the Kafka client wrote.
        let native = strata(&b, &format!("consume {topic} -n 300 -o json"))
            .await
            .ok()
            .json_lines();
        let values: Vec<String> = native
            .iter()
            .map(|m| m["value"].as_str().unwrap_or_default().to_string())
            .collect();
        let want: Vec<String> = (0..300).map(|i| format!("v{i}")).collect();
        assert_eq!(values, want, "{lib} {codec}: native read");
        // And the other way: the native producer compresses, the Kafka client reads.
        let native_topic = format!("native-{lib}-{codec}");
        strata(
            &b,
            &format!("topic create {native_topic} --partitions 1 --replication-factor 3"),
        )
        .await
        .ok();
        let lines: String = want.iter().map(|v| format!("{v}\n")).collect();
        strata_stdin(
            &b,
            &format!("produce {native_topic} --partition 0 --compression {codec}"),
            lines,
        )
        .await
        .ok();
        let mut v = spawn("verify", &bs, &[&native_topic, "300"]);
        assert_exact(
            &v.line_with("exact", Duration::from_secs(60)).await,
            &format!("{codec} from the native producer"),
        );
    }

    // Idempotent produce across a leader crash.
    let topic = format!("idem-{lib}");
    strata(
        &b,
        &format!("topic create {topic} --partitions 1 --replication-factor 3"),
    )
    .await
    .ok();
    let n = 3000;
    let mut p = spawn("produce", &bs, &[&topic, &n.to_string(), "none"]);
    loop {
        let l = p.line_with("progress", Duration::from_secs(60)).await;
        if l["progress"].as_u64().unwrap_or(0) >= 1000 {
            break;
        }
    }
    let leader = c.leader_of(&topic, 0).await.expect("a leader");
    c.node(leader).kill();
    let done = p.line_with("done", Duration::from_secs(120)).await;
    assert_eq!(done["errors"], 0, "{lib} idempotent: {done}");
    c.restart(leader).await;
    let bs = bootstrap(c);
    let mut v = spawn("verify", &bs, &[&topic, &n.to_string()]);
    assert_exact(
        &v.line_with("exact", Duration::from_secs(60)).await,
        "idempotent across a leader crash",
    );

    // A group of three; one is killed; its partitions move and commits go on.
    let topic = format!("group-{lib}");
    let group = format!("g-{lib}");
    strata(
        &b,
        &format!("topic create {topic} --partitions 6 --replication-factor 3"),
    )
    .await
    .ok();
    let mut members: Vec<ClientProc> = (0..3)
        .map(|_| spawn("member", &bs, &[&topic, &group]))
        .collect();
    // Until the three share the six partitions (the leader's assignment, as the coordinator
    // replicated it).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let run = strata(&b, &format!("group describe {group} -o json")).await;
        let d = if run.code == 0 {
            run.json()
        } else {
            Value::Null
        };
        let members = d["members"].as_array().cloned().unwrap_or_default();
        let mut parts: Vec<u64> = members
            .iter()
            .flat_map(|m| m["target"].as_array().cloned().unwrap_or_default())
            .filter_map(|tp| tp["partition"].as_u64())
            .collect();
        parts.sort_unstable();
        let everyone = members
            .iter()
            .all(|m| m["target"].as_array().is_some_and(|t| !t.is_empty()));
        if members.len() == 3 && everyone && parts == [0, 1, 2, 3, 4, 5] {
            break;
        }
        assert!(Instant::now() < deadline, "{lib} group assignment: {d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let produce_each = |prefix: &'static str| {
        let b = b.clone();
        let topic = topic.clone();
        async move {
            for p in 0..6 {
                let lines: String = (0..50).map(|i| format!("{prefix}{p}-{i}\n")).collect();
                strata_stdin(&b, &format!("produce {topic} --partition {p}"), lines)
                    .await
                    .ok();
            }
        }
    };
    produce_each("a").await;
    let mut seen: Vec<BTreeSet<(u64, u64)>> = vec![BTreeSet::new(); 3];
    let all = |seen: &[BTreeSet<(u64, u64)>]| {
        seen.iter()
            .flatten()
            .cloned()
            .collect::<BTreeSet<_>>()
            .len()
    };
    // Until all 300 are read, by all three members.
    let deadline = Instant::now() + Duration::from_secs(90);
    while all(&seen) < 300 || seen.iter().any(|s| s.is_empty()) {
        assert!(
            Instant::now() < deadline,
            "{lib} group: {:?}",
            seen.iter().map(|s| s.len()).collect::<Vec<_>>()
        );
        for (i, m) in members.iter_mut().enumerate() {
            while let Ok(v) = m.lines.try_recv() {
                if let (Some(p), Some(o)) = (v["p"].as_u64(), v["o"].as_u64()) {
                    seen[i].insert((p, o));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed_parts: BTreeSet<u64> = seen[0].iter().map(|(p, _)| *p).collect();
    members[0].kill().await;
    produce_each("b").await;
    let deadline = Instant::now() + Duration::from_secs(90);
    while all(&seen) < 600 {
        assert!(
            Instant::now() < deadline,
            "{lib} group after a kill: {} of 600",
            all(&seen)
        );
        for (i, m) in members.iter_mut().enumerate().skip(1) {
            while let Ok(v) = m.lines.try_recv() {
                if let (Some(p), Some(o)) = (v["p"].as_u64(), v["o"].as_u64()) {
                    seen[i].insert((p, o));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let survivors: BTreeSet<u64> = seen[1..].iter().flatten().map(|(p, _)| *p).collect();
    assert!(
        killed_parts.iter().all(|p| survivors.contains(p)),
        "{lib}: the killed member's partitions {killed_parts:?} moved to {survivors:?}"
    );
    // Commits go on: the group's committed offsets reach the end of every partition.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = strata(&b, &format!("group describe {group} -o json"))
            .await
            .ok()
            .json();
        let total: i64 = d["partitions"]
            .as_array()
            .map(|a| a.iter().filter_map(|o| o["committed"].as_i64()).sum())
            .unwrap_or(0);
        if total == 600 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{lib}: committed {total} of 600: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for m in members.iter_mut() {
        m.kill().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_client() {
    if !["kafka", "snappy", "lz4", "zstandard"]
        .into_iter()
        .all(python_module)
    {
        return;
    }
    let (mut c, _) = kafka_cluster().await;
    scenario(
        &mut c,
        "kafka-python",
        ALL_CODECS,
        true,
        |role, bs, args| python("kafka-python", role, bs, args),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_client() {
    if !python_module("confluent_kafka") {
        return;
    }
    let (mut c, _) = kafka_cluster().await;
    scenario(&mut c, "confluent", ALL_CODECS, true, |role, bs, args| {
        python("confluent", role, bs, args)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_client() {
    if !available("kcat", std::process::Command::new("kcat").arg("-V")) {
        return;
    }
    let (mut c, _) = kafka_cluster().await;
    scenario(&mut c, "kcat", ALL_CODECS, false, |role, bs, args| {
        let mut a = vec![
            "kcat_client.py".to_string(),
            role.to_string(),
            bs.to_string(),
        ];
        a.extend(args.iter().map(|s| s.to_string()));
        ClientProc::spawn("python3", &a)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_client() {
    let installed = clients_dir().join("node_modules/kafkajs").exists();
    let probe = if installed { "true" } else { "false" };
    if !available(
        "kafkajs (npm install in tests/kafka_clients)",
        &mut std::process::Command::new(probe),
    ) {
        return;
    }
    let (mut c, _) = kafka_cluster().await;
    scenario(
        &mut c,
        "kafkajs",
        &["none", "gzip", "snappy"],
        true,
        |role, bs, args| {
            let mut a = vec!["client.js".to_string(), role.to_string(), bs.to_string()];
            a.extend(args.iter().map(|s| s.to_string()));
            ClientProc::spawn("node", &a)
        },
    )
    .await;
}
