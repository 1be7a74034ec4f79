//! Campaign settings at run time, the soft launch's private reads and the
//! tokens a function verifies itself, through the ideas function's Lambda
//! entry (the gate is every function's: `community::http::access`).

use community::config::CampaignFiles;
use community::live::{self, LaunchMode, Overrides};
use community::store::embedded::EmbeddedTable;
use community::store::Table;
use community::testing::{call, call_event, event, join, member, post_idea, settings, TestIssuer};
use community::App;
use serde_json::json;
use std::time::Duration;

/// An app that reads its settings from its table on every request (TTL 0),
/// as a deployed function does every 30 s.
fn live_app() -> (App<EmbeddedTable>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = EmbeddedTable::open(dir.path()).expect("store");
    let app = App::from_table(table, settings(), Overrides::default(), Duration::ZERO);
    (app, dir)
}

async fn set_launch(app: &App<EmbeddedTable>, mode: LaunchMode) {
    app.table
        .transact(vec![live::launch_write(mode, &community::domain::now())])
        .await
        .expect("launch written");
}

#[tokio::test]
async fn soft_launch_reads_need_a_members_token_until_launch_public() {
    let (app, _d) = live_app();
    let alice = member("alice");
    join(&app, &alice).await;
    let id = post_idea(&app, &alice).await;
    set_launch(&app, LaunchMode::Soft).await;
    let r = ideas::router(app.clone());

    // Open to all: what a visitor needs before signing up.
    for path in ["/health", "/community"] {
        assert_eq!(
            call(&r, "GET", path, None, None).await.status,
            200,
            "{path}"
        );
    }
    assert_eq!(
        call(&r, "GET", "/community", None, None).await.body["launch"],
        "soft"
    );
    // Everything else needs a member's token.
    for path in [
        "/ideas",
        "/themes",
        &format!("/ideas/{id}"),
        &format!("/ideas/{id}/comments"),
    ] {
        let anon = call(&r, "GET", path, None, None).await;
        assert_eq!(anon.status, 401, "{path}: {}", anon.body);
        assert!(anon.body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("invited members"));
        assert_eq!(
            call(&r, "GET", path, Some(&alice), None).await.status,
            200,
            "{path}"
        );
        let stranger = call(&r, "GET", path, Some(&member("stranger")), None).await;
        assert_eq!(stranger.status, 403, "{path}: a token but no membership");
        let staff = member("claire").in_groups(&["committee"]);
        assert_eq!(
            call(&r, "GET", path, Some(&staff), None).await.status,
            200,
            "{path}: staff"
        );
    }
    // An invalid Authorization header is named in the 401.
    let bad = call_event(
        &r,
        &event("GET", "/ideas", None, None, &[("authorization", "Basic x")]),
    )
    .await;
    assert_eq!(bad.status, 401);

    // `launch public`: the same running function opens, no redeploy.
    set_launch(&app, LaunchMode::Public).await;
    assert_eq!(call(&r, "GET", "/ideas", None, None).await.status, 200);
    assert_eq!(
        call(&r, "GET", "/community", None, None).await.body["launch"],
        "public"
    );
    // And back.
    set_launch(&app, LaunchMode::Soft).await;
    assert_eq!(call(&r, "GET", "/ideas", None, None).await.status, 401);
}

#[tokio::test]
async fn soft_launch_sign_up_needs_an_invite_and_the_own_profile_says_404() {
    let (app, _d) = live_app();
    set_launch(&app, LaunchMode::Soft).await;
    let s = signup::router(app.clone());
    let bob = member("bob");
    // Not signed up yet: the member's own routes answer 404 (how a frontend
    // learns to show the sign-up), not the soft launch's 403.
    assert_eq!(
        call(&s, "GET", "/members/me", Some(&bob), None)
            .await
            .status,
        404
    );
    let r = call(
        &s,
        "POST",
        "/members",
        Some(&bob),
        Some(community::testing::sign_up_body("bob")),
    )
    .await;
    assert_eq!(r.status, 403, "an invite code is needed: {}", r.body);
    set_launch(&app, LaunchMode::Public).await;
    let r = call(
        &s,
        "POST",
        "/members",
        Some(&bob),
        Some(community::testing::sign_up_body("bob")),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn an_applied_campaign_changes_the_running_functions() {
    let (app, _d) = live_app();
    let r = ideas::router(app.clone());
    let before = call(&r, "GET", "/community", None, None).await;
    assert_eq!(before.body["vote_threshold"], 10_000);

    let mut files = CampaignFiles::builtin();
    files.community = files
        .community
        .replace("vote_threshold = 10000", "vote_threshold = 2500")
        .replace("terms_version = \"2026-11\"", "terms_version = \"2027-01\"");
    files.points = files.points.replace("points = 50\n", "points = 75\n");
    let c = community::campaigns::Campaigns {
        files: Some(files),
        ..Default::default()
    };
    community::campaigns::apply(&app.table, &c)
        .await
        .expect("applied");

    let after = call(&r, "GET", "/community", None, None).await;
    assert_eq!(after.body["vote_threshold"], 2500, "{}", after.body);
    assert_eq!(after.body["terms_version"], "2027-01");
    let welcome = after.body["points"]["rules"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["action"] == "member_signed_up"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(welcome["points"], 75);
    // The sign-up now asks for the new terms.
    let s = signup::router(app.clone());
    let r = call(
        &s,
        "POST",
        "/members",
        Some(&member("carla")),
        Some(community::testing::sign_up_body("carla")),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.fields().contains(&"accept_terms_version".to_owned()));
    // The launch mode came from the file once (public), and the deployment's
    // own settings stayed.
    assert_eq!(after.body["launch"], "public");
    assert_eq!(app.settings().public_url, settings().public_url);
}

#[tokio::test]
async fn a_token_sent_to_a_public_route_is_verified_by_the_function() {
    let issuer = TestIssuer::start().await;
    let (app, _d) = live_app();
    let app = app.with_verifier(Some(issuer.verifier()));
    let alice = member("alice");
    join(&app, &alice).await;
    set_launch(&app, LaunchMode::Soft).await;
    let r = ideas::router(app.clone());
    // No authorizer in front: the token reaches the function as a header.
    let get = |token: String| {
        let r = r.clone();
        async move {
            let auth = format!("Bearer {token}");
            call_event(
                &r,
                &event("GET", "/ideas", None, None, &[("authorization", &auth)]),
            )
            .await
        }
    };
    let ok = get(issuer.token(&alice)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.header("cache-control"), Some("private, no-cache"));
    for _ in 0..3 {
        assert_eq!(get(issuer.token(&alice)).await.status, 200);
    }
    assert_eq!(
        issuer.fetches.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the keys are fetched once and cached"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let base = json!({"sub": "alice", "iss": issuer.issuer, "aud": issuer.client_id, "iat": now, "exp": now + 600});
    let with = |k: &str, v: serde_json::Value| {
        let mut c = base.clone();
        c[k] = v;
        c
    };
    for (why, claims, says) in [
        (
            "another client",
            with("aud", json!("someone-else")),
            "another client",
        ),
        (
            "another issuer",
            with("iss", json!("https://evil.example")),
            "Issuer",
        ),
        ("expired", with("exp", json!(now - 120)), "Expired"),
    ] {
        let res = get(issuer.sign(&claims)).await;
        assert_eq!(res.status, 401, "{why}: {}", res.body);
        let detail = res.body["detail"].as_str().unwrap_or_default().to_owned();
        assert!(detail.contains(says), "{why}: {detail}");
    }
    // An access token names its client in client_id.
    let mut access = base.clone();
    access.as_object_mut().map(|o| o.remove("aud"));
    access["client_id"] = json!(issuer.client_id);
    assert_eq!(get(issuer.sign(&access)).await.status, 200);
    // HS256 with the public key's bytes, or any secret: refused.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &base,
        &jsonwebtoken::EncodingKey::from_secret(b"guess"),
    )
    .expect("hs256");
    assert_eq!(get(hs).await.status, 401);
    // A valid token of someone who is not a member: 403 in the soft launch.
    assert_eq!(get(issuer.token(&member("nobody"))).await.status, 403);
    // In the public launch a bad token never makes a public read fail.
    set_launch(&app, LaunchMode::Public).await;
    assert_eq!(get("not-a-jwt".into()).await.status, 200);
    assert_eq!(get(issuer.sign(&with("aud", json!("x")))).await.status, 200);
}

#[tokio::test]
async fn keys_that_cannot_be_fetched_give_503_not_401() {
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = closed.local_addr().expect("addr");
    drop(closed);
    let issuer = TestIssuer::start().await;
    let verifier = community::tokens::TokenVerifier::jwks(
        &format!("http://{addr}/pool/.well-known/jwks.json"),
        &issuer.issuer,
        vec![issuer.client_id.clone()],
    )
    .expect("verifier");
    let (app, _d) = live_app();
    let app = app.with_verifier(Some(verifier));
    let r = ideas::router(app);
    let auth = format!("Bearer {}", issuer.token(&member("alice")));
    let res = call_event(
        &r,
        &event("GET", "/ideas", None, None, &[("authorization", &auth)]),
    )
    .await;
    assert_eq!(res.status, 503, "{}", res.body);
    assert_eq!(
        res.body["type"], "/problems/keys-unavailable",
        "{}",
        res.body
    );
}
