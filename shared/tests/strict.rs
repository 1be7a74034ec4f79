//! The embedded store under load behaves like DynamoDB: transactions conflict
//! on shared items, a hot partition is throttled, and the capacity meter
//! attributes every unit to its cause. (moto serialises requests, so it can
//! show neither conflicts nor throttling: these cases are the embedded
//! store's alone, and each fails when its rule is turned off.)

mod support;

use community::store::capacity::{attributed, Rules};
use community::store::embedded::EmbeddedTable;
use community::store::{Key, StoreError, Table, Update, Write};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::obj;

fn open(rules: Rules) -> (Arc<EmbeddedTable>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = EmbeddedTable::open_with(dir.path(), rules).expect("open");
    (Arc::new(t), dir)
}

fn bump(pk: &str, sk: &str) -> Write {
    Write::update(Key::new(pk, sk), Update::default().add("n", 1))
}

/// Two transactions in flight at once: on one shared item, the second is
/// cancelled with a conflict; on different items, both commit.
async fn concurrent(t: &Arc<EmbeddedTable>, second: Vec<Write>) -> (bool, StoreResultKind) {
    let t1 = t.clone();
    let first = tokio::spawn(async move {
        t1.transact(vec![bump("SHARED", "1"), bump("OWN", "a")])
            .await
    });
    // Let the first one get in flight (it holds its items for the window).
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r2 = t.transact(second).await;
    let r1 = first.await.expect("join");
    (r1.is_ok(), kind(r2))
}

#[derive(Debug, PartialEq)]
enum StoreResultKind {
    Ok,
    Conflict,
    Other,
}

fn kind(r: Result<(), StoreError>) -> StoreResultKind {
    match r {
        Ok(()) => StoreResultKind::Ok,
        Err(StoreError::Conflict) => StoreResultKind::Conflict,
        Err(_) => StoreResultKind::Other,
    }
}

fn window(ms: u64) -> Rules {
    Rules {
        txn_window: Duration::from_millis(ms),
        ..Rules::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactions_on_one_item_conflict_and_on_different_items_do_not() {
    let (t, _d) = open(window(200));
    let (ok1, r2) = concurrent(&t, vec![bump("SHARED", "1"), bump("OTHER", "b")]).await;
    assert!(ok1);
    assert_eq!(r2, StoreResultKind::Conflict);
    let (ok1, r2) = concurrent(&t, vec![bump("ELSE", "1"), bump("OTHER", "b")]).await;
    assert!(ok1);
    assert_eq!(r2, StoreResultKind::Ok);
    // A single-item write to an item of an in-flight transaction is refused.
    let (ok1, r2) = concurrent(&t, vec![bump("SHARED", "1")]).await;
    assert!(ok1);
    assert_eq!(r2, StoreResultKind::Conflict);
    // Once the transaction has answered, its items are free again.
    t.transact(vec![bump("SHARED", "1"), bump("OWN", "a")])
        .await
        .expect("sequential");
    t.transact(vec![bump("SHARED", "1")])
        .await
        .expect("after it");
    let shared = t
        .get(&Key::new("SHARED", "1"), true)
        .await
        .expect("get")
        .expect("item");
    // Three first transactions, two sequential writes; refused ones wrote nothing.
    assert_eq!(shared["n"], json!(5));
    let report = t.meter().report();
    assert_eq!(report.total.conflicts, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conflicts_can_be_turned_off() {
    let (t, _d) = open(window(0));
    let (ok1, r2) = concurrent(&t, vec![bump("SHARED", "1"), bump("OTHER", "b")]).await;
    assert!(ok1);
    assert_eq!(r2, StoreResultKind::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_answers_no_sooner_than_its_window() {
    let (t, _d) = open(window(150));
    let start = std::time::Instant::now();
    t.transact(vec![bump("A", "1"), bump("B", "1")])
        .await
        .expect("txn");
    assert!(start.elapsed() >= Duration::from_millis(150));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hot_partition_is_throttled_and_a_cold_one_is_not() {
    let rules = Rules {
        txn_window: Duration::ZERO,
        ..Rules::default()
    };
    let (t, _d) = open(rules);
    // 2,000 single writes of one unit each at once on one partition key:
    // its 1,000 WCU/s (plus a 1 s burst) cannot take them all within a second.
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            t.transact(vec![Write::put(obj(
                json!({"pk": "HOT", "sk": format!("{i:05}")}),
            ))])
            .await
        }));
    }
    let mut throttled = 0;
    for task in tasks {
        match task.await.expect("join") {
            Ok(()) => {}
            Err(StoreError::Throttled) => throttled += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(throttled > 0, "a partition above 1,000 WCU/s is throttled");
    t.transact(vec![Write::put(obj(json!({"pk": "COLD", "sk": "1"})))])
        .await
        .expect("another partition is not");
    let report = t.meter().report();
    assert_eq!(report.total.throttles, throttled);
    assert_eq!(report.hot_write_partitions[0].partition, "HOT");
    assert!(report.hot_write_partitions[0].peak_wcu_per_sec <= 2100.0);

    let (lenient, _d2) = open(Rules::lenient());
    let mut tasks = Vec::new();
    for i in 0..2000 {
        let t = lenient.clone();
        tasks.push(tokio::spawn(async move {
            t.transact(vec![Write::put(obj(
                json!({"pk": "HOT", "sk": format!("{i:05}")}),
            ))])
            .await
        }));
    }
    for task in tasks {
        task.await.expect("join").expect("no limits, no throttles");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_meter_bills_like_dynamodb_and_attributes_each_unit() {
    let (t, _d) = open(Rules::default());
    let item = obj(json!({"pk": "M", "sk": "1", "gsi1pk": "G", "gsi1sk": "x",
                          "body": "b".repeat(1500)}));
    attributed("POST /things", async {
        // 2 KB item: 2 WCU on the table + 2 on the index.
        t.transact(vec![Write::put(item.clone())])
            .await
            .expect("put");
        // In a transaction with another 1-unit item: ×2 on the table writes.
        t.transact(vec![
            Write::update(Key::new("M", "1"), Update::default().add("n", 1)),
            Write::put(obj(json!({"pk": "N", "sk": "1"}))),
        ])
        .await
        .expect("txn");
        // Strong read of a 2 KB item: 1 RCU; eventual: 0.5.
        t.get(&Key::new("M", "1"), true).await.expect("get");
        t.get(&Key::new("M", "1"), false).await.expect("get");
    })
    .await;
    attributed("consumer:points", async {
        t.transact(vec![Write::put(obj(json!({"pk": "LQ#points", "sk": "1",
                                                "receive_count": 0})))])
            .await
            .expect("a local queue message");
    })
    .await;
    let r = t.meter().report();
    let route = &r.by_cause["POST /things"];
    // put: 2 + 2 (index); txn: update 2×2 + index 2, put 1×2
    assert_eq!(route.wcu, 4.0 + 6.0 + 2.0);
    assert_eq!(route.rcu, 1.5);
    let consumer = &r.by_cause["consumer:points"];
    assert_eq!(consumer.wcu, 0.0, "a local queue is SQS, not DynamoDB");
    assert_eq!(consumer.messages["points"], 1);
    t.meter().reset();
    assert!(t.meter().report().by_cause.is_empty());
}

/// A batch read of a hot partition is charged all or nothing: a throttled
/// `BatchGetItem` takes no units (DynamoDB does not bill a throttled
/// request), so the requests refused do not eat the capacity of those that
/// get through. Each batch here reads a small row and a 12 KB body of one
/// partition (0.5 + 1.5 RCU, eventually consistent); the meter's read
/// units are then exactly the successful batches' units.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_throttled_batch_read_takes_no_units() {
    let rules = Rules {
        txn_window: Duration::ZERO,
        ..Rules::default()
    };
    let (t, _d) = open(rules);
    let body = "x".repeat(12 * 1024 - 100);
    t.transact(vec![Write::put(obj(json!({"pk": "HOTREAD", "sk": "ROW"})))])
        .await
        .expect("row");
    t.transact(vec![Write::put(obj(
        json!({"pk": "HOTREAD", "sk": "BODY", "body": body}),
    ))])
    .await
    .expect("body");
    let keys = [Key::new("HOTREAD", "ROW"), Key::new("HOTREAD", "BODY")];
    let before = t.meter().report().total.rcu;
    let mut tasks = Vec::new();
    for _ in 0..4000 {
        let t = t.clone();
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move { t.get_many(&keys, false).await }));
    }
    let (mut ok, mut throttled) = (0u32, 0u32);
    for task in tasks {
        match task.await.expect("join") {
            Ok(items) => {
                assert_eq!(items.len(), 2);
                ok += 1;
            }
            Err(StoreError::Throttled) => throttled += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(throttled > 0, "4,000 batches of 2 RCU exceed the partition");
    let charged = t.meter().report().total.rcu - before;
    assert_eq!(
        charged,
        f64::from(ok) * 2.0,
        "{ok} batches got through, {throttled} were throttled"
    );
}
