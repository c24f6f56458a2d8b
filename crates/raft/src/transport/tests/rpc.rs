//! A real tonic server on 127.0.0.1:0 hosting fake groups, and the real client against it.

use super::harness::*;
use super::*;
use crate::transport::convert::ToWire;
use futures_util::future::join_all;
use futures_util::stream::{self, StreamExt};
use openraft::RaftNetworkFactory;
use openraft::error::{RPCError, ReplicationClosed};
use openraft::network::RaftNetworkV2;
use openraft::raft::{AppendEntriesResponse, StreamAppendError, TransferLeaderRequest};
use std::future::pending;
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_proto::internal::v1 as pb;
use strata_proto::internal::v1::raft_peer_client::RaftPeerClient;
use tokio::net::TcpListener;
use tokio::sync::watch;

#[tokio::test]
async fn vote_and_pre_vote_reach_the_right_handler() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    let group = server.host(4, FakeGroup::default());
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;

    let granted = c.vote(vote_request(), option()).await.expect("vote");
    assert!(granted.vote_granted && granted.vote == vote(5, 1, false));
    let refused = c
        .pre_vote(vote_request(), option())
        .await
        .expect("pre-vote");
    assert!(!refused.vote_granted && refused.vote == vote(9, 9, true));

    let seen = group.seen();
    assert!(
        matches!(&seen[..], [Seen::Vote(a), Seen::PreVote(b)] if *a == vote_request() && *b == vote_request())
    );
    assert_eq!(server.stats.counts().votes, 2);
    drop((c, peers));
    server.stop().await;
}

#[tokio::test]
async fn append_with_entries_delivers_identical_payloads() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    let group = server.host(4, FakeGroup::default());
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;

    let batch: &'static [u8] = b"\x00\x01 a kafka record batch \xff";
    let entries = vec![
        entry(3, 5, EntryKind::Data, batch),
        entry(3, 6, EntryKind::Membership, b""),
        entry(3, 7, EntryKind::Control, b"retain"),
    ];
    let answer = c.append_entries(
        append_request(Some(log_id(3, 4)), entries.clone()),
        option(),
    );
    assert_eq!(
        answer.await.expect("append"),
        AppendEntriesResponse::Success
    );

    match &group.seen()[..] {
        [Seen::Append(got)] => {
            assert_eq!(got.entries, entries);
            assert_eq!(&payload_of(&got.entries[0])[..], batch);
            assert_eq!(got.prev_log_id, Some(log_id(3, 4)));
        }
        other => panic!("expected one append, got {other:?}"),
    }
    assert_eq!(server.stats.counts().appends, 1);
    drop((c, peers));
    server.stop().await;
}

/// openraft can close a replication stream's input before its first request (replication
/// stopping: a shutdown, a step-down). The transport used to chain the (absent) first request
/// in front of the ended input and poll it again, which openraft's input stream answers with a
/// panic ("Unfold must not be polled after it returned `Poll::Ready(None)`", once per group at
/// every shutdown). It now answers an empty stream.
#[tokio::test]
async fn an_append_stream_whose_input_ended_at_once_is_empty() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    let _group = server.host(4, FakeGroup::default());
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;
    // Like openraft's input: ended at once, and panics if polled after it ended.
    let ended = Box::pin(stream::unfold((), |()| async { None::<(Req, ())> }));
    let answers = c.stream_append(ended, option()).await.expect("open");
    let answers: Vec<_> = answers.collect().await;
    assert!(answers.is_empty(), "{answers:?}");
    drop((c, peers));
    server.stop().await;
}

#[tokio::test]
async fn append_stream_pipelines_and_stops_at_the_first_conflict() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    let group = server.host(4, FakeGroup::default());
    {
        let mut answers = group.answers.lock().expect("answers");
        answers.extend([
            AppendEntriesResponse::Success,
            AppendEntriesResponse::Success,
        ]);
        answers.push_back(AppendEntriesResponse::Conflict);
    }
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;

    let requests: Vec<Req> = (0..5)
        .map(|i| {
            append_request(
                Some(log_id(3, 10 + i)),
                vec![entry(3, 11 + i, EntryKind::Data, b"x")],
            )
        })
        .collect();
    let answers = c
        .stream_append(stream::iter(requests), option())
        .await
        .expect("open");
    let answers: Vec<_> = answers.collect().await;
    let expected = vec![
        Ok(Ok(Some(log_id(3, 11)))),
        Ok(Ok(Some(log_id(3, 12)))),
        Ok(Err(StreamAppendError::Conflict(log_id(3, 12)))),
    ];
    assert_eq!(answers, expected);
    let appended: Vec<u64> = group
        .seen()
        .iter()
        .filter_map(|s| match s {
            Seen::Append(r) => r.entries.first().map(|e| e.log_id.index),
            _ => None,
        })
        .collect();
    assert_eq!(&appended[..3], &[11, 12, 13], "in order, on one stream");
    let counts = server.stats.counts();
    assert_eq!((counts.append_streams, counts.appends), (1, 0));
    drop((c, peers));
    server.stop().await;
}

#[tokio::test]
async fn heartbeats_of_many_groups_are_coalesced_per_peer() {
    const GROUPS: u64 = 64;
    let config = test_config();
    let server = TestServer::start(&config).await;
    let groups: Vec<_> = (0..GROUPS)
        .map(|g| server.host(g, FakeGroup::default()))
        .collect();
    let peers = peers(CLIENT, &config);
    let mut clients = Vec::new();
    for g in 0..GROUPS {
        let mut network = PeerNetwork::new(GroupId::new(g), peers.clone());
        clients.push(
            network
                .new_heartbeat_client(SERVER.node_id, &server.node())
                .await,
        );
    }
    // Exactly what openraft's heartbeat worker does: a one-request stream per heartbeat.
    let beats = clients.iter_mut().enumerate().map(|(g, c)| async move {
        let one = stream::iter([append_request(Some(log_id(3, g as u64)), Vec::new())]);
        let answers = c.stream_append(one, option()).await.expect("open");
        answers.collect::<Vec<_>>().await
    });
    for (g, answers) in join_all(beats).await.into_iter().enumerate() {
        assert_eq!(
            answers,
            vec![Ok(Ok(Some(log_id(3, g as u64))))],
            "group {g}"
        );
    }
    let counts = server.stats.counts();
    println!(
        "{GROUPS} heartbeats in {} batches",
        counts.heartbeat_batches
    );
    assert_eq!(counts.heartbeats, GROUPS);
    assert!(
        counts.heartbeat_batches >= GROUPS / 16,
        "at most 16 per batch"
    );
    assert!(counts.heartbeat_batches < GROUPS, "coalesced: {counts:?}");
    assert_eq!((counts.appends, counts.append_streams), (0, 0));
    for group in &groups {
        assert!(matches!(&group.seen()[..], [Seen::Append(r)] if r.entries.is_empty()));
    }
    drop((clients, peers));
    server.stop().await;
}

#[tokio::test]
async fn snapshot_and_transfer_leader_round_trip() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    let group = server.host(4, FakeGroup::default());
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;

    let meta = SnapshotMeta {
        last_log_id: Some(log_id(3, 99)),
        last_membership: crate::types::StoredMembership::new(Some(log_id(1, 0)), membership()),
    };
    let snapshot = Snapshot {
        meta: meta.clone(),
        snapshot: Bytes::from_static(b"state"),
    };
    let never = pending::<ReplicationClosed>();
    let answer = c
        .full_snapshot(vote(3, 1, true), snapshot, never, option())
        .await;
    assert_eq!(answer.expect("snapshot").vote, vote(3, 1, true));
    let transfer = TransferLeaderRequest::new(vote(3, 1, true), 2, Some(log_id(3, 99)));
    assert_eq!(
        c.transfer_leader(transfer.clone(), option())
            .await
            .expect("transfer"),
        Ok(())
    );

    match &group.seen()[..] {
        [Seen::Snapshot(v, s), Seen::Transfer(t)] => {
            assert_eq!(
                (*v, &s.meta, &s.snapshot[..]),
                (vote(3, 1, true), &meta, &b"state"[..])
            );
            assert_eq!(*t, transfer);
        }
        other => panic!("unexpected calls {other:?}"),
    }
    drop((c, peers));
    server.stop().await;
}

#[tokio::test]
async fn identity_mismatch_is_refused() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    let group = server.host(4, FakeGroup::default());

    // Another cluster, and the right cluster naming the wrong node at this address.
    let stranger = peers(
        PeerIdentity {
            cluster_id: 8,
            ..CLIENT
        },
        &config,
    );
    let mut c = client(&stranger, 4, SERVER.node_id, &server.node()).await;
    assert_unreachable(c.vote(vote_request(), option()).await, "identity mismatch");
    let ours = peers(CLIENT, &config);
    let mut wrong_node = client(&ours, 4, 5, &server.node()).await;
    assert_unreachable(
        wrong_node.vote(vote_request(), option()).await,
        "identity mismatch",
    );

    // A known, wrong incarnation is refused; the right one (or unknown, 0) is accepted.
    ours.set_incarnation(SERVER.node_id, SERVER.incarnation + 1);
    let mut c2 = client(&ours, 4, SERVER.node_id, &server.node()).await;
    assert_unreachable(c2.vote(vote_request(), option()).await, "incarnation 4");
    ours.set_incarnation(SERVER.node_id, SERVER.incarnation);
    assert!(c2.vote(vote_request(), option()).await.is_ok());

    // On the wire: FAILED_PRECONDITION naming both identities.
    let mut raw = RaftPeerClient::connect(format!("http://{}", server.addr))
        .await
        .expect("raw");
    let request = pb::VoteRequest {
        header: Some(
            PeerIdentity {
                cluster_id: 9,
                ..CLIENT
            }
            .header_to(2, 3),
        ),
        group_id: 4,
        vote: Some(pb::Vote::default()),
        ..pb::VoteRequest::default()
    };
    let status = raw.vote(request).await.expect_err("mismatch");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(status.message().contains("cluster 9") && status.message().contains("cluster 7"));

    assert_eq!(
        group.seen().len(),
        1,
        "only the matching vote reached the group"
    );
    assert_eq!(server.stats.counts().rejected, 4);
    drop((c, wrong_node, c2, stranger, ours, raw));
    server.stop().await;
}

#[tokio::test]
async fn unknown_group_is_not_found() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    server.host(4, FakeGroup::default());
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 99, SERVER.node_id, &server.node()).await;
    assert_unreachable(
        c.vote(vote_request(), option()).await,
        "group 99 is not hosted",
    );
    let heartbeat = c
        .append_entries(append_request(None, Vec::new()), option())
        .await;
    assert_unreachable(heartbeat, "NotFound");

    let mut raw = RaftPeerClient::connect(format!("http://{}", server.addr))
        .await
        .expect("raw");
    let request = pb::VoteRequest {
        header: Some(CLIENT.header_to(2, 3)),
        group_id: 99,
        vote: Some(pb::Vote::default()),
        ..pb::VoteRequest::default()
    };
    assert_eq!(
        raw.vote(request).await.expect_err("unknown").code(),
        tonic::Code::NotFound
    );
    drop((c, peers, raw));
    server.stop().await;
}

#[tokio::test]
async fn oversized_messages_are_refused_with_the_limit_named() {
    let config = TransportConfig {
        message_bytes_max: TransportConfig::MESSAGE_BYTES_MIN,
        ..test_config()
    };
    let server = TestServer::start(&config).await;
    let group = server.host(4, FakeGroup::default());
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;
    let big: &'static [u8] = Box::leak(vec![7u8; 2 * 1024 * 1024].into_boxed_slice());
    let request = append_request(None, vec![entry(3, 0, EntryKind::Data, big)]);

    // The client refuses to send it, naming the limit.
    assert_unreachable(
        c.append_entries(request.clone(), option()).await,
        "message_bytes_max",
    );
    // The server refuses to read it from a client with a larger limit.
    let mut raw = RaftPeerClient::connect(format!("http://{}", server.addr))
        .await
        .expect("raw")
        .max_encoding_message_size(64 * 1024 * 1024);
    let message = pb::AppendRequest {
        header: Some(CLIENT.header_to(2, 3)),
        group_id: 4,
        ..request.to_wire()
    };
    let status = raw.append(message).await.expect_err("too large");
    assert_eq!(status.code(), tonic::Code::OutOfRange, "{status:?}");
    assert!(
        status.message().contains("too large"),
        "{}",
        status.message()
    );
    assert!(group.seen().is_empty());
    drop((c, peers, raw));
    server.stop().await;
}

#[tokio::test]
async fn link_control_cuts_drops_and_delays() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    let group = server.host(4, FakeGroup::default());
    let links = Arc::new(LinkControl::new(1));
    let peers = Peers::with_link_control(CLIENT, config.clone(), links.clone()).expect("config");
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;

    links.cut(CLIENT.node_id, SERVER.node_id);
    assert_unreachable(c.vote(vote_request(), option()).await, "link cut");
    let heartbeat = c
        .append_entries(append_request(None, Vec::new()), option())
        .await;
    assert_unreachable(heartbeat, "link cut");
    let one = stream::iter([append_request(
        None,
        vec![entry(3, 0, EntryKind::Blank, b"")],
    )]);
    assert_unreachable(c.stream_append(one, option()).await.map(|_| ()), "link cut");
    assert_eq!(
        server.stats.counts(),
        ServerCounts::default(),
        "nothing was sent"
    );

    let lossy = LinkFault {
        drop_probability: 1.0,
        ..LinkFault::default()
    };
    links.set(CLIENT.node_id, SERVER.node_id, lossy);
    assert!(matches!(
        c.vote(vote_request(), option()).await,
        Err(RPCError::Timeout(_))
    ));

    let slow = LinkFault {
        delay_ms: 100,
        ..LinkFault::default()
    };
    links.set(CLIENT.node_id, SERVER.node_id, slow);
    let started = Instant::now();
    assert!(c.vote(vote_request(), option()).await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(100));

    links.heal_all();
    assert!(c.vote(vote_request(), option()).await.is_ok());
    assert_eq!(group.seen().len(), 2, "the delayed vote and the healed one");
    drop((c, peers));
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_follower_times_out_unary_and_streamed_appends() {
    let config = TransportConfig {
        request_timeout_ms: 300,
        ..test_config()
    };
    let server = TestServer::start(&config).await;
    let (release, stalled) = watch::channel(true);
    server.host(4, FakeGroup::stalled_while(stalled));
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;
    let request = append_request(None, vec![entry(3, 0, EntryKind::Blank, b"")]);

    let unary = c.append_entries(request.clone(), option()).await;
    assert!(matches!(unary, Err(RPCError::Timeout(_))), "{unary:?}");
    let answers = c
        .stream_append(stream::iter([request]), option())
        .await
        .expect("open");
    let answers: Vec<_> = answers.collect().await;
    assert!(
        matches!(&answers[..], [Err(RPCError::Timeout(_))]),
        "{answers:?}"
    );

    release.send_replace(false);
    drop((c, peers));
    server.stop().await;
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let config = test_config();
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &BasicNode::new(addr)).await;
    assert_unreachable(c.vote(vote_request(), option()).await, "Unavailable");
    let bad = client(&peers, 4, 3, &BasicNode::new("not an address")).await;
    let mut bad = bad;
    assert_unreachable(bad.vote(vote_request(), option()).await, "bad address");
    assert_eq!(peers.len(), 1, "channels are created lazily, per peer");
}

#[tokio::test]
async fn shutdown_ends_open_append_streams() {
    let config = test_config();
    let server = TestServer::start(&config).await;
    server.host(4, FakeGroup::default());
    let peers = peers(CLIENT, &config);
    let mut c = client(&peers, 4, SERVER.node_id, &server.node()).await;

    // A leader with nothing more to send keeps its stream open.
    let first = append_request(None, vec![entry(3, 0, EntryKind::Blank, b"")]);
    let input = stream::iter([first]).chain(stream::pending());
    let mut answers = c.stream_append(input, option()).await.expect("open");
    assert_eq!(answers.next().await, Some(Ok(Ok(Some(log_id(3, 0))))));

    let stopped = tokio::spawn(server.stop());
    let last = answers.next().await.expect("a last answer");
    assert_unreachable(last, "node 2 is shutting down");
    assert!(answers.next().await.is_none());
    stopped.await.expect("server stopped");
    drop(answers);
    drop((c, peers));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_messages_reach_the_peer_ticker() {
    use crate::liveness::{Liveness, LivenessConfig, LivenessMessage, LivenessSender};
    let config = test_config();
    let me = PeerIdentity {
        cluster_id: 7,
        node_id: 1,
        incarnation: 1,
    };
    let them = PeerIdentity {
        cluster_id: 7,
        node_id: 2,
        incarnation: 1,
    };
    let liveness = Liveness::new(2, LivenessConfig::default());
    let server = TestServer::start_with(them, &config, Some(liveness.clone())).await;
    let peers = Peers::new(me, config.clone()).expect("peers");
    assert!(liveness.heard_from(1).is_none());
    let msg = LivenessMessage {
        from: 1,
        sleeping: vec![(GroupId::new(5), 3)],
    };
    let addr = server.addr.to_string();
    peers
        .send(2, &addr, msg.clone())
        .await
        .expect("liveness delivered");
    assert!(liveness.heard_from(1).is_some());
    // A message for another cluster is refused.
    let stranger = Peers::new(
        PeerIdentity {
            cluster_id: 8,
            ..me
        },
        config.clone(),
    )
    .expect("peers");
    assert!(stranger.send(2, &addr, msg).await.is_err());
    server.stop().await;
}
