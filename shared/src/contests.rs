//! Contests: listing, entry (window, eligibility, one per member and per
//! loyalty card, answers checked against the survey) and the verifiable draw.
//!
//! Keys: contest `CONTEST#{id} / CONTEST` (gsi1 `CONTESTS`); entry
//! `ENTRY#{contest}#{member} / ENTRY` (gsi1 `ENTRIES#{contest}#{bucket}` so a
//! launch-day rush spreads over 16 index partitions); loyalty-card guard
//! `ENTRYCARD#{contest}#{card} / CARD`.

use crate::app::App;
use crate::auth::{Caller, MARKETING};
use crate::campaigns::{config_of, contest_key, seed_key, ContestConfig, QuestionType};
use crate::domain::{now, parse_ts, FieldError};
use crate::draw;
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::ListPage;
use crate::members;
use crate::receipt::Receipt;
use crate::store::{Cond, Index, Item, Key, Query, StoreError, Table, Update, Write};
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

pub const ENTRY_BUCKETS: u32 = 16;

fn bucket(member: &str) -> u32 {
    let h = Sha256::digest(member.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % ENTRY_BUCKETS
}

pub fn entry_key(contest: &str, member: &str) -> Key {
    Key::new(format!("ENTRY#{contest}#{member}"), "ENTRY")
}

/// The loyalty-card guard of a contest (one entry per card).
pub fn entry_card_key(contest: &str, card: &str) -> Key {
    Key::new(format!("ENTRYCARD#{contest}#{card}"), "CARD")
}

#[derive(Debug, Clone, Serialize)]
pub struct ContestView {
    #[serde(flatten)]
    pub config: ContestConfig,
    /// upcoming, open, closed or drawn.
    pub status: &'static str,
    /// The commitment to the secret draw seed.
    pub seed_hash: String,
    /// Present once drawn: winners and the proof.
    pub draw: Option<Value>,
}

fn status(c: &ContestConfig, drawn: bool, at: time::OffsetDateTime) -> &'static str {
    if drawn {
        return "drawn";
    }
    match (parse_ts(&c.opens_at), parse_ts(&c.closes_at)) {
        (Some(o), _) if at < o => "upcoming",
        (_, Some(cl)) if at < cl => "open",
        _ => "closed",
    }
}

fn view(item: &Item) -> Result<ContestView> {
    let config: ContestConfig = config_of(item)
        .ok_or_else(|| Error::Store(StoreError::Invalid("contest config".into())))?;
    let draw = item.get("draw").cloned();
    Ok(ContestView {
        status: status(&config, draw.is_some(), time::OffsetDateTime::now_utc()),
        seed_hash: item
            .get("seed_hash")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        draw,
        config,
    })
}

pub async fn list<T: Table>(
    app: &App<T>,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<ContestView>> {
    let start = crate::store::cursor::start(cursor_in.as_deref(), Index::Gsi1, "CONTESTS")?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi1, "CONTESTS")
                .backward()
                .limit(limit)
                .start_after(start),
        )
        .await?;
    Ok(ListPage {
        items: page.items.iter().map(view).collect::<Result<_>>()?,
        next_cursor: page.last_key.as_ref().map(crate::store::cursor::encode),
    })
}

pub async fn get<T: Table>(app: &App<T>, id: &str) -> Result<ContestView> {
    match app.table.get(&contest_key(id), true).await? {
        Some(i) => view(&i),
        None => Err(Error::NotFound("contest")),
    }
}

/// Checks answers against the questions; errors name `answers.{question}`.
pub fn check_answers(
    c: &ContestConfig,
    answers: &Map<String, Value>,
) -> std::result::Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    for k in answers.keys() {
        if !c.questions.iter().any(|q| &q.id == k) {
            errs.push(FieldError::new(
                format!("answers.{k}"),
                "is not a question of this contest",
            ));
        }
    }
    for q in &c.questions {
        let f = format!("answers.{}", q.id);
        let Some(a) = answers.get(&q.id).filter(|v| !v.is_null()) else {
            if q.required {
                errs.push(FieldError::new(f, "is required"));
            }
            continue;
        };
        let ok = match q.kind {
            QuestionType::SingleChoice => {
                a.as_str().is_some_and(|s| q.options.iter().any(|o| o == s))
            }
            QuestionType::MultipleChoice => a.as_array().is_some_and(|v| {
                let picked: Vec<&str> = v.iter().filter_map(Value::as_str).collect();
                let mut uniq = picked.clone();
                uniq.sort();
                uniq.dedup();
                picked.len() == v.len()
                    && uniq.len() == picked.len()
                    && !picked.is_empty()
                    && picked.iter().all(|p| q.options.iter().any(|o| o == p))
            }),
            QuestionType::FreeText => a
                .as_str()
                .is_some_and(|s| (1..=2000).contains(&s.trim().chars().count())),
            QuestionType::Rating => {
                crate::domain::json_integer(a).is_some_and(|n| (1..=5).contains(&n))
            }
        };
        if !ok {
            let msg = match q.kind {
                QuestionType::SingleChoice => format!("must be one of: {}", q.options.join(" | ")),
                QuestionType::MultipleChoice => format!(
                    "must be a list of distinct options among: {}",
                    q.options.join(" | ")
                ),
                QuestionType::FreeText => "must be text of 1 to 2000 characters".into(),
                QuestionType::Rating => "must be a whole number from 1 to 5".into(),
            };
            errs.push(FieldError::new(f, msg));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntryRequest {
    #[serde(default)]
    pub answers: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entry {
    pub contest_id: String,
    pub member_id: String,
    /// The member's pseudonym in the draw's published entry list.
    pub draw_pseudonym: String,
    pub entered_at: String,
}

/// `POST /contests/{id}/entries`.
pub async fn enter<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &str,
    req: EntryRequest,
    receipt: Option<&Receipt>,
) -> Result<Entry> {
    let item = app
        .table
        .get(&contest_key(id), true)
        .await?
        .ok_or(Error::NotFound("contest"))?;
    let v = view(&item)?;
    if v.status != "open" {
        return Err(Error::Conflict(format!(
            "this contest is not open (it is {})",
            v.status
        )));
    }
    caller.require_verified_email()?;
    let member = members::require(app, caller).await?;
    let c = &v.config;
    if !c.eligibility.cohorts.is_empty() && !c.eligibility.cohorts.contains(&member.cohort) {
        return Err(Error::Forbidden(format!(
            "this contest is open to the {} cohorts",
            c.eligibility.cohorts.join(", ")
        )));
    }
    if c.eligibility.min_membership_days > 0 {
        let joined = parse_ts(&member.joined_at).unwrap_or_else(time::OffsetDateTime::now_utc);
        let days = (time::OffsetDateTime::now_utc() - joined).whole_days();
        if days < i64::from(c.eligibility.min_membership_days) {
            return Err(Error::Forbidden(format!(
                "members of at least {} days may enter",
                c.eligibility.min_membership_days
            )));
        }
    }
    let req_answers = req.answers.clone().unwrap_or_default();
    check_answers(c, &req_answers).map_err(Error::Invalid)?;
    crate::ratelimit::check(app, &member.id, crate::ratelimit::Action::Entry).await?;
    let at = now();
    let entry = Entry {
        contest_id: id.to_owned(),
        member_id: member.id.clone(),
        draw_pseudonym: draw::pseudonym(id, &member.id),
        entered_at: at.clone(),
    };
    let k = entry_key(id, &member.id);
    let record = json!({"pk": k.pk, "sk": k.sk, "contest_id": id, "member_id": member.id,
        "answers": req.answers.unwrap_or_default(), "entered_at": at,
        "gsi1pk": format!("ENTRIES#{id}#{:02}", bucket(&member.id)), "gsi1sk": member.id});
    let Value::Object(record) = record else {
        return Err(Error::Store(StoreError::Invalid("entry".into())));
    };
    let mut writes = vec![Write::put_new(record)];
    let pointer = crate::contrib::pointer(
        &member.id,
        crate::contrib::ContribKind::Entry,
        &at,
        id,
        &entry_key(id, &member.id),
    );
    if let Some(card) = &member.loyalty_card {
        let ck = entry_card_key(id, card);
        let guard = json!({"pk": ck.pk, "sk": ck.sk, "member_id": member.id});
        if let Value::Object(g) = guard {
            writes.push(Write::put_new(g));
        }
    }
    let points = if c.entry_points > 0 {
        Some(c.entry_points)
    } else {
        None
    };
    writes.push(pointer);
    writes.push(
        Event::new(
            Kind::ContestEntered,
            &member.id,
            None,
            json!({"contest_id": id, "points": points,
                   crate::surveys::TALLY: crate::surveys::tally(&survey_questions(c), &req_answers)}),
        )
        .write(),
    );
    let body =
        serde_json::to_value(&entry).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    match commit(&app.table, writes, receipt.map(|r| (r, 201, &body))).await {
        Ok(()) => {
            crate::metrics::record_contest_entry(id);
            Ok(entry)
        }
        Err(e) if e.failed_on(&k) => Err(Error::Conflict(
            "you have already entered this contest".into(),
        )),
        Err(e)
            if member
                .loyalty_card
                .as_ref()
                .is_some_and(|card| e.failed_on(&entry_card_key(id, card))) =>
        {
            Err(Error::Conflict(
                "this loyalty card has already been used to enter this contest".into(),
            ))
        }
        Err(e) => Err(e),
    }
}

/// Reads every member id of a bucketed index (entries, applications, voters).
pub async fn all_members<T: Table>(
    app: &App<T>,
    prefix: &str,
    buckets: u32,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in 0..buckets {
        let mut start = None;
        loop {
            let page = app
                .table
                .query(
                    &Query::new(Index::Gsi1, format!("{prefix}#{b:02}"))
                        .limit(1000)
                        .start_after(start.take()),
                )
                .await?;
            out.extend(page.items.iter().filter_map(|i| {
                i.get("member_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }));
            match page.last_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    Ok(out)
}

/// The key of page `index` of a draw's entry list. Pages are keyed by the
/// list's `entries_hash`, so two racing draws over different lists never mix
/// pages, and a retried draw rewrites the same pages with the same content;
/// each page is its own partition (a ~330 KB page is a ~330 WCU PutItem, so
/// pages sharing a partition would hit its 1,000 WCU/s).
pub fn draw_page_key(kind: &str, id: &str, entries_hash: &str, index: usize) -> Key {
    Key::new(
        format!("DRAW#{kind}#{id}#{entries_hash}#{index:05}"),
        "PAGE",
    )
}

/// Writes a proof's entry pages (one idempotent PutItem per page, each well
/// under 400 KB), before the conditional write that publishes the draw;
/// a throttled or conflicting put is retried with backoff (~6 s in all).
pub async fn store_pages<T: Table>(
    app: &App<T>,
    kind: &str,
    id: &str,
    proof: &draw::Proof,
) -> Result<()> {
    for (i, page) in proof.pages().into_iter().enumerate() {
        let k = draw_page_key(kind, id, &proof.entries_hash, i);
        let item = json!({"pk": k.pk, "sk": k.sk, "page": i, "page_hash": draw::entries_hash(&page),
            "entries": page});
        let Value::Object(item) = item else {
            return Err(Error::Store(StoreError::Invalid("draw page".into())));
        };
        let mut attempt = 0u32;
        loop {
            match app.table.transact(vec![Write::put(item.clone())]).await {
                Ok(()) => break,
                Err(StoreError::Conflict | StoreError::Throttled) if attempt < 8 => {
                    crate::retry::pause(attempt).await;
                    attempt += 1;
                }
                Err(StoreError::Conflict | StoreError::Throttled) => return Err(Error::Busy),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// One page of a draw's entry list.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EntriesPage {
    pub items: Vec<String>,
    pub next_cursor: Option<String>,
    pub page: usize,
    pub entry_pages: usize,
    pub page_hash: String,
    pub entry_count: usize,
    pub entries_hash: String,
}

/// Reads page `cursor` (a page number, "0" when absent) of the entry list of
/// a published proof (`result["proof"]`).
pub async fn read_page<T: Table>(
    app: &App<T>,
    kind: &str,
    id: &str,
    result: Option<&Value>,
    cursor: Option<&str>,
    what: &'static str,
) -> Result<EntriesPage> {
    let Some(proof) = result.map(|r| &r["proof"]) else {
        return Err(Error::NotFound(what));
    };
    let s: draw::Summary = serde_json::from_value(proof.clone())
        .map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    let page = match cursor {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n < s.entry_pages.max(1) => n,
            _ => return Err(Error::invalid("cursor", "is not a cursor of this list")),
        },
    };
    let items = if s.entry_pages == 0 {
        Vec::new()
    } else {
        let item = app
            .table
            .get(&draw_page_key(kind, id, &s.entries_hash, page), false)
            .await?
            .ok_or_else(|| Error::Store(StoreError::Invalid("missing draw page".into())))?;
        item.get("entries")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(EntriesPage {
        items,
        next_cursor: (page + 1 < s.entry_pages).then(|| (page + 1).to_string()),
        page,
        entry_pages: s.entry_pages,
        page_hash: s
            .page_hashes
            .get(page)
            .cloned()
            .unwrap_or_else(|| draw::entries_hash(&[])),
        entry_count: s.entry_count,
        entries_hash: s.entries_hash,
    })
}

/// `GET /contests/{id}/draw/entries?cursor=`: public, like the contest.
pub async fn draw_entries<T: Table>(
    app: &App<T>,
    id: &str,
    cursor: Option<&str>,
) -> Result<EntriesPage> {
    let item = app
        .table
        .get(&contest_key(id), true)
        .await?
        .ok_or(Error::NotFound("contest"))?;
    read_page(app, "contest", id, item.get("draw"), cursor, "draw").await
}

pub async fn seed<T: Table>(app: &App<T>, kind: &str, id: &str) -> Result<String> {
    let s = app
        .table
        .get(&seed_key(kind, id), true)
        .await?
        .ok_or(Error::Store(StoreError::Invalid("no seed".into())))?;
    Ok(s.get("seed")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned())
}

/// `POST /contests/{id}/draw`: after close, once; marketing only.
pub async fn run_draw<T: Table>(app: &App<T>, caller: &Caller, id: &str) -> Result<Value> {
    if !caller.in_group(MARKETING) {
        return Err(Error::Forbidden("only marketing may draw a contest".into()));
    }
    let item = app
        .table
        .get(&contest_key(id), true)
        .await?
        .ok_or(Error::NotFound("contest"))?;
    let v = view(&item)?;
    match v.status {
        "drawn" => {
            return Err(Error::Conflict(
                "this contest has already been drawn".into(),
            ))
        }
        "closed" => {}
        other => {
            return Err(Error::Conflict(format!(
                "a contest is drawn after it closes (it is {other})"
            )))
        }
    }
    let members_list = all_members(app, &format!("ENTRIES#{id}"), ENTRY_BUCKETS).await?;
    let prizes: Vec<String> = v
        .config
        .prizes
        .iter()
        .flat_map(|p| std::iter::repeat_n(p.label.clone(), p.count as usize))
        .collect();
    let s = seed(app, "contest", id).await?;
    let proof = draw::run(id, &s, &members_list, prizes.len());
    let by_pseudonym: std::collections::HashMap<String, String> = members_list
        .iter()
        .map(|m| (draw::pseudonym(id, m), m.clone()))
        .collect();
    let mut winners = Vec::new();
    for (i, p) in proof.winners.iter().enumerate() {
        let member_id = by_pseudonym.get(p).cloned().unwrap_or_default();
        let name = match crate::domain::MemberId::parse(&member_id) {
            Some(mid) => members::get(app, &mid)
                .await
                .map(|m| m.display_name)
                .unwrap_or_default(),
            None => String::new(),
        };
        winners.push(json!({"pseudonym": p, "display_name": name, "prize": prizes.get(i)}));
    }
    // The entry list goes to its own page items first; the contest row keeps
    // the summary (DynamoDB's 400 KB item limit).
    store_pages(app, "contest", id, &proof).await?;
    let summary = proof.summary(&format!("/contests/{id}/draw/entries"));
    let result = json!({"drawn_at": now(), "winners": winners, "proof": summary});
    let event = Event::new(
        Kind::ContestDrawn,
        caller.id.as_str(),
        None,
        json!({"contest_id": id, "title": v.config.title,
        "winners": proof.winners.iter().enumerate().map(|(i, p)| json!({"member_id": by_pseudonym.get(p), "prize": prizes.get(i)})).collect::<Vec<_>>()}),
    );
    let writes = vec![
        Write::update(
            contest_key(id),
            Update::default().set("draw", result.clone()),
        )
        .when(Cond::AttrAbsent("draw".into())),
        event.write(),
    ];
    match app.table.transact(writes).await {
        Ok(()) => Ok(result),
        Err(StoreError::ConditionFailed { .. }) => Err(Error::Conflict(
            "this contest has already been drawn".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// A contest's questions as survey questions (its results have a survey's shape).
pub fn survey_questions(c: &ContestConfig) -> Vec<crate::surveys::SurveyQuestion> {
    c.questions
        .iter()
        .map(crate::surveys::SurveyQuestion::from_contest)
        .collect()
}

/// `GET /contests/{id}/results`: the answers of a survey contest's entries,
/// aggregated as they arrive (`crate::surveys`): marketing, or the brand
/// partner the contest names (`brand`).
pub async fn results<T: Table>(app: &App<T>, caller: &Caller, id: &str) -> Result<Value> {
    let item = app
        .table
        .get(&contest_key(id), false)
        .await?
        .ok_or(Error::NotFound("contest"))?;
    let v = view(&item)?;
    let brand = v.config.brand.as_deref();
    if !caller.in_group(MARKETING) && !brand.is_some_and(|b| caller.acts_for_brand(b)) {
        return Err(Error::Forbidden(
            "only marketing or the contest's brand may read its results".into(),
        ));
    }
    crate::surveys::results_of(
        app,
        "contest",
        id,
        &v.config.title,
        &contest_key(id).pk,
        &survey_questions(&v.config),
    )
    .await
}
