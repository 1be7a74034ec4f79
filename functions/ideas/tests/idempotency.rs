//! `Idempotency-Key` as draft-ietf-httpapi-idempotency-key-header says,
//! through the ideas function's Lambda entry: a replay for the same body,
//! 422 for another body or route, 409 while the first request runs, and a
//! failed request frees its key.

use community::receipt::{fingerprint, Receipt};
use community::store::Table;
use community::testing::{call_event, caller, embedded_app, event, idea_body, join, member};
use serde_json::json;

async fn post(
    r: &axum::Router,
    who: &community::testing::As,
    body: &str,
    key: &str,
) -> community::testing::Reply {
    call_event(
        r,
        &event(
            "POST",
            "/ideas",
            Some(who),
            Some(body),
            &[("idempotency-key", key)],
        ),
    )
    .await
}

#[tokio::test]
async fn the_same_key_replays_only_the_same_body() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("member-marie");
    join(&app, &marie).await;
    let paul = member("member-paul");
    join(&app, &paul).await;
    let r = ideas::router(app);
    let body = idea_body();
    let first = post(&r, &marie, &body.to_string(), "k-1").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert!(first.header("idempotent-replayed").is_none());
    // The same body, its keys in another order and spaced otherwise.
    let reordered = format!(
        "{{ \"body\": {}, \"title\": {}, \"theme\": {} }}",
        body["body"], body["title"], body["theme"]
    );
    let again = post(&r, &marie, &reordered, "k-1").await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["id"], first.body["id"]);
    // Another body with the same key: refused, nothing posted.
    let mut other = body.clone();
    other["title"] = json!("Une autre idée avec la même clé");
    let refused = post(&r, &marie, &other.to_string(), "k-1").await;
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(refused.fields(), vec!["Idempotency-Key".to_string()]);
    // A body missing a field is refused as well (not replayed as 201).
    let missing = post(
        &r,
        &marie,
        &json!({"theme": "eat-well", "title": body["title"]}).to_string(),
        "k-1",
    )
    .await;
    assert_eq!(missing.status, 422);
    // The key's scope is the member: another member's same key is theirs.
    let theirs = post(&r, &paul, &other.to_string(), "k-1").await;
    assert_eq!(theirs.status, 201, "{:?}", theirs.body);
    assert_ne!(theirs.body["id"], first.body["id"]);
}

#[tokio::test]
async fn a_retry_while_the_first_request_runs_gets_409_and_a_failure_frees_the_key() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("member-marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    let body = idea_body().to_string();
    // Another request holds the key (its claim, as `with_receipt` writes it).
    let running = Receipt::new(&caller(&marie).id, "k-2", "POST /ideas".into())
        .with_fingerprint(Some(fingerprint(body.as_bytes())));
    app.table
        .transact(vec![running.claim_write()])
        .await
        .expect("claim");
    let busy = post(&r, &marie, &body, "k-2").await;
    assert_eq!(busy.status, 409, "{:?}", busy.body);
    // A request that fails frees its key: the corrected retry runs.
    let bad = json!({"theme": "nowhere", "title": "Un titre", "body": "Un texte assez long pour passer."}).to_string();
    let failed = post(&r, &marie, &bad, "k-3").await;
    assert_eq!(failed.status, 422, "{:?}", failed.body);
    assert_eq!(failed.fields(), vec!["theme".to_string()]);
    let fixed = post(&r, &marie, &body, "k-3").await;
    assert_eq!(fixed.status, 201, "{:?}", fixed.body);
    assert!(fixed.header("idempotent-replayed").is_none());
    let replay = post(&r, &marie, &body, "k-3").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body["id"], fixed.body["id"]);
}
