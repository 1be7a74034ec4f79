//! The event pipeline in local mode: the same relay routing and the same
//! consumers as on AWS, over durable queues kept in the embedded store.
//!
//! - relay: reads the embedded store's change feed (outbox inserts, vote
//!   record changes) and, for each event, enqueues it on every queue it is
//!   routed to and deletes the outbox item, in one write; then moves its
//!   feed cursor (a crash in between relays the event again).
//! - aggregator: the thresholds aggregator reads the same feed with its own
//!   cursor (`thresholds::drain_feed`), as it reads the stream on AWS.
//! - queues: a message is `LQ#{queue} / {visible_at_ms}#{event_id}`; a
//!   queue's poller takes up to 5 batches of 10 visible messages and runs
//!   them concurrently (as Lambda's SQS event source starts; up to 50 while
//!   a backlog lasts, as it scales out), each through the batch handler;
//!   it deletes
//!   the ones that succeeded and re-schedules the failed ones with
//!   exponential backoff; after `max_receives` receives a message moves to
//!   `LDLQ#{queue}` (the dead-letter store), listed at `GET /local/dead-letters`
//!   and redriven by `POST /local/dead-letters/redrive`.
//!
//! Everything survives a restart: a crash between steps re-delivers, and the
//! consumers' markers make re-delivery harmless.

use community::events::{from_change, routes, Queue};
use community::queue::{self, Consumer, Message};
use community::store::capacity::{self, Meter};
use community::store::feed::ChangeFeed;
use community::store::{Index, Item, Key, Query, SortKey, StoreError, Table, Write};
use community::thresholds;
use community::App;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

pub const MAX_RECEIVES: i64 = 5;
const BATCH: u32 = 10;
/// Batches of one queue handled at once: Lambda's SQS event source starts
/// with five concurrent batches (and scales up from there).
pub const CONCURRENT_BATCHES: usize = 5;
/// The most batches of one queue at once: while a queue's polls come back
/// full the poller adds five batches a poll, as Lambda's SQS event source
/// scales out under a backlog (by up to 300 concurrent invocations a
/// minute), and drops back to five when the backlog is gone.
pub const MAX_CONCURRENT_BATCHES: usize = 50;

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn queue_pk(q: Queue) -> String {
    format!("LQ#{}", q.name())
}

fn dlq_pk(q: Queue) -> String {
    format!("LDLQ#{}", q.name())
}

/// A queue message; `sent_ms` is when it was first sent (kept across
/// retries, like SQS's SentTimestamp).
fn message_item(
    q: Queue,
    visible_at: i64,
    sent_ms: i64,
    msg_id: &str,
    body: &str,
    receives: i64,
) -> Item {
    let v = json!({"pk": queue_pk(q), "sk": format!("{visible_at:015}#{msg_id}"), "msg_id": msg_id,
                   "body": body, "receive_count": receives, "sent_ms": sent_ms});
    match v {
        Value::Object(m) => m,
        _ => Item::new(),
    }
}

pub struct Pipeline<T> {
    pub table: T,
    pub consumers: HashMap<Queue, Arc<dyn Consumer>>,
    /// The thresholds aggregator's app: it reads the change feed itself.
    pub aggregator: Option<App<T>>,
    pub max_receives: i64,
    /// Counts each consumer batch as a call (`GET /local/capacity`).
    pub meter: Option<Arc<Meter>>,
}

/// The cause the local relay's store calls are attributed to: on AWS the
/// relay reads the table's stream, which bills no read units. Each event's
/// messages are attributed to `{RELAY_CAUSE}: {kind}`.
pub const RELAY_CAUSE: &str = "relay (local stand-in for the stream)";

/// The event kind of a queue message (`?` when its body is not an event).
fn kind_of(item: &Item) -> String {
    item.get("body")
        .and_then(Value::as_str)
        .and_then(|b| serde_json::from_str::<Value>(b).ok())
        .and_then(|v| v.get("kind").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The relay's reader name on the change feed.
pub const RELAY_READER: &str = "relay";
/// Changes the relay reads per pass.
const RELAY_BATCH: usize = 500;

impl<T: Table + ChangeFeed + Clone> Pipeline<T> {
    /// Moves outbox events to their queues; returns how many were relayed.
    pub async fn relay_once(&self) -> Result<usize, StoreError> {
        capacity::attributed(RELAY_CAUSE, self.relay_pass()).await
    }

    async fn relay_pass(&self) -> Result<usize, StoreError> {
        let changes = self.table.changes(RELAY_READER, RELAY_BATCH).await?;
        let mut n = 0;
        let mut acked = None;
        for c in &changes {
            let Some(event) = from_change(c) else {
                if c.pk.starts_with("OUTBOX#") {
                    // Never dropped: the relay stops here until it is mended.
                    tracing::error!(pk = %c.pk, sk = %c.sk, "unreadable outbox item; the relay stops here");
                    break;
                }
                acked = Some(c.seq.clone());
                continue;
            };
            let body = serde_json::to_string(&event).unwrap_or_default();
            let mut writes = Vec::new();
            if c.pk.starts_with("OUTBOX#") {
                // Relayed: the outbox item has done its work (on AWS it
                // expires by TTL instead).
                writes.push(Write::Delete {
                    key: Key::new(c.pk.clone(), c.sk.clone()),
                    cond: None,
                });
            }
            for q in routes(event.kind) {
                writes.push(Write::put(message_item(
                    *q,
                    now_ms(),
                    now_ms(),
                    &event.event_id,
                    &body,
                    0,
                )));
            }
            let cause = format!("{RELAY_CAUSE}: {}", event.kind.as_str());
            if !writes.is_empty() {
                if let Err(e) =
                    capacity::attributed(cause.clone(), self.table.transact(writes)).await
                {
                    if let Some(seq) = &acked {
                        self.table.ack(RELAY_READER, seq).await?;
                    }
                    return Err(e);
                }
            }
            n += 1;
            // The relay's calls count the events relayed.
            if let Some(m) = &self.meter {
                m.call(&cause);
            }
            acked = Some(c.seq.clone());
        }
        if let Some(seq) = &acked {
            self.table.ack(RELAY_READER, seq).await?;
        }
        Ok(n)
    }

    /// Runs the thresholds aggregator over the feed until it is empty;
    /// returns how many changes it read.
    pub async fn aggregate_once(&self) -> Result<usize, StoreError> {
        let Some(app) = &self.aggregator else {
            return Ok(0);
        };
        // Vote record changes only: casts and withdrawals.
        let cause = format!("consumer:{}/vote.cast", thresholds::CONSUMER);
        let started = std::time::Instant::now();
        let r = capacity::attributed(cause.clone(), thresholds::drain_feed(app)).await;
        if let Some(m) = &self.meter {
            if let Ok(n) = &r {
                if *n > 0 {
                    m.call(&cause);
                    m.handled(&cause, *n as u64);
                    m.busy(&cause, started.elapsed());
                }
            }
        }
        match r {
            Ok(n) => Ok(n),
            Err(community::error::Error::Store(e)) => Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "vote aggregation stopped; retried");
                Ok(0)
            }
        }
    }

    /// Per queue: messages waiting (visible or backing off), the age of the
    /// oldest in seconds (from its first send), and the dead letters.
    pub async fn queue_stats(&self) -> Result<Vec<Value>, StoreError> {
        let now = now_ms();
        let mut out = Vec::new();
        for q in Queue::ALL {
            let (mut messages, mut oldest) = (0u64, None::<i64>);
            let mut start = None;
            loop {
                let page = self
                    .table
                    .query(
                        &Query::new(Index::Primary, queue_pk(q))
                            .limit(1000)
                            .start_after(start.take()),
                    )
                    .await?;
                for i in &page.items {
                    messages += 1;
                    let sent = i.get("sent_ms").and_then(Value::as_i64).unwrap_or(now);
                    oldest = Some(oldest.map_or(sent, |o: i64| o.min(sent)));
                }
                match page.last_key {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
            let dead = self
                .table
                .query(&Query::new(Index::Primary, dlq_pk(q)).limit(1000))
                .await?
                .items
                .len();
            out.push(json!({"queue": q.name(), "messages": messages,
                "oldest_age_secs": oldest.map(|o| (now - o).max(0) as f64 / 1000.0),
                "dead_letters": dead}));
        }
        Ok(out)
    }

    /// Takes up to [`CONCURRENT_BATCHES`] batches of `q` and runs them at
    /// once, as Lambda's SQS event source does; returns how many messages
    /// it took.
    pub async fn consume_once(&self, q: Queue) -> Result<usize, StoreError> {
        self.consume_up_to(q, CONCURRENT_BATCHES).await
    }

    /// Takes up to `concurrent` batches of `q` and runs them at once.
    pub async fn consume_up_to(&self, q: Queue, concurrent: usize) -> Result<usize, StoreError> {
        let Some(consumer) = self.consumers.get(&q) else {
            return Ok(0);
        };
        let upto = format!("{:015}~", now_ms());
        let page = self
            .table
            .query(
                &Query::new(Index::Primary, queue_pk(q))
                    .sk(SortKey::Between("0".into(), upto))
                    .limit(BATCH * concurrent as u32),
            )
            .await?;
        if page.items.is_empty() {
            return Ok(0);
        }
        // Batches of one event kind each, so the meter attributes a
        // consumer's work to the kind that caused it
        // (`consumer:{name}/{kind}`); SQS batches on AWS mix kinds, and
        // cost the same per message.
        let mut by_kind: std::collections::BTreeMap<String, Vec<Item>> = Default::default();
        for i in page.items.iter() {
            by_kind.entry(kind_of(i)).or_default().push(i.clone());
        }
        let batches: Vec<(String, Vec<Item>)> = by_kind
            .into_iter()
            .flat_map(|(k, items)| {
                items
                    .chunks(BATCH as usize)
                    .map(|c| (k.clone(), c.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        // At most `concurrent` at a time (waves of them).
        let mut runs = Vec::with_capacity(batches.len());
        for wave in batches.chunks(concurrent.max(1)) {
            let started = wave
                .iter()
                .map(|(kind, items)| self.run_batch(q, consumer.as_ref(), kind, items));
            runs.extend(futures::future::join_all(started).await);
        }
        for r in runs {
            r?;
        }
        Ok(page.items.len())
    }

    /// Runs one batch, then deletes the messages that succeeded and
    /// re-schedules (or dead-letters) the others.
    async fn run_batch(
        &self,
        q: Queue,
        consumer: &dyn Consumer,
        kind: &str,
        items: &[Item],
    ) -> Result<(), StoreError> {
        let messages: Vec<Message> = items
            .iter()
            .map(|i| Message {
                id: i["sk"].as_str().unwrap_or_default().to_owned(),
                body: i["body"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        let span = community::observe::batch_span(
            &community::observe::new_request_id(),
            consumer.name(),
            messages.len(),
        );
        let cause = format!("consumer:{}/{kind}", consumer.name());
        if let Some(m) = &self.meter {
            m.call(&cause);
        }
        let started = std::time::Instant::now();
        let failed = capacity::attributed(
            cause.clone(),
            queue::handle(consumer, &messages).instrument(span),
        )
        .await;
        if let Some(m) = &self.meter {
            m.busy(&cause, started.elapsed());
            m.handled(&cause, messages.len().saturating_sub(failed.len()) as u64);
        }
        for item in items {
            let Some(key) = Key::of(item) else { continue };
            let msg_id = item["msg_id"].as_str().unwrap_or_default();
            let body = item["body"].as_str().unwrap_or_default();
            let delete = Write::Delete {
                key: key.clone(),
                cond: Some(community::store::Cond::Exists),
            };
            let writes = if !failed.contains(&key.sk) {
                vec![delete]
            } else {
                let receives = item["receive_count"].as_i64().unwrap_or(0) + 1;
                if receives >= self.max_receives {
                    tracing::error!(
                        queue = q.name(),
                        msg_id,
                        receives,
                        "message moved to the dead-letter store"
                    );
                    let dead = json!({"pk": dlq_pk(q), "sk": format!("{}#{msg_id}", community::domain::now()),
                                      "queue": q.name(), "msg_id": msg_id, "body": body, "receive_count": receives,
                                      "dead_at": community::domain::now()});
                    let Value::Object(dead) = dead else { continue };
                    vec![delete, Write::put(dead)]
                } else {
                    let backoff = 100i64 << receives.min(10);
                    let sent = item
                        .get("sent_ms")
                        .and_then(Value::as_i64)
                        .unwrap_or_else(now_ms);
                    vec![
                        delete,
                        Write::put(message_item(
                            q,
                            now_ms() + backoff,
                            sent,
                            msg_id,
                            body,
                            receives,
                        )),
                    ]
                }
            };
            match self.table.transact(writes).await {
                Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sends one message to a local queue, as a producer outside the system
    /// does to an SQS queue (the loyalty programme's answers); returns its id.
    pub async fn send(&self, q: Queue, body: &str) -> Result<String, StoreError> {
        let id = ulid::Ulid::new().to_string();
        let now = now_ms();
        self.table
            .transact(vec![Write::put(message_item(q, now, now, &id, body, 0))])
            .await?;
        Ok(id)
    }

    /// Dead letters of every queue.
    pub async fn dead_letters(&self) -> Result<Vec<Value>, StoreError> {
        let mut out = Vec::new();
        for q in Queue::ALL {
            let page = self
                .table
                .query(&Query::new(Index::Primary, dlq_pk(q)).limit(1000))
                .await?;
            for i in page.items {
                let event: Value = serde_json::from_str(i["body"].as_str().unwrap_or_default())
                    .unwrap_or(Value::Null);
                out.push(json!({"queue": i["queue"], "id": i["sk"], "msg_id": i["msg_id"],
                                "receive_count": i["receive_count"], "dead_at": i["dead_at"], "event": event}));
            }
        }
        Ok(out)
    }

    /// Puts dead letters back on their queue (all, or one queue's), with
    /// their receive count reset. Returns how many.
    pub async fn redrive(&self, only: Option<Queue>) -> Result<usize, StoreError> {
        let mut n = 0;
        for q in Queue::ALL
            .into_iter()
            .filter(|q| only.is_none_or(|o| o == *q))
        {
            let page = self
                .table
                .query(&Query::new(Index::Primary, dlq_pk(q)).limit(1000))
                .await?;
            for i in page.items {
                let Some(key) = Key::of(&i) else { continue };
                let msg_id = i["msg_id"].as_str().unwrap_or_default();
                let body = i["body"].as_str().unwrap_or_default();
                let writes = vec![
                    Write::Delete {
                        key,
                        cond: Some(community::store::Cond::Exists),
                    },
                    Write::put(message_item(q, now_ms(), now_ms(), msg_id, body, 0)),
                ];
                match self.table.transact(writes).await {
                    Ok(()) => n += 1,
                    Err(StoreError::ConditionFailed { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    /// Runs the relay and every consumer until the process ends.
    pub fn spawn(self: Arc<Self>) {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                match me.relay_once().await {
                    Ok(0) => tokio::time::sleep(Duration::from_millis(20)).await,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "relay failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            }
        });
        if self.aggregator.is_some() {
            let me = self.clone();
            tokio::spawn(async move {
                loop {
                    match me.aggregate_once().await {
                        Ok(0) => tokio::time::sleep(Duration::from_millis(20)).await,
                        Ok(_) => {}
                        Err(e) => {
                            tracing::error!(error = %e, "vote aggregation failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            });
        }
        for q in Queue::ALL {
            if !self.consumers.contains_key(&q) {
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                let mut concurrent = CONCURRENT_BATCHES;
                loop {
                    match me.consume_up_to(q, concurrent).await {
                        Ok(n) if n < BATCH as usize * concurrent => {
                            concurrent = CONCURRENT_BATCHES;
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        Ok(_) => {
                            concurrent =
                                (concurrent + CONCURRENT_BATCHES).min(MAX_CONCURRENT_BATCHES);
                        }
                        Err(e) => {
                            tracing::error!(queue = q.name(), error = %e, "consumer failed; retrying");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            });
        }
    }

    /// Drains, then waits for the messages a consumer failed and
    /// re-scheduled (exponential backoff) until none is left in a consumed
    /// queue — they were applied or dead-lettered — or `timeout` passes.
    /// Returns whether everything settled. Tests use it where one event's
    /// effect may wait for another's (the points of a hidden comment wait for
    /// the comment's credit).
    pub async fn settle(&self, timeout: Duration) -> Result<bool, StoreError> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            self.drain().await?;
            let mut waiting = false;
            for q in self.consumers.keys() {
                let page = self
                    .table
                    .query(&Query::new(Index::Primary, queue_pk(*q)).limit(1))
                    .await?;
                waiting |= !page.items.is_empty();
            }
            if !waiting {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= until {
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Relays and consumes until every queue is empty of visible messages
    /// (tests and the CLI use this instead of the background loops).
    pub async fn drain(&self) -> Result<(), StoreError> {
        for _ in 0..10_000 {
            let mut moved = self.relay_once().await?;
            moved += self.aggregate_once().await?;
            for q in Queue::ALL {
                moved += self.consume_once(q).await?;
            }
            if moved == 0 {
                return Ok(());
            }
        }
        Ok(())
    }
}
