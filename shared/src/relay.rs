//! The relay on AWS: DynamoDB Streams → SQS. The `relay` function receives
//! stream batches (filtered to the streamed items, `store::feed::STREAMED`);
//! the event of each record (`events::from_change`: an outbox insert, a vote
//! record put or deleted) is sent to the queues its kind is routed to
//! (`events::routes`), ten to a `SendMessageBatch` request. A record whose
//! event cannot be read or sent is reported as the batch's first failure, so
//! Lambda retries the stream from there (and after its retries sends the
//! batch to the relay's failure queue): events are delivered at least once,
//! and the consumers' markers absorb the repeats.

use crate::events::{from_change, routes, Event, Queue};
use crate::store::feed::Change;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::HashMap;

/// Messages per `SendMessageBatch` request (SQS's maximum).
pub const SEND_BATCH: usize = 10;

#[derive(Debug, thiserror::Error)]
#[error("could not send to the {queue} queue: {message}")]
pub struct SendError {
    pub queue: &'static str,
    pub message: String,
}

/// Sending events to a queue.
#[async_trait]
pub trait Outbound: Send + Sync {
    /// Sends up to [`SEND_BATCH`] events to `queue` in one request; returns
    /// the positions (in `events`) that were not sent.
    async fn send_batch(&self, queue: Queue, events: &[Event]) -> Result<Vec<usize>, SendError>;
}

/// The IAM action [`SqsOutbound`]'s `SendMessageBatch` request needs (IAM
/// authorises a batch send as `SendMessage`).
pub const SEND_ACTION: &str = "sqs:SendMessage";

/// Sends through the port, recording the send for the least-privilege proof
/// ([`crate::access`]): every send of the relay goes through here.
pub async fn send<O: Outbound + ?Sized>(
    out: &O,
    queue: Queue,
    events: &[Event],
) -> Result<Vec<usize>, SendError> {
    if crate::access::recording() {
        crate::access::record(SEND_ACTION, &format!("queue:{}", queue.name()), None, None);
    }
    out.send_batch(queue, events).await
}

/// SQS, with one queue URL per queue.
pub struct SqsOutbound {
    pub client: aws_sdk_sqs::Client,
    pub urls: HashMap<Queue, String>,
}

impl SqsOutbound {
    /// Queue URLs from `POINTS_QUEUE_URL`, `EMAILS_QUEUE_URL`,
    /// `LOYALTY_QUEUE_URL`, `INSIGHTS_QUEUE_URL`.
    pub fn from_env(client: aws_sdk_sqs::Client) -> Result<Self, String> {
        let mut urls = HashMap::new();
        for q in Queue::ROUTED {
            let var = format!("{}_QUEUE_URL", q.name().to_uppercase());
            let url = std::env::var(&var).map_err(|_| format!("{var} is not set"))?;
            urls.insert(q, url);
        }
        Ok(SqsOutbound { client, urls })
    }
}

#[async_trait]
impl Outbound for SqsOutbound {
    async fn send_batch(&self, queue: Queue, events: &[Event]) -> Result<Vec<usize>, SendError> {
        let err = |message: String| SendError {
            queue: queue.name(),
            message,
        };
        let url = self
            .urls
            .get(&queue)
            .ok_or_else(|| err("no queue URL".into()))?;
        let mut req = self.client.send_message_batch().queue_url(url);
        for (i, e) in events.iter().enumerate() {
            let body = serde_json::to_string(e).map_err(|e| err(e.to_string()))?;
            let entry = aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .build()
                .map_err(|e| err(e.to_string()))?;
            req = req.entries(entry);
        }
        let out = req
            .send()
            .await
            .map_err(|e| err(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))?;
        let mut failed = Vec::new();
        for f in out.failed() {
            tracing::warn!(
                queue = queue.name(),
                code = f.code(),
                "an entry of a batch send failed"
            );
            if let Ok(i) = f.id().parse::<usize>() {
                failed.push(i);
            }
        }
        Ok(failed)
    }
}

/// Relays one stream batch; returns the Lambda response naming the first
/// record (by sequence number) that must be delivered again, if any.
pub async fn relay<O: Outbound + ?Sized>(out: &O, batch: &Value) -> Value {
    crate::access::function("relay", relay_inner(out, batch)).await
}

async fn relay_inner<O: Outbound + ?Sized>(out: &O, batch: &Value) -> Value {
    let empty = Vec::new();
    let records = batch["Records"].as_array().unwrap_or(&empty);
    let mut changes = Vec::with_capacity(records.len());
    let mut first_failed: Option<usize> = None;
    for (i, r) in records.iter().enumerate() {
        match Change::from_stream_record(r) {
            Some(c) => changes.push((i, c)),
            None => {
                tracing::error!(
                    record = i,
                    "unreadable stream record; the stream retries from here"
                );
                first_failed.get_or_insert(i);
                break;
            }
        }
    }
    let upto = first_failed.unwrap_or(records.len());
    let changes: Vec<(usize, Change)> = changes.into_iter().filter(|(i, _)| *i < upto).collect();
    if let Some(f) = relay_changes(out, &changes).await {
        first_failed = Some(first_failed.map_or(f, |x| x.min(f)));
    }
    match first_failed {
        Some(i) => {
            let seq = records[i]["dynamodb"]["SequenceNumber"].clone();
            json!({"batchItemFailures": [{"itemIdentifier": seq}]})
        }
        None => json!({"batchItemFailures": []}),
    }
}

/// Sends the events of `changes` (each with its position in the batch) to
/// their queues; returns the position of the first change not relayed.
pub async fn relay_changes<O: Outbound + ?Sized>(
    out: &O,
    changes: &[(usize, Change)],
) -> Option<usize> {
    let mut first_failed: Option<usize> = None;
    let mut per_queue: HashMap<Queue, Vec<(usize, Event)>> = HashMap::new();
    for (i, c) in changes {
        if crate::events::is_outbox_pk(&c.pk) && c.name == crate::store::feed::ChangeName::Insert {
            // An outbox item whose event does not read is a defect: stop
            // here rather than drop it (the stream retries, then the batch
            // goes to the failure queue).
            if from_change(c).is_none() {
                tracing::error!(pk = %c.pk, sk = %c.sk, "unreadable outbox item; the stream retries from here");
                first_failed = Some(first_failed.map_or(*i, |f| f.min(*i)));
                break;
            }
        }
        let Some(event) = from_change(c) else {
            continue;
        };
        for q in routes(event.kind) {
            per_queue.entry(*q).or_default().push((*i, event.clone()));
        }
    }
    for (q, events) in per_queue {
        let events: Vec<(usize, Event)> = events
            .into_iter()
            .filter(|(i, _)| first_failed.is_none_or(|f| *i < f))
            .collect();
        for chunk in events.chunks(SEND_BATCH) {
            let batch: Vec<Event> = chunk.iter().map(|(_, e)| e.clone()).collect();
            let failed: Vec<usize> = match send(out, q, &batch).await {
                Ok(f) => f
                    .into_iter()
                    .filter_map(|k| chunk.get(k).map(|(i, _)| *i))
                    .collect(),
                Err(e) => {
                    tracing::error!(queue = q.name(), error = %crate::observe::redact(&e.to_string()), "relay failed; the stream retries from the first record not sent");
                    chunk.iter().map(|(i, _)| *i).collect()
                }
            };
            if let Some(f) = failed.into_iter().min() {
                first_failed = Some(first_failed.map_or(f, |x| x.min(f)));
            }
        }
    }
    for (i, c) in changes {
        if first_failed.is_some_and(|f| *i >= f) {
            break;
        }
        if let Some(e) = from_change(c) {
            tracing::info!(event_id = %e.event_id, kind = e.kind.as_str(), "relayed");
        }
    }
    first_failed
}

/// What [`replay`] sent.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize)]
pub struct Replayed {
    /// Outbox events found in the range.
    pub events: u64,
    /// Messages sent, per queue.
    pub sent: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Send(#[from] SendError),
    #[error("the {queue} queue refused {count} of the replayed messages")]
    Refused { queue: &'static str, count: usize },
    #[error("the range is empty: --from must be before --to")]
    EmptyRange,
}

/// Outbox items read per page while replaying.
const REPLAY_PAGE: u32 = 200;

/// Sends again, to the queues their kinds are routed to (or to `only`),
/// the outbox events written between `from_ms` and `to_ms` (Unix ms,
/// inclusive; an event id is a ULID, so its time is its sort key's prefix:
/// one range `Query` per outbox bucket, page by page, nothing scanned).
///
/// For operations: when the relay's failure queue reports a stream batch it
/// gave up on, or a queue's messages were purged, replay that time. The
/// consumers' markers make events already applied change nothing, so a
/// range wider than needed is harmless. Outbox items live a week (TTL),
/// which bounds how far back a replay reaches. Vote events are not in the
/// outbox (the vote record is the event): their counts are the aggregator's
/// (`thresholds`), and a voter's last active day is the only other effect.
pub async fn replay<T, O>(
    table: &T,
    out: &O,
    from_ms: u64,
    to_ms: u64,
    only: Option<Queue>,
) -> Result<Replayed, ReplayError>
where
    T: crate::store::Table + ?Sized,
    O: Outbound + ?Sized,
{
    use crate::store::{Index, Query, SortKey};
    if from_ms > to_ms {
        return Err(ReplayError::EmptyRange);
    }
    let lo = ulid::Ulid::from_parts(from_ms, 0).to_string();
    let hi = ulid::Ulid::from_parts(to_ms, u128::MAX).to_string();
    let mut report = Replayed::default();
    for bucket in 0..crate::events::OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, crate::events::outbox_pk(bucket))
            .sk(SortKey::Between(lo.clone(), hi.clone()))
            .limit(REPLAY_PAGE);
        let mut start = None;
        loop {
            let page = table.query(&q.clone().start_after(start)).await?;
            let mut per_queue: HashMap<Queue, Vec<Event>> = HashMap::new();
            for item in &page.items {
                let Some(event) = Event::from_item(item) else {
                    tracing::error!(
                        pk = item
                            .get("pk")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default(),
                        sk = item
                            .get("sk")
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default(),
                        "unreadable outbox item skipped by the replay"
                    );
                    continue;
                };
                report.events += 1;
                for queue in routes(event.kind) {
                    if only.is_none_or(|o| o == *queue) {
                        per_queue.entry(*queue).or_default().push(event.clone());
                    }
                }
            }
            for (queue, events) in per_queue {
                for chunk in events.chunks(SEND_BATCH) {
                    let refused = send(out, queue, chunk).await?;
                    if !refused.is_empty() {
                        return Err(ReplayError::Refused {
                            queue: queue.name(),
                            count: refused.len(),
                        });
                    }
                    *report.sent.entry(queue.name()).or_default() += chunk.len() as u64;
                }
            }
            match page.last_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    tracing::info!(events = report.events, sent = ?report.sent, "replayed");
    Ok(report)
}
