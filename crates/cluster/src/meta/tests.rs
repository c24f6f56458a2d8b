//! Tests of the metadata state machine: placement, topic lifecycle, registration,
//! rebalancing, names and configs.

use super::*;

fn node(inc: u64) -> NodeMeta {
    NodeMeta {
        incarnation: inc,
        client_addr: format!("c{inc}"),
        peer_addr: format!("p{inc}"),
        http_addr: format!("h{inc}"),
        kafka_addr: String::new(),
        state: NodeState::Active,
        boot: 0,
    }
}

fn three() -> ClusterMeta {
    let mut m = ClusterMeta::default();
    for id in 1..=3 {
        assert_eq!(
            m.apply(&Command::RegisterNode {
                node_id: id,
                meta: node(id * 10)
            }),
            Outcome::Ok
        );
    }
    m
}

fn create(m: &mut ClusterMeta, name: &str, p: u32, rf: u32) -> Outcome {
    m.apply(&Command::CreateTopic {
        name: name.into(),
        id: format!("id-{name}-{}", m.next_group_id),
        partitions: p,
        replication_factor: rf,
        config: TopicConfig::default(),
    })
}

#[test]
fn placement_spreads_replicas_and_leaders() {
    let mut m = three();
    assert_eq!(create(&mut m, "t", 6, 3), Outcome::Ok);
    let t = &m.topics["t"];
    let mut leaders = BTreeMap::new();
    for p in &t.partitions {
        assert_eq!(p.replicas.len(), 3);
        *leaders.entry(p.replicas[0]).or_insert(0) += 1;
    }
    assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    let groups: BTreeSet<_> = t.partitions.iter().map(|p| p.group_id).collect();
    assert_eq!(groups.len(), 6);
    assert!(!groups.contains(&GroupId::new(0)));
}

/// Group ids are plain numbers in the metadata's JSON (entries and snapshots written before
/// `GroupId` existed read back the same).
#[test]
fn group_ids_are_plain_numbers_in_json() {
    let mut m = three();
    create(&mut m, "t", 1, 1);
    let json = serde_json::to_value(&m).expect("encode");
    assert_eq!(json["next_group_id"], serde_json::json!(2));
    assert_eq!(
        json["topics"]["t"]["partitions"][0]["group_id"],
        serde_json::json!(1)
    );
    let back: ClusterMeta = serde_json::from_value(json).expect("decode");
    assert_eq!(back, m);
    let cmd: Command =
        serde_json::from_str(r#"{"FinishMove":{"topic":"t","partition":0,"group_id":7}}"#)
            .expect("decode");
    assert_eq!(
        cmd,
        Command::FinishMove {
            topic: "t".into(),
            partition: 0,
            group_id: GroupId::new(7),
        }
    );
}

#[test]
fn delete_and_recreate_gets_new_id_and_groups() {
    let mut m = three();
    create(&mut m, "t", 2, 3);
    let old = m.topics["t"].clone();
    assert_eq!(
        create(&mut m, "t", 2, 3),
        Outcome::Refused(Refusal::TopicExists("t".into()))
    );
    assert_eq!(
        m.apply(&Command::DeleteTopic {
            name: "t".into(),
            id: None
        }),
        Outcome::Ok
    );
    assert!(m.deleted_topics.contains(&old.id));
    create(&mut m, "t", 2, 3);
    let new = &m.topics["t"];
    assert_ne!(new.id, old.id);
    for p in &new.partitions {
        assert!(old.partitions.iter().all(|o| o.group_id != p.group_id));
    }
}

/// Issue 8, item 6: the controller retries a proposal whose outcome was uncertain; by name
/// alone, the retry deleted a topic recreated under the same name in between.
#[test]
fn a_retried_delete_does_not_delete_the_recreated_topic() {
    let mut m = three();
    create(&mut m, "t", 1, 3);
    let delete = Command::DeleteTopic {
        name: "t".into(),
        id: Some(m.topics["t"].id.clone()),
    };
    assert_eq!(m.apply(&delete), Outcome::Ok);
    create(&mut m, "t", 1, 3);
    let new_id = m.topics["t"].id.clone();
    assert!(matches!(
        m.apply(&delete),
        Outcome::Refused(Refusal::UnknownTopic(_))
    ));
    assert_eq!(m.topics["t"].id, new_id, "the recreated topic was deleted");
    // An entry written before ids were carried still deletes by name.
    let old: Command = serde_json::from_str(r#"{"DeleteTopic":{"name":"t"}}"#)
        .expect("an old delete entry decodes");
    assert_eq!(m.apply(&old), Outcome::Ok);
    assert!(!m.topics.contains_key("t"));
}

#[test]
fn wiped_node_cannot_reregister() {
    let mut m = three();
    let r = m.apply(&Command::RegisterNode {
        node_id: 2,
        meta: node(99),
    });
    assert!(matches!(
        r,
        Outcome::Refused(Refusal::IncarnationMismatch { node_id: 2, .. })
    ));
    assert_eq!(
        m.apply(&Command::JoinNode { meta: node(99) }),
        Outcome::NodeId(4)
    );
    // A retried join answers the same id.
    assert_eq!(
        m.apply(&Command::JoinNode { meta: node(99) }),
        Outcome::NodeId(4)
    );
}

#[test]
fn rf_above_active_nodes_is_refused() {
    let mut m = three();
    assert_eq!(
        create(&mut m, "t", 1, 4),
        Outcome::Refused(Refusal::NotEnoughNodes {
            wanted: 4,
            active: 3
        })
    );
    assert!(m.topics.is_empty());
}

#[test]
fn rebalance_moves_onto_a_new_node_and_off_a_decommissioned_one() {
    let mut m = three();
    create(&mut m, "t", 8, 2);
    m.apply(&Command::JoinNode { meta: node(40) });
    let moves = m.plan_rebalance();
    assert!(!moves.is_empty());
    for (t, p, target) in &moves {
        m.apply(&Command::StartMove {
            topic: t.clone(),
            partition: *p,
            target: target.clone(),
        });
        let g = m.topics[t].partitions[*p as usize].group_id;
        m.apply(&Command::FinishMove {
            topic: t.clone(),
            partition: *p,
            group_id: g,
        });
    }
    let counts = m.replica_counts();
    assert!(counts[&4].0 >= 3, "{counts:?}");
    m.apply(&Command::Decommission { node_id: 1 });
    for (t, p, target) in m.plan_rebalance() {
        assert!(!target.contains(&1));
        m.apply(&Command::StartMove {
            topic: t.clone(),
            partition: p,
            target,
        });
        let g = m.topics[&t].partitions[p as usize].group_id;
        m.apply(&Command::FinishMove {
            topic: t,
            partition: p,
            group_id: g,
        });
    }
    for p in &m.topics["t"].partitions {
        assert!(!p.replicas.contains(&1), "{:?}", p.replicas);
    }
}

#[test]
fn topic_names_follow_kafka_rules() {
    assert!(check_topic_name("orders.v1_a-b").is_ok());
    for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
        assert!(check_topic_name(bad).is_err(), "{bad:?}");
    }
    assert!(check_topic_name(&"a".repeat(250)).is_err());
}

#[test]
fn topic_config_errors_name_the_key() {
    let mut c = TopicConfig::default();
    assert!(c.set("retention.ms", "1000").is_ok());
    let e = c.set("segment.bytes", "10").err().unwrap_or_default();
    assert!(e.contains("segment.bytes"), "{e}");
    let e = c.set("nope", "1").err().unwrap_or_default();
    assert!(e.contains("nope"), "{e}");
}
