//! Lambda entry: the SQS client and queue URLs, created once; then each
//! DynamoDB stream batch is relayed (partial batch response by sequence number).

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    community::lambda::init_telemetry();
    let aws = aws_config::load_from_env().await;
    let out = Arc::new(relay::SqsOutbound::from_env(aws_sdk_sqs::Client::new(
        &aws,
    ))?);
    lambda_runtime::run(service_fn(move |e: LambdaEvent<Value>| {
        let out = out.clone();
        let records = e.payload["Records"].as_array().map_or(0, Vec::len);
        let span = community::observe::batch_span(&e.context.request_id, "relay", records);
        async move {
            Ok::<Value, lambda_runtime::Error>(
                relay::relay(out.as_ref(), &e.payload)
                    .instrument(span)
                    .await,
            )
        }
    }))
    .await
}
