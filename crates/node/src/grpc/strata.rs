//! `strata.v1.Strata`: produce, fetch, subscribe, offsets, metadata, producer ids, over the
//! broker.

use super::ClientService;
use super::convert;
use super::status::{broker_status, invalid};
use std::time::Instant;
use strata_broker::types::ProducePayload;
use strata_proto::v1 as pb;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

#[tonic::async_trait]
impl pb::strata_server::Strata for ClientService {
    async fn produce(
        &self,
        request: Request<pb::ProduceRequest>,
    ) -> Result<Response<pb::ProduceResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let acks = convert::acks(req.acks)?;
        let payload = match req.payload {
            Some(pb::produce_request::Payload::Batch(b)) => ProducePayload::Batch(b),
            Some(pb::produce_request::Payload::Records(set)) => {
                ProducePayload::Records(convert::records(set))
            }
            None => return Err(invalid("payload", "records or batch is required".into())),
        };
        let produced = self
            .broker
            .produce(&req.topic, req.partition, payload, acks)
            .await
            .map_err(broker_status)?;
        self.metrics.produced(
            &req.topic,
            u64::from(produced.record_count),
            started.elapsed(),
        );
        Ok(Response::new(pb::ProduceResponse {
            base_offset: produced.base_offset.unwrap_or(-1),
            record_count: produced.record_count,
        }))
    }

    async fn fetch(
        &self,
        request: Request<pb::FetchRequest>,
    ) -> Result<Response<pb::FetchResponse>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        let fetched = self
            .broker
            .fetch(
                &req.topic,
                req.partition,
                req.offset,
                req.max_bytes,
                req.max_wait_ms,
            )
            .await
            .map_err(broker_status)?;
        let resp = convert::fetch_response(req.format, fetched, req.offset)?;
        self.metrics.fetched(
            &req.topic,
            resp.records.len() as u64,
            resp.batches.iter().map(|b| b.len() as u64).sum(),
            started.elapsed(),
        );
        Ok(Response::new(resp))
    }

    type SubscribeStream = tokio_stream_compat::ReceiverStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        let mut chunks = self
            .broker
            .subscribe(
                &req.topic,
                req.partition,
                convert::position(req.start.as_ref()),
                req.max_bytes,
            )
            .await
            .map_err(broker_status)?;
        let (tx, rx) = mpsc::channel(4);
        let format = req.format;
        tokio::spawn(async move {
            while let Some(chunk) = chunks.recv().await {
                let msg = chunk
                    .map_err(broker_status)
                    .and_then(|c| convert::fetch_response(format, c.fetched, c.from));
                // A chunk whose records all precede the start (mid-batch) says nothing.
                if let Ok(r) = &msg
                    && r.records.is_empty()
                    && r.batches.is_empty()
                {
                    continue;
                }
                let end = msg.is_err();
                if tx.send(msg).await.is_err() || end {
                    return;
                }
            }
        });
        Ok(Response::new(tokio_stream_compat::ReceiverStream(rx)))
    }

    async fn list_offsets(
        &self,
        request: Request<pb::ListOffsetsRequest>,
    ) -> Result<Response<pb::ListOffsetsResponse>, Status> {
        let req = request.into_inner();
        let o = self
            .broker
            .list_offsets(
                &req.topic,
                req.partition,
                convert::position(req.position.as_ref()),
            )
            .await
            .map_err(broker_status)?;
        Ok(Response::new(pb::ListOffsetsResponse {
            offset: o.offset,
            log_start_offset: o.log_start_offset,
            high_watermark: o.high_watermark,
        }))
    }

    async fn metadata(
        &self,
        request: Request<pb::MetadataRequest>,
    ) -> Result<Response<pb::MetadataResponse>, Status> {
        let req = request.into_inner();
        let m = self.broker.metadata(&req.topics);
        Ok(Response::new(pb::MetadataResponse {
            cluster_id: m.cluster_id,
            controller_id: m.controller_id,
            nodes: m.nodes.into_iter().map(convert::node_info).collect(),
            topics: m.topics.into_iter().map(convert::topic_info).collect(),
            unknown_topics: m.unknown_topics,
        }))
    }

    async fn init_producer(
        &self,
        _request: Request<pb::InitProducerRequest>,
    ) -> Result<Response<pb::InitProducerResponse>, Status> {
        let (producer_id, epoch) = self.broker.init_producer().await.map_err(broker_status)?;
        Ok(Response::new(pb::InitProducerResponse {
            producer_id,
            producer_epoch: i32::from(epoch),
        }))
    }
}

/// A stream over an mpsc receiver (tonic needs a `Stream`).
pub mod tokio_stream_compat {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use strata_proto::v1 as pb;
    use tokio::sync::mpsc;
    use tonic::Status;

    /// Streams what the receiver yields.
    pub struct ReceiverStream<T = pb::FetchResponse>(pub mpsc::Receiver<Result<T, Status>>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = Result<T, Status>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.0.poll_recv(cx)
        }
    }
}
