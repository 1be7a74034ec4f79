//! Basket uplift through the whole local server: a member signs up with a
//! card, the loyalty programme's stand-in (`POST /local/baskets`) sends
//! their weekly summaries (a week before joining, the week they joined),
//! the non-member baseline of that week, a card no member has and a poison
//! summary; the in-process `baskets` queue applies them, the poison one ends
//! in the dead letters, and marketing reads `basket_uplift` in
//! `GET /insights` (the export of the weeks: functions/baskets/tests).

use community::testing::settings;
use community::App;
use serde_json::json;
use std::time::Duration;

mod support;
use support::send;

const SECRET: &str = "test-secret";

/// The ISO week (`YYYY-Www`) of a time.
fn iso_week(t: time::OffsetDateTime) -> String {
    let (year, week, _) = t.to_iso_week_date();
    format!("{year:04}-W{week:02}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weekly_summaries_make_the_uplift_on_the_local_server() {
    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let node = local::Local::new(App::new(table, settings()), dir.path()).expect("local");
    let r = node.router(local::auth::Verifier::new(SECRET));
    let zoe = local::auth::sign(SECRET, "zoe", Some("zoe@example.fr"), &[], 600).expect("token");
    let mkt =
        local::auth::sign(SECRET, "mkt", None, &["marketing".to_string()], 600).expect("token");
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

    // Two weeks ago (before joining) and this week (the week she joined:
    // after), the baseline of this week, a non-member's card, a poison one.
    let now = time::OffsetDateTime::now_utc();
    let before = iso_week(now - time::Duration::weeks(2));
    let this = iso_week(now);
    let sent_at = "2026-01-01T00:00:00Z";
    let summaries = json!([
        {"kind": "member_week", "card": "9130012345678901", "week": before, "baskets": 2,
         "average_basket_eur": 20.0, "sent_at": sent_at},
        {"kind": "member_week", "card": "9130012345678901", "week": this, "baskets": 3,
         "average_basket_eur": 60.0, "sent_at": sent_at},
        {"kind": "baseline_week", "week": this, "baskets": 100, "average_basket_eur": 15.0,
         "customers": 40, "sent_at": sent_at},
        {"kind": "member_week", "card": "9130099999999999", "week": this, "baskets": 1,
         "average_basket_eur": 9.99, "sent_at": sent_at},
        {"kind": "member_week", "card": "9130012345678901", "week": this, "baskets": 3,
         "average_basket_eur": "60", "sent_at": sent_at},
    ]);
    let (st, sent) = send(&r, "POST", "/local/baskets", None, Some(summaries)).await;
    assert_eq!((st, sent["sent"].as_array().map(Vec::len)), (202, Some(5)));
    let (st, bad) = send(&r, "POST", "/local/baskets", None, None).await;
    assert_eq!(st, 400, "{bad}");
    node.pipeline
        .settle(Duration::from_secs(30))
        .await
        .expect("settle");
    let (_, dead) = send(&r, "GET", "/local/dead-letters", None, None).await;
    let dead = dead["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|d| d["queue"] == "baskets")
        .count();
    assert_eq!(dead, 1, "the poison summary");

    let (st, insights) = send(&r, "GET", "/insights", Some(&mkt), None).await;
    assert_eq!(st, 200, "{insights}");
    let u = &insights["basket_uplift"];
    assert_eq!(u["members_with_data"], json!(1));
    assert_eq!(u["members_paired"], json!(1));
    assert_eq!(u["unmatched_summaries"], json!(1));
    assert_eq!(u["before_joining"]["average_basket_eur"], json!(20.0));
    assert_eq!(u["after_joining"]["average_basket_eur"], json!(60.0));
    assert_eq!(u["after_vs_before"], json!(3.0));
    assert_eq!(u["same_weeks"]["weeks"], json!(1));
    assert_eq!(u["same_weeks"]["members_vs_baseline"], json!(4.0));
}
