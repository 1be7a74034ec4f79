//! SES feedback through the whole local server: a member is mailed, SES's
//! permanent bounce of that mail arrives (`POST /local/ses-events`, twice,
//! as SNS may deliver it) on the in-process `mail_feedback` queue, the
//! member's address is suppressed once — no further mail goes to it — and
//! marketing sees the figures in `GET /insights`; a body that is not an SES
//! event ends in the dead letters.

use axum::Router;
use community::events::{Event, Kind, Queue};
use community::testing::settings;
use community::App;
use serde_json::{json, Value};
use std::time::Duration;

mod support;
use support::send;

const SECRET: &str = "test-secret";

async fn mails_to(r: &Router, to: &str) -> usize {
    let (_, mails) = send(r, "GET", "/local/mailbox", None, None).await;
    mails["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| m["to"] == json!(to))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounce_suppresses_the_address_on_the_local_server() {
    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let node = local::Local::new(App::new(table, settings()), dir.path()).expect("local");
    let r = node.router(local::auth::Verifier::new(SECRET));
    let zoe = local::auth::sign(SECRET, "zoe", Some("zoe@example.fr"), &[], 600).expect("token");
    let mkt =
        local::auth::sign(SECRET, "mkt", None, &["marketing".to_string()], 600).expect("token");
    let (st, _) = send(
        &r,
        "POST",
        "/members",
        Some(&zoe),
        Some(json!({"display_name": "Zoé", "email": "zoe@example.fr",
                    "accept_terms_version": "2026-11", "email_opt_in": true})),
    )
    .await;
    assert_eq!(st, 201);
    assert!(node
        .pipeline
        .settle(Duration::from_secs(20))
        .await
        .expect("settle"));
    assert_eq!(mails_to(&r, "zoe@example.fr").await, 1, "the welcome mail");
    let (_, mailbox) = send(&r, "GET", "/local/mailbox", None, None).await;
    let tags = mailbox["items"][0]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h[0] == "X-SES-MESSAGE-TAGS")
        .cloned();
    assert_eq!(
        tags,
        Some(json!(["X-SES-MESSAGE-TAGS", "member=zoe, mail=welcome"]))
    );

    // SES: the mail bounced for good (delivered twice), and a body that is
    // not an SES event.
    let path = format!(
        "{}/../events/ses/bounce-permanent.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut bounce: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json");
    bounce["mail"]["tags"]["member"] = json!(["zoe"]);
    bounce["bounce"]["bouncedRecipients"][0]["emailAddress"] = json!("Zoe@Example.fr");
    let (st, sent) = send(
        &r,
        "POST",
        "/local/ses-events",
        None,
        Some(json!([bounce, bounce])),
    )
    .await;
    assert_eq!((st, sent["sent"].as_array().map(Vec::len)), (202, Some(2)));
    let (st, _) = send(
        &r,
        "POST",
        "/local/ses-events",
        None,
        Some(json!({"eventType": "Delivery", "mail": {"messageId": "m"}})),
    )
    .await;
    assert_eq!(st, 202);
    let (st, bad) = send(&r, "POST", "/local/ses-events", None, None).await;
    assert_eq!(st, 400, "{bad}");
    // The poison one fails until it is dead-lettered (5 receives, backoff).
    node.pipeline
        .settle(Duration::from_secs(30))
        .await
        .expect("settle");
    let (_, dead) = send(&r, "GET", "/local/dead-letters", None, None).await;
    let dead = dead["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| d["queue"] == "mail_feedback")
        .count();
    assert_eq!(dead, 1);
    let (st, insights) = send(&r, "GET", "/insights", Some(&mkt), None).await;
    assert_eq!(st, 200, "{insights}");
    assert_eq!(
        insights["mail_feedback"],
        json!({"bounces": 1, "complaints": 0, "suppressed": 1})
    );

    // Another mail for Zoé (the same kind of event, a new one): not sent.
    let again = Event::new(Kind::MemberSignedUp, "zoe", None, json!({}));
    node.pipeline
        .send(Queue::Emails, &serde_json::to_string(&again).expect("json"))
        .await
        .expect("sent");
    assert!(node
        .pipeline
        .settle(Duration::from_secs(20))
        .await
        .expect("settle"));
    assert_eq!(
        mails_to(&r, "zoe@example.fr").await,
        1,
        "no mail to a suppressed address"
    );
}
