//! Erasure deletes the member's sign-in: `DELETE /members/me` through the
//! function's Lambda router, with the Cognito adapter against moto's
//! cognito-idp (a pool that signs in by email, as the stack's).

use community::testing::{call, embedded_app, join, As};

#[tokio::test]
async fn erasure_deletes_the_members_cognito_user() {
    use aws_sdk_cognitoidentityprovider as cip;
    let Some(ep) = community::testing::moto_endpoint() else {
        return;
    };
    let conf = cip::Config::builder()
        .behavior_version(cip::config::BehaviorVersion::latest())
        .endpoint_url(&ep)
        .region(cip::config::Region::new("eu-west-3"))
        .credentials_provider(cip::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    let client = cip::Client::from_conf(conf);
    let pool = client
        .create_user_pool()
        .pool_name(format!("members-{}", ulid::Ulid::new()))
        .username_attributes(cip::types::UsernameAttributeType::Email)
        .send()
        .await
        .expect("pool")
        .user_pool
        .and_then(|p| p.id)
        .expect("pool id");
    let email = format!(
        "marie-{}@example.fr",
        ulid::Ulid::new().to_string().to_lowercase()
    );
    let user = client
        .admin_create_user()
        .user_pool_id(&pool)
        .username(&email)
        .message_action(cip::types::MessageActionType::Suppress)
        .send()
        .await
        .expect("user")
        .user
        .expect("user");
    // Cognito names a user of an email pool by its `sub`: the member id.
    let sub = user
        .attributes()
        .iter()
        .find(|a| a.name() == "sub")
        .and_then(|a| a.value())
        .expect("sub")
        .to_owned();
    assert_eq!(user.username(), Some(sub.as_str()));

    let (app, _d) = embedded_app(|_| {});
    // (The member's address in the community need not be the pool's.)
    let marie = As {
        sub: sub.clone(),
        email: format!("{sub}@example.fr"),
        groups: vec![],
    };
    join(&app, &marie).await;
    let directory = community::identity::CognitoDirectory {
        client: client.clone(),
        user_pool_id: pool.clone(),
    };
    let router = signup::router_with_directory(app.clone(), std::sync::Arc::new(directory));
    let gone = call(&router, "DELETE", "/members/me", Some(&marie), None).await;
    assert_eq!(gone.status, 202, "{}", gone.body);
    let after = client
        .admin_get_user()
        .user_pool_id(&pool)
        .username(&sub)
        .send()
        .await;
    assert!(
        after
            .as_ref()
            .err()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_user_not_found_exception()),
        "the Cognito user is deleted"
    );
    // Idempotent: a retry (the user already gone) is still a 202.
    let again = call(&router, "DELETE", "/members/me", Some(&marie), None).await;
    assert_eq!(again.status, 202, "{}", again.body);
}
