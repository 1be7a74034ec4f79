//! The votes function, through its Lambda entry (events parsed by lambda_http).

use community::domain::{IdeaId, IdeaStatus};
use community::store::Table;
use community::testing::{call, call_event, embedded_app, join, member, post_idea, As};
use serde_json::json;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/http");
const SAMPLE_IDEA: &str = "01JD0000000000000000000000";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{EVENTS}/{name}")).expect("fixture")
}

/// Posts an idea; with `at_sample_id`, stores it under the sample events' id.
async fn idea<T: community::store::Table + Clone>(
    app: &community::App<T>,
    author: &As,
    at_sample_id: bool,
) -> String {
    let id = post_idea(app, author).await;
    if !at_sample_id {
        return id;
    }
    let mut row = community::ideas::load(app, &IdeaId::parse(&id).expect("id"), true)
        .await
        .expect("row");
    row.id = SAMPLE_IDEA.into();
    let item = row.to_item().expect("item");
    app.table
        .transact(vec![community::store::Write::put(item)])
        .await
        .expect("copy");
    SAMPLE_IDEA.into()
}

#[tokio::test]
async fn sample_events_vote_and_withdraw() {
    let (app, _d) = embedded_app(|_| {});
    let r = votes::router(app.clone());
    assert_eq!(
        call_event(&r, &fixture("put-vote.json")).await.status,
        404,
        "no such idea yet"
    );
    let author = member("author");
    join(&app, &author).await;
    idea(&app, &author, true).await;
    let res = call_event(&r, &fixture("put-vote.json")).await;
    assert_eq!(res.status, 403, "paul has not signed up: {}", res.body);
    join(&app, &member("member-paul")).await;
    let res = call_event(&r, &fixture("put-vote.json")).await;
    assert_eq!(
        (res.status, res.body.clone()),
        (
            200,
            json!({"idea_id": SAMPLE_IDEA, "voted": true, "votes": 1})
        )
    );
    let res = call_event(&r, &fixture("put-vote.json")).await;
    assert_eq!(res.body["votes"], 1, "a repeated vote changes nothing");
    let res = call_event(&r, &fixture("delete-vote.json")).await;
    assert_eq!(
        (res.status, res.body.clone()),
        (
            200,
            json!({"idea_id": SAMPLE_IDEA, "voted": false, "votes": 0})
        )
    );
    let res = call_event(&r, &fixture("delete-vote.json")).await;
    assert_eq!(
        (res.status, res.body["votes"].clone()),
        (200, json!(0)),
        "withdrawing twice changes nothing"
    );
}

#[tokio::test]
async fn votes_need_a_token_a_member_and_a_real_idea() {
    let (app, _d) = embedded_app(|_| {});
    let r = votes::router(app.clone());
    let author = member("author");
    join(&app, &author).await;
    let id = idea(&app, &author, false).await;
    let path = format!("/ideas/{id}/vote");
    for m in ["PUT", "DELETE"] {
        assert_eq!(call(&r, m, &path, None, None).await.status, 401);
        assert_eq!(
            call(&r, m, &path, Some(&member("stranger")), None)
                .await
                .status,
            403
        );
        assert_eq!(
            call(&r, m, "/ideas/nope/vote", Some(&author), None)
                .await
                .status,
            404
        );
        assert_eq!(
            call(
                &r,
                m,
                &format!("/ideas/{SAMPLE_IDEA}/vote"),
                Some(&author),
                None
            )
            .await
            .status,
            404
        );
    }
    assert_eq!(
        call(&r, "POST", &path, Some(&author), None).await.status,
        405
    );
}

#[tokio::test]
async fn one_vote_per_member_and_only_their_own_withdrawn() {
    let (app, _d) = embedded_app(|_| {});
    let r = votes::router(app.clone());
    let (alice, bob) = (member("alice"), member("bob"));
    join(&app, &alice).await;
    join(&app, &bob).await;
    let id = idea(&app, &alice, false).await;
    let path = format!("/ideas/{id}/vote");
    assert_eq!(
        call(&r, "PUT", &path, Some(&alice), None).await.body["votes"],
        1
    );
    assert_eq!(
        call(&r, "PUT", &path, Some(&bob), None).await.body["votes"],
        2
    );
    assert_eq!(
        call(&r, "PUT", &path, Some(&bob), None).await.body["votes"],
        2
    );
    // Bob withdrawing withdraws Bob's vote, never Alice's.
    assert_eq!(
        call(&r, "DELETE", &path, Some(&bob), None).await.body["votes"],
        1
    );
    assert_eq!(
        call(&r, "DELETE", &path, Some(&bob), None).await.body["votes"],
        1
    );
    let v = app
        .table
        .get(
            &community::votes::vote_key(&IdeaId::parse(&id).expect("id"), "alice"),
            true,
        )
        .await
        .expect("get");
    assert!(v.is_some(), "alice's vote stands");
}

#[tokio::test]
async fn an_idea_that_is_not_open_takes_no_votes() {
    let (app, _d) = embedded_app(|_| {});
    let r = votes::router(app.clone());
    let (alice, bob) = (member("alice"), member("bob"));
    join(&app, &alice).await;
    join(&app, &bob).await;
    let id = idea(&app, &alice, false).await;
    let path = format!("/ideas/{id}/vote");
    assert_eq!(call(&r, "PUT", &path, Some(&alice), None).await.status, 200);
    let idea_id = IdeaId::parse(&id).expect("id");
    community::votes::close(
        &app,
        &idea_id,
        IdeaStatus::UnderReview,
        Default::default(),
        vec![],
    )
    .await
    .expect("close");
    let res = call(&r, "PUT", &path, Some(&bob), None).await;
    assert_eq!(res.status, 409);
    assert!(res.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("under_review"));
    assert_eq!(
        call(&r, "DELETE", &path, Some(&alice), None).await.status,
        409
    );
    assert_eq!(
        community::votes::tally(&app, &idea_id)
            .await
            .expect("tally")
            .votes,
        1
    );
    // Closing twice is a conflict too.
    assert!(community::votes::close(
        &app,
        &idea_id,
        IdeaStatus::UnderReview,
        Default::default(),
        vec![]
    )
    .await
    .is_err());
}

#[tokio::test]
async fn a_stale_open_status_cannot_sneak_a_vote_in() {
    // The status read before the write may be stale; the shards' `closed`
    // flag, checked in the vote's own transaction, is the guard.
    let (app, _d) = embedded_app(|_| {});
    let (alice, bob) = (member("alice"), member("bob"));
    join(&app, &alice).await;
    join(&app, &bob).await;
    let id = idea(&app, &alice, false).await;
    let idea_id = IdeaId::parse(&id).expect("id");
    // Close only the shards, leaving the row open, as if the status read raced the close.
    for k in 0..app.settings.vote_shards {
        let w = community::store::Write::update(
            community::votes::shard_key(&idea_id, k),
            community::store::Update::default().set("closed", true),
        );
        app.table.transact(vec![w]).await.expect("close shard");
    }
    let res = call(
        &votes::router(app.clone()),
        "PUT",
        &format!("/ideas/{id}/vote"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(res.status, 409);
    assert_eq!(
        community::votes::tally(&app, &idea_id)
            .await
            .expect("tally")
            .votes,
        0
    );
}

#[tokio::test]
async fn concurrent_votes_count_distinct_voters_exactly() {
    let (app, _d) = embedded_app(|_| {});
    let author = member("author");
    join(&app, &author).await;
    let id = idea(&app, &author, false).await;
    let voters: Vec<As> = (0..60).map(|i| member(&format!("m{i}"))).collect();
    for v in &voters {
        join(&app, v).await;
    }
    let r = votes::router(app.clone());
    let path = format!("/ideas/{id}/vote");
    let tasks: Vec<_> = voters
        .iter()
        .chain(voters.iter().step_by(5))
        .cloned()
        .map(|v| {
            let (r, path) = (r.clone(), path.clone());
            tokio::spawn(async move { call(&r, "PUT", &path, Some(&v), None).await.status })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    let got = community::ideas::get(&app, &IdeaId::parse(&id).expect("id"))
        .await
        .expect("idea");
    assert_eq!(got.votes, 60);
}
