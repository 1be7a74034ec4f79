//! The `baskets` consumer through its Lambda path (an SQS event of the
//! loyalty programme's weekly summaries in, a partial batch response out),
//! on both adapters (the embedded store, and DynamoDB on moto): the sample
//! batch (`events/sqs/baskets.json`) delivered twice at once and again is
//! counted once, its poison record fails alone; a correction replaces the
//! week's figures, a stale or repeated one changes nothing, a contradicting
//! one fails; `GET /insights`'s `basket_uplift` gives the figures worked
//! out by hand; the member's weeks are exported and erased.

use aws_lambda_events::event::sqs::SqsEvent;
use community::baskets::BasketsConsumer;
use community::store::{Table, Update, Write};
use community::testing::{caller, member, sign_up_body};
use community::App;
use serde_json::{json, Value};

const POISON: &str = "5b1e2c3d-0001-4a5b-9c6d-bk000008";
const MARIE_CARD: &str = "9130012345678901";
const PAUL_CARD: &str = "9130012345678902";
/// Monday of 2026-W45: W44 ends then (before joining), W45 is after.
const JOINED_AT: &str = "2026-11-02T00:00:00.000Z";

fn sample() -> SqsEvent {
    community::testing::sqs_sample("baskets.json")
}

fn batch(bodies: &[Value]) -> SqsEvent {
    let bodies: Vec<String> = bodies.iter().map(Value::to_string).collect();
    community::testing::sqs_bodies(&bodies)
}

/// The messages that failed (every one when the whole invocation fails).
async fn deliver<T: Table + Clone>(c: &BasketsConsumer<T>, e: SqsEvent) -> Vec<String> {
    community::testing::deliver(c, e).await
}

async fn join_with_card<T: Table>(app: &App<T>, who: &str, card: &str) {
    let mut body = sign_up_body(who);
    body["loyalty_card"] = json!(card);
    let req: community::members::SignUp = serde_json::from_value(body).expect("body");
    community::members::sign_up(app, &caller(&member(who)), req, None)
        .await
        .expect("sign up");
    // They joined on a fixed day (the samples' weeks are fixed).
    let id = community::domain::MemberId::parse(who).expect("id");
    app.table
        .transact(vec![Write::update(
            community::members::key(&id),
            Update::default().set("joined_at", JOINED_AT),
        )])
        .await
        .expect("joined_at");
}

async fn uplift<T: Table>(app: &App<T>) -> Value {
    let marketing = caller(&member("mkt").in_groups(&["marketing"]));
    community::insights::read(app, &marketing)
        .await
        .expect("insights")["basket_uplift"]
        .clone()
}

fn week(card: &str, week: &str, baskets: i64, avg: f64, sent_at: &str) -> Value {
    json!({"kind": "member_week", "card": card, "week": week, "baskets": baskets,
           "average_basket_eur": avg, "sent_at": sent_at})
}

async fn scenario<T: Table + Clone + 'static>(app: App<T>) {
    join_with_card(&app, "member-marie", MARIE_CARD).await;
    join_with_card(&app, "member-paul", PAUL_CARD).await;
    let consumer = BasketsConsumer { app: app.clone() };

    // The sample batch twice at the same time, then again.
    let (a, b) = tokio::join!(deliver(&consumer, sample()), deliver(&consumer, sample()));
    assert_eq!(a, vec![POISON.to_string()]);
    assert_eq!(b, vec![POISON.to_string()]);
    assert_eq!(deliver(&consumer, sample()).await, vec![POISON.to_string()]);

    // Marie: before W43 2 × 20.00, W44 2 × 22.50 (85.00 over 4 baskets);
    // after W45 3 × 60.00, W46 4 × 75.25 (481.00 over 7). Paul: after only.
    let u = uplift(&app).await;
    assert_eq!(u["members_with_data"], json!(2));
    assert_eq!(u["members_paired"], json!(1));
    assert_eq!(u["unmatched_summaries"], json!(1));
    assert_eq!(
        u["before_joining"],
        json!({"weeks": 2, "baskets": 4, "spend_eur": 85.0, "average_basket_eur": 21.25})
    );
    assert_eq!(
        u["after_joining"],
        json!({"weeks": 2, "baskets": 7, "spend_eur": 481.0, "average_basket_eur": 68.71})
    );
    assert_eq!(u["after_vs_before"], json!(3.23));
    // Same weeks: W46 only has a baseline (1000 × 20.00): members 301.00 +
    // 30.00 over 5 baskets.
    assert_eq!(
        u["same_weeks"],
        json!({"weeks": 1,
               "members": {"weeks": 2, "baskets": 5, "spend_eur": 331.0, "average_basket_eur": 66.2},
               "baseline": {"weeks": 1, "baskets": 1000, "spend_eur": 20000.0, "average_basket_eur": 20.0},
               "members_vs_baseline": 3.31})
    );
    assert!(u["method"]
        .as_str()
        .expect("method")
        .contains("before joining"));

    // A correction of marie's W46 (later sent_at): replaces, not adds.
    let fixed = week(MARIE_CARD, "2026-W46", 4, 80.0, "2026-11-17T05:00:00Z");
    for _ in 0..2 {
        assert!(deliver(&consumer, batch(std::slice::from_ref(&fixed)))
            .await
            .is_empty());
    }
    // The original again (a late redelivery), and a stale correction: nothing.
    let stale = week(MARIE_CARD, "2026-W46", 9, 99.0, "2026-11-16T06:00:00Z");
    let original = week(MARIE_CARD, "2026-W46", 4, 75.25, "2026-11-16T05:00:00Z");
    assert!(deliver(&consumer, batch(&[original, stale]))
        .await
        .is_empty());
    // Same sent_at as the recorded correction, other figures: poison.
    let contradicting = week(MARIE_CARD, "2026-W46", 5, 80.0, "2026-11-17T05:00:00Z");
    let unknown_again = week(
        "9130099999999999",
        "2026-W46",
        6,
        10.0,
        "2026-11-17T05:00:00Z",
    );
    assert_eq!(
        deliver(&consumer, batch(&[contradicting, unknown_again])).await,
        vec!["m0".to_string()]
    );
    let u = uplift(&app).await;
    assert_eq!(u["members_with_data"], json!(2));
    assert_eq!(u["unmatched_summaries"], json!(1), "one card, one week");
    assert_eq!(
        u["after_joining"],
        json!({"weeks": 2, "baskets": 7, "spend_eur": 500.0, "average_basket_eur": 71.43})
    );
    assert_eq!(u["after_vs_before"], json!(3.36));
    assert_eq!(
        u["same_weeks"]["members"]["average_basket_eur"],
        json!(70.0)
    );
    assert_eq!(u["same_weeks"]["members_vs_baseline"], json!(3.5));

    // A corrected baseline (later sent_at) replaces it.
    let base = json!({"kind": "baseline_week", "week": "2026-W46", "baskets": 1000,
                      "average_basket_eur": 25.0, "sent_at": "2026-11-17T05:00:00Z"});
    assert!(deliver(&consumer, batch(&[base])).await.is_empty());
    let u = uplift(&app).await;
    assert_eq!(
        u["same_weeks"]["baseline"]["average_basket_eur"],
        json!(25.0)
    );
    assert_eq!(u["same_weeks"]["members_vs_baseline"], json!(2.8));
    assert_eq!(u["all_weeks"]["baseline"]["weeks"], json!(1));

    // Poison bodies fail, every time, and change nothing.
    let poison = vec![
        json!("not an object"),
        json!({"kind": "member_week", "card": MARIE_CARD, "week": "2026-W47", "baskets": 1}),
        json!({"kind": "baseline_week", "week": "2026-W47", "baskets": 1, "average_basket_eur": 1.0,
               "sent_at": "2026-11-23T05:00:00Z", "card": MARIE_CARD}),
        week(MARIE_CARD, "2026-W47", 1, 1.005, "2026-11-23T05:00:00Z"),
        week(MARIE_CARD, "2026-W99", 1, 1.0, "2026-11-23T05:00:00Z"),
    ];
    for _ in 0..2 {
        let failed = deliver(&consumer, batch(&poison)).await;
        assert_eq!(failed.len(), poison.len(), "{failed:?}");
    }
    assert_eq!(uplift(&app).await, u);

    // GDPR: the weeks and the sums are exported, and erased.
    let marie = caller(&member("member-marie"));
    let export = community::gdpr::export(&app, &marie).await.expect("export");
    let records = export["basket_weeks"].as_array().expect("basket_weeks");
    assert_eq!(records.len(), 5, "four weeks and the sums: {records:?}");
    assert!(records
        .iter()
        .any(|r| r["week"] == json!("2026-W46") && r["spend_cents"] == json!(32000)));
    community::gdpr::erase(&app, &marie).await.expect("erase");
    let left = app
        .table
        .query(&community::store::Query::new(
            community::store::Index::Primary,
            "MEMBER#member-marie",
        ))
        .await
        .expect("partition");
    assert!(
        left.items
            .iter()
            .all(|i| !i["sk"].as_str().unwrap_or_default().starts_with("BASKET")),
        "{:?}",
        left.items
    );
    // Her card is free: a later summary of it is a non-member's.
    let after = week(MARIE_CARD, "2026-W47", 2, 30.0, "2026-11-23T05:00:00Z");
    assert!(deliver(&consumer, batch(&[after])).await.is_empty());
    let u2 = uplift(&app).await;
    assert_eq!(u2["unmatched_summaries"], json!(2));
    assert_eq!(
        u2["after_joining"], u["after_joining"],
        "anonymous sums stay"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baskets_on_the_embedded_store() {
    let (app, _d) = community::testing::embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baskets_on_dynamodb() {
    let Some(table) = community::testing::moto_table("baskets").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_deliveries_of_the_same_weeks_at_once_count_once() {
    let (app, _d) = community::testing::embedded_app(|_| {});
    join_with_card(&app, "member-marie", MARIE_CARD).await;
    let consumer = BasketsConsumer { app: app.clone() };
    let before = week(MARIE_CARD, "2026-W44", 2, 20.0, "2026-11-02T05:00:00Z");
    let after = week(MARIE_CARD, "2026-W45", 3, 50.0, "2026-11-09T05:00:00Z");
    let runs = (0..8).map(|_| {
        deliver(
            &consumer,
            batch(&[before.clone(), after.clone(), before.clone()]),
        )
    });
    for failed in futures::future::join_all(runs).await {
        assert!(failed.is_empty(), "{failed:?}");
    }
    let u = uplift(&app).await;
    assert_eq!(u["members_with_data"], json!(1));
    assert_eq!(u["members_paired"], json!(1));
    assert_eq!(u["before_joining"]["baskets"], json!(2));
    assert_eq!(u["after_joining"]["baskets"], json!(3));
    assert_eq!(u["after_vs_before"], json!(2.5));
}
