//! Lambda entry: settings, the DynamoDB and SES clients, created once at
//! init; then each scheduled event runs the comment digests.

use community::mail::ses::SesMailer;
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (app, aws) = community::lambda::init().await?;
    let mailer = Arc::new(
        SesMailer::new(
            aws_sdk_ses::Client::new(&aws),
            std::env::var("SES_CONFIGURATION_SET")
                .ok()
                .filter(|s| !s.is_empty()),
        )
        // This instance's share of the account's SES send rate (ses.rs).
        .paced(community::mail::ses::instance_rate(
            std::env::var("SES_MAX_SEND_RATE").ok().as_deref(),
            std::env::var("EMAILS_MAX_CONCURRENCY").ok().as_deref(),
        )),
    );
    let app = Arc::new(app);
    lambda_runtime::run(service_fn(move |e: LambdaEvent<Value>| {
        let (app, mailer) = (app.clone(), mailer.clone());
        async move {
            digests::handle(app.as_ref(), mailer.as_ref(), e.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
