//! The loyalty round trip through the whole local server: a member links a
//! card (pending: no redemption yet), the loyalty programme's stand-in
//! (`POST /local/loyalty/answers`) confirms it, the member earns points
//! through the pipeline (sign-up, ideas), redeems them, the stand-in
//! rejects the redemption, the in-process `loyalty_answers` queue applies
//! it — the points come back once, the member sees it and is mailed — and
//! an answer that cannot apply ends in the dead letters. Last, a new card
//! the loyalty programme rejects is unlinked and the member told once.

use axum::Router;
use community::testing::settings;
use community::App;
use serde_json::{json, Value};
use std::time::Duration;

mod support;
use support::send;

const SECRET: &str = "test-secret";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_redemption_gives_the_points_back_once_on_the_local_server() {
    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let mut s = settings();
    s.points.conversion.minimum_redemption = 100;
    let node = local::Local::new(App::new(table, s), dir.path()).expect("local");
    let r = node.router(local::auth::Verifier::new(SECRET));
    let zoe = local::auth::sign(SECRET, "zoe", Some("zoe@example.fr"), &[], 600).expect("token");
    let (st, _) = send(
        &r,
        "POST",
        "/members",
        Some(&zoe),
        Some(json!({
        "display_name": "Zoé", "email": "zoe@example.fr", "accept_terms_version": "2026-11",
        "email_opt_in": true, "loyalty_card": "9130012345678901"})),
    )
    .await;
    assert_eq!(st, 201);
    for i in 0..3 {
        let (st, _) = send(
            &r,
            "POST",
            "/ideas",
            Some(&zoe),
            Some(json!({"theme": "loyalty",
            "title": format!("Des points doublés le mardi {i}"),
            "body": "Doubler les points de fidélité un jour creux de la semaine."})),
        )
        .await;
        assert_eq!(st, 201);
    }
    assert!(node
        .pipeline
        .settle(Duration::from_secs(20))
        .await
        .expect("settle"));
    let (_, me) = send(&r, "GET", "/members/me", Some(&zoe), None).await;
    let before = me["points_balance"].as_i64().expect("balance");
    assert!(before >= 100, "{me}");
    // The card is pending: no euros go to it until the loyalty programme
    // confirms it.
    assert_eq!(me["loyalty_card"], "••••••••••••8901");
    assert_eq!(me["loyalty_card_status"], "pending");
    let (st, refused) = send(
        &r,
        "POST",
        "/members/me/redemptions",
        Some(&zoe),
        Some(json!({"points": 100})),
    )
    .await;
    assert_eq!(st, 409, "{refused}");
    assert_eq!(refused["errors"][0]["field"], "loyalty_card", "{refused}");
    let link = card_link(&r, "9130012345678901").await;
    let confirmed = json!({"card_link_id": link, "status": "confirmed"});
    let (st, _) = send(
        &r,
        "POST",
        "/local/loyalty/answers",
        None,
        Some(json!([confirmed, confirmed])),
    )
    .await;
    assert_eq!(st, 202);
    assert!(node
        .pipeline
        .settle(Duration::from_secs(20))
        .await
        .expect("settle"));
    let (_, me) = send(&r, "GET", "/members/me", Some(&zoe), None).await;
    assert_eq!(me["loyalty_card_status"], "confirmed", "{me}");
    let (st, red) = send(
        &r,
        "POST",
        "/members/me/redemptions",
        Some(&zoe),
        Some(json!({"points": 100})),
    )
    .await;
    assert_eq!(st, 202, "{red}");
    let id = red["id"].as_str().expect("id").to_owned();
    assert!(node
        .pipeline
        .settle(Duration::from_secs(20))
        .await
        .expect("settle"));
    // The outbound message reached the loyalty programme's stand-in.
    let (_, out) = send(&r, "GET", "/local/loyalty", None, None).await;
    assert!(out["items"]
        .as_array()
        .expect("items")
        .iter()
        .any(|m| m["data"]["redemption_id"] == json!(id)));

    // Rejected, sent twice; and an answer for no redemption.
    let answer =
        json!({"redemption_id": id, "status": "rejected", "reason": "Carte inconnue du programme"});
    let (st, sent) = send(
        &r,
        "POST",
        "/local/loyalty/answers",
        None,
        Some(json!([answer, answer,
        {"redemption_id": ulid::Ulid::new().to_string(), "status": "credited"}])),
    )
    .await;
    assert_eq!((st, sent["sent"].as_array().map(Vec::len)), (202, Some(3)));
    let (st, _) = send(
        &r,
        "POST",
        "/local/loyalty/answers",
        None,
        Some(json!("pas une réponse")),
    )
    .await;
    assert_eq!(st, 202);
    // The unknown one fails until it is dead-lettered (5 receives, backoff).
    node.pipeline
        .settle(Duration::from_secs(30))
        .await
        .expect("settle");
    let (_, me) = send(&r, "GET", "/members/me", Some(&zoe), None).await;
    assert_eq!(
        me["points_balance"].as_i64(),
        Some(before),
        "the 100 points came back once"
    );
    let (st, list) = send(&r, "GET", "/members/me/redemptions", Some(&zoe), None).await;
    assert_eq!(st, 200);
    assert_eq!(list["items"][0]["status"], "rejected");
    assert_eq!(list["items"][0]["reason"], "Carte inconnue du programme");
    let (_, dead) = send(&r, "GET", "/local/dead-letters", None, None).await;
    let dead: Vec<&Value> = dead["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| d["queue"] == "loyalty_answers")
        .collect();
    assert_eq!(dead.len(), 2, "{dead:?}");
    let (_, mails) = send(&r, "GET", "/local/mailbox", None, None).await;
    let refused: Vec<&Value> = mails["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("n'a pas abouti"))
        })
        .collect();
    assert_eq!(refused.len(), 1, "one mail for the rejection");

    // A new card, which the loyalty programme does not know: unlinked, and
    // the member is told once (the answer delivered twice).
    let (st, me) = send(
        &r,
        "PATCH",
        "/members/me",
        Some(&zoe),
        Some(json!({"loyalty_card": "9130012345670000"})),
    )
    .await;
    assert_eq!(st, 200, "{me}");
    assert_eq!(me["loyalty_card_status"], "pending");
    assert!(node
        .pipeline
        .settle(Duration::from_secs(20))
        .await
        .expect("settle"));
    let link = card_link(&r, "9130012345670000").await;
    let rejected =
        json!({"card_link_id": link, "status": "rejected", "reason": "Numéro de carte inconnu"});
    let (st, _) = send(
        &r,
        "POST",
        "/local/loyalty/answers",
        None,
        Some(json!([rejected, rejected])),
    )
    .await;
    assert_eq!(st, 202);
    assert!(node
        .pipeline
        .settle(Duration::from_secs(20))
        .await
        .expect("settle"));
    let (_, me) = send(&r, "GET", "/members/me", Some(&zoe), None).await;
    assert_eq!(me["loyalty_card"], Value::Null, "{me}");
    assert_eq!(me["loyalty_card_status"], Value::Null, "{me}");
    let (_, mails) = send(&r, "GET", "/local/mailbox", None, None).await;
    let unlinked: Vec<&Value> = mails["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.contains("carte de fidélité n'a pas pu"))
        })
        .collect();
    assert_eq!(unlinked.len(), 1, "one mail for the rejected card");
    let (_, dead) = send(&r, "GET", "/local/dead-letters", None, None).await;
    let dead = dead["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| d["queue"] == "loyalty_answers")
        .count();
    assert_eq!(dead, 2, "the card answers all applied");
}

/// The id of the link the loyalty programme was asked to confirm for
/// `card` (its `member.card_linked` message on the outbound queue).
async fn card_link(r: &Router, card: &str) -> String {
    let (_, out) = send(r, "GET", "/local/loyalty", None, None).await;
    let msg = out["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|m| m["kind"] == "member.card_linked" && m["data"]["loyalty_card"] == card)
        .cloned()
        .unwrap_or_else(|| panic!("no card_linked message for the card: {out}"));
    assert_eq!(msg["member_id"], "zoe");
    msg["data"]["card_link_id"]
        .as_str()
        .expect("card_link_id")
        .to_owned()
}
