//! Sign-up anti-abuse and the GDPR routes, through the Lambda entry.

use community::testing::{call, embedded_app, join, member, post_idea, sign_up_body};
use serde_json::json;

#[tokio::test]
async fn gdpr_routes_need_a_token_and_a_member() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    for (m, p) in [("GET", "/members/me/export"), ("DELETE", "/members/me")] {
        let res = call(&r, m, p, None, None).await;
        assert_eq!(res.status, 401, "{m} {p}");
        let res = call(&r, m, p, Some(&member("nobody")), None).await;
        assert_eq!(res.status, 404, "{m} {p} before sign-up: {}", res.body);
    }
}

#[tokio::test]
async fn export_then_idempotent_erasure() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let marie = member("marie");
    let mut body = sign_up_body("Marie");
    body["loyalty_card"] = json!("9130012345678901");
    assert_eq!(
        call(&r, "POST", "/members", Some(&marie), Some(body))
            .await
            .status,
        201
    );
    let x = call(&r, "GET", "/members/me/export", Some(&marie), None).await;
    assert_eq!(x.status, 200, "{}", x.body);
    assert_eq!(x.body["profile"]["email"], "marie@example.fr");
    for section in [
        "consents",
        "invite",
        "ideas",
        "votes",
        "comments",
        "contest_entries",
        "product_test_applications",
        "reviews",
        "reports",
        "points_ledger",
        "redemptions",
        "emails_sent",
    ] {
        assert!(x.body.get(section).is_some(), "export has {section}");
    }
    // Only /me: there is no route to another member's export or erasure.
    let other = call(
        &r,
        "GET",
        "/members/marie/export",
        Some(&member("eve")),
        None,
    )
    .await;
    assert_eq!(other.status, 404);
    let other = call(&r, "DELETE", "/members/marie", Some(&member("eve")), None).await;
    assert!(
        other.status == 404 || other.status == 405,
        "{}",
        other.status
    );

    let d1 = call(&r, "DELETE", "/members/me", Some(&marie), None).await;
    assert_eq!(d1.status, 202, "{}", d1.body);
    assert_eq!(d1.body["status"], "erased");
    let d2 = call(&r, "DELETE", "/members/me", Some(&marie), None).await;
    assert_eq!(
        d2.status, 202,
        "a second erasure is accepted too: {}",
        d2.body
    );
    assert_eq!(
        call(&r, "GET", "/members/me", Some(&marie), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&r, "GET", "/members/me/export", Some(&marie), None)
            .await
            .status,
        404
    );
    let back = call(
        &r,
        "POST",
        "/members",
        Some(&marie),
        Some(sign_up_body("Marie")),
    )
    .await;
    assert_eq!(back.status, 409, "{}", back.body);
    // The card is free again for another account.
    let mut body = sign_up_body("Paul");
    body["loyalty_card"] = json!("9130012345678901");
    assert_eq!(
        call(&r, "POST", "/members", Some(&member("paul")), Some(body))
            .await
            .status,
        201
    );
}

#[tokio::test]
async fn disposable_addresses_are_refused_by_name() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let mut body = sign_up_body("Troll");
    body["email"] = json!("troll@mailinator.com");
    let res = call(&r, "POST", "/members", Some(&member("troll")), Some(body)).await;
    assert_eq!(res.status, 422, "{}", res.body);
    assert_eq!(res.fields(), vec!["email"]);
    // The rule is config: marketing may allow a domain.
    let (app, _d2) =
        embedded_app(|s| s.abuse.signup.allowed_email_domains = vec!["mailinator.com".into()]);
    let r = signup::router(app);
    let mut body = sign_up_body("Troll");
    body["email"] = json!("troll@mailinator.com");
    let res = call(&r, "POST", "/members", Some(&member("troll")), Some(body)).await;
    assert_eq!(res.status, 201, "{}", res.body);
}

#[tokio::test]
async fn one_member_per_loyalty_card() {
    let (app, _d) = embedded_app(|_| {});
    let r = signup::router(app);
    let card = "9130012345678901";
    let mut a = sign_up_body("Anne");
    a["loyalty_card"] = json!(card);
    assert_eq!(
        call(&r, "POST", "/members", Some(&member("anne")), Some(a))
            .await
            .status,
        201
    );
    let mut b = sign_up_body("Bruno");
    b["loyalty_card"] = json!(card);
    let res = call(&r, "POST", "/members", Some(&member("bruno")), Some(b)).await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(res.fields(), vec!["loyalty_card"]);
    // Bruno signs up without it, then tries to take it by PATCH: 409 too.
    assert_eq!(
        call(
            &r,
            "POST",
            "/members",
            Some(&member("bruno")),
            Some(sign_up_body("Bruno"))
        )
        .await
        .status,
        201
    );
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&member("bruno")),
        Some(json!({"loyalty_card": card})),
    )
    .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert_eq!(res.fields(), vec!["loyalty_card"]);
    // Anne changes her card: the old one is released, Bruno may take it.
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&member("anne")),
        Some(json!({"loyalty_card": "9130012345670000"})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&member("bruno")),
        Some(json!({"loyalty_card": card})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    // Setting one's own card again changes nothing.
    let res = call(
        &r,
        "PATCH",
        "/members/me",
        Some(&member("bruno")),
        Some(json!({"loyalty_card": card})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
}

/// `GET /members/me/contributions` through the Lambda entry: a token, a
/// member, a valid `type`, no unknown parameter; then the author's hidden
/// idea is listed with its state while its public route says 404.
#[tokio::test]
async fn my_contributions_show_what_moderation_hid() {
    let (app, _d) = embedded_app(|s| s.moderation.auto_hide_reports = 1);
    let r = signup::router(app.clone());
    let path = "/members/me/contributions?type=idea";
    assert_eq!(call(&r, "GET", path, None, None).await.status, 401);
    assert_eq!(
        call(&r, "GET", path, Some(&member("nobody")), None)
            .await
            .status,
        403
    );
    let marie = member("marie");
    join(&app, &marie).await;
    let res = call(&r, "GET", "/members/me/contributions", Some(&marie), None).await;
    assert_eq!(res.status, 422, "{}", res.body);
    assert_eq!(res.fields(), ["type"]);
    let res = call(
        &r,
        "GET",
        "/members/me/contributions?type=vote",
        Some(&marie),
        None,
    )
    .await;
    assert_eq!((res.status, res.fields()), (422, vec!["type".to_owned()]));
    let res = call(
        &r,
        "GET",
        "/members/me/contributions?type=idea&author=eve",
        Some(&marie),
        None,
    )
    .await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert_eq!(res.fields(), ["author"]);

    let id = post_idea(&app, &marie).await;
    let eve = member("eve");
    join(&app, &eve).await;
    let reported = call(
        &moderation::router(app.clone()),
        "POST",
        "/reports",
        Some(&eve),
        Some(json!({"target_type": "idea", "target_id": id, "reason": "Hors sujet"})),
    )
    .await;
    assert_eq!(reported.status, 201, "{}", reported.body);
    // The public route (without the author's token, as on AWS) says 404 ...
    let public = call(
        &ideas::router(app.clone()),
        "GET",
        &format!("/ideas/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(public.status, 404);
    // ... while the author's own list shows the idea and why it is hidden.
    let res = call(&r, "GET", path, Some(&marie), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let item = &res.body["items"][0];
    assert_eq!(item["id"], json!(id));
    assert_eq!(item["state"], "hidden");
    assert_eq!(item["moderation"]["hidden_by"], "reports");
    assert_eq!(item["moderation"]["awaiting_decision"], true);
    assert_eq!(item["content"]["author"]["id"], "marie");
    // Eve's list has none of Marie's ideas.
    let res = call(&r, "GET", path, Some(&eve), None).await;
    assert_eq!(res.body["items"], json!([]));
}
