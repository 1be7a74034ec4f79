//! Draws at scale: a 50,000-entry contest and a 20,000-application product
//! test draw, store every item under DynamoDB's 400 KB, and verify from the
//! summary plus the paged entry list. On moto (which serialises requests)
//! the same case runs with 7,000 entries and 6,500 applications — still
//! past the ~6,000 entries at which the proof used to overflow one item.
//! Entries and applications are loaded with direct store writes of the items
//! `contests::enter` and `products::apply` store: 100 per transaction on the
//! embedded store, one PutItem each on moto (moto copies the whole table for
//! every action of a transaction, so a 100-action load into a table of
//! thousands of items takes minutes and gigabytes).

mod support;

use community::auth::Caller;
use community::store::limits::{item_size, MAX_ITEM_BYTES};
use community::store::{Item, Table, Write};
use community::{contests, draw, products};
use serde_json::{json, Value};
use std::sync::Arc;
use support::{app, caller, obj};

fn at(secs: i64) -> String {
    community::domain::format_ts(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

fn closed_contest(id: &str) -> community::campaigns::ContestConfig {
    let text = format!(
        r#"
id = "{id}"
title = "Grand concours"
description = "Un concours très suivi."
sponsor = "Marque Exemple"
kind = "survey"
opens_at = "{}"
closes_at = "{}"
[[prizes]]
label = "Premier prix"
count = 1
[[prizes]]
label = "Panier"
count = 4
"#,
        at(-7200),
        at(-60)
    );
    toml::from_str(&text).expect("contest")
}

fn selecting_test(id: &str) -> community::campaigns::ProductTestConfig {
    community::campaigns::ProductTestConfig {
        id: id.into(),
        ean: "3560070123452".into(),
        product_name: "Yaourt".into(),
        brand: "Marque Exemple".into(),
        brand_slug: None,
        theme: None,
        slots: 25,
        applications_open_at: at(-7200),
        applications_close_at: at(-3600),
        reviews_open_at: at(-60),
        reviews_close_at: at(3600),
        reviews_for_label: 3,
    }
}

async fn load(
    table: &Arc<dyn Table>,
    kind: &str,
    id: &str,
    n: usize,
    per_write: usize,
) -> Vec<String> {
    use futures::stream::{self, StreamExt, TryStreamExt};
    let members: Vec<String> = (0..n).map(|i| format!("m{i:06}")).collect();
    let groups: Vec<Vec<Write>> = members
        .chunks(per_write)
        .map(|chunk| {
            chunk
                .iter()
                .map(|m| {
                    // The bucket from the member's number, as `enter` spreads them.
                    let i: usize = m[1..].parse().expect("m + number");
                    let (pk, sk, idx, field) = if kind == "contest" {
                        (
                            format!("ENTRY#{id}#{m}"),
                            "ENTRY",
                            format!("ENTRIES#{id}#{:02}", i % 16),
                            "contest_id",
                        )
                    } else {
                        (
                            format!("APPLY#{id}#{m}"),
                            "APPLY",
                            format!("APPLICANTS#{id}#{:02}", i % 16),
                            "product_test_id",
                        )
                    };
                    Write::put(obj(json!({"pk": pk, "sk": sk, "gsi1pk": idx, "gsi1sk": m,
                    "member_id": m, field: id, "draw_pseudonym": draw::pseudonym(id, m)})))
                })
                .collect()
        })
        .collect();
    stream::iter(groups)
        .map(|writes| table.transact(writes))
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await
        .expect("load");
    members
}

fn marketing() -> Caller {
    let mut c = caller("mkt");
    c.groups = vec!["marketing".into()];
    c
}

fn assert_small(what: &str, item: &Item) {
    let n = item_size(item);
    assert!(
        n < MAX_ITEM_BYTES,
        "{what}: {n} bytes, over DynamoDB's 400 KB"
    );
}

/// Reads every page through the domain functions behind the public routes,
/// checks each page item's size, and verifies.
async fn check(
    table: &Arc<dyn Table>,
    kind: &str,
    id: &str,
    result: &Value,
    members: &[String],
    count: usize,
) {
    let s: draw::Summary = serde_json::from_value(result["proof"].clone()).expect("summary");
    assert_eq!(s.entry_count, members.len());
    assert_eq!(s.entry_pages, members.len().div_ceil(draw::PAGE_SIZE));
    let a = app(table.clone(), |_| {});
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let p = if kind == "contest" {
            contests::draw_entries(&a, id, cursor.as_deref()).await
        } else {
            products::selection_entries(&a, id, cursor.as_deref()).await
        }
        .expect("page");
        assert!(p.items.len() <= draw::PAGE_SIZE);
        let k = contests::draw_page_key(kind, id, &s.entries_hash, pages.len());
        let stored = table.get(&k, true).await.expect("get").expect("page item");
        assert_small("an entry page", &stored);
        pages.push(p.items);
        match p.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(draw::verify_paged(&s, &pages), Ok(()));
    // community-draw-v1 is unchanged: the same draw over the member ids.
    let again = draw::run(id, &s.seed, members, count);
    assert_eq!(
        (again.entries_hash.clone(), again.winners.clone()),
        (s.entries_hash.clone(), s.winners.clone())
    );
    assert_eq!(again.entries, pages.concat());
}

async fn case(table: Arc<dyn Table>, entries: usize, applications: usize, per_write: usize) {
    let a = app(table.clone(), |_| {});
    community::campaigns::apply(
        &a.table,
        &community::campaigns::Campaigns {
            contests: vec![closed_contest("big")],
            product_tests: vec![selecting_test("yaourt")],
            challenges: vec![],
            files: None,
            ..Default::default()
        },
    )
    .await
    .expect("apply");
    let m = load(&table, "contest", "big", entries, per_write).await;
    let result = contests::run_draw(&a, &marketing(), "big")
        .await
        .expect("draw");
    assert_eq!(result["winners"].as_array().map(Vec::len), Some(5));
    check(&table, "contest", "big", &result, &m, 5).await;
    let row = table
        .get(&community::campaigns::contest_key("big"), true)
        .await
        .expect("get")
        .expect("contest");
    assert_small("the contest row", &row);
    let shown = contests::get(&a, "big").await.expect("get");
    assert_eq!(shown.status, "drawn");
    assert_eq!(
        shown.draw.as_ref().map(|d| &d["proof"]),
        Some(&result["proof"])
    );
    assert!(
        contests::run_draw(&a, &marketing(), "big").await.is_err(),
        "once"
    );

    let m = load(&table, "product-test", "yaourt", applications, per_write).await;
    let result = products::select(&a, &marketing(), "yaourt")
        .await
        .expect("select");
    assert_eq!(result["testers"].as_array().map(Vec::len), Some(25));
    check(&table, "product-test", "yaourt", &result, &m, 25).await;
    let row = table
        .get(&community::campaigns::product_test_key("yaourt"), true)
        .await
        .expect("get")
        .expect("test");
    assert_small("the product-test row", &row);
}

#[tokio::test]
async fn a_50000_entry_contest_and_a_20000_application_test_draw_and_verify_embedded() {
    let (t, _d) = support::embedded();
    case(t, 50_000, 20_000, 100).await;
}

#[tokio::test]
async fn large_draws_on_dynamodb() {
    let Some(t) = support::dynamodb().await else {
        return;
    };
    case(t, 7_000, 6_500, 1).await;
}
