//! The marketing routes through the Lambda path (API Gateway events):
//! marketing only, lists paginated, bad parameters named.

use community::store::Table;
use community::testing::{call, embedded_app, member};
use serde_json::json;

#[tokio::test]
async fn marketing_only_and_paginated() {
    let (app, _d) = embedded_app(|s| {
        s.ambassadors.top = community::ambassadors::Top::Count(3);
        s.ambassadors.min_score = 1;
        s.ambassadors.levels[0].min_score = 1;
    });
    let router = marketing::router(app.clone());
    let mkt = member("mkt").in_groups(&["marketing"]);
    let committee = member("claire").in_groups(&["committee"]);
    for path in ["/insights", "/ambassadors"] {
        assert_eq!(
            call(&router, "GET", path, None, None).await.status,
            401,
            "{path}"
        );
        for who in [member("alice"), committee.clone()] {
            assert_eq!(
                call(&router, "GET", path, Some(&who), None).await.status,
                403,
                "{path}"
            );
        }
        assert_eq!(
            call(&router, "GET", path, Some(&mkt), None).await.status,
            200,
            "{path}"
        );
    }
    // Five members with activity; the top three are ambassadors.
    for (i, n) in [5, 4, 3, 2, 1].iter().enumerate() {
        app.table
            .transact(vec![community::ambassadors::counter_write(
                &format!("m{i}"),
                &[("ideas", *n)],
            )])
            .await
            .expect("counters");
    }
    community::ambassadors::run(&app).await.expect("run");
    let first = call(&router, "GET", "/ambassadors?limit=2", Some(&mkt), None).await;
    assert_eq!(first.status, 200);
    let ids: Vec<_> = first.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| a["member_id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("m0"), json!("m1")]);
    let line = &first.body["items"][0]["breakdown"][1];
    assert_eq!(line["counter"], "ideas");
    assert_eq!(line["count"], 5);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let next = call(
        &router,
        "GET",
        &format!("/ambassadors?limit=2&cursor={cursor}"),
        Some(&mkt),
        None,
    )
    .await;
    assert_eq!(next.body["items"][0]["member_id"], "m2");
    assert_eq!(next.body["items"].as_array().map(Vec::len), Some(1));
    // Bad parameters are named.
    for (q, field) in [("limit=0", "limit"), ("sort=top", "sort")] {
        let r = call(
            &router,
            "GET",
            &format!("/ambassadors?{q}"),
            Some(&mkt),
            None,
        )
        .await;
        assert_eq!(r.status, 400, "{q}");
        assert_eq!(r.fields(), vec![field.to_string()]);
    }
    let r = call(
        &router,
        "GET",
        "/ambassadors?cursor=forged",
        Some(&mkt),
        None,
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(r.fields(), vec!["cursor".to_string()]);
}
