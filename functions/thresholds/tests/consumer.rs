//! The thresholds consumer through its Lambda entry.

use aws_lambda_events::event::sqs::SqsEvent;
use community::domain::{IdeaId, IdeaStatus};
use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::store::{Index, Query, Table, Write};
use community::testing::{caller, embedded_app, join, member, post_idea};
use thresholds::ThresholdsConsumer;

const SAMPLE_IDEA: &str = "01JD0000000000000000000000";

fn sample() -> SqsEvent {
    community::testing::sqs_sample("thresholds.json")
}

async fn outbox_events<T: Table>(t: &T, kind: Kind) -> usize {
    let mut n = 0;
    for b in 0..OUTBOX_BUCKETS {
        let page = t
            .query(&Query::new(Index::Primary, outbox_pk(b)).limit(1000))
            .await
            .expect("query");
        n += page
            .items
            .iter()
            .filter_map(Event::from_item)
            .filter(|e| e.kind == kind)
            .count();
    }
    n
}

#[tokio::test]
async fn the_threshold_moves_the_idea_to_the_committee_once() {
    let (app, _d) = embedded_app(|s| s.vote_threshold = 2);
    let author = member("author");
    join(&app, &author).await;
    // The sample's idea id.
    let id = post_idea(&app, &author).await;
    let mut row = community::ideas::load(&app, &IdeaId::parse(&id).expect("id"), true)
        .await
        .expect("row");
    row.id = SAMPLE_IDEA.into();
    app.table
        .transact(vec![Write::put(row.to_item().expect("item"))])
        .await
        .expect("copy");
    let idea = IdeaId::parse(SAMPLE_IDEA).expect("id");
    let consumer = ThresholdsConsumer { app: app.clone() };

    join(&app, &member("member-paul")).await;
    community::votes::cast(&app, &caller(&member("member-paul")), &idea)
        .await
        .expect("vote");
    let res = community::queue::sqs(&consumer, sample())
        .await
        .expect("ok");
    assert!(res.batch_item_failures.is_empty());
    let row = community::ideas::load(&app, &idea, true)
        .await
        .expect("row");
    assert_eq!(
        (row.status, row.votes),
        (IdeaStatus::Open, 1),
        "one vote: rolled up, still open"
    );

    join(&app, &member("member-marie")).await;
    community::votes::cast(&app, &caller(&member("member-marie")), &idea)
        .await
        .expect("vote");
    for _ in 0..3 {
        let res = community::queue::sqs(&consumer, sample())
            .await
            .expect("ok");
        assert!(res.batch_item_failures.is_empty());
    }
    let row = community::ideas::load(&app, &idea, true)
        .await
        .expect("row");
    assert_eq!(row.status, IdeaStatus::UnderReview);
    assert_eq!(row.votes, 2);
    assert!(row.reached_threshold_at.is_some());
    assert_eq!(
        outbox_events(&app.table, Kind::IdeaReachedThreshold).await,
        1,
        "one transition, one event"
    );
    let queue = community::committee::review_queue(
        &app,
        &caller(&member("c").in_groups(&["committee"])),
        10,
        None,
    )
    .await
    .expect("queue");
    assert_eq!(queue.items.len(), 1);
}
