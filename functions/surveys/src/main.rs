//! Lambda entry: settings and the DynamoDB client, created once at init;
//! then API Gateway events run through the function's Router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (app, _aws) = community::lambda::init().await?;
    lambda_http::run(surveys::router(app)).await
}
