//! Queue consumers: the batch handling every consumer shares, on AWS (an SQS
//! event → `SqsBatchResponse` naming only the failed messages) and locally
//! (the local server's durable queues call `handle` the same way).

use crate::error::Result;
use crate::events::Event;
use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use tracing::Instrument;

/// A message as a consumer sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub body: String,
}

#[async_trait]
pub trait Consumer: Send + Sync {
    /// The consumer's name (its idempotency markers are `DONE#{name}#…`).
    fn name(&self) -> &'static str;

    /// The function crate (`functions/<crate>`) whose Lambda runs this
    /// consumer: the entry its AWS calls are recorded under for the
    /// least-privilege proof ([`crate::access`]). Its name unless it says.
    fn function(&self) -> &'static str {
        self.name()
    }

    /// Reads a message body. Events by default; a consumer of an inbound
    /// queue (messages from outside, `loyalty::AnswersConsumer`) reads its
    /// own format into an event. An error makes the message poison.
    fn parse(&self, body: &str) -> std::result::Result<Event, String> {
        serde_json::from_str::<Event>(body).map_err(|e| e.to_string())
    }

    /// Runs before each batch: a consumer with an app refreshes its
    /// run-time settings there (`crate::App::refresh`), so a campaign
    /// applied to the table reaches it within the settings' TTL.
    async fn prepare(&self) {}

    /// Applies one event, exactly once: the effect and its marker are one write.
    async fn apply(&self, event: &Event) -> Result<()>;

    /// Applies a batch; returns the ids of the messages that failed. The
    /// default applies each event on its own.
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        let mut failed = Vec::new();
        for (id, event) in batch {
            let span = tracing::info_span!("message", consumer = self.name(), message_id = %id, event_id = %event.event_id, kind = event.kind.as_str());
            if let Err(e) = self.apply(event).instrument(span).await {
                tracing::warn!(consumer = self.name(), message_id = %id, event_id = %event.event_id, error = %crate::observe::redact(&e.to_string()), "event failed; it will be retried");
                failed.push(id.clone());
            }
        }
        failed
    }
}

/// Handles a batch: unparseable messages fail (and reach the dead-letter
/// queue after the configured receives); the rest go to the consumer.
pub async fn handle<C: Consumer + ?Sized>(consumer: &C, messages: &[Message]) -> Vec<String> {
    consumer.prepare().await;
    let mut failed = Vec::new();
    let mut batch = Vec::with_capacity(messages.len());
    for m in messages {
        match consumer.parse(&m.body) {
            Ok(e) => batch.push((m.id.clone(), e)),
            Err(e) => {
                tracing::error!(consumer = consumer.name(), message_id = %m.id, error = %crate::observe::redact(&e), "poison message: not what this queue carries");
                failed.push(m.id.clone());
            }
        }
    }
    failed.extend(consumer.apply_batch(&batch).await);
    failed
}

#[derive(Debug, thiserror::Error)]
#[error("every message of the batch failed ({0})")]
pub struct WholeBatchFailed(pub usize);

/// The Lambda side: an SQS event in, a partial batch response out. When
/// every record failed the whole invocation fails, so SQS retries the batch.
pub async fn sqs<C: Consumer + ?Sized>(
    consumer: &C,
    event: SqsEvent,
) -> std::result::Result<SqsBatchResponse, WholeBatchFailed> {
    crate::access::function(consumer.function(), sqs_batch(consumer, event)).await
}

async fn sqs_batch<C: Consumer + ?Sized>(
    consumer: &C,
    event: SqsEvent,
) -> std::result::Result<SqsBatchResponse, WholeBatchFailed> {
    let messages: Vec<Message> = event
        .records
        .into_iter()
        .map(|r| Message {
            id: r.message_id.unwrap_or_default(),
            body: r.body.unwrap_or_default(),
        })
        .collect();
    let failed = handle(consumer, &messages).await;
    if !messages.is_empty() && failed.len() == messages.len() {
        return Err(WholeBatchFailed(failed.len()));
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failed
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    Ok(response)
}
