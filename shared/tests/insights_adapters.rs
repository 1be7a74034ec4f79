//! Insights and ambassadors on both adapters (the embedded store, and
//! DynamoDB on moto): the consumer's batch transaction, the sharded reads, the
//! scored-members index, the ambassadors' run and its idempotence, erasure.

mod support;

use community::ambassadors::{self, Top};
use community::events::{Event, Kind};
use community::insights::InsightsConsumer;
use community::queue::Consumer;
use community::store::Table;
use community::App;
use serde_json::json;
use std::sync::Arc;
use support::{app, caller, embedded, idea, member};

fn marketing() -> community::auth::Caller {
    let mut c = caller("mkt");
    c.groups = vec!["marketing".into()];
    c
}

async fn case(app: App<Arc<dyn Table>>) {
    let authors = [member(&app, "ana").await, member(&app, "bob").await];
    let a = idea(&app, &authors[0]).await;
    let b = idea(&app, &authors[1]).await;
    let mut events = vec![
        Event::new(
            Kind::MemberSignedUp,
            "ana",
            None,
            json!({"cohort": "staff"}),
        ),
        Event::new(
            Kind::MemberSignedUp,
            "bob",
            None,
            json!({"cohort": "public"}),
        ),
        Event::new(
            Kind::IdeaPosted,
            "ana",
            Some(a.as_str()),
            json!({"theme": "environment"}),
        ),
        Event::new(
            Kind::IdeaPosted,
            "bob",
            Some(b.as_str()),
            json!({"theme": "environment"}),
        ),
    ];
    for i in 0..12 {
        events.push(Event::new(
            Kind::VoteCast,
            &format!("v{i}"),
            Some(a.as_str()),
            json!(null),
        ));
    }
    events.push(Event::new(
        Kind::VoteWithdrawn,
        "v0",
        Some(a.as_str()),
        json!(null),
    ));
    events.push(Event::new(
        Kind::IdeaReachedThreshold,
        "ana",
        Some(a.as_str()),
        json!({}),
    ));
    events.push(Event::new(
        Kind::IdeaDecided,
        "ana",
        Some(a.as_str()),
        json!({"outcome": "accepted"}),
    ));
    events.push(Event::new(
        Kind::ReviewPosted,
        "bob",
        None,
        json!({"ean": "3017620422003"}),
    ));
    // The votes themselves are counted by the aggregator from the vote
    // records' changes (as the stream gives them): 12 cast on ana's idea,
    // v0's withdrawn; each batch delivered twice.
    let change = |i: usize, cast: bool| {
        let v = format!("v{i}");
        let pk = community::votes::voters_pk(a.as_str(), community::votes::bucket(&v));
        let image: community::store::Item = serde_json::from_value(json!({
            "pk": pk, "sk": v, "idea_id": a.as_str(), "member_id": v, "author_id": "ana",
            "vote_id": format!("vote{i}"), "created_at": community::domain::now(),
        }))
        .expect("image");
        community::store::feed::Change {
            seq: format!("{:020}", if cast { i + 1 } else { 100 + i }),
            name: if cast {
                community::store::feed::ChangeName::Insert
            } else {
                community::store::feed::ChangeName::Remove
            },
            pk,
            sk: v,
            new: cast.then(|| image.clone()),
            old: (!cast).then_some(image),
            at: 0,
        }
    };
    let mut changes: Vec<_> = (0..12).map(|i| change(i, true)).collect();
    changes.push(change(0, false));
    for _ in 0..2 {
        for chunk in changes.chunks(5) {
            assert!(community::thresholds::apply(&app, chunk).await.is_ok());
        }
    }
    let consumer = InsightsConsumer { app: app.clone() };
    let batch: Vec<(String, Event)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("m{i}"), e.clone()))
        .collect();
    for _ in 0..2 {
        for chunk in batch.chunks(10) {
            assert!(consumer.apply_batch(chunk).await.is_empty());
        }
    }
    let mut v = community::insights::read(&app, &marketing())
        .await
        .expect("insights");
    v["generated_at"] = json!(null);
    assert_eq!(v["members"]["total"], json!(2));
    assert_eq!(v["members"]["by_cohort"], json!({"staff": 1, "public": 1}));
    assert_eq!(
        v["active_members"]["last_30_days"],
        json!(14),
        "ana, bob and 12 voters"
    );
    assert_eq!(v["ideas"]["by_theme"]["environment"]["open"], json!(1));
    assert_eq!(v["ideas"]["by_theme"]["environment"]["accepted"], json!(1));
    assert_eq!(
        v["ideas"]["by_theme"]["environment"]["under_review"],
        json!(0)
    );
    assert_eq!(v["votes"], json!({"cast": 12, "withdrawn": 1, "net": 11}));
    assert_eq!(v["reviews"]["posted"], json!(1));
    let ana = app
        .table
        .get(&ambassadors::score_key("ana"), true)
        .await
        .expect("get")
        .expect("ana's counters");
    // Her ideas counter is stored; the votes her idea drew are the
    // aggregator's tally, read by the run (no write of hers per vote).
    assert_eq!(
        (ana["ideas"].clone(), ana.get("votes_drawn").cloned()),
        (json!(1), None)
    );

    // Ambassadors: ana (1 idea × 20 + 11 votes × 2 = 42) and bob (20 + 15 = 35).
    let report = ambassadors::run(&app).await.expect("run");
    // Only members with counters are scored: the voters only voted (their
    // points come from the points consumer, not run here).
    assert_eq!(
        (report.scored, report.ambassadors, report.flagged),
        (2, 2, 2)
    );
    let again = ambassadors::run(&app).await.expect("run");
    assert_eq!(again.writes, 0);
    let list = ambassadors::list(&app, &marketing(), 1, None)
        .await
        .expect("list");
    assert_eq!(list.items[0].member_id, "ana");
    assert_eq!(list.items[0].score, 42);
    assert!(list.items[0]
        .breakdown
        .iter()
        .any(|l| l.counter == "votes_drawn" && l.count == 11));
    let next = ambassadors::list(&app, &marketing(), 1, list.next_cursor)
        .await
        .expect("list");
    assert_eq!(next.items[0].member_id, "bob");
    assert!(
        community::members::get(&app, &authors[0].id)
            .await
            .expect("ana")
            .ambassador
    );
    // Bob is erased: he drops out.
    consumer
        .apply(&Event::new(Kind::MemberErased, "bob", None, json!(null)))
        .await
        .expect("erased");
    let report = ambassadors::run(&app).await.expect("run");
    assert_eq!((report.ambassadors, report.unflagged), (1, 0), "{report:?}");
    let list = ambassadors::list(&app, &marketing(), 10, None)
        .await
        .expect("list");
    assert_eq!(list.items.len(), 1);
    let bob = community::members::get(&app, &authors[1].id)
        .await
        .expect("bob");
    assert!(!bob.ambassador);
}

fn settings(s: &mut community::config::Settings) {
    s.ambassadors.top = Top::Count(5);
    s.ambassadors.min_score = 30;
    s.ambassadors.levels[0].min_score = 30;
    for (k, w) in [
        ("points", 0),
        ("ideas", 20),
        ("votes_drawn", 2),
        ("comments", 5),
        ("reviews", 15),
        ("entries", 3),
        ("clicks", 2),
    ] {
        s.ambassadors.weights.insert(k.into(), w);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_and_ambassadors_on_the_embedded_store() {
    let (t, _d) = embedded();
    case(app(t, settings)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_and_ambassadors_on_dynamodb() {
    let Some(t) = support::dynamodb().await else {
        return;
    };
    case(app(t, settings)).await;
}
