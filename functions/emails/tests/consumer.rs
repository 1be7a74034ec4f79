//! The emails consumer through its Lambda entry, with the local mailbox.

use aws_lambda_events::event::sqs::SqsEvent;
use community::mail::dir::DirMailbox;
use community::testing::{caller, embedded_app, join, member};
use emails::EmailsConsumer;

fn sample() -> SqsEvent {
    community::testing::sqs_sample("emails.json")
}

fn link(text: &str, prefix: &str) -> String {
    let start = text.find(prefix).expect("link");
    text[start..]
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn welcome_mail_once_with_unsubscribe_and_tracked_link() {
    let (app, dir) = embedded_app(|s| s.public_url = "https://communaute.example.fr".into());
    join(&app, &member("member-marie")).await;
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    for _ in 0..2 {
        let res = community::queue::sqs(&consumer, sample())
            .await
            .expect("ok");
        assert!(res.batch_item_failures.is_empty());
    }
    let mails = mailbox.list().expect("list");
    assert_eq!(mails.len(), 1, "a redelivered event sends no second mail");
    let m = &mails[0];
    assert_eq!(m.to, "member-marie@example.fr");
    assert_eq!(m.subject, "Bienvenue dans la communauté !");
    assert!(m.text.contains("Bien manger") && m.html.contains("<p>"));
    assert!(m
        .headers
        .iter()
        .any(|(k, v)| k == "List-Unsubscribe" && v.contains("/unsubscribe/")));
    assert!(m
        .headers
        .iter()
        .any(|(k, v)| k == "List-Unsubscribe-Post" && v == "List-Unsubscribe=One-Click"));

    // The tracked link: unique clicks per member per mail.
    let tracked = link(&m.text, "https://communaute.example.fr/r/");
    let token = tracked.trim_start_matches("https://communaute.example.fr/r/");
    for _ in 0..3 {
        let url = community::mail::click(&app, token).await.expect("click");
        assert_eq!(url, "https://communaute.example.fr/ideas");
    }
    let stats = community::mail::stats(&app, &m.mail_id)
        .await
        .expect("stats");
    assert_eq!(
        (stats["sent"].as_i64(), stats["unique_clicks"].as_i64()),
        (Some(1), Some(1))
    );
    // A forged token is not a link.
    let forged = format!("{}x", token);
    assert!(community::mail::click(&app, &forged).await.is_err());

    // One-click unsubscribe.
    let unsub = link(&m.text, "https://communaute.example.fr/unsubscribe/");
    let token = unsub.trim_start_matches("https://communaute.example.fr/unsubscribe/");
    community::mail::unsubscribe(&app, token)
        .await
        .expect("unsubscribe");
    let me = community::members::get(&app, &caller(&member("member-marie")).id)
        .await
        .expect("member");
    assert!(!me.email_opt_in);
}

#[tokio::test]
async fn marketing_reads_a_mails_unique_click_rate() {
    let (app, dir) = embedded_app(|_| {});
    join(&app, &member("member-marie")).await;
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    community::queue::sqs(&consumer, sample())
        .await
        .expect("ok");
    let r = links::router(app.clone());
    let path = "/mails/welcome/stats";
    let res = community::testing::call(&r, "GET", path, Some(&member("member-marie")), None).await;
    assert_eq!(res.status, 403);
    let res = community::testing::call(
        &r,
        "GET",
        path,
        Some(&member("ana").in_groups(&["marketing"])),
        None,
    )
    .await;
    assert_eq!(res.status, 200);
    assert_eq!(
        (res.body["sent"].clone(), res.body["unique_clicks"].clone()),
        (serde_json::json!(1), serde_json::json!(0))
    );
    let res = community::testing::call(
        &r,
        "GET",
        "/mails/..%2F/stats",
        Some(&member("ana").in_groups(&["marketing"])),
        None,
    )
    .await;
    assert_eq!(res.status, 404);
}

/// A table whose writes of a mail's `STATS` item are cancelled by
/// conflicts a given number of times (a hot item under DynamoDB's rules).
#[derive(Clone)]
struct Contended {
    inner: community::store::embedded::EmbeddedTable,
    conflicts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[async_trait::async_trait]
impl community::store::Table for Contended {
    async fn get(
        &self,
        key: &community::store::Key,
        consistent: bool,
    ) -> community::store::StoreResult<Option<community::store::Item>> {
        self.inner.get(key, consistent).await
    }
    async fn get_many(
        &self,
        keys: &[community::store::Key],
        consistent: bool,
    ) -> community::store::StoreResult<Vec<community::store::Item>> {
        self.inner.get_many(keys, consistent).await
    }
    async fn query(
        &self,
        q: &community::store::Query,
    ) -> community::store::StoreResult<community::store::Page> {
        self.inner.query(q).await
    }
    async fn transact(
        &self,
        writes: Vec<community::store::Write>,
    ) -> community::store::StoreResult<()> {
        use std::sync::atomic::Ordering;
        let stats = writes
            .iter()
            .filter_map(community::store::Write::key)
            .any(|k| k.pk.starts_with("MAIL#") && k.sk.starts_with("STATS#"));
        if stats
            && self
                .conflicts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(community::store::StoreError::Conflict);
        }
        self.inner.transact(writes).await
    }
}

#[tokio::test]
async fn a_conflict_after_the_send_never_sends_the_mail_again() {
    let (app, dir) = embedded_app(|_| {});
    join(&app, &member("member-marie")).await;
    let table = Contended {
        inner: app.table.clone(),
        // More than the in-process retries: the first delivery's
        // finalisation fails, the message is retried.
        conflicts: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(10)),
    };
    let contended = community::App::new(table, (*app.settings()).clone());
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: contended,
        mailer: mailbox.clone(),
    };
    // The sample's one message: not finalised, so the invocation fails and
    // SQS delivers it again.
    assert!(community::queue::sqs(&consumer, sample()).await.is_err());
    assert_eq!(mailbox.list().expect("list").len(), 1);
    for _ in 0..2 {
        let res = community::queue::sqs(&consumer, sample())
            .await
            .expect("ok");
        assert!(res.batch_item_failures.is_empty());
    }
    let mails = mailbox.list().expect("list");
    assert_eq!(mails.len(), 1, "sent once, whatever the conflicts after it");
    let stats = community::mail::stats(&app, &mails[0].mail_id)
        .await
        .expect("stats");
    assert_eq!(stats["sent"].as_i64(), Some(1), "counted once");
}

/// A table that throttles one call in three (reads and writes), as a new
/// DynamoDB table does at launch when the sign-ups exceed its throughput.
#[derive(Clone)]
struct Throttling {
    inner: community::store::embedded::EmbeddedTable,
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Throttling {
    fn throttled(&self) -> community::store::StoreResult<()> {
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n % 3 == 1 {
            Err(community::store::StoreError::Throttled)
        } else {
            Ok(())
        }
    }
}

#[async_trait::async_trait]
impl community::store::Table for Throttling {
    async fn get(
        &self,
        key: &community::store::Key,
        consistent: bool,
    ) -> community::store::StoreResult<Option<community::store::Item>> {
        self.throttled()?;
        self.inner.get(key, consistent).await
    }
    async fn get_many(
        &self,
        keys: &[community::store::Key],
        consistent: bool,
    ) -> community::store::StoreResult<Vec<community::store::Item>> {
        self.throttled()?;
        self.inner.get_many(keys, consistent).await
    }
    async fn query(
        &self,
        q: &community::store::Query,
    ) -> community::store::StoreResult<community::store::Page> {
        self.throttled()?;
        self.inner.query(q).await
    }
    async fn transact(
        &self,
        writes: Vec<community::store::Write>,
    ) -> community::store::StoreResult<()> {
        self.throttled()?;
        self.inner.transact(writes).await
    }
}

/// A throttled store does not send a batch back to the queue (where, at
/// launch, it would be received until it reached the dead-letter queue):
/// the consumer tries again in process, and each member gets one mail.
#[tokio::test]
async fn throttling_is_retried_in_process_and_mails_go_once() {
    let (app, dir) = embedded_app(|_| {});
    let mut events = Vec::new();
    for i in 0..10 {
        let who = member(&format!("throttled-{i}"));
        join(&app, &who).await;
        events.push(community::events::Event::new(
            community::events::Kind::MemberSignedUp,
            &format!("throttled-{i}"),
            None,
            serde_json::json!({}),
        ));
    }
    let throttling = community::App::new(
        Throttling {
            inner: app.table.clone(),
            calls: Default::default(),
        },
        (*app.settings()).clone(),
    );
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: throttling,
        mailer: mailbox.clone(),
    };
    let res = community::queue::sqs(&consumer, community::testing::sqs_batch(&events))
        .await
        .expect("ok");
    assert!(
        res.batch_item_failures.is_empty(),
        "given back: {:?}",
        res.batch_item_failures
    );
    let mails = mailbox.list().expect("list");
    assert_eq!(mails.len(), 10);
    let mut to: Vec<_> = mails.iter().map(|m| m.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 10, "one mail each");
    let stats = community::mail::stats(&app, &mails[0].mail_id)
        .await
        .expect("stats");
    assert_eq!(stats["sent"].as_i64(), Some(10), "counted once each");
}

#[tokio::test]
async fn a_suppressed_address_gets_no_more_mail_and_every_mail_is_tagged() {
    use community::events::{Event, Kind};
    let (app, dir) = embedded_app(|_| {});
    let (marie, paul) = (member("member-marie"), member("member-paul"));
    join(&app, &marie).await;
    join(&app, &paul).await;
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    // A transient bounce (a full mailbox) changes nothing: Paul is mailed.
    let feedback = community::mail::feedback::FeedbackConsumer { app: app.clone() };
    let transient = community::queue::Message {
        id: "t".into(),
        body: community::testing::ses_bounce(&paul, "Transient"),
    };
    assert!(community::queue::handle(&feedback, &[transient])
        .await
        .is_empty());
    // Marie's address bounced for good.
    community::testing::suppress(&app, &marie).await;
    let events = [
        Event::new(
            Kind::MemberSignedUp,
            "member-marie",
            None,
            serde_json::json!({}),
        ),
        Event::new(
            Kind::MemberSignedUp,
            "member-paul",
            None,
            serde_json::json!({}),
        ),
    ];
    let res = community::queue::sqs(&consumer, community::testing::sqs_batch(&events))
        .await
        .expect("ok");
    assert!(res.batch_item_failures.is_empty());
    let mails = mailbox.list().expect("list");
    assert_eq!(mails.len(), 1, "no mail to the suppressed address");
    assert_eq!(mails[0].to, "member-paul@example.fr");
    let tags: Vec<&str> = mails[0]
        .headers
        .iter()
        .filter(|(k, _)| k == "X-SES-MESSAGE-TAGS")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(tags, vec!["member=member-paul, mail=welcome"]);
}

/// A decision reaches the idea's voters who opted in: the decision's event
/// starts the fan-out (one `mail.page` event per voter bucket), and each
/// page reads its bucket of voters (`Query`), their profiles (`BatchGetItem`)
/// and mails them once, however often the pages are delivered.
#[tokio::test]
async fn a_decision_is_mailed_to_the_voters_once() {
    use community::events::{Event, Kind};
    let (app, dir) = embedded_app(|_| {});
    let (alice, bob, carl, dan) = (
        member("alice"),
        member("bob"),
        member("carl"),
        member("dan"),
    );
    for m in [&alice, &bob, &carl, &dan] {
        join(&app, m).await;
    }
    let idea = community::testing::post_idea(&app, &alice).await;
    let idea_id = community::domain::IdeaId::parse(&idea).expect("id");
    for m in [&bob, &carl, &dan] {
        community::votes::cast(&app, &caller(m), &idea_id)
            .await
            .expect("vote");
    }
    // dan does not want community mails.
    let dans = community::mail::unsubscribe_url(&app.settings(), caller(&dan).id.as_str());
    let token = dans.rsplit('/').next().expect("token");
    community::mail::unsubscribe(&app, token)
        .await
        .expect("unsubscribe");
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    let decided = Event::new(
        Kind::IdeaDecided,
        caller(&alice).id.as_str(),
        Some(&idea),
        serde_json::json!({"outcome": "accepted"}),
    );
    let pages: Vec<Event> = (0..community::votes::VOTER_BUCKETS)
        .map(|b| community::mail::page_event(&decided, b, 0, None))
        .collect();
    for _ in 0..2 {
        let res = community::queue::sqs(
            &consumer,
            community::testing::sqs_batch(std::slice::from_ref(&decided)),
        )
        .await
        .expect("decision");
        assert!(res.batch_item_failures.is_empty());
        // As SQS delivers them: at most 10 messages a batch.
        for chunk in pages.chunks(10) {
            let res = community::queue::sqs(&consumer, community::testing::sqs_batch(chunk))
                .await
                .expect("pages");
            assert!(res.batch_item_failures.is_empty());
        }
    }
    let mut to_voters: Vec<String> = mailbox
        .list()
        .expect("list")
        .into_iter()
        .filter(|m| m.mail_id.ends_with("-voters"))
        .map(|m| m.to)
        .collect();
    to_voters.sort();
    assert_eq!(to_voters, vec!["bob@example.fr", "carl@example.fr"]);
}
