//! The client half of `AppendStream`: openraft's `stream_append` for one group to one
//! follower, pipelined over one gRPC bidirectional stream on the data channel.
//!
//! Requests are sent as openraft yields them, without waiting for answers; the follower
//! answers each in order (HTTP/2 keeps the order, and `Raft::stream_append` on the follower
//! answers in order). The output ends when the follower closes the stream, and ends early
//! after the first conflict, higher vote or error.
//!
//! Deadlines (openraft's `hard_ttl` does not bound a whole stream): opening waits at most the
//! call deadline; afterwards the stream fails as `Timeout` when a request has waited
//! [`super::TransportConfig::request_timeout_ms`] without any answer arriving. A stream with
//! nothing outstanding may idle for any time.
//!
//! A request that cannot be sent (link cut or lost per [`super::LinkControl`], or over the
//! size limit) ends the input; the output then yields the answers to the requests before it,
//! then that request's error.

use super::client::{StreamSetup, admit, check_size};
use super::convert::{FromWire, ToWire};
use super::error::Call;
use super::link::Verdict;
use crate::types::TypeConfig;
use futures_util::stream::{self, Stream, StreamExt};
use openraft::OptionalSend;
use openraft::base::BoxStream;
use openraft::error::RPCError;
use openraft::raft::{AppendEntriesRequest, StreamAppendResult};
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use strata_proto::internal::v1 as pb;
use tokio::time::Instant;
use tonic::{Request, Status, Streaming};

type Answers = BoxStream<'static, Result<StreamAppendResult<TypeConfig>, RPCError<TypeConfig>>>;

/// How far the follower is behind what was sent, and why the input stopped, if it did.
struct Progress {
    sent: u64,
    answered: u64,
    /// Since when the oldest unanswered request has waited without any answer arriving.
    waiting_since: Instant,
    failure: Option<RPCError<TypeConfig>>,
}

type Shared = Arc<Mutex<Progress>>;

fn lock(progress: &Shared) -> std::sync::MutexGuard<'_, Progress> {
    // Updates are plain field writes; a poisoned lock is still consistent.
    strata_record::sync::lock(progress)
}

impl Progress {
    fn on_send(&mut self) {
        if self.sent == self.answered {
            self.waiting_since = Instant::now();
        }
        self.sent += 1;
    }

    fn on_answer(&mut self) {
        self.answered += 1;
        self.waiting_since = Instant::now();
    }

    fn stalled(&self, stall: Duration) -> bool {
        self.sent > self.answered && self.waiting_since.elapsed() >= stall
    }
}

/// Opens the stream and returns openraft's answer stream.
pub(crate) async fn open<S>(setup: StreamSetup, input: S) -> Result<Answers, RPCError<TypeConfig>>
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
{
    let call = setup.call;
    // Take the first request before connecting: openraft applies its backoff (after an
    // unreachable peer) while producing a request, so a stream that failed before asking for
    // one would be retried at once, in a tight loop, for as long as the peer is down.
    let mut input = input;
    let Some(first) = input.next().await else {
        // openraft closed the input before a first request (replication is stopping): there
        // is nothing to send. (Chaining after an ended input would poll it again, which
        // openraft's stream answers with a panic.)
        return Ok(stream::empty().boxed());
    };
    let input = futures_util::stream::iter(Some(first)).chain(input.fuse());
    if setup.peers.links().verdict(call.from, call.target) == Verdict::Cut {
        return Err(call.unreachable("link cut by LinkControl"));
    }
    let progress: Shared = Arc::new(Mutex::new(Progress {
        sent: 0,
        answered: 0,
        waiting_since: Instant::now(),
        failure: None,
    }));
    let outbound = outbound(&setup, input, progress.clone());
    let mut data = setup.peer.data.clone();
    let opened = tokio::time::timeout(call.timeout, data.append_stream(Request::new(outbound)))
        .await
        .map_err(|_| call.timeout_error())?
        .map_err(|s| call.status_error(&s))?;
    let stall = setup.peers.config().request_timeout();
    let answer_call = Call {
        timeout: stall,
        ..call
    };
    Ok(answers(opened.into_inner(), progress, answer_call))
}

/// The requests as sent: each admitted by [`super::LinkControl`], converted, size-checked and
/// counted. The first one that cannot be sent records its error and ends the stream.
fn outbound<S>(
    setup: &StreamSetup,
    input: S,
    progress: Shared,
) -> impl Stream<Item = pb::AppendRequest> + Send + 'static
where
    S: Stream<Item = AppendEntriesRequest<TypeConfig>> + OptionalSend + Unpin + 'static,
{
    let peers = setup.peers.clone();
    let header = setup.peer.header(&peers.identity());
    let group_id = setup.group_id;
    let call = setup.call;
    stream::unfold(input, move |mut input| {
        let (peers, progress, header) = (peers.clone(), progress.clone(), header);
        async move {
            let rpc = input.next().await?;
            let message = pb::AppendRequest {
                header: Some(header),
                group_id: group_id.get(),
                ..rpc.to_wire()
            };
            let admitted = match admit(&peers, &call).await {
                Ok(()) => check_size(&peers, &call, "append request", message.encoded_len()),
                Err(e) => Err(e),
            };
            let mut progress = lock(&progress);
            match admitted {
                Ok(()) => {
                    progress.on_send();
                    Some((message, input))
                }
                Err(e) => {
                    progress.failure = Some(e);
                    None
                }
            }
        }
    })
}

/// What waiting for the next answer gave.
enum Next {
    Answer(Result<pb::AppendStreamResponse, Status>),
    End,
    Stalled,
}

async fn next_answer(
    responses: &mut Streaming<pb::AppendStreamResponse>,
    progress: &Shared,
    stall: Duration,
) -> Next {
    loop {
        match tokio::time::timeout(stall, responses.next()).await {
            Ok(Some(answer)) => return Next::Answer(answer),
            Ok(None) => return Next::End,
            // `next()` is cancel-safe: nothing is lost by timing it out and waiting again.
            Err(_) if lock(progress).stalled(stall) => return Next::Stalled,
            Err(_) => {}
        }
    }
}

/// The follower's answers as openraft reads them.
fn answers(
    responses: Streaming<pb::AppendStreamResponse>,
    progress: Shared,
    call: Call,
) -> Answers {
    stream::unfold(Some(responses), move |state| {
        let progress = progress.clone();
        async move {
            let mut responses = state?;
            match next_answer(&mut responses, &progress, call.timeout).await {
                Next::Answer(Ok(answer)) => {
                    lock(&progress).on_answer();
                    match StreamAppendResult::from_wire(answer) {
                        Ok(result) => {
                            let go_on = result.is_ok();
                            Some((Ok(result), go_on.then_some(responses)))
                        }
                        Err(e) => Some((Err(call.network(e)), None)),
                    }
                }
                Next::Answer(Err(status)) => Some((Err(call.status_error(&status)), None)),
                Next::End => lock(&progress).failure.take().map(|e| (Err(e), None)),
                Next::Stalled => Some((Err(call.timeout_error()), None)),
            }
        }
    })
    .boxed()
}
