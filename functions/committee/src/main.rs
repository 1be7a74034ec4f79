//! Lambda entry: loads settings, creates the DynamoDB client once, and runs
//! the function's Router on API Gateway events.

use community::config::Settings;
use community::store::dynamo::DynamoTable;
use community::App;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    lambda_http::tracing::init_default_subscriber();
    let settings = Settings::load(Settings::campaigns_dir_from_env().as_deref())?;
    let table_name = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is not set")?;
    let aws = aws_config::load_from_env().await;
    let table = DynamoTable::new(aws_sdk_dynamodb::Client::new(&aws), table_name);
    lambda_http::run(committee::router(App::new(table, settings))).await
}
