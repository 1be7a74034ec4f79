//! Lambda entry: settings and the DynamoDB client, created once at init;
//! then each invocation is an SQS batch of the loyalty programme's answers
//! or the hourly schedule (`loyalty::handle`).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (app, _aws) = community::lambda::init().await?;
    let consumer = Arc::new(loyalty::AnswersConsumer { app });
    lambda_runtime::run(service_fn(move |e: LambdaEvent<Value>| {
        let consumer = consumer.clone();
        async move {
            let request_id = e.context.request_id.clone();
            let records = e.payload["Records"].as_array().map_or(0, Vec::len);
            let span =
                community::observe::batch_span(&request_id, community::loyalty::CONSUMER, records);
            let result = loyalty::handle(consumer.as_ref(), e.payload)
                .instrument(span)
                .await;
            community::metrics::flush(&request_id);
            result
        }
    }))
    .await
}
