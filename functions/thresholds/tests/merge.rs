//! Merges (`community::merge`) as the aggregator sees them, through its
//! Lambda entry: the copies a merge makes are counted like any vote (a
//! threshold the merge crosses sends the target to the committee once), a
//! merged idea never reaches the threshold, and the vote record changes of
//! a merged idea (a vote or a withdrawal that raced the merge) are forwarded
//! to the target, exactly, whatever is delivered again.

use community::domain::{IdeaId, IdeaStatus};
use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::merge::{MergeRequest, COPIED_TO, MERGED_FROM};
use community::store::embedded::EmbeddedTable;
use community::store::feed::{Change, ChangeFeed};
use community::store::{Cond, Index, Query, Table, Write};
use community::testing::{caller, embedded_app, join, member, post_idea};
use community::votes;
use community::App;
use serde_json::{json, Value};
use std::collections::HashSet;

async fn outbox(app: &App<EmbeddedTable>) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, outbox_pk(b)).limit(1000);
        let items = community::store::all_pages(&app.table, q)
            .await
            .expect("outbox");
        out.extend(items.iter().filter_map(Event::from_item));
    }
    out
}

/// The vote record changes since the last call, as stream records.
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

/// Streams and aggregates until nothing changes (a forward is a change of
/// the target, aggregated in the next round), each batch twice; returns
/// every record delivered.
async fn aggregate(app: &App<EmbeddedTable>) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let records = stream(app).await;
        if records.is_empty() {
            return all;
        }
        deliver(app, &records).await;
        deliver(app, &records).await;
        all.extend(records);
    }
}

/// Delivers the merge's events (`idea.merged`, its pages) to the emails
/// consumer until none is new.
async fn pump(consumer: &EmailsConsumer<EmbeddedTable, DirMailbox>, kinds: &[Kind]) {
    let mut done = HashSet::new();
    loop {
        let pending: Vec<Event> = outbox(&consumer.app)
            .await
            .into_iter()
            .filter(|e| kinds.contains(&e.kind) && !done.contains(&e.event_id))
            .collect();
        if pending.is_empty() {
            return;
        }
        for chunk in pending.chunks(10) {
            for _ in 0..2 {
                let res = community::queue::sqs(consumer, community::testing::sqs_batch(chunk))
                    .await
                    .expect("batch");
                assert!(res.batch_item_failures.is_empty(), "{res:?}");
            }
        }
        done.extend(pending.into_iter().map(|e| e.event_id));
    }
}

async fn vote(app: &App<EmbeddedTable>, idea: &str, who: &str) {
    if community::members::get(app, &caller(&member(who)).id)
        .await
        .is_err()
    {
        join(app, &member(who)).await;
    }
    let id = IdeaId::parse(idea).expect("id");
    community::votes::cast(app, &caller(&member(who)), &id)
        .await
        .expect("vote");
}

async fn merge(app: &App<EmbeddedTable>, source: &str, into: &str) {
    let req = MergeRequest {
        into: Some(into.into()),
        reason: Some("Deux fois la même proposition".into()),
    };
    let mo = member("mo").in_groups(&["moderator"]);
    let id = IdeaId::parse(source).expect("id");
    let view = community::merge::merge(app, &caller(&mo), &id, req)
        .await
        .expect("merged");
    assert_eq!(view.merged_into.as_deref(), Some(into));
}

/// A vote record written on `idea` as `votes::cast` writes it, without the
/// checks a request makes: a vote whose request read the idea before the
/// merge and wrote after the merge's page passed its bucket.
async fn racing_vote(app: &App<EmbeddedTable>, idea: &str, who: &str) {
    let id = IdeaId::parse(idea).expect("id");
    let k = votes::vote_key(&id, who);
    let at = community::domain::now();
    let Value::Object(item) = json!({
        "pk": k.pk, "sk": k.sk, "vote_id": format!("race-{who}"), "idea_id": idea,
        "member_id": who, "author_id": "alice", "created_at": at,
        "gsi3pk": format!("MEMBER#{who}"), "gsi3sk": format!("VOTE#{at}#{idea}"),
    }) else {
        unreachable!()
    };
    app.table
        .transact(vec![Write::put_new(item)])
        .await
        .expect("racing vote");
}

/// A withdrawal of the same kind (the record deleted).
async fn racing_withdrawal(app: &App<EmbeddedTable>, idea: &str, who: &str) {
    let id = IdeaId::parse(idea).expect("id");
    app.table
        .transact(vec![Write::Delete {
            key: votes::vote_key(&id, who),
            cond: Some(Cond::Exists),
        }])
        .await
        .expect("racing withdrawal");
}

async fn voters(app: &App<EmbeddedTable>, idea: &str) -> Vec<String> {
    let mut v = votes::voters(app, idea).await.expect("voters");
    v.sort();
    v
}

async fn row(app: &App<EmbeddedTable>, idea: &str) -> community::ideas::IdeaRow {
    community::ideas::load(app, &IdeaId::parse(idea).expect("id"), true)
        .await
        .expect("row")
}

#[tokio::test]
async fn votes_and_withdrawals_racing_a_merge_reach_the_target_exactly() {
    let (app, dir) = embedded_app(|_| {});
    join(&app, &member("alice")).await;
    join(&app, &member("carla")).await;
    let source = post_idea(&app, &member("alice")).await;
    let target = post_idea(&app, &member("carla")).await;
    let tid = IdeaId::parse(&target).expect("id");
    // v9 voted for both; r2 for the target only.
    for v in ["v1", "v2", "v9"] {
        vote(&app, &source, v).await;
    }
    for v in ["v9", "r2"] {
        vote(&app, &target, v).await;
    }
    aggregate(&app).await;
    merge(&app, &source, &target).await;
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: DirMailbox::new(dir.path().join("mailbox")).expect("mailbox"),
    };
    pump(&consumer, &[Kind::IdeaMerged, Kind::MergePage]).await;
    assert_eq!(voters(&app, &target).await, ["r2", "v1", "v2", "v9"]);
    let v9 = app
        .table
        .get(
            &votes::vote_key(&IdeaId::parse(&source).expect("id"), "v9"),
            true,
        )
        .await
        .expect("get")
        .expect("v9's vote");
    assert_eq!(
        v9[COPIED_TO],
        json!(target),
        "counted once, marked copied for good"
    );

    // After the pages: r1 casts, r2 casts (voted for the target already),
    // v2 and v9 withdraw, v1 withdraws and votes again, each request having
    // read the idea before the merge.
    racing_vote(&app, &source, "r1").await;
    racing_vote(&app, &source, "r2").await;
    racing_withdrawal(&app, &source, "v2").await;
    racing_withdrawal(&app, &source, "v9").await;
    racing_withdrawal(&app, &source, "v1").await;
    racing_vote(&app, &source, "v1").await;
    let raced = aggregate(&app).await;
    assert_eq!(
        voters(&app, &target).await,
        ["r1", "r2", "v1", "v9"],
        "r1 forwarded; v2's copy withdrawn; r2's and v9's own votes kept"
    );
    let r2 = app
        .table
        .get(&votes::vote_key(&tid, "r2"), true)
        .await
        .expect("get")
        .expect("r2");
    assert!(!r2.contains_key(MERGED_FROM), "r2's own vote: {r2:?}");
    assert_eq!(row(&app, &target).await.votes, 4);
    assert_eq!(
        row(&app, &source).await.votes,
        3,
        "the source keeps its own count"
    );

    // r1 withdraws the copy from the target; the racing batch delivered
    // again copies nothing back (the source's vote is marked), and takes
    // nothing from v1 (whose source vote is there again).
    join(&app, &member("r1")).await;
    community::votes::withdraw(&app, &caller(&member("r1")), &tid)
        .await
        .expect("withdraw");
    deliver(&app, &raced).await;
    aggregate(&app).await;
    assert_eq!(voters(&app, &target).await, ["r2", "v1", "v9"]);
    assert_eq!(row(&app, &target).await.votes, 3);
}

#[tokio::test]
async fn a_merge_past_the_threshold_sends_the_target_to_the_committee_once() {
    let (app, dir) = embedded_app(|s| s.vote_threshold = 5);
    join(&app, &member("alice")).await;
    join(&app, &member("carla")).await;
    let source = post_idea(&app, &member("alice")).await;
    let target = post_idea(&app, &member("carla")).await;
    for v in ["t1", "t2", "t3"] {
        vote(&app, &target, v).await;
    }
    for v in ["t3", "s1", "s2", "s3"] {
        vote(&app, &source, v).await;
    }
    aggregate(&app).await;
    assert_eq!(row(&app, &target).await.status, IdeaStatus::Open);
    assert_eq!(row(&app, &source).await.status, IdeaStatus::Open);

    merge(&app, &source, &target).await;
    // Votes racing the merge bring the merged idea itself to 5: it stays
    // out of the committee's way (they are forwarded to the target).
    racing_vote(&app, &source, "s4").await;
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: DirMailbox::new(dir.path().join("mailbox")).expect("mailbox"),
    };
    pump(&consumer, &[Kind::IdeaMerged, Kind::MergePage]).await;
    aggregate(&app).await;
    let t = row(&app, &target).await;
    assert_eq!(
        (t.status, t.votes),
        (IdeaStatus::UnderReview, 7),
        "t1..t3, s1..s4: each once"
    );
    let s = row(&app, &source).await;
    assert_eq!((s.status, s.votes), (IdeaStatus::Open, 5));
    let reached: Vec<Event> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == Kind::IdeaReachedThreshold)
        .collect();
    assert_eq!(reached.len(), 1, "one transition");
    assert_eq!(reached[0].idea_id.as_deref(), Some(target.as_str()));

    // The committee is mailed once, however often the event comes.
    pump(&consumer, &[Kind::IdeaReachedThreshold]).await;
    pump(&consumer, &[Kind::IdeaReachedThreshold]).await;
    let mails = consumer.mailer.list().expect("mails");
    let committee: Vec<_> = mails
        .iter()
        .filter(|m| m.mail_id.ends_with("-committee"))
        .collect();
    assert_eq!(committee.len(), 1, "{committee:?}");
    assert!(committee[0].subject.contains("Nouvelle idée à étudier"));
    let queue = community::committee::review_queue(
        &app,
        &caller(&member("c").in_groups(&["committee"])),
        10,
        None,
    )
    .await
    .expect("queue");
    let ids: Vec<&str> = queue.items.iter().map(|q| q.idea.id.as_str()).collect();
    assert_eq!(ids, [target.as_str()]);
}
