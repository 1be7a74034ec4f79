//! Lambda entry: settings and the DynamoDB client, created once at init;
//! then each DynamoDB stream batch (vote records only, by the event source's
//! filter) is aggregated, with a partial batch response by sequence number.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (app, _aws) = community::lambda::init().await?;
    let app = std::sync::Arc::new(app);
    lambda_runtime::run(service_fn(move |e: LambdaEvent<Value>| {
        let app = app.clone();
        async move {
            let records = e.payload["Records"].as_array().map_or(0, Vec::len);
            let span = community::observe::batch_span(&e.context.request_id, "thresholds", records);
            let response = thresholds::stream_batch(app.as_ref(), &e.payload)
                .instrument(span)
                .await;
            community::metrics::flush(&e.context.request_id);
            Ok::<Value, lambda_runtime::Error>(response)
        }
    }))
    .await
}
