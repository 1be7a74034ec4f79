//! Lambda entry: settings, the DynamoDB client and the Cognito user pool
//! (erasure deletes the member's sign-in), created once at init; then API
//! Gateway events run through the function's Router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    let (app, aws) = community::lambda::init().await?;
    let directory = community::identity::CognitoDirectory::from_env(
        aws_sdk_cognitoidentityprovider::Client::new(&aws),
    )?;
    lambda_http::run(signup::router_with_directory(
        app,
        std::sync::Arc::new(directory),
    ))
    .await
}
