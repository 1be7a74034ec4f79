//! The insights consumer through its Lambda entry: an SQS event in, a
//! partial batch response out; aggregates applied once however often the
//! batch is delivered.

use aws_lambda_events::event::sqs::SqsEvent;
use community::events::{Event, Kind};
use community::store::Table;
use community::testing::{caller, embedded_app, member};
use insights::InsightsConsumer;
use serde_json::json;

fn sample() -> SqsEvent {
    community::testing::sqs_sample("insights.json")
}

fn batch(events: &[Event]) -> SqsEvent {
    community::testing::sqs_batch(events)
}

fn marketing() -> community::auth::Caller {
    caller(&member("mkt").in_groups(&["marketing"]))
}

#[tokio::test]
async fn sample_batch_applies_once_and_reports_only_the_poison_message() {
    let (app, _d) = embedded_app(|_| {});
    let consumer = InsightsConsumer { app: app.clone() };
    for _ in 0..3 {
        let res = community::queue::sqs(&consumer, sample())
            .await
            .expect("partial");
        let failed: Vec<_> = res
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(
            failed,
            vec!["6f1c3a2e-0004-4e5b-9a51-insights00004".to_string()]
        );
        let v = community::insights::read(&app, &marketing())
            .await
            .expect("insights");
        assert_eq!(v["members"]["total"], json!(1));
        assert_eq!(v["members"]["by_cohort"], json!({"panel": 1}));
        assert_eq!(v["ideas"]["by_theme"]["environment"]["open"], json!(1));
        assert_eq!(v["contests"]["entries"], json!(1));
        assert_eq!(v["points"]["redeemed"], json!(500));
    }
    let score = app
        .table
        .get(&community::ambassadors::score_key("member-marie"), true)
        .await
        .expect("get")
        .expect("counters");
    assert_eq!(score["ideas"], json!(1));
    assert_eq!(score["entries"], json!(1));
    // Last active on the redemption's day (the latest event).
    assert_eq!(score["last_active"], json!("2026-11-24"));
    let poison: SqsEvent =
        serde_json::from_value(json!({"Records": [{"messageId": "p", "body": "{}"}]}))
            .expect("event");
    assert!(community::queue::sqs(&consumer, poison).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_spike_from_concurrent_batches_marks_each_voter_active_once() {
    let (app, _d) = embedded_app(|_| {});
    let consumer = std::sync::Arc::new(InsightsConsumer { app: app.clone() });
    // 400 votes from 400 members on one idea, in 40 batches of 10, 8 at a time,
    // each batch delivered twice (concurrently with its first delivery).
    let events: Vec<Event> = (0..400)
        .map(|i| {
            Event::new(
                Kind::VoteCast,
                &format!("voter{i}"),
                Some("01JD0000000000000000000000"),
                json!(null),
            )
        })
        .collect();
    let mut tasks = Vec::new();
    for chunk in events.chunks(10).chain(events.chunks(10)) {
        let c = consumer.clone();
        let b = batch(chunk);
        tasks.push(tokio::spawn(async move {
            community::queue::sqs(c.as_ref(), b).await.expect("ok")
        }));
        if tasks.len() == 8 {
            for t in tasks.drain(..) {
                assert!(t.await.expect("task").batch_item_failures.is_empty());
            }
        }
    }
    for t in tasks {
        assert!(t.await.expect("task").batch_item_failures.is_empty());
    }
    let v = community::insights::read(&app, &marketing())
        .await
        .expect("insights");
    // Each voter is active once, however often their vote was delivered and
    // without a marker per vote. The votes themselves are counted by the
    // aggregator from the vote records (local/tests/pipeline.rs), not here.
    assert_eq!(v["active_members"]["last_30_days"], json!(400));
    assert_eq!(v["votes"]["cast"], json!(0));
}

/// Comments posted on an idea move its `comment_count`, folded per idea and
/// batch, once however often the batch is delivered.
#[tokio::test]
async fn comments_posted_count_on_their_idea_once() {
    let (app, _d) = embedded_app(|_| {});
    let alice = member("alice");
    community::testing::join(&app, &alice).await;
    let idea = community::testing::post_idea(&app, &alice).await;
    let consumer = InsightsConsumer { app: app.clone() };
    let events: Vec<Event> = (0..2)
        .map(|i| {
            Event::new(
                Kind::CommentPosted,
                &format!("commenter{i}"),
                Some(&idea),
                json!({"comment_id": format!("01JD00000000000000000000C{i}")}),
            )
        })
        .collect();
    for _ in 0..2 {
        let res = community::queue::sqs(&consumer, batch(&events))
            .await
            .expect("batch");
        assert!(res.batch_item_failures.is_empty());
    }
    let id = community::domain::IdeaId::parse(&idea).expect("id");
    let row = community::ideas::load(&app, &id, true).await.expect("idea");
    assert_eq!(row.comment_count, 2);
}
