//! The committee function through its Lambda entry.

use community::domain::IdeaId;
use community::testing::{call, embedded_app, join, member, post_idea};
use serde_json::json;

#[tokio::test]
async fn decisions_need_the_group_a_reason_and_an_idea_under_review() {
    let (app, _d) = embedded_app(|_| {});
    let author = member("author");
    join(&app, &author).await;
    let id = post_idea(&app, &author).await;
    let r = committee::router(app.clone());
    let claire = member("claire").in_groups(&["committee"]);
    let path = format!("/ideas/{id}/decision");
    let good = json!({"outcome": "accepted", "reason": "Faisable dans tous les magasins dès le printemps."});

    assert_eq!(
        call(&r, "POST", &path, None, Some(good.clone()))
            .await
            .status,
        401
    );
    assert_eq!(
        call(&r, "POST", &path, Some(&author), Some(good.clone()))
            .await
            .status,
        403
    );
    assert_eq!(
        call(&r, "GET", "/review-queue", Some(&author), None)
            .await
            .status,
        403
    );
    let res = call(
        &r,
        "POST",
        &path,
        Some(&claire),
        Some(json!({"outcome": "accepted"})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["reason".to_string()])
    );
    let res = call(
        &r,
        "POST",
        &path,
        Some(&claire),
        Some(json!({"outcome": "maybe", "reason": "x".repeat(20)})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["outcome".to_string()])
    );
    assert_eq!(
        call(&r, "POST", &path, Some(&claire), Some(good.clone()))
            .await
            .status,
        409,
        "still open"
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/ideas/01JD0000000000000000000000/decision",
            Some(&claire),
            Some(good.clone())
        )
        .await
        .status,
        404
    );

    let idea = IdeaId::parse(&id).expect("id");
    community::thresholds::send_to_review(&app, &idea)
        .await
        .expect("to review");
    let q = call(&r, "GET", "/review-queue", Some(&claire), None).await;
    assert_eq!(q.body["items"][0]["id"], json!(id));
    assert!(q.body["items"][0]["age_seconds"].as_i64().is_some());

    let res = call(&r, "POST", &path, Some(&claire), Some(good.clone())).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["status"], "accepted");
    assert_eq!(res.body["decision"]["reason"], good["reason"]);
    assert_eq!(
        call(&r, "POST", &path, Some(&claire), Some(good))
            .await
            .status,
        409,
        "decided once"
    );
    assert_eq!(
        call(&r, "GET", "/review-queue", Some(&claire), None)
            .await
            .body["items"],
        json!([])
    );

    // Progress: accepted → in_progress → implemented, nothing else.
    let p = format!("/ideas/{id}/progress");
    let res = call(
        &r,
        "POST",
        &p,
        Some(&claire),
        Some(json!({"status": "in_progress", "note": "Test dans trois magasins pilotes."})),
    )
    .await;
    assert_eq!(
        (res.status, res.body["status"].clone()),
        (200, json!("in_progress"))
    );
    let res = call(
        &r,
        "POST",
        &p,
        Some(&claire),
        Some(json!({"status": "in_progress", "note": "Encore une fois, pour voir."})),
    )
    .await;
    assert_eq!(res.status, 409);
    let res = call(
        &r,
        "POST",
        &p,
        Some(&claire),
        Some(json!({"status": "implemented", "note": "Disponible dans tous les magasins."})),
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body["progress"].as_array().map(Vec::len), Some(2));
    let res = call(
        &r,
        "POST",
        &p,
        Some(&claire),
        Some(json!({"status": "done", "note": "x"})),
    )
    .await;
    assert_eq!(res.status, 422);
    assert_eq!(res.fields(), vec!["status".to_string(), "note".to_string()]);
}
