//! Conversions between openraft entries and strata-log frames, and the small binary encodings
//! of membership and votes.
//!
//! Raft indexes start at 0 (openraft writes the initial membership at index 0) while the log
//! reserves index 0 so that a zeroed frame is never mistaken for an entry: the log index is the
//! Raft index + 1. This module is the only place that converts between the two types that carry
//! them, [`RaftIndex`] and [`LogIndex`] ([`log_index`], [`raft_index`], and the log-id
//! conversions built on them).

use crate::numbers::RaftIndex;
use crate::types::{
    BatchCommand, Command, Entry, LogId, Membership, NodeId, Payload, RetainCommand,
    StoredMembership, Vote,
};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use openraft::BasicNode;
use std::collections::{BTreeMap, BTreeSet};
use strata_log::{EntryKind, LogIndex};

/// Why bytes from disk or a peer are not a valid entry, membership or vote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {what}: {reason}")]
pub struct DecodeError {
    /// What was being decoded.
    pub what: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

fn bad(what: &'static str, reason: &'static str) -> DecodeError {
    DecodeError { what, reason }
}

/// The log index of a Raft index.
pub fn log_index(raft_index: RaftIndex) -> LogIndex {
    LogIndex::new(raft_index.get() + 1)
}

/// The Raft index of a log index (log indexes start at 1).
pub fn raft_index(log_index: LogIndex) -> RaftIndex {
    debug_assert!(log_index.get() >= 1, "log index 0 is never stored");
    RaftIndex::new(log_index.get() - 1)
}

/// The log index of the entry an openraft log id names.
pub fn log_index_of(id: &LogId) -> LogIndex {
    log_index(RaftIndex::new(id.index))
}

/// A strata-log id to an openraft log id.
pub fn to_raft_log_id(id: strata_log::LogId) -> LogId {
    LogId::new(
        openraft::vote::leader_id_std::CommittedLeaderId::new(id.term),
        raft_index(id.index).get(),
    )
}

/// An openraft log id to a strata-log id.
pub fn to_store_log_id(id: &LogId) -> strata_log::LogId {
    strata_log::LogId {
        term: id.committed_leader_id().term,
        index: log_index_of(id),
    }
}

/// The frame kind and payload bytes that store an entry's payload.
pub fn encode_payload(payload: &Payload) -> (EntryKind, Bytes) {
    match payload {
        Payload::Blank => (EntryKind::Blank, Bytes::new()),
        Payload::Normal(Command::Batch(b)) => (EntryKind::Data, b.bytes.clone()),
        Payload::Normal(Command::Control(b)) => {
            let mut out = BytesMut::with_capacity(1 + b.len());
            out.put_u8(CONTROL_HOOK);
            out.put_slice(b);
            (EntryKind::Control, out.freeze())
        }
        Payload::Normal(Command::Retain(r)) => (EntryKind::Control, encode_retain(r)),
        Payload::Normal(Command::Clock(ms)) => {
            let mut out = BytesMut::with_capacity(9);
            out.put_u8(CONTROL_CLOCK);
            out.put_i64_le(*ms);
            (EntryKind::Control, out.freeze())
        }
        Payload::Membership(m) => (EntryKind::Membership, encode_membership(m)),
    }
}

/// Rebuilds an entry from what a frame (or a peer message) holds.
pub fn decode_entry(
    term: u64,
    raft_index: RaftIndex,
    kind: EntryKind,
    payload: Bytes,
) -> Result<Entry, DecodeError> {
    let payload = match kind {
        EntryKind::Blank => Payload::Blank,
        EntryKind::Data => Payload::Normal(Command::Batch(BatchCommand::new(payload))),
        EntryKind::Control => Payload::Normal(decode_control(payload)?),
        EntryKind::Membership => Payload::Membership(decode_membership(payload)?),
    };
    Ok(Entry {
        log_id: LogId::new(
            openraft::vote::leader_id_std::CommittedLeaderId::new(term),
            raft_index.get(),
        ),
        payload,
    })
}

/// First byte of a control frame's payload: a higher layer's control entry.
const CONTROL_HOOK: u8 = 0;
/// First byte of a control frame's payload: a retention entry.
const CONTROL_RETAIN: u8 = 1;
/// First byte of a control frame's payload: the leader's clock (i64 milliseconds).
const CONTROL_CLOCK: u8 = 2;

fn encode_retain(r: &RetainCommand) -> Bytes {
    let membership = encode_stored_membership(&r.membership);
    let mut b = BytesMut::with_capacity(32 + membership.len() + r.state.len());
    b.put_u8(CONTROL_RETAIN);
    b.put_u64_le(r.upto.committed_leader_id().term);
    b.put_u64_le(r.upto.index);
    b.put_u32_le(membership.len() as u32);
    b.put_slice(&membership);
    b.put_u32_le(r.state.len() as u32);
    b.put_slice(&r.state);
    b.freeze()
}

fn decode_control(mut b: Bytes) -> Result<Command, DecodeError> {
    const W: &str = "control entry";
    if !b.has_remaining() {
        return Err(bad(W, "empty"));
    }
    match b.get_u8() {
        CONTROL_HOOK => Ok(Command::Control(b)),
        CONTROL_CLOCK => {
            if b.remaining() != 8 {
                return Err(bad(W, "clock entry is not 8 bytes"));
            }
            Ok(Command::Clock(b.get_i64_le()))
        }
        CONTROL_RETAIN => {
            let term = take_u64(&mut b, W)?;
            let index = take_u64(&mut b, W)?;
            let n = take_u32(&mut b, W)? as usize;
            if n > b.remaining() {
                return Err(bad(W, "membership length exceeds the bytes"));
            }
            let membership = decode_stored_membership(b.split_to(n))?;
            let n = take_u32(&mut b, W)? as usize;
            if n != b.remaining() {
                return Err(bad(W, "state length does not match the bytes"));
            }
            Ok(Command::Retain(RetainCommand {
                upto: LogId::new(
                    openraft::vote::leader_id_std::CommittedLeaderId::new(term),
                    index,
                ),
                membership,
                state: b,
            }))
        }
        _ => Err(bad(W, "unknown control kind")),
    }
}

/// Encodes a stored membership: its log id (if any), then the membership.
pub fn encode_stored_membership(m: &StoredMembership) -> Bytes {
    let mut b = BytesMut::new();
    match m.log_id() {
        Some(id) => {
            b.put_u8(1);
            b.put_u64_le(id.committed_leader_id().term);
            b.put_u64_le(id.index);
        }
        None => b.put_u8(0),
    }
    b.put_slice(&encode_membership(m.membership()));
    b.freeze()
}

/// Decodes [`encode_stored_membership`]'s bytes.
pub fn decode_stored_membership(mut b: Bytes) -> Result<StoredMembership, DecodeError> {
    const W: &str = "stored membership";
    if !b.has_remaining() {
        return Err(bad(W, "empty"));
    }
    let log_id = match b.get_u8() {
        0 => None,
        1 => {
            let term = take_u64(&mut b, W)?;
            let index = take_u64(&mut b, W)?;
            Some(LogId::new(
                openraft::vote::leader_id_std::CommittedLeaderId::new(term),
                index,
            ))
        }
        _ => return Err(bad(W, "bad log id flag")),
    };
    Ok(StoredMembership::new(log_id, decode_membership(b)?))
}

const MEMBERSHIP_VERSION: u8 = 1;

/// Encodes a membership: version, the joint configs (each a set of voter ids), then every node
/// with its address.
pub fn encode_membership(m: &Membership) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(MEMBERSHIP_VERSION);
    let configs = m.get_joint_config();
    b.put_u32_le(configs.len() as u32);
    for c in configs {
        b.put_u32_le(c.len() as u32);
        for id in c {
            b.put_u64_le(*id);
        }
    }
    let nodes: Vec<(&NodeId, &BasicNode)> = m.nodes().collect();
    b.put_u32_le(nodes.len() as u32);
    for (id, node) in nodes {
        b.put_u64_le(*id);
        b.put_u32_le(node.addr.len() as u32);
        b.put_slice(node.addr.as_bytes());
    }
    b.freeze()
}

fn take_u32(b: &mut Bytes, what: &'static str) -> Result<u32, DecodeError> {
    if b.remaining() < 4 {
        return Err(bad(what, "truncated"));
    }
    Ok(b.get_u32_le())
}

fn take_u64(b: &mut Bytes, what: &'static str) -> Result<u64, DecodeError> {
    if b.remaining() < 8 {
        return Err(bad(what, "truncated"));
    }
    Ok(b.get_u64_le())
}

/// Decodes [`encode_membership`]'s bytes, checking every length against what remains.
pub fn decode_membership(mut b: Bytes) -> Result<Membership, DecodeError> {
    const W: &str = "membership";
    if b.remaining() < 1 || b.get_u8() != MEMBERSHIP_VERSION {
        return Err(bad(W, "unknown version"));
    }
    let n = take_u32(&mut b, W)? as usize;
    if n > b.remaining() / 4 {
        return Err(bad(W, "config count exceeds the bytes"));
    }
    let mut configs = Vec::with_capacity(n);
    for _ in 0..n {
        let k = take_u32(&mut b, W)? as usize;
        if k > b.remaining() / 8 {
            return Err(bad(W, "voter count exceeds the bytes"));
        }
        let mut set = BTreeSet::new();
        for _ in 0..k {
            set.insert(take_u64(&mut b, W)?);
        }
        configs.push(set);
    }
    let n = take_u32(&mut b, W)? as usize;
    if n > b.remaining() / 12 {
        return Err(bad(W, "node count exceeds the bytes"));
    }
    let mut nodes = BTreeMap::new();
    for _ in 0..n {
        let id = take_u64(&mut b, W)?;
        let len = take_u32(&mut b, W)? as usize;
        if len > b.remaining() {
            return Err(bad(W, "address length exceeds the bytes"));
        }
        let addr = String::from_utf8(b.split_to(len).to_vec())
            .map_err(|_| bad(W, "address is not UTF-8"))?;
        nodes.insert(id, BasicNode { addr });
    }
    if b.has_remaining() {
        return Err(bad(W, "trailing bytes"));
    }
    Membership::new(configs, nodes).map_err(|_| bad(W, "a voter has no node"))
}

/// Encodes a vote: term, node id, committed flag.
pub fn encode_vote(v: &Vote) -> Vec<u8> {
    let mut b = Vec::with_capacity(17);
    let leader = v.leader_id();
    b.extend_from_slice(&leader.term.to_le_bytes());
    b.extend_from_slice(&leader.voted_for.to_le_bytes());
    b.push(v.is_committed() as u8);
    b
}

/// Decodes [`encode_vote`]'s bytes.
pub fn decode_vote(b: &[u8]) -> Result<Vote, DecodeError> {
    if b.len() != 17 {
        return Err(bad("vote", "wrong length"));
    }
    let term = u64::from_le_bytes(b[0..8].try_into().map_err(|_| bad("vote", "truncated"))?);
    let node = u64::from_le_bytes(b[8..16].try_into().map_err(|_| bad("vote", "truncated"))?);
    match b[16] {
        0 => Ok(Vote::new(term, node)),
        1 => Ok(Vote::new_committed(term, node)),
        _ => Err(bad("vote", "bad committed flag")),
    }
}
