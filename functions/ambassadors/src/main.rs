//! Lambda entry: settings and the DynamoDB client, created once at init;
//! then each scheduled event runs the ambassadors' scoring.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (app, _aws) = community::lambda::init().await?;
    let app = Arc::new(app);
    lambda_runtime::run(service_fn(move |e: LambdaEvent<Value>| {
        let app = app.clone();
        async move {
            ambassadors::handle(app.as_ref(), e.payload)
                .await
                .map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}
