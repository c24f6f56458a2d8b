//! Many replicated partitions on three nodes in one process: every group elects a leader and
//! commits a write, then idle groups go to sleep and the cluster falls silent.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_log::{Flusher, LogConfig};
use strata_raft::GroupId;
use strata_raft::liveness::{Liveness, LivenessConfig, LivenessMessage, LivenessSender};
use strata_raft::partition::{Acks, Partition, PartitionConfig, SleepState};
use strata_raft::types::NodeId;
use strata_tests::cluster::{fast_timing, test_batch};
use strata_tests::memnet::{MemNetwork, Router};

struct Deliver {
    nodes: Arc<Mutex<BTreeMap<NodeId, Arc<Liveness>>>>,
}

impl LivenessSender for Deliver {
    fn send(
        &self,
        to: NodeId,
        _addr: &str,
        msg: LivenessMessage,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'static>>
    {
        let target = self.nodes.lock().unwrap().get(&to).cloned();
        Box::pin(async move {
            target.ok_or("no such node")?.on_message(&msg);
            Ok(())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_groups_on_three_nodes_commit_then_sleep() {
    let groups: u64 = std::env::var("STRATA_MANY_GROUPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    let root = tempfile::tempdir().unwrap();
    let router = Router::new(strata_tests::test_seed());
    let livenesses = Arc::new(Mutex::new(BTreeMap::new()));
    let mut flushers = Vec::new();
    let mut tickers = Vec::new();
    for id in 1..=3u64 {
        let l = Liveness::new(
            id,
            LivenessConfig {
                interval_ms: 100,
                idle_ms: 500,
                silence_ms: 600,
                lease_ms: 600,
            },
        );
        livenesses.lock().unwrap().insert(id, l.clone());
        flushers.push(Flusher::start(&format!("n{id}")).unwrap());
        let sender = Arc::new(Deliver {
            nodes: livenesses.clone(),
        });
        tickers.push(tokio::spawn(l.run(sender, std::future::pending())));
    }
    let started = Instant::now();
    let mut partitions: BTreeMap<(u64, NodeId), Arc<Partition>> = BTreeMap::new();
    for g in 1..=groups {
        for id in 1..=3u64 {
            let mut cfg =
                PartitionConfig::new(GroupId::new(g), id, root.path().join(format!("n{id}/g{g}")));
            cfg.timing = fast_timing();
            cfg.timing.heartbeat_ms = 100;
            cfg.log = LogConfig {
                segment_bytes_max: 1 << 20,
                preallocate_bytes_step: 64 * 1024,
                preallocate_bytes_min: 64 * 1024,
                entry_bytes_max: 1 << 20,
                ..LogConfig::default()
            };
            let net = MemNetwork {
                group: GroupId::new(g),
                from: id,
                router: router.clone(),
            };
            let p = Arc::new(
                Partition::open(cfg, &flushers[id as usize - 1].handle(), net, None)
                    .await
                    .unwrap(),
            );
            router.register(GroupId::new(g), id, p.peer_handle());
            livenesses.lock().unwrap()[&id].register(GroupId::new(g), &p);
            partitions.insert((g, id), p);
        }
        let voters = (1..=3u64).map(|id| (id, format!("node-{id}"))).collect();
        partitions[&(g, 1)].initialize(voters).await.unwrap();
    }
    println!("{groups} groups created in {:?}", started.elapsed());
    // Every group commits one write at its leader.
    let deadline = Instant::now() + Duration::from_secs(120);
    for g in 1..=groups {
        loop {
            let leader = (1..=3u64).find(|id| partitions[&(g, *id)].leads());
            if let Some(id) = leader
                && let Ok(Some(off)) = partitions[&(g, id)]
                    .append(test_batch(1, 16, g, -1, 0), Acks::All)
                    .await
            {
                assert_eq!(off, 0);
                break;
            }
            assert!(Instant::now() < deadline, "group {g} did not take a write");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    println!(
        "{groups} groups committed a write in {:?}",
        started.elapsed()
    );
    // Then they all go to sleep, leaders and followers.
    loop {
        let awake = partitions
            .values()
            .filter(|p| p.sleep_state() == SleepState::Awake)
            .count();
        if awake == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{awake} replicas still awake");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = router.messages.load(std::sync::atomic::Ordering::Relaxed);
    let cpu_before = cpu_time();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let cpu = cpu_time() - cpu_before;
    println!(
        "process CPU while {groups} groups sleep: {:.1}% of one core",
        cpu.as_secs_f64() * 100.0
    );
    let during = router.messages.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert!(
        during < groups / 10,
        "{during} Raft messages in a second of {groups} sleeping groups"
    );
    println!(
        "asleep after {:?}; {during} Raft messages in 1 s",
        started.elapsed()
    );
    for t in tickers {
        t.abort();
    }
    for ((g, id), p) in partitions {
        router.unregister(GroupId::new(g), id);
        if let Ok(p) = Arc::try_unwrap(p) {
            let _ = p.shutdown().await;
        }
    }
}

/// User plus system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a rusage.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}
