//! `strata.v1.Queues`: queue groups (acquire as a stream with credit, settle, describe,
//! delete), over the broker.

use super::ClientService;
use super::status::{broker_status, invalid};
use super::strata::tokio_stream_compat::ReceiverStream;
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use strata_broker::QueuePartitionView;
use strata_broker::{BrokerError, ProduceLink};
use strata_groups::queue::{AcquireSpec, Delivery, QueueConfig, QueueStart, Settle};
use strata_proto::v1 as pb;
use strata_record::NewRecord;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

/// Records per streamed message when the request does not say.
const MAX_RECORDS_DEFAULT: u32 = 100;
/// Records a consumer may hold per partition when the request does not say.
const IN_FLIGHT_DEFAULT: u32 = 100;
/// Lock length when the request does not say.
const LOCK_MS_DEFAULT: u32 = 30_000;

/// The acquisition a request asks for.
fn spec(req: &pb::AcquireRequest) -> AcquireSpec {
    let c = req.config.clone().unwrap_or_default();
    let mut config = QueueConfig::for_topic(&req.topic);
    if c.max_deliveries != 0 {
        config.max_deliveries = c.max_deliveries;
    }
    if c.no_dead_letter {
        config.dead_letter = None;
    } else if !c.dead_letter_topic.is_empty() {
        config.dead_letter = Some(c.dead_letter_topic);
    }
    let or = |v: u32, d: u32| if v == 0 { d } else { v };
    AcquireSpec {
        group: req.group.clone(),
        consumer: req.consumer_id.clone(),
        max_records: or(req.max_records, MAX_RECORDS_DEFAULT) as usize,
        max_in_flight: or(req.max_in_flight, IN_FLIGHT_DEFAULT) as usize,
        lock_ms: u64::from(or(req.lock_ms, LOCK_MS_DEFAULT)),
        window: 0,
        config,
        start: if req.start == pb::QueueStart::Latest as i32 {
            QueueStart::Latest
        } else {
            QueueStart::Earliest
        },
    }
}

fn message(d: Delivery) -> pb::QueueMessage {
    pb::QueueMessage {
        offset: d.record.offset,
        timestamp_ms: d.record.timestamp,
        key: d.record.key,
        value: d.record.value,
        headers: d
            .record
            .headers
            .into_iter()
            .map(|h| pb::Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
        delivery_count: d.deliveries,
        lock_until_ms: i64::try_from(d.lock_until_ms).unwrap_or(i64::MAX),
    }
}

fn info(v: QueuePartitionView) -> pb::QueuePartitionInfo {
    pb::QueuePartitionInfo {
        group: v.group,
        topic: v.topic,
        partition: v.partition,
        settled_below: v.settled_below,
        high_watermark: v.high_watermark,
        available: v.available,
        acquired: v.acquired,
        delayed: v.delayed,
        acked_total: v.acked_total,
        dead_lettered_total: v.dead_lettered_total,
        dead_letter_pending: v.dead_letter_pending,
        oldest_unacked_age_ms: v.oldest_unacked_age_ms,
        max_deliveries: v.max_deliveries,
        dead_letter_topic: v.dead_letter_topic.unwrap_or_default(),
        consumers: v.consumers.into_iter().collect(),
    }
}

/// A settle item as the broker takes it.
fn settle_item(i: usize, item: pb::SettleItem) -> Result<(i64, Settle), Status> {
    let action = pb::SettleAction::try_from(item.action).unwrap_or_default();
    let s = match action {
        pb::SettleAction::Ack => Settle::Ack,
        pb::SettleAction::Release => Settle::Release {
            delay_ms: item.delay_ms,
        },
        pb::SettleAction::Reject => Settle::Reject {
            reason: if item.reason.is_empty() {
                "rejected by the consumer".into()
            } else {
                item.reason
            },
        },
        pb::SettleAction::Return => Settle::Return,
        pb::SettleAction::Extend => Settle::Extend {
            lock_ms: u64::from(item.lock_ms),
        },
        pb::SettleAction::Unspecified => {
            return Err(invalid(
                &format!("items[{i}].action"),
                "an action is required: ACK, RELEASE, REJECT, EXTEND or RETURN".into(),
            ));
        }
    };
    Ok((item.offset, s))
}

#[tonic::async_trait]
impl pb::queues_server::Queues for ClientService {
    type AcquireStream = ReceiverStream<pb::AcquireResponse>;

    async fn acquire(
        &self,
        request: Request<pb::AcquireRequest>,
    ) -> Result<Response<Self::AcquireStream>, Status> {
        let req = request.into_inner();
        let mut deliveries = self
            .broker
            .queue_stream(&req.topic, req.partition, spec(&req))
            .await
            .map_err(broker_status)?;
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            loop {
                // A consumer that went away stops the acquisitions at once, so no record is
                // locked to it after it left.
                let chunk = tokio::select! {
                    c = deliveries.recv() => c,
                    () = tx.closed() => return,
                };
                let Some(chunk) = chunk else { return };
                let msg = chunk.map_err(broker_status).map(|d| pb::AcquireResponse {
                    messages: d.into_iter().map(message).collect(),
                });
                let end = msg.is_err();
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(ReceiverStream(rx)))
    }

    async fn settle(
        &self,
        request: Request<pb::SettleRequest>,
    ) -> Result<Response<pb::SettleResponse>, Status> {
        let req = request.into_inner();
        let items = req
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| settle_item(i, item))
            .collect::<Result<Vec<_>, Status>>()?;
        let offsets: Vec<i64> = items.iter().map(|(o, _)| *o).collect();
        let results = self
            .broker
            .queue_settle(
                &req.topic,
                req.partition,
                &req.group,
                &req.consumer_id,
                items,
                req.return_held,
            )
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::SettleResponse {
            results: offsets
                .into_iter()
                .zip(results)
                .map(|(offset, r)| match r {
                    Ok(()) => pb::SettleResult {
                        offset,
                        ok: true,
                        ..Default::default()
                    },
                    Err(e) => pb::SettleResult {
                        offset,
                        ok: false,
                        error_reason: e.reason().to_string(),
                        message: e.to_string(),
                    },
                })
                .collect(),
        }))
    }

    async fn describe_queues(
        &self,
        request: Request<pb::DescribeQueuesRequest>,
    ) -> Result<Response<pb::DescribeQueuesResponse>, Status> {
        let req = request.into_inner();
        let partitions = self.broker.queue_describe(&req.group).await;
        Ok(Response::new(pb::DescribeQueuesResponse {
            partitions: partitions.into_iter().map(info).collect(),
        }))
    }

    async fn delete_queue(
        &self,
        request: Request<pb::DeleteQueueRequest>,
    ) -> Result<Response<pb::DeleteQueueResponse>, Status> {
        let req = request.into_inner();
        let partitions = self
            .broker
            .queue_delete(&req.topic, &req.group)
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::DeleteQueueResponse { partitions }))
    }
}

/// Writes dead letters to a partition another node leads, through that node's client API
/// (`strata.v1.Strata/Produce`, `acks=all`).
#[derive(Debug)]
pub struct GrpcProduceLink {
    timeout: Duration,
    channels: Mutex<HashMap<String, Channel>>,
}

impl GrpcProduceLink {
    /// A link whose calls each take at most `timeout`.
    pub fn new(timeout: Duration) -> GrpcProduceLink {
        GrpcProduceLink {
            timeout,
            channels: Mutex::default(),
        }
    }

    fn channel(&self, addr: &str) -> Result<Channel, BrokerError> {
        let mut ch = strata_record::sync::lock(&self.channels);
        if let Some(c) = ch.get(addr) {
            return Ok(c.clone());
        }
        let c = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| BrokerError::Internal(format!("bad client address {addr}: {e}")))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(self.timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        ch.insert(addr.to_string(), c.clone());
        Ok(c)
    }
}

impl ProduceLink for GrpcProduceLink {
    fn produce(
        &self,
        addr: String,
        topic: String,
        partition: u32,
        records: Vec<NewRecord>,
    ) -> BoxFuture<'static, Result<i64, BrokerError>> {
        let channel = self.channel(&addr);
        Box::pin(async move {
            let mut stub = pb::strata_client::StrataClient::new(channel?)
                .max_decoding_message_size(16 << 20)
                .max_encoding_message_size(16 << 20);
            let request = pb::ProduceRequest {
                topic: topic.clone(),
                partition,
                acks: pb::Acks::All as i32,
                payload: Some(pb::produce_request::Payload::Records(pb::RecordSet {
                    records: records
                        .into_iter()
                        .map(|r| pb::Record {
                            key: r.key,
                            value: r.value,
                            headers: r
                                .headers
                                .into_iter()
                                .map(|h| pb::Header {
                                    key: h.key,
                                    value: h.value,
                                })
                                .collect(),
                            timestamp_ms: r.timestamp,
                        })
                        .collect(),
                })),
            };
            match stub.produce(request).await {
                Ok(r) => Ok(r.into_inner().base_offset),
                Err(s) => Err(BrokerError::Indeterminate {
                    reason: format!(
                        "forwarding to {topic}/{partition} at {addr}: {}",
                        s.message()
                    ),
                }),
            }
        })
    }
}
