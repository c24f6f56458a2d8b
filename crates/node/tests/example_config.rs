//! `deploy/node.example.toml` stays true to `NodeConfig`: it loads to exactly the defaults,
//! it names every key, and its commented-out examples are valid values.

use figment::Figment;
use figment::providers::{Format, Toml};
use std::path::PathBuf;
use strata_node::{NodeConfig, NodeFlags};

fn example_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/node.example.toml")
}

fn example_text() -> String {
    let path = example_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every key of `NodeConfig`, with whether its default is `None`.
fn keys() -> Vec<(String, bool)> {
    let value = serde_json::to_value(NodeConfig::default()).expect("serialize the defaults");
    let map = value.as_object().expect("NodeConfig serializes to a map");
    map.iter().map(|(k, v)| (k.clone(), v.is_null())).collect()
}

/// `key = value` lines, uncommented (`false`) or commented out (`true`), by key.
fn assignments(text: &str) -> Vec<(String, bool, String)> {
    text.lines()
        .filter_map(|line| {
            let (commented, rest) = match line.strip_prefix("# ") {
                Some(r) => (true, r),
                None => (false, line),
            };
            let (key, value) = rest.split_once(" = ")?;
            let ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit());
            ok.then(|| (key.to_string(), commented, value.to_string()))
        })
        .collect()
}

#[test]
fn example_loads_to_the_defaults() {
    // NodeConfig::load merges STRATA_* variables over the file: none may be set here.
    let set: Vec<String> = keys()
        .into_iter()
        .map(|(k, _)| format!("STRATA_{}", k.to_uppercase()))
        .filter(|v| std::env::var_os(v).is_some())
        .collect();
    assert!(
        set.is_empty(),
        "unset {set:?} to run this test: they override the example file"
    );
    let loaded = NodeConfig::load(Some(&example_path()), &NodeFlags::default())
        .expect("deploy/node.example.toml loads");
    assert_eq!(
        loaded,
        NodeConfig::default(),
        "deploy/node.example.toml must carry the defaults of NodeConfig::default()"
    );
}

#[test]
fn example_names_every_key_once() {
    let text = example_text();
    let found = assignments(&text);
    for (key, is_none) in keys() {
        let lines: Vec<_> = found.iter().filter(|(k, _, _)| *k == key).collect();
        assert_eq!(
            lines.len(),
            1,
            "deploy/node.example.toml must show `{key}` exactly once (found {lines:?})"
        );
        let (_, commented, _) = lines[0];
        assert_eq!(
            *commented, is_none,
            "`{key}`: keys without a default are shown commented out, the others uncommented"
        );
    }
    let known: Vec<String> = keys().into_iter().map(|(k, _)| k).collect();
    for (key, _, _) in &found {
        assert!(
            known.contains(key),
            "deploy/node.example.toml shows `{key}`, which NodeConfig does not have"
        );
    }
}

#[test]
fn commented_out_examples_are_valid() {
    let text = example_text();
    let optional: Vec<String> = keys()
        .into_iter()
        .filter(|(_, is_none)| *is_none)
        .map(|(k, _)| k)
        .collect();
    // The file with every example uncommented.
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest)
                if optional
                    .iter()
                    .any(|k| rest.starts_with(&format!("{k} = "))) =>
            {
                rest
            }
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let config: NodeConfig = Figment::from(Toml::string(&uncommented))
        .extract()
        .unwrap_or_else(|e| panic!("the uncommented examples do not parse: {e}"));
    let value = serde_json::to_value(&config).expect("serialize");
    for key in &optional {
        assert!(!value[key.as_str()].is_null(), "`{key}` has no example");
    }
    // initial_cluster and join exclude each other; each example must pass validation alone.
    let bootstrap = NodeConfig {
        join: None,
        ..config.clone()
    };
    bootstrap
        .validate()
        .expect("the bootstrap examples validate");
    let join = NodeConfig {
        initial_cluster: None,
        node_id: None,
        ..config
    };
    join.validate().expect("the join example validates");
}
