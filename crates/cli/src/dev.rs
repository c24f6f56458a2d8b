//! `strata dev`: a local cluster of N nodes in this process, on 127.0.0.1.

use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use strata_node::{Node, NodeConfig};

/// Arguments of `strata dev`.
#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Data directory (kept; a later `strata dev` with the same directory restarts the same
    /// cluster). Default: a temporary directory removed at exit.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Node i listens on BASE+i (client), BASE+100+i (peer), BASE+200+i (HTTP). 0 picks free
    /// ports.
    #[arg(long, default_value_t = 7100)]
    pub base_port: u16,
    /// Node i's Kafka listener is on KAFKA_BASE_PORT+i (9092, 9093, 9094 for three nodes).
    /// 0 picks free ports (as does --base-port 0).
    #[arg(long, default_value_t = 9091)]
    pub kafka_base_port: u16,
    /// Run no Kafka listener.
    #[arg(long)]
    pub no_kafka: bool,
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Runs the cluster until Ctrl-C.
pub async fn run(args: DevArgs) -> anyhow::Result<std::process::ExitCode> {
    if args.nodes == 0 || args.nodes > 9 {
        anyhow::bail!("--nodes must be between 1 and 9, got {}", args.nodes);
    }
    let (root, temporary) = match &args.data_dir {
        Some(d) => (d.clone(), false),
        None => (crate::default_dev_dir(), true),
    };
    std::fs::create_dir_all(&root).with_context(|| format!("create {}", root.display()))?;
    let mut ports = Vec::new();
    let mut kafka_ports = Vec::new();
    for i in 1..=args.nodes as u16 {
        kafka_ports.push(if args.no_kafka {
            None
        } else if args.base_port == 0 || args.kafka_base_port == 0 {
            Some(free_port()?)
        } else {
            Some(
                args.kafka_base_port
                    .checked_add(i)
                    .context("--kafka-base-port too high for this many nodes")?,
            )
        });
        if args.base_port == 0 {
            ports.push((free_port()?, free_port()?, free_port()?));
        } else {
            let b = args.base_port;
            let p = |off: u16| {
                b.checked_add(off + i)
                    .context("--base-port too high for this many nodes")
            };
            ports.push((p(0)?, p(100)?, p(200)?));
        }
    }
    let initial: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, (_, peer, _))| format!("{}@127.0.0.1:{peer}", i + 1))
        .collect();
    let initial = initial.join(",");
    let mut starts = tokio::task::JoinSet::new();
    for (i, (client, peer, http)) in ports.iter().enumerate() {
        let id = i as u64 + 1;
        let config = NodeConfig {
            node_id: Some(id),
            data_dir: strata_node::node::dev_node_dir(&root, id),
            client_addr: format!("127.0.0.1:{client}"),
            peer_addr: format!("127.0.0.1:{peer}"),
            http_addr: format!("127.0.0.1:{http}"),
            initial_cluster: Some(initial.clone()),
            default_replication_factor: args.nodes.min(3),
            kafka_addr: kafka_ports[i].map(|p| format!("127.0.0.1:{p}")),
            ..NodeConfig::default()
        };
        config.validate()?;
        starts.spawn(async move { (id, Node::start(config, strata_node::World::real()).await) });
    }
    let mut nodes = Vec::new();
    while let Some(r) = starts.join_next().await {
        let (id, node) = r?;
        nodes.push(node.with_context(|| format!("start node {id}"))?);
    }
    nodes.sort_by_key(|n| n.node_id());
    // Wait until healthy.
    let started = Instant::now();
    loop {
        let s = nodes[0].shared();
        let meta = s.controller.snapshot();
        if s.health(&meta).healthy && meta.nodes.len() == nodes.len() {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            anyhow::bail!("the cluster did not become healthy within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header(vec!["node", "client", "peer", "http", "kafka", "data dir"]);
    for n in &nodes {
        let a = n.addresses();
        table.add_row(vec![
            n.node_id().to_string(),
            a.client_addr.clone(),
            a.peer_addr.clone(),
            a.http_addr.clone(),
            if a.kafka_addr.is_empty() {
                "-".to_string()
            } else {
                a.kafka_addr.clone()
            },
            strata_node::node::dev_node_dir(&root, n.node_id())
                .display()
                .to_string(),
        ]);
    }
    let brokers: Vec<String> = nodes
        .iter()
        .map(|n| n.addresses().client_addr.clone())
        .collect();
    println!("{table}");
    println!(
        "cluster healthy in {:.1} s; brokers: {}",
        started.elapsed().as_secs_f64(),
        brokers.join(",")
    );
    let kafka: Vec<String> = nodes
        .iter()
        .map(|n| n.addresses().kafka_addr.clone())
        .filter(|a| !a.is_empty())
        .collect();
    if !kafka.is_empty() {
        println!("kafka bootstrap servers: {}", kafka.join(","));
    }
    println!(
        "data: {}{}; Ctrl-C stops",
        root.display(),
        if temporary { " (removed at exit)" } else { "" }
    );
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let why = crate::shutdown_signal().await;
    eprintln!("{why}: stopping the cluster");
    let mut stops = tokio::task::JoinSet::new();
    for n in nodes {
        stops.spawn(n.shutdown_with_cluster());
    }
    while stops.join_next().await.is_some() {}
    if temporary {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok(std::process::ExitCode::SUCCESS)
}
