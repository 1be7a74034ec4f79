//! The news of an idea goes to its followers (`community::follows`): its
//! voters unless they unfollowed or set `auto_follow: false`, and the
//! members who followed it or commented on it, each once, as their
//! notification preferences allow. Through the consumer's Lambda entry, on
//! both adapters.

use community::domain::IdeaId;
use community::events::{Event, Kind};
use community::mail::dir::DirMailbox;
use community::members::{NotificationsPatch, Patch};
use community::store::{Index, Query, Table};
use community::testing::{caller, embedded_app, join, member, post_idea, As};
use community::App;
use emails::EmailsConsumer;
use serde_json::json;

async fn patch<T: Table>(app: &App<T>, who: &As, p: Patch) {
    community::members::update(app, &caller(who), p)
        .await
        .expect("patch");
}

async fn deliver<T: Table + Clone>(consumer: &EmailsConsumer<T, DirMailbox>, events: &[Event]) {
    for chunk in events.chunks(10) {
        let res = community::queue::sqs(consumer, community::testing::sqs_batch(chunk))
            .await
            .expect("batch");
        assert!(res.batch_item_failures.is_empty(), "{res:?}");
    }
}

/// The addresses the decision's follower mails went to, sorted.
fn news_to(mailbox: &DirMailbox) -> Vec<String> {
    let mut to: Vec<String> = mailbox
        .list()
        .expect("list")
        .into_iter()
        .filter(|m| m.mail_id.ends_with("-voters"))
        .map(|m| m.to)
        .collect();
    to.sort();
    to
}

async fn scenario<T: Table + Clone>(app: App<T>, dir: &std::path::Path) {
    let names = [
        "alice", "bob", "carl", "dan", "erin", "fay", "gus", "hal", "ivy", "jo", "kim",
    ];
    let m: Vec<As> = names.iter().map(|n| member(n)).collect();
    for who in &m {
        join(&app, who).await;
    }
    let [alice, bob, carl, dan, erin, fay, gus, hal, ivy, jo, kim] = &m[..] else {
        unreachable!()
    };
    let idea = post_idea(&app, alice).await;
    let id = IdeaId::parse(&idea).expect("id");
    // Voters: bob (follows by default), carl (then unfollows: it sticks),
    // dan (auto_follow off), erin (auto_follow off, but follows explicitly),
    // gus (votes and follows: mailed once), jo (no community mails),
    // kim (no idea updates).
    for v in [bob, carl, dan, erin, gus, jo, kim] {
        community::votes::cast(&app, &caller(v), &id)
            .await
            .expect("vote");
    }
    let off = || Patch {
        auto_follow: Some(false),
        ..Patch::default()
    };
    patch(&app, dan, off()).await;
    patch(&app, erin, off()).await;
    for f in [erin, fay, gus, hal] {
        community::follows::set(&app, &caller(f), &id, true)
            .await
            .expect("follow");
    }
    community::follows::set(&app, &caller(carl), &id, false)
        .await
        .expect("unfollow");
    // carl votes again after a withdrawal: still unfollowed.
    community::votes::withdraw(&app, &caller(carl), &id)
        .await
        .expect("withdraw");
    community::votes::cast(&app, &caller(carl), &id)
        .await
        .expect("vote again");
    let no_updates = || Patch {
        notifications: Some(NotificationsPatch {
            idea_updates: Some(false),
            ..NotificationsPatch::default()
        }),
        ..Patch::default()
    };
    patch(&app, hal, no_updates()).await;
    patch(&app, kim, no_updates()).await;
    patch(
        &app,
        jo,
        Patch {
            email_opt_in: Some(false),
            ..Patch::default()
        },
    )
    .await;
    // ivy comments: she follows the idea.
    let body = serde_json::from_value(json!({"body": "Bonne idée !"})).expect("body");
    community::comments::post(&app, &caller(ivy), &id, body, None)
        .await
        .expect("comment");

    let mailbox = DirMailbox::new(dir.join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    let decided = Event::new(
        Kind::IdeaDecided,
        caller(alice).id.as_str(),
        Some(&idea),
        json!({"outcome": "accepted"}),
    );
    let mut pages = Vec::new();
    for b in 0..community::votes::VOTER_BUCKETS {
        pages.push(community::mail::page_event(&decided, b, 0, None));
        pages.push(community::mail::follower_page_event(&decided, b, 0, None));
    }
    deliver(&consumer, std::slice::from_ref(&decided)).await;
    // The decision starts one chain per voter bucket and one per follower
    // bucket: their first pages are in the outbox.
    let mut queued = std::collections::BTreeSet::new();
    for b in 0..community::events::OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, community::events::outbox_pk(b)).limit(1000);
        for i in app.table.query(&q).await.expect("outbox").items {
            if let Some(e) = Event::from_item(&i) {
                queued.insert(e.event_id);
            }
        }
    }
    for p in &pages {
        assert!(queued.contains(&p.event_id), "{} not started", p.event_id);
    }
    for _ in 0..2 {
        deliver(&consumer, std::slice::from_ref(&decided)).await;
        deliver(&consumer, &pages).await;
    }
    assert_eq!(
        news_to(&mailbox),
        vec![
            "bob@example.fr",
            "erin@example.fr",
            "fay@example.fr",
            "gus@example.fr",
            "ivy@example.fr",
        ],
        "voters ∪ followers, each once, as their preferences say"
    );
}

#[tokio::test]
async fn decision_news_go_to_voters_and_followers_on_the_embedded_store() {
    let (app, dir) = embedded_app(|_| {});
    scenario(app, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decision_news_go_to_voters_and_followers_on_dynamodb() {
    let Some(table) = community::testing::moto_table("follow-mail").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    scenario(App::new(table, community::testing::settings()), dir.path()).await;
}

/// `idea_updates`: one member, with the preference on then off.
#[tokio::test]
async fn idea_updates_preference_is_honoured() {
    let (app, dir) = embedded_app(|_| {});
    let (alice, bob) = (member("alice"), member("bob"));
    join(&app, &alice).await;
    join(&app, &bob).await;
    let idea = post_idea(&app, &alice).await;
    let id = IdeaId::parse(&idea).expect("id");
    community::follows::set(&app, &caller(&bob), &id, true)
        .await
        .expect("follow");
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    let news = |step: &str| {
        let e = Event::new(
            Kind::IdeaProgressed,
            caller(&alice).id.as_str(),
            Some(&idea),
            json!({"status": "in_progress", "note": step}),
        );
        let mut events = vec![e.clone()];
        for b in 0..community::votes::VOTER_BUCKETS {
            events.push(community::mail::follower_page_event(&e, b, 0, None));
        }
        events
    };
    deliver(&consumer, &news("1")).await;
    assert_eq!(news_to(&mailbox), vec!["bob@example.fr"]);
    patch(
        &app,
        &bob,
        Patch {
            notifications: Some(NotificationsPatch {
                idea_updates: Some(false),
                ..NotificationsPatch::default()
            }),
            ..Patch::default()
        },
    )
    .await;
    deliver(&consumer, &news("2")).await;
    assert_eq!(
        news_to(&mailbox),
        vec!["bob@example.fr"],
        "no news once idea_updates is off"
    );
}

/// `comment_digest`: the emails consumer records a new comment for the
/// author's digest only while `notifications.comment_digest` is on.
#[tokio::test]
async fn comment_digest_preference_is_honoured() {
    let (app, dir) = embedded_app(|_| {});
    let (alice, bob) = (member("alice"), member("bob"));
    join(&app, &alice).await;
    join(&app, &bob).await;
    let idea = post_idea(&app, &alice).await;
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox,
    };
    let pending = || async {
        app.table
            .query(&Query::new(Index::Primary, "DIGEST#alice"))
            .await
            .expect("query")
            .items
            .len()
    };
    let comment = |n: &str| {
        Event::new(
            Kind::CommentPosted,
            caller(&bob).id.as_str(),
            Some(&idea),
            json!({"comment_id": format!("c{n}"), "idea_author_id": "alice"}),
        )
    };
    let digest = |on: bool| Patch {
        notifications: Some(NotificationsPatch {
            comment_digest: Some(on),
            ..NotificationsPatch::default()
        }),
        ..Patch::default()
    };
    deliver(&consumer, &[comment("1")]).await;
    assert_eq!(pending().await, 0, "off by default");
    patch(&app, &alice, digest(true)).await;
    deliver(&consumer, &[comment("2")]).await;
    assert_eq!(pending().await, 1, "recorded while on");
    patch(&app, &alice, digest(false)).await;
    deliver(&consumer, &[comment("3")]).await;
    assert_eq!(pending().await, 1, "not recorded once off");
}

/// The events waiting in the outbox, in no particular order.
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

/// An official answer (`POST /ideas/{id}/answer`) reaches the author and
/// the idea's followers, each once, through the fan-out pages the answer's
/// event starts, redelivered twice.
async fn answer_scenario<T: Table + Clone>(app: App<T>, dir: &std::path::Path) {
    let (alice, bob, carl, dan) = (
        member("alice"),
        member("bob"),
        member("carl"),
        member("dan"),
    );
    for who in [&alice, &bob, &carl, &dan] {
        join(&app, who).await;
    }
    let idea = post_idea(&app, &alice).await;
    let id = IdeaId::parse(&idea).expect("id");
    // bob follows, carl votes (follows by default), dan does neither.
    community::follows::set(&app, &caller(&bob), &id, true)
        .await
        .expect("follow");
    community::votes::cast(&app, &caller(&carl), &id)
        .await
        .expect("vote");
    let text = "Merci Alice : un rayon de produits locaux arrive au printemps.";
    let req = serde_json::from_value(json!({ "text": text })).expect("req");
    let mona = caller(&member("mona").in_groups(&["moderator"]));
    community::answers::answer(&app, &mona, &id, req)
        .await
        .expect("answer");
    let answered: Vec<Event> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == Kind::IdeaAnswered)
        .collect();
    assert_eq!(answered.len(), 1);
    let mailbox = DirMailbox::new(dir.join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    for _ in 0..2 {
        deliver(&consumer, &answered).await;
        // The pages the answer started (and their continuations).
        let pages: Vec<Event> = outbox(&app)
            .await
            .into_iter()
            .filter(|e| e.kind == Kind::MailPage)
            .collect();
        assert!(!pages.is_empty(), "the answer starts its fan-out");
        deliver(&consumer, &pages).await;
    }
    assert_eq!(
        news_to(&mailbox),
        vec!["bob@example.fr", "carl@example.fr"],
        "the followers, each once"
    );
    let mails = mailbox.list().expect("list");
    let to_author: Vec<_> = mails
        .iter()
        .filter(|m| m.mail_id.ends_with("-author"))
        .collect();
    assert_eq!(to_author.len(), 1, "the author, once");
    assert_eq!(to_author[0].to, "alice@example.fr");
    for m in mails.iter() {
        assert!(
            m.text.contains("produits locaux"),
            "the answer is quoted: {}",
            m.text
        );
    }
}

#[tokio::test]
async fn answers_go_to_the_author_and_followers_on_the_embedded_store() {
    let (app, dir) = embedded_app(|_| {});
    answer_scenario(app, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_go_to_the_author_and_followers_on_dynamodb() {
    let Some(table) = community::testing::moto_table("answer-mail").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    answer_scenario(App::new(table, community::testing::settings()), dir.path()).await;
}
