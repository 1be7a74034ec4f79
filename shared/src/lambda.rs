//! What every Lambda entry wires once, at init: settings, the AWS
//! configuration and the DynamoDB client; and the SQS consumer loop.

use crate::config::Settings;
use crate::queue::Consumer;
use crate::store::dynamo::DynamoTable;
use crate::App;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Settings (campaign files, environment) and the table named by
/// `TABLE_NAME`, with the shared AWS configuration.
pub async fn init() -> Result<(App<DynamoTable>, aws_config::SdkConfig), BoxError> {
    let settings = Settings::load(Settings::campaigns_dir_from_env().as_deref())?;
    let table_name = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let aws = aws_config::load_from_env().await;
    let table = DynamoTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name);
    Ok((App::new(table, settings), aws))
}

/// Runs an SQS consumer: each batch answered with a partial batch response.
pub async fn run_consumer<C: Consumer + 'static>(consumer: C) -> Result<(), lambda_runtime::Error> {
    let consumer = Arc::new(consumer);
    lambda_runtime::run(service_fn(move |e: LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        async move {
            crate::queue::sqs(consumer.as_ref(), e.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
