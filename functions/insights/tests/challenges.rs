//! Participation per co-creation challenge (défi), folded by the insights
//! consumer as events arrive: proposals, distinct participants (authors and
//! voters, each once ever) and votes on proposals, exactly once however
//! often a batch is delivered; `GET /insights` lists them without a scan;
//! the results move the winners' status counts. On both adapters.

use community::events::{Event, Kind};
use community::store::Table;
use community::testing::{apply_challenges, caller, challenge, embedded_app, member};
use community::App;
use insights::InsightsConsumer;
use serde_json::json;

fn posted(who: &str, idea: &str, challenge: &str) -> Event {
    Event::new(
        Kind::IdeaPosted,
        who,
        Some(idea),
        json!({"theme": "environment", "challenge_id": challenge}),
    )
}

fn voted(who: &str, idea: &str, challenge: &str) -> Event {
    let mut e = Event::new(
        Kind::VoteCast,
        who,
        Some(idea),
        json!({"author_id": "ana", "challenge_id": challenge}),
    );
    e.event_id = format!("vote-{who}-{idea}");
    e
}

async fn scenario<T: Table + Clone>(app: App<T>) {
    apply_challenges(
        &app,
        vec![
            challenge("defi", -60, 3600, Some("bonne-maman")),
            challenge("autre", -60, 3600, None),
        ],
    )
    .await;
    let consumer = InsightsConsumer { app: app.clone() };
    let (p1, p2, p3) = (
        "01JD0000000000000000000001",
        "01JD0000000000000000000002",
        "01JD0000000000000000000003",
    );
    let events = vec![
        posted("ana", p1, "defi"),
        posted("ana", p2, "defi"),
        posted("bob", p3, "autre"),
        voted("bob", p1, "defi"),
        voted("cid", p1, "defi"),
        voted("ana", p2, "defi"),
        // A vote on an idea of no challenge counts for none.
        voted("cid", "01JD0000000000000000000009", ""),
    ];
    let mut events = events;
    events[6].data = json!({"author_id": "dan"});
    for chunk in [&events[..4], &events[3..]] {
        for _ in 0..2 {
            let res = community::queue::sqs(&consumer, community::testing::sqs_batch(chunk))
                .await
                .expect("batch");
            assert!(res.batch_item_failures.is_empty(), "{res:?}");
        }
    }
    let defi = community::challenges::participation(&app, "defi")
        .await
        .expect("figures");
    assert_eq!(
        (defi.proposals, defi.participants, defi.votes),
        (2, 3, 3),
        "ana, bob and cid; each event once"
    );
    let autre = community::challenges::participation(&app, "autre")
        .await
        .expect("figures");
    assert_eq!(
        (autre.proposals, autre.participants, autre.votes),
        (1, 1, 0)
    );

    // The results: a winner still open is accepted.
    let decided = Event::new(
        Kind::ChallengeDecided,
        "mia",
        None,
        json!({"challenge_id": "defi", "theme": "environment", "winners": [
            {"idea_id": p1, "member_id": "ana", "from": "open", "accepted": true}]}),
    );
    for _ in 0..2 {
        let res = community::queue::sqs(
            &consumer,
            community::testing::sqs_batch(std::slice::from_ref(&decided)),
        )
        .await
        .expect("batch");
        assert!(res.batch_item_failures.is_empty(), "{res:?}");
    }
    let mkt = caller(&member("mkt").in_groups(&["marketing"]));
    let report = community::insights::read(&app, &mkt)
        .await
        .expect("insights");
    assert_eq!(report["ideas"]["by_theme"]["environment"]["open"], 2);
    assert_eq!(report["ideas"]["by_theme"]["environment"]["accepted"], 1);
    let mut rows: Vec<serde_json::Value> =
        report["challenges"].as_array().cloned().unwrap_or_default();
    rows.sort_by_key(|r| r["id"].as_str().map(str::to_owned));
    assert_eq!(
        rows,
        vec![
            json!({"id": "autre", "title": "Le produit de demain", "proposals": 1, "participants": 1, "votes": 0}),
            json!({"id": "defi", "title": "Le produit de demain", "proposals": 2, "participants": 3, "votes": 3}),
        ]
    );
}

#[tokio::test]
async fn participation_per_challenge_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participation_per_challenge_on_dynamodb() {
    let Some(table) = community::testing::moto_table("chinsights").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}
