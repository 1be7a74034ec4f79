//! Product tests (applications, verifiable tester selection), reviews and
//! the "Testé par la Communauté" label.
//!
//! Keys: product test `PTEST#{id} / PTEST` (gsi1 `PRODUCT_TESTS`, gsi2
//! `PRODUCT#{ean}`); application `APPLY#{test}#{member} / APPLY` (gsi1
//! `APPLICANTS#{test}#{bucket}`); tester `TESTER#{test}#{member} / TESTER`;
//! review `REVIEW#{ean}#{member} / REVIEW` (gsi1 `REVIEWS#{ean}` by date);
//! product figures `PRODUCT#{ean} / STATS` (review count, rating sum, label),
//! per-test tester reviews `PTEST#{id} / COUNTER`.

use crate::app::App;
use crate::auth::{Caller, MARKETING};
use crate::campaigns::{config_of, product_test_key, valid_ean13, ProductTestConfig};
use crate::contests::{all_members, seed, ENTRY_BUCKETS};
use crate::domain::{now, parse_ts, Errors, FieldError};
use crate::draw;
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::ListPage;
use crate::members;
use crate::receipt::Receipt;
use crate::store::{cursor, Cond, Index, Item, Key, Query, StoreError, Table, Update, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

fn bucket(member: &str) -> u32 {
    let h = Sha256::digest(member.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % ENTRY_BUCKETS
}

fn obj(v: Value) -> Result<Item> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(Error::Store(StoreError::Invalid("item".into()))),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProductTestView {
    #[serde(flatten)]
    pub config: ProductTestConfig,
    /// upcoming, applications_open, selecting, reviewing, closed.
    pub phase: &'static str,
    pub seed_hash: String,
    pub selection: Option<Value>,
}

fn phase(c: &ProductTestConfig, at: time::OffsetDateTime) -> &'static str {
    let t = |s: &str| parse_ts(s).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    if at < t(&c.applications_open_at) {
        "upcoming"
    } else if at < t(&c.applications_close_at) {
        "applications_open"
    } else if at < t(&c.reviews_open_at) {
        "selecting"
    } else if at < t(&c.reviews_close_at) {
        "reviewing"
    } else {
        "closed"
    }
}

fn view(item: &Item) -> Result<ProductTestView> {
    let config: ProductTestConfig =
        config_of(item).ok_or_else(|| Error::Store(StoreError::Invalid("product test".into())))?;
    Ok(ProductTestView {
        phase: phase(&config, time::OffsetDateTime::now_utc()),
        seed_hash: item
            .get("seed_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        selection: item.get("selection").cloned(),
        config,
    })
}

pub async fn list<T: Table>(
    app: &App<T>,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<ProductTestView>> {
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi1, "PRODUCT_TESTS")?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi1, "PRODUCT_TESTS")
                .backward()
                .limit(limit)
                .start_after(start),
        )
        .await?;
    Ok(ListPage {
        items: page.items.iter().map(view).collect::<Result<_>>()?,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

pub async fn get<T: Table>(app: &App<T>, id: &str) -> Result<ProductTestView> {
    match app.table.get(&product_test_key(id), true).await? {
        Some(i) => view(&i),
        None => Err(Error::NotFound("product test")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplicationRequest {
    pub motivation: Option<String>,
}

/// `POST /product-tests/{id}/applications`.
pub async fn apply<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &str,
    req: ApplicationRequest,
    receipt: Option<&Receipt>,
) -> Result<Value> {
    let t = get(app, id).await?;
    if t.phase != "applications_open" {
        return Err(Error::Conflict(format!(
            "applications are not open (the test is {})",
            t.phase
        )));
    }
    let motivation = match req
        .motivation
        .map(|m| m.trim().to_owned())
        .filter(|m| !m.is_empty())
    {
        Some(m) if m.chars().count() > 1000 => {
            return Err(Error::invalid(
                "motivation",
                "must be at most 1000 characters",
            ))
        }
        Some(m) if crate::domain::refuse_controls("motivation", &m, true).is_err() => {
            return Err(Error::invalid(
                "motivation",
                "must not contain control characters other than line breaks and tabs",
            ))
        }
        other => other,
    };
    let member = members::require(app, caller).await?;
    let at = now();
    let k = Key::new(format!("APPLY#{id}#{}", member.id), "APPLY");
    let body = json!({"product_test_id": id, "member_id": member.id, "motivation": motivation, "applied_at": at,
        "draw_pseudonym": draw::pseudonym(id, &member.id)});
    let mut item = obj(body.clone())?;
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert(
        "gsi1pk".into(),
        json!(format!("APPLICANTS#{id}#{:02}", bucket(&member.id))),
    );
    item.insert("gsi1sk".into(), json!(member.id));
    let pointer = crate::contrib::pointer(
        &member.id,
        crate::contrib::ContribKind::Application,
        &at,
        id,
        &k,
    );
    match commit(
        &app.table,
        vec![
            Write::put_new(item),
            pointer,
            Event::new(
                Kind::ProductTestApplied,
                &member.id,
                None,
                json!({ "product_test_id": id }),
            )
            .write(),
        ],
        receipt.map(|r| (r, 201, &body)),
    )
    .await
    {
        Ok(()) => Ok(body),
        Err(e) if e.failed_on(&k) => Err(Error::Conflict(
            "you have already applied to this test".into(),
        )),
        Err(e) => Err(e),
    }
}

/// The partition of a product test's counters (`RESULTS#nn`: its
/// applications, folded by the insights consumer per batch from each
/// `product_test.applied`; `COUNTER`: its testers' reviews).
pub fn counters_pk(id: &str) -> String {
    test_pk(id)
}

/// The partition of product test `id`: its config row (`PTEST`, written
/// by `campaigns apply`) and its counters.
pub fn test_pk(id: &str) -> String {
    format!("PTEST#{id}")
}

/// The product test a partition key names, if it names one.
pub fn test_id_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix("PTEST#")
}

/// A product test's keys on gsi2, which lists a product's tests (the
/// "Tested by the Community" label reads them by EAN).
pub fn product_index_keys(ean: &str, id: &str) -> (String, String) {
    (product_pk(ean), format!("PTEST#{id}"))
}

fn product_pk(ean: &str) -> String {
    format!("PRODUCT#{ean}")
}

/// The applications to product test `id` (each member applies once): the
/// sum of its results shards (one Query of 16 items at most). Counted as
/// the insights consumer folds the events: a moment behind the requests.
pub async fn applications<T: Table>(app: &App<T>, id: &str) -> Result<i64> {
    let sums = crate::surveys::counters(app, &counters_pk(id)).await?;
    Ok(sums.get("applications").copied().unwrap_or(0))
}

/// A product test's review figures: its testers' reviews
/// (`PTEST#{id} / COUNTER`) and the product's (`PRODUCT#{ean} / STATS`:
/// count, average, label and the test that earned it). One BatchGetItem.
pub async fn test_figures<T: Table>(app: &App<T>, id: &str, ean: &str) -> Result<TestFigures> {
    let counter = Key::new(test_pk(id), "COUNTER");
    let stats = stats_key(ean);
    let items = app
        .table
        .get_many(&[counter.clone(), stats.clone()], false)
        .await?;
    let mut f = TestFigures::default();
    for i in &items {
        let n = |a: &str| i.get(a).and_then(Value::as_i64).unwrap_or(0);
        if Key::of(i).as_ref() == Some(&counter) {
            f.tester_reviews = n("tester_reviews");
        } else {
            f.review_count = n("review_count");
            let sum = n("rating_sum");
            f.average_rating = (f.review_count > 0)
                .then(|| ((sum as f64 / f.review_count as f64) * 100.0).round() / 100.0);
            f.labelled = i
                .get("tested_by_community")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            f.label_test_id = i
                .get("label_test_id")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
    }
    Ok(f)
}

/// See [`test_figures`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestFigures {
    pub tester_reviews: i64,
    pub review_count: i64,
    pub average_rating: Option<f64>,
    /// The product carries the label.
    pub labelled: bool,
    /// The product test whose tester reviews earned it.
    pub label_test_id: Option<String>,
}

pub fn tester_key(test: &str, member: &str) -> Key {
    Key::new(format!("TESTER#{test}#{member}"), "TESTER")
}

/// `POST /product-tests/{id}/selection`: after applications close, once;
/// marketing only. Testers are drawn among applicants (never more than the
/// slots) with the verifiable draw.
pub async fn select<T: Table>(app: &App<T>, caller: &Caller, id: &str) -> Result<Value> {
    if !caller.in_group(MARKETING) {
        return Err(Error::Forbidden("only marketing may select testers".into()));
    }
    let t = get(app, id).await?;
    if t.selection.is_some() {
        return Err(Error::Conflict("testers have already been selected".into()));
    }
    if matches!(t.phase, "upcoming" | "applications_open") {
        return Err(Error::Conflict(format!(
            "testers are selected after applications close (the test is {})",
            t.phase
        )));
    }
    let applicants = all_members(app, &format!("APPLICANTS#{id}"), ENTRY_BUCKETS).await?;
    let s = seed(app, "product-test", id).await?;
    let proof = draw::run(id, &s, &applicants, t.config.slots as usize);
    let by_pseudonym: std::collections::HashMap<String, String> = applicants
        .iter()
        .map(|m| (draw::pseudonym(id, m), m.clone()))
        .collect();
    let selected: Vec<String> = proof
        .winners
        .iter()
        .filter_map(|p| by_pseudonym.get(p).cloned())
        .collect();
    crate::contests::store_pages(app, "product-test", id, &proof).await?;
    let summary = proof.summary(&format!("/product-tests/{id}/selection/entries"));
    let result = json!({"selected_at": now(), "testers": proof.winners, "proof": summary});
    // The selection record and the event first (once), then the tester marks.
    let event = Event::new(
        Kind::TestersSelected,
        caller.id.as_str(),
        None,
        json!({"product_test_id": id,
        "product_name": t.config.product_name, "members": selected}),
    );
    let writes = vec![
        Write::update(
            product_test_key(id),
            Update::default().set("selection", result.clone()),
        )
        .when(Cond::AttrAbsent("selection".into())),
        event.write(),
    ];
    match app.table.transact(writes).await {
        Ok(()) => {}
        Err(StoreError::ConditionFailed { .. }) => {
            return Err(Error::Conflict("testers have already been selected".into()))
        }
        Err(e) => return Err(e.into()),
    }
    for m in &selected {
        let k = tester_key(id, m);
        app.table
            .transact(vec![Write::put(obj(
                json!({"pk": k.pk, "sk": k.sk, "member_id": m, "product_test_id": id}),
            )?)])
            .await?;
    }
    Ok(result)
}

/// `GET /product-tests/{id}/selection/entries?cursor=`: public.
pub async fn selection_entries<T: Table>(
    app: &App<T>,
    id: &str,
    cursor: Option<&str>,
) -> Result<crate::contests::EntriesPage> {
    let item = app
        .table
        .get(&product_test_key(id), true)
        .await?
        .ok_or(Error::NotFound("product test"))?;
    crate::contests::read_page(
        app,
        "product-test",
        id,
        item.get("selection"),
        cursor,
        "selection",
    )
    .await
}

/// Whether a member was selected for a test (the selection record is the
/// truth; tester marks are its index).
async fn is_tester<T: Table>(app: &App<T>, test: &str, member: &str) -> Result<bool> {
    if app
        .table
        .get(&tester_key(test, member), true)
        .await?
        .is_some()
    {
        return Ok(true);
    }
    let t = get(app, test).await?;
    let p = draw::pseudonym(test, member);
    Ok(t.selection
        .as_ref()
        .and_then(|s| s["testers"].as_array())
        .is_some_and(|a| a.iter().any(|x| x == &json!(p))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    #[serde(default, deserialize_with = "crate::domain::optional_integer")]
    pub rating: Option<i64>,
    pub title: Option<String>,
    pub body: Option<String>,
    pub product_test_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Review {
    pub id: String,
    pub ean: String,
    pub author: crate::ideas::Author,
    pub rating: i64,
    pub title: String,
    pub body: String,
    pub community_tester: bool,
    pub product_test_id: Option<String>,
    pub created_at: String,
    /// `"hidden"` while moderation hides it (never in the product's list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation: Option<String>,
}

/// A review is found by its id (reports, moderation) through gsi2.
pub fn review_id_pk(id: &str) -> String {
    format!("REVIEWID#{id}")
}

pub fn review_list_pk(ean: &str) -> String {
    format!("REVIEWS#{ean}")
}

pub fn stats_key(ean: &str) -> Key {
    Key::new(product_pk(ean), "STATS")
}

fn text(
    field: &str,
    v: Option<String>,
    min: usize,
    max: usize,
    multiline: bool,
) -> std::result::Result<String, FieldError> {
    let v = v.map(|s| s.trim().to_owned()).unwrap_or_default();
    let n = v.chars().count();
    if n < min || n > max {
        return Err(FieldError::new(
            field,
            format!("must be {min} to {max} characters long (it is {n})"),
        ));
    }
    crate::domain::refuse_controls(field, &v, multiline)?;
    Ok(v)
}

/// `POST /products/{ean}/reviews`.
pub async fn review<T: Table>(
    app: &App<T>,
    caller: &Caller,
    ean: &str,
    req: ReviewRequest,
    receipt: Option<&Receipt>,
) -> Result<Review> {
    if !valid_ean13(ean) {
        return Err(Error::NotFound("product"));
    }
    let mut errs = Errors::default();
    let rating = match req.rating {
        Some(r) if (1..=5).contains(&r) => Some(r),
        _ => {
            errs.push(FieldError::new(
                "rating",
                "must be a whole number from 1 to 5",
            ));
            None
        }
    };
    let title = errs.take(text("title", req.title, 3, 120, false));
    let body = errs.take(text("body", req.body, 10, 5000, true));
    let (Some(rating), Some(title), Some(body)) = (rating, title, body) else {
        return Err(Error::Invalid(errs.0));
    };
    let member = members::require(app, caller).await?;
    let mut test: Option<ProductTestView> = None;
    if let Some(tid) = &req.product_test_id {
        let t = match get(app, tid).await {
            Ok(t) => t,
            Err(Error::NotFound(_)) => {
                return Err(Error::invalid("product_test_id", "no such product test"))
            }
            Err(e) => return Err(e),
        };
        if t.config.ean != ean {
            return Err(Error::invalid(
                "product_test_id",
                "this test is about another product",
            ));
        }
        if !is_tester(app, tid, &member.id).await? {
            return Err(Error::Forbidden(
                "only members selected for this product test may review as testers".into(),
            ));
        }
        if t.phase != "reviewing" {
            return Err(Error::Conflict(format!(
                "tester reviews are accepted during the review window (the test is {})",
                t.phase
            )));
        }
        test = Some(t);
    }
    let at = now();
    let r = Review {
        id: ulid::Ulid::new().to_string(),
        ean: ean.to_owned(),
        author: crate::ideas::Author {
            id: member.id.clone(),
            display_name: member.display_name.clone(),
        },
        rating,
        title,
        body,
        community_tester: test.is_some(),
        product_test_id: test.as_ref().map(|t| t.config.id.clone()),
        created_at: at.clone(),
        moderation: None,
    };
    let k = Key::new(format!("REVIEW#{ean}#{}", member.id), "REVIEW");
    let mut item =
        obj(serde_json::to_value(&r).map_err(|e| Error::Store(StoreError::unavailable(e)))?)?;
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("gsi1pk".into(), json!(review_list_pk(ean)));
    item.insert("gsi1sk".into(), json!(format!("{at}#{}", member.id)));
    item.insert("gsi2pk".into(), json!(review_id_pk(&r.id)));
    item.insert("gsi2sk".into(), json!("REVIEW"));
    let mut stats = Update::default()
        .add("review_count", 1)
        .add("rating_sum", rating);
    if test.is_some() {
        stats = stats.add("tester_reviews", 1);
    }
    let mut writes = vec![Write::put_new(item), Write::update(stats_key(ean), stats)];
    if let Some(t) = &test {
        writes.push(Write::update(
            Key::new(test_pk(&t.config.id), "COUNTER"),
            Update::default().add("tester_reviews", 1),
        ));
    }
    writes.push(crate::contrib::pointer(
        &member.id,
        crate::contrib::ContribKind::Review,
        &at,
        &r.id,
        &k,
    ));
    writes.push(
        Event::new(
            Kind::ReviewPosted,
            &member.id,
            None,
            json!({"ean": ean, "community_tester": test.is_some()}),
        )
        .write(),
    );
    let body_json =
        serde_json::to_value(&r).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    match commit(&app.table, writes, receipt.map(|rc| (rc, 201, &body_json))).await {
        Ok(()) => crate::metrics::record_review(),
        Err(e) if e.failed_on(&k) => {
            return Err(Error::Conflict(
                "you have already reviewed this product".into(),
            ))
        }
        Err(e) => return Err(e),
    }
    if let Some(t) = &test {
        // The label: once the test's tester reviews reach its threshold.
        let n = app
            .table
            .get(&Key::new(test_pk(&t.config.id), "COUNTER"), true)
            .await?
            .and_then(|c| c.get("tester_reviews").and_then(Value::as_i64))
            .unwrap_or(0);
        if n >= i64::from(t.config.reviews_for_label) {
            // Earned once: the label and marketing's count move together.
            match app
                .table
                .transact(vec![
                    Write::update(
                        stats_key(ean),
                        Update::default()
                            .set("tested_by_community", true)
                            .set("label_test_id", t.config.id.as_str()),
                    )
                    .when(Cond::AttrAbsent("tested_by_community".into())),
                    crate::insights::total_write("labels_earned", 1),
                ])
                .await
            {
                Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(r)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReviewPage {
    pub items: Vec<Review>,
    pub next_cursor: Option<String>,
    pub review_count: i64,
    pub average_rating: Option<f64>,
}

async fn figures<T: Table>(app: &App<T>, ean: &str) -> Result<(i64, Option<f64>, bool)> {
    let s = app
        .table
        .get(&stats_key(ean), false)
        .await?
        .unwrap_or_default();
    let count = s.get("review_count").and_then(Value::as_i64).unwrap_or(0);
    let sum = s.get("rating_sum").and_then(Value::as_i64).unwrap_or(0);
    let avg = (count > 0).then(|| ((sum as f64 / count as f64) * 100.0).round() / 100.0);
    Ok((
        count,
        avg,
        s.get("tested_by_community")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    ))
}

/// `GET /products/{ean}/reviews`: newest first, with the average.
pub async fn reviews<T: Table>(
    app: &App<T>,
    ean: &str,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ReviewPage> {
    if !valid_ean13(ean) {
        return Err(Error::NotFound("product"));
    }
    let pk = format!("REVIEWS#{ean}");
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi1, &pk)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi1, pk)
                .backward()
                .limit(limit)
                .start_after(start),
        )
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|i| {
            serde_json::from_value(Value::Object(i))
                .map_err(|e| Error::Store(StoreError::unavailable(e)))
        })
        .collect::<Result<Vec<Review>>>()?;
    let (review_count, average_rating, _) = figures(app, ean).await?;
    Ok(ReviewPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
        review_count,
        average_rating,
    })
}

/// `GET /products/{ean}/label`.
pub async fn label<T: Table>(app: &App<T>, ean: &str) -> Result<Value> {
    if !valid_ean13(ean) {
        return Err(Error::NotFound("product"));
    }
    let (review_count, average_rating, tested) = figures(app, ean).await?;
    Ok(
        json!({"ean": ean, "tested_by_community": tested, "review_count": review_count, "average_rating": average_rating}),
    )
}
