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

/// The count as the aggregator leaves it once the feed is read.
async fn aggregate(app: &community::App<community::store::embedded::EmbeddedTable>) {
    community::thresholds::drain_feed(app)
        .await
        .expect("aggregate");
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
        ),
        "the count includes the caller's own vote"
    );
    aggregate(&app).await;
    let res = call_event(&r, &fixture("put-vote.json")).await;
    assert_eq!(res.body["votes"], 1, "a repeated vote changes nothing");
    aggregate(&app).await;
    let res = call_event(&r, &fixture("delete-vote.json")).await;
    assert_eq!(
        (res.status, res.body.clone()),
        (
            200,
            json!({"idea_id": SAMPLE_IDEA, "voted": false, "votes": 0})
        )
    );
    aggregate(&app).await;
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
    for (who, method, expect) in [
        (&alice, "PUT", 1),
        (&bob, "PUT", 2),
        (&bob, "PUT", 2),
        // Bob withdrawing withdraws Bob's vote, never Alice's.
        (&bob, "DELETE", 1),
        (&bob, "DELETE", 1),
    ] {
        let res = call(&r, method, &path, Some(who), None).await;
        assert_eq!(res.body["votes"], expect, "{method} by {}", who.sub);
        aggregate(&app).await;
    }
    let v = app
        .table
        .get(
            &community::votes::vote_key(&IdeaId::parse(&id).expect("id"), "alice"),
            true,
        )
        .await
        .expect("get");
    assert!(v.is_some(), "alice's vote stands");
    let got = community::ideas::get(&app, &IdeaId::parse(&id).expect("id"))
        .await
        .expect("idea");
    assert_eq!(got.votes, 1);
}

#[tokio::test]
async fn an_idea_under_review_takes_votes_and_a_decided_one_does_not() {
    let (app, _d) = embedded_app(|_| {});
    let r = votes::router(app.clone());
    let (alice, bob, carl) = (member("alice"), member("bob"), member("carl"));
    for m in [&alice, &bob, &carl] {
        join(&app, m).await;
    }
    let id = idea(&app, &alice, false).await;
    let path = format!("/ideas/{id}/vote");
    assert_eq!(call(&r, "PUT", &path, Some(&alice), None).await.status, 200);
    let idea_id = IdeaId::parse(&id).expect("id");
    community::thresholds::send_to_review(&app, &idea_id)
        .await
        .expect("to review");
    assert!(
        community::thresholds::send_to_review(&app, &idea_id)
            .await
            .is_err(),
        "it goes to the committee once"
    );
    let res = call(&r, "PUT", &path, Some(&bob), None).await;
    assert_eq!(
        res.status, 200,
        "the committee studies it; it keeps counting"
    );
    aggregate(&app).await;
    let claire = community::auth::Caller {
        id: community::domain::MemberId::parse("claire").expect("id"),
        email: None,
        groups: vec!["committee".into()],
        email_verified: Some(true),
    };
    community::committee::decide(
        &app,
        &claire,
        &idea_id,
        serde_json::from_value(json!({"outcome": "accepted",
            "reason": "Faisable dès le printemps dans nos magasins."}))
        .expect("request"),
    )
    .await
    .expect("decide");
    let res = call(&r, "PUT", &path, Some(&carl), None).await;
    assert_eq!(res.status, 409);
    assert!(res.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("accepted"));
    assert_eq!(
        call(&r, "DELETE", &path, Some(&alice), None).await.status,
        409
    );
    aggregate(&app).await;
    let got = community::ideas::get(&app, &idea_id).await.expect("idea");
    assert_eq!((got.status, got.votes), (IdeaStatus::Accepted, 2));
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
    aggregate(&app).await;
    let got = community::ideas::get(&app, &IdeaId::parse(&id).expect("id"))
        .await
        .expect("idea");
    assert_eq!(got.votes, 60);
}
