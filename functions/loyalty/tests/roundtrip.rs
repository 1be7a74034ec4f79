//! The loyalty round trip through the `loyalty` function's Lambda entry
//! (`loyalty::handle`), on both adapters (the embedded store, and DynamoDB
//! on moto): members redeem through the signup function's routes, the
//! loyalty programme's answers arrive as SQS batches delivered several
//! times, a rejection gives the points back exactly once, the member sees
//! the status and is mailed, and answers that cannot apply fail (to reach
//! the dead-letter queue) without changing anything.

use community::events::{Event, Kind, OUTBOX_BUCKETS};
use community::loyalty::AnswersConsumer;
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::queue::Consumer;
use community::store::{Index, Query, Table, Update, Write};
use community::testing::{call, caller, member, As};
use community::App;
use serde_json::{json, Value};

fn tweak(s: &mut community::config::Settings) {
    s.abuse.rate_limits.enabled = false;
    s.points.conversion.minimum_redemption = 100;
}

/// Signs `who` up with a loyalty card through the route, has the loyalty
/// programme confirm the card, and gives them `points` (as the points
/// consumer would have).
async fn member_with_points<T: Table + Clone>(
    app: &App<T>,
    router: &axum::Router,
    who: &As,
    card: &str,
    points: i64,
) {
    let mut body = community::testing::sign_up_body(&who.sub);
    body["loyalty_card"] = json!(card);
    let r = call(router, "POST", "/members", Some(who), Some(body)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    community::testing::confirm_card(app, &who.sub).await;
    app.table
        .transact(vec![Write::update(
            community::members::key(&caller(who).id),
            Update::default().add("points_balance", points),
        )])
        .await
        .expect("points");
}

async fn redeem(router: &axum::Router, who: &As, points: i64) -> String {
    let r = call(
        router,
        "POST",
        "/members/me/redemptions",
        Some(who),
        Some(json!({"points": points})),
    )
    .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    r.body["id"].as_str().expect("id").to_owned()
}

async fn balance<T: Table>(app: &App<T>, who: &As) -> i64 {
    community::members::get(app, &caller(who).id)
        .await
        .expect("member")
        .points_balance
}

async fn redemptions(router: &axum::Router, who: &As) -> Vec<Value> {
    let r = call(router, "GET", "/members/me/redemptions", Some(who), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

/// The events of `kind` in the outbox.
async fn outbox<T: Table>(app: &App<T>, kind: Kind) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let page = app
            .table
            .query(&Query::new(Index::Primary, community::events::outbox_pk(b)).limit(1000))
            .await
            .expect("outbox");
        out.extend(
            page.items
                .iter()
                .filter_map(Event::from_item)
                .filter(|e| e.kind == kind),
        );
    }
    out
}

fn sqs(bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("a{i}"), "body": b, "eventSource": "aws:sqs"}))
        .collect();
    json!({"Records": records})
}

fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn scenario<T: Table + Clone + 'static>(app: App<T>) {
    let router = signup::router(app.clone());
    let consumer = AnswersConsumer { app: app.clone() };
    let (marie, paul) = (member("member-marie"), member("member-paul"));
    member_with_points(&app, &router, &marie, "9130012345678901", 1000).await;
    member_with_points(&app, &router, &paul, "9130012345678902", 1000).await;
    let rm = redeem(&router, &marie, 500).await;
    let rp = redeem(&router, &paul, 300).await;
    assert_eq!(balance(&app, &marie).await, 500);
    assert_eq!(balance(&app, &paul).await, 700);
    let listed = redemptions(&router, &marie).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], json!(rm));
    assert_eq!(listed[0]["status"], "pending");
    assert_eq!(listed[0]["euros"], "5.00");
    let p = community::loyalty::pending(&app).await.expect("pending");
    assert_eq!((p.pending, p.overdue), (2, 0));

    // The answers, each batch delivered three times, twice at once.
    let batch = sqs(&[
        json!({"redemption_id": rm, "status": "rejected", "reason": "Carte de fidélité inactive"})
            .to_string(),
        json!({"redemption_id": rp, "status": "credited"}).to_string(),
    ]);
    let (a, b) = tokio::join!(
        loyalty::handle(&consumer, batch.clone()),
        loyalty::handle(&consumer, batch.clone())
    );
    // A delivery that lost the race on a redemption (a transaction
    // conflict) reports it failed and is retried: never applied twice.
    let _ = (a, b);
    let r = loyalty::handle(&consumer, batch.clone())
        .await
        .expect("response");
    assert!(failures(&r).is_empty(), "{r}");
    // The rejection gave marie's 500 points back, once; paul's credit
    // changed nothing of his balance.
    assert_eq!(balance(&app, &marie).await, 1000);
    assert_eq!(balance(&app, &paul).await, 700);
    let ledger = community::points::ledger(&app, &caller(&marie), 100, None)
        .await
        .expect("ledger");
    let refunds: Vec<_> = ledger
        .items
        .iter()
        .filter(|e| e.reason == "redemption_refund")
        .collect();
    assert_eq!(refunds.len(), 1, "{:?}", ledger.items);
    assert_eq!(refunds[0].delta, 500);
    assert_eq!(ledger.items.iter().map(|e| e.delta).sum::<i64>(), 0);
    let m = redemptions(&router, &marie).await;
    assert_eq!(m[0]["status"], "rejected");
    assert_eq!(m[0]["reason"], "Carte de fidélité inactive");
    assert!(m[0]["answered_at"].is_string());
    assert_eq!(redemptions(&router, &paul).await[0]["status"], "credited");
    let p = community::loyalty::pending(&app).await.expect("pending");
    assert_eq!((p.pending, p.overdue), (0, 0));
    // One event per answer, for the member's mail and the insights.
    let answered = outbox(&app, Kind::RedemptionAnswered).await;
    assert_eq!(answered.len(), 2, "{answered:?}");

    // The member is told, with the reason and the points given back.
    let mdir = tempfile::tempdir().expect("tmp");
    let mailbox = DirMailbox::new(mdir.path().to_path_buf()).expect("mailbox");
    let emails = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    for e in &answered {
        emails.apply(e).await.expect("mail");
        emails.apply(e).await.expect("mail again");
    }
    let mails = mailbox.list().expect("mails");
    assert_eq!(mails.len(), 2, "one mail per answer: {mails:?}");
    let to_marie = mails
        .iter()
        .find(|m| m.to == "member-marie@example.fr")
        .expect("marie's mail");
    assert!(
        to_marie.subject.contains("n'a pas abouti"),
        "{}",
        to_marie.subject
    );
    assert!(to_marie.text.contains("Carte de fidélité inactive"));
    assert!(to_marie.text.contains("500 points vous sont rendus"));
    let to_paul = mails
        .iter()
        .find(|m| m.to == "member-paul@example.fr")
        .expect("paul's mail");
    assert!(to_paul.subject.contains("3,00 €"), "{}", to_paul.subject);

    // Marketing's figures.
    community::testing::run_insights(&app).await;
    let lea = member("marketing-lea").in_groups(&["marketing"]);
    let insights = community::insights::read(&app, &caller(&lea))
        .await
        .expect("insights");
    assert_eq!(insights["redemptions"]["credited"], 1, "{insights}");
    assert_eq!(insights["redemptions"]["rejected"], 1);
    assert_eq!(insights["points"]["refunded"], 500);

    // Answers that cannot apply fail, and change nothing: the opposite
    // answer for an answered redemption, an unknown redemption, a message
    // that is not an answer.
    let bad = sqs(&[
        json!({"redemption_id": rp, "status": "rejected"}).to_string(),
        json!({"redemption_id": ulid::Ulid::new().to_string(), "status": "credited"}).to_string(),
        json!({"redemption_id": rm, "status": "refunded"}).to_string(),
        "not json".to_string(),
        json!({"redemption_id": rm, "status": "rejected", "points": 10}).to_string(),
    ]);
    let r = loyalty::handle(&consumer, bad).await;
    // Every record failed: the invocation fails, SQS retries it all.
    assert!(r.is_err(), "{r:?}");
    let mixed = sqs(&[
        json!({"redemption_id": rp, "status": "rejected"}).to_string(),
        json!({"redemption_id": rp, "status": "credited"}).to_string(),
    ]);
    let r = loyalty::handle(&consumer, mixed).await.expect("partial");
    assert_eq!(failures(&r), vec!["a0".to_string()]);
    assert_eq!(balance(&app, &paul).await, 700);
    assert_eq!(balance(&app, &marie).await, 1000);
    assert_eq!(outbox(&app, Kind::RedemptionAnswered).await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_round_trip_on_the_embedded_store() {
    let (app, _d) = community::testing::embedded_app(tweak);
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_round_trip_on_dynamodb() {
    let Some(table) = community::testing::moto_table("loyalty").await else {
        return;
    };
    let mut s = community::testing::settings();
    tweak(&mut s);
    scenario(App::new(table, s)).await;
}

#[tokio::test]
async fn the_sample_batch_applies_its_answers_and_reports_its_poison_record() {
    let (app, _d) = community::testing::embedded_app(tweak);
    let router = signup::router(app.clone());
    let consumer = AnswersConsumer { app: app.clone() };
    let marie = member("member-marie");
    member_with_points(&app, &router, &marie, "9130012345678901", 2000).await;
    let ids = [
        redeem(&router, &marie, 500).await,
        redeem(&router, &marie, 500).await,
        redeem(&router, &marie, 500).await,
    ];
    let path = format!(
        "{}/../../events/sqs/loyalty_answers.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut text = std::fs::read_to_string(path).expect("sample");
    for (i, id) in ids.iter().enumerate() {
        text = text.replace(&format!("01JD0000000000000000000R0{}", i + 1), id);
    }
    let payload: Value = serde_json::from_str(&text).expect("json");
    for _ in 0..2 {
        let r = loyalty::handle(&consumer, payload.clone())
            .await
            .expect("partial");
        assert_eq!(
            failures(&r),
            vec!["6f1c3a2e-0003-4e5b-9a51-loyalty000003".to_string()]
        );
    }
    // 2000 - 3 × 500, and the rejected 500 back.
    assert_eq!(balance(&app, &marie).await, 1000);
    let statuses: Vec<Value> = redemptions(&router, &marie)
        .await
        .iter()
        .map(|r| r["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        vec![json!("pending"), json!("rejected"), json!("credited")]
    );
}

#[tokio::test]
async fn the_hourly_check_counts_the_redemptions_left_unanswered_too_long() {
    let (app, _d) = community::testing::embedded_app(|s| {
        tweak(s);
        s.points.conversion.answer_within_hours = 24;
    });
    let consumer = AnswersConsumer { app: app.clone() };
    let old = community::testing::at(-25 * 3600);
    let recent = community::testing::at(-3600);
    let mut writes = Vec::new();
    for (i, at) in [&old, &old, &recent].iter().enumerate() {
        let id = ulid::Ulid::new().to_string();
        writes.push(Write::put_new(community::loyalty::pointer_item(
            &format!("member-{i}"),
            &id,
            at,
        )));
    }
    app.table.transact(writes).await.expect("seed");
    let path = format!(
        "{}/../../events/schedule/loyalty.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let schedule: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json");
    let r = loyalty::handle(&consumer, schedule).await.expect("check");
    assert_eq!(r["pending"], 3);
    assert_eq!(r["overdue"], 2);
    assert_eq!(r["oldest_at"], json!(old));
    // Marketing sees the same figures.
    let who = member("marketing-lea").in_groups(&["marketing"]);
    let insights = community::insights::read(&app, &caller(&who))
        .await
        .expect("insights");
    assert_eq!(insights["redemptions"]["overdue"], 2);
    assert_eq!(insights["redemptions"]["pending"], 3);
}
