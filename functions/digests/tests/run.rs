//! The digests function through its entry: one mail per opted-in author per
//! run, never resent by a rerun.

use community::comments::{self, NewComment};
use community::domain::IdeaId;
use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::members::Patch;
use community::queue::Consumer;
use community::store::{Index, Query, Table};
use community::testing::{caller, embedded_app, join, member, post_idea, As};
use community::App;
use serde_json::json;

fn sample() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/schedule/digests.json"
    ))
    .expect("sample");
    serde_json::from_str(&text).expect("json")
}

async fn comment<T: Table>(app: &App<T>, who: &As, idea: &str, body: &str) -> String {
    let req = NewComment {
        body: Some(body.into()),
    };
    comments::post(
        app,
        &caller(who),
        &IdeaId::parse(idea).expect("id"),
        req,
        None,
    )
    .await
    .expect("comment")
    .id
}

/// Drives the emails consumer over the outbox (each event twice: redelivery).
async fn deliver<T: Table + Clone>(app: &App<T>, consumer: &EmailsConsumer<T, DirMailbox>) {
    for b in 0..OUTBOX_BUCKETS {
        let page = app
            .table
            .query(&Query::new(Index::Primary, outbox_pk(b)).limit(1000))
            .await
            .expect("outbox");
        for e in page.items.iter().filter_map(Event::from_item) {
            if e.kind == Kind::CommentPosted {
                consumer.apply(&e).await.expect("apply");
                consumer.apply(&e).await.expect("redelivery");
            }
        }
    }
}

#[tokio::test]
async fn one_digest_per_opted_in_author_per_run_and_no_resend() {
    let (app, dir) = embedded_app(|s| s.public_url = "https://communaute.example.fr".into());
    let (alice, bob, carl, dora) = (
        member("alice"),
        member("bob"),
        member("carl"),
        member("dora"),
    );
    for m in [&alice, &bob, &carl, &dora] {
        join(&app, m).await;
    }
    // Alice opted in; Bob did not.
    let patch = Patch {
        comment_digest: Some(true),
        ..Default::default()
    };
    let me = community::members::update(&app, &caller(&alice), patch)
        .await
        .expect("patch");
    assert!(me.comment_digest);
    let a1 = post_idea(&app, &alice).await;
    let a2 = post_idea(&app, &alice).await;
    let b1 = post_idea(&app, &bob).await;
    comment(&app, &carl, &a1, "Super idée, je signe tout de suite !").await;
    comment(&app, &dora, &a1, "Et en drive aussi ?").await;
    let spam = comment(&app, &dora, &a2, "Achetez ma crème miracle").await;
    comment(&app, &carl, &a2, "Très bonne idée pour les familles").await;
    comment(&app, &alice, &a1, "Merci à vous !").await; // her own: no digest entry
    comment(&app, &carl, &b1, "Bob n'a rien demandé").await;
    // A comment hidden before the run is left out.
    community::moderation::decide(
        &app,
        &caller(&member("mo").in_groups(&["moderator"])),
        "comment",
        &spam,
        community::moderation::DecisionRequest {
            action: Some("hide".into()),
            reason: Some("Publicité".into()),
        },
    )
    .await
    .expect("hide");

    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    deliver(&app, &consumer).await;
    let before = mailbox.list().expect("mails").len();

    let report = digests::handle(&app, &mailbox, sample())
        .await
        .expect("run");
    assert_eq!(report["mails"], 1, "{report}");
    assert_eq!(report["comments"], 3, "{report}");
    let mails = mailbox.list().expect("mails");
    assert_eq!(mails.len(), before + 1);
    let digest = mails
        .iter()
        .find(|m| m.mail_id.starts_with("comment-digest-"))
        .expect("digest");
    assert_eq!(digest.to, "alice@example.fr");
    assert_eq!(digest.subject, "3 nouveaux commentaires sur vos idées");
    assert!(digest.text.contains("Super idée, je signe tout de suite !"));
    assert!(digest.text.contains("2 nouveaux commentaires"));
    assert!(digest.text.contains("1 nouveau commentaire"));
    assert!(
        !digest.text.contains("crème miracle"),
        "hidden comments are left out"
    );
    assert!(
        !digest.text.contains("Merci à vous"),
        "her own comment is not news to her"
    );
    assert!(
        digest.text.contains("https://communaute.example.fr/r/"),
        "tracked links"
    );
    assert!(digest.headers.iter().any(|(k, _)| k == "List-Unsubscribe"));
    // Tagged for SES's bounce and complaint events (mail::feedback).
    assert!(digest
        .headers
        .iter()
        .any(|(k, v)| k == "X-SES-MESSAGE-TAGS"
            && v.starts_with("member=alice, mail=comment-digest-")));

    // A rerun (after a crash, or the next hour with nothing new) sends nothing.
    let again = digests::handle(&app, &mailbox, sample())
        .await
        .expect("rerun");
    assert_eq!(again["mails"], 0, "{again}");
    assert_eq!(mailbox.list().expect("mails").len(), before + 1);

    // New comments make a new digest; opting out drops them unsent.
    comment(&app, &bob, &a1, "Je découvre, bravo").await;
    deliver(&app, &consumer).await;
    let next = digests::handle(&app, &mailbox, sample())
        .await
        .expect("run");
    assert_eq!(
        (next["mails"].clone(), next["comments"].clone()),
        (json!(1), json!(1))
    );
    comment(&app, &dora, &a1, "Encore un").await;
    deliver(&app, &consumer).await;
    let patch = Patch {
        comment_digest: Some(false),
        ..Default::default()
    };
    community::members::update(&app, &caller(&alice), patch)
        .await
        .expect("patch");
    let off = digests::handle(&app, &mailbox, sample())
        .await
        .expect("run");
    assert_eq!(
        (off["mails"].clone(), off["dropped"].clone()),
        (json!(0), json!(1))
    );
}

#[tokio::test]
async fn an_author_whose_address_is_suppressed_gets_no_digest() {
    let (app, dir) = embedded_app(|_| {});
    let (alice, carl) = (member("alice"), member("carl"));
    for m in [&alice, &carl] {
        join(&app, m).await;
    }
    let patch = Patch {
        comment_digest: Some(true),
        ..Default::default()
    };
    community::members::update(&app, &caller(&alice), patch)
        .await
        .expect("patch");
    let idea = post_idea(&app, &alice).await;
    comment(&app, &carl, &idea, "Super idée").await;
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    deliver(&app, &consumer).await;
    // SES then reports her address as bouncing for good.
    community::testing::suppress(&app, &alice).await;
    let report = digests::handle(&app, &mailbox, sample())
        .await
        .expect("run");
    assert_eq!(
        (report["mails"].clone(), report["dropped"].clone()),
        (json!(0), json!(1)),
        "{report}"
    );
    assert!(mailbox.list().expect("mails").is_empty());
}
