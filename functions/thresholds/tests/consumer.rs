//! The thresholds aggregator through its Lambda entry: DynamoDB stream
//! batches of vote record changes, built from the embedded store's feed as
//! the table's stream would deliver them, each delivered more than once.

use community::domain::{IdeaId, IdeaStatus};
use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::store::embedded::EmbeddedTable;
use community::store::feed::{Change, ChangeFeed};
use community::store::{Index, Query, Table};
use community::testing::{caller, embedded_app, join, member, post_idea};
use community::App;
use serde_json::{json, Value};

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

/// The vote record changes since the last call, as a stream batch.
async fn stream(app: &App<EmbeddedTable>) -> Vec<Value> {
    let changes: Vec<Change> = app.table.changes("test", 10_000).await.expect("feed");
    if let Some(last) = changes.last() {
        app.table.ack("test", &last.seq).await.expect("ack");
    }
    changes
        .iter()
        .filter(|c| c.pk.starts_with("VOTERS#"))
        .map(Change::to_stream_record)
        .collect()
}

async fn deliver(app: &App<EmbeddedTable>, records: &[Value]) {
    let res = thresholds::stream_batch(app, &json!({ "Records": records })).await;
    assert_eq!(res["batchItemFailures"], json!([]), "{res}");
}

async fn vote(app: &App<EmbeddedTable>, idea: &IdeaId, who: &str) {
    join(app, &member(who)).await;
    community::votes::cast(app, &caller(&member(who)), idea)
        .await
        .expect("vote");
}

#[tokio::test]
async fn the_threshold_moves_the_idea_to_the_committee_once_whatever_the_redelivery() {
    let (app, _d) = embedded_app(|s| s.vote_threshold = 3);
    let author = member("author");
    join(&app, &author).await;
    let idea = IdeaId::parse(&post_idea(&app, &author).await).expect("id");

    vote(&app, &idea, "member-paul").await;
    let first = stream(&app).await;
    assert_eq!(first.len(), 1);
    deliver(&app, &first).await;
    deliver(&app, &first).await;
    let row = community::ideas::load(&app, &idea, true)
        .await
        .expect("row");
    assert_eq!(
        (row.status, row.votes),
        (IdeaStatus::Open, 1),
        "counted once, still open"
    );

    for who in ["member-marie", "member-lea", "member-hugo"] {
        vote(&app, &idea, who).await;
    }
    let rest = stream(&app).await;
    assert_eq!(rest.len(), 3);
    // Split as a bisected retry would, then the whole batch again, then
    // the earlier batch with it.
    deliver(&app, &rest[..1]).await;
    deliver(&app, &rest).await;
    let all: Vec<Value> = first.iter().chain(rest.iter()).cloned().collect();
    deliver(&app, &all).await;

    let row = community::ideas::load(&app, &idea, true)
        .await
        .expect("row");
    assert_eq!(row.status, IdeaStatus::UnderReview);
    assert_eq!(row.votes, 4, "four distinct voters, each counted once");
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

    // It keeps counting under review; a withdrawal counts down once.
    vote(&app, &idea, "member-zoe").await;
    community::votes::withdraw(&app, &caller(&member("member-paul")), &idea)
        .await
        .expect("withdraw");
    let more = stream(&app).await;
    deliver(&app, &more).await;
    deliver(&app, &more).await;
    let row = community::ideas::load(&app, &idea, true)
        .await
        .expect("row");
    assert_eq!((row.status, row.votes), (IdeaStatus::UnderReview, 4));
    assert_eq!(
        outbox_events(&app.table, Kind::IdeaReachedThreshold).await,
        1
    );
}

/// A record that is not a stream record holds no vote; retrying it would
/// hold the shard (the function retries until records expire), so it is
/// passed over and the votes beside it are counted.
#[tokio::test]
async fn an_unreadable_record_does_not_hold_the_votes_beside_it() {
    let (app, _d) = embedded_app(|_| {});
    let author = member("author");
    join(&app, &author).await;
    let idea = IdeaId::parse(&post_idea(&app, &author).await).expect("id");
    vote(&app, &idea, "member-paul").await;
    let mut records = stream(&app).await;
    records.insert(
        0,
        json!({"eventName": "INSERT", "dynamodb": {"SequenceNumber": "1"}}),
    );
    deliver(&app, &records).await;
    let row = community::ideas::load(&app, &idea, true)
        .await
        .expect("row");
    assert_eq!(row.votes, 1);
}
