//! Loyalty cards through the `loyalty` function's Lambda entry
//! (`loyalty::handle`), on both adapters (the embedded store, and DynamoDB
//! on moto): a card linked through the signup routes is `pending` and asks
//! the loyalty programme to confirm it (`member.card_linked` on the
//! outbound queue); its answers arrive on the same inbound queue as the
//! redemptions' and are applied once however they are delivered; a
//! rejected card is unlinked (its guard freed) and the member mailed once;
//! an answer for a card the member has since replaced changes nothing of
//! the new card; answers that cannot apply fail, to reach the dead-letter
//! queue.

use community::events::{Event, Kind, OUTBOX_BUCKETS};
use community::loyalty::AnswersConsumer;
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::queue::Consumer;
use community::store::{Index, Query, Table, Update, Write};
use community::testing::{call, caller, member, As};
use community::App;
use serde_json::{json, Value};

const MARIE_CARD: &str = "9130012345678901";
const PAUL_CARD: &str = "9130012345678902";
const LEA_FIRST: &str = "9130012345678903";
const LEA_SECOND: &str = "9130012345678904";

fn tweak(s: &mut community::config::Settings) {
    s.abuse.rate_limits.enabled = false;
    s.points.conversion.minimum_redemption = 100;
}

async fn sign_up(router: &axum::Router, who: &As, card: Option<&str>) -> Value {
    let mut body = community::testing::sign_up_body(&who.sub);
    if let Some(c) = card {
        body["loyalty_card"] = json!(c);
    }
    let r = call(router, "POST", "/members", Some(who), Some(body)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body
}

async fn link_card(router: &axum::Router, who: &As, card: &str) -> community::testing::Reply {
    call(
        router,
        "PATCH",
        "/members/me",
        Some(who),
        Some(json!({ "loyalty_card": card })),
    )
    .await
}

async fn me(router: &axum::Router, who: &As) -> Value {
    let r = call(router, "GET", "/members/me", Some(who), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn give_points<T: Table>(app: &App<T>, who: &As, points: i64) {
    app.table
        .transact(vec![Write::update(
            community::members::key(&caller(who).id),
            Update::default().add("points_balance", points),
        )])
        .await
        .expect("points");
}

async fn redeem(router: &axum::Router, who: &As, points: i64) -> community::testing::Reply {
    call(
        router,
        "POST",
        "/members/me/redemptions",
        Some(who),
        Some(json!({ "points": points })),
    )
    .await
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

/// The link id of the `member.card_linked` event for `card`, checking what
/// the loyalty programme receives: the link, the full number, the member.
async fn link_of<T: Table>(app: &App<T>, who: &As, card: &str) -> String {
    let linked: Vec<Event> = outbox(app, Kind::MemberCardLinked)
        .await
        .into_iter()
        .filter(|e| e.data["loyalty_card"] == card)
        .collect();
    assert_eq!(linked.len(), 1, "one event per link: {linked:?}");
    let e = &linked[0];
    assert_eq!(e.member_id, who.sub);
    assert_eq!(
        community::events::routes(e.kind),
        &[community::events::Queue::Loyalty]
    );
    e.data["card_link_id"]
        .as_str()
        .expect("card_link_id")
        .to_owned()
}

fn sqs(bodies: &[String]) -> Value {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("a{i}"), "body": b, "eventSource": "aws:sqs"}))
        .collect();
    json!({ "Records": records })
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

fn answer(link: &str, status: &str) -> String {
    json!({"card_link_id": link, "status": status}).to_string()
}

async fn scenario<T: Table + Clone + 'static>(app: App<T>) {
    let router = signup::router(app.clone());
    let consumer = AnswersConsumer { app: app.clone() };
    let (marie, paul, lea, zoe, nina) = (
        member("member-marie"),
        member("member-paul"),
        member("member-lea"),
        member("member-zoe"),
        member("member-nina"),
    );

    // Linked at sign-up (marie, paul) or later (lea): pending, masked.
    let m = sign_up(&router, &marie, Some(MARIE_CARD)).await;
    assert_eq!(m["loyalty_card"], "••••••••••••8901");
    assert_eq!(m["loyalty_card_status"], "pending");
    sign_up(&router, &paul, Some(PAUL_CARD)).await;
    let l = sign_up(&router, &lea, None).await;
    assert_eq!(l["loyalty_card"], Value::Null);
    assert_eq!(l["loyalty_card_status"], Value::Null);
    let r = link_card(&router, &lea, LEA_FIRST).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["loyalty_card_status"], "pending");
    sign_up(&router, &zoe, None).await;
    sign_up(&router, &nina, None).await;
    let marie_link = link_of(&app, &marie, MARIE_CARD).await;
    let paul_link = link_of(&app, &paul, PAUL_CARD).await;
    let lea_first = link_of(&app, &lea, LEA_FIRST).await;

    // No euros to a card still being checked.
    give_points(&app, &marie, 1000).await;
    give_points(&app, &paul, 1000).await;
    let r = redeem(&router, &marie, 500).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.fields(), vec!["loyalty_card"]);

    // Lea replaces her card before the answer: the first link is superseded.
    let r = link_card(&router, &lea, LEA_SECOND).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["loyalty_card"], "••••••••••••8904");
    assert_eq!(r.body["loyalty_card_status"], "pending");
    let lea_second = link_of(&app, &lea, LEA_SECOND).await;
    assert_ne!(lea_first, lea_second);

    // The answers, each batch delivered three times, twice at once; a
    // redemption's answer shares the queue and is not in the way.
    let batch = sqs(&[
        answer(&marie_link, "confirmed"),
        json!({"card_link_id": paul_link, "status": "rejected", "reason": "Numéro de carte inconnu"})
            .to_string(),
        answer(&lea_first, "rejected"),
    ]);
    let (a, b) = tokio::join!(
        loyalty::handle(&consumer, batch.clone()),
        loyalty::handle(&consumer, batch.clone())
    );
    // A delivery that lost the race on a link (a transaction conflict)
    // may report it failed and be retried: never applied twice.
    let _ = (a, b);
    let r = loyalty::handle(&consumer, batch.clone())
        .await
        .expect("response");
    assert!(failures(&r).is_empty(), "{r}");

    // Confirmed: marie can redeem now.
    let m = me(&router, &marie).await;
    assert_eq!(m["loyalty_card"], "••••••••••••8901");
    assert_eq!(m["loyalty_card_status"], "confirmed");
    let r = redeem(&router, &marie, 500).await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let redemption = r.body["id"].as_str().expect("id").to_owned();

    // Rejected: paul's card is gone, and so is its guard.
    let p = me(&router, &paul).await;
    assert_eq!(p["loyalty_card"], Value::Null, "{p}");
    assert_eq!(p["loyalty_card_status"], Value::Null, "{p}");
    let row = community::members::get(&app, &caller(&paul).id)
        .await
        .expect("paul");
    assert_eq!(row.loyalty_card, None);
    assert_eq!(row.loyalty_card_link, None);
    assert!(app
        .table
        .get(&community::members::card_key(PAUL_CARD), true)
        .await
        .expect("get")
        .is_none());
    // As today, no redemption without a card.
    let r = redeem(&router, &paul, 500).await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(r.fields(), vec!["loyalty_card"]);
    // Another member can link that card now (the answer delivered again
    // afterwards leaves the new link alone).
    let r = link_card(&router, &zoe, PAUL_CARD).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["loyalty_card_status"], "pending");

    // Superseded: lea's current card is untouched (pending, guarded), the
    // first card's guard stays freed, and nobody is mailed.
    let l = me(&router, &lea).await;
    assert_eq!(l["loyalty_card"], "••••••••••••8904", "{l}");
    assert_eq!(l["loyalty_card_status"], "pending");
    let r = link_card(&router, &nina, LEA_SECOND).await;
    assert_eq!(
        r.status, 409,
        "the current card is still lea's: {:?}",
        r.body
    );
    let r = link_card(&router, &nina, LEA_FIRST).await;
    assert_eq!(r.status, 200, "the replaced card was freed: {:?}", r.body);
    let first = app
        .table
        .get(&community::cards::link_key(&lea_first), true)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(first["status"], "rejected");
    assert_eq!(first["superseded"], true);

    // One rejection event, for paul, with the card masked.
    let rejected = outbox(&app, Kind::MemberCardRejected).await;
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!(rejected[0].member_id, "member-paul");
    assert_eq!(rejected[0].data["loyalty_card"], "••••••••••••8902");
    assert!(!rejected[0].data.to_string().contains(PAUL_CARD));
    assert_eq!(rejected[0].data["reason"], "Numéro de carte inconnu");

    // Paul is told once, however often the event comes.
    let mdir = tempfile::tempdir().expect("tmp");
    let mailbox = DirMailbox::new(mdir.path().to_path_buf()).expect("mailbox");
    let emails = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    for e in &rejected {
        emails.apply(e).await.expect("mail");
        emails.apply(e).await.expect("mail again");
    }
    let mails = mailbox.list().expect("mails");
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].to, "member-paul@example.fr");
    assert!(
        mails[0].subject.contains("carte de fidélité"),
        "{}",
        mails[0].subject
    );
    assert!(mails[0].text.contains("se terminant par 8902"));
    assert!(mails[0].text.contains("Numéro de carte inconnu"));
    assert!(!mails[0].text.contains(PAUL_CARD) && !mails[0].html.contains(PAUL_CARD));

    // Redelivered again, later, together with a redemption's answer and
    // lea's current card: the old answers change nothing (zoe keeps paul's
    // former card), the new ones apply.
    let later = sqs(&[
        json!({"card_link_id": paul_link, "status": "rejected", "reason": "Numéro de carte inconnu"})
            .to_string(),
        answer(&marie_link, "confirmed"),
        answer(&lea_second, "confirmed"),
        json!({"redemption_id": redemption, "status": "credited"}).to_string(),
    ]);
    let r = loyalty::handle(&consumer, later).await.expect("response");
    assert!(failures(&r).is_empty(), "{r}");
    let z = me(&router, &zoe).await;
    assert_eq!(z["loyalty_card"], "••••••••••••8902", "{z}");
    assert_eq!(z["loyalty_card_status"], "pending");
    assert_eq!(me(&router, &lea).await["loyalty_card_status"], "confirmed");
    let listed = call(
        &router,
        "GET",
        "/members/me/redemptions",
        Some(&marie),
        None,
    )
    .await;
    assert_eq!(listed.body["items"][0]["status"], "credited");
    assert_eq!(outbox(&app, Kind::MemberCardRejected).await.len(), 1);

    // Answers that cannot apply fail, and change nothing: contradicting a
    // recorded answer (marie's, paul's, lea's superseded one), naming no
    // link, an unknown status, an unknown field, both ids, neither, not
    // JSON, not an object.
    let bad = sqs(&[
        answer(&marie_link, "rejected"),
        answer(&paul_link, "confirmed"),
        answer(&lea_first, "confirmed"),
        answer(&ulid::Ulid::new().to_string(), "confirmed"),
        answer(&marie_link, "maybe"),
        json!({"card_link_id": marie_link, "status": "rejected", "card": "1"}).to_string(),
        json!({"card_link_id": marie_link, "redemption_id": redemption, "status": "rejected"})
            .to_string(),
        json!({"status": "rejected"}).to_string(),
        json!({"card_link_id": "not-a-ulid", "status": "rejected"}).to_string(),
        "not json".to_string(),
        "[1, 2]".to_string(),
    ]);
    let r = loyalty::handle(&consumer, bad).await;
    // Every record failed: the invocation fails, SQS retries it all.
    assert!(r.is_err(), "{r:?}");
    let mixed = sqs(&[
        answer(&marie_link, "rejected"),
        answer(&marie_link, "confirmed"),
    ]);
    let r = loyalty::handle(&consumer, mixed).await.expect("partial");
    assert_eq!(failures(&r), vec!["a0".to_string()]);
    let m = me(&router, &marie).await;
    assert_eq!(m["loyalty_card_status"], "confirmed");
    assert_eq!(m["loyalty_card"], "••••••••••••8901");
    assert!(me(&router, &paul).await["loyalty_card"].is_null());
    assert_eq!(outbox(&app, Kind::MemberCardRejected).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_links_on_the_embedded_store() {
    let (app, _d) = community::testing::embedded_app(tweak);
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn card_links_on_dynamodb() {
    let Some(table) = community::testing::moto_table("cards").await else {
        return;
    };
    let mut s = community::testing::settings();
    tweak(&mut s);
    scenario(App::new(table, s)).await;
}

/// Many deliveries of one rejection at once: the card is unlinked once,
/// one event, and a later link of the card by another member stands.
async fn concurrent_rejections<T: Table + Clone + 'static>(app: App<T>) {
    let router = signup::router(app.clone());
    let consumer = std::sync::Arc::new(AnswersConsumer { app: app.clone() });
    let marie = member("member-marie");
    sign_up(&router, &marie, Some(MARIE_CARD)).await;
    let link = link_of(&app, &marie, MARIE_CARD).await;
    let body = sqs(&[answer(&link, "rejected")]);
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let (c, b) = (consumer.clone(), body.clone());
            tokio::spawn(async move { loyalty::handle(c.as_ref(), b).await.is_ok() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task") {
            ok += 1;
        }
    }
    assert!(ok >= 1, "at least one delivery applied it");
    // What failed is retried: it finds the answer recorded.
    let r = loyalty::handle(consumer.as_ref(), body).await.expect("ok");
    assert!(failures(&r).is_empty(), "{r}");
    assert_eq!(outbox(&app, Kind::MemberCardRejected).await.len(), 1);
    assert!(me(&router, &marie).await["loyalty_card"].is_null());
    // The card is free: marie can link it again (a new link, pending).
    let r = link_card(&router, &marie, MARIE_CARD).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["loyalty_card_status"], "pending");
    let row = community::members::get(&app, &caller(&marie).id)
        .await
        .expect("marie");
    assert_ne!(row.loyalty_card_link.as_deref(), Some(link.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rejections_apply_once_on_the_embedded_store() {
    let (app, _d) = community::testing::embedded_app(tweak);
    concurrent_rejections(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rejections_apply_once_on_dynamodb() {
    let Some(table) = community::testing::moto_table("cards").await else {
        return;
    };
    let mut s = community::testing::settings();
    tweak(&mut s);
    concurrent_rejections(App::new(table, s)).await;
}

#[tokio::test]
async fn the_card_samples_apply() {
    let (app, _d) = community::testing::embedded_app(tweak);
    let router = signup::router(app.clone());
    let consumer = AnswersConsumer { app: app.clone() };
    let (marie, paul) = (member("member-marie"), member("member-paul"));
    sign_up(&router, &marie, Some(MARIE_CARD)).await;
    sign_up(&router, &paul, Some(PAUL_CARD)).await;
    let dir = format!("{}/../../events/loyalty", env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(format!("{dir}/{name}")).expect("sample");
    // The outbound sample has the shape of what is sent.
    let sample: Event = serde_json::from_str(&read("card-linked.json")).expect("event");
    assert_eq!(sample.kind, Kind::MemberCardLinked);
    let sent = &outbox(&app, Kind::MemberCardLinked).await[0];
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&sample.data), keys(&sent.data));
    for (who, card, file) in [
        (&marie, MARIE_CARD, "card-confirmed.json"),
        (&paul, PAUL_CARD, "card-rejected.json"),
    ] {
        let link = link_of(&app, who, card).await;
        let body = read(file).replace("01JD0000000000000000000C01", &link);
        let r = loyalty::handle(&consumer, sqs(&[body])).await.expect("ok");
        assert!(failures(&r).is_empty(), "{file}: {r}");
    }
    assert_eq!(
        me(&router, &marie).await["loyalty_card_status"],
        "confirmed"
    );
    assert!(me(&router, &paul).await["loyalty_card"].is_null());
}

/// Two contradictory answers for one link delivered at once (for links
/// still current and links superseded): one is recorded, the other fails
/// (to the dead-letter queue), and what is recorded is what happened.
async fn contradictions_at_once<T: Table + Clone + 'static>(app: App<T>) {
    use community::cards::{apply_answer, link_key, CardAnswer, CardStatus};
    let router = signup::router(app.clone());
    let mut links = Vec::new();
    for i in 0..6 {
        let who = member(&format!("member-{i}"));
        sign_up(&router, &who, Some(&format!("91300123456700{i:02}"))).await;
        let first = link_of(&app, &who, &format!("91300123456700{i:02}")).await;
        if i % 2 == 1 {
            // Superseded: another card linked since.
            let r = link_card(&router, &who, &format!("91300123456799{i:02}")).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
        links.push((who, first, i % 2 == 1));
    }
    for (who, link, superseded) in &links {
        let answer = |status| CardAnswer {
            card_link_id: link.clone(),
            status,
            reason: None,
        };
        let (c, r) = (answer(CardStatus::Confirmed), answer(CardStatus::Rejected));
        let (a, b) = tokio::join!(apply_answer(&app, &c), apply_answer(&app, &r));
        let stored = app
            .table
            .get(&link_key(link), true)
            .await
            .expect("get")
            .expect("link");
        let m = me(&router, who).await;
        match (a, b) {
            (Ok(_), Err(community::error::Error::Conflict(_))) => {
                assert_eq!(stored["status"], "confirmed");
                if !superseded {
                    assert_eq!(m["loyalty_card_status"], "confirmed", "{m}");
                }
            }
            (Err(community::error::Error::Conflict(_)), Ok(_)) => {
                assert_eq!(stored["status"], "rejected");
                if !superseded {
                    assert!(m["loyalty_card"].is_null(), "{m}");
                }
            }
            other => panic!("one answer is recorded, the other refused: {other:?}"),
        }
        if *superseded {
            assert_eq!(m["loyalty_card_status"], "pending", "{m}");
            let i = who.sub.trim_start_matches("member-");
            assert_eq!(
                m["loyalty_card"]
                    .as_str()
                    .map(|c| c.ends_with(&format!("99{i:0>2}"))),
                Some(true),
                "{m}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradictory_answers_at_once_on_the_embedded_store() {
    let (app, _d) = community::testing::embedded_app(tweak);
    contradictions_at_once(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contradictory_answers_at_once_on_dynamodb() {
    let Some(table) = community::testing::moto_table("cards").await else {
        return;
    };
    let mut s = community::testing::settings();
    tweak(&mut s);
    contradictions_at_once(App::new(table, s)).await;
}

/// A member erased while their card was being checked: the answer finds no
/// member, is recorded on the link only and acknowledged; the card, freed
/// by the erasure, stays with whoever linked it since; nobody is mailed.
#[tokio::test]
async fn an_answer_after_the_members_erasure_is_acknowledged() {
    let (app, _d) = community::testing::embedded_app(tweak);
    let router = signup::router(app.clone());
    let consumer = AnswersConsumer { app: app.clone() };
    let (marie, paul) = (member("member-marie"), member("member-paul"));
    sign_up(&router, &marie, Some(MARIE_CARD)).await;
    sign_up(&router, &paul, None).await;
    let link = link_of(&app, &marie, MARIE_CARD).await;
    community::gdpr::erase(&app, &caller(&marie))
        .await
        .expect("erased");
    let r = link_card(&router, &paul, MARIE_CARD).await;
    assert_eq!(r.status, 200, "the erasure freed the card: {:?}", r.body);
    let r = loyalty::handle(&consumer, sqs(&[answer(&link, "rejected")]))
        .await
        .expect("response");
    assert!(failures(&r).is_empty(), "{r}");
    let stored = app
        .table
        .get(&community::cards::link_key(&link), true)
        .await
        .expect("get")
        .expect("link");
    assert_eq!(stored["status"], "rejected");
    assert_eq!(stored["superseded"], true);
    assert!(outbox(&app, Kind::MemberCardRejected).await.is_empty());
    let p = me(&router, &paul).await;
    assert_eq!(p["loyalty_card"], "••••••••••••8901");
    assert_eq!(p["loyalty_card_status"], "pending");
    let guard = app
        .table
        .get(&community::members::card_key(MARIE_CARD), true)
        .await
        .expect("get")
        .expect("paul's guard");
    assert_eq!(guard["member_id"], "member-paul");
}
