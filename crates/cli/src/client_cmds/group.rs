//! `strata group list|describe|reset|delete`: consumer groups, their members, committed
//! offsets and lag.

use super::parse_time::parse_from;
use crate::Format;
use crate::output::{self, print_document};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::SystemTime;
use strata_client::{Client, ConsumerConfig, Offset, TopicPartition};

/// `strata group ...`
#[derive(Debug, clap::Subcommand)]
pub enum GroupCmd {
    /// Lists every group with its state and member count.
    List,
    /// A group's state, members (id, client, host, partitions), and per partition the
    /// committed offset, log end offset and lag, with the total lag.
    Describe {
        /// The group.
        group: String,
    },
    /// Moves a group's committed offsets for a topic (the group must have no members).
    Reset {
        /// The group.
        group: String,
        /// The topic whose offsets move (every partition).
        #[arg(long)]
        topic: String,
        /// earliest, latest, an offset, an RFC 3339 time, or a relative time like -10m.
        #[arg(long, allow_hyphen_values = true)]
        to: String,
        /// Print the new offsets without setting them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Deletes a group and its committed offsets (the group must have no members).
    Delete {
        /// The group.
        group: String,
    },
}

/// Where `start` puts every partition of `topic`.
async fn resolve(
    client: &Client,
    topic: &str,
    start: Offset,
) -> anyhow::Result<BTreeMap<TopicPartition, i64>> {
    let mut consumer = client.consumer(ConsumerConfig::default())?;
    consumer.assign_all(topic, start).await?;
    Ok(consumer
        .assignment()
        .into_iter()
        .filter_map(|tp| consumer.position(&tp.topic, tp.partition).map(|p| (tp, p)))
        .collect())
}

/// Runs `strata group ...`.
pub async fn run(client: &Client, format: Format, cmd: GroupCmd) -> anyhow::Result<ExitCode> {
    let groups = client.groups();
    match cmd {
        GroupCmd::List => {
            let list = groups.list().await?;
            let text = match format {
                Format::Table => {
                    let mut t = output::table(&["GROUP", "STATE", "MEMBERS", "COORDINATOR"]);
                    for g in &list {
                        t.add_row(vec![
                            g.group.clone(),
                            g.state.clone(),
                            g.members.to_string(),
                            g.coordinator_id.to_string(),
                        ]);
                    }
                    t.to_string()
                }
                _ => list
                    .iter()
                    .map(|g| format!("{} {} {}", g.group, g.state, g.members))
                    .collect::<Vec<_>>()
                    .join("\n"),
            };
            print_document(format, &text, &json!(list))?;
        }
        GroupCmd::Describe { group } => {
            let d = groups.describe(&group).await?;
            let lags = groups.lag(&group).await?;
            let holder: BTreeMap<&TopicPartition, &str> = d
                .members
                .iter()
                .flat_map(|m| m.owned.iter().map(move |tp| (tp, m.member_id.as_str())))
                .collect();
            let total: i64 = lags.values().map(|l| l.lag).sum();
            let rows: Vec<_> = lags
                .iter()
                .map(|(tp, l)| {
                    json!({
                        "topic": tp.topic, "partition": tp.partition,
                        "committed": l.committed, "log_end": l.log_end, "lag": l.lag,
                        "member": holder.get(tp).copied(),
                    })
                })
                .collect();
            let mut text = format!(
                "group {} ({}), epoch {}, coordinator node {}, total lag {total}\n",
                d.group, d.state, d.epoch, d.coordinator_id
            );
            let mut members = output::table(&["MEMBER", "CLIENT", "HOST", "EPOCH", "PARTITIONS"]);
            for m in &d.members {
                let parts: Vec<String> = m.owned.iter().map(|tp| tp.to_string()).collect();
                members.add_row(vec![
                    m.member_id.clone(),
                    m.client_id.clone(),
                    m.host.clone(),
                    m.member_epoch.to_string(),
                    parts.join(","),
                ]);
            }
            let mut offsets = output::table(&[
                "TOPIC",
                "PARTITION",
                "COMMITTED",
                "LOG END",
                "LAG",
                "MEMBER",
            ]);
            for (tp, l) in &lags {
                offsets.add_row(vec![
                    tp.topic.clone(),
                    tp.partition.to_string(),
                    output::or_dash(l.committed),
                    l.log_end.to_string(),
                    l.lag.to_string(),
                    output::or_dash(holder.get(tp).copied()),
                ]);
            }
            let _ = write!(text, "{members}\n{offsets}");
            print_document(
                format,
                &text,
                &json!({
                    "group": d.group, "state": d.state, "epoch": d.epoch,
                    "coordinator_id": d.coordinator_id, "members": d.members,
                    "partitions": rows, "total_lag": total,
                }),
            )?;
        }
        GroupCmd::Reset {
            group,
            topic,
            to,
            dry_run,
        } => {
            let start =
                parse_from(&to, SystemTime::now()).map_err(|e| anyhow::anyhow!("--to: {e}"))?;
            let offsets = resolve(client, &topic, start).await?;
            if !dry_run {
                groups.reset(&group, &offsets).await?;
            }
            let text = offsets
                .iter()
                .map(|(tp, o)| format!("{tp} {o}"))
                .collect::<Vec<_>>()
                .join("\n");
            let rows: Vec<_> = offsets
                .iter()
                .map(|(tp, o)| json!({ "topic": tp.topic, "partition": tp.partition, "offset": o }))
                .collect();
            print_document(
                format,
                &text,
                &json!({ "dry_run": dry_run, "offsets": rows }),
            )?;
        }
        GroupCmd::Delete { group } => {
            groups.delete(&group).await?;
            print_document(
                format,
                &format!("deleted group {group}"),
                &json!({ "deleted": group }),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
