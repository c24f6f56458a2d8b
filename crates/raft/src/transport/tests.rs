//! Transport tests: conversions, config, registry and link seam in `unit`; a real tonic server
//! on 127.0.0.1:0 with fake groups and the real client in `rpc`.

mod harness;
mod raft;
mod rpc;
mod unit;

use super::*;
use crate::codec;
use crate::numbers::GroupId;
use crate::types::{Entry, LogId, Membership, TypeConfig, Vote};
use bytes::Bytes;
use openraft::BasicNode;
use openraft::vote::leader_id_std::CommittedLeaderId;
use std::collections::{BTreeMap, BTreeSet};
use strata_log::EntryKind;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term), index)
}

fn entry(term: u64, index: u64, kind: EntryKind, payload: &'static [u8]) -> Entry {
    let payload = match kind {
        EntryKind::Membership => codec::encode_membership(&membership()),
        // A control frame starts with its kind: 0 is a higher layer's entry.
        EntryKind::Control => Bytes::from([&[0u8][..], payload].concat()),
        _ => Bytes::from_static(payload),
    };
    match codec::decode_entry(term, crate::RaftIndex::new(index), kind, payload) {
        Ok(entry) => entry,
        Err(e) => panic!("test entry: {e}"),
    }
}

fn membership() -> Membership {
    let voters: BTreeSet<u64> = [1, 2, 3].into_iter().collect();
    let nodes: BTreeMap<u64, BasicNode> = (1..=4)
        .map(|id| (id, BasicNode::new(format!("127.0.0.1:{}", 9000 + id))))
        .collect();
    match Membership::new(vec![voters], nodes) {
        Ok(m) => m,
        Err(e) => panic!("test membership: {e}"),
    }
}

/// The payload bytes of an entry, as its frame would store them.
fn payload_of(entry: &Entry) -> Bytes {
    codec::encode_payload(&entry.payload).1
}

fn vote(term: u64, node: u64, committed: bool) -> Vote {
    if committed {
        Vote::new_committed(term, node)
    } else {
        Vote::new(term, node)
    }
}

type Req = openraft::raft::AppendEntriesRequest<TypeConfig>;

fn append_request(prev: Option<LogId>, entries: Vec<Entry>) -> Req {
    Req {
        vote: vote(3, 1, true),
        prev_log_id: prev,
        entries,
        leader_commit: Some(log_id(2, 4)),
    }
}
