//! Brand partners (API.md v1.1 "Brand partners"): a token whose groups hold
//! one `brand:<slug>` acts for that brand only (`Caller::brand`). Besides
//! publishing its own challenges' results and reading its own surveys'
//! results, it reads `GET /brands/me/report`: the campaigns the applied
//! campaign files attach to its slug, with their figures.
//!
//! **Which campaigns.** Contests whose `brand` is the slug, challenges whose
//! `sponsor.brand` is, product tests whose `brand_slug` is, surveys whose
//! `brand` is: read from the campaigns' lists (gsi1 `CONTESTS`,
//! `CHALLENGES`, `PRODUCT_TESTS`, `SURVEYS`; one item per campaign, as
//! applied), the other brands' left out. A brand never sees another's.
//!
//! **Figures** come from the aggregates kept as events arrive, never from
//! the entries themselves (no scan, nothing read per member):
//! - contest entries: the `n` of the contest's results shards
//!   (`CONTEST#{id} / RESULTS#nn`, folded by the insights consumer from each
//!   `contest.entered`; one Query). A member enters once, so the entries
//!   are the unique participants.
//! - challenges: proposals, votes and unique participants (authors and
//!   voters, each counted once ever by its participant record) of
//!   `CHSTATS#{id}` (`challenges::participation`; one Query).
//! - product tests: applications (`PTEST#{id} / RESULTS#nn`, one per member,
//!   folded per batch by the insights consumer from `product_test.applied`,
//!   never in the application's own transaction; one Query), testers selected
//!   (the selection on the test's item), tester reviews and the product's
//!   reviews, average and label (`PTEST#{id} / COUNTER`,
//!   `PRODUCT#{ean} / STATS`; one BatchGetItem).
//! - survey responses: the `n` of `SURVEY#{id} / RESULTS#nn` (one per
//!   member; one Query).
//! - mails: the campaign's community mail — a contest's or product test's
//!   announcement (`news-contest-{id}-news`, `news-product-test-{id}-news`),
//!   a challenge's results (`results_mail_id`, recorded when they are
//!   published) — sent and unique clicks summed over its
//!   `MAIL#{id} / STATS#nn` shards (one BatchGetItem). Surveys are not
//!   mailed by the community (marketing invites their audience): `null`.
//!
//! **No personal data**: only counts and the campaigns' own fields; no
//! member id, name, pseudonym or address, no answer, no winner.

use crate::app::App;
use crate::auth::Caller;
use crate::campaigns::{
    config_of, news_event_id, ChallengeConfig, ContestConfig, ProductTestConfig, CHALLENGES_PK,
    CONTEST, PRODUCT_TEST,
};
use crate::error::{Error, Result};
use crate::store::{all_pages, Index, Item, Query};
use crate::surveys::SurveyConfig;
use futures::future::try_join_all;
use serde_json::{json, Value};

/// gsi1 partitions of the campaign lists.
const CONTESTS_PK: &str = "CONTESTS";
const PRODUCT_TESTS_PK: &str = "PRODUCT_TESTS";

/// The campaigns of one list (gsi1 `pk`) whose config passes `mine`.
async fn campaigns<T: crate::store::Table, C: serde::de::DeserializeOwned>(
    app: &App<T>,
    pk: &str,
    mine: impl Fn(&C) -> bool,
) -> Result<Vec<(Item, C)>> {
    let items = all_pages(&app.table, Query::new(Index::Gsi1, pk).limit(100)).await?;
    Ok(items
        .into_iter()
        .filter_map(|i| {
            let c: C = config_of(&i)?;
            Some((i, c))
        })
        .filter(|(_, c)| mine(c))
        .collect())
}

/// A mail's figures, `null` when the campaign has none.
async fn mail<T: crate::store::Table>(app: &App<T>, mail_id: Option<String>) -> Result<Value> {
    let Some(id) = mail_id else {
        return Ok(Value::Null);
    };
    let (sent, clicks) = crate::mail::figures(app, &id).await?;
    let rate = (sent > 0).then(|| clicks as f64 / sent as f64);
    Ok(json!({"mail_id": id, "sent": sent, "unique_clicks": clicks, "unique_click_rate": rate}))
}

fn news_mail(kind: &str, id: &str) -> Option<String> {
    Some(crate::mail::templates::news_mail_id(&news_event_id(
        kind, id,
    )))
}

async fn contest<T: crate::store::Table>(app: &App<T>, c: &ContestConfig) -> Result<Value> {
    let pk = crate::campaigns::contest_key(&c.id).pk;
    let (sums, mail) = futures::try_join!(
        crate::surveys::counters(app, &pk),
        mail(app, news_mail(CONTEST, &c.id))
    )?;
    let entries = sums.get("n").copied().unwrap_or(0);
    Ok(
        json!({"id": c.id, "title": c.title, "opens_at": c.opens_at, "closes_at": c.closes_at,
              "entries": entries, "unique_participants": entries, "mail": mail}),
    )
}

async fn challenge<T: crate::store::Table>(
    app: &App<T>,
    item: &Item,
    c: &ChallengeConfig,
) -> Result<Value> {
    let mail_id = item
        .get("results_mail_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let (p, mail) = futures::try_join!(
        crate::challenges::participation(app, &c.id),
        mail(app, mail_id)
    )?;
    Ok(
        json!({"id": c.id, "title": c.title, "opens_at": c.opens_at, "closes_at": c.closes_at,
              "entries": p.proposals, "proposals": p.proposals, "votes": p.votes,
              "unique_participants": p.participants,
              "results_published": item.contains_key("results"), "mail": mail}),
    )
}

async fn product_test<T: crate::store::Table>(
    app: &App<T>,
    item: &Item,
    t: &ProductTestConfig,
) -> Result<Value> {
    let (applications, f, mail) = futures::try_join!(
        crate::products::applications(app, &t.id),
        crate::products::test_figures(app, &t.id, &t.ean),
        mail(app, news_mail(PRODUCT_TEST, &t.id))
    )?;
    let testers = item
        .get("selection")
        .and_then(|s| s["testers"].as_array())
        .map_or(0, Vec::len);
    let label = if f.labelled && f.label_test_id.as_deref() == Some(t.id.as_str()) {
        "earned"
    } else if f.labelled {
        "earned_by_another_test"
    } else {
        "not_earned"
    };
    Ok(
        json!({"id": t.id, "product_name": t.product_name, "ean": t.ean,
              "applications_open_at": t.applications_open_at,
              "reviews_close_at": t.reviews_close_at,
              "entries": applications, "unique_participants": applications,
              "testers": testers,
              "reviews": {"tester_reviews": f.tester_reviews,
                          "product_reviews": f.review_count,
                          "average_rating": f.average_rating},
              "label": {"status": label, "tester_reviews": f.tester_reviews,
                        "reviews_for_label": t.reviews_for_label},
              "mail": mail}),
    )
}

async fn survey<T: crate::store::Table>(app: &App<T>, s: &SurveyConfig) -> Result<Value> {
    let sums = crate::surveys::counters(app, &crate::surveys::survey_key(&s.id).pk).await?;
    let responses = sums.get("n").copied().unwrap_or(0);
    Ok(
        json!({"id": s.id, "title": s.title, "opens_at": s.opens_at, "closes_at": s.closes_at,
              "entries": responses, "unique_participants": responses, "mail": Value::Null}),
    )
}

/// `GET /brands/me/report`: the caller's brand (its one `brand:<slug>`
/// group) and its campaigns' figures. A token of no brand (marketing
/// included: it reads `GET /insights`) is refused.
pub async fn report<T: crate::store::Table>(app: &App<T>, caller: &Caller) -> Result<Value> {
    let Some(brand) = caller.brand().map(str::to_owned) else {
        return Err(Error::Forbidden(
            "only a brand partner's token (one `brand:<slug>` group) reads a brand report".into(),
        ));
    };
    let b = brand.as_str();
    let (contests, challenges, tests, surveys) = futures::try_join!(
        campaigns::<_, ContestConfig>(app, CONTESTS_PK, |c| c.brand.as_deref() == Some(b)),
        campaigns::<_, ChallengeConfig>(app, CHALLENGES_PK, |c| {
            c.sponsor.as_ref().is_some_and(|s| s.brand == b)
        }),
        campaigns::<_, ProductTestConfig>(app, PRODUCT_TESTS_PK, |t| {
            t.brand_slug.as_deref() == Some(b)
        }),
        campaigns::<_, SurveyConfig>(app, crate::surveys::LIST_PK, |s| {
            s.brand.as_deref() == Some(b)
        }),
    )?;
    let (contests, challenges, tests, surveys) = futures::try_join!(
        try_join_all(contests.iter().map(|(_, c)| contest(app, c))),
        try_join_all(challenges.iter().map(|(i, c)| challenge(app, i, c))),
        try_join_all(tests.iter().map(|(i, t)| product_test(app, i, t))),
        try_join_all(surveys.iter().map(|(_, s)| survey(app, s))),
    )?;
    Ok(json!({
        "brand": brand,
        "generated_at": crate::domain::now(),
        "contests": contests,
        "challenges": challenges,
        "product_tests": tests,
        "surveys": surveys,
    }))
}

/// `GET /insights` `brand_reach`: per sponsoring brand (every slug the
/// applied campaign files name), its campaigns and what they reached,
/// summed from the same per-campaign figures as [`report`]: entries
/// (contest entries, défi proposals, applications, survey responses),
/// participations (each campaign's unique participants, summed over its
/// campaigns: a member in two campaigns counts twice), the community mails
/// sent for them and their unique clicks. The lists are read once; each
/// sponsored campaign costs what it costs in a brand's report.
pub async fn reach<T: crate::store::Table>(app: &App<T>) -> Result<Value> {
    let (contests, challenges, tests, surveys) = futures::try_join!(
        campaigns::<_, ContestConfig>(app, CONTESTS_PK, |c| c.brand.is_some()),
        campaigns::<_, ChallengeConfig>(app, CHALLENGES_PK, |c| c.sponsor.is_some()),
        campaigns::<_, ProductTestConfig>(app, PRODUCT_TESTS_PK, |t| t.brand_slug.is_some()),
        campaigns::<_, SurveyConfig>(app, crate::surveys::LIST_PK, |s| s.brand.is_some()),
    )?;
    let (c_fig, ch_fig, t_fig, s_fig) = futures::try_join!(
        try_join_all(contests.iter().map(|(_, c)| contest(app, c))),
        try_join_all(challenges.iter().map(|(i, c)| challenge(app, i, c))),
        try_join_all(tests.iter().map(|(i, t)| product_test(app, i, t))),
        try_join_all(surveys.iter().map(|(_, s)| survey(app, s))),
    )?;
    let brands = contests
        .iter()
        .map(|(_, c)| c.brand.clone())
        .zip(c_fig)
        .chain(
            challenges
                .iter()
                .map(|(_, c)| c.sponsor.as_ref().map(|s| s.brand.clone()))
                .zip(ch_fig),
        )
        .chain(tests.iter().map(|(_, t)| t.brand_slug.clone()).zip(t_fig))
        .chain(surveys.iter().map(|(_, s)| s.brand.clone()).zip(s_fig));
    #[derive(Default)]
    struct Reach {
        campaigns: i64,
        entries: i64,
        participations: i64,
        sent: i64,
        clicks: i64,
    }
    let mut per: std::collections::BTreeMap<String, Reach> = Default::default();
    for (brand, fig) in brands {
        let Some(brand) = brand else { continue };
        let n = |v: &Value| v.as_i64().unwrap_or(0);
        let r = per.entry(brand).or_default();
        r.campaigns += 1;
        r.entries += n(&fig["entries"]);
        r.participations += n(&fig["unique_participants"]);
        r.sent += n(&fig["mail"]["sent"]);
        r.clicks += n(&fig["mail"]["unique_clicks"]);
    }
    Ok(Value::Array(
        per.into_iter()
            .map(|(brand, r)| {
                let rate = (r.sent > 0).then(|| r.clicks as f64 / r.sent as f64);
                json!({"brand": brand, "campaigns": r.campaigns, "entries": r.entries,
                       "participations": r.participations, "mails_sent": r.sent,
                       "mail_unique_clicks": r.clicks, "unique_click_rate": rate})
            })
            .collect(),
    ))
}
