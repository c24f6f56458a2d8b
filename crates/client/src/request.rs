//! Request/reply on topics, as NATS users know it: [`Requester::request`] sends a message
//! with a reply address and a correlation id and waits for the matching reply;
//! [`serve`] answers requests as a member of a queue group, so servers share the load.
//!
//! - **Inboxes.** Replies go to the shared topic [`INBOX_TOPIC`] (created on first use with
//!   [`INBOX_PARTITIONS`] partitions and a retention of [`INBOX_RETENTION_MS`]). A requester
//!   is one inbox: a random id and one partition of that topic, which it reads from its end;
//!   it keeps replies addressed to its id and drops the rest. Nothing is created per
//!   requester or per request, so requesters that come and go (or die) leave nothing behind:
//!   their replies age out with the topic's retention.
//! - **Headers.** A request carries [`REPLY_TO_HEADER`] (`<topic>/<partition>/<inbox id>`)
//!   and [`CORRELATION_HEADER`]; the reply carries the same correlation id and the inbox id.
//! - **Delivery.** A request is a queue message: a server that fails before replying does
//!   not acknowledge it, and it is delivered again (to any server) when its lock runs out;
//!   a reply that arrives after the requester gave up is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::config::{ConsumerConfig, ProducerConfig};
use crate::error::Error;
use crate::producer::Producer;
use crate::queue::{QueueConsumerConfig, QueueMessage, QueueStart, Settlement};
use crate::records::{ConsumedRecord, Offset, ProducerRecord};

/// The topic that holds every requester's replies.
pub const INBOX_TOPIC: &str = "strata.inbox";
/// Partitions of [`INBOX_TOPIC`] when it is created.
pub const INBOX_PARTITIONS: u32 = 8;
/// Retention of [`INBOX_TOPIC`] when it is created (10 minutes).
pub const INBOX_RETENTION_MS: i64 = 600_000;
/// Where a request wants its reply: `<topic>/<partition>/<inbox id>`.
pub const REPLY_TO_HEADER: &str = "strata-reply-to";
/// Pairs a reply with its request.
pub const CORRELATION_HEADER: &str = "strata-correlation-id";
/// Set on a reply whose handler failed; the value is the handler's error.
pub const REPLY_ERROR_HEADER: &str = "strata-reply-error";

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<ConsumedRecord>>>>;

/// Removes a request's entry from the pending map when dropped.
struct Forget<'a> {
    pending: &'a Pending,
    id: &'a str,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        strata_record::sync::lock(self.pending).remove(self.id);
    }
}

/// A requester: one inbox, any number of concurrent requests.
pub struct Requester {
    producer: Producer,
    reply_to: String,
    pending: Pending,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for Requester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Requester")
            .field("reply_to", &self.reply_to)
            .finish_non_exhaustive()
    }
}

impl Drop for Requester {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Creates [`INBOX_TOPIC`] unless it exists.
async fn ensure_inbox(client: &Client) -> Result<u32, Error> {
    match client.partition_count(INBOX_TOPIC).await {
        Ok(n) => return Ok(n),
        Err(Error::UnknownTopic { .. }) => {}
        Err(e) => return Err(e),
    }
    let configs = [("retention.ms".to_string(), INBOX_RETENTION_MS.to_string())];
    match client
        .admin()
        .create_topic(
            INBOX_TOPIC,
            INBOX_PARTITIONS,
            0,
            configs.into_iter().collect(),
        )
        .await
    {
        Ok(_) | Err(Error::TopicExists { .. }) => {}
        Err(e) => return Err(e),
    }
    client.partition_count(INBOX_TOPIC).await
}

fn header_text(headers: &[(String, Option<Bytes>)], key: &str) -> Option<String> {
    headers
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.as_ref())
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

impl Requester {
    pub(crate) async fn start(client: Client) -> Result<Requester, Error> {
        let partitions = ensure_inbox(&client).await?;
        let inbox = uuid::Uuid::new_v4().to_string();
        let partition = rand::random_range(0..partitions.max(1));
        let mut consumer = client.consumer(ConsumerConfig {
            fetch_wait: Duration::from_millis(500),
            auto_reset: Some(Offset::Latest),
            ..ConsumerConfig::default()
        })?;
        consumer
            .assign(INBOX_TOPIC, [partition], Offset::Latest)
            .await?;
        let pending: Pending = Arc::default();
        let reader = {
            let pending = pending.clone();
            let inbox = inbox.clone();
            tokio::spawn(async move {
                loop {
                    let polled = consumer.poll().await;
                    // Always a point where the task yields, so dropping the requester stops it.
                    tokio::task::yield_now().await;
                    match polled {
                        Ok(records) => {
                            for r in records {
                                let to_me = header_text(&r.headers, REPLY_TO_HEADER)
                                    .is_some_and(|t| t.rsplit('/').next() == Some(inbox.as_str()));
                                if !to_me {
                                    continue;
                                }
                                let Some(id) = header_text(&r.headers, CORRELATION_HEADER) else {
                                    continue;
                                };
                                let waiter = strata_record::sync::lock(&pending).remove(&id);
                                if let Some(w) = waiter {
                                    let _ = w.send(r);
                                }
                            }
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "requester inbox");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            })
        };
        let producer = client.producer(ProducerConfig {
            linger: Duration::ZERO,
            ..ProducerConfig::default()
        })?;
        Ok(Requester {
            producer,
            reply_to: format!("{INBOX_TOPIC}/{partition}/{inbox}"),
            pending,
            reader,
        })
    }

    /// Where this requester's replies go (`<topic>/<partition>/<inbox id>`).
    pub fn reply_to(&self) -> &str {
        &self.reply_to
    }

    /// Sends `value` to `topic` as a request and waits up to `timeout` for its reply.
    /// A reply whose handler failed is an [`Error::Remote`]; no reply in time is an
    /// [`Error::Timeout`] (the request may still be served later; its reply is dropped).
    pub async fn request(
        &self,
        topic: &str,
        value: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<ConsumedRecord, Error> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        strata_record::sync::lock(&self.pending).insert(id.clone(), tx);
        // Whatever ends this call (an answer, a timeout, the caller dropping it), its entry
        // goes.
        let _forget = Forget {
            pending: &self.pending,
            id: &id,
        };
        let sent = async {
            let mut record = ProducerRecord::new(topic, value);
            record.headers = vec![
                (
                    REPLY_TO_HEADER.into(),
                    Some(Bytes::from(self.reply_to.clone())),
                ),
                (CORRELATION_HEADER.into(), Some(Bytes::from(id.clone()))),
            ];
            self.producer.send(record).await?.await
        };
        let outcome = tokio::time::timeout(timeout, async {
            sent.await?;
            rx.await
                .map_err(|_| Error::Unavailable("the requester's inbox reader stopped".into()))
        })
        .await;
        match outcome {
            Ok(Ok(reply)) => match header_text(&reply.headers, REPLY_ERROR_HEADER) {
                Some(message) => Err(Error::Remote(message)),
                None => Ok(reply),
            },
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Timeout(format!(
                "no reply from {topic} within {timeout:?}"
            ))),
        }
    }
}

/// Serves requests sent to `topic` as a member of queue group `group`, until `handler`'s
/// server is dropped or a failure that retrying cannot fix: each request's reply is
/// `handler`'s value (or, for an error, an empty reply with [`REPLY_ERROR_HEADER`]), sent to
/// the request's reply address, and the request is acknowledged once the reply is written.
/// A message without a reply address (or one outside [`INBOX_TOPIC`]) is acknowledged and
/// skipped. Up to `concurrency` requests are handled at once.
pub async fn serve<F, Fut>(
    client: Client,
    topic: &str,
    group: &str,
    concurrency: usize,
    handler: F,
) -> Result<(), Error>
where
    F: Fn(QueueMessage) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Bytes, String>> + Send + 'static,
{
    let mut config = QueueConsumerConfig::new(group, topic);
    // Locks cover requests waiting for a free handler too: no more than it can work on
    // (spread over the partitions), so a lock does not run out in the queue.
    let partitions = client.partition_count(topic).await?.max(1) as usize;
    config.max_in_flight = (concurrency / partitions).clamp(1, 1000) as u32;
    config.start = QueueStart::Latest;
    config.lock = Duration::from_secs(30);
    let mut consumer = client.queue_consumer(config)?;
    let producer = Arc::new(client.producer(ProducerConfig {
        linger: Duration::ZERO,
        ..ProducerConfig::default()
    })?);
    let handler = Arc::new(handler);
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let settler = Arc::new(consumer.settler());
    while let Some(m) = consumer.next().await {
        let m = m?;
        let Ok(permit) = limit.clone().acquire_owned().await else {
            break;
        };
        let producer = producer.clone();
        let handler = handler.clone();
        let settler = settler.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let reply_to = header_text(&m.headers, REPLY_TO_HEADER);
            let correlation = header_text(&m.headers, CORRELATION_HEADER);
            let (Some(reply_to), Some(correlation)) = (reply_to, correlation) else {
                let _ = settler.settle(&[(&m, Settlement::Ack)]).await;
                return;
            };
            // Replies go to the inbox topic only: a request cannot make a server write
            // anywhere else. A malformed address is acknowledged and skipped.
            let mut parts = reply_to.splitn(3, '/');
            let address = match (parts.next(), parts.next(), parts.next()) {
                (Some(t), Some(p), Some(_inbox)) if t == INBOX_TOPIC => p.parse::<u32>().ok(),
                _ => None,
            };
            let Some(p) = address else {
                tracing::warn!(%reply_to, "serve: a request with a bad reply address; skipped");
                let _ = settler.settle(&[(&m, Settlement::Ack)]).await;
                return;
            };
            let t = INBOX_TOPIC;
            let mut reply = match handler(m.clone()).await {
                Ok(v) => ProducerRecord::new(t, v),
                Err(e) => {
                    let mut r = ProducerRecord::new(t, Bytes::new());
                    r.headers
                        .push((REPLY_ERROR_HEADER.into(), Some(Bytes::from(e))));
                    r
                }
            };
            reply.partition = Some(p);
            reply
                .headers
                .push((REPLY_TO_HEADER.into(), Some(Bytes::from(reply_to.clone()))));
            reply
                .headers
                .push((CORRELATION_HEADER.into(), Some(Bytes::from(correlation))));
            let written = match producer.send(reply).await {
                Ok(f) => f.await.is_ok(),
                Err(_) => false,
            };
            // A reply not written (its topic just created and not yet known everywhere, a
            // leader change): the request comes back after a delay that grows with each
            // try, so a passing failure does not use up its deliveries at once.
            let s = if written {
                Settlement::Ack
            } else {
                Settlement::Release(Duration::from_millis(250) * m.delivery_count)
            };
            if let Err(e) = settler.settle(&[(&m, s)]).await {
                tracing::debug!(error = %e, "serve: settle");
            }
        });
    }
    Ok(())
}
