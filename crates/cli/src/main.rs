//! `strata`: one binary for the node, a local dev cluster, and the client commands (admin,
//! produce, consume, bench).

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

mod client_cmds;
mod dev;
mod output;

/// Output format of the client commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned table (the default on a terminal).
    Table,
    /// Plain text, one item per line (the default when piped).
    Text,
    /// JSON (one object per line for streams).
    Json,
}

/// Strata: a replicated commit-log cluster.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
pub struct Cli {
    /// Client addresses of cluster nodes (HOST:PORT,...).
    #[arg(
        long,
        global = true,
        env = "STRATA_BROKERS",
        default_value = "127.0.0.1:7101"
    )]
    pub brokers: String,
    /// Output format (default: table on a terminal, text otherwise).
    #[arg(short = 'o', long = "output", global = true, value_enum)]
    pub output: Option<Format>,
    /// The command.
    #[command(subcommand)]
    pub command: Cmd,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Runs a node (restart with the same command: its identity lives in its data directory).
    Node(strata_node::NodeFlags),
    /// Runs a local cluster on 127.0.0.1 until Ctrl-C.
    Dev(dev::DevArgs),
    /// Cluster operations.
    #[command(subcommand)]
    Cluster(client_cmds::ClusterCmd),
    /// Topic administration.
    #[command(subcommand)]
    Topic(client_cmds::TopicCmd),
    /// Consumer groups: list, describe (members, offsets, lag), reset, delete.
    #[command(subcommand)]
    Group(client_cmds::GroupCmd),
    /// Queue groups: consume (acknowledge, reject or release each message), describe,
    /// delete.
    #[command(subcommand)]
    Queue(client_cmds::QueueCmd),
    /// Dead letters of a topic: list, replay.
    #[command(subcommand)]
    Dlq(client_cmds::DlqCmd),
    /// Sends a request to a topic and prints the reply.
    Request(client_cmds::RequestArgs),
    /// Answers requests sent to a topic with a command's output (in a queue group).
    Reply(client_cmds::ReplyArgs),
    /// Produces records (VALUE, or one record per stdin line).
    Produce(client_cmds::ProduceArgs),
    /// Consumes records.
    Consume(client_cmds::ConsumeArgs),
    /// Benchmarks produce, consume or end-to-end latency against a running cluster.
    #[command(subcommand)]
    Bench(client_cmds::BenchCmd),
}

fn init_tracing(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let r = rt.block_on(async move {
        match cli.command {
            Cmd::Node(flags) => run_node(flags).await,
            Cmd::Dev(args) => {
                // As a node's default, one level quieter: the dev command prints its own lines.
                init_tracing("warn,openraft=error");
                dev::run(args).await
            }
            other => {
                // The command reports failures itself; the library's warnings would repeat them.
                init_tracing("error");
                let format = cli.output.unwrap_or_else(output::default_format);
                client_cmds::run(&cli.brokers, format, other).await
            }
        }
    });
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_node(flags: strata_node::NodeFlags) -> anyhow::Result<std::process::ExitCode> {
    let (config, warnings) =
        strata_node::NodeConfig::load_reporting(flags.config.as_deref(), &flags)?;
    init_tracing(&config.log);
    for w in warnings {
        tracing::warn!("{w}");
    }
    // A signal during start-up (registration can wait for a controller quorum) stops the
    // start rather than being ignored.
    let mut node = tokio::select! {
        n = strata_node::Node::start(config, strata_node::World::real()) => n?,
        why = shutdown_signal() => {
            tracing::info!(signal = why, "stopped while starting");
            return Ok(std::process::ExitCode::SUCCESS);
        }
    };
    let why = tokio::select! {
        r = shutdown_signal() => r,
        f = node.failed() => {
            eprintln!("error: {f}");
            node.shutdown().await;
            return Ok(std::process::ExitCode::FAILURE);
        }
    };
    tracing::info!(signal = why, "stopping");
    node.shutdown().await;
    Ok(std::process::ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
pub async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => tokio::select! {
            _ = t.recv() => "SIGTERM",
            _ = i.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// The default data directory of `strata dev` when none is given.
pub fn default_dev_dir() -> PathBuf {
    std::env::temp_dir().join(format!("strata-dev-{}", std::process::id()))
}
