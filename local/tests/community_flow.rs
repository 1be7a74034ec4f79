//! Comments, digests and moderation through the whole local server: every
//! function's routes, the HS256 stand-in for the authorizer, the in-process
//! pipeline and `POST /local/digests/run`.

use community::testing::settings;
use community::App;
use serde_json::{json, Value};

mod support;
use support::send;

const SECRET: &str = "test-secret";

fn token(sub: &str, groups: &[&str]) -> String {
    let g: Vec<String> = groups.iter().map(|s| s.to_string()).collect();
    local::auth::sign(SECRET, sub, Some(&format!("{sub}@example.fr")), &g, 600).expect("token")
}

fn sign_up(name: &str) -> Value {
    json!({"display_name": name, "email": format!("{name}@example.fr"), "accept_terms_version": "2026-11", "email_opt_in": true})
}

#[tokio::test]
async fn comment_digest_and_moderation_end_to_end_on_the_local_server() {
    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let mut s = settings();
    s.moderation.auto_hide_reports = 2;
    let node = local::Local::new(App::new(table, s), dir.path()).expect("local");
    let r = node.router(local::auth::Verifier::new(SECRET));
    let (alice, bob, carl, mo) = (
        token("alice", &[]),
        token("bob", &[]),
        token("carl", &["brand"]),
        token("mo", &["moderator"]),
    );
    for (name, t) in [("alice", &alice), ("bob", &bob), ("carl", &carl)] {
        assert_eq!(
            send(&r, "POST", "/members", Some(t), Some(sign_up(name)))
                .await
                .0,
            201
        );
    }
    let (st, me) = send(
        &r,
        "PATCH",
        "/members/me",
        Some(&alice),
        Some(json!({"comment_digest": true})),
    )
    .await;
    assert_eq!((st, me["comment_digest"].clone()), (200, json!(true)));
    let (_, idea) = send(
        &r,
        "POST",
        "/ideas",
        Some(&alice),
        Some(json!({"theme": "environment", "title": "Des paniers anti-gaspi", "body": "Des paniers de produits à date courte, à prix réduit."})),
    )
    .await;
    let id = idea["id"].as_str().expect("id").to_owned();
    let (st, c) = send(
        &r,
        "POST",
        &format!("/ideas/{id}/comments"),
        Some(&carl),
        Some(json!({"body": "Notre marque peut fournir les paniers !"})),
    )
    .await;
    assert_eq!((st, c["author"]["badge"].clone()), (201, json!("brand")));
    send(
        &r,
        "POST",
        &format!("/ideas/{id}/comments"),
        Some(&bob),
        Some(json!({"body": "Oui, et au drive aussi."})),
    )
    .await;
    node.pipeline.drain().await.expect("drain");

    let (st, run) = send(&r, "POST", "/local/digests/run", None, None).await;
    assert_eq!(
        (st, run["mails"].clone(), run["comments"].clone()),
        (200, json!(1), json!(2))
    );
    let (_, again) = send(&r, "POST", "/local/digests/run", None, None).await;
    assert_eq!(again["mails"], 0);
    let (_, mailbox) = send(&r, "GET", "/local/mailbox", None, None).await;
    let digests: Vec<&Value> = mailbox["items"]
        .as_array()
        .expect("mails")
        .iter()
        .filter(|m| {
            m["subject"] == "2 nouveaux commentaires sur votre idée « Des paniers anti-gaspi »"
        })
        .collect();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0]["to"], "alice@example.fr");
    // Both commenters earned their points for the comment.
    let (_, pts) = send(&r, "GET", "/members/me/points", Some(&bob), None).await;
    assert!(pts["items"]
        .as_array()
        .expect("ledger")
        .iter()
        .any(|e| e["reason"] == "comment_posted"));

    // Two reports hide the idea; the author is mailed; a moderator restores it.
    for t in [&bob, &carl] {
        let (st, _) = send(
            &r,
            "POST",
            "/reports",
            Some(t),
            Some(json!({"target_type": "idea", "target_id": id, "reason": "Hors sujet"})),
        )
        .await;
        assert_eq!(st, 201);
    }
    assert_eq!(
        send(&r, "GET", &format!("/ideas/{id}"), None, None).await.0,
        404
    );
    let (st, own) = send(&r, "GET", &format!("/ideas/{id}"), Some(&alice), None).await;
    assert_eq!((st, own["moderation"].clone()), (200, json!("hidden")));
    let (_, q) = send(&r, "GET", "/moderation/queue", Some(&mo), None).await;
    assert_eq!(q["items"][0]["report_count"], 2);
    let (st, _) = send(
        &r,
        "POST",
        &format!("/moderation/idea/{id}"),
        Some(&mo),
        Some(json!({"action": "restore", "reason": "Le sujet est bien le magasin"})),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(
        send(&r, "GET", &format!("/ideas/{id}"), None, None).await.0,
        200
    );
    node.pipeline.drain().await.expect("drain");
    let (_, mailbox) = send(&r, "GET", "/local/mailbox", None, None).await;
    let to_alice: Vec<String> = mailbox["items"]
        .as_array()
        .expect("mails")
        .iter()
        .filter(|m| m["to"] == "alice@example.fr")
        .map(|m| m["subject"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        to_alice.contains(&"Votre contribution est masquée en attendant un modérateur".to_string()),
        "{to_alice:?}"
    );
    assert!(
        to_alice.contains(&"Votre contribution est de nouveau visible".to_string()),
        "{to_alice:?}"
    );
}
