//! `loyalty`: the loyalty programme's answers to redemptions (the inbound
//! `loyalty_answers` queue → `community::loyalty::AnswersConsumer`), and the
//! hourly check of the redemptions it has not answered in time (an
//! EventBridge schedule → the `RedemptionsOverdue` metric).

use aws_lambda_events::event::sqs::SqsEvent;
pub use community::loyalty::AnswersConsumer;
use community::store::Table;
use serde_json::{json, Value};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One invocation: an SQS batch of answers (its partial batch response is
/// the answer), or the schedule's event (the answer is the check's figures).
pub async fn handle<T: Table + Clone>(
    consumer: &AnswersConsumer<T>,
    payload: Value,
) -> Result<Value, BoxError> {
    if payload.get("Records").is_some() {
        let event: SqsEvent = serde_json::from_value(payload)?;
        let response = community::queue::sqs(consumer, event).await?;
        return Ok(serde_json::to_value(response)?);
    }
    let p = community::loyalty::check_overdue(&consumer.app).await?;
    Ok(json!(p))
}
