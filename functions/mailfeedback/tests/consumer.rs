//! The `mail_feedback` consumer through its Lambda path (an SQS event of
//! SES events in, a partial batch response out), on both adapters (the
//! embedded store, and DynamoDB on moto): a permanent bounce and a complaint
//! suppress the member's address, a transient bounce does not, the same
//! notification delivered again (and at the same time) is counted once, a
//! poison body fails and changes nothing, an untagged event is counted
//! without suppressing anything, and feedback about an address the member no
//! longer has suppresses nothing.

use aws_lambda_events::event::sqs::SqsEvent;
use community::mail::feedback::{parse, tags_header, FeedbackConsumer, TAGS_HEADER};
use community::store::Table;
use community::testing::{caller, join, member};
use community::App;
use serde_json::{json, Value};

fn sample() -> SqsEvent {
    community::testing::sqs_sample("mail_feedback.json")
}

const POISON: &str = "3c9d7e1a-0001-4f2b-8a6e-mf000004";

fn ses_sample(name: &str) -> Value {
    let path = format!("{}/../../events/ses/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("json")
}

fn batch(bodies: &[String]) -> SqsEvent {
    community::testing::sqs_bodies(bodies)
}

/// The messages that failed (every one when the whole invocation fails,
/// as it does when no message of the batch could be applied).
async fn deliver<T: Table + Clone>(c: &FeedbackConsumer<T>, e: SqsEvent) -> Vec<String> {
    community::testing::deliver(c, e).await
}

async fn suppressed<T: Table>(app: &App<T>, who: &str) -> Option<String> {
    community::members::get(app, &caller(&member(who)).id)
        .await
        .expect("member")
        .email_suppressed
}

async fn figures<T: Table>(app: &App<T>) -> Value {
    let marketing = caller(&member("mkt").in_groups(&["marketing"]));
    community::insights::read(app, &marketing)
        .await
        .expect("insights")["mail_feedback"]
        .clone()
}

async fn scenario<T: Table + Clone + 'static>(app: App<T>) {
    for who in ["member-marie", "member-paul", "member-luc"] {
        join(&app, &member(who)).await;
    }
    let consumer = FeedbackConsumer { app: app.clone() };

    // The sample batch (a permanent bounce, a transient one, a complaint and
    // a poison record), delivered twice at the same time, then again.
    let (a, b) = tokio::join!(deliver(&consumer, sample()), deliver(&consumer, sample()));
    assert_eq!(a, vec![POISON.to_string()]);
    assert_eq!(b, vec![POISON.to_string()]);
    assert_eq!(deliver(&consumer, sample()).await, vec![POISON.to_string()]);

    assert_eq!(
        suppressed(&app, "member-marie").await.as_deref(),
        Some("bounce")
    );
    assert_eq!(
        suppressed(&app, "member-paul").await,
        None,
        "a transient bounce suppresses nothing"
    );
    assert_eq!(
        suppressed(&app, "member-luc").await.as_deref(),
        Some("complaint")
    );
    assert_eq!(
        figures(&app).await,
        json!({"bounces": 2, "complaints": 1, "suppressed": 2}),
        "counted once however often delivered; the poison record changed nothing"
    );
    // The suppressed member is left out of community mails' recipients.
    let ids: Vec<String> = ["member-marie", "member-paul", "member-luc"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mailable: Vec<String> = community::members::opted_in(&app, &ids)
        .await
        .expect("opted in")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(mailable, vec!["member-paul".to_string()]);

    // The same address bouncing again (a new notification): counted, the
    // suppression stays as it was (counted once).
    let mut again = ses_sample("bounce-permanent.json");
    again["bounce"]["feedbackId"] = json!("another-feedback-id");
    assert!(deliver(&consumer, batch(&[again.to_string()]))
        .await
        .is_empty());
    assert_eq!(
        figures(&app).await,
        json!({"bounces": 3, "complaints": 1, "suppressed": 2})
    );

    // Untagged (Cognito's mail, or one sent before the tags): counted,
    // nothing suppressed, not a failure.
    let mut untagged = ses_sample("bounce-permanent.json");
    untagged["mail"]["messageId"] = json!("untagged-message-1");
    untagged["mail"]["tags"] = json!({"ses:configuration-set": ["community-mail"]});
    untagged["bounce"]["bouncedRecipients"][0]["emailAddress"] = json!("member-paul@example.fr");
    assert!(deliver(&consumer, batch(&[untagged.to_string()]))
        .await
        .is_empty());
    assert_eq!(suppressed(&app, "member-paul").await, None);

    // A permanent bounce naming paul, about an address that is not his
    // (any more): counted, nothing suppressed.
    let mut stale = ses_sample("bounce-permanent.json");
    stale["mail"]["messageId"] = json!("stale-address-1");
    stale["mail"]["tags"]["member"] = json!(["member-paul"]);
    stale["bounce"]["bouncedRecipients"][0]["emailAddress"] = json!("old-paul@example.fr");
    // A complaint naming a member who does not exist: counted only.
    let mut ghost = ses_sample("complaint.json");
    ghost["mail"]["messageId"] = json!("ghost-1");
    ghost["mail"]["tags"]["member"] = json!(["member-nobody"]);
    assert!(
        deliver(&consumer, batch(&[stale.to_string(), ghost.to_string()]))
            .await
            .is_empty()
    );
    assert_eq!(suppressed(&app, "member-paul").await, None);
    assert_eq!(
        figures(&app).await,
        json!({"bounces": 5, "complaints": 2, "suppressed": 2})
    );

    // Poison bodies fail, every time, and change nothing.
    let poison = vec![
        "not json".to_string(),
        json!({"eventType": "Bounce", "mail": {"messageId": "x"}}).to_string(),
        json!({"eventType": "Send", "mail": {"messageId": "x"}}).to_string(),
        json!({"eventType": "Complaint", "complaint": {}, "mail": {"messageId": ""}}).to_string(),
        json!({"kind": "member.signed_up", "event_id": "e1"}).to_string(),
    ];
    for _ in 0..2 {
        let failed = deliver(&consumer, batch(&poison)).await;
        assert_eq!(failed.len(), poison.len(), "{failed:?}");
    }
    assert_eq!(
        figures(&app).await,
        json!({"bounces": 5, "complaints": 2, "suppressed": 2})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_on_the_embedded_store() {
    let (app, _d) = community::testing::embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_on_dynamodb() {
    let Some(table) = community::testing::moto_table("mailfeedback").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_deliveries_of_one_bounce_at_once_count_once() {
    let (app, _d) = community::testing::embedded_app(|_| {});
    join(&app, &member("member-marie")).await;
    let consumer = FeedbackConsumer { app: app.clone() };
    let body = ses_sample("bounce-permanent.json").to_string();
    // The same notification twice in one batch, and in eight batches at once.
    let runs = (0..8).map(|_| deliver(&consumer, batch(&[body.clone(), body.clone()])));
    for failed in futures::future::join_all(runs).await {
        assert!(failed.is_empty(), "{failed:?}");
    }
    assert_eq!(
        figures(&app).await,
        json!({"bounces": 1, "complaints": 0, "suppressed": 1})
    );
}

#[test]
fn the_tags_name_the_member_whatever_their_id() {
    for id in [
        "member-marie",
        "4f1c2b7e-0d3a-4e59-9a0b-1c2d3e4f5a6b",
        "dev|alice@example.fr",
    ] {
        let (name, value) = tags_header(id, "01JD0000000000000000000000-voters");
        assert_eq!(name, TAGS_HEADER);
        // What SES makes of the header: `name=value, name=value`.
        let tags: serde_json::Map<String, Value> = value
            .split(", ")
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("name=value");
                assert!(
                    v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
                    "SES takes only A-Z a-z 0-9 _ - in a tag: {v}"
                );
                (k.to_owned(), json!([v]))
            })
            .collect();
        let mut event = ses_sample("complaint.json");
        event["mail"]["tags"] = Value::Object(tags);
        let e = parse(&event.to_string()).expect("parsed");
        assert_eq!(e.member_id, id);
        assert_eq!(
            e.data["mail_id"],
            json!("01JD0000000000000000000000-voters")
        );
    }
}

#[test]
fn sns_envelopes_are_read_too_and_the_event_id_is_the_notifications() {
    let raw = ses_sample("bounce-permanent.json");
    let a = parse(&raw.to_string()).expect("raw");
    let wrapped = json!({"Type": "Notification", "MessageId": "sns-1", "Message": raw.to_string()});
    let b = parse(&wrapped.to_string()).expect("enveloped");
    assert_eq!(a.event_id, b.event_id);
    assert_eq!(a.data, b.data);
    assert_eq!(a.data["suppresses"], json!(true));
    assert_eq!(a.data["recipients"], json!(["member-marie@example.fr"]));
    let t = parse(&ses_sample("bounce-transient.json").to_string()).expect("transient");
    assert_eq!(t.data["suppresses"], json!(false));
    assert_ne!(a.event_id, t.event_id);
}
