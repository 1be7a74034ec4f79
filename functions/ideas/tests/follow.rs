//! The caller's state on an idea (`"me"` on `GET /ideas/{id}`) and the
//! follow a comment makes, through the ideas function's Lambda entry, on
//! both adapters. The token reaches the public route as a header and the
//! function verifies it (`community::http::access`), as on AWS.

use community::domain::IdeaId;
use community::store::Table;
use community::testing::{call, call_event, caller, event, join, member, post_idea, TestIssuer};
use community::App;
use serde_json::json;

async fn scenario<T: Table + Clone>(app: App<T>) {
    let issuer = TestIssuer::start().await;
    let app = app.with_verifier(Some(issuer.verifier()));
    let r = ideas::router(app.clone());
    let (alice, bob, carl, dan) = (
        member("alice"),
        member("bob"),
        member("carl"),
        member("dan"),
    );
    for m in [&alice, &bob, &carl] {
        join(&app, m).await;
    }
    let idea = post_idea(&app, &alice).await;
    let id = IdeaId::parse(&idea).expect("id");
    let path = format!("/ideas/{idea}");
    let get = |who: Option<&community::testing::As>| {
        let auth = who.map(|w| format!("Bearer {}", issuer.token(w)));
        let headers: Vec<(&str, &str)> = auth
            .as_deref()
            .map(|a| vec![("authorization", a)])
            .unwrap_or_default();
        let e = event("GET", &path, None, None, &headers);
        let r = r.clone();
        async move { call_event(&r, &e).await }
    };

    // Without a token: the public view, cacheable.
    let res = get(None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert!(res.body.get("me").is_none(), "{}", res.body);
    assert!(res
        .header("cache-control")
        .is_some_and(|c| c.contains("public")));
    // With one: the caller's state, never cached for others.
    let res = get(Some(&bob)).await;
    assert_eq!(res.body["me"], json!({"voted": false, "following": false}));
    assert_eq!(res.body["id"], idea);
    assert_eq!(res.header("cache-control"), Some("private, no-cache"));
    community::votes::cast(&app, &caller(&bob), &id)
        .await
        .expect("vote");
    let res = get(Some(&bob)).await;
    assert_eq!(res.body["me"], json!({"voted": true, "following": true}));
    community::follows::set(&app, &caller(&bob), &id, false)
        .await
        .expect("unfollow");
    let res = get(Some(&bob)).await;
    assert_eq!(res.body["me"], json!({"voted": true, "following": false}));
    // A token of someone who never signed up: nothing voted or followed.
    let res = get(Some(&dan)).await;
    assert_eq!(res.body["me"], json!({"voted": false, "following": false}));

    // Commenting follows, unless auto_follow is off or the member unfollowed.
    let comments = format!("/ideas/{idea}/comments");
    let body = || Some(json!({"body": "Très bonne idée"}));
    let res = call(&r, "POST", &comments, Some(&carl), body()).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(get(Some(&carl)).await.body["me"]["following"], true);
    let res = call(&r, "POST", &comments, Some(&bob), body()).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(
        get(Some(&bob)).await.body["me"]["following"],
        false,
        "bob's unfollow sticks"
    );
    community::members::update(
        &app,
        &caller(&alice),
        community::members::Patch {
            auto_follow: Some(false),
            ..Default::default()
        },
    )
    .await
    .expect("patch");
    let other = post_idea(&app, &carl).await;
    let res = call(
        &r,
        "POST",
        &format!("/ideas/{other}/comments"),
        Some(&alice),
        body(),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let m = community::follows::me(&app, &IdeaId::parse(&other).expect("id"), &caller(&alice))
        .await
        .expect("me");
    assert!(!m.following, "auto_follow is off");
}

#[tokio::test]
async fn my_state_and_comment_follows_on_the_embedded_store() {
    let (app, _d) = community::testing::embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn my_state_and_comment_follows_on_dynamodb() {
    let Some(table) = community::testing::moto_table("follow-ideas").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}
