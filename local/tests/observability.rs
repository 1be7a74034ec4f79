//! Observability: no personal data in logs at any level, and business
//! metrics recorded once per committed effect.

use community::metrics::{SIGN_UPS, VOTES_CAST};
use community::testing::{self, call, embedded_app, member, As};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::layer::SubscriberExt;

/// A log sink shared by the formatting layers and the test.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Sink {
    type Writer = Sink;
    fn make_writer(&'a self) -> Sink {
        self.clone()
    }
}

const EMAIL: &str = "zoe.quintavalle@exemple-unique.fr";
const CARD: &str = "9130012345678901";
const VOTER_CARD: &str = "9130012345678902";
const NAME: &str = "Zoé Quintavalle";
const VOTER_EMAIL: &str = "bertrand.oyelaran@exemple-unique.fr";
const VOTER_NAME: &str = "Bertrand Oyelaran";

fn sign_up(name: &str, email: &str, card: Option<&str>) -> serde_json::Value {
    let mut b = json!({"display_name": name, "email": email,
                       "accept_terms_version": "2026-11", "email_opt_in": true});
    if let Some(c) = card {
        b["loyalty_card"] = json!(c);
    }
    b
}

/// Drives sign-up, idea, vote, the points/thresholds/emails consumers, a
/// committee decision, a contest entry and a redemption with every log at
/// TRACE captured (JSON as on Lambda, and text), then looks for the
/// member's email, card number and name in what was logged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_email_card_number_or_name_in_logs_at_trace() {
    let sink = Sink::default();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("trace"))
        .with(community::observe::json_layer(sink.clone()))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(sink.clone()),
        );
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let (app, dir) = embedded_app(|s| {
        s.vote_threshold = 1;
        s.invite_only = false;
    });
    testing::apply_campaigns(&app, vec![testing::contest("c1", -60, 3600)], vec![]).await;
    let node = local::Local::new(app.clone(), dir.path()).expect("local");
    let signup = signup::router(app.clone());
    let ideas = ideas::router(app.clone());
    let votes = votes::router(app.clone());
    let committee = committee::router(app.clone());
    let contests = contests::router(app.clone());

    let author = As {
        sub: "author".into(),
        email: EMAIL.into(),
        groups: vec![],
    };
    let voter = As {
        sub: "voter".into(),
        email: VOTER_EMAIL.into(),
        groups: vec![],
    };
    let r = call(
        &signup,
        "POST",
        "/members",
        Some(&author),
        Some(sign_up(NAME, EMAIL, Some(CARD))),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        &signup,
        "POST",
        "/members",
        Some(&voter),
        Some(sign_up(VOTER_NAME, VOTER_EMAIL, None)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A refused sign-up and a bad card are logged paths too.
    let r = call(
        &signup,
        "POST",
        "/members",
        Some(&author),
        Some(sign_up(NAME, EMAIL, Some(CARD))),
    )
    .await;
    assert_eq!(r.status, 409);
    let r = call(
        &signup,
        "PATCH",
        "/members/me",
        Some(&author),
        Some(json!({"loyalty_card": "9130-0123"})),
    )
    .await;
    assert_eq!(r.status, 422);
    let r = call(
        &ideas,
        "POST",
        "/ideas",
        Some(&author),
        Some(testing::idea_body()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let idea = r.body["id"].as_str().expect("id").to_owned();
    let r = call(
        &votes,
        "PUT",
        &format!("/ideas/{idea}/vote"),
        Some(&voter),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(
        &contests,
        "POST",
        "/contests/c1/entries",
        Some(&author),
        Some(json!({"answers": {"frequence": "souvent"}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The voter links a card too; the loyalty programme confirms the
    // author's card and rejects the voter's (who is mailed).
    let r = call(
        &signup,
        "PATCH",
        "/members/me",
        Some(&voter),
        Some(json!({"loyalty_card": VOTER_CARD})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    node.pipeline.drain().await.expect("drain");
    for (who, status) in [("author", "confirmed"), ("voter", "rejected")] {
        let id = community::domain::MemberId::parse(who).expect("id");
        let link = community::members::get(&app, &id)
            .await
            .expect("member")
            .loyalty_card_link
            .expect("link");
        node.pipeline
            .send(
                community::events::Queue::LoyaltyAnswers,
                &json!({"card_link_id": link, "status": status, "reason": "Carte inconnue"})
                    .to_string(),
            )
            .await
            .expect("answer");
    }
    node.pipeline.drain().await.expect("drain");
    let judge = member("judge").in_groups(&["committee"]);
    let r = call(
        &committee,
        "POST",
        &format!("/ideas/{idea}/decision"),
        Some(&judge),
        Some(json!({"outcome": "accepted", "reason": "Faisable dès le printemps prochain."})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    node.pipeline.drain().await.expect("drain");
    let r = call(
        &signup,
        "POST",
        "/members/me/redemptions",
        Some(&author),
        Some(json!({"points": 500})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    node.pipeline.drain().await.expect("drain");

    // The flow did what it should (so its code paths ran).
    let mails = node.mailbox.list().expect("mailbox");
    assert!(mails.iter().any(|m| m.to == EMAIL), "the author got mail");
    assert!(
        mails.iter().any(|m| m.to == VOTER_EMAIL),
        "the voter got mail"
    );
    let loyalty = community::store::Table::query(
        &app.table,
        &community::store::Query::new(community::store::Index::Primary, "LLOYALTY").limit(10),
    )
    .await
    .expect("loyalty");
    assert_eq!(
        loyalty.items.len(),
        3,
        "the two cards to confirm and the redemption reached the loyalty queue"
    );
    assert!(
        mails.iter().any(|m| m.to == VOTER_EMAIL
            && m.subject.contains("carte de fidélité")
            && m.text.contains("8902")),
        "the voter was told their card was not recognised"
    );

    let text = String::from_utf8(sink.0.lock().expect("sink").clone()).expect("utf-8");
    // Capture works: JSON lines with the spans' fields, and text lines.
    assert!(text.lines().count() > 50, "logs were captured:\n{text}");
    let json_lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        json_lines.iter().any(|l| l["request_id"].is_string()
            && l["function"] == "local"
            && l["route"] == "/ideas/{id}/vote"),
        "request spans carry request_id, function and route"
    );
    assert!(
        json_lines.iter().any(|l| l["consumer"] == "points"
            && l["event_id"].is_string()
            && l["kind"] == "idea.posted"
            && l["request_id"].is_string()),
        "message spans sit in batch spans"
    );
    for (what, needle) in [
        ("email", EMAIL),
        ("email", VOTER_EMAIL),
        ("email's local part", "zoe.quintavalle"),
        ("card number", CARD),
        ("card number", VOTER_CARD),
        ("display name", NAME),
        ("display name", "Quintavalle"),
        ("display name", VOTER_NAME),
        ("display name", "Oyelaran"),
    ] {
        assert!(
            !text.to_lowercase().contains(&needle.to_lowercase()),
            "the {what} {needle:?} is in the logs:\n{}",
            text.lines()
                .filter(|l| l.to_lowercase().contains(&needle.to_lowercase()))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // Nor the card's digits spread out (grouped, escaped): the digits of
    // each line, concatenated, never hold the number.
    for l in text.lines() {
        let digits: String = l.chars().filter(char::is_ascii_digit).collect();
        assert!(!digits.contains(CARD), "the card's digits are in: {l}");
        assert!(
            !digits.contains(VOTER_CARD),
            "the card's digits are in: {l}"
        );
    }
}

/// What was added to `name`'s counters since the last snapshot (the
/// debugging recorder's snapshot takes the counts), by labels.
fn counter(s: &Snapshotter, name: &str) -> Vec<(Vec<(String, String)>, u64)> {
    let mut out: Vec<_> = s
        .snapshot()
        .into_vec()
        .into_iter()
        .filter_map(|(k, _, _, v)| {
            let (_, key) = k.into_parts();
            match v {
                DebugValue::Counter(n) if key.name() == name && n > 0 => Some((
                    key.labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect(),
                    n,
                )),
                _ => None,
            }
        })
        .collect();
    out.sort();
    out
}

fn cohort(c: &str) -> Vec<(String, String)> {
    vec![("cohort".to_owned(), c.to_owned())]
}

/// One vote records one `VotesCast`; the repeated vote and the withdrawal
/// record none. A sign-up records its cohort; a refused one records nothing.
#[tokio::test]
async fn metrics_count_committed_effects_only() {
    let recorder = DebuggingRecorder::new();
    let snap = recorder.snapshotter();
    // Current-thread runtime: every await of this test runs on this thread.
    let _guard = metrics::set_default_local_recorder(&recorder);
    let (app, _d) = embedded_app(|s| s.vote_threshold = 100);

    let codes = community::members::create_invites(&app.table, "staff", 1, 5)
        .await
        .expect("invites");
    let mut body = testing::sign_up_body("alice");
    body["invite_code"] = json!(codes[0]);
    let req: community::members::SignUp = serde_json::from_value(body).expect("body");
    let alice = testing::caller(&member("alice"));
    community::members::sign_up(&app, &alice, req, None)
        .await
        .expect("sign up");
    assert_eq!(counter(&snap, SIGN_UPS.name), vec![(cohort("staff"), 1)]);
    testing::join(&app, &member("bob")).await;
    assert_eq!(
        counter(&snap, SIGN_UPS.name),
        vec![(cohort("public"), 1)],
        "without an invite: the public cohort"
    );
    let again: community::members::SignUp =
        serde_json::from_value(testing::sign_up_body("bob")).expect("body");
    assert!(
        community::members::sign_up(&app, &testing::caller(&member("bob")), again, None)
            .await
            .is_err()
    );
    assert_eq!(
        counter(&snap, SIGN_UPS.name),
        vec![],
        "a refused sign-up records nothing"
    );

    let idea = testing::post_idea(&app, &member("alice")).await;
    let id = community::domain::IdeaId::parse(&idea).expect("id");
    let bob = testing::caller(&member("bob"));
    community::votes::cast(&app, &bob, &id).await.expect("vote");
    assert_eq!(counter(&snap, VOTES_CAST.name), vec![(vec![], 1)]);
    community::votes::cast(&app, &bob, &id)
        .await
        .expect("repeat");
    assert_eq!(
        counter(&snap, VOTES_CAST.name),
        vec![],
        "a repeated vote records nothing"
    );
    community::votes::withdraw(&app, &bob, &id)
        .await
        .expect("withdraw");
    assert_eq!(counter(&snap, VOTES_CAST.name), vec![]);
}
