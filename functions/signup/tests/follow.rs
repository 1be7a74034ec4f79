//! The member's side of following: preferences (`PATCH /members/me`),
//! `GET /members/me/following`, `GET /members/me/votes`, and follows in the
//! GDPR export and erasure; through the signup function's Lambda entry, on
//! both adapters.

use community::domain::IdeaId;
use community::store::{Index, Query, SortKey, Table};
use community::testing::{call, caller, embedded_app, join, member, post_idea, As};
use community::App;
use serde_json::{json, Value};

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["id"].as_str().expect("id").to_owned())
        .collect()
}

/// Every idea of a list, page after page of `limit`.
async fn all(r: &axum::Router, path: &str, who: &As, limit: u32) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let url = match &cursor {
            Some(c) => format!("{path}?limit={limit}&cursor={c}"),
            None => format!("{path}?limit={limit}"),
        };
        let res = call(r, "GET", &url, Some(who), None).await;
        assert_eq!(res.status, 200, "{}", res.body);
        out.extend(ids(&res.body));
        match res.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
    panic!("the list does not end");
}

async fn scenario<T: Table + Clone>(app: App<T>) {
    let r = signup::router(app.clone());
    let (alice, bob) = (member("alice"), member("bob"));
    join(&app, &alice).await;
    join(&app, &bob).await;

    // Preferences: defaults, then changed, and shown by GET /members/me.
    let res = call(&r, "GET", "/members/me", Some(&bob), None).await;
    assert_eq!(res.body["auto_follow"], true);
    assert_eq!(
        res.body["notifications"],
        json!({"idea_updates": true, "comment_digest": false, "community_news": true})
    );
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&bob),
        Some(json!({"notifications": {"community_news": false, "comment_digest": true}})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        res.body["notifications"],
        json!({"idea_updates": true, "comment_digest": true, "community_news": false})
    );
    assert_eq!(res.body["comment_digest"], true);
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&bob),
        Some(json!({"notifications": {"idea_updates": "yes"}})),
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.body);
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&bob),
        Some(json!({"notifications": {"news": false}})),
    )
    .await;
    assert_eq!(res.status, 400, "unknown preference: {}", res.body);
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&bob),
        Some(json!({"comment_digest": false, "notifications": {"comment_digest": true}})),
    )
    .await;
    assert_eq!(res.status, 422, "{}", res.body);
    let res = call(&r, "GET", "/members/me", Some(&bob), None).await;
    assert_eq!(res.body["notifications"]["community_news"], false);
    assert_eq!(res.body["notifications"]["comment_digest"], true);

    // Five ideas: bob votes for 0, 1, 2; follows 3 and 1; unfollows 2.
    let mut ideas = Vec::new();
    for _ in 0..5 {
        ideas.push(post_idea(&app, &alice).await);
    }
    let id = |i: usize| IdeaId::parse(&ideas[i]).expect("id");
    for i in [0, 1, 2] {
        community::votes::cast(&app, &caller(&bob), &id(i))
            .await
            .expect("vote");
    }
    for (i, f) in [(3, true), (1, true), (2, false)] {
        community::follows::set(&app, &caller(&bob), &id(i), f)
            .await
            .expect("follow");
    }
    let votes = all(&r, "/members/me/votes", &bob, 2).await;
    assert_eq!(
        votes,
        vec![ideas[2].clone(), ideas[1].clone(), ideas[0].clone()]
    );
    // Followed first (newest follow first), then voted ideas without a
    // follow record; never the unfollowed one.
    for limit in [1, 2, 20] {
        let following = all(&r, "/members/me/following", &bob, limit).await;
        assert_eq!(
            following,
            vec![ideas[1].clone(), ideas[3].clone(), ideas[0].clone()],
            "limit {limit}"
        );
    }
    let res = call(
        &r,
        "GET",
        "/members/me/following?cursor=forged",
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(res.status, 422, "{}", res.body);
    let res = call(
        &r,
        "GET",
        "/members/me/following?sort=top",
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.body);
    for path in ["/members/me/following", "/members/me/votes"] {
        assert_eq!(call(&r, "GET", path, None, None).await.status, 401);
    }
    // auto_follow off: voted ideas are no longer followed.
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&bob),
        Some(json!({"auto_follow": false})),
    )
    .await;
    assert_eq!(res.body["auto_follow"], false);
    let following = all(&r, "/members/me/following", &bob, 2).await;
    assert_eq!(following, vec![ideas[1].clone(), ideas[3].clone()]);

    // GDPR: the export lists the follow records; erasure deletes them.
    let res = call(&r, "GET", "/members/me/export", Some(&bob), None).await;
    assert_eq!(res.status, 200);
    let mut follows: Vec<(String, bool)> = res.body["follows"]
        .as_array()
        .expect("follows")
        .iter()
        .map(|f| {
            (
                f["idea_id"].as_str().expect("idea").to_owned(),
                f["following"].as_bool().expect("state"),
            )
        })
        .collect();
    follows.sort();
    let mut want = vec![
        (ideas[1].clone(), true),
        (ideas[2].clone(), false),
        (ideas[3].clone(), true),
    ];
    want.sort();
    assert_eq!(follows, want);
    assert_eq!(
        res.body["preferences"],
        json!({"auto_follow": false, "notifications":
            {"idea_updates": true, "comment_digest": true, "community_news": false}})
    );
    let res = call(&r, "DELETE", "/members/me", Some(&bob), None).await;
    assert_eq!(res.status, 202, "{}", res.body);
    let left = app
        .table
        .query(
            &Query::new(Index::Gsi3, "MEMBER#bob")
                .sk(SortKey::BeginsWith(community::follows::PREFIX.into())),
        )
        .await
        .expect("query");
    assert!(left.items.is_empty(), "{:?}", left.items);
    for i in [1, 2, 3] {
        let k = community::follows::key(&ideas[i], "bob");
        assert!(app.table.get(&k, true).await.expect("get").is_none());
    }
}

#[tokio::test]
async fn following_lists_preferences_and_gdpr_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_lists_preferences_and_gdpr_on_dynamodb() {
    let Some(table) = community::testing::moto_table("follow-members").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}
