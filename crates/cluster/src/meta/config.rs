//! Topic configuration ([`TopicConfig`]: the keys a topic accepts, their defaults and
//! bounds) and the rules for topic names.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Topic configs (Kafka's names in the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfig {
    /// `retention.ms`: records older than this may be deleted; -1 keeps them forever.
    pub retention_ms: i64,
    /// `retention.bytes`: a partition larger than this drops its oldest segments; -1: no limit.
    pub retention_bytes: i64,
    /// `segment.bytes`: a segment rolls at this size.
    pub segment_bytes: u64,
    /// `max.message.bytes`: the largest batch a producer may send.
    pub max_message_bytes: u32,
    /// `retention.policy = acked` (true): besides the time and size limits, whole segments
    /// every queue group of the topic has settled are deleted (a work queue); `limits`
    /// (false, the default): only the limits delete.
    #[serde(default)]
    pub retention_policy_acked: bool,
}

impl Default for TopicConfig {
    fn default() -> TopicConfig {
        TopicConfig {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            max_message_bytes: 1 << 20,
            retention_policy_acked: false,
        }
    }
}

/// The largest `max.message.bytes` (8 MiB): a log entry and a peer message hold at most 16
/// MiB, and a batch must fit with room to spare.
pub const MESSAGE_BYTES_LIMIT: u32 = 8 << 20;

/// The config keys a topic accepts.
pub const TOPIC_CONFIG_KEYS: &[&str] = &[
    "retention.ms",
    "retention.bytes",
    "segment.bytes",
    "max.message.bytes",
    "retention.policy",
];

impl TopicConfig {
    /// Sets one config from its Kafka name; the error names the key and the rule.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let int = |v: &str| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| format!("{key} must be an integer, got {value:?}"))
        };
        match key {
            "retention.ms" => {
                let v = int(value)?;
                if v < -1 || v == 0 {
                    return Err(format!("retention.ms must be -1 or positive, got {v}"));
                }
                self.retention_ms = v;
            }
            "retention.bytes" => {
                let v = int(value)?;
                if v < -1 || v == 0 {
                    return Err(format!("retention.bytes must be -1 or positive, got {v}"));
                }
                self.retention_bytes = v;
            }
            "segment.bytes" => {
                let v = int(value)?;
                if !(1 << 20..=1 << 32).contains(&v) {
                    return Err(format!(
                        "segment.bytes must be between 1048576 and 4294967296, got {v}"
                    ));
                }
                self.segment_bytes = v as u64;
            }
            "max.message.bytes" => {
                let v = int(value)?;
                if !(1024..=i64::from(MESSAGE_BYTES_LIMIT)).contains(&v) {
                    return Err(format!(
                        "max.message.bytes must be between 1024 and {MESSAGE_BYTES_LIMIT}, got {v}"
                    ));
                }
                self.max_message_bytes = v as u32;
            }
            "retention.policy" => match value.trim() {
                "limits" => self.retention_policy_acked = false,
                "acked" => self.retention_policy_acked = true,
                other => {
                    return Err(format!(
                        "retention.policy must be \"limits\" or \"acked\", got {other:?}"
                    ));
                }
            },
            _ => {
                return Err(format!(
                    "unknown topic config {key:?} (known: {})",
                    TOPIC_CONFIG_KEYS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The configs as Kafka names and values.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("retention.ms".into(), self.retention_ms.to_string()),
            ("retention.bytes".into(), self.retention_bytes.to_string()),
            ("segment.bytes".into(), self.segment_bytes.to_string()),
            (
                "max.message.bytes".into(),
                self.max_message_bytes.to_string(),
            ),
            (
                "retention.policy".into(),
                if self.retention_policy_acked {
                    "acked"
                } else {
                    "limits"
                }
                .into(),
            ),
        ])
    }
}

/// Checks a topic name against Kafka's rules: 1 to 249 characters of ASCII letters, digits,
/// '.', '_' and '-', and not "." or "..". The error says which rule failed.
pub fn check_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long; the limit is 249",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("topic name cannot be {name:?}"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "topic name {name:?} contains {c:?}; allowed are ASCII letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(())
}
