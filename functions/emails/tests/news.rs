//! Community news (`notifications.community_news`): a new contest, product
//! test or challenge (`community.news`, written by `campaigns apply`) is mailed
//! to the members of the news index (gsi1 `NEWS#{bucket}`, on the profile
//! while the member wants community news), in pages, each member once, as
//! the freshly read profile allows. Through the consumer's Lambda entry, on
//! both adapters, every batch delivered twice.

use community::campaigns::{challenge_news, contest_news, product_test_news};
use community::events::{Event, Kind};
use community::mail::dir::DirMailbox;
use community::members::{news_bucket, news_pk, NotificationsPatch, Patch};
use community::store::{Index, Query, Table, Update, Write};
use community::testing::{caller, embedded_app, join, member, As};
use community::App;
use emails::EmailsConsumer;
use std::collections::{BTreeMap, BTreeSet};

async fn patch<T: Table>(app: &App<T>, who: &As, p: Patch) {
    community::members::update(app, &caller(who), p)
        .await
        .expect("patch");
}

fn news(on: bool) -> Patch {
    Patch {
        notifications: Some(NotificationsPatch {
            community_news: Some(on),
            ..NotificationsPatch::default()
        }),
        ..Patch::default()
    }
}

/// Each batch twice, as SQS may deliver it.
async fn deliver<T: Table + Clone>(consumer: &EmailsConsumer<T, DirMailbox>, events: &[Event]) {
    for chunk in events.chunks(10) {
        for _ in 0..2 {
            let res = community::queue::sqs(consumer, community::testing::sqs_batch(chunk))
                .await
                .expect("batch");
            assert!(res.batch_item_failures.is_empty(), "{res:?}");
        }
    }
}

/// The events waiting in the outbox.
async fn outbox<T: Table>(app: &App<T>) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..community::events::OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, community::events::outbox_pk(b)).limit(1000);
        for i in app.table.query(&q).await.expect("outbox").items {
            out.extend(Event::from_item(&i));
        }
    }
    out
}

/// Whether `who` is in the news index.
async fn indexed<T: Table>(app: &App<T>, who: &As) -> bool {
    let q = Query::new(Index::Gsi1, news_pk(news_bucket(&who.sub))).limit(1000);
    app.table
        .query(&q)
        .await
        .expect("index")
        .items
        .iter()
        .any(|i| i["gsi1sk"] == who.sub.as_str())
}

/// Delivers `news` (twice), then every page it starts and their
/// continuations (each batch twice, and every page again at the end) until
/// no new page appears; returns how many pages there were.
async fn run<T: Table + Clone>(
    app: &App<T>,
    consumer: &EmailsConsumer<T, DirMailbox>,
    news: &Event,
) -> usize {
    deliver(consumer, std::slice::from_ref(news)).await;
    let mut done = BTreeSet::new();
    let mut all = Vec::new();
    loop {
        let pages: Vec<Event> = outbox(app)
            .await
            .into_iter()
            .filter(|e| e.kind == Kind::MailPage && e.event_id.starts_with(&news.event_id))
            .filter(|e| !done.contains(&e.event_id))
            .collect();
        if pages.is_empty() {
            break;
        }
        done.extend(pages.iter().map(|p| p.event_id.clone()));
        deliver(consumer, &pages).await;
        all.extend(pages);
    }
    // A late redelivery of the whole run changes nothing.
    deliver(consumer, std::slice::from_ref(news)).await;
    deliver(consumer, &all).await;
    all.len()
}

/// Who got the mail `mail_id`, and how many copies each.
fn recipients(mailbox: &DirMailbox, mail_id: &str) -> BTreeMap<String, usize> {
    let mut to = BTreeMap::new();
    for m in mailbox.list().expect("list") {
        if m.mail_id == mail_id {
            *to.entry(m.to).or_default() += 1;
        }
    }
    to
}

async fn scenario<T: Table + Clone>(app: App<T>, dir: &std::path::Path) {
    // Members of many buckets, and more than a page (50) in bucket 0, so
    // that its chain has a second page.
    let mut crowd: Vec<As> = Vec::new();
    for i in 0.. {
        let name = format!("membre{i}");
        if news_bucket(&name) == 0 || i < 24 {
            crowd.push(member(&name));
        }
        if crowd.iter().filter(|m| news_bucket(&m.sub) == 0).count() > 52 {
            break;
        }
    }
    let names = ["ana", "bea", "cid", "dan", "eve", "fox", "gil"];
    let m: Vec<As> = names.iter().map(|n| member(n)).collect();
    for who in crowd.iter().chain(&m) {
        join(&app, who).await;
    }
    let [ana, bea, cid, dan, eve, fox, gil] = &m[..] else {
        unreachable!()
    };
    // Signed up with email_opt_in and the default preferences: indexed.
    for who in crowd.iter().chain(&m) {
        assert!(indexed(&app, who).await, "{} indexed at sign-up", who.sub);
    }
    // bea turns community news off; fox off, then on again.
    patch(&app, bea, news(false)).await;
    patch(&app, fox, news(false)).await;
    assert!(!indexed(&app, bea).await, "off: out of the index");
    assert!(!indexed(&app, fox).await);
    patch(&app, fox, news(true)).await;
    assert!(indexed(&app, fox).await, "on again: back in the index");
    // cid withdraws the consent to community mails.
    patch(
        &app,
        cid,
        Patch {
            email_opt_in: Some(false),
            ..Patch::default()
        },
    )
    .await;
    assert!(!indexed(&app, cid).await, "no email_opt_in: out");
    // With the preference on again, cid stays out (no consent)...
    patch(&app, cid, news(true)).await;
    assert!(!indexed(&app, cid).await);
    // dan's address bounced for good; eve was erased.
    community::testing::suppress(&app, dan).await;
    assert!(!indexed(&app, dan).await, "suppressed: out");
    community::gdpr::erase(&app, &caller(eve))
        .await
        .expect("erase");
    assert!(!indexed(&app, eve).await, "erased: out");
    // gil's profile says no while the index still lists him (a preference
    // turned off after the page read the index): the profile wins.
    app.table
        .transact(vec![Write::update(
            community::members::key(&caller(gil).id),
            Update::default().set("community_news", false),
        )])
        .await
        .expect("profile");
    assert!(indexed(&app, gil).await);

    let mailbox = DirMailbox::new(dir.join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    let contest = contest_news(&community::testing::contest("printemps-2027", -60, 3600));
    let ptest = product_test_news(&community::testing::product_test(
        "test-yaourt-2027",
        "3560070123452",
        (-60, 3600),
        (3600, 7200),
        3,
        2,
    ));
    let pages = run(&app, &consumer, &contest).await;
    assert!(
        pages > community::members::NEWS_BUCKETS as usize,
        "one chain per bucket, bucket 0's with a second page: {pages}"
    );
    run(&app, &consumer, &ptest).await;
    let defi = challenge_news(&community::testing::challenge(
        "defi-2027",
        -60,
        3600,
        Some("marque-exemple"),
    ));
    run(&app, &consumer, &defi).await;

    let mut want: BTreeSet<String> = crowd.iter().map(|m| m.email.clone()).collect();
    want.extend([ana.email.clone(), fox.email.clone()]);
    for (e, subject) in [
        (&contest, "Nouveau concours : "),
        (&ptest, "Nouveau test produit : "),
        (&defi, "Nouveau défi : "),
    ] {
        let mail_id = format!("{}-news", e.event_id);
        let got = recipients(&mailbox, &mail_id);
        assert_eq!(
            got.keys().cloned().collect::<BTreeSet<_>>(),
            want,
            "those who want community news, and only they"
        );
        assert!(got.values().all(|n| *n == 1), "each once: {got:?}");
        let one = mailbox
            .list()
            .expect("list")
            .into_iter()
            .find(|m| m.mail_id == mail_id && m.to == ana.email)
            .expect("ana's mail");
        assert!(one.subject.starts_with(subject), "{}", one.subject);
        assert!(one
            .headers
            .iter()
            .any(|(h, v)| h == "List-Unsubscribe" && v.contains("/unsubscribe/")));
        // The tracked link leads to the contest's (product test's,
        // challenge's) page.
        let link = one
            .text
            .split_whitespace()
            .find(|w| w.contains("/r/"))
            .expect("a tracked link");
        let token = link.rsplit("/r/").next().expect("token");
        let target = community::mail::click(&app, token).await.expect("click");
        let page = match e.data["campaign"].as_str() {
            Some("contest") => "/contests/printemps-2027",
            Some("challenge") => "/challenges/defi-2027",
            _ => "/product-tests/test-yaourt-2027",
        };
        assert!(target.ends_with(page), "{target}");
    }
    // The one-click unsubscribe takes ana out of the index too.
    let unsub = community::mail::unsubscribe_url(&app.settings(), &ana.sub);
    let token = unsub.rsplit('/').next().expect("token");
    community::mail::unsubscribe(&app, token)
        .await
        .expect("unsubscribe");
    assert!(!indexed(&app, ana).await, "unsubscribed: out");
}

#[tokio::test]
async fn community_news_reach_those_who_want_them_once_on_the_embedded_store() {
    let (app, dir) = embedded_app(|_| {});
    scenario(app, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn community_news_reach_those_who_want_them_once_on_dynamodb() {
    let Some(table) = community::testing::moto_table("news-mail").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    scenario(App::new(table, community::testing::settings()), dir.path()).await;
}
