//! Lambda entry: settings and the DynamoDB client, created once; then SQS
//! batches go to the consumer, answered with a partial batch response.

use aws_lambda_events::event::sqs::SqsEvent;
use community::config::Settings;
use community::store::dynamo::DynamoTable;
use community::App;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    let settings = Settings::load(Settings::campaigns_dir_from_env().as_deref())?;
    let table_name = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let aws = aws_config::load_from_env().await;
    let table = DynamoTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name);
    let app = App::new(table, settings);
    let consumer = Arc::new(thresholds::ThresholdsConsumer { app });
    lambda_runtime::run(service_fn(move |e: LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        async move {
            community::queue::sqs(consumer.as_ref(), e.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
