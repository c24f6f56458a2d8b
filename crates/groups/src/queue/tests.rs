#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::QueueError;
use super::engine::parse_deliver_at;
use super::hook::QueueHook;
use super::state::*;
use strata_raft::RaftIndex;
use strata_raft::state_machine::StateHook;

fn config() -> QueueConfig {
    QueueConfig {
        max_deliveries: 3,
        dead_letter: Some("t.dlq".into()),
    }
}

/// Applies an acquisition; the offsets taken (an error for a refused command).
fn acquire(
    s: &mut QueuesState,
    consumer: &str,
    offsets: &[i64],
    now: u64,
    until: u64,
) -> Result<Vec<i64>, QueueError> {
    match s.apply(&QueueCommand::Acquire {
        group: "g".into(),
        consumer: consumer.into(),
        offsets: offsets.to_vec(),
        now_ms: now,
        until_ms: until,
        delayed: Vec::new(),
        create: Some((config(), 0)),
    })? {
        QueueOutcome::Acquired(taken) => Ok(taken),
        other => panic!("an acquisition applied as {other:?}"),
    }
}

/// Condemns `offsets`, then marks them dead (as the leader's tick does around writing them).
fn condemn_and_bury(s: &mut QueuesState, offsets: Vec<i64>, now: u64) {
    s.apply(&QueueCommand::Condemn {
        group: "g".into(),
        offsets: offsets.clone(),
        now_ms: now,
    })
    .unwrap();
    s.apply(&QueueCommand::DeadLettered {
        group: "g".into(),
        offsets,
        now_ms: now,
    })
    .unwrap();
}

/// Applies a settle; each item's result.
fn settle(
    s: &mut QueuesState,
    consumer: &str,
    items: Vec<(i64, Settle)>,
    now: u64,
) -> Vec<Result<(), QueueError>> {
    let n = items.len();
    match s
        .apply(&QueueCommand::Settle {
            group: "g".into(),
            consumer: consumer.into(),
            items,
            now_ms: now,
            return_held: false,
        })
        .unwrap()
    {
        QueueOutcome::Settled(refused) => {
            let mut r: Vec<Result<(), QueueError>> = (0..n).map(|_| Ok(())).collect();
            for (i, e) in refused {
                r[i as usize] = Err(e);
            }
            r
        }
        other => panic!("a settle applied as {other:?}"),
    }
}

#[test]
fn acknowledged_records_are_never_acquired_again_and_the_window_shrinks() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0, 1, 2], 10, 100).unwrap();
    let r = settle(&mut s, "a", vec![(0, Settle::Ack), (1, Settle::Ack)], 20);
    assert!(r.iter().all(Result::is_ok));
    let g = &s.groups["g"];
    assert_eq!(g.settled_below, 2);
    assert_eq!(g.records.len(), 1);
    assert_eq!(g.acked_total, 2);
    // Even after every lock ran out, settled records stay settled.
    assert_eq!(
        acquire(&mut s, "b", &[1], 1_000, 2_000),
        Ok(vec![]),
        "settled: skipped"
    );
    assert_eq!(
        settle(&mut s, "a", vec![(0, Settle::Ack)], 30),
        vec![Err(QueueError::AlreadySettled { offset: 0 })]
    );
}

#[test]
fn only_the_holder_settles_before_its_lock_runs_out() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0], 10, 100).unwrap();
    assert_eq!(
        settle(&mut s, "b", vec![(0, Settle::Ack)], 20),
        vec![Err(QueueError::NotHeld {
            offset: 0,
            holder: Some("a".into())
        })]
    );
    assert_eq!(
        settle(&mut s, "a", vec![(5, Settle::Ack)], 20),
        vec![Err(QueueError::NotHeld {
            offset: 5,
            holder: None
        })]
    );
    // Refused items changed nothing; an extension keeps it.
    assert_eq!(
        settle(&mut s, "a", vec![(0, Settle::Extend { lock_ms: 500 })], 50),
        vec![Ok(())]
    );
    assert_eq!(
        settle(&mut s, "a", vec![(0, Settle::Ack)], 400),
        vec![Ok(())]
    );
    // After its lock ran out, the holder's ack is refused.
    assert_eq!(acquire(&mut s, "a", &[1], 400, 450), Ok(vec![1]));
    assert_eq!(
        settle(&mut s, "a", vec![(1, Settle::Ack)], 451),
        vec![Err(QueueError::LockExpired { offset: 1 })]
    );
}

#[test]
fn commands_are_judged_at_the_latest_time_applied() {
    // The leader saw a's lock expire and gave the record to b; a's ack, stamped before,
    // is applied after: it is judged at the later time, and refused.
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0], 10, 100).unwrap();
    assert_eq!(acquire(&mut s, "b", &[0], 101, 200), Ok(vec![0]));
    assert_eq!(
        settle(&mut s, "a", vec![(0, Settle::Ack)], 90),
        vec![Err(QueueError::NotHeld {
            offset: 0,
            holder: Some("b".into())
        })]
    );
    // The other order: a's ack lands first; the acquisition planned before it skips the
    // record, and the rest of it applies.
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0], 10, 100).unwrap();
    assert_eq!(
        settle(&mut s, "a", vec![(0, Settle::Ack)], 99),
        vec![Ok(())]
    );
    assert_eq!(acquire(&mut s, "b", &[0, 1], 101, 200), Ok(vec![1]));
    assert_eq!(s.groups["g"].acked_total, 1);
    assert_eq!(s.clock, 101);
}

#[test]
fn an_expired_lock_makes_the_record_available_and_deliveries_are_capped() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0], 10, 100).unwrap();
    assert_eq!(acquire(&mut s, "b", &[0], 50, 150), Ok(vec![]), "locked");
    assert_eq!(acquire(&mut s, "b", &[0], 101, 200), Ok(vec![0]));
    assert_eq!(s.groups["g"].records[&0].deliveries, 2);
    settle(&mut s, "b", vec![(0, Settle::Release { delay_ms: 0 })], 150);
    assert_eq!(acquire(&mut s, "c", &[0], 151, 300), Ok(vec![0]));
    let r = &s.groups["g"].records[&0];
    assert_eq!(r.deliveries, 3);
    assert_eq!(r.dead_letter_reason(250, 3), None, "still locked");
    assert_eq!(
        r.dead_letter_reason(301, 3).as_deref(),
        Some("max_deliveries")
    );
    assert_eq!(
        acquire(&mut s, "d", &[0], 301, 400),
        Ok(vec![]),
        "three deliveries is the cap"
    );
    // Only a record bound for the dead-letter topic can be marked dead.
    s.apply(&QueueCommand::DeadLettered {
        group: "g".into(),
        offsets: vec![0],
        now_ms: 301,
    })
    .unwrap();
    assert_eq!(s.groups["g"].dead_total, 0);
    condemn_and_bury(&mut s, vec![0], 301);
    let g = &s.groups["g"];
    assert_eq!((g.settled_below, g.dead_total, g.records.len()), (1, 1, 0));
}

#[test]
fn a_condemned_record_takes_no_settle() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0], 10, 100).unwrap();
    settle(&mut s, "a", vec![(0, Settle::Release { delay_ms: 0 })], 20);
    acquire(&mut s, "a", &[0], 21, 100).unwrap();
    acquire(&mut s, "a", &[0], 101, 200).unwrap();
    // The third lock runs out: condemned, and the holder's late ack is refused.
    s.apply(&QueueCommand::Condemn {
        group: "g".into(),
        offsets: vec![0],
        now_ms: 201,
    })
    .unwrap();
    assert_eq!(
        settle(&mut s, "a", vec![(0, Settle::Ack)], 150),
        vec![Err(QueueError::NotHeld {
            offset: 0,
            holder: None
        })]
    );
    assert_eq!(s.groups["g"].acked_total, 0);
}

#[test]
fn a_release_with_a_delay_and_a_reject() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0, 1], 10, 100).unwrap();
    settle(
        &mut s,
        "a",
        vec![
            (0, Settle::Release { delay_ms: 1_000 }),
            (
                1,
                Settle::Reject {
                    reason: "bad".into(),
                },
            ),
        ],
        20,
    );
    assert_eq!(
        acquire(&mut s, "a", &[0], 500, 600),
        Ok(vec![]),
        "delayed until 1020"
    );
    acquire(&mut s, "a", &[0], 1_020, 1_100).unwrap();
    let r1 = &s.groups["g"].records[&1];
    assert_eq!(
        r1.dead_letter_reason(0, 3).as_deref(),
        Some("rejected: bad")
    );
    assert_eq!(
        acquire(&mut s, "a", &[1], 5_000, 6_000),
        Ok(vec![]),
        "rejected records wait for the dead-letter topic"
    );
}

#[test]
fn records_join_the_window_without_holes_and_delayed_ones_wait() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0], 10, 100).unwrap();
    assert!(
        matches!(
            acquire(&mut s, "a", &[2], 10, 100),
            Err(QueueError::Invariant(_))
        ),
        "offset 1 skipped"
    );
    s.apply(&QueueCommand::Acquire {
        group: "g".into(),
        consumer: "a".into(),
        offsets: vec![2],
        now_ms: 10,
        until_ms: 100,
        delayed: vec![(1, 5_000)],
        create: None,
    })
    .unwrap();
    assert_eq!(acquire(&mut s, "a", &[1], 4_999, 6_000), Ok(vec![]));
    assert_eq!(acquire(&mut s, "a", &[1], 5_000, 6_000), Ok(vec![1]));
}

#[test]
fn retention_expires_unsettled_records_and_delete_waits_for_locks() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0, 1], 10, 100).unwrap();
    s.apply(&QueueCommand::Expired {
        group: "g".into(),
        below: 5,
    })
    .unwrap();
    let g = &s.groups["g"];
    assert_eq!(
        (g.settled_below, g.expired_total, g.records.len()),
        (5, 5, 0)
    );
    acquire(&mut s, "a", &[5], 10, 100).unwrap();
    assert!(matches!(
        s.apply(&QueueCommand::Delete {
            group: "g".into(),
            now_ms: 50
        }),
        Err(QueueError::GroupBusy { held: 1, .. })
    ));
    s.apply(&QueueCommand::Delete {
        group: "g".into(),
        now_ms: 101,
    })
    .unwrap();
    assert!(s.groups.is_empty());
}

#[test]
fn a_bad_config_is_refused_by_name() {
    let mut s = QueuesState::default();
    let e = s
        .apply(&QueueCommand::Acquire {
            group: "g".into(),
            consumer: "a".into(),
            offsets: vec![0],
            now_ms: 0,
            until_ms: 1,
            delayed: Vec::new(),
            create: Some((
                QueueConfig {
                    max_deliveries: 0,
                    dead_letter: None,
                },
                0,
            )),
        })
        .unwrap_err();
    assert!(e.to_string().contains("max_deliveries"), "{e}");
    assert!(s.groups.is_empty());
}

/// A seeded random run of acquisitions, settles (some stamped earlier than commands already
/// applied), and dead-lettering: no record is acquired after its acknowledgement, none is
/// acknowledged twice, deliveries stay capped, and the window stays bounded.
#[test]
fn random_operations_keep_the_invariants() {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut s = QueuesState::default();
    let mut acked = std::collections::BTreeSet::new();
    let consumers = ["a", "b", "c"];
    let mut now = 1u64;
    for _ in 0..20_000 {
        now += next(20);
        let c = consumers[next(3) as usize];
        match next(4) {
            0 | 1 => {
                // What a leader would plan: acquirable records of the window, then new ones.
                let g = s
                    .groups
                    .get("g")
                    .cloned()
                    .unwrap_or_else(|| QueuePartition::new(config(), 0));
                let mut offsets: Vec<i64> = g
                    .records
                    .iter()
                    .filter(|(_, r)| r.acquirable(now, 3))
                    .map(|(o, _)| *o)
                    .take(3)
                    .collect();
                let end = g.window_end();
                offsets.extend(end..end + next(3) as i64);
                if let Ok(taken) = acquire(&mut s, c, &offsets, now, now + 50) {
                    for o in &taken {
                        assert!(
                            !acked.contains(o),
                            "offset {o} acquired after its acknowledgement"
                        );
                    }
                }
            }
            2 => {
                let g = &s.groups.get("g").cloned();
                let Some(g) = g else { continue };
                let held: Vec<i64> = g
                    .records
                    .iter()
                    .filter(|(_, r)| r.holder(now) == Some(c))
                    .map(|(o, _)| *o)
                    .collect();
                let items: Vec<(i64, Settle)> = held
                    .iter()
                    .map(|o| {
                        let s = match next(10) {
                            0 => Settle::Release { delay_ms: next(30) },
                            1 => Settle::Reject { reason: "r".into() },
                            _ => Settle::Ack,
                        };
                        (*o, s)
                    })
                    .collect();
                // Stamped up to 30 ms early, as a settle that reaches the log after an
                // acquisition the leader planned later.
                let stamp = now.saturating_sub(next(30));
                let results = settle(&mut s, c, items.clone(), stamp);
                for ((o, what), r) in items.iter().zip(results) {
                    if r.is_ok() && *what == Settle::Ack {
                        assert!(acked.insert(*o), "offset {o} acknowledged twice");
                    }
                }
            }
            _ => {
                let Some(g) = s.groups.get("g") else { continue };
                let due: Vec<i64> = g
                    .records
                    .iter()
                    .filter(|(_, r)| r.dead_letter_reason(now, 3).is_some())
                    .map(|(o, _)| *o)
                    .collect();
                if !due.is_empty() {
                    condemn_and_bury(&mut s, due, now);
                }
            }
        }
        if let Some(g) = s.groups.get("g") {
            assert!(g.records.keys().all(|o| *o >= g.settled_below));
            assert!(g.records.values().all(|r| r.deliveries <= 3));
            assert!(
                g.records.len() < 2_000,
                "the window grew to {}",
                g.records.len()
            );
        }
    }
    assert!(acked.len() > 1_000, "only {} acknowledged", acked.len());
}

#[test]
fn the_hook_snapshots_and_restores_and_skips_replayed_entries() {
    let hook = QueueHook::default();
    let cmd = QueueCommand::Acquire {
        group: "g".into(),
        consumer: "a".into(),
        offsets: vec![0],
        now_ms: 1,
        until_ms: 10,
        delayed: Vec::new(),
        create: Some((config(), 0)),
    };
    let bytes = serde_json::to_vec(&cmd).unwrap();
    hook.apply_control(RaftIndex::new(3), &bytes);
    assert_eq!(
        hook.take_outcome(RaftIndex::new(3)),
        Some(Ok(QueueOutcome::Acquired(vec![0])))
    );
    hook.apply_control(RaftIndex::new(3), &bytes);
    assert_eq!(
        hook.take_outcome(RaftIndex::new(3)),
        None,
        "a replay is skipped"
    );
    hook.apply_control(RaftIndex::new(4), b"not json");
    assert!(matches!(
        hook.take_outcome(RaftIndex::new(4)),
        Some(Err(QueueError::InvalidRequest(_)))
    ));
    let snap = hook.snapshot();
    let other = QueueHook::default();
    other.restore(&snap).unwrap();
    assert_eq!(other.read(|s| s.clone()), hook.read(|s| s.clone()));
    other.apply_control(RaftIndex::new(4), &bytes);
    assert_eq!(
        other.take_outcome(RaftIndex::new(4)),
        None,
        "applied before the snapshot"
    );
    assert!(
        QueueHook::default().snapshot().is_empty(),
        "no queue state, no snapshot bytes"
    );
    assert!(other.restore(b"{").is_err());
}

#[test]
fn deliver_at_takes_epoch_millis_and_rfc3339() {
    assert_eq!(parse_deliver_at(b"1700000000000"), Some(1_700_000_000_000));
    assert_eq!(
        parse_deliver_at(b"2023-11-14T22:13:20Z"),
        Some(1_700_000_000_000)
    );
    assert_eq!(parse_deliver_at(b"tomorrow"), None);
}

#[test]
fn a_returned_record_is_available_at_once_and_its_delivery_does_not_count() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0], 10, 100).unwrap();
    assert_eq!(
        settle(&mut s, "a", vec![(0, Settle::Return)], 20),
        vec![Ok(())]
    );
    let r = &s.groups["g"].records[&0];
    assert_eq!(
        (r.deliveries, &r.state),
        (0, &RecState::Available { not_before: 0 })
    );
    acquire(&mut s, "b", &[0], 21, 100).unwrap();
    assert_eq!(s.groups["g"].records[&0].deliveries, 1);
}

#[test]
fn return_held_gives_back_what_the_consumer_still_holds() {
    let mut s = QueuesState::default();
    acquire(&mut s, "a", &[0, 1, 2], 10, 100).unwrap();
    acquire(&mut s, "b", &[3], 10, 100).unwrap();
    s.apply(&QueueCommand::Settle {
        group: "g".into(),
        consumer: "a".into(),
        items: vec![(0, Settle::Ack)],
        now_ms: 20,
        return_held: true,
    })
    .unwrap();
    let g = &s.groups["g"];
    assert_eq!(g.settled_below, 1);
    for o in [1, 2] {
        assert_eq!(g.records[&o].state, RecState::Available { not_before: 0 });
        assert_eq!(g.records[&o].deliveries, 0, "a clean close does not count");
    }
    assert_eq!(
        g.records[&3].holder(20),
        Some("b"),
        "another's records stay"
    );
}
