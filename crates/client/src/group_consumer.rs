//! [`GroupConsumer`]: a [`Consumer`] whose partitions a consumer group assigns.
//!
//! - A background task joins the group and heartbeats (every interval the coordinator names,
//!   and at once when the consumer gave partitions up), reporting what the consumer holds. It
//!   keeps the member alive while the application processes records between polls.
//! - `poll` first applies the latest assignment: partitions taken away are committed (their
//!   positions, unless [`GroupConsumerConfig::commit_on_revoke`] is off) and dropped, and
//!   reported as [`GroupEvent::Revoked`]; new partitions start at the group's committed offset
//!   (else [`GroupConsumerConfig::start`]) and are reported as [`GroupEvent::Assigned`]. It
//!   then commits on the auto-commit interval and returns the records fetched.
//! - A member the coordinator removed (its session expired, e.g. while the process was
//!   paused) loses every partition without committing (its commits would be refused), reports
//!   them revoked, and joins again.
//!
//! Delivery is at least once: records after the last commit of a partition are read again by
//! its next holder.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use strata_record::sync::lock;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::client::Client;
use crate::config::ConsumerConfig;
use crate::consumer::Consumer;
use crate::error::Error;
use crate::groups::{Groups, HeartbeatRequest};
use crate::records::{ConsumedRecord, Offset, TopicPartition};

/// How a [`GroupConsumer`] takes part in its group.
#[derive(Debug, Clone)]
pub struct GroupConsumerConfig {
    /// The group.
    pub group: String,
    /// Topics to read.
    pub topics: Vec<String>,
    /// A subject pattern over topic names (`orders.*`, `orders.>`): matching topics created
    /// later are picked up at a heartbeat.
    pub pattern: Option<String>,
    /// The client's id, shown by `group describe`. Default `strata-client`.
    pub client_id: String,
    /// `sticky` (default), `range` or `roundrobin`.
    pub assignor: Option<String>,
    /// The coordinator removes the member when not heard from for this long. Default 45 s.
    pub session_timeout: Duration,
    /// The coordinator removes the member when it keeps a partition it must give up (it did
    /// not poll) for this long. Default 5 min.
    pub rebalance_timeout: Duration,
    /// How often to heartbeat; `None` (the default): as the coordinator's node says (3 s by
    /// default). At least 10 ms and below the session timeout.
    pub heartbeat_interval: Option<Duration>,
    /// Commit positions this often (from `poll`); `None`: only explicit commits. Default 5 s.
    pub auto_commit_interval: Option<Duration>,
    /// Commit a partition's position when it is taken away. Default true.
    pub commit_on_revoke: bool,
    /// Where a partition without a committed offset starts. Default [`Offset::Latest`].
    pub start: Offset,
}

impl GroupConsumerConfig {
    /// Reads `topics` in `group`, with the defaults.
    pub fn new(
        group: impl Into<String>,
        topics: impl IntoIterator<Item = impl Into<String>>,
    ) -> GroupConsumerConfig {
        GroupConsumerConfig {
            group: group.into(),
            topics: topics.into_iter().map(Into::into).collect(),
            pattern: None,
            client_id: "strata-client".into(),
            assignor: None,
            session_timeout: Duration::from_secs(45),
            rebalance_timeout: Duration::from_secs(300),
            heartbeat_interval: None,
            auto_commit_interval: Some(Duration::from_secs(5)),
            commit_on_revoke: true,
            start: Offset::Latest,
        }
    }
}

/// A change of the consumer's partitions, as `poll` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// These partitions were given to this consumer.
    Assigned(Vec<TopicPartition>),
    /// These partitions were taken away (committed first, unless lost).
    Revoked(Vec<TopicPartition>),
}

/// What one `poll` returns.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// Assignment changes applied before the records were fetched.
    pub events: Vec<GroupEvent>,
    /// The records, in offset order per partition.
    pub records: Vec<ConsumedRecord>,
}

/// What the heartbeat task and the consumer share.
#[derive(Debug, Default)]
struct Membership {
    member_id: String,
    epoch: i64,
    /// The assignment of the latest answer not yet applied by `poll`: (topic, id, partition).
    assignment: Option<Vec<(String, String, u32)>>,
    /// The member was removed: drop everything without committing.
    lost: bool,
    /// What the consumer holds, reported in heartbeats.
    owned: Vec<(String, String, u32)>,
    /// A failure that is not retried (the group name, the subscription).
    error: Option<Error>,
    /// Stop heartbeating.
    closed: bool,
}

/// A consumer in a consumer group; see the [module docs](self).
pub struct GroupConsumer {
    consumer: Consumer,
    groups: Groups,
    config: GroupConsumerConfig,
    shared: Arc<Mutex<Membership>>,
    /// Wakes the heartbeat task (partitions given up, or closing).
    wake: Arc<Notify>,
    /// Wakes `poll` (a new assignment).
    changed: Arc<Notify>,
    task: JoinHandle<()>,
    /// Held partitions and their topic ids.
    held: BTreeMap<TopicPartition, String>,
    /// Paused partitions and their positions.
    paused: BTreeMap<TopicPartition, i64>,
    /// The last committed position of each partition (to skip idle commits).
    committed: BTreeMap<TopicPartition, i64>,
    last_commit: Instant,
}

impl std::fmt::Debug for GroupConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupConsumer")
            .field("group", &self.config.group)
            .field("held", &self.held.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

async fn heartbeat_loop(
    groups: Groups,
    config: GroupConsumerConfig,
    shared: Arc<Mutex<Membership>>,
    wake: Arc<Notify>,
    changed: Arc<Notify>,
) {
    let mut interval = Duration::ZERO;
    loop {
        if interval > Duration::ZERO {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = wake.notified() => {}
            }
        }
        let req = {
            let m = lock(&shared);
            if m.closed {
                return;
            }
            HeartbeatRequest {
                group: config.group.clone(),
                member_id: m.member_id.clone(),
                member_epoch: m.epoch,
                client_id: config.client_id.clone(),
                topics: config.topics.clone(),
                pattern: config.pattern.clone(),
                owned: m.owned.clone(),
                assignor: config.assignor.clone(),
                session_timeout: config.session_timeout,
                rebalance_timeout: config.rebalance_timeout,
                heartbeat_interval: config.heartbeat_interval,
            }
        };
        match groups.heartbeat(&req).await {
            Ok(a) => {
                let mut m = lock(&shared);
                if m.closed {
                    return;
                }
                m.member_id = a.member_id;
                m.epoch = a.member_epoch;
                m.assignment = Some(a.assignment);
                interval = a.interval;
                drop(m);
                changed.notify_one();
            }
            Err(e) if e.is_fenced_member() => {
                warn!(group = %config.group, error = %e, "member fenced; dropping its partitions and joining again");
                let mut m = lock(&shared);
                m.epoch = 0;
                m.owned.clear();
                m.lost = true;
                m.assignment = Some(Vec::new());
                interval = Duration::ZERO;
                drop(m);
                changed.notify_one();
            }
            Err(e) if e.is_retriable() => {
                debug!(group = %config.group, error = %e, "heartbeat failed; retrying");
                interval = Duration::from_millis(200);
            }
            Err(e) => {
                warn!(group = %config.group, error = %e, "heartbeat refused");
                lock(&shared).error = Some(e);
                changed.notify_one();
                interval = Duration::from_secs(1);
            }
        }
    }
}

impl GroupConsumer {
    pub(crate) fn new(
        client: Client,
        consumer_config: ConsumerConfig,
        config: GroupConsumerConfig,
    ) -> Result<GroupConsumer, Error> {
        if config.topics.is_empty() && config.pattern.is_none() {
            return Err(Error::InvalidArgument {
                field: "topics".into(),
                reason: "a group consumer reads at least one topic or a pattern".into(),
            });
        }
        let consumer = client.consumer(consumer_config)?;
        let groups = client.groups();
        let shared = Arc::new(Mutex::new(Membership::default()));
        let (wake, changed) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let task = tokio::spawn(heartbeat_loop(
            groups.clone(),
            config.clone(),
            shared.clone(),
            wake.clone(),
            changed.clone(),
        ));
        Ok(GroupConsumer {
            consumer,
            groups,
            config,
            shared,
            wake,
            changed,
            task,
            held: BTreeMap::new(),
            paused: BTreeMap::new(),
            committed: BTreeMap::new(),
            last_commit: Instant::now(),
        })
    }

    /// The partitions this consumer holds.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.held.keys().cloned().collect()
    }

    /// Whether this consumer holds partitions and has read each held, unpaused one up to
    /// its high watermark as of its last fetch.
    pub fn caught_up(&self) -> bool {
        !self.held.is_empty() && self.consumer.caught_up()
    }

    /// The member id the coordinator gave (empty before the first answer).
    pub fn member_id(&self) -> String {
        lock(&self.shared).member_id.clone()
    }

    /// The next offset to return for a held partition.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.paused
            .get(tp)
            .copied()
            .or_else(|| self.consumer.position(&tp.topic, tp.partition))
    }

    fn positions(&self) -> BTreeMap<TopicPartition, i64> {
        self.held
            .keys()
            .filter_map(|tp| self.position(tp).map(|p| (tp.clone(), p)))
            .collect()
    }

    /// Applies the latest assignment (see the module docs).
    async fn reconcile(&mut self, events: &mut Vec<GroupEvent>) -> Result<(), Error> {
        let (assignment, lost, epoch, member) = {
            let mut m = lock(&self.shared);
            if let Some(e) = m.error.take() {
                return Err(e);
            }
            let Some(a) = m.assignment.take() else {
                return Ok(());
            };
            let lost = std::mem::take(&mut m.lost);
            (a, lost, m.epoch, m.member_id.clone())
        };
        let target: BTreeMap<TopicPartition, String> = assignment
            .into_iter()
            .map(|(topic, id, p)| (TopicPartition::new(topic, p), id))
            .collect();
        let revoked: Vec<TopicPartition> = self
            .held
            .keys()
            .filter(|tp| !target.contains_key(*tp))
            .cloned()
            .collect();
        if !revoked.is_empty() {
            if self.config.commit_on_revoke && !lost {
                let offsets: BTreeMap<TopicPartition, i64> = revoked
                    .iter()
                    .filter_map(|tp| self.position(tp).map(|p| (tp.clone(), p)))
                    .filter(|(tp, p)| self.committed.get(tp) != Some(p))
                    .collect();
                if let Err(e) = self
                    .groups
                    .commit_as(&self.config.group, &member, epoch, &offsets)
                    .await
                {
                    warn!(group = %self.config.group, error = %e, "commit on revocation failed");
                }
            }
            for tp in &revoked {
                self.consumer.unassign(&tp.topic, [tp.partition]);
                self.held.remove(tp);
                self.paused.remove(tp);
                self.committed.remove(tp);
            }
            events.push(GroupEvent::Revoked(revoked));
        }
        let added: Vec<(TopicPartition, String)> = target
            .iter()
            .filter(|(tp, _)| !self.held.contains_key(*tp))
            .map(|(tp, id)| (tp.clone(), id.clone()))
            .collect();
        if !added.is_empty() {
            let topics: BTreeSet<String> = added.iter().map(|(tp, _)| tp.topic.clone()).collect();
            let topics: Vec<String> = topics.into_iter().collect();
            let committed = self.groups.committed(&self.config.group, &topics).await?;
            for (tp, id) in &added {
                let start = committed
                    .get(tp)
                    .map_or(self.config.start, |c| Offset::At(c.offset));
                self.consumer
                    .assign(&tp.topic, [tp.partition], start)
                    .await?;
                if let Some(c) = committed.get(tp) {
                    self.committed.insert(tp.clone(), c.offset);
                }
                self.held.insert(tp.clone(), id.clone());
            }
            events.push(GroupEvent::Assigned(
                added.into_iter().map(|(tp, _)| tp).collect(),
            ));
        }
        if !events.is_empty() {
            self.report_held();
        }
        Ok(())
    }

    /// Tells the heartbeat task what this consumer holds now, and to heartbeat at once.
    fn report_held(&self) {
        lock(&self.shared).owned = self
            .held
            .iter()
            .map(|(tp, id)| (tp.topic.clone(), id.clone(), tp.partition))
            .collect();
        self.wake.notify_one();
    }

    /// Applies assignment changes, commits on the auto-commit interval, and returns the
    /// records fetched (waiting at most about the consumer's fetch wait).
    pub async fn poll(&mut self) -> Result<Polled, Error> {
        let mut polled = Polled::default();
        self.reconcile(&mut polled.events).await?;
        if let Some(every) = self.config.auto_commit_interval
            && self.last_commit.elapsed() >= every
            && let Err(e) = self.commit().await
        {
            debug!(group = %self.config.group, error = %e, "auto-commit failed");
        }
        let reading = self.held.len() > self.paused.len();
        if !reading {
            let _ = tokio::time::timeout(Duration::from_millis(200), self.changed.notified()).await;
            self.reconcile(&mut polled.events).await?;
            return Ok(polled);
        }
        match tokio::time::timeout(Duration::from_millis(250), self.consumer.poll()).await {
            Ok(Ok(records)) => polled.records = records,
            // A held topic was deleted: its partitions are gone (the coordinator drops them
            // from the assignment at the next heartbeat).
            Ok(Err(Error::UnknownTopic { topic }))
                if self.held.keys().any(|tp| tp.topic == topic) =>
            {
                self.drop_topic(&topic, &mut polled.events);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {}
        }
        Ok(polled)
    }

    /// Forgets the held partitions of a deleted topic.
    fn drop_topic(&mut self, topic: &str, events: &mut Vec<GroupEvent>) {
        let gone: Vec<TopicPartition> = self
            .held
            .keys()
            .filter(|tp| tp.topic == topic)
            .cloned()
            .collect();
        for tp in &gone {
            self.consumer.unassign(&tp.topic, [tp.partition]);
            self.held.remove(tp);
            self.paused.remove(tp);
            self.committed.remove(tp);
        }
        events.push(GroupEvent::Revoked(gone));
        self.report_held();
    }

    /// Commits the position of every held partition that moved since its last commit;
    /// answered once replicated.
    pub async fn commit(&mut self) -> Result<(), Error> {
        let offsets: BTreeMap<TopicPartition, i64> = self
            .positions()
            .into_iter()
            .filter(|(tp, p)| self.committed.get(tp) != Some(p))
            .collect();
        self.commit_offsets(offsets).await
    }

    /// Commits `offsets` (the next offset to read) for held partitions.
    pub async fn commit_offsets(
        &mut self,
        offsets: BTreeMap<TopicPartition, i64>,
    ) -> Result<(), Error> {
        let with = offsets
            .into_iter()
            .map(|(tp, o)| (tp, (o, String::new())))
            .collect();
        self.commit_with_metadata(with).await
    }

    /// Commits `offsets` (the next offset to read) with a metadata string each (at most 4096
    /// bytes, returned by [`Groups::committed`]) for held partitions.
    pub async fn commit_with_metadata(
        &mut self,
        offsets: BTreeMap<TopicPartition, (i64, String)>,
    ) -> Result<(), Error> {
        self.last_commit = Instant::now();
        let (member, epoch) = {
            let m = lock(&self.shared);
            (m.member_id.clone(), m.epoch)
        };
        self.groups
            .commit_as_with(&self.config.group, &member, epoch, &offsets)
            .await?;
        self.committed
            .extend(offsets.into_iter().map(|(tp, (o, _))| (tp, o)));
        Ok(())
    }

    /// Commits the positions of the held partitions in the background; the handle tells how
    /// it ended.
    pub fn commit_async(&mut self) -> JoinHandle<Result<(), Error>> {
        self.last_commit = Instant::now();
        let offsets = self.positions();
        let (member, epoch) = {
            let m = lock(&self.shared);
            (m.member_id.clone(), m.epoch)
        };
        let (groups, group) = (self.groups.clone(), self.config.group.clone());
        self.committed.extend(offsets.clone());
        tokio::spawn(async move { groups.commit_as(&group, &member, epoch, &offsets).await })
    }

    /// Moves a held partition's position.
    pub async fn seek(&mut self, tp: &TopicPartition, offset: Offset) -> Result<(), Error> {
        if let Some(pos) = self.paused.get_mut(tp)
            && let Offset::At(o) = offset
        {
            *pos = o;
            return Ok(());
        }
        self.consumer.seek(&tp.topic, tp.partition, offset).await
    }

    /// Stops fetching a held partition (it stays held; its position is kept).
    pub fn pause(&mut self, tp: &TopicPartition) {
        if self.held.contains_key(tp)
            && !self.paused.contains_key(tp)
            && let Some(pos) = self.consumer.position(&tp.topic, tp.partition)
        {
            self.consumer.unassign(&tp.topic, [tp.partition]);
            self.paused.insert(tp.clone(), pos);
        }
    }

    /// Fetches a paused partition again from its kept position.
    pub async fn resume(&mut self, tp: &TopicPartition) -> Result<(), Error> {
        if let Some(pos) = self.paused.remove(tp) {
            self.consumer
                .assign(&tp.topic, [tp.partition], Offset::At(pos))
                .await?;
        }
        Ok(())
    }

    /// Commits (when auto-commit is on) and leaves the group, so its partitions move at once.
    pub async fn close(mut self) -> Result<(), Error> {
        if self.config.auto_commit_interval.is_some()
            && let Err(e) = self.commit().await
        {
            warn!(group = %self.config.group, error = %e, "commit at close failed");
        }
        let (member_id, epoch) = {
            let mut m = lock(&self.shared);
            m.closed = true;
            (m.member_id.clone(), m.epoch)
        };
        self.task.abort();
        if member_id.is_empty() || epoch <= 0 {
            return Ok(());
        }
        self.groups
            .heartbeat(&HeartbeatRequest {
                group: self.config.group.clone(),
                member_id,
                member_epoch: -1,
                ..HeartbeatRequest::default()
            })
            .await
            .map(|_| ())
    }
}

impl Drop for GroupConsumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
