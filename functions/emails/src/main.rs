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
    )
    // This instance's share of the account's SES send rate (ses.rs).
    .paced(community::mail::ses::instance_rate(
        std::env::var("SES_MAX_SEND_RATE").ok().as_deref(),
        std::env::var("EMAILS_MAX_CONCURRENCY").ok().as_deref(),
    ));
    community::lambda::run_consumer(emails::EmailsConsumer { app, mailer }).await
}
