//! Contests and product tests through the function's Lambda entry.

use community::testing::{
    apply_campaigns, call, contest, embedded_app, join, member, product_test, As,
};
use serde_json::{json, Value};

/// Every page of a proof's entry list, through its public route.
async fn entry_pages(r: &axum::Router, path: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut url = path.to_owned();
    loop {
        let res = call(r, "GET", &url, None, None).await;
        assert_eq!(res.status, 200, "{}", res.body);
        pages.push(serde_json::from_value(res.body["items"].clone()).expect("items"));
        match res.body["next_cursor"].as_str() {
            Some(c) => url = format!("{path}?cursor={c}"),
            None => return pages,
        }
    }
}

fn answers() -> Value {
    json!({"answers": {"frequence": "souvent", "rayons": ["bio", "local"], "note": 4}})
}

#[tokio::test]
async fn entries_follow_the_window_eligibility_and_survey() {
    let (app, _d) = embedded_app(|_| {});
    let mut staff_only = contest("staff-only", -60, 3600);
    staff_only.eligibility.cohorts = vec!["staff".into()];
    let mut veterans = contest("veterans", -60, 3600);
    veterans.eligibility.min_membership_days = 7;
    apply_campaigns(
        &app,
        vec![
            contest("open-now", -60, 3600),
            contest("later", 3600, 7200),
            contest("over", -7200, -60),
            staff_only,
            veterans,
        ],
        vec![],
    )
    .await;
    let r = contests::router(app.clone());
    let marie = member("marie");
    join(&app, &marie).await;

    let list = call(&r, "GET", "/contests", None, None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(5));
    let one = call(&r, "GET", "/contests/open-now", None, None).await;
    assert_eq!(
        (one.body["status"].clone(), one.body["sponsor"].clone()),
        (json!("open"), json!("Marque Exemple"))
    );
    assert_eq!(
        one.body["seed_hash"].as_str().map(str::len),
        Some(64),
        "the seed's commitment is public"
    );
    assert!(one.body.get("seed").is_none() && one.body["draw"].is_null());
    assert_eq!(
        call(&r, "GET", "/contests/nope", None, None).await.status,
        404
    );
    assert_eq!(
        call(&r, "GET", "/contests/..%2Fx", None, None).await.status,
        404
    );

    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/later/entries",
            Some(&marie),
            Some(answers())
        )
        .await
        .status,
        409
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/over/entries",
            Some(&marie),
            Some(answers())
        )
        .await
        .status,
        409
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/staff-only/entries",
            Some(&marie),
            Some(answers())
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/veterans/entries",
            Some(&marie),
            Some(answers())
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/open-now/entries",
            None,
            Some(answers())
        )
        .await
        .status,
        401
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/open-now/entries",
            Some(&member("stranger")),
            Some(answers())
        )
        .await
        .status,
        403
    );

    for (bad, field) in [
        (json!({"answers": {}}), "answers.frequence"),
        (
            json!({"answers": {"frequence": "jamais"}}),
            "answers.frequence",
        ),
        (
            json!({"answers": {"frequence": "souvent", "rayons": ["bio", "bio"]}}),
            "answers.rayons",
        ),
        (
            json!({"answers": {"frequence": "souvent", "rayons": ["surgelés"]}}),
            "answers.rayons",
        ),
        (
            json!({"answers": {"frequence": "souvent", "note": 6}}),
            "answers.note",
        ),
        (
            json!({"answers": {"frequence": "souvent", "idee": ""}}),
            "answers.idee",
        ),
        (
            json!({"answers": {"frequence": "souvent", "age": 40}}),
            "answers.age",
        ),
    ] {
        let res = call(
            &r,
            "POST",
            "/contests/open-now/entries",
            Some(&marie),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(
            (res.status, res.fields()),
            (422, vec![field.to_string()]),
            "{bad}"
        );
    }
    let ok = call(
        &r,
        "POST",
        "/contests/open-now/entries",
        Some(&marie),
        Some(answers()),
    )
    .await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ok.body["draw_pseudonym"].as_str().map(str::len), Some(64));
    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/open-now/entries",
            Some(&marie),
            Some(answers())
        )
        .await
        .status,
        409
    );
}

#[tokio::test]
async fn one_entry_per_member_under_concurrency_and_per_loyalty_card() {
    let (app, _d) = embedded_app(|_| {});
    apply_campaigns(&app, vec![contest("rush", -60, 3600)], vec![]).await;
    let r = contests::router(app.clone());
    let marie = member("marie");
    join(&app, &marie).await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let (r, m) = (r.clone(), marie.clone());
            tokio::spawn(async move {
                call(
                    &r,
                    "POST",
                    "/contests/rush/entries",
                    Some(&m),
                    Some(answers()),
                )
                .await
                .status
            })
        })
        .collect();
    let mut created = 0;
    for t in tasks {
        match t.await.expect("task") {
            201 => created += 1,
            409 => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(created, 1);
    // Two accounts, one loyalty card. Sign-up and PATCH refuse a card
    // linked to another member (409), so the second account gets it the way
    // rows written before that guard could have it: straight in the store.
    for sub in ["a1", "a2"] {
        let who = member(sub);
        join(&app, &who).await;
        let c = community::testing::caller(&who);
        if sub == "a1" {
            community::members::update(
                &app,
                &c,
                community::members::Patch {
                    loyalty_card: Some("9130012345678901".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("card");
        } else {
            community::store::Table::transact(
                &app.table,
                vec![community::store::Write::update(
                    community::members::key(&c.id),
                    community::store::Update::default().set("loyalty_card", "9130012345678901"),
                )],
            )
            .await
            .expect("legacy card");
        }
    }
    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/rush/entries",
            Some(&member("a1")),
            Some(answers())
        )
        .await
        .status,
        201
    );
    let res = call(
        &r,
        "POST",
        "/contests/rush/entries",
        Some(&member("a2")),
        Some(answers()),
    )
    .await;
    assert_eq!(res.status, 409);
    assert!(res.body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("loyalty card"));
}

#[tokio::test]
async fn the_draw_is_marketing_only_after_close_once_and_verifiable() {
    let (app, _d) = embedded_app(|_| {});
    apply_campaigns(&app, vec![contest("jeu", -60, 3600)], vec![]).await;
    let r = contests::router(app.clone());
    let players: Vec<As> = (0..10).map(|i| member(&format!("p{i}"))).collect();
    for p in &players {
        join(&app, p).await;
        assert_eq!(
            call(
                &r,
                "POST",
                "/contests/jeu/entries",
                Some(p),
                Some(answers())
            )
            .await
            .status,
            201
        );
    }
    let ana = member("ana").in_groups(&["marketing"]);
    assert_eq!(
        call(&r, "POST", "/contests/jeu/draw", Some(&players[0]), None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(&r, "POST", "/contests/jeu/draw", Some(&ana), None)
            .await
            .status,
        409,
        "still open"
    );
    let committed = call(&r, "GET", "/contests/jeu", None, None).await.body["seed_hash"].clone();
    let before = call(&r, "GET", "/contests/jeu/draw/entries", None, None).await;
    assert_eq!(
        before.status, 404,
        "no entry list before the draw: {}",
        before.body
    );
    let unknown = call(&r, "GET", "/contests/nope/draw/entries", None, None).await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    // Marketing closes the contest by editing its file (re-applied: the seed stays).
    apply_campaigns(&app, vec![contest("jeu", -120, -1)], vec![]).await;
    let res = call(&r, "POST", "/contests/jeu/draw", Some(&ana), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    let proof: community::draw::Summary =
        serde_json::from_value(res.body["proof"].clone()).expect("proof");
    let pages = entry_pages(&r, &proof.entries_path).await;
    assert_eq!(
        json!(proof.seed_hash),
        committed,
        "the revealed seed is the one committed to"
    );
    assert_eq!(proof.entry_count, 10);
    assert_eq!(pages.concat().len(), 10);
    assert_eq!(proof.winners.len(), 3, "three prizes");
    assert_eq!(community::draw::verify_paged(&proof, &pages), Ok(()));
    for bad in ["x", "1", "-1"] {
        let res = call(
            &r,
            "GET",
            &format!("{}?cursor={bad}", proof.entries_path),
            None,
            None,
        )
        .await;
        assert_eq!(res.status, 422, "cursor {bad}: {}", res.body);
        assert!(res.body.to_string().contains("cursor"), "{}", res.body);
    }
    assert_eq!(res.body["winners"][0]["prize"], "Premier prix");
    assert_eq!(
        call(&r, "POST", "/contests/jeu/draw", Some(&ana), None)
            .await
            .status,
        409,
        "once"
    );
    let shown = call(&r, "GET", "/contests/jeu", None, None).await;
    assert_eq!(shown.body["status"], "drawn");
    assert_eq!(shown.body["draw"]["proof"]["winners"], json!(proof.winners));
    // A late entry is refused.
    join(&app, &member("late")).await;
    assert_eq!(
        call(
            &r,
            "POST",
            "/contests/jeu/entries",
            Some(&member("late")),
            Some(answers())
        )
        .await
        .status,
        409
    );
}

const EAN: &str = "3560070123452";

#[tokio::test]
async fn product_tests_select_within_slots_then_testers_earn_the_label() {
    let (app, _d) = embedded_app(|_| {});
    apply_campaigns(
        &app,
        vec![],
        vec![product_test("yaourt", EAN, (-60, 3600), (3600, 7200), 5, 3)],
    )
    .await;
    let r = contests::router(app.clone());
    let reviews = reviews::router(app.clone());
    let applicants: Vec<As> = (0..20).map(|i| member(&format!("t{i}"))).collect();
    for a in &applicants {
        join(&app, a).await;
        let res = call(
            &r,
            "POST",
            "/product-tests/yaourt/applications",
            Some(a),
            Some(json!({"motivation": "J'adore les yaourts."})),
        )
        .await;
        assert_eq!(res.status, 201, "{}", res.body);
    }
    assert_eq!(
        call(
            &r,
            "POST",
            "/product-tests/yaourt/applications",
            Some(&applicants[0]),
            None
        )
        .await
        .status,
        409
    );
    let ana = member("ana").in_groups(&["marketing"]);
    assert_eq!(
        call(
            &r,
            "POST",
            "/product-tests/yaourt/selection",
            Some(&applicants[0]),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/product-tests/yaourt/selection",
            Some(&ana),
            None
        )
        .await
        .status,
        409,
        "applications still open"
    );
    // Applications close; reviews open.
    apply_campaigns(
        &app,
        vec![],
        vec![product_test(
            "yaourt",
            EAN,
            (-7200, -3600),
            (-60, 3600),
            5,
            3,
        )],
    )
    .await;
    join(&app, &member("late")).await;
    assert_eq!(
        call(
            &r,
            "POST",
            "/product-tests/yaourt/applications",
            Some(&member("late")),
            None
        )
        .await
        .status,
        409
    );
    let sel = call(
        &r,
        "POST",
        "/product-tests/yaourt/selection",
        Some(&ana),
        None,
    )
    .await;
    assert_eq!(sel.status, 200, "{}", sel.body);
    let proof: community::draw::Summary =
        serde_json::from_value(sel.body["proof"].clone()).expect("proof");
    assert_eq!(proof.winners.len(), 5, "never more than the slots");
    let pages = entry_pages(&r, &proof.entries_path).await;
    assert_eq!(community::draw::verify_paged(&proof, &pages), Ok(()));
    assert_eq!(
        call(
            &r,
            "POST",
            "/product-tests/yaourt/selection",
            Some(&ana),
            None
        )
        .await
        .status,
        409,
        "once"
    );

    let tester = |a: &As| {
        proof
            .winners
            .contains(&community::draw::pseudonym("yaourt", &a.sub))
    };
    let testers: Vec<&As> = applicants.iter().filter(|a| tester(a)).collect();
    let others: Vec<&As> = applicants.iter().filter(|a| !tester(a)).collect();
    assert_eq!(testers.len(), 5);
    let body = |test: bool| {
        let mut b = json!({"rating": 4, "title": "Très bon", "body": "Onctueux et pas trop acide, parfait au petit-déjeuner."});
        if test {
            b["product_test_id"] = json!("yaourt");
        }
        b
    };
    let path = format!("/products/{EAN}/reviews");
    let res = call(&reviews, "POST", &path, Some(others[0]), Some(body(true))).await;
    assert_eq!(res.status, 403, "not selected");
    let res = call(&reviews, "POST", &path, Some(others[0]), Some(body(false))).await;
    assert_eq!(
        (res.status, res.body["community_tester"].clone()),
        (201, json!(false))
    );
    assert_eq!(
        call(&reviews, "POST", &path, Some(others[0]), Some(body(false)))
            .await
            .status,
        409,
        "one review per product"
    );
    let label = format!("/products/{EAN}/label");
    for (i, t) in testers.iter().take(3).enumerate() {
        let before = call(&reviews, "GET", &label, None, None).await;
        assert_eq!(
            before.body["tested_by_community"],
            json!(false),
            "after {i} tester reviews"
        );
        let res = call(&reviews, "POST", &path, Some(t), Some(body(true))).await;
        assert_eq!(
            (res.status, res.body["community_tester"].clone()),
            (201, json!(true)),
            "{}",
            res.body
        );
    }
    let after = call(&reviews, "GET", &label, None, None).await;
    assert_eq!(after.body["tested_by_community"], json!(true));
    assert_eq!(after.body["review_count"], json!(4));
    assert_eq!(after.body["average_rating"], json!(4.0));
    assert!(after
        .header("cache-control")
        .is_some_and(|c| c.contains("max-age")));
    let list = call(&reviews, "GET", &format!("{path}?limit=2"), None, None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(2));
    assert!(list.body["next_cursor"].is_string());
    assert_eq!(list.body["review_count"], json!(4));
    // Validation and unknown products.
    let res = call(
        &reviews,
        "POST",
        &path,
        Some(testers[4]),
        Some(json!({"rating": 9, "title": "x", "body": "court"})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (
            422,
            vec![
                "rating".to_string(),
                "title".to_string(),
                "body".to_string()
            ]
        )
    );
    assert_eq!(
        call(&reviews, "GET", "/products/3560070123457/label", None, None)
            .await
            .status,
        404,
        "bad check digit"
    );
    let res = call(
        &reviews,
        "POST",
        "/products/4006381333931/reviews",
        Some(testers[4]),
        Some(body(true)),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["product_test_id".to_string()]),
        "the test is about another product"
    );
}

#[tokio::test]
async fn entries_need_a_verified_address_and_are_rate_limited() {
    let (app, _d) = embedded_app(|s| {
        s.abuse.rate_limits.enabled = true;
        s.abuse.rate_limits.limits.insert(
            community::ratelimit::Action::Entry.as_str(),
            community::ratelimit::Limit {
                max: 1,
                per_secs: 86_400,
            },
        );
    });
    apply_campaigns(
        &app,
        vec![contest("one", -60, 3600), contest("two", -60, 3600)],
        vec![],
    )
    .await;
    let r = contests::router(app.clone());
    let marie = member("marie");
    join(&app, &marie).await;
    let body = answers().to_string();
    let mut e: serde_json::Value = serde_json::from_str(&community::testing::event(
        "POST",
        "/contests/one/entries",
        Some(&marie),
        Some(&body),
        &[],
    ))
    .expect("json");
    e["requestContext"]["authorizer"]["jwt"]["claims"]["email_verified"] = "false".into();
    let res = community::testing::call_event(&r, &e.to_string()).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.body["detail"]
        .as_str()
        .is_some_and(|d| d.contains("verified")));
    let res = call(
        &r,
        "POST",
        "/contests/one/entries",
        Some(&marie),
        Some(answers()),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res = call(
        &r,
        "POST",
        "/contests/two/entries",
        Some(&marie),
        Some(answers()),
    )
    .await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert!(res.header("retry-after").is_some());
}

/// The same `Idempotency-Key` with another body is a 422 naming the header,
/// not a replay, and writes nothing: for an entry (the answers) and for a
/// review (its rating and text stay the first ones); while the first request
/// with a key runs, another gets 409 with `Retry-After`.
#[tokio::test]
async fn an_idempotency_key_reused_with_another_body_is_refused() {
    use community::receipt::{fingerprint, Receipt};
    use community::store::Table;
    let (app, _d) = embedded_app(|_| {});
    apply_campaigns(&app, vec![contest("open-now", -60, 3600)], vec![]).await;
    let marie = member("marie");
    join(&app, &marie).await;
    let contests_r = contests::router(app.clone());
    let reviews_r = reviews::router(app.clone());
    let post = |r: &axum::Router, path: &str, body: &Value, key: &str| {
        let e = community::testing::event(
            "POST",
            path,
            Some(&marie),
            Some(&body.to_string()),
            &[("idempotency-key", key)],
        );
        let r = r.clone();
        async move { community::testing::call_event(&r, &e).await }
    };
    let refused = |res: &community::testing::Reply, status: u16| {
        assert_eq!(
            (res.status, res.fields()),
            (status, vec!["Idempotency-Key".to_string()]),
            "{}",
            res.body
        );
        assert!(res.header("idempotent-replayed").is_none());
    };
    let entries = "/contests/open-now/entries";
    let first = post(&contests_r, entries, &answers(), "e-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let mut other = answers();
    other["answers"]["note"] = json!(2);
    refused(&post(&contests_r, entries, &other, "e-1").await, 422);
    let replay = post(&contests_r, entries, &answers(), "e-1").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, first.body);

    let path = format!("/products/{EAN}/reviews");
    let review = json!({"rating": 4, "title": "Très bon", "body": "Onctueux et pas trop acide, parfait au petit-déjeuner."});
    let first = post(&reviews_r, &path, &review, "r-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let mut other = review.clone();
    other["rating"] = json!(1);
    refused(&post(&reviews_r, &path, &other, "r-1").await, 422);
    let listed = call(&reviews_r, "GET", &path, None, None).await;
    assert_eq!(listed.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed.body["items"][0]["rating"], 4, "{}", listed.body);

    // Another request holds the key: 409.
    let running = Receipt::new(
        &community::testing::caller(&marie).id,
        "r-2",
        format!("POST {path}"),
    )
    .with_fingerprint(Some(fingerprint(review.to_string().as_bytes())));
    app.table
        .transact(vec![running.claim_write()])
        .await
        .expect("claim");
    let busy = post(&reviews_r, &path, &review, "r-2").await;
    refused(&busy, 409);
    assert_eq!(busy.header("retry-after"), Some("1"));
}

/// A request that fails after claiming its `Idempotency-Key` frees the key
/// (the claim's `DeleteItem`): the retry runs again, it is not refused as
/// still running. For an entry and for a review.
#[tokio::test]
async fn a_failed_request_frees_its_idempotency_key() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("marie");
    join(&app, &marie).await;
    let contests_r = contests::router(app.clone());
    let reviews_r = reviews::router(app.clone());
    let post = |r: &axum::Router, path: &str, body: Value| {
        let e = community::testing::event(
            "POST",
            path,
            Some(&marie),
            Some(&body.to_string()),
            &[("idempotency-key", "k-1")],
        );
        let r = r.clone();
        async move { community::testing::call_event(&r, &e).await }
    };
    for _ in 0..2 {
        let res = post(&contests_r, "/contests/nope/entries", answers()).await;
        assert_eq!(res.status, 404, "{}", res.body);
    }
    let review = json!({"rating": 9, "title": "Très bon", "body": "Onctueux et pas trop acide, parfait au petit-déjeuner."});
    let path = format!("/products/{EAN}/reviews");
    for _ in 0..2 {
        let res = post(&reviews_r, &path, review.clone()).await;
        assert_eq!(res.status, 422, "{}", res.body);
        assert_eq!(res.fields(), vec!["rating".to_string()]);
    }
}
