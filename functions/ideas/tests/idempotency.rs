//! `Idempotency-Key` as draft-ietf-httpapi-idempotency-key-header says,
//! through the ideas function's Lambda entry, on both adapters: a replay for
//! the same body, 422 for another body or route (nothing written), 409 while
//! the first request runs (concurrent identical requests create once), a
//! claim left by a request that died expires, and a failed request frees
//! its key.

use community::error::Error;
use community::receipt::{fingerprint, Receipt};
use community::store::Table;
use community::testing::{
    call, call_event, caller, embedded_app, event, idea_body, join, member, moto_table, settings,
    As, Reply,
};
use community::App;
use serde_json::json;

async fn post(r: &axum::Router, who: &As, path: &str, body: &str, key: &str) -> Reply {
    call_event(
        r,
        &event(
            "POST",
            path,
            Some(who),
            Some(body),
            &[("idempotency-key", key)],
        ),
    )
    .await
}

/// How many ideas are listed (every idea of these tests is open).
async fn ideas_listed(r: &axum::Router) -> usize {
    let list = call(r, "GET", "/ideas?limit=100", None, None).await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    list.body["items"].as_array().map_or(0, Vec::len)
}

fn assert_key_refused(reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.fields(), vec!["Idempotency-Key".to_string()]);
    assert!(reply.header("idempotent-replayed").is_none());
}

async fn the_same_key_replays_only_the_same_body<T: Table + Clone>(app: App<T>) {
    let marie = member("member-marie");
    join(&app, &marie).await;
    let paul = member("member-paul");
    join(&app, &paul).await;
    let r = ideas::router(app);
    let body = idea_body();
    let first = post(&r, &marie, "/ideas", &body.to_string(), "k-1").await;
    assert_eq!(first.status, 201, "{:?}", first.body);
    assert!(first.header("idempotent-replayed").is_none());
    // The same body, its keys in another order and spaced otherwise.
    let reordered = format!(
        "{{ \"body\": {}, \"title\": {}, \"theme\": {} }}",
        body["body"], body["title"], body["theme"]
    );
    let again = post(&r, &marie, "/ideas", &reordered, "k-1").await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    // Another body with the same key: 422 naming the header, not a replay,
    // and nothing written.
    let mut other = body.clone();
    other["title"] = json!("Une autre idée avec la même clé");
    let refused = post(&r, &marie, "/ideas", &other.to_string(), "k-1").await;
    assert_key_refused(&refused, 422);
    assert_eq!(refused.body["type"], "/problems/validation");
    assert!(
        refused.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("different request body")),
        "{:?}",
        refused.body
    );
    assert_eq!(ideas_listed(&r).await, 1);
    // A body missing a field is refused the same way (not replayed as 201).
    let missing = json!({"theme": "eat-well", "title": body["title"]}).to_string();
    assert_key_refused(&post(&r, &marie, "/ideas", &missing, "k-1").await, 422);
    // The key's scope is the member and the request (method and path): on
    // another route it is refused, and nothing is written there either.
    let id = first.body["id"].as_str().unwrap_or_default().to_owned();
    let comments = format!("/ideas/{id}/comments");
    let comment = json!({"body": "Bonne idée, je signe."}).to_string();
    assert_key_refused(&post(&r, &marie, &comments, &comment, "k-1").await, 422);
    let listed = call(&r, "GET", &comments, None, None).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(0));
    // The first response is still what the key replays.
    let replay = post(&r, &marie, "/ideas", &body.to_string(), "k-1").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, first.body);
    // Another member's same key is theirs.
    let theirs = post(&r, &paul, "/ideas", &other.to_string(), "k-1").await;
    assert_eq!(theirs.status, 201, "{:?}", theirs.body);
    assert_ne!(theirs.body["id"], first.body["id"]);
    assert_eq!(ideas_listed(&r).await, 2);
}

async fn a_retry_while_the_first_request_runs_gets_409_and_a_failure_frees_the_key<
    T: Table + Clone,
>(
    app: App<T>,
) {
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
    let busy = post(&r, &marie, "/ideas", &body, "k-2").await;
    assert_key_refused(&busy, 409);
    assert_eq!(busy.body["type"], "/problems/conflict");
    assert!(
        busy.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("still being processed")),
        "{:?}",
        busy.body
    );
    assert_eq!(busy.header("retry-after"), Some("1"));
    // Another body while it runs is still a 422: the key was used for it.
    let mut other = idea_body();
    other["title"] = json!("Une autre idée avec la même clé");
    assert_key_refused(
        &post(&r, &marie, "/ideas", &other.to_string(), "k-2").await,
        422,
    );
    assert_eq!(ideas_listed(&r).await, 0);
    // A request that fails frees its key: the corrected retry runs.
    let bad = json!({"theme": "nowhere", "title": "Un titre", "body": "Un texte assez long pour passer."}).to_string();
    let failed = post(&r, &marie, "/ideas", &bad, "k-3").await;
    assert_eq!(failed.status, 422, "{:?}", failed.body);
    assert_eq!(failed.fields(), vec!["theme".to_string()]);
    let fixed = post(&r, &marie, "/ideas", &body, "k-3").await;
    assert_eq!(fixed.status, 201, "{:?}", fixed.body);
    assert!(fixed.header("idempotent-replayed").is_none());
    let replay = post(&r, &marie, "/ideas", &body, "k-3").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body["id"], fixed.body["id"]);
}

/// Identical requests sent at once with one key: exactly one creates (201),
/// each other one is told the first is running (409) or gets its response
/// replayed; never two ideas.
async fn concurrent_identical_requests_create_once<T: Table + Clone + 'static>(app: App<T>) {
    let marie = member("member-marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    let body = idea_body().to_string();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (r, who, body) = (r.clone(), marie.clone(), body.clone());
            tokio::spawn(async move { post(&r, &who, "/ideas", &body, "k-same").await })
        })
        .collect();
    let mut replies = Vec::new();
    for t in tasks {
        replies.push(t.await.expect("task"));
    }
    let created: Vec<&Reply> = replies
        .iter()
        .filter(|x| x.status == 201 && x.header("idempotent-replayed").is_none())
        .collect();
    assert_eq!(created.len(), 1, "{replies:#?}");
    let id = &created[0].body["id"];
    for x in &replies {
        match (x.status, x.header("idempotent-replayed")) {
            (201, None) => {}
            (201, Some("true")) => assert_eq!(&x.body["id"], id),
            (409, _) => assert_eq!(x.fields(), vec!["Idempotency-Key".to_string()]),
            _ => panic!("unexpected answer {} {:?}", x.status, x.body),
        }
    }
    assert_eq!(ideas_listed(&r).await, 1);
    // Once it is done, the key replays.
    let after = post(&r, &marie, "/ideas", &body, "k-same").await;
    assert_eq!(after.header("idempotent-replayed"), Some("true"));
    assert_eq!(&after.body["id"], id);
}

/// A claim left by a request that died (its `running_until` passed) does not
/// lock the key: a retry claims it and runs, and the dead request, were it to
/// commit after all, cannot (its transaction fails on the receipt's lock).
async fn an_expired_claim_lets_a_retry_proceed<T: Table + Clone>(app: App<T>) {
    let marie = member("member-marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    let body = idea_body().to_string();
    let dead = Receipt::new(&caller(&marie).id, "k-4", "POST /ideas".into())
        .with_fingerprint(Some(fingerprint(body.as_bytes())));
    app.table
        .transact(vec![dead.claim_write_for(-1)])
        .await
        .expect("claim");
    let retry = post(&r, &marie, "/ideas", &body, "k-4").await;
    assert_eq!(retry.status, 201, "{:?}", retry.body);
    assert!(retry.header("idempotent-replayed").is_none());
    let answer = json!({});
    let late = community::error::commit(&app.table, vec![], Some((&dead, 201, &answer))).await;
    assert!(matches!(late, Err(Error::Replay)), "{late:?}");
    let replay = post(&r, &marie, "/ideas", &body, "k-4").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, retry.body);
    assert_eq!(ideas_listed(&r).await, 1);
}

async fn dynamo(
    prefix: &str,
) -> Option<App<std::sync::Arc<community::store::dynamo::DynamoTable>>> {
    let table = moto_table(prefix).await?;
    Some(App::new(table, settings()))
}

#[tokio::test]
async fn the_same_key_replays_only_the_same_body_embedded() {
    let (app, _d) = embedded_app(|_| {});
    the_same_key_replays_only_the_same_body(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_replays_only_the_same_body_on_dynamodb() {
    if let Some(app) = dynamo("idem-body").await {
        the_same_key_replays_only_the_same_body(app).await;
    }
}

#[tokio::test]
async fn a_retry_while_the_first_request_runs_gets_409_and_a_failure_frees_the_key_embedded() {
    let (app, _d) = embedded_app(|_| {});
    a_retry_while_the_first_request_runs_gets_409_and_a_failure_frees_the_key(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_while_the_first_request_runs_gets_409_and_a_failure_frees_the_key_on_dynamodb() {
    if let Some(app) = dynamo("idem-running").await {
        a_retry_while_the_first_request_runs_gets_409_and_a_failure_frees_the_key(app).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_requests_create_once_embedded() {
    let (app, _d) = embedded_app(|_| {});
    concurrent_identical_requests_create_once(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_requests_create_once_on_dynamodb() {
    if let Some(app) = dynamo("idem-concurrent").await {
        concurrent_identical_requests_create_once(app).await;
    }
}

#[tokio::test]
async fn an_expired_claim_lets_a_retry_proceed_embedded() {
    let (app, _d) = embedded_app(|_| {});
    an_expired_claim_lets_a_retry_proceed(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_claim_lets_a_retry_proceed_on_dynamodb() {
    if let Some(app) = dynamo("idem-expired").await {
        an_expired_claim_lets_a_retry_proceed(app).await;
    }
}
