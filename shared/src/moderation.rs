//! Reports and moderation of ideas, comments and reviews.
//!
//! Keys:
//! - moderation state of a target: `MOD#{type}#{id} / STATE` with
//!   `report_count`, `state` (`visible` | `hidden`), the last moderator
//!   `decision`, and a version `v` every change bumps under the condition
//!   that it is unchanged (optimistic concurrency). While the target awaits a
//!   moderator it is in gsi1 `MODQUEUE` / `{queued_at}#{type}#{id}` (oldest
//!   first); a decision removes those attributes.
//! - report: `MOD#{type}#{id} / REPORT#{member}` (one per member per target:
//!   a conditional put), with its reason.
//!
//! A report is one transaction: the report, the state (`report_count + 1`
//! under the condition `v` = the version read) and the reporter's
//! contribution pointer; when the new count reaches
//! `[moderation] auto_hide_reports` (infra/campaigns/trust.toml) and no
//! moderator has restored the target, the same transaction hides the target
//! and writes `content.hidden`. The version condition serialises reports on
//! one target, so exactly one report takes the count to the threshold, and
//! only that one hides — however many members report at once.
//!
//! Hiding removes the target's list-index attributes (ideas: gsi1/gsi2;
//! comments and reviews: gsi1), so lists stay correctly paginated, and sets
//! `moderation = "hidden"` on it; restoring puts them back. A hidden comment
//! or review also leaves its idea's `comment_count` / its product's figures.

use crate::app::App;
use crate::auth::{Caller, MODERATOR};
use crate::comments;
use crate::contrib::{self, ContribKind};
use crate::domain::{now, FieldError, IdeaId};
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::{self, ListPage};
use crate::members;
use crate::products;
use crate::receipt::Receipt;
use crate::store::{
    cursor, Cond, Index, Item, Key, Query, SortKey, StoreError, Table, Update, Write,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const QUEUE_PK: &str = "MODQUEUE";
pub const HIDDEN: &str = "hidden";
const ATTEMPTS: u32 = 40;
const MAX_REASON: usize = 500;
/// Reasons shown per item of the queue (the count is exact).
const REASONS_SHOWN: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetType {
    Idea,
    Comment,
    Review,
}

impl TargetType {
    pub const ALL: [TargetType; 3] = [TargetType::Idea, TargetType::Comment, TargetType::Review];
    pub fn as_str(self) -> &'static str {
        match self {
            TargetType::Idea => "idea",
            TargetType::Comment => "comment",
            TargetType::Review => "review",
        }
    }
    pub fn parse(s: &str) -> Option<TargetType> {
        TargetType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

pub fn state_key(ty: TargetType, id: &str) -> Key {
    Key::new(format!("MOD#{}#{id}", ty.as_str()), "STATE")
}

pub fn report_key(ty: TargetType, id: &str, member: &str) -> Key {
    Key::new(
        format!("MOD#{}#{id}", ty.as_str()),
        format!("REPORT#{member}"),
    )
}

pub fn require_moderator(caller: &Caller) -> Result<()> {
    if caller.in_group(MODERATOR) {
        Ok(())
    } else {
        Err(Error::Forbidden("only moderators may do this".into()))
    }
}

/// A reported or moderated object, as read.
#[derive(Debug, Clone)]
pub struct Target {
    pub ty: TargetType,
    pub id: String,
    pub key: Key,
    pub item: Item,
    pub author_id: String,
    /// The idea the target is (ideas) or belongs to (comments).
    pub idea_id: Option<String>,
    /// What the author's mail names: the idea's title, the review's title.
    pub title: String,
    pub excerpt: String,
}

impl Target {
    pub fn hidden(&self) -> bool {
        self.item.get("moderation").and_then(Value::as_str) == Some(HIDDEN)
    }
}

fn s(item: &Item, attr: &str) -> String {
    item.get(attr)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn excerpt(text: &str, n: usize) -> String {
    let mut out: String = text.chars().take(n).collect();
    if text.chars().count() > n {
        out.push('…');
    }
    out
}

/// Finds a target by type and id (404 when there is none).
pub async fn resolve<T: Table>(app: &App<T>, ty: TargetType, id: &str) -> Result<Target> {
    let not_found = || match ty {
        TargetType::Idea => Error::NotFound("idea"),
        TargetType::Comment => Error::NotFound("comment"),
        TargetType::Review => Error::NotFound("review"),
    };
    if ulid::Ulid::from_string(id).is_err() {
        return Err(not_found());
    }
    match ty {
        TargetType::Idea => {
            let idea = IdeaId::parse(id).ok_or_else(not_found)?;
            let key = ideas::key(&idea);
            let item = app.table.get(&key, true).await?.ok_or_else(not_found)?;
            Ok(Target {
                ty,
                id: s(&item, "id"),
                author_id: s(&item, "author_id"),
                idea_id: Some(s(&item, "id")),
                title: s(&item, "title"),
                // An idea's row holds its excerpt (its body is its own item).
                excerpt: excerpt(
                    &Some(s(&item, "body"))
                        .filter(|b| !b.is_empty())
                        .unwrap_or_else(|| s(&item, "excerpt")),
                    200,
                ),
                key,
                item,
            })
        }
        TargetType::Comment => {
            let key = comments::key(id);
            let item = app.table.get(&key, true).await?.ok_or_else(not_found)?;
            let c = comments::from_item(item.clone())?;
            let title = match IdeaId::parse(&c.idea_id) {
                Some(i) => match ideas::load(app, &i, false).await {
                    Ok(row) => row.title,
                    Err(Error::NotFound(_)) => String::new(),
                    Err(e) => return Err(e),
                },
                None => String::new(),
            };
            Ok(Target {
                ty,
                id: c.id,
                author_id: c.author.id,
                idea_id: Some(c.idea_id),
                title,
                excerpt: excerpt(&c.body, 200),
                key,
                item,
            })
        }
        TargetType::Review => {
            let page = app
                .table
                .query(&Query::new(Index::Gsi2, products::review_id_pk(id)).limit(1))
                .await?;
            let found = page.items.first().and_then(Key::of).ok_or_else(not_found)?;
            let item = app.table.get(&found, true).await?.ok_or_else(not_found)?;
            let r: products::Review = serde_json::from_value(Value::Object(item.clone()))
                .map_err(|e| Error::Store(StoreError::unavailable(e)))?;
            Ok(Target {
                ty,
                id: r.id,
                author_id: r.author.id,
                idea_id: None,
                title: r.title,
                excerpt: excerpt(&r.body, 200),
                key: found,
                item,
            })
        }
    }
}

/// The writes that hide a visible target, conditional on it being visible.
fn hide_writes(t: &Target) -> Vec<Write> {
    let mut u = Update::default()
        .set("moderation", HIDDEN)
        .set("hidden_at", now())
        .remove("gsi1pk")
        .remove("gsi1sk");
    if t.ty == TargetType::Idea {
        u = u
            .remove("gsi2pk")
            .remove("gsi2sk")
            .remove("gsi4pk")
            .remove("gsi4sk");
    }
    let mut w = vec![Write::update(t.key.clone(), u)
        .when(Cond::Exists.and(Cond::AttrAbsent("moderation".into())))];
    w.extend(side_counters(t, -1));
    w
}

/// The writes that restore a hidden target (its list entries come back).
fn restore_writes(t: &Target) -> Result<Vec<Write>> {
    let hidden = Cond::Eq("moderation".into(), json!(HIDDEN));
    let u = Update::default().remove("moderation").remove("hidden_at");
    let w = match t.ty {
        // A merged idea stays out of the lists (`crate::merge`).
        TargetType::Idea if t.item.contains_key("merged_into") => {
            Write::update(t.key.clone(), u).when(hidden)
        }
        TargetType::Idea => {
            let row = ideas::row_from(t.item.clone())?;
            let lp = ideas::list_pk(&row.theme, row.status);
            let u = u
                .set("gsi1pk", lp.as_str())
                .set("gsi1sk", ideas::new_sk(&row.created_at, &row.id))
                .set("gsi2pk", lp.as_str())
                .set("gsi2sk", ideas::top_sk(row.votes, &row.created_at, &row.id))
                .set("gsi4pk", ideas::home_pk(row.challenge_id.as_deref()))
                .set("gsi4sk", ideas::top_sk(row.votes, &row.created_at, &row.id));
            // The index keys are computed from this read: fail if a status
            // change or a roll-up moved the row since.
            let cond = hidden
                .and(Cond::Eq("status".into(), json!(row.status.as_str())))
                .and(Cond::Eq("votes_seq".into(), json!(row.votes_seq)));
            Write::update(t.key.clone(), u).when(cond)
        }
        TargetType::Comment => {
            let idea = t.idea_id.clone().unwrap_or_default();
            let created = s(&t.item, "created_at");
            let u = u
                .set("gsi1pk", comments::list_pk(&idea))
                .set("gsi1sk", comments::list_sk(&created, &t.id));
            Write::update(t.key.clone(), u).when(hidden)
        }
        TargetType::Review => {
            let ean = s(&t.item, "ean");
            let created = s(&t.item, "created_at");
            let u = u
                .set("gsi1pk", products::review_list_pk(&ean))
                .set("gsi1sk", format!("{created}#{}", t.author_id));
            Write::update(t.key.clone(), u).when(hidden)
        }
    };
    let mut out = vec![w];
    out.extend(side_counters(t, 1));
    Ok(out)
}

/// Figures that count only visible content: an idea's `comment_count`, a
/// product's review count and rating sum (its average).
fn side_counters(t: &Target, sign: i64) -> Vec<Write> {
    match t.ty {
        TargetType::Idea => vec![],
        TargetType::Comment => match t.idea_id.as_deref().and_then(IdeaId::parse) {
            Some(idea) => vec![Write::update(
                ideas::key(&idea),
                Update::default().add("comment_count", sign),
            )
            .when(Cond::Exists)],
            None => vec![],
        },
        TargetType::Review => {
            let rating = t.item.get("rating").and_then(Value::as_i64).unwrap_or(0);
            vec![Write::update(
                products::stats_key(&s(&t.item, "ean")),
                Update::default()
                    .add("review_count", sign)
                    .add("rating_sum", sign * rating),
            )
            .when(Cond::Exists)]
        }
    }
}

fn content_event(t: &Target, kind: Kind, by: &str, reason: Option<&str>) -> Event {
    let mut data = json!({
        "target_type": t.ty.as_str(), "target_id": t.id, "by": by,
        "title": t.title, "excerpt": t.excerpt,
    });
    if let Some(r) = reason {
        data["reason"] = json!(r);
    }
    if t.ty == TargetType::Review {
        data["ean"] = json!(s(&t.item, "ean"));
    }
    Event::new(kind, &t.author_id, t.idea_id.as_deref(), data)
}

/// The state item as read: its version and fields.
#[derive(Debug, Clone, Default)]
struct State {
    exists: bool,
    v: i64,
    report_count: i64,
    queued: bool,
    decision: Option<String>,
}

async fn load_state<T: Table>(app: &App<T>, ty: TargetType, id: &str) -> Result<State> {
    Ok(match app.table.get(&state_key(ty, id), true).await? {
        None => State::default(),
        Some(i) => State {
            exists: true,
            v: i.get("v").and_then(Value::as_i64).unwrap_or(0),
            report_count: i.get("report_count").and_then(Value::as_i64).unwrap_or(0),
            queued: i.contains_key("gsi1pk"),
            decision: i
                .get("decision")
                .and_then(|d| d.get("action"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        },
    })
}

impl State {
    /// The condition that the state is still the one read.
    fn unchanged(&self) -> Cond {
        if self.exists {
            Cond::Eq("v".into(), json!(self.v))
        } else {
            Cond::NotExists
        }
    }
}

fn base_state_update(t: &Target) -> Update {
    Update::default()
        .add("v", 1)
        .set("target_type", t.ty.as_str())
        .set("target_id", t.id.as_str())
        .set("target_pk", t.key.pk.as_str())
        .set("target_sk", t.key.sk.as_str())
        .set("author_id", t.author_id.as_str())
}

fn enqueue(u: Update, t: &Target, at: &str) -> Update {
    u.set("queued_at", at)
        .set("gsi1pk", QUEUE_PK)
        .set("gsi1sk", format!("{at}#{}#{}", t.ty.as_str(), t.id))
}

fn text(field: &str, v: Option<String>, max: usize) -> std::result::Result<String, FieldError> {
    let Some(v) = v else {
        return Err(FieldError::new(field, "is required"));
    };
    let t = v.trim();
    let n = t.chars().count();
    if n == 0 || n > max {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {max} characters long (it is {n})"),
        ));
    }
    crate::domain::refuse_controls(field, t, true)?;
    Ok(t.to_owned())
}

async fn backoff(attempt: u32) {
    crate::retry::pause(attempt).await;
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub id: String,
    pub target_type: TargetType,
    pub target_id: String,
    pub reason: String,
    pub created_at: String,
}

/// `POST /reports`.
pub async fn report<T: Table>(
    app: &App<T>,
    caller: &Caller,
    req: ReportRequest,
    receipt: Option<&Receipt>,
) -> Result<Report> {
    let mut errs = crate::domain::Errors::default();
    let ty = match req.target_type.as_deref() {
        None => {
            errs.push(FieldError::new("target_type", "is required"));
            None
        }
        Some(t) => match TargetType::parse(t) {
            Some(t) => Some(t),
            None => {
                errs.push(FieldError::new(
                    "target_type",
                    "must be idea, comment or review",
                ));
                None
            }
        },
    };
    let target_id = match req.target_id.map(|t| t.trim().to_owned()) {
        Some(t) if (1..=128).contains(&t.chars().count()) => Some(t),
        Some(_) => {
            errs.push(FieldError::new("target_id", "must be 1 to 128 characters"));
            None
        }
        None => {
            errs.push(FieldError::new("target_id", "is required"));
            None
        }
    };
    let reason = errs.take(text("reason", req.reason, MAX_REASON));
    let (Some(ty), Some(target_id), Some(reason)) = (ty, target_id, reason) else {
        return Err(Error::Invalid(errs.0));
    };
    let member = members::require(app, caller).await?;
    crate::ratelimit::check(app, &member.id, crate::ratelimit::Action::Report).await?;
    let threshold = app.settings().moderation.auto_hide_reports;
    for attempt in 0..ATTEMPTS {
        let t = resolve(app, ty, &target_id).await?;
        if t.hidden() {
            // Hidden content does not exist for other members.
            return Err(match ty {
                TargetType::Idea => Error::NotFound("idea"),
                TargetType::Comment => Error::NotFound("comment"),
                TargetType::Review => Error::NotFound("review"),
            });
        }
        if t.author_id == member.id {
            return Err(Error::Forbidden(
                "you cannot report your own content".into(),
            ));
        }
        let st = load_state(app, ty, &t.id).await?;
        let at = now();
        let r = Report {
            id: ulid::Ulid::new().to_string(),
            target_type: ty,
            target_id: t.id.clone(),
            reason: reason.clone(),
            created_at: at.clone(),
        };
        let rk = report_key(ty, &t.id, &member.id);
        let mut report_item = Item::new();
        report_item.insert("pk".into(), json!(rk.pk));
        report_item.insert("sk".into(), json!(rk.sk));
        report_item.insert("id".into(), json!(r.id));
        report_item.insert("member_id".into(), json!(member.id));
        report_item.insert("reason".into(), json!(reason));
        report_item.insert("created_at".into(), json!(at));
        let count = st.report_count + 1;
        // A moderator who restored the target has ruled: reports bring it
        // back to the queue but do not hide it again.
        let hide = count >= threshold && st.decision.as_deref() != Some("restore");
        let mut su = base_state_update(&t).add("report_count", 1);
        if !st.queued {
            su = enqueue(su, &t, &at);
        }
        su = su.set("state", if hide { HIDDEN } else { "visible" });
        if hide {
            su = su.set("auto_hidden_at", at.as_str());
        }
        let mut writes = vec![
            Write::put_new(report_item),
            Write::update(state_key(ty, &t.id), su).when(st.unchanged()),
            contrib::pointer(&member.id, ContribKind::Report, &at, &t.id, &rk),
        ];
        if hide {
            writes.extend(hide_writes(&t));
            writes.push(content_event(&t, Kind::ContentHidden, "reports", None).write());
        }
        let shown =
            serde_json::to_value(&r).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
        match commit(&app.table, writes, receipt.map(|rc| (rc, 201, &shown))).await {
            Ok(()) => {
                if hide {
                    tracing::info!(target_type = ty.as_str(), target = %t.id, reports = count, "content hidden by reports");
                }
                return Ok(r);
            }
            Err(e) if e.failed_on(&rk) => {
                return Err(Error::Conflict(
                    "you have already reported this content".into(),
                ))
            }
            // Another report or a decision moved the state, or the target
            // changed: read again.
            Err(Error::Store(
                StoreError::ConditionFailed { .. } | StoreError::Conflict | StoreError::Throttled,
            )) => backoff(attempt).await,
            Err(e) => return Err(e),
        }
    }
    Err(Error::Busy)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub action: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    pub action: String,
    pub reason: String,
    pub by: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Decided {
    pub target_type: TargetType,
    pub target_id: String,
    /// `visible` or `hidden`, after the decision.
    pub state: String,
    pub report_count: i64,
    pub decision: Decision,
}

/// `POST /moderation/{target_type}/{id}`: hide or restore, with a reason the
/// author is told. Either takes the target out of the queue.
pub async fn decide<T: Table>(
    app: &App<T>,
    caller: &Caller,
    target_type: &str,
    id: &str,
    req: DecisionRequest,
) -> Result<Decided> {
    require_moderator(caller)?;
    let ty = TargetType::parse(target_type).ok_or(Error::NotFound("moderation target type"))?;
    let mut errs = crate::domain::Errors::default();
    let hide = match req.action.as_deref() {
        Some("hide") => Some(true),
        Some("restore") => Some(false),
        _ => {
            errs.push(FieldError::new("action", "must be hide or restore"));
            None
        }
    };
    let reason = errs.take(text("reason", req.reason, MAX_REASON));
    let (Some(hide), Some(reason)) = (hide, reason) else {
        return Err(Error::Invalid(errs.0));
    };
    for attempt in 0..ATTEMPTS {
        let t = resolve(app, ty, id).await?;
        let st = load_state(app, ty, &t.id).await?;
        let at = now();
        let decision = Decision {
            action: if hide { "hide" } else { "restore" }.into(),
            reason: reason.clone(),
            by: caller.id.as_str().to_owned(),
            at: at.clone(),
        };
        let mut writes = Vec::new();
        if hide {
            if t.hidden() && !st.queued {
                return Err(Error::Conflict("this content is already hidden".into()));
            }
            let confirmed = t.hidden();
            if !confirmed {
                writes.extend(hide_writes(&t));
            }
            // A hide confirmed after the reports still tells the author the
            // moderator's reason; `confirmed` tells the insights consumer that
            // nothing changed state (the reports' event counted the hide).
            let mut e = content_event(&t, Kind::ContentHidden, "moderator", Some(&reason));
            if confirmed {
                e.data["confirmed"] = json!(true);
            }
            writes.push(e.write());
        } else {
            if !t.hidden() && !st.queued {
                return Err(Error::Conflict(
                    "this content is visible and awaits no decision".into(),
                ));
            }
            if t.hidden() {
                writes.extend(restore_writes(&t)?);
                writes.push(
                    content_event(&t, Kind::ContentRestored, "moderator", Some(&reason)).write(),
                );
            }
        }
        let su = base_state_update(&t)
            .set("state", if hide { HIDDEN } else { "visible" })
            .set(
                "decision",
                serde_json::to_value(&decision).unwrap_or(Value::Null),
            )
            .remove("gsi1pk")
            .remove("gsi1sk")
            .remove("queued_at");
        writes.push(Write::update(state_key(ty, &t.id), su).when(st.unchanged()));
        match app.table.transact(writes).await {
            Ok(()) => {
                return Ok(Decided {
                    target_type: ty,
                    target_id: t.id,
                    state: if hide { HIDDEN } else { "visible" }.into(),
                    report_count: st.report_count,
                    decision,
                })
            }
            Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => {
                backoff(attempt).await
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Busy)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ReportView {
    pub member_id: String,
    pub reason: String,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct QueueItem {
    pub target_type: String,
    pub target_id: String,
    /// `hidden` (by reports, until a decision) or `visible` (reported).
    pub state: String,
    pub report_count: i64,
    pub queued_at: String,
    pub author_id: String,
    /// Up to 20 of its reports, sorted by time (the count is exact).
    pub reports: Vec<ReportView>,
    /// What was reported: title (ideas, reviews), an excerpt of the text, the idea.
    pub content: Value,
}

/// `GET /moderation/queue`: content awaiting a decision, oldest first.
pub async fn queue<T: Table>(
    app: &App<T>,
    caller: &Caller,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<QueueItem>> {
    require_moderator(caller)?;
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi1, QUEUE_PK)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi1, QUEUE_PK)
                .limit(limit.clamp(1, 100))
                .start_after(start),
        )
        .await?;
    let targets: Vec<Key> = page
        .items
        .iter()
        .filter_map(|i| {
            Some(Key::new(
                i.get("target_pk")?.as_str()?,
                i.get("target_sk")?.as_str()?,
            ))
        })
        .collect();
    let contents = crate::store::get_all(&app.table, &targets, false).await?;
    let content_of = |k: &Key| contents.iter().find(|c| Key::of(c).as_ref() == Some(k));
    let reads = page.items.iter().map(|i| {
        let pk = s(i, "pk");
        let table = &app.table;
        async move {
            table
                .query(
                    &Query::new(Index::Primary, pk)
                        .sk(SortKey::BeginsWith("REPORT#".into()))
                        .limit(REASONS_SHOWN),
                )
                .await
        }
    });
    let report_pages = futures::future::try_join_all(reads).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for (i, reports) in page.items.iter().zip(report_pages) {
        let mut reports: Vec<ReportView> = reports
            .items
            .iter()
            .map(|r| ReportView {
                member_id: s(r, "member_id"),
                reason: s(r, "reason"),
                created_at: s(r, "created_at"),
            })
            .collect();
        reports.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let tk = Key::new(s(i, "target_pk"), s(i, "target_sk"));
        let content = match content_of(&tk) {
            Some(c) => {
                let body = c
                    .get("body")
                    .or_else(|| c.get("excerpt"))
                    .and_then(Value::as_str)
                    .map(|b| excerpt(b, 300));
                let idea_id = match s(i, "target_type").as_str() {
                    "idea" => c.get("id"),
                    _ => c.get("idea_id"),
                };
                json!({"title": c.get("title"), "excerpt": body, "idea_id": idea_id, "ean": c.get("ean")})
            }
            None => Value::Null,
        };
        items.push(QueueItem {
            target_type: s(i, "target_type"),
            target_id: s(i, "target_id"),
            state: s(i, "state"),
            report_count: i.get("report_count").and_then(Value::as_i64).unwrap_or(0),
            queued_at: s(i, "queued_at"),
            author_id: s(i, "author_id"),
            reports,
            content,
        });
    }
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}
