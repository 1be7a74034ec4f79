//! Comments through the ideas function's Lambda entry; hidden ideas.

use community::moderation::{self, DecisionRequest};
use community::testing::{call, call_event, caller, embedded_app, event, join, member, post_idea};
use serde_json::json;

#[tokio::test]
async fn posting_comments_validates_authenticates_and_badges() {
    let (app, _d) = embedded_app(|_| {});
    let author = member("author");
    let bea = member("bea");
    let staff = member("sam").in_groups(&["staff"]);
    let brand = member("bruno").in_groups(&["brand"]);
    for m in [&author, &bea, &staff, &brand] {
        join(&app, m).await;
    }
    let id = post_idea(&app, &author).await;
    let r = ideas::router(app.clone());
    let path = format!("/ideas/{id}/comments");
    let good = json!({"body": "  Bonne idée, et pourquoi pas en drive aussi ?  "});

    assert_eq!(
        call(&r, "POST", &path, None, Some(good.clone()))
            .await
            .status,
        401
    );
    let stranger = member("stranger");
    assert_eq!(
        call(&r, "POST", &path, Some(&stranger), Some(good.clone()))
            .await
            .status,
        403,
        "sign up first"
    );
    for bad in [
        json!({"body": "   "}),
        json!({}),
        json!({"body": "x".repeat(2001)}),
    ] {
        let res = call(&r, "POST", &path, Some(&bea), Some(bad)).await;
        assert_eq!((res.status, res.fields()), (422, vec!["body".to_string()]));
    }
    let res = call(&r, "POST", &path, Some(&bea), Some(json!({"body": 12}))).await;
    assert_eq!(res.status, 400);
    let res = call(
        &r,
        "POST",
        &path,
        Some(&bea),
        Some(json!({"body": "ok", "x": 1})),
    )
    .await;
    assert_eq!(res.status, 400);
    assert_eq!(
        call(
            &r,
            "POST",
            "/ideas/01JD0000000000000000000000/comments",
            Some(&bea),
            Some(good.clone())
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/ideas/not-an-id/comments",
            Some(&bea),
            Some(good.clone())
        )
        .await
        .status,
        404
    );

    let res = call(&r, "POST", &path, Some(&bea), Some(good.clone())).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(
        res.body["body"],
        "Bonne idée, et pourquoi pas en drive aussi ?"
    );
    assert_eq!(res.body["idea_id"], json!(id));
    assert_eq!(
        res.body["author"],
        json!({"id": "bea", "display_name": "bea"})
    );
    assert!(res.body["created_at"].is_string() && res.body["id"].is_string());
    let res = call(
        &r,
        "POST",
        &path,
        Some(&staff),
        Some(json!({"body": "Nous étudions cela."})),
    )
    .await;
    assert_eq!(res.body["author"]["badge"], "staff");
    let res = call(
        &r,
        "POST",
        &path,
        Some(&brand),
        Some(json!({"body": "La marque est partante."})),
    )
    .await;
    assert_eq!(res.body["author"]["badge"], "brand");

    // Idempotency-Key: a retry replays the first answer and writes nothing more.
    let body = json!({"body": "Une seule fois"}).to_string();
    let ev = event(
        "POST",
        &path,
        Some(&bea),
        Some(&body),
        &[("idempotency-key", "c-1")],
    );
    let first = call_event(&r, &ev).await;
    let again = call_event(&r, &ev).await;
    assert_eq!(first.status, 201);
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(first.body["id"], again.body["id"]);

    // Public list, oldest first, paginated; the idea counts its comments.
    let page = call(&r, "GET", &format!("{path}?limit=3"), None, None).await;
    assert_eq!(page.status, 200);
    let bodies: Vec<_> = page.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        vec![
            json!("Bonne idée, et pourquoi pas en drive aussi ?"),
            json!("Nous étudions cela."),
            json!("La marque est partante.")
        ]
    );
    let cursor = page.body["next_cursor"].as_str().expect("more");
    let next = call(
        &r,
        "GET",
        &format!("{path}?limit=3&cursor={cursor}"),
        None,
        None,
    )
    .await;
    assert_eq!(next.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(next.body["items"][0]["body"], "Une seule fois");
    assert_eq!(next.body["next_cursor"], json!(null));
    // The count is the insights consumer's, folded per batch of events
    // (not the comment's own transaction): once their events are applied.
    community::testing::run_insights(&app).await;
    let idea = call(&r, "GET", &format!("/ideas/{id}"), None, None).await;
    assert_eq!(idea.body["comment_count"], 4);
    assert!(idea.body.get("moderation").is_none());
    assert_eq!(
        call(&r, "GET", &format!("{path}?limit=0"), None, None)
            .await
            .status,
        400
    );
    assert_eq!(
        call(&r, "GET", &format!("{path}?cursor=bad"), None, None)
            .await
            .status,
        422
    );
    assert_eq!(
        call(
            &r,
            "GET",
            "/ideas/01JD0000000000000000000000/comments",
            None,
            None
        )
        .await
        .status,
        404
    );
    let one = call(
        &r,
        "GET",
        &format!("/comments/{}", first.body["id"].as_str().expect("id")),
        None,
        None,
    )
    .await;
    assert_eq!(one.body["body"], "Une seule fois");
    assert_eq!(
        call(
            &r,
            "GET",
            "/comments/01JD0000000000000000000000",
            None,
            None
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn hidden_ideas_are_404_to_others_and_shown_to_author_and_moderators() {
    let (app, _d) = embedded_app(|_| {});
    let author = member("author");
    let bea = member("bea");
    let moderator = member("mo").in_groups(&["moderator"]);
    join(&app, &author).await;
    join(&app, &bea).await;
    let id = post_idea(&app, &author).await;
    let r = ideas::router(app.clone());
    let votes_r = votes::router(app.clone());
    let path = format!("/ideas/{id}");
    let before = call(
        &r,
        "POST",
        &format!("{path}/comments"),
        Some(&bea),
        Some(json!({"body": "Avant"})),
    )
    .await;
    let before_id = before.body["id"].as_str().expect("id").to_owned();

    moderation::decide(
        &app,
        &caller(&moderator),
        "idea",
        &id,
        DecisionRequest {
            action: Some("hide".into()),
            reason: Some("Publicité déguisée".into()),
        },
    )
    .await
    .expect("hidden");

    assert_eq!(call(&r, "GET", &path, None, None).await.status, 404);
    assert_eq!(call(&r, "GET", &path, Some(&bea), None).await.status, 404);
    let mine = call(&r, "GET", &path, Some(&author), None).await;
    assert_eq!(
        (mine.status, mine.body["moderation"].clone()),
        (200, json!("hidden"))
    );
    let seen = call(&r, "GET", &path, Some(&moderator), None).await;
    assert_eq!(
        (seen.status, seen.body["moderation"].clone()),
        (200, json!("hidden"))
    );
    // Out of every list, takes no comments and no votes.
    for q in [
        "/ideas",
        "/ideas?sort=top",
        "/ideas?theme=eat-well&status=open",
    ] {
        let l = call(&r, "GET", q, None, None).await;
        assert_eq!(l.body["items"], json!([]), "{q}");
    }
    assert_eq!(
        call(&r, "GET", &format!("{path}/comments"), None, None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&r, "GET", &format!("{path}/comments"), Some(&author), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(
            &r,
            "GET",
            &format!("/comments/{before_id}"),
            Some(&bea),
            None
        )
        .await
        .status,
        404,
        "the comments of a hidden idea are hidden with it"
    );
    assert_eq!(
        call(
            &r,
            "GET",
            &format!("/comments/{before_id}"),
            Some(&author),
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            &r,
            "POST",
            &format!("{path}/comments"),
            Some(&bea),
            Some(json!({"body": "Après"}))
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(&votes_r, "PUT", &format!("{path}/vote"), Some(&bea), None)
            .await
            .status,
        404
    );

    // Restored: back in the lists, in both orders.
    moderation::decide(
        &app,
        &caller(&moderator),
        "idea",
        &id,
        DecisionRequest {
            action: Some("restore".into()),
            reason: Some("Vérifié, rien à redire".into()),
        },
    )
    .await
    .expect("restored");
    assert_eq!(call(&r, "GET", &path, None, None).await.status, 200);
    for q in [
        "/ideas",
        "/ideas?sort=top",
        "/ideas?theme=eat-well&status=open",
    ] {
        let l = call(&r, "GET", q, None, None).await;
        assert_eq!(l.body["items"][0]["id"], json!(id), "{q}");
    }
    assert_eq!(
        call(&votes_r, "PUT", &format!("{path}/vote"), Some(&bea), None)
            .await
            .status,
        200
    );
}
