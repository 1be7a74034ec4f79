//! The relay on AWS: DynamoDB Streams → SQS. The `relay` function receives
//! stream batches; every INSERT of an outbox item (`OUTBOX#…`) is sent to the
//! queues its kind is routed to (`events::routes`). A record that cannot be
//! sent is reported as the batch's first failure, so Lambda retries the
//! stream from there: events are delivered at least once, in order per shard,
//! and the consumers' markers absorb the repeats.

use crate::events::{routes, Event, Queue};
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
#[error("could not send to the {queue} queue: {message}")]
pub struct SendError {
    pub queue: &'static str,
    pub message: String,
}

/// Sending events to a queue.
#[async_trait]
pub trait Outbound: Send + Sync {
    async fn send(&self, queue: Queue, event: &Event) -> Result<(), SendError>;
}

/// SQS, with one queue URL per queue.
pub struct SqsOutbound {
    pub client: aws_sdk_sqs::Client,
    pub urls: HashMap<Queue, String>,
}

impl SqsOutbound {
    /// Queue URLs from `POINTS_QUEUE_URL`, `EMAILS_QUEUE_URL`,
    /// `THRESHOLDS_QUEUE_URL`, `LOYALTY_QUEUE_URL`.
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
    async fn send(&self, queue: Queue, event: &Event) -> Result<(), SendError> {
        let err = |message: String| SendError {
            queue: queue.name(),
            message,
        };
        let url = self
            .urls
            .get(&queue)
            .ok_or_else(|| err("no queue URL".into()))?;
        let body = serde_json::to_string(event).map_err(|e| err(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err(aws_sdk_sqs::error::DisplayErrorContext(e).to_string()))
    }
}

/// DynamoDB JSON (`{"S": "x"}`, `{"N": "1"}`, `{"M": {...}}`…) to plain JSON.
pub fn from_dynamo_json(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return Value::Null;
    };
    let Some((t, inner)) = obj.iter().next() else {
        return Value::Null;
    };
    match t.as_str() {
        "S" => inner.clone(),
        "N" => inner
            .as_str()
            .and_then(|n| {
                n.parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| n.parse::<f64>().ok().map(|f| json!(f)))
            })
            .unwrap_or(Value::Null),
        "BOOL" => inner.clone(),
        "NULL" => Value::Null,
        "M" => Value::Object(
            inner
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), from_dynamo_json(v)))
                        .collect::<Map<_, _>>()
                })
                .unwrap_or_default(),
        ),
        "L" => Value::Array(
            inner
                .as_array()
                .map(|a| a.iter().map(from_dynamo_json).collect())
                .unwrap_or_default(),
        ),
        "SS" | "NS" => inner.clone(),
        _ => Value::Null,
    }
}

/// The outbox event in a stream record, if the record is an outbox INSERT.
pub fn event_of(record: &Value) -> Option<Event> {
    if record["eventName"] != "INSERT" {
        return None;
    }
    let image = &record["dynamodb"]["NewImage"];
    let pk = image["pk"]["S"].as_str()?;
    if !pk.starts_with("OUTBOX#") {
        return None;
    }
    serde_json::from_value(from_dynamo_json(&image["event"])).ok()
}

/// Relays one stream batch; returns the Lambda response with the first
/// failed record (by sequence number), if any.
pub async fn relay<O: Outbound + ?Sized>(out: &O, batch: &Value) -> Value {
    let empty = Vec::new();
    let records = batch["Records"].as_array().unwrap_or(&empty);
    for r in records {
        let Some(event) = event_of(r) else { continue };
        for q in routes(event.kind) {
            if let Err(e) = out.send(*q, &event).await {
                tracing::error!(event_id = %event.event_id, error = %crate::observe::redact(&e.to_string()), "relay failed; the stream retries from this record");
                let seq = r["dynamodb"]["SequenceNumber"].clone();
                return json!({"batchItemFailures": [{"itemIdentifier": seq}]});
            }
        }
        tracing::info!(event_id = %event.event_id, kind = event.kind.as_str(), "relayed");
    }
    json!({"batchItemFailures": []})
}
