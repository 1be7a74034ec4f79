//! Lambda entry: settings, the DynamoDB and SES clients, created once at
//! init; then SQS batches go to the emails consumer (partial batch responses).

use community::mail::ses::SesMailer;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (app, aws) = community::lambda::init().await?;
    let mailer = SesMailer::new(
        aws_sdk_ses::Client::new(&aws),
        std::env::var("SES_CONFIGURATION_SET")
            .ok()
            .filter(|s| !s.is_empty()),
    );
    community::lambda::run_consumer(emails::EmailsConsumer { app, mailer }).await
}
