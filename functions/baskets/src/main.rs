//! Lambda entry: settings and the DynamoDB client, created once at init;
//! then SQS batches of the loyalty programme's basket summaries go to the
//! baskets consumer (partial batch responses).

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let (app, _aws) = community::lambda::init().await?;
    community::lambda::run_consumer(baskets::BasketsConsumer { app }).await
}
