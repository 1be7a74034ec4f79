//! Lambda entry: settings and the DynamoDB client, created once at init;
//! then SQS batches of SES events go to the feedback consumer (partial batch
//! responses).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (app, _aws) = community::lambda::init().await?;
    community::lambda::run_consumer(mailfeedback::FeedbackConsumer { app }).await
}
