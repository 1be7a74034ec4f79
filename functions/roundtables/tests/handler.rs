//! Events and round tables through the function's Lambda entry, on both
//! adapters: the registration window, seats and the waitlist under
//! concurrent registrations and cancellations (exactly one promotion per
//! freed seat, the promoted member mailed once), attendance (marketing)
//! earning its points once, and the insights' seat figures.

use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::points::PointsConsumer;
use community::store::{Index, Query, Table};
use community::testing::{
    apply_roundtables, call, caller, embedded_app, join, member, roundtable, As,
};
use community::App;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The events waiting in the outbox (no relay runs in these tests).
async fn outbox<T: Table>(app: &App<T>) -> Vec<Event> {
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

/// The event's records: (registered, waitlisted) member sets, waitlist
/// places in order, and the item's counters.
struct Seats {
    registered: BTreeSet<String>,
    waitlisted: BTreeSet<String>,
    waiting_order: Vec<String>,
    counters: (i64, i64),
}

async fn seats<T: Table>(app: &App<T>, id: &str) -> Seats {
    let mut q = Query::new(Index::Primary, format!("RTABLE#{id}")).limit(1000);
    q.consistent = true;
    let items = community::store::all_pages(&app.table, q)
        .await
        .expect("partition");
    let mut s = Seats {
        registered: BTreeSet::new(),
        waitlisted: BTreeSet::new(),
        waiting_order: Vec::new(),
        counters: (0, 0),
    };
    for i in &items {
        let sk = i["sk"].as_str().unwrap_or_default();
        let m = i
            .get("member_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if sk == "RTABLE" {
            s.counters = (
                i.get("registered").and_then(Value::as_i64).unwrap_or(0),
                i.get("waitlisted").and_then(Value::as_i64).unwrap_or(0),
            );
        } else if sk.starts_with("REG#") {
            match i["status"].as_str() {
                Some("registered") => s.registered.insert(m),
                _ => s.waitlisted.insert(m),
            };
        } else if sk.starts_with("WAIT#") {
            s.waiting_order.push(m);
        }
    }
    s
}

/// The invariants of an event's seats: counters match the records, every
/// waiting member has one waitlist place, no seat is free while someone waits.
fn check(s: &Seats, capacity: usize) {
    assert_eq!(
        s.counters.0 as usize,
        s.registered.len(),
        "registered counter"
    );
    assert_eq!(
        s.counters.1 as usize,
        s.waitlisted.len(),
        "waitlisted counter"
    );
    let places: BTreeSet<String> = s.waiting_order.iter().cloned().collect();
    assert_eq!(
        places, s.waitlisted,
        "one waitlist place per waiting member"
    );
    assert_eq!(places.len(), s.waiting_order.len());
    assert!(s.registered.len() <= capacity);
    if s.registered.len() < capacity {
        assert!(s.waitlisted.is_empty(), "a seat free while someone waits");
    }
}

async fn status_of(r: &axum::Router, id: &str, who: &As) -> (u16, Value) {
    let res = call(
        r,
        "POST",
        &format!("/events/{id}/registrations"),
        Some(who),
        None,
    )
    .await;
    (res.status, res.body)
}

async fn scenario<T: Table + Clone>(app: App<T>, dir: &std::path::Path) {
    apply_roundtables(
        &app,
        vec![
            roundtable("table-ronde", (-60, 3600), 7200, 3),
            roundtable("later", (3600, 7200), 10800, 30),
            roundtable("closed", (-7200, -60), 3600, 30),
            roundtable("over", (-7200, -3600), -60, 30),
        ],
    )
    .await;
    let r = roundtables::router(app.clone());
    let crowd: Vec<As> = (0..8).map(|i| member(&format!("membre{i}"))).collect();
    for m in &crowd {
        join(&app, m).await;
    }
    let outsider = member("outsider");
    join(&app, &outsider).await;
    let marketing = member("mkt").in_groups(&["marketing"]);

    // Reads (public).
    let list = call(&r, "GET", "/events", None, None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    let ids: Vec<&str> = list.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["closed", "table-ronde", "later"],
        "upcoming, soonest first"
    );
    let past = call(&r, "GET", "/events?when=past", None, None).await;
    assert_eq!(past.body["items"][0]["id"], "over", "{}", past.body);
    assert_eq!(
        call(&r, "GET", "/events?when=soon", None, None)
            .await
            .status,
        422
    );
    let one = call(&r, "GET", "/events/table-ronde", None, None).await;
    assert_eq!(one.status, 200);
    assert_eq!(
        (
            one.body["kind"].clone(),
            one.body["capacity"].clone(),
            one.body["registered"].clone(),
            one.body["registration"].clone()
        ),
        (json!("in_store"), json!(3), json!(0), json!("open"))
    );
    assert!(one.body["place"].is_string() && one.body.get("link").is_none());
    for bad in ["/events/nope", "/events/..%2Fx"] {
        assert_eq!(call(&r, "GET", bad, None, None).await.status, 404, "{bad}");
    }

    // Registration: who, when.
    let reg = "/events/table-ronde/registrations";
    assert_eq!(call(&r, "POST", reg, None, None).await.status, 401);
    assert_eq!(
        call(&r, "POST", reg, Some(&member("stranger")), None)
            .await
            .status,
        403,
        "members only"
    );
    for id in ["later", "closed", "over"] {
        let (status, body) = status_of(&r, id, &outsider).await;
        assert_eq!(status, 409, "{id}: {body}");
    }
    assert_eq!(status_of(&r, "nope", &outsider).await.0, 404);

    // Eight members at once for three seats.
    let results =
        futures::future::join_all(crowd.iter().map(|m| status_of(&r, "table-ronde", m))).await;
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for (status, body) in &results {
        assert_eq!(*status, 201, "{body}");
        *by_status
            .entry(body["status"].as_str().unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(
        by_status,
        BTreeMap::from([("registered".to_owned(), 3), ("waitlisted".to_owned(), 5)])
    );
    let s = seats(&app, "table-ronde").await;
    check(&s, 3);
    let (twice, _) = status_of(&r, "table-ronde", &crowd[0]).await;
    assert_eq!(twice, 409, "twice");
    let view = call(&r, "GET", "/events/table-ronde", None, None).await;
    assert_eq!(
        (
            view.body["registered"].clone(),
            view.body["waitlisted"].clone()
        ),
        (json!(3), json!(5))
    );

    // Cancelling without a registration.
    let mine = "/events/table-ronde/registrations/me";
    assert_eq!(
        call(&r, "DELETE", mine, Some(&outsider), None).await.status,
        404
    );
    assert_eq!(call(&r, "DELETE", mine, None, None).await.status, 401);
    assert_eq!(
        call(
            &r,
            "DELETE",
            "/events/nope/registrations/me",
            Some(&outsider),
            None
        )
        .await
        .status,
        404
    );

    // Two seated members cancel at once while a newcomer registers: the
    // first two waiting members take the two seats, once each.
    let seated: Vec<As> = crowd
        .iter()
        .filter(|m| s.registered.contains(&m.sub))
        .cloned()
        .collect();
    let first_two: BTreeSet<String> = s.waiting_order.iter().take(2).cloned().collect();
    let (c1, c2, n) = tokio::join!(
        call(&r, "DELETE", mine, Some(&seated[0]), None),
        call(&r, "DELETE", mine, Some(&seated[1]), None),
        status_of(&r, "table-ronde", &outsider),
    );
    assert_eq!(
        (c1.status, c2.status),
        (200, 200),
        "{} {}",
        c1.body,
        c2.body
    );
    assert_eq!(c1.body["seat_taken_by_waitlist"], true);
    assert_eq!(
        (n.0, n.1["status"].clone()),
        (201, json!("waitlisted")),
        "nobody jumps the queue"
    );
    let s2 = seats(&app, "table-ronde").await;
    check(&s2, 3);
    assert!(
        first_two.is_subset(&s2.registered),
        "the first waiting members took the seats"
    );

    // Then the two re-register while two seated members cancel and a
    // waiting one leaves, all at once.
    let seated2: Vec<As> = crowd
        .iter()
        .chain(std::iter::once(&outsider))
        .filter(|m| s2.registered.contains(&m.sub))
        .cloned()
        .collect();
    let waiting2 = crowd
        .iter()
        .find(|m| s2.waitlisted.contains(&m.sub))
        .cloned()
        .expect("someone waits");
    let (a, b, c, d, e) = tokio::join!(
        status_of(&r, "table-ronde", &seated[0]),
        status_of(&r, "table-ronde", &seated[1]),
        call(&r, "DELETE", mine, Some(&seated2[0]), None),
        call(&r, "DELETE", mine, Some(&seated2[1]), None),
        call(&r, "DELETE", mine, Some(&waiting2), None),
    );
    assert_eq!((a.0, b.0), (201, 201), "{} {}", a.1, b.1);
    assert_eq!((c.status, d.status, e.status), (200, 200, 200));
    let s3 = seats(&app, "table-ronde").await;
    check(&s3, 3);
    // 8 + the newcomer - 2, then + 2 back - 3 leaving.
    assert_eq!(s3.registered.len() + s3.waitlisted.len(), 6);

    // Exactly one promotion per freed seat, each taken by a different
    // waiting member, each promoted once. Four seated members left; the
    // leaving waiting member may have been promoted first by a racing
    // cancellation, and then freed a fifth seat: the cancellations' own
    // answers say which freed a seat.
    let freed = [&c1, &c2, &c, &d, &e]
        .iter()
        .filter(|r| r.body["seat_taken_by_waitlist"] == true)
        .count();
    assert!((4..=5).contains(&freed), "{freed}");
    let events = outbox(&app).await;
    let promoted: Vec<String> = events
        .iter()
        .filter(|e| e.kind == Kind::RoundtablePromoted)
        .map(|e| e.member_id.clone())
        .collect();
    assert_eq!(promoted.len(), freed, "{promoted:?}");
    assert_eq!(promoted.iter().collect::<BTreeSet<_>>().len(), freed);

    // The promoted members are mailed once each, however often delivered.
    let mailbox = DirMailbox::new(dir.join("mailbox")).expect("mailbox");
    let emails = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    let mail_events: Vec<Event> = events
        .iter()
        .filter(|e| community::events::routes(e.kind).contains(&community::events::Queue::Emails))
        .cloned()
        .collect();
    for _ in 0..2 {
        for chunk in mail_events.chunks(10) {
            let res = community::queue::sqs(&emails, community::testing::sqs_batch(chunk))
                .await
                .expect("batch");
            assert!(res.batch_item_failures.is_empty(), "{res:?}");
        }
    }
    let mut mailed: BTreeMap<String, usize> = BTreeMap::new();
    for m in mailbox.list().expect("mails") {
        if m.subject.starts_with("Une place s'est libérée") {
            assert!(m.text.contains("Magasin de Montreuil"), "{}", m.text);
            *mailed.entry(m.to).or_default() += 1;
        }
    }
    let want: BTreeMap<String, usize> = promoted
        .iter()
        .map(|m| (format!("{m}@example.fr"), 1))
        .collect();
    assert_eq!(mailed, want);

    // Attendance: marketing, a valid list, after the start.
    let att = "/events/table-ronde/attendance";
    let someone = s3.registered.iter().next().cloned().expect("seated");
    let waiting = s3.waitlisted.iter().next().cloned().expect("waiting");
    let body = json!({"member_ids": [someone, waiting, "inconnu", someone]});
    assert_eq!(
        call(&r, "POST", att, None, Some(body.clone())).await.status,
        401
    );
    assert_eq!(
        call(&r, "POST", att, Some(&crowd[0]), Some(body.clone()))
            .await
            .status,
        403
    );
    let too_many: Vec<String> = (0..501).map(|i| format!("m{i}")).collect();
    for (bad, field) in [
        (json!({"member_ids": []}), "member_ids"),
        (json!({"member_ids": too_many}), "member_ids"),
        (json!({}), "member_ids"),
        (
            json!({"member_ids": ["ok", "pas un id !"]}),
            "member_ids[1]",
        ),
    ] {
        let res = call(&r, "POST", att, Some(&marketing), Some(bad)).await;
        assert_eq!(res.status, 422, "{}", res.body);
        assert_eq!(res.body["errors"][0]["field"], field, "{}", res.body);
    }
    assert_eq!(
        call(
            &r,
            "POST",
            att,
            Some(&marketing),
            Some(json!({"member_ids": "x"}))
        )
        .await
        .status,
        400
    );
    let early = call(&r, "POST", att, Some(&marketing), Some(body.clone())).await;
    assert_eq!(early.status, 409, "before the start: {}", early.body);
    assert_eq!(
        call(
            &r,
            "POST",
            "/events/nope/attendance",
            Some(&marketing),
            Some(body.clone())
        )
        .await
        .status,
        404
    );
    // The event took place (its file moved to the past): registrations are final.
    apply_roundtables(
        &app,
        vec![roundtable("table-ronde", (-7200, -3600), -60, 3)],
    )
    .await;
    let after = call(&r, "DELETE", mine, Some(&member(&someone)), None).await;
    assert_eq!(after.status, 409, "{}", after.body);
    let done = call(&r, "POST", att, Some(&marketing), Some(body.clone())).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.body["recorded"], json!([someone]));
    let mut others = vec![waiting.clone(), "inconnu".to_owned()];
    others.sort();
    assert_eq!(done.body["not_registered"], json!(others));
    let again = call(&r, "POST", att, Some(&marketing), Some(body)).await;
    assert_eq!(
        (
            again.body["recorded"].clone(),
            again.body["already_recorded"].clone()
        ),
        (json!([]), json!([someone]))
    );

    // The points: once, however often the event is delivered.
    let points = PointsConsumer { app: app.clone() };
    let attended: Vec<Event> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == Kind::RoundtableAttended)
        .collect();
    assert_eq!(attended.len(), 1);
    for _ in 0..2 {
        let res = community::queue::sqs(&points, community::testing::sqs_batch(&attended))
            .await
            .expect("batch");
        assert!(res.batch_item_failures.is_empty(), "{res:?}");
    }
    let who = community::domain::MemberId::parse(&someone).expect("id");
    let row = community::members::get(&app, &who).await.expect("member");
    assert_eq!(row.points_balance, 40, "event_attended, once");

    // Insights: seats per event as the events arrive.
    community::testing::run_insights(&app).await;
    let insights = community::insights::read(&app, &caller(&marketing))
        .await
        .expect("insights");
    let figures = insights["events"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == "table-ronde"))
        .cloned()
        .expect("the event's figures");
    assert_eq!(
        figures,
        json!({"id": "table-ronde", "registered": s3.registered.len(),
               "waitlisted": s3.waitlisted.len(), "attended": 1})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seats_waitlist_and_attendance_on_the_embedded_store() {
    let (app, dir) = embedded_app(|_| {});
    scenario(app, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seats_waitlist_and_attendance_on_dynamodb() {
    let Some(table) = community::testing::moto_table("roundtables").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    scenario(App::new(table, community::testing::settings()), dir.path()).await;
}

/// Raising the capacity in the file: the next registration gives the new
/// seats to the waiting members first.
#[tokio::test]
async fn a_raised_capacity_seats_the_waiting_members_first() {
    let (app, _d) = embedded_app(|_| {});
    apply_roundtables(&app, vec![roundtable("rt", (-60, 3600), 7200, 1)]).await;
    let r = roundtables::router(app.clone());
    let (a, b, c) = (member("ana"), member("ben"), member("cleo"));
    for m in [&a, &b, &c] {
        join(&app, m).await;
    }
    assert_eq!(status_of(&r, "rt", &a).await.1["status"], "registered");
    assert_eq!(status_of(&r, "rt", &b).await.1["status"], "waitlisted");
    apply_roundtables(&app, vec![roundtable("rt", (-60, 3600), 7200, 3)]).await;
    assert_eq!(status_of(&r, "rt", &c).await.1["status"], "registered");
    let s = seats(&app, "rt").await;
    check(&s, 3);
    assert!(s.registered.contains("ben"), "ben waited first");
}
