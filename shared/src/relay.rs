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
        for q in Queue::ALL {
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
        if c.pk.starts_with("OUTBOX#") && c.name == crate::store::feed::ChangeName::Insert {
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
            let failed: Vec<usize> = match out.send_batch(q, &batch).await {
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
