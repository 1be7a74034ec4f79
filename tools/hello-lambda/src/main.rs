//! Hello-world Lambda function: the baseline `scripts/lambda-sizes` compares
//! every function's zip size and cold init time against, built in the same
//! run with the same profile and the same `lambda_runtime` as the functions.
//! It sets up the same tracing subscriber and answers each event with itself.

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

#[tokio::main]
// The size baseline, not a function of the stack: it deliberately has no
// dependency on `community` (clippy.toml bans this call everywhere else).
#[allow(clippy::disallowed_methods)]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(|e: LambdaEvent<Value>| async move {
        Ok::<Value, lambda_runtime::Error>(e.payload)
    }))
    .await
}
