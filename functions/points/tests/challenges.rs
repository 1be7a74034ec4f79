//! Co-creation challenges (défis) and the points consumer: a proposal earns
//! the challenge's `proposal_points` (rule `challenge_proposal`), each
//! winner the challenge's `winner_points` (rule `challenge_winner`) once per
//! challenge, however often the events are delivered and however many of
//! the member's proposals won. On both adapters.

use community::events::{Event, Kind};
use community::store::Table;
use community::testing::{caller, embedded_app, join, member};
use community::App;
use points::PointsConsumer;
use serde_json::json;

async fn balance<T: Table>(app: &App<T>, sub: &str) -> i64 {
    community::members::get(app, &caller(&member(sub)).id)
        .await
        .expect("member")
        .points_balance
}

async fn deliver<T: Table + Clone>(consumer: &PointsConsumer<T>, events: &[Event]) {
    for _ in 0..2 {
        let res = community::queue::sqs(consumer, community::testing::sqs_batch(events))
            .await
            .expect("batch");
        assert!(res.batch_item_failures.is_empty(), "{res:?}");
    }
}

async fn scenario<T: Table + Clone>(app: App<T>) {
    let (ana, bob, cid) = (member("ana"), member("bob"), member("cid"));
    for m in [&ana, &bob, &cid] {
        join(&app, m).await;
    }
    let base = balance(&app, "ana").await;
    let consumer = PointsConsumer { app: app.clone() };
    let posted = |who: &str, idea: &str, points: Option<i64>| {
        Event::new(
            Kind::IdeaPosted,
            who,
            Some(idea),
            json!({"theme": "environment", "challenge_id": "defi", "points": points}),
        )
    };
    // The challenge's own points, then the rule's (20, points.toml).
    deliver(
        &consumer,
        &[
            posted("ana", "01JD0000000000000000000001", Some(15)),
            posted("bob", "01JD0000000000000000000002", None),
        ],
    )
    .await;
    assert_eq!(balance(&app, "ana").await, base + 15);
    assert_eq!(balance(&app, "bob").await, base + 20);
    let ledger = community::points::ledger(&app, &caller(&ana), 100, None)
        .await
        .expect("ledger");
    assert!(ledger
        .items
        .iter()
        .any(|e| e.reason == "challenge_proposal" && e.delta == 15));

    // Two of ana's proposals won, one of bob's: one credit each.
    let decided = Event::new(
        Kind::ChallengeDecided,
        "mia",
        None,
        json!({"challenge_id": "defi", "title": "Défi", "points": 300, "winners": [
            {"idea_id": "01JD0000000000000000000001", "member_id": "ana"},
            {"idea_id": "01JD0000000000000000000003", "member_id": "ana"},
            {"idea_id": "01JD0000000000000000000002", "member_id": "bob"}]}),
    );
    deliver(&consumer, std::slice::from_ref(&decided)).await;
    deliver(&consumer, std::slice::from_ref(&decided)).await;
    assert_eq!(balance(&app, "ana").await, base + 15 + 300);
    assert_eq!(balance(&app, "bob").await, base + 20 + 300);
    assert_eq!(balance(&app, "cid").await, base, "not a winner");
    // Without the challenge's points: the rule's (500).
    let house = Event::new(
        Kind::ChallengeDecided,
        "mia",
        None,
        json!({"challenge_id": "maison", "title": "Défi maison", "points": null,
               "winners": [{"idea_id": "01JD0000000000000000000009", "member_id": "cid"}]}),
    );
    deliver(&consumer, std::slice::from_ref(&house)).await;
    assert_eq!(balance(&app, "cid").await, base + 500);
}

#[tokio::test]
async fn challenge_points_once_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_points_once_on_dynamodb() {
    let Some(table) = community::testing::moto_table("chpoints").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}
