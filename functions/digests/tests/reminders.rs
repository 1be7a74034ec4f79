//! The reminder the day before an event (round table), started by the
//! digests function's hourly run: tomorrow's events are one Query, each
//! event's reminder starts once, and the emails consumer mails its
//! registered members in pages, each once (waiting members are not
//! reminded). Every run and every page delivered twice, on both adapters.

use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::store::{Index, Query, Table};
use community::testing::{apply_roundtables, caller, embedded_app, join, member, roundtable};
use community::App;
use std::collections::{BTreeMap, BTreeSet};

async fn reminders<T: Table>(app: &App<T>) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, outbox_pk(b)).limit(1000);
        let items = community::store::all_pages(&app.table, q)
            .await
            .expect("outbox");
        out.extend(
            items
                .iter()
                .filter_map(Event::from_item)
                .filter(|e| e.kind == Kind::RoundtableReminder),
        );
    }
    out
}

async fn scenario<T: Table + Clone>(app: App<T>, dir: &std::path::Path) {
    // Tomorrow (Paris) and in three days; 53 seats for 55 members, so that
    // the registrations take two pages (50 each).
    let tomorrow = community::roundtables::paris_day(
        time::OffsetDateTime::now_utc() + time::Duration::days(1),
    );
    let mut demain = roundtable("demain", (-60, 3600), 24 * 3600, 53);
    demain.starts_at = format!("{tomorrow}T10:00:00.000Z");
    apply_roundtables(
        &app,
        vec![
            demain,
            roundtable("plus-tard", (-60, 3600), 3 * 24 * 3600, 10),
        ],
    )
    .await;
    let mut seated = BTreeSet::new();
    for i in 0..55 {
        let m = member(&format!("membre{i:02}"));
        join(&app, &m).await;
        let r = community::roundtables::register(&app, &caller(&m), "demain", None)
            .await
            .expect("register");
        if r.status == "registered" {
            seated.insert(format!("{}@example.fr", m.sub));
        }
        if i < 3 {
            community::roundtables::register(&app, &caller(&m), "plus-tard", None)
                .await
                .expect("register");
        }
    }
    assert_eq!(seated.len(), 53);
    let mailbox = DirMailbox::new(dir.join("mailbox")).expect("mailbox");
    let sample = serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"});
    let first = digests::handle(&app, &mailbox, sample.clone())
        .await
        .expect("run");
    assert_eq!(first["event_reminders"]["events"], 1, "{first}");
    assert_eq!(first["event_reminders"]["started"], 1, "{first}");
    let again = digests::handle(&app, &mailbox, sample.clone())
        .await
        .expect("rerun");
    assert_eq!(
        again["event_reminders"]["started"], 0,
        "a rerun starts nothing"
    );

    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    let mut done = BTreeSet::new();
    let mut all = Vec::new();
    loop {
        let pages: Vec<Event> = reminders(&app)
            .await
            .into_iter()
            .filter(|e| !done.contains(&e.event_id))
            .collect();
        if pages.is_empty() {
            break;
        }
        for _ in 0..2 {
            let res = community::queue::sqs(&consumer, community::testing::sqs_batch(&pages))
                .await
                .expect("batch");
            assert!(res.batch_item_failures.is_empty(), "{res:?}");
        }
        done.extend(pages.iter().map(|p| p.event_id.clone()));
        all.extend(pages);
    }
    assert_eq!(all.len(), 2, "two pages");
    // A late redelivery of every page, and another run, change nothing.
    community::queue::sqs(&consumer, community::testing::sqs_batch(&all))
        .await
        .expect("batch");
    digests::handle(&app, &mailbox, sample).await.expect("run");
    let mut to: BTreeMap<String, usize> = BTreeMap::new();
    for m in mailbox.list().expect("mails") {
        assert!(m.subject.starts_with("Rappel : "), "{}", m.subject);
        assert!(m.text.contains("Magasin de Montreuil"), "{}", m.text);
        *to.entry(m.to).or_default() += 1;
    }
    assert_eq!(
        to.keys().cloned().collect::<BTreeSet<_>>(),
        seated,
        "the seated members only"
    );
    assert!(to.values().all(|n| *n == 1), "once each: {to:?}");
}

#[tokio::test]
async fn tomorrows_events_remind_their_members_once_on_the_embedded_store() {
    let (app, dir) = embedded_app(|_| {});
    scenario(app, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tomorrows_events_remind_their_members_once_on_dynamodb() {
    let Some(table) = community::testing::moto_table("reminders").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    scenario(App::new(table, community::testing::settings()), dir.path()).await;
}
