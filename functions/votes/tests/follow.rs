//! `PUT /ideas/{id}/follow` and `DELETE /ideas/{id}/follow` through the
//! votes function's Lambda entry, on both adapters.

use community::domain::IdeaId;
use community::store::Table;
use community::testing::{call, caller, embedded_app, join, member, post_idea};
use community::App;
use serde_json::json;

const UNKNOWN_IDEA: &str = "01JD0000000000000000000000";

async fn me<T: Table>(app: &App<T>, idea: &str, who: &str) -> (bool, bool) {
    let id = IdeaId::parse(idea).expect("id");
    let m = community::follows::me(app, &id, &caller(&member(who)))
        .await
        .expect("me");
    (m.voted, m.following)
}

async fn scenario<T: Table + Clone>(app: App<T>) {
    let r = votes::router(app.clone());
    let (alice, bob, carl) = (member("alice"), member("bob"), member("carl"));
    join(&app, &alice).await;
    join(&app, &bob).await;
    let idea = post_idea(&app, &alice).await;
    let path = format!("/ideas/{idea}/follow");

    let res = call(&r, "PUT", &path, None, None).await;
    assert_eq!(res.status, 401, "{}", res.body);
    let res = call(&r, "DELETE", &path, None, None).await;
    assert_eq!(res.status, 401, "{}", res.body);
    let res = call(
        &r,
        "PUT",
        &format!("/ideas/{UNKNOWN_IDEA}/follow"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(res.status, 404, "{}", res.body);
    let res = call(&r, "PUT", "/ideas/not-an-id/follow", Some(&bob), None).await;
    assert_eq!(res.status, 404, "{}", res.body);
    let res = call(&r, "PUT", &path, Some(&carl), None).await;
    assert_eq!(res.status, 403, "carl has not signed up: {}", res.body);

    // Follow: idempotent.
    for _ in 0..2 {
        let res = call(&r, "PUT", &path, Some(&bob), None).await;
        assert_eq!(
            (res.status, res.body.clone()),
            (200, json!({"idea_id": idea, "following": true}))
        );
    }
    assert_eq!(me(&app, &idea, "bob").await, (false, true));
    for _ in 0..2 {
        let res = call(&r, "DELETE", &path, Some(&bob), None).await;
        assert_eq!(
            (res.status, res.body.clone()),
            (200, json!({"idea_id": idea, "following": false}))
        );
    }
    assert_eq!(me(&app, &idea, "bob").await, (false, false));

    // A voter follows without a record; their unfollow sticks, through a
    // withdrawal and a new vote.
    join(&app, &carl).await;
    let vote = format!("/ideas/{idea}/vote");
    assert_eq!(call(&r, "PUT", &vote, Some(&carl), None).await.status, 200);
    assert_eq!(me(&app, &idea, "carl").await, (true, true));
    let res = call(&r, "DELETE", &path, Some(&carl), None).await;
    assert_eq!(res.body["following"], false);
    assert_eq!(me(&app, &idea, "carl").await, (true, false));
    assert_eq!(
        call(&r, "DELETE", &vote, Some(&carl), None).await.status,
        200
    );
    assert_eq!(call(&r, "PUT", &vote, Some(&carl), None).await.status, 200);
    assert_eq!(
        me(&app, &idea, "carl").await,
        (true, false),
        "the unfollow sticks"
    );
    let res = call(&r, "PUT", &path, Some(&carl), None).await;
    assert_eq!(res.body["following"], true);
    assert_eq!(me(&app, &idea, "carl").await, (true, true));

    // auto_follow off: a vote alone no longer follows.
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
    let other = post_idea(&app, &bob).await;
    let res = call(
        &r,
        "PUT",
        &format!("/ideas/{other}/vote"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(me(&app, &other, "alice").await, (true, false));
}

#[tokio::test]
async fn follow_and_unfollow_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_and_unfollow_on_dynamodb() {
    let Some(table) = community::testing::moto_table("follow").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}
