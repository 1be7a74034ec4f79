//! The signup function, through its Lambda entry (events parsed by lambda_http).

use community::testing::{call, call_event, embedded_app, event, member, sign_up_body};
use serde_json::json;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/http");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{EVENTS}/{name}")).expect("fixture")
}

#[tokio::test]
async fn sample_events_sign_up_read_and_update_a_member() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let me = call_event(&r, &fixture("get-member.json")).await;
    assert_eq!(me.status, 404, "not a member yet: {}", me.body);

    let created = call_event(&r, &fixture("post-member.json")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["id"], "member-marie");
    assert_eq!(created.body["cohort"], "public");
    assert_eq!(created.body["email_opt_in"], true);
    assert_eq!(created.body["terms_version"], "2026-11");
    assert_eq!(created.body["points_balance"], 0);
    assert_eq!(created.body["ambassador"], false);
    // The card is stored but only its last four digits are ever shown.
    assert_eq!(created.body["loyalty_card"], "••••••••••••8901");
    assert!(!created.body.to_string().contains("9130012345678901"));
    // Until the loyalty programme confirms it (cards.rs).
    assert_eq!(created.body["loyalty_card_status"], "pending");

    let again = call_event(&r, &fixture("post-member.json")).await;
    assert_eq!(again.status, 409);

    let me = call_event(&r, &fixture("get-member.json")).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.body["display_name"], "Marie L.");
    assert!(!me.body.to_string().contains("9130012345678901"));

    let patched = call_event(&r, &fixture("patch-member.json")).await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["display_name"], "Marie Lefèvre");
    assert_eq!(patched.body["email_opt_in"], false);
}

#[tokio::test]
async fn every_route_needs_a_token() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    for (m, p) in [
        ("POST", "/members"),
        ("GET", "/members/me"),
        ("PATCH", "/members/me"),
    ] {
        let res = call(&r, m, p, None, Some(sign_up_body("Marie"))).await;
        assert_eq!(res.status, 401, "{m} {p}");
        assert_eq!(res.header("www-authenticate"), Some("Bearer"));
    }
}

#[tokio::test]
async fn each_rule_names_its_field() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let marie = member("marie");
    let cases = [
        ("display_name", json!("M")),
        ("display_name", json!("M".repeat(41))),
        ("display_name", json!("   ")),
        ("email", json!("marie")),
        ("email", json!("marie@localhost")),
        ("email", json!("Marie <marie@example.fr>")),
        ("accept_terms_version", json!("2020-01")),
        ("loyalty_card", json!("9130-0123-4567")),
        ("loyalty_card", json!("12ab5678")),
    ];
    for (field, value) in cases {
        let mut body = sign_up_body("Marie");
        body[field] = value.clone();
        if field == "loyalty_card" {
            body["loyalty_card"] = value.clone();
        }
        let res = call(&r, "POST", "/members", Some(&marie), Some(body)).await;
        assert_eq!(res.status, 422, "{field}={value}: {}", res.body);
        assert_eq!(res.fields(), vec![field.to_string()], "{field}={value}");
    }
    for missing in [
        "display_name",
        "email",
        "accept_terms_version",
        "email_opt_in",
    ] {
        let mut body = sign_up_body("Marie");
        body.as_object_mut().map(|o| o.remove(missing));
        let res = call(&r, "POST", "/members", Some(&marie), Some(body)).await;
        assert_eq!(res.status, 422, "{missing}");
        assert_eq!(res.fields(), vec![missing.to_string()]);
    }
    // Wrong types and unknown fields are malformed requests (400), named.
    let mut body = sign_up_body("Marie");
    body["email_opt_in"] = json!("yes");
    let res = call(&r, "POST", "/members", Some(&marie), Some(body)).await;
    assert_eq!(
        (res.status, res.fields()),
        (400, vec!["email_opt_in".to_string()])
    );
    let mut body = sign_up_body("Marie");
    body["is_admin"] = json!(true);
    let res = call(&r, "POST", "/members", Some(&marie), Some(body)).await;
    assert_eq!(res.status, 400);
    assert!(res.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("is_admin"));
    // Nothing was created by any of these.
    assert_eq!(
        call(&r, "GET", "/members/me", Some(&marie), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn malformed_empty_and_oversized_bodies_are_4xx() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let marie = member("marie");
    for body in [
        "{",
        "[1,2]",
        "null",
        "",
        "   ",
        "\"text\"",
        "{\"display_name\": }",
    ] {
        let res = call_event(
            &r,
            &event("POST", "/members", Some(&marie), Some(body), &[]),
        )
        .await;
        assert_eq!(res.status, 400, "{body:?}: {}", res.body);
    }
    let big = json!({"display_name": "x".repeat(70 * 1024)}).to_string();
    let res = call_event(
        &r,
        &event("POST", "/members", Some(&marie), Some(&big), &[]),
    )
    .await;
    assert_eq!(res.status, 413);
    let res = call_event(
        &r,
        &event("PATCH", "/members/me", Some(&marie), Some(&big), &[]),
    )
    .await;
    assert_eq!(res.status, 413);
}

#[tokio::test]
async fn a_member_sees_and_changes_only_their_own_profile() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let (alice, bob) = (member("alice"), member("bob"));
    assert_eq!(
        call(
            &r,
            "POST",
            "/members",
            Some(&alice),
            Some(sign_up_body("Alice"))
        )
        .await
        .status,
        201
    );
    // Bob is not Alice: he has no profile, and cannot patch his way into hers.
    assert_eq!(
        call(&r, "GET", "/members/me", Some(&bob), None)
            .await
            .status,
        404
    );
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&bob),
        Some(json!({"display_name": "Pirate"})),
    )
    .await;
    assert_eq!(res.status, 404);
    let me = call(&r, "GET", "/members/me", Some(&alice), None).await;
    assert_eq!(me.body["display_name"], "Alice");
    // A subject that could break storage keys is refused.
    let odd = member("alice#PROFILE");
    assert_eq!(
        call(&r, "GET", "/members/me", Some(&odd), None)
            .await
            .status,
        401
    );
    // An invalid patch names its field and changes nothing.
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&alice),
        Some(json!({"display_name": "A", "email_opt_in": false})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["display_name".to_string()])
    );
    let me = call(&r, "GET", "/members/me", Some(&alice), None).await;
    assert_eq!(me.body["email_opt_in"], true);
}

#[tokio::test]
async fn idempotency_key_replays_the_first_response() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let marie = member("marie");
    let body = sign_up_body("Marie").to_string();
    let ev = event(
        "POST",
        "/members",
        Some(&marie),
        Some(&body),
        &[("Idempotency-Key", "signup-1")],
    );
    let first = call_event(&r, &ev).await;
    assert_eq!(first.status, 201);
    let second = call_event(&r, &ev).await;
    assert_eq!(second.status, 201);
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    // Without the key, the second sign-up is a conflict.
    assert_eq!(
        call(
            &r,
            "POST",
            "/members",
            Some(&marie),
            Some(sign_up_body("Marie"))
        )
        .await
        .status,
        409
    );
    // A key that is not a key.
    let ev = event(
        "POST",
        "/members",
        Some(&marie),
        Some(&body),
        &[("Idempotency-Key", "has spaces")],
    );
    let res = call_event(&r, &ev).await;
    assert_eq!(
        (res.status, res.fields()),
        (400, vec!["Idempotency-Key".to_string()])
    );
}

/// The same `Idempotency-Key` with another body is a 422 naming the header
/// (nothing written: the member keeps the first sign-up's name); while the
/// first request with a key runs, another one gets 409 with `Retry-After`.
#[tokio::test]
async fn idempotency_key_refuses_another_body_and_a_running_key() {
    use community::receipt::{fingerprint, Receipt};
    use community::store::Table;
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app.clone());
    let marie = member("marie");
    let post = |who: &community::testing::As, body: &str, key: &str| {
        event(
            "POST",
            "/members",
            Some(who),
            Some(body),
            &[("Idempotency-Key", key)],
        )
    };
    let first = call_event(&r, &post(&marie, &sign_up_body("Marie").to_string(), "s-1")).await;
    assert_eq!(first.status, 201, "{}", first.body);
    let other = call_event(
        &r,
        &post(&marie, &sign_up_body("Marion").to_string(), "s-1"),
    )
    .await;
    assert_eq!(
        (other.status, other.fields()),
        (422, vec!["Idempotency-Key".to_string()]),
        "{}",
        other.body
    );
    let me = call(&r, "GET", "/members/me", Some(&marie), None).await;
    assert_eq!(me.body["display_name"], "Marie");
    // Another request holds Paul's key: his sign-up waits, nothing written.
    let paul = member("paul");
    let body = sign_up_body("Paul").to_string();
    let running = Receipt::new(
        &community::testing::caller(&paul).id,
        "s-2",
        "POST /members".into(),
    )
    .with_fingerprint(Some(fingerprint(body.as_bytes())));
    app.table
        .transact(vec![running.claim_write()])
        .await
        .expect("claim");
    let busy = call_event(&r, &post(&paul, &body, "s-2")).await;
    assert_eq!(
        (busy.status, busy.fields()),
        (409, vec!["Idempotency-Key".to_string()]),
        "{}",
        busy.body
    );
    assert_eq!(busy.header("retry-after"), Some("1"));
    let me = call(&r, "GET", "/members/me", Some(&paul), None).await;
    assert_eq!(me.status, 404, "{}", me.body);
}

#[tokio::test]
async fn soft_launch_needs_a_valid_invite_and_records_its_cohort() {
    let (app, _d) = embedded_app(|s| s.invite_only = true);
    let codes = community::members::create_invites(&app.table, "staff", 2, 1)
        .await
        .expect("invites");
    let shared = community::members::create_invites(&app.table, "facebook-group", 1, 2)
        .await
        .expect("invite");
    let r = signup::router(app);

    let res = call(
        &r,
        "POST",
        "/members",
        Some(&member("a")),
        Some(sign_up_body("Anne")),
    )
    .await;
    assert_eq!(res.status, 403, "no code");
    let mut body = sign_up_body("Anne");
    body["invite_code"] = json!("NOPE-NOPE-NOPE");
    assert_eq!(
        call(&r, "POST", "/members", Some(&member("a")), Some(body))
            .await
            .status,
        403,
        "unknown code"
    );
    body = sign_up_body("Anne");
    body["invite_code"] = json!("<script>");
    assert_eq!(
        call(&r, "POST", "/members", Some(&member("a")), Some(body))
            .await
            .status,
        403,
        "malformed code"
    );

    let mut body = sign_up_body("Anne");
    body["invite_code"] = json!(codes[0].to_lowercase());
    let res = call(
        &r,
        "POST",
        "/members",
        Some(&member("a")),
        Some(body.clone()),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["cohort"], "staff");
    // A single-use code is used up.
    let res = call(&r, "POST", "/members", Some(&member("b")), Some(body)).await;
    assert_eq!(res.status, 403);
    // A two-use code admits two members, then no more.
    for (sub, want) in [("c", 201), ("d", 201), ("e", 403)] {
        let mut body = sign_up_body("Claude");
        body["invite_code"] = json!(shared[0]);
        let res = call(&r, "POST", "/members", Some(&member(sub)), Some(body)).await;
        assert_eq!(res.status, want, "{sub}: {}", res.body);
        if want == 201 {
            assert_eq!(res.body["cohort"], "facebook-group");
        }
    }
}

#[tokio::test]
async fn concurrent_sign_ups_of_one_member_create_one() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let r = r.clone();
            tokio::spawn(async move {
                call(
                    &r,
                    "POST",
                    "/members",
                    Some(&member("marie")),
                    Some(sign_up_body("Marie")),
                )
                .await
                .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    statuses.sort();
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|s| *s == 201 || *s == 409));
}

#[tokio::test]
async fn the_comment_digest_is_opt_in_and_patchable() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let alice = member("alice");
    let res = call(
        &r,
        "POST",
        "/members",
        Some(&alice),
        Some(sign_up_body("Alice")),
    )
    .await;
    assert_eq!(
        (res.status, res.body["comment_digest"].clone()),
        (201, json!(false))
    );
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&alice),
        Some(json!({"comment_digest": true})),
    )
    .await;
    assert_eq!(
        (res.status, res.body["comment_digest"].clone()),
        (200, json!(true))
    );
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&alice),
        Some(json!({"comment_digest": "yes"})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (400, vec!["comment_digest".to_string()])
    );
    let me = call(&r, "GET", "/members/me", Some(&alice), None).await;
    assert_eq!(me.body["comment_digest"], true);
    assert_eq!(
        call(
            &r,
            "PATCH",
            "/members/me",
            None,
            Some(json!({"comment_digest": false}))
        )
        .await
        .status,
        401
    );
}

/// The member view of a card: masked, with its status, which follows the
/// loyalty programme's answers; a card linked before cards were checked
/// reads as confirmed; no card, no status.
#[tokio::test]
async fn the_member_view_shows_the_card_masked_with_its_status() {
    use community::cards::{CardAnswer, CardStatus};
    let (app, _d) = embedded_app(|s| s.abuse.rate_limits.enabled = false);
    let r = signup::router(app.clone());
    let alice = member("alice");
    let created = call(
        &r,
        "POST",
        "/members",
        Some(&alice),
        Some(sign_up_body("Alice")),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["loyalty_card"], serde_json::Value::Null);
    assert_eq!(created.body["loyalty_card_status"], serde_json::Value::Null);
    assert!(created
        .body
        .as_object()
        .is_some_and(|o| o.contains_key("loyalty_card_status")));

    let patched = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&alice),
        Some(json!({"loyalty_card": "9130012345678901"})),
    )
    .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.body["loyalty_card"], "••••••••••••8901");
    assert_eq!(patched.body["loyalty_card_status"], "pending");
    let id = community::domain::MemberId::parse("alice").expect("id");
    let link = community::members::get(&app, &id)
        .await
        .expect("alice")
        .loyalty_card_link
        .expect("a link");
    let confirm = CardAnswer {
        card_link_id: link.clone(),
        status: CardStatus::Confirmed,
        reason: None,
    };
    community::cards::apply_answer(&app, &confirm)
        .await
        .expect("confirmed");
    let me = call(&r, "GET", "/members/me", Some(&alice), None).await;
    assert_eq!(me.body["loyalty_card_status"], "confirmed");
    // The same card again changes nothing: still confirmed, same link.
    let same = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&alice),
        Some(json!({"loyalty_card": "9130012345678901"})),
    )
    .await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(same.body["loyalty_card_status"], "confirmed");
    assert_eq!(
        community::members::get(&app, &id)
            .await
            .expect("alice")
            .loyalty_card_link,
        Some(link.clone())
    );
    // Another card is pending again, under a new link.
    let other = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&alice),
        Some(json!({"loyalty_card": "9130012345670000"})),
    )
    .await;
    assert_eq!(other.body["loyalty_card"], "••••••••••••0000");
    assert_eq!(other.body["loyalty_card_status"], "pending");
    let row = community::members::get(&app, &id).await.expect("alice");
    assert!(row.loyalty_card_link.is_some_and(|l| l != link));
    // The export says it too.
    let export = call(&r, "GET", "/members/me/export", Some(&alice), None).await;
    assert_eq!(export.status, 200, "{}", export.body);
    assert_eq!(export.body["profile"]["loyalty_card_status"], "pending");

    // A card stored before cards were checked (no status, no link).
    use community::store::{Table, Update, Write};
    app.table
        .transact(vec![Write::update(
            community::members::key(&id),
            Update::default()
                .remove("loyalty_card_status")
                .remove("loyalty_card_link"),
        )])
        .await
        .expect("legacy row");
    let me = call(&r, "GET", "/members/me", Some(&alice), None).await;
    assert_eq!(me.body["loyalty_card"], "••••••••••••0000");
    assert_eq!(me.body["loyalty_card_status"], "confirmed");
    assert!(!me.body.to_string().contains("9130012345670000"));
}
