//! The ideas function, through its Lambda entry (events parsed by lambda_http).

use community::testing::{call, call_event, embedded_app, event, idea_body, join, member};
use serde_json::{json, Value};

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../events/http");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{EVENTS}/{name}")).expect("fixture")
}

#[tokio::test]
async fn public_sample_events() {
    let (app, _d) = embedded_app(|_| {});
    let r = ideas::router(app);
    let h = call_event(&r, &fixture("get-health.json")).await;
    assert_eq!((h.status, h.body.clone()), (200, json!({"status": "ok"})));
    let t = call_event(&r, &fixture("get-themes.json")).await;
    assert_eq!(t.status, 200);
    let ids: Vec<&str> = t
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["eat-well", "children", "loyalty", "environment", "shopping"]
    );
    assert_eq!(t.body[0]["label"], "Bien manger");
    assert!(t
        .header("cache-control")
        .is_some_and(|c| c.contains("max-age")));
    let c = call_event(&r, &fixture("get-community.json")).await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["terms_version"], "2026-11");
    assert_eq!(c.body["launch"], "public");
    assert_eq!(c.body["vote_threshold"], 10_000);
    assert_eq!(c.body["themes"].as_array().map(Vec::len), Some(5));
    assert_eq!(c.body["points"]["points_per_euro"], 100);
    assert!(c.body["points"]["rules"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["action"] == "member_signed_up")));
    assert!(c.body["terms_url"]
        .as_str()
        .is_some_and(|u| u.ends_with("/cgu")));
    let l = call_event(&r, &fixture("get-ideas.json")).await;
    assert_eq!(
        (l.status, l.body.clone()),
        (200, json!({"items": [], "next_cursor": null}))
    );
    let one = call_event(&r, &fixture("get-idea.json")).await;
    assert_eq!(one.status, 404);
}

#[tokio::test]
async fn the_community_settings_follow_the_applied_files() {
    // A soft launch with another threshold and terms address: what a
    // frontend reads before sign-up changes with them.
    let (app, _d) = embedded_app(|s| {
        s.invite_only = true;
        s.vote_threshold = 250;
        s.terms_url = Some("https://communaute.example.fr/cgu-v2".into());
    });
    let r = ideas::router(app);
    let c = call(&r, "GET", "/community", None, None).await;
    assert_eq!(c.status, 200);
    assert_eq!(c.body["launch"], "soft");
    assert_eq!(c.body["vote_threshold"], 250);
    assert_eq!(c.body["terms_url"], "https://communaute.example.fr/cgu-v2");
}

/// `GET /community` has API.md's shape: `terms_version`, `terms_url`,
/// `launch` (`soft|public`), `themes`, `vote_threshold` and `points`
/// (`rules` of `{action, points}`, `euros_per_point`, `minimum_redemption`),
/// with the values of the files applied; public, no token.
#[tokio::test]
async fn the_community_answer_has_the_contract_s_fields() {
    let (app, _d) = embedded_app(|_| {});
    let settings = app.settings();
    let r = ideas::router(app);
    let c = call(&r, "GET", "/community", None, None).await;
    assert_eq!(c.status, 200, "{}", c.body);
    let b = &c.body;
    assert_eq!(b["terms_version"], json!(settings.terms_version));
    assert!(
        b["terms_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http")),
        "{b}"
    );
    assert!(["soft", "public"].contains(&b["launch"].as_str().unwrap_or_default()));
    let themes = b["themes"].as_array().expect("themes");
    assert_eq!(themes.len(), settings.themes.len());
    assert!(themes
        .iter()
        .all(|t| t["id"].is_string() && t["label"].is_string()));
    assert_eq!(b["vote_threshold"], json!(settings.vote_threshold));
    let rules = b["points"]["rules"].as_array().expect("points.rules");
    assert!(!rules.is_empty());
    assert!(
        rules
            .iter()
            .all(|r| r["action"].is_string() && r["points"].is_i64()),
        "{rules:?}"
    );
    let conversion = &settings.points.conversion;
    assert_eq!(
        b["points"]["euros_per_point"],
        json!(1.0 / conversion.points_per_euro as f64)
    );
    assert_eq!(
        b["points"]["minimum_redemption"],
        json!(conversion.minimum_redemption)
    );
}

#[tokio::test]
async fn post_idea_sample_events() {
    let (app, _d) = embedded_app(|_| {});
    let r = ideas::router(app.clone());
    let res = call_event(&r, &fixture("post-idea-unauthenticated.json")).await;
    assert_eq!(res.status, 401);
    let res = call_event(&r, &fixture("post-idea.json")).await;
    assert_eq!(res.status, 403, "not signed up yet: {}", res.body);
    assert!(res.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("sign up"));
    join(&app, &member("member-marie")).await;
    let created = call_event(&r, &fixture("post-idea.json")).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["status"], "open");
    assert_eq!(created.body["votes"], 0);
    assert_eq!(created.body["theme"], "environment");
    assert_eq!(
        created.body["author"],
        json!({"id": "member-marie", "display_name": "member-marie"})
    );
    // The sample carries an Idempotency-Key: the retry replays, no second idea.
    let retry = call_event(&r, &fixture("post-idea.json")).await;
    assert_eq!(retry.status, 201);
    assert_eq!(retry.body["id"], created.body["id"]);
    let list = call(&r, "GET", "/ideas", None, None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    let id = created.body["id"].as_str().unwrap_or_default();
    let got = call(&r, "GET", &format!("/ideas/{id}"), None, None).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, created.body);
}

#[tokio::test]
async fn each_rule_names_its_field() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("marie");
    join(&app, &marie).await;
    let r = ideas::router(app);
    let cases = [
        ("theme", json!("politics")),
        ("theme", json!("")),
        ("title", json!("Bof")),
        ("title", json!("x".repeat(121))),
        ("body", json!("Trop bref")),
        ("body", json!("x".repeat(5001))),
    ];
    for (field, value) in cases {
        let mut body = idea_body();
        body[field] = value.clone();
        let res = call(&r, "POST", "/ideas", Some(&marie), Some(body)).await;
        assert_eq!(res.status, 422, "{field}={value}");
        assert_eq!(res.fields(), vec![field.to_string()]);
    }
    // Boundaries are inclusive.
    let mut body = idea_body();
    body["title"] = json!("x".repeat(5));
    body["body"] = json!("y".repeat(5000));
    assert_eq!(
        call(&r, "POST", "/ideas", Some(&marie), Some(body))
            .await
            .status,
        201
    );
    let res = call(&r, "POST", "/ideas", Some(&marie), Some(json!({}))).await;
    assert_eq!(res.status, 422);
    assert_eq!(res.fields(), vec!["theme", "title", "body"]);
    let res = call(
        &r,
        "POST",
        "/ideas",
        Some(&marie),
        Some(json!({"theme": 3})),
    )
    .await;
    assert_eq!((res.status, res.fields()), (400, vec!["theme".to_string()]));
    let res = call_event(
        &r,
        &event("POST", "/ideas", Some(&marie), Some("{\"theme\":"), &[]),
    )
    .await;
    assert_eq!(res.status, 400);
    let big = json!({"theme": "eat-well", "title": "t".repeat(10), "body": "b".repeat(66_000)})
        .to_string();
    let res = call_event(&r, &event("POST", "/ideas", Some(&marie), Some(&big), &[])).await;
    assert_eq!(res.status, 413);
}

#[tokio::test]
async fn list_parameters_are_checked() {
    let (app, _d) = embedded_app(|_| {});
    let r = ideas::router(app);
    for (q, status, field) in [
        ("limit=0", 400, "limit"),
        ("limit=101", 400, "limit"),
        ("limit=abc", 400, "limit"),
        ("limit=5&limit=6", 400, "limit"),
        ("theme=politics", 422, "theme"),
        ("status=closed", 422, "status"),
        ("sort=random", 422, "sort"),
        ("cursor=garbage", 422, "cursor"),
    ] {
        let res = call(&r, "GET", &format!("/ideas?{q}"), None, None).await;
        assert_eq!(
            (res.status, res.fields()),
            (status, vec![field.to_string()]),
            "{q}"
        );
    }
    for q in [
        "limit=1",
        "limit=100",
        "theme=children&status=open&sort=top",
        "unknown=ignored",
    ] {
        assert_eq!(
            call(&r, "GET", &format!("/ideas?{q}"), None, None)
                .await
                .status,
            200,
            "{q}"
        );
    }
    for bad in [
        "/ideas/not-an-id",
        "/ideas/01JD0000000000000000000000",
        "/ideas/%00",
    ] {
        assert_eq!(call(&r, "GET", bad, None, None).await.status, 404, "{bad}");
    }
}

async fn titles(r: &axum::Router, q: &str) -> (Vec<String>, Option<String>) {
    let res = call(r, "GET", &format!("/ideas?{q}"), None, None).await;
    assert_eq!(res.status, 200, "{q}: {}", res.body);
    let t = res.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["title"].as_str().map(str::to_owned))
        .collect();
    (t, res.body["next_cursor"].as_str().map(str::to_owned))
}

#[tokio::test]
async fn lists_filter_sort_and_paginate_across_partitions() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    let themes = ["eat-well", "children", "loyalty", "environment", "shopping"];
    let mut ids = Vec::new();
    for i in 0..11 {
        let body = json!({"theme": themes[i % 5], "title": format!("Idée numéro {i:02}"),
                          "body": "Une idée assez longue pour passer."});
        let res = call(&r, "POST", "/ideas", Some(&marie), Some(body)).await;
        assert_eq!(res.status, 201);
        ids.push(res.body["id"].as_str().unwrap_or_default().to_owned());
    }
    // Newest first, across every theme and status, page by page.
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=4&cursor={c}"),
            None => "limit=4".into(),
        };
        let (page, next) = titles(&r, &q).await;
        assert!(page.len() <= 4);
        all.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = (0..11)
        .rev()
        .map(|i| format!("Idée numéro {i:02}"))
        .collect();
    assert_eq!(all, want);
    // One theme.
    let (children, _) = titles(&r, "theme=children").await;
    assert_eq!(children, ["Idée numéro 06", "Idée numéro 01"]);
    // A cursor from one list is refused by another.
    let (_, c) = titles(&r, "limit=1&theme=children").await;
    let res = call(
        &r,
        "GET",
        &format!("/ideas?theme=loyalty&cursor={}", c.unwrap_or_default()),
        None,
        None,
    )
    .await;
    assert_eq!(res.status, 422);
    // Top: by rolled-up votes, then newest.
    let idea2 = community::domain::IdeaId::parse(&ids[2]).expect("id");
    let idea7 = community::domain::IdeaId::parse(&ids[7]).expect("id");
    for (sub, idea) in [("v1", &idea2), ("v2", &idea2), ("v3", &idea7)] {
        let v = member(sub);
        join(&app, &v).await;
        let c = community::auth::Caller {
            id: community::domain::MemberId::parse(sub).expect("sub"),
            email: None,
            groups: vec![],
            email_verified: None,
        };
        community::votes::cast(&app, &c, idea).await.expect("vote");
    }
    community::thresholds::drain_feed(&app)
        .await
        .expect("aggregate");
    let (top, _) = titles(&r, "sort=top&limit=3").await;
    assert_eq!(top, ["Idée numéro 02", "Idée numéro 07", "Idée numéro 10"]);
    let res = call(&r, "GET", "/ideas?sort=top&limit=1", None, None).await;
    assert_eq!(res.body["items"][0]["votes"], 2);
    // Status filter: none is under review yet.
    let (review, _) = titles(&r, "status=under_review").await;
    assert!(review.is_empty());
    let closed = community::thresholds::send_to_review(&app, &idea7)
        .await
        .expect("to review");
    assert_eq!(closed.status, community::domain::IdeaStatus::UnderReview);
    let (review, _) = titles(&r, "status=under_review").await;
    assert_eq!(review, ["Idée numéro 07"]);
    let (open_loyalty, _) = titles(&r, "status=open&theme=loyalty").await;
    assert_eq!(open_loyalty, ["Idée numéro 02"]);
    let one: Value = call(&r, "GET", &format!("/ideas/{}", ids[7]), None, None)
        .await
        .body;
    assert_eq!(
        (one["status"].clone(), one["votes"].clone()),
        (json!("under_review"), json!(1))
    );
}

#[tokio::test]
async fn committee_members_post_ideas_like_anyone() {
    let (app, _d) = embedded_app(|_| {});
    join(&app, &member("member-claire")).await;
    let res = call_event(&ideas::router(app), &fixture("post-idea-committee.json")).await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["author"]["id"], "member-claire");
}
