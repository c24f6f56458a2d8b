//! Multi-process cluster harness: real `strata node` processes on 127.0.0.1 with port 0,
//! started, killed (SIGKILL), paused (SIGSTOP), stopped (SIGTERM) and restarted with the
//! same command. Every process is killed when the harness drops.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use strata_proto::v1 as pb;

/// The `strata` binary under test.
pub fn strata_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_strata"))
}

/// Polls `f` every 20 ms until it is true or `timeout` passes.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if f().await {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One node process.
pub struct Proc {
    /// Node id (known once started).
    pub id: u64,
    /// Data directory.
    pub dir: PathBuf,
    /// The arguments it was started with (a restart reuses them).
    pub args: Vec<String>,
    child: Option<Child>,
    /// Where its log goes.
    pub log: PathBuf,
    paused: bool,
    /// The network namespace it runs in (`ip netns exec`, which execs: same pid).
    pub netns: Option<String>,
    /// Runs with [`FAST_TIMING`] (the default); `false`: the node's default Raft timing.
    pub fast: bool,
}

impl Proc {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open node log");
        let mut cmd = match self.netns.as_deref() {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(strata_bin());
                c
            }
            None => Command::new(strata_bin()),
        };
        for (k, v) in FAST_TIMING {
            if self.fast {
                cmd.env(k, v);
            } else {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .args(&self.args)
            .env(
                "RUST_LOG",
                "error,strata_raft::partition=warn,strata_node=info,strata_kafka=info",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .spawn()
            .expect("spawn strata node");
        self.child = Some(child);
        self.paused = false;
    }

    /// The addresses the node wrote.
    pub fn addresses(&self) -> Option<strata_node::Addresses> {
        strata_node::node::read_addresses(&self.dir)
    }

    /// Its process id, while started.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Its client address.
    pub fn client_addr(&self) -> String {
        self.addresses().map(|a| a.client_addr).unwrap_or_default()
    }

    /// Whether the process is running.
    pub fn running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The process's exit status once it exited.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let c = self.child.as_mut()?;
        loop {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on a child pid we own.
            unsafe {
                libc::kill(c.id() as i32, sig);
            }
        }
    }

    /// SIGKILL, then reap.
    pub fn kill(&mut self) {
        if self.paused {
            self.signal(libc::SIGCONT);
        }
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (graceful), then wait for exit.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        let s = self.wait_exit(Duration::from_secs(30));
        self.child = None;
        s
    }

    /// SIGSTOP.
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP);
        self.paused = true;
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT);
        self.paused = false;
    }

    /// The tail of its log.
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One cluster at a time per test binary (tests of a binary run on parallel threads).
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A cluster of node processes.
pub struct ProcCluster {
    _one: std::sync::MutexGuard<'static, ()>,
    /// Root of the data directories (removed on drop).
    pub root: tempfile::TempDir,
    /// Nodes by id.
    pub nodes: BTreeMap<u64, Proc>,
    /// The test network, if the nodes run in network namespaces (removed after the nodes).
    pub net: Option<Net>,
}

/// Network namespaces made by a test: one per node, each joined by a veth pair to a bridge in
/// the test's namespace, which has an address on the bridge so the test reaches every node.
/// Cutting a node's link isolates it from its peers (and the test). Everything is removed on
/// drop.
pub struct Net {
    tag: String,
    subnet: u8,
    nodes: u64,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

impl Net {
    /// Creates namespaces for `nodes` nodes; `None` where that is not possible (not root, no
    /// `ip`).
    pub fn create(nodes: u64) -> Option<Net> {
        let pid = std::process::id();
        let net = Net {
            tag: format!("st{}", pid % 100_000),
            subnet: (pid % 200) as u8 + 20,
            nodes,
        };
        let br = net.bridge();
        if !ip(&["link", "add", &br, "type", "bridge"]) {
            return None;
        }
        let gw = format!("{}/24", net.addr_of(0));
        if !(ip(&["link", "set", &br, "up"]) && ip(&["addr", "add", &gw, "dev", &br])) {
            return None;
        }
        for i in 1..=nodes {
            let (ns, v, peer) = (net.ns(i), net.veth(i), format!("{}p{i}", net.tag));
            let me = format!("{}/24", net.addr_of(i));
            let ok = ip(&["netns", "add", &ns])
                && ip(&["link", "add", &v, "type", "veth", "peer", "name", &peer])
                && ip(&["link", "set", &peer, "netns", &ns])
                && ip(&["link", "set", &v, "master", &br])
                && ip(&["link", "set", &v, "up"])
                && ip(&["netns", "exec", &ns, "ip", "addr", "add", &me, "dev", &peer])
                && ip(&["netns", "exec", &ns, "ip", "link", "set", &peer, "up"])
                && ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
            if !ok {
                return None;
            }
        }
        Some(net)
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn veth(&self, i: u64) -> String {
        format!("{}v{i}", self.tag)
    }

    /// Node `i`'s namespace.
    pub fn ns(&self, i: u64) -> String {
        format!("{}n{i}", self.tag)
    }

    /// Node `i`'s address (0: the test's address on the bridge).
    pub fn addr_of(&self, i: u64) -> String {
        format!("10.213.{}.{}", self.subnet, if i == 0 { 1 } else { 10 + i })
    }

    /// Cuts node `i` off (its link goes down).
    pub fn cut(&self, i: u64) {
        assert!(ip(&["link", "set", &self.veth(i), "down"]), "cut node {i}");
    }

    /// Heals node `i`'s link.
    pub fn heal(&self, i: u64) {
        assert!(ip(&["link", "set", &self.veth(i), "up"]), "heal node {i}");
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for i in 1..=self.nodes {
            ip(&["link", "del", &self.veth(i)]);
            ip(&["netns", "del", &self.ns(i)]);
        }
        ip(&["link", "del", &self.bridge()]);
    }
}

fn node_args(dir: &Path, extra: &[String]) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "node".into(),
        "--data-dir".into(),
        dir.display().to_string(),
        "--client-addr".into(),
        "127.0.0.1:0".into(),
        "--peer-addr".into(),
        "127.0.0.1:0".into(),
        "--http-addr".into(),
        "127.0.0.1:0".into(),
        "--kafka-addr".into(),
        "127.0.0.1:0".into(),
    ];
    a.extend_from_slice(extra);
    a
}

/// Fast Raft timing for tests (heartbeat 100 ms, elections 500-1000 ms), via environment.
pub const FAST_TIMING: &[(&str, &str)] = &[
    ("STRATA_HEARTBEAT_MS", "100"),
    ("STRATA_ELECTION_TIMEOUT_MIN_MS", "500"),
    ("STRATA_ELECTION_TIMEOUT_MAX_MS", "1000"),
    ("STRATA_RETENTION_CHECK_INTERVAL_MS", "200"),
];

impl ProcCluster {
    /// Starts node 1 as a new cluster, then nodes 2..=n joining it, and waits until the
    /// cluster is healthy.
    pub async fn start(n: u64) -> ProcCluster {
        let mut c = ProcCluster::empty();
        c.add_node(Some(1)).await;
        for _ in 2..=n {
            c.add_node(None).await;
        }
        c.wait_healthy(Duration::from_secs(60)).await;
        c
    }

    /// No nodes yet (holds the one-cluster lock): start them with
    /// [`ProcCluster::add_node_with`].
    pub fn empty() -> ProcCluster {
        let one = strata_record::sync::lock(&ONE_CLUSTER);
        let root = tempfile::tempdir().expect("tempdir");
        ProcCluster {
            _one: one,
            root,
            nodes: BTreeMap::new(),
            net: None,
        }
    }

    /// Starts a node: the first with `--node-id`, later ones with `--join`. Returns its id.
    pub async fn add_node(&mut self, bootstrap_id: Option<u64>) -> u64 {
        self.add_node_with(bootstrap_id, &[], |_| {}).await
    }

    /// As [`ProcCluster::add_node`], with more arguments, after `prepare` ran on the node's
    /// (not yet created) data directory.
    pub async fn add_node_with(
        &mut self,
        bootstrap_id: Option<u64>,
        more: &[String],
        prepare: impl FnOnce(&Path),
    ) -> u64 {
        let idx = self.nodes.len() as u64 + 1;
        let dir = self
            .root
            .path()
            .join(format!("n{idx}-{}", self.nodes.len()));
        prepare(&dir);
        let mut extra: Vec<String> = match bootstrap_id {
            Some(id) => vec!["--node-id".into(), id.to_string()],
            None => {
                let join = self
                    .nodes
                    .values()
                    .next()
                    .map(|p| p.client_addr())
                    .unwrap_or_default();
                vec!["--join".into(), join]
            }
        };
        extra.extend_from_slice(more);
        let mut p = Proc {
            id: 0,
            dir: dir.clone(),
            args: node_args(&dir, &extra),
            child: None,
            log: self.root.path().join(format!("n{idx}.log")),
            paused: false,
            netns: None,
            fast: true,
        };
        spawn_fast(&mut p);
        let started = Instant::now();
        loop {
            if let Some(ident) = strata_node::node::read_identity(&dir)
                && p.addresses().is_some()
                && ready(&p).await
            {
                p.id = ident.node_id;
                break;
            }
            assert!(p.running(), "node exited at start:\n{}", p.log_tail());
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node not ready:\n{}",
                p.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let id = p.id;
        self.nodes.insert(id, p);
        id
    }

    /// The ids of every node started (running or not).
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Client addresses of the running nodes.
    pub fn brokers(&mut self) -> Vec<String> {
        self.nodes
            .values_mut()
            .filter_map(|p| {
                if p.running() {
                    Some(p.client_addr())
                } else {
                    None
                }
            })
            .collect()
    }

    /// A node.
    pub fn node(&mut self, id: u64) -> &mut Proc {
        self.nodes.get_mut(&id).expect("no such node")
    }

    /// Restarts a stopped or killed node with its original command.
    pub async fn restart(&mut self, id: u64) {
        let p = self.nodes.get_mut(&id).expect("no such node");
        p.kill();
        spawn_fast(p);
        let started = Instant::now();
        while !ready(p).await {
            assert!(p.running(), "node {id} exited:\n{}", p.log_tail());
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "node {id} not ready:\n{}",
                p.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Cluster status as any running node answers it.
    pub async fn status(&mut self) -> Option<pb::ClusterStatusResponse> {
        for b in self.brokers() {
            if let Ok(mut c) = admin(&b).await
                && let Ok(r) = c.cluster_status(pb::ClusterStatusRequest {}).await
            {
                return Some(r.into_inner());
            }
        }
        None
    }

    /// Waits until every one of `n` nodes answers ready (registered, metadata caught up) and
    /// the metadata lists `n` nodes.
    pub async fn wait_registered(&mut self, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut all = true;
            for p in self.nodes.values() {
                all &= ready(p).await;
            }
            if all
                && self
                    .status()
                    .await
                    .is_some_and(|s| s.nodes.len() as u64 == n)
            {
                return;
            }
            assert!(Instant::now() < deadline, "nodes did not all register");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until a node reports the cluster healthy.
    pub async fn wait_healthy(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.status().await
                && s.healthy
            {
                return;
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .nodes
                    .values()
                    .map(|p| format!("--- node {} ---\n{}", p.id, p.log_tail()))
                    .collect();
                panic!(
                    "cluster not healthy: {:?}\n{}",
                    self.status().await,
                    logs.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The node leading `topic`/`partition`, as the metadata of a running node says.
    pub async fn leader_of(&mut self, topic: &str, partition: u32) -> Option<u64> {
        for b in self.brokers() {
            let leader = partition_at(&b, topic, partition)
                .await
                .map(|p| p.leader_id)
                .filter(|l| *l != 0);
            if leader.is_some() {
                return leader;
            }
        }
        None
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        let failed = std::thread::panicking();
        for p in self.nodes.values_mut() {
            p.kill();
            if failed {
                eprintln!("--- log of node {} ---\n{}", p.id, p.log_tail());
            }
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl ProcCluster {
    /// Starts `n` nodes bootstrapping together with `--initial-cluster` (fixed free ports).
    pub async fn start_static(n: u64) -> ProcCluster {
        let one = strata_record::sync::lock(&ONE_CLUSTER);
        let root = tempfile::tempdir().expect("tempdir");
        let ports: Vec<(u16, u16, u16)> = (0..n)
            .map(|_| (free_port(), free_port(), free_port()))
            .collect();
        let initial: Vec<String> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| format!("{}@127.0.0.1:{}", i + 1, p.1))
            .collect();
        let mut c = ProcCluster {
            _one: one,
            root,
            nodes: BTreeMap::new(),
            net: None,
        };
        for (i, (cp, pp, hp)) in ports.iter().enumerate() {
            let id = i as u64 + 1;
            let dir = c.root.path().join(format!("n{id}"));
            let args: Vec<String> = vec![
                "node".into(),
                "--node-id".into(),
                id.to_string(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--client-addr".into(),
                format!("127.0.0.1:{cp}"),
                "--peer-addr".into(),
                format!("127.0.0.1:{pp}"),
                "--http-addr".into(),
                format!("127.0.0.1:{hp}"),
                "--initial-cluster".into(),
                initial.join(","),
            ];
            let mut p = Proc {
                id,
                dir,
                args,
                child: None,
                log: c.root.path().join(format!("n{id}.log")),
                paused: false,
                netns: None,
                fast: true,
            };
            spawn_fast(&mut p);
            c.nodes.insert(id, p);
        }
        c.wait_registered(n).await;
        c.wait_healthy(Duration::from_secs(60)).await;
        c
    }
}

impl ProcCluster {
    /// Starts `n` nodes, each in its own network namespace, bootstrapping with
    /// `--initial-cluster` on their namespace addresses; `None` where namespaces cannot be
    /// made (not root).
    pub async fn start_netns(n: u64) -> Option<ProcCluster> {
        ProcCluster::start_netns_with(n, true).await
    }

    /// As [`ProcCluster::start_netns`]; `fast: false` runs the nodes with their default Raft
    /// timing (heartbeat 300 ms, elections 1.5-3 s) instead of [`FAST_TIMING`].
    pub async fn start_netns_with(n: u64, fast: bool) -> Option<ProcCluster> {
        let mut c = ProcCluster::empty();
        let net = Net::create(n)?;
        let initial: Vec<String> = (1..=n)
            .map(|i| format!("{i}@{}:7201", net.addr_of(i)))
            .collect();
        for id in 1..=n {
            let dir = c.root.path().join(format!("n{id}"));
            let a = net.addr_of(id);
            let args: Vec<String> = vec![
                "node".into(),
                "--node-id".into(),
                id.to_string(),
                "--data-dir".into(),
                dir.display().to_string(),
                "--client-addr".into(),
                format!("{a}:7101"),
                "--peer-addr".into(),
                format!("{a}:7201"),
                "--http-addr".into(),
                format!("{a}:7301"),
                "--initial-cluster".into(),
                initial.join(","),
            ];
            let mut p = Proc {
                id,
                dir,
                args,
                child: None,
                log: c.root.path().join(format!("n{id}.log")),
                paused: false,
                netns: Some(net.ns(id)),
                fast,
            };
            spawn_fast(&mut p);
            c.nodes.insert(id, p);
        }
        c.net = Some(net);
        c.wait_registered(n).await;
        c.wait_healthy(Duration::from_secs(60)).await;
        Some(c)
    }
}

/// Spawns `p` (with [`FAST_TIMING`] unless `p.fast` is off).
fn spawn_fast(p: &mut Proc) {
    p.spawn();
}

/// Whether a node answers `/readyz` with 200.
pub async fn ready(p: &Proc) -> bool {
    let Some(a) = p.addresses() else { return false };
    http_get(&a.http_addr, "/readyz")
        .await
        .is_some_and(|(code, _)| code == 200)
}

/// A minimal HTTP/1.1 GET: (status, body).
pub async fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((code, body))
}

/// A raw Admin client.
pub async fn admin(
    addr: &str,
) -> Result<pb::admin_client::AdminClient<tonic::transport::Channel>, tonic::transport::Error> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .connect()
        .await?;
    Ok(pb::admin_client::AdminClient::new(ch))
}

/// A raw Strata (data plane) client.
pub async fn data(
    addr: &str,
) -> Result<pb::strata_client::StrataClient<tonic::transport::Channel>, tonic::transport::Error> {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(20))
        .connect()
        .await?;
    Ok(pb::strata_client::StrataClient::new(ch))
}

/// `topic` as the node at `addr` describes it (`None`: unreachable, or unknown there).
pub async fn topic_at(addr: &str, topic: &str) -> Option<pb::TopicInfo> {
    let mut d = data(addr).await.ok()?;
    let m = d
        .metadata(pb::MetadataRequest {
            topics: vec![topic.to_string()],
        })
        .await
        .ok()?;
    m.into_inner().topics.into_iter().next()
}

/// One partition of `topic` as the node at `addr` describes it.
pub async fn partition_at(addr: &str, topic: &str, partition: u32) -> Option<pb::PartitionInfo> {
    topic_at(addr, topic)
        .await?
        .partitions
        .into_iter()
        .nth(partition as usize)
}

/// A fetch of decoded records from `offset`, with the node's default size and no wait.
pub fn fetch_from(topic: &str, partition: u32, offset: i64) -> pb::FetchRequest {
    pb::FetchRequest {
        topic: topic.into(),
        partition,
        offset,
        max_bytes: 0,
        max_wait_ms: 0,
        format: pb::FetchFormat::Records as i32,
    }
}

/// Creates `name` with `partitions` partitions of 3 replicas through the raw Admin API of the
/// first running node, then waits until the cluster is healthy (every partition led).
pub async fn create_topic_rf3(c: &mut ProcCluster, name: &str, partitions: u32) -> pb::TopicInfo {
    let b = c.brokers()[0].clone();
    let mut a = admin(&b).await.expect("admin");
    let t = a
        .create_topic(pb::CreateTopicRequest {
            name: name.into(),
            partitions,
            replication_factor: 3,
            configs: Default::default(),
        })
        .await
        .expect("create")
        .into_inner()
        .topic
        .expect("topic");
    c.wait_healthy(Duration::from_secs(30)).await;
    t
}

/// What one `strata` run printed.
pub struct Run {
    /// The arguments, joined.
    pub args: String,
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    /// What it printed on stdout.
    pub stdout: String,
    /// What it printed on stderr.
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0.
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "`strata {}` failed:\n{}\n{}",
            self.args, self.stdout, self.stderr
        );
        self
    }

    /// Asserts exit code 1 and that stderr has `needle`.
    pub fn fails_with(self, needle: &str) -> Run {
        assert_eq!(
            self.code, 1,
            "`strata {}` should fail:\n{}\n{}",
            self.args, self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(needle),
            "`strata {}`: no {needle:?} in {}",
            self.args,
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("`strata {}`: no JSON ({e}):\n{}", self.args, self.stdout))
    }

    /// One JSON object per line.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        let parse = |l: &str| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("`strata {}`: bad JSON line {l:?}: {e}", self.args))
        };
        self.stdout.lines().map(parse).collect()
    }

    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }
}

/// Runs `strata --brokers BROKERS ARGS...` with `input` on stdin (else none).
pub async fn strata_args(brokers: &str, args: &[&str], input: Option<Vec<u8>>) -> Run {
    use tokio::io::AsyncWriteExt;
    let stdin = if input.is_some() {
        std::process::Stdio::piped()
    } else {
        std::process::Stdio::null()
    };
    let mut child = tokio::process::Command::new(strata_bin())
        .arg("--brokers")
        .arg(brokers)
        .args(args)
        .env_remove("STRATA_BROKERS")
        .env("RUST_LOG", "error")
        .stdin(stdin)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn strata");
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        // The command may exit before reading everything; its test checks why.
        tokio::spawn(async move { stdin.write_all(&input).await });
    }
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("`strata {}` did not finish", args.join(" ")))
        .expect("wait for strata");
    Run {
        args: args.join(" "),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs `strata --brokers BROKERS` with `command` split at whitespace.
pub async fn strata(brokers: &str, command: &str) -> Run {
    let args: Vec<&str> = command.split_whitespace().collect();
    strata_args(brokers, &args, None).await
}

/// Runs `strata --brokers BROKERS` with `command` split at whitespace and `input` on stdin.
pub async fn strata_stdin(brokers: &str, command: &str, input: impl Into<Vec<u8>>) -> Run {
    let args: Vec<&str> = command.split_whitespace().collect();
    strata_args(brokers, &args, Some(input.into())).await
}
