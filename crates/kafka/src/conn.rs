//! One Kafka connection: frames in, answers out in request order.
//!
//! The reader takes a frame (a 4-byte big-endian length, then the request), checks its
//! length against `kafka_frame_bytes_max`, decodes the header and the body for the API and
//! version it names, and hands the request to a task of its own. The writer awaits those
//! tasks in the order the requests came and writes each answer; a Produce with acks=0 has
//! none. The queue between them holds at most `kafka_in_flight_max` requests, so a client
//! that pipelines more waits for answers before its next request is read.
//!
//! What closes the connection, each with a log line naming the peer and the reason: a
//! negative or oversize length, a frame shorter than a request header, an API this
//! listener does not serve, a version it does not serve (except ApiVersions, which answers
//! UNSUPPORTED_VERSION in the v0 layout with the table, as Kafka does, so the client can
//! pick a version), a body that does not decode, and a connection cut mid-frame. Other
//! connections are not affected.

use crate::{Ctx, codes, versions};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// The smallest request: API key, version, correlation id, client id length.
const HEADER_BYTES_MIN: usize = 10;

/// What the handler of one request knows of its connection and header.
#[derive(Debug, Clone)]
pub struct Request {
    /// The API's version.
    pub version: i16,
    /// The client's id (empty when none).
    pub client_id: String,
    /// The peer's address.
    pub peer: SocketAddr,
}

/// An answer in the making: `None` for a request that gets none (Produce with acks=0); an
/// error (an answer that cannot be encoded) closes the connection, so the client does not
/// wait for an answer that never comes.
type Pending = JoinHandle<Result<Option<Bytes>, String>>;

/// Why a frame closes the connection.
#[derive(Debug)]
enum Close {
    /// The peer closed the connection between frames.
    Eof,
    /// Anything else, with the reason to log.
    Reason(String),
}

/// Runs the connection from `peer` until it closes or `stop` turns true.
pub async fn run(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    mut stop: watch::Receiver<bool>,
) {
    metrics::gauge!("strata_kafka_connections").increment(1.0);
    let (mut rd, mut wr) = stream.into_split();
    let depth = ctx.config.in_flight_max.max(1) as usize;
    let (tx, mut rx) = mpsc::channel::<Pending>(depth.saturating_sub(1).max(1));
    // Produce requests of the connection, in arrival order (see `dispatch`).
    let mut produce_chain: Option<oneshot::Receiver<()>> = None;
    let writer = tokio::spawn(async move {
        while let Some(pending) = rx.recv().await {
            match pending.await {
                Ok(Ok(Some(frame))) => {
                    if let Err(e) = wr.write_all(&frame).await {
                        tracing::debug!(%peer, error = %e, "kafka connection: write failed");
                        return;
                    }
                }
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::error!(%peer, "kafka connection closed: {e}");
                    return;
                }
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "kafka request handler failed; closing");
                    return;
                }
            }
        }
        let _ = wr.shutdown().await;
    });
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut rd, ctx.config.frame_bytes_max) => f,
            _ = stop.wait_for(|s| *s) => break,
        };
        let frame = match frame {
            Ok(f) => f,
            Err(Close::Eof) => break,
            Err(Close::Reason(r)) => {
                tracing::warn!(%peer, "kafka connection closed: {r}");
                metrics::counter!("strata_kafka_connections_closed_bad_input_total").increment(1);
                break;
            }
        };
        match dispatch(frame, peer, &ctx, &mut produce_chain) {
            Ok(pending) => {
                if tx.send(pending).await.is_err() {
                    break;
                }
            }
            Err(r) => {
                tracing::warn!(%peer, "kafka connection closed: {r}");
                metrics::counter!("strata_kafka_connections_closed_bad_input_total").increment(1);
                break;
            }
        }
    }
    // Answers already in progress are still written (the writer drains the queue).
    drop(tx);
    let _ = writer.await;
    metrics::gauge!("strata_kafka_connections").decrement(1.0);
}

async fn read_frame(rd: &mut tokio::net::tcp::OwnedReadHalf, max: u32) -> Result<Bytes, Close> {
    let mut len = [0u8; 4];
    match rd.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(Close::Eof),
        Err(e) => return Err(Close::Reason(format!("read failed: {e}"))),
    }
    let len = i32::from_be_bytes(len);
    if len < 0 {
        return Err(Close::Reason(format!("negative frame length {len}")));
    }
    let len = len as usize;
    if len > max as usize {
        return Err(Close::Reason(format!(
            "frame of {len} bytes exceeds kafka_frame_bytes_max ({max} bytes)"
        )));
    }
    if len < HEADER_BYTES_MIN {
        return Err(Close::Reason(format!(
            "frame of {len} bytes is shorter than a request header ({HEADER_BYTES_MIN} bytes)"
        )));
    }
    let mut buf = BytesMut::zeroed(len);
    rd.read_exact(&mut buf).await.map_err(|e| {
        Close::Reason(format!(
            "connection cut mid-frame ({len} bytes announced): {e}"
        ))
    })?;
    Ok(buf.freeze())
}

/// Encodes `body` as the answer to `key` v`version` with `correlation_id`, length-prefixed.
fn encode<R: Encodable + HeaderVersion>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &R,
) -> Result<Option<Bytes>, String> {
    let header_version = if key == ApiKey::ApiVersions {
        // ApiVersions answers always use header v0, so any client can read them.
        0
    } else {
        R::header_version(version)
    };
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    let encoded = header
        .encode(&mut buf, header_version)
        .and_then(|()| body.encode(&mut buf, version));
    if let Err(e) = encoded {
        return Err(format!("cannot encode the {key:?} v{version} answer: {e}"));
    }
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(Some(buf.freeze()))
}

/// Whether every batch of `r` is an idempotent producer's (producer id set): the partition
/// orders those by sequence number, whatever order requests reach it in.
fn idempotent(r: &ProduceRequest) -> bool {
    r.topic_data
        .iter()
        .flat_map(|t| &t.partition_data)
        .all(|p| {
            p.records
                .as_ref()
                .and_then(|b| strata_record::BatchHeader::parse(b).ok())
                .is_some_and(|h| h.producer_id >= 0)
        })
}

/// Decodes the request in `frame` and starts its handler.
///
/// Produce requests of one connection reach the partitions in the order they came, as
/// Kafka serves them: a request waits for the one before it. A request of idempotent batches
/// lets the next one start at once (the partition orders those by sequence number, so a
/// pipelining idempotent producer keeps its requests in flight); any other request holds the
/// next one until it is answered, so a producer without idempotence never has its batches
/// reordered.
fn dispatch(
    mut frame: Bytes,
    peer: SocketAddr,
    ctx: &Arc<Ctx>,
    produce_chain: &mut Option<oneshot::Receiver<()>>,
) -> Result<Pending, String> {
    let raw_key = (&frame[..2]).get_i16();
    let version = (&frame[2..4]).get_i16();
    let correlation_id = (&frame[4..8]).get_i32();
    let Ok(key) = ApiKey::try_from(raw_key) else {
        return Err(format!(
            "unknown API key {raw_key} (correlation id {correlation_id})"
        ));
    };
    if !versions::supported(key, version) {
        if key == ApiKey::ApiVersions {
            // Kafka's fallback: v0 layout, UNSUPPORTED_VERSION, and the table.
            let body = crate::meta::api_versions_body(
                kafka_protocol::ResponseError::UnsupportedVersion.code(),
            );
            let out = encode(key, 0, correlation_id, &body);
            return Ok(tokio::spawn(async move { out }));
        }
        return Err(match versions::range(key) {
            Some((lo, hi)) => format!(
                "{key:?} v{version} is not served (versions {lo} to {hi} are; correlation id \
                 {correlation_id})"
            ),
            None => format!(
                "{key:?} (API key {raw_key}) is not served by this listener (correlation id \
                 {correlation_id})"
            ),
        });
    }
    let header = RequestHeader::decode(&mut frame, key.request_header_version(version))
        .map_err(|e| format!("malformed {key:?} v{version} request header: {e}"))?;
    let req = Request {
        version,
        client_id: header
            .client_id
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        peer,
    };
    let ctx = ctx.clone();

    fn body<T: Decodable>(frame: &mut Bytes, key: ApiKey, version: i16) -> Result<T, String> {
        let v = T::decode(frame, version)
            .map_err(|e| format!("malformed {key:?} v{version} request: {e}"))?;
        if frame.has_remaining() {
            // Kafka ignores bytes after a request's body (librdkafka's Metadata v12 carries
            // some); so does this listener.
            tracing::trace!(
                ?key,
                version,
                extra = frame.remaining(),
                "bytes after a request body"
            );
        }
        Ok(v)
    }

    /// Spawns `f` and encodes what it answers.
    fn start<R, F>(key: ApiKey, version: i16, correlation_id: i32, f: F) -> Pending
    where
        R: Encodable + HeaderVersion + Send + 'static,
        F: Future<Output = R> + Send + 'static,
    {
        tokio::spawn(async move {
            let r = f.await;
            encode(key, version, correlation_id, &r)
        })
    }

    macro_rules! handle {
        ($req:ty, $handler:path) => {{
            let r: $req = body(&mut frame, key, version)?;
            start(key, version, correlation_id, async move {
                $handler(&ctx, &req, r).await
            })
        }};
    }

    Ok(match key {
        ApiKey::ApiVersions => {
            let _: ApiVersionsRequest = body(&mut frame, key, version)?;
            let out = encode(
                key,
                version,
                correlation_id,
                &crate::meta::api_versions_body(0),
            );
            tokio::spawn(async move { out })
        }
        ApiKey::Produce => {
            let r: ProduceRequest = body(&mut frame, key, version)?;
            let before = produce_chain.take();
            let (after, next) = oneshot::channel();
            *produce_chain = Some(next);
            tokio::spawn(async move {
                if let Some(before) = before {
                    // An error means the task before ended without saying: go on.
                    let _ = before.await;
                }
                let mut after = Some(after);
                if idempotent(&r)
                    && let Some(a) = after.take()
                {
                    let _ = a.send(());
                }
                let acks = r.acks;
                let resp = crate::data::produce(&ctx, &req, r).await;
                if let Some(a) = after {
                    let _ = a.send(());
                }
                // acks=0: the client reads no answer.
                if acks == 0 {
                    return Ok(None);
                }
                encode(key, version, correlation_id, &resp)
            })
        }
        ApiKey::Metadata => handle!(MetadataRequest, crate::meta::metadata),
        ApiKey::DescribeCluster => handle!(DescribeClusterRequest, crate::meta::describe_cluster),
        ApiKey::Fetch => handle!(FetchRequest, crate::data::fetch),
        ApiKey::ListOffsets => handle!(ListOffsetsRequest, crate::data::list_offsets),
        ApiKey::InitProducerId => handle!(InitProducerIdRequest, crate::data::init_producer_id),
        ApiKey::OffsetForLeaderEpoch => {
            handle!(
                OffsetForLeaderEpochRequest,
                crate::data::offset_for_leader_epoch
            )
        }
        ApiKey::DeleteRecords => handle!(DeleteRecordsRequest, crate::data::delete_records),
        ApiKey::FindCoordinator => handle!(FindCoordinatorRequest, crate::groups::find_coordinator),
        ApiKey::JoinGroup => handle!(JoinGroupRequest, crate::groups::join_group),
        ApiKey::SyncGroup => handle!(SyncGroupRequest, crate::groups::sync_group),
        ApiKey::Heartbeat => handle!(HeartbeatRequest, crate::groups::heartbeat),
        ApiKey::LeaveGroup => handle!(LeaveGroupRequest, crate::groups::leave_group),
        ApiKey::OffsetCommit => handle!(OffsetCommitRequest, crate::groups::offset_commit),
        ApiKey::OffsetFetch => handle!(OffsetFetchRequest, crate::groups::offset_fetch),
        ApiKey::DescribeGroups => handle!(DescribeGroupsRequest, crate::groups::describe_groups),
        ApiKey::ListGroups => handle!(ListGroupsRequest, crate::groups::list_groups),
        ApiKey::DeleteGroups => handle!(DeleteGroupsRequest, crate::groups::delete_groups),
        ApiKey::CreateTopics => handle!(CreateTopicsRequest, crate::admin::create_topics),
        ApiKey::DeleteTopics => handle!(DeleteTopicsRequest, crate::admin::delete_topics),
        ApiKey::CreatePartitions => {
            handle!(CreatePartitionsRequest, crate::admin::create_partitions)
        }
        ApiKey::DescribeConfigs => handle!(DescribeConfigsRequest, crate::admin::describe_configs),
        ApiKey::AlterConfigs => handle!(AlterConfigsRequest, crate::admin::alter_configs),
        ApiKey::IncrementalAlterConfigs => handle!(
            IncrementalAlterConfigsRequest,
            crate::admin::incremental_alter_configs
        ),
        other => {
            return Err(format!(
                "{other:?} is listed as served but has no handler (correlation id {correlation_id})"
            ));
        }
    })
}

/// Error code and message for a broker error (the message for the log line and the
/// responses that carry one).
pub fn err(e: &strata_broker::BrokerError) -> (i16, String) {
    (codes::broker(e), e.to_string())
}
