//! The relay through its Lambda entry: DynamoDB stream batches in.

use async_trait::async_trait;
use community::events::{Event, Kind, Queue};
use community::relay::{Outbound, SendError, SEND_BATCH};
use serde_json::{json, Value};
use std::sync::Mutex;

fn sample(name: &str) -> Value {
    let text = std::fs::read_to_string(format!(
        "{}/../../events/dynamodb/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("sample");
    serde_json::from_str(&text).expect("json")
}

#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<(Queue, String, Kind)>>,
    requests: Mutex<Vec<usize>>,
    /// Every request fails.
    down: bool,
    /// Entries with these event ids are refused (partial batch failure).
    refuse: Vec<String>,
}

#[async_trait]
impl Outbound for Recorder {
    async fn send_batch(&self, queue: Queue, events: &[Event]) -> Result<Vec<usize>, SendError> {
        if self.down {
            return Err(SendError {
                queue: queue.name(),
                message: "down".into(),
            });
        }
        assert!(events.len() <= SEND_BATCH, "SQS takes 10 per batch");
        self.requests.lock().expect("lock").push(events.len());
        let mut failed = Vec::new();
        for (i, e) in events.iter().enumerate() {
            if self.refuse.contains(&e.event_id) {
                failed.push(i);
                continue;
            }
            self.sent
                .lock()
                .expect("lock")
                .push((queue, e.event_id.clone(), e.kind));
        }
        Ok(failed)
    }
}

fn sorted(mut v: Vec<(Queue, String, Kind)>) -> Vec<(Queue, String, Kind)> {
    v.sort_by_key(|(q, id, _)| (q.name(), id.clone()));
    v
}

#[tokio::test]
async fn outbox_inserts_go_to_their_queues_and_the_rest_is_ignored() {
    let out = Recorder::default();
    let res = relay::relay(&out, &sample("outbox-stream.json")).await;
    assert_eq!(res["batchItemFailures"], json!([]));
    let id = "01JD00000000000000000000E6".to_string();
    assert_eq!(
        sorted(out.sent.lock().expect("lock").clone()),
        vec![
            (Queue::Insights, id.clone(), Kind::IdeaPosted),
            (Queue::Points, id, Kind::IdeaPosted),
        ]
    );
}

#[tokio::test]
async fn a_vote_records_own_changes_are_its_events() {
    let out = Recorder::default();
    let res = relay::relay(&out, &sample("votes-stream.json")).await;
    assert_eq!(res["batchItemFailures"], json!([]));
    let cast = "01JD00000000000000000000V1".to_string();
    assert_eq!(
        sorted(out.sent.lock().expect("lock").clone()),
        // Insights only (a vote's points are read from its record), and
        // nothing for a withdrawal (only the aggregator counts it).
        vec![(Queue::Insights, cast, Kind::VoteCast)]
    );
}

#[tokio::test]
async fn a_failed_send_reports_the_record_so_the_stream_retries_it() {
    let out = Recorder {
        down: true,
        ..Default::default()
    };
    let res = relay::relay(&out, &sample("outbox-stream.json")).await;
    assert_eq!(
        res["batchItemFailures"][0]["itemIdentifier"],
        "111100000000000000001"
    );
}

/// 25 vote inserts: sent ten to a request; when one entry is refused, the
/// response names its record (the stream retries from there; what was sent
/// after it is sent again, and consumers absorb the repeat).
#[tokio::test]
async fn events_go_ten_to_a_request_and_a_refused_entry_is_retried() {
    let one = sample("votes-stream.json")["Records"][0].clone();
    let records: Vec<Value> = (0..25)
        .map(|i| {
            let mut r = one.clone();
            r["dynamodb"]["SequenceNumber"] = json!(format!("3000{i:03}"));
            r["dynamodb"]["NewImage"]["vote_id"] = json!({"S": format!("V{i:03}")});
            r["dynamodb"]["NewImage"]["member_id"] = json!({"S": format!("m{i}")});
            r
        })
        .collect();
    let batch = json!({ "Records": records });
    let out = Recorder::default();
    let res = relay::relay(&out, &batch).await;
    assert_eq!(res["batchItemFailures"], json!([]));
    let mut requests = out.requests.lock().expect("lock").clone();
    requests.sort_unstable();
    // 25 events to their one queue (insights).
    assert_eq!(requests, vec![5, 10, 10]);

    let out = Recorder {
        refuse: vec!["V013".into()],
        ..Default::default()
    };
    let res = relay::relay(&out, &batch).await;
    assert_eq!(res["batchItemFailures"][0]["itemIdentifier"], "3000013");
}

#[tokio::test]
async fn an_unreadable_record_is_not_dropped() {
    let mut batch = sample("outbox-stream.json");
    batch["Records"][0]["dynamodb"]["NewImage"]["event"] = json!({"S": "not an event"});
    let out = Recorder::default();
    let res = relay::relay(&out, &batch).await;
    assert_eq!(
        res["batchItemFailures"][0]["itemIdentifier"],
        "111100000000000000001"
    );
    assert!(out.sent.lock().expect("lock").is_empty());
}

/// An outbox event written at `ms` (Unix ms): its id is a ULID of that time.
fn event_at(ms: u64, kind: Kind, member: &str) -> Event {
    let mut e = Event::new(kind, member, None, json!({}));
    e.event_id = ulid::Ulid::from_parts(ms, rand_bits(&e.event_id)).to_string();
    e
}

fn rand_bits(seed: &str) -> u128 {
    ulid::Ulid::from_string(seed).map_or(7, |u| u.random())
}

/// Operations replay a time range of the outbox: the events written in it,
/// and only those, go again to the queues their kinds are routed to (or to
/// the one queue asked for), read page by page from every outbox bucket.
#[tokio::test]
async fn a_replay_sends_the_events_of_its_time_range_again() {
    let (app, _d) = community::testing::embedded_app(|_| {});
    let t0: u64 = 1_796_000_000_000;
    let hour = 3_600_000;
    let before = event_at(t0 - hour, Kind::MemberSignedUp, "early");
    let after = event_at(t0 + 2 * hour, Kind::MemberSignedUp, "late");
    let mut inside = Vec::new();
    // More than a page in some buckets.
    for i in 0..600u64 {
        inside.push(event_at(t0 + i * 1_000, Kind::IdeaPosted, &format!("m{i}")));
    }
    inside.push(event_at(t0 + hour, Kind::MemberSignedUp, "edge"));
    for e in inside.iter().chain([&before, &after]) {
        community::store::Table::transact(&app.table, vec![e.write()])
            .await
            .expect("outbox item");
    }
    let out = Recorder::default();
    let report = community::relay::replay(&app.table, &out, t0, t0 + hour, None)
        .await
        .expect("replay");
    assert_eq!(report.events, inside.len() as u64);
    let sent = out.sent.lock().expect("lock").clone();
    let mut expected = Vec::new();
    for e in &inside {
        for q in community::events::routes(e.kind) {
            expected.push((*q, e.event_id.clone(), e.kind));
        }
    }
    assert_eq!(sorted(sent.clone()), sorted(expected.clone()));
    assert!(!sent
        .iter()
        .any(|(_, id, _)| *id == before.event_id || *id == after.event_id));
    let total: u64 = report.sent.values().sum();
    assert_eq!(total, expected.len() as u64);
    assert!(out
        .requests
        .lock()
        .expect("lock")
        .iter()
        .all(|n| *n <= SEND_BATCH));

    // One queue only.
    let points = Recorder::default();
    community::relay::replay(&app.table, &points, t0, t0 + hour, Some(Queue::Points))
        .await
        .expect("replay");
    let to_points = points.sent.lock().expect("lock").clone();
    assert!(!to_points.is_empty() && to_points.iter().all(|(q, _, _)| *q == Queue::Points));

    // A backwards range is refused, not read as empty.
    assert!(matches!(
        community::relay::replay(&app.table, &out, t0 + hour, t0, None).await,
        Err(community::relay::ReplayError::EmptyRange)
    ));
}

/// Every queue the relay sends to gets its events: a batch with an outbox
/// insert of each kind reaches each kind's queues (`events::routes`), so
/// every queue's send is exercised (and proven granted by the template).
#[tokio::test]
async fn each_kind_reaches_every_queue_it_is_routed_to() {
    let base = sample("outbox-stream.json");
    let insert = base["Records"][0].clone();
    let kinds = [Kind::MemberSignedUp, Kind::PointsRedeemed, Kind::IdeaPosted];
    let mut records = Vec::new();
    for (i, kind) in kinds.iter().enumerate() {
        let id = format!("01JD00000000000000000000K{i}");
        let mut r = insert.clone();
        r["dynamodb"]["SequenceNumber"] = json!(format!("22220000000000000000{i}"));
        r["dynamodb"]["Keys"]["sk"] = json!({"S": id});
        let image = &mut r["dynamodb"]["NewImage"];
        image["sk"] = json!({"S": id});
        image["event"]["M"]["event_id"] = json!({"S": id});
        image["event"]["M"]["kind"] = json!({"S": kind.as_str()});
        records.push(r);
    }
    let out = Recorder::default();
    let res = relay::relay(&out, &json!({ "Records": records })).await;
    assert_eq!(res["batchItemFailures"], json!([]));
    let sent = out.sent.lock().expect("lock").clone();
    for kind in kinds {
        let mut got: Vec<&str> = sent
            .iter()
            .filter(|(_, _, k)| *k == kind)
            .map(|(q, _, _)| q.name())
            .collect();
        got.sort();
        let mut want: Vec<&str> = community::events::routes(kind)
            .iter()
            .map(|q| q.name())
            .collect();
        want.sort();
        assert_eq!(got, want, "{kind:?}");
    }
    let queues: std::collections::BTreeSet<&str> = sent.iter().map(|(q, _, _)| q.name()).collect();
    let routed: std::collections::BTreeSet<&str> = Queue::ROUTED.iter().map(|q| q.name()).collect();
    assert_eq!(queues, routed, "every routed queue is sent to");
}
