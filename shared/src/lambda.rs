//! What every Lambda entry wires once, at init: logs and metrics, settings,
//! the AWS configuration and the DynamoDB client; and the SQS consumer loop.

use crate::config::Settings;
use crate::live::Overrides;
use crate::queue::Consumer;
use crate::store::dynamo::DynamoTable;
use crate::tokens::TokenVerifier;
use crate::App;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use std::sync::Arc;
use tracing::Instrument;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Logs (JSON or text, at the function's log level: `crate::observe`) and
/// the business metrics' Embedded Metric Format recorder (`crate::metrics`).
/// Called by `init`; the relay, which needs no table, calls it alone.
pub fn init_telemetry() {
    crate::observe::init_logging();
    if let Err(e) = crate::metrics::install_emf(crate::observe::function_name()) {
        tracing::warn!(error = %e, "metrics recorder not installed");
    }
}

/// Telemetry, the table named by `TABLE_NAME` with the shared AWS
/// configuration, then the settings: the campaign applied to the table
/// (`crate::live`, read again every `live::TTL`) over the built-in files
/// and the deployment's environment. The first read must succeed (else
/// the init fails and Lambda retries it): a function never runs a soft
/// launch with the built-in, public, settings because a read failed. The
/// verifier of tokens sent to public routes comes from
/// `COMMUNITY_JWT_ISSUER`/`COMMUNITY_JWT_AUDIENCE` (`crate::tokens`).
pub async fn init() -> Result<(App<DynamoTable>, aws_config::SdkConfig), BoxError> {
    init_telemetry();
    let base = Settings::load(Settings::campaigns_dir_from_env().as_deref())?;
    let table_name = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let aws = aws_config::load_from_env().await;
    let table = DynamoTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name);
    let app = App::from_table(table, base, Overrides::default(), crate::live::TTL).with_verifier(
        TokenVerifier::for_issuer(
            std::env::var("COMMUNITY_JWT_ISSUER").ok(),
            std::env::var("COMMUNITY_JWT_AUDIENCE").ok(),
        )?,
    );
    app.refresh().await?;
    Ok((app, aws))
}

/// Runs an SQS consumer: each batch answered with a partial batch response,
/// in a `batch` span; the batch's metrics are flushed after it.
pub async fn run_consumer<C: Consumer + 'static>(consumer: C) -> Result<(), lambda_runtime::Error> {
    let consumer = Arc::new(consumer);
    lambda_runtime::run(service_fn(move |e: LambdaEvent<SqsEvent>| {
        let consumer = consumer.clone();
        async move {
            let request_id = e.context.request_id.clone();
            let span =
                crate::observe::batch_span(&request_id, consumer.name(), e.payload.records.len());
            let result = crate::queue::sqs(consumer.as_ref(), e.payload)
                .instrument(span)
                .await;
            crate::metrics::flush(&request_id);
            result.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
