//! Lambda entry: settings, the DynamoDB and SES clients, created once; then
//! SQS batches go to the emails consumer (partial batch responses).

use aws_lambda_events::event::sqs::SqsEvent;
use community::config::Settings;
use community::mail::ses::SesMailer;
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
    let mailer = SesMailer::new(
        aws_sdk_ses::Client::new(&aws),
        std::env::var("SES_CONFIGURATION_SET").ok(),
    );
    let consumer = Arc::new(emails::EmailsConsumer {
        app: App::new(table, settings),
        mailer,
    });
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
