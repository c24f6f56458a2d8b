//! Conversions (every type round-trips; malformed wire input is refused), config validation,
//! the group registry and the link seam.

use super::*;
use crate::transport::convert::{FromWire, ToWire};
use crate::transport::link::Verdict;
use openraft::raft::{
    AppendEntriesResponse, SnapshotResponse, StreamAppendError, StreamAppendResult,
    TransferLeaderError, TransferLeaderRequest, TransferLeaderResponse, VoteRequest, VoteResponse,
};
use std::sync::Arc;
use std::time::Duration;
use strata_proto::internal::v1 as pb;

fn round_trip<T, W>(value: T) -> T
where
    T: ToWire<W> + FromWire<W>,
{
    match T::from_wire(value.to_wire()) {
        Ok(back) => back,
        Err(e) => panic!("round trip failed: {e}"),
    }
}

#[test]
fn log_ids_and_votes_round_trip() {
    for id in [log_id(0, 0), log_id(7, 42), log_id(u64::MAX, u64::MAX)] {
        assert_eq!(round_trip::<_, pb::LogId>(id), id);
        assert_eq!(round_trip::<_, Option<pb::LogId>>(Some(id)), Some(id));
    }
    assert_eq!(round_trip::<Option<LogId>, Option<pb::LogId>>(None), None);
    for v in [vote(1, 2, false), vote(9, 3, true), vote(0, 0, false)] {
        assert_eq!(round_trip::<_, pb::Vote>(v), v);
    }
}

#[test]
fn entries_of_every_kind_round_trip_and_data_is_not_copied() {
    for (index, kind) in [
        EntryKind::Data,
        EntryKind::Blank,
        EntryKind::Membership,
        EntryKind::Control,
    ]
    .into_iter()
    .enumerate()
    {
        let original = entry(4, index as u64, kind, b"batch bytes");
        let back = round_trip::<_, pb::Entry>(original.clone());
        assert_eq!(back, original);
        if kind == EntryKind::Data {
            let (a, b) = (payload_of(&original), payload_of(&back));
            assert_eq!(
                a.as_ptr(),
                b.as_ptr(),
                "data payload must be shared, not copied"
            );
        }
    }
}

#[test]
fn requests_and_responses_round_trip() {
    let vote_request = VoteRequest {
        vote: vote(5, 2, false),
        last_log_id: Some(log_id(4, 10)),
        leadership_transfer: true,
    };
    assert_eq!(
        round_trip::<_, pb::VoteRequest>(vote_request.clone()),
        vote_request
    );
    let vote_response = VoteResponse::new(vote(5, 2, false), Some(log_id(4, 9)), true);
    assert_eq!(
        round_trip::<_, pb::VoteResponse>(vote_response.clone()),
        vote_response
    );

    let entries = vec![
        entry(3, 5, EntryKind::Data, b"a"),
        entry(3, 6, EntryKind::Blank, b""),
    ];
    let append = append_request(Some(log_id(2, 4)), entries);
    let back = round_trip::<_, pb::AppendRequest>(append.clone());
    assert_eq!(
        (
            back.vote,
            back.prev_log_id,
            back.leader_commit,
            back.entries
        ),
        (
            append.vote,
            append.prev_log_id,
            append.leader_commit,
            append.entries
        )
    );
    let heartbeat = append_request(None, Vec::new());
    let back = round_trip::<_, pb::GroupHeartbeat>(heartbeat.clone());
    assert_eq!(
        (
            back.vote,
            back.prev_log_id,
            back.leader_commit,
            back.entries.len()
        ),
        (
            heartbeat.vote,
            heartbeat.prev_log_id,
            heartbeat.leader_commit,
            0
        )
    );

    for resp in [
        AppendEntriesResponse::Success,
        AppendEntriesResponse::PartialSuccess(Some(log_id(3, 5))),
        AppendEntriesResponse::PartialSuccess(None),
        AppendEntriesResponse::Conflict,
        AppendEntriesResponse::HigherVote(vote(8, 3, true)),
    ] {
        assert_eq!(round_trip::<_, pb::AppendResponse>(resp.clone()), resp);
    }
    let results: [StreamAppendResult<TypeConfig>; 4] = [
        Ok(Some(log_id(3, 6))),
        Ok(None),
        Err(StreamAppendError::Conflict(log_id(2, 4))),
        Err(StreamAppendError::HigherVote(vote(8, 3, false))),
    ];
    for result in results {
        assert_eq!(
            round_trip::<_, pb::AppendStreamResponse>(result.clone()),
            result
        );
    }
}

#[test]
fn snapshots_and_transfers_round_trip() {
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(3, 99)),
        last_membership: crate::types::StoredMembership::new(Some(log_id(1, 0)), membership()),
    };
    let snapshot = Snapshot {
        meta: meta.clone(),
        snapshot: Bytes::from_static(b"state at L"),
    };
    let (v, back) = round_trip::<_, pb::InstallSnapshotRequest>((vote(3, 1, true), snapshot));
    assert_eq!(
        (v, back.meta, &back.snapshot[..]),
        (vote(3, 1, true), meta, &b"state at L"[..])
    );
    let resp = SnapshotResponse::new(vote(4, 2, false));
    assert_eq!(
        round_trip::<_, pb::InstallSnapshotResponse>(resp.clone()),
        resp
    );

    let transfer = TransferLeaderRequest::new(vote(3, 1, true), 2, Some(log_id(3, 7)));
    assert_eq!(
        round_trip::<_, pb::TransferLeaderRequest>(transfer.clone()),
        transfer
    );
    let answers: [TransferLeaderResponse<TypeConfig>; 3] = [
        Ok(()),
        Err(TransferLeaderError::VoteChanged {
            expected: vote(3, 1, true),
            actual: vote(4, 2, false),
        }),
        Err(TransferLeaderError::LogNotFlushed {
            expected: Some(log_id(3, 7)),
            actual: None,
        }),
    ];
    for answer in answers {
        assert_eq!(
            round_trip::<_, pb::TransferLeaderResponse>(answer.clone()),
            answer
        );
    }
}

#[test]
fn malformed_wire_messages_are_refused_not_unwrapped() {
    let no_vote = pb::AppendRequest::default();
    let e = match Req::from_wire(no_vote) {
        Err(e) => e,
        Ok(_) => panic!("an append without a vote must be refused"),
    };
    assert!(e.to_string().contains("AppendRequest.vote"), "{e}");
    let status = tonic::Status::from(e);
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    for kind in [0, 9, -1] {
        let bad = pb::Entry {
            term: 1,
            index: 1,
            kind,
            payload: Bytes::new(),
        };
        assert!(Entry::from_wire(bad).is_err(), "kind {kind}");
    }
    let bad_membership = pb::Entry {
        term: 1,
        index: 1,
        kind: pb::EntryKind::Membership.into(),
        payload: Bytes::from_static(b"\x01\xff\xff"),
    };
    assert!(Entry::from_wire(bad_membership).is_err());
    assert!(AppendEntriesResponse::<TypeConfig>::from_wire(pb::AppendResponse::default()).is_err());
    assert!(VoteResponse::<TypeConfig>::from_wire(pb::VoteResponse::default()).is_err());
    assert!(
        StreamAppendResult::<TypeConfig>::from_wire(pb::AppendStreamResponse::default()).is_err()
    );
    assert!(<(Vote, Snapshot)>::from_wire(pb::InstallSnapshotRequest::default()).is_err());
}

#[test]
fn config_validation_names_the_field() {
    assert!(TransportConfig::default().validate().is_ok());
    type Breaks = fn(&mut TransportConfig);
    let cases: [(&str, Breaks); 7] = [
        ("message_bytes_max", |c| c.message_bytes_max = 1024),
        ("connect_timeout_ms", |c| c.connect_timeout_ms = 0),
        ("request_timeout_ms", |c| c.request_timeout_ms = 0),
        ("heartbeat_batch_ms", |c| c.heartbeat_batch_ms = 1_000),
        ("heartbeat_batch_groups_max", |c| {
            c.heartbeat_batch_groups_max = 0
        }),
        ("heartbeat_batches_inflight_max", |c| {
            c.heartbeat_batches_inflight_max = 0
        }),
        ("streams_per_connection_max", |c| {
            c.streams_per_connection_max = 0
        }),
    ];
    for (field, breaks) in cases {
        let mut config = TransportConfig::default();
        breaks(&mut config);
        match config.validate() {
            Err(TransportError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn identity_check_accepts_only_this_node() {
    let me = PeerIdentity {
        cluster_id: 7,
        node_id: 2,
        incarnation: 3,
    };
    let from = PeerIdentity {
        cluster_id: 7,
        node_id: 1,
        incarnation: 1,
    };
    assert!(me.check(Some(&from.header_to(2, 3))).is_ok());
    assert!(
        me.check(Some(&from.header_to(2, 0))).is_ok(),
        "0 = incarnation unknown"
    );
    for header in [from.header_to(2, 4), from.header_to(5, 3)] {
        let status = me.check(Some(&header)).expect_err("mismatch");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    }
    let other_cluster = PeerIdentity {
        cluster_id: 8,
        ..from
    };
    let status = me
        .check(Some(&other_cluster.header_to(2, 3)))
        .expect_err("cluster");
    assert!(
        status.message().contains("cluster 8"),
        "{}",
        status.message()
    );
    assert_eq!(
        me.check(None).expect_err("no header").code(),
        tonic::Code::InvalidArgument
    );
}

#[test]
fn registry_adds_replaces_and_removes() {
    let registry = GroupRegistry::new();
    assert!(registry.is_empty());
    let a: Arc<dyn GroupHandle> = Arc::new(super::harness::FakeGroup::default());
    let b: Arc<dyn GroupHandle> = Arc::new(super::harness::FakeGroup::default());
    let (one, two) = (GroupId::new(1), GroupId::new(2));
    assert!(registry.insert(one, a.clone()).is_none());
    assert!(
        registry
            .insert(one, b.clone())
            .is_some_and(|old| Arc::ptr_eq(&old, &a))
    );
    assert!(registry.get(one).is_some_and(|g| Arc::ptr_eq(&g, &b)));
    assert!(registry.get(two).is_none());
    assert_eq!(registry.len(), 1);
    assert!(registry.remove(one).is_some());
    assert!(registry.get(one).is_none());
}

#[test]
fn link_control_cuts_drops_and_delays_per_directed_link() {
    let links = LinkControl::new(42);
    assert_eq!(links.verdict(1, 2), Verdict::Deliver(Duration::ZERO));
    links.cut(1, 2);
    assert_eq!(links.verdict(1, 2), Verdict::Cut);
    assert_eq!(
        links.verdict(2, 1),
        Verdict::Deliver(Duration::ZERO),
        "links are directed"
    );
    links.set(
        2,
        1,
        LinkFault {
            drop_probability: 1.0,
            ..LinkFault::default()
        },
    );
    assert_eq!(links.verdict(2, 1), Verdict::Drop);
    links.set(
        1,
        3,
        LinkFault {
            delay_ms: 10,
            jitter_ms: 5,
            ..LinkFault::default()
        },
    );
    for _ in 0..20 {
        match links.verdict(1, 3) {
            Verdict::Deliver(d) => assert!((10..=15).contains(&d.as_millis()), "{d:?}"),
            other => panic!("expected a delay, got {other:?}"),
        }
    }
    links.heal(1, 2);
    assert_eq!(links.verdict(1, 2), Verdict::Deliver(Duration::ZERO));
    links.heal_all();
    assert_eq!(links.get(2, 1), LinkFault::default());

    // The same seed gives the same draws.
    let draws = |seed| {
        let links = LinkControl::new(seed);
        let half = LinkFault {
            drop_probability: 0.5,
            ..LinkFault::default()
        };
        links.set(1, 2, half);
        (0..64)
            .map(|_| links.verdict(1, 2) == Verdict::Drop)
            .collect::<Vec<_>>()
    };
    println!("link control seed: 7");
    assert_eq!(draws(7), draws(7));
}
