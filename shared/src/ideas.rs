//! Ideas: posting, reading, listing by theme/status, newest or most voted.
//!
//! Keys: `IDEA#{id} / IDEA` (the row: everything but the body, so the
//! aggregator's roll-up of the count, which rewrites the row and its copies
//! in gsi1, gsi2 and gsi4, costs about 1 KB per copy whatever the body's
//! length) and `IDEA#{id} / BODY` (the body, in no index; read by the idea's
//! page, the committee, the committee's mail and the GDPR export). Lists
//! use sparse indexes:
//! - the home list (`sort=top`, no filter) is one Query of gsi4, partition
//!   `TOP` sorted by the rolled-up vote count, which projects only the
//!   idea's card (`store::CARD_ATTRS`: the excerpt, not the 5,000-character
//!   body);
//! - filtered lists read gsi1 (by creation, `{created_at}#{id}`) or gsi2 (by
//!   votes, `{votes:010}#{created_at}#{id}`), partitioned by
//!   `IDEAS#{theme}#{status}`: a list filtered on both reads one partition,
//!   otherwise the partitions it covers are queried concurrently and merged
//!   (see docs/architecture.md).
//!
//! Every list item is a card ([`IdeaCard`]): its `body` is the excerpt.
//! No list scans the table.

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{now, Errors, FieldError, IdeaBody, IdeaId, IdeaStatus, IdeaTitle};
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::members;
use crate::receipt::Receipt;
use crate::store::{cursor, Cond, Index, Item, Key, Query, StoreError, Table, Update, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The partition of idea `id`: its row (`IDEA`), body (`BODY`) and the
/// aggregator's tally (`TALLY`, thresholds.rs).
pub fn pk(id: &str) -> String {
    format!("IDEA#{id}")
}

pub fn key(id: &IdeaId) -> Key {
    Key::new(pk(id.as_str()), "IDEA")
}

/// The item holding an idea's body (written with the row, never changed).
pub fn body_key(id: &IdeaId) -> Key {
    Key::new(pk(id.as_str()), "BODY")
}

pub fn list_pk(theme: &str, status: IdeaStatus) -> String {
    format!("IDEAS#{theme}#{}", status.as_str())
}

pub fn new_sk(created_at: &str, id: &str) -> String {
    format!("{created_at}#{id}")
}

pub fn top_sk(votes: i64, created_at: &str, id: &str) -> String {
    format!("{:010}#{created_at}#{id}", votes.max(0))
}

/// gsi4's one partition: every listed idea, most voted first.
pub const TOP_PK: &str = "TOP";
/// The gsi4 partition of an idea: `TOP` (the home list), or for a
/// challenge's proposal `PROPOSALS#{challenge}`, that challenge's top list
/// (`crate::challenges`). The aggregator's roll-up moves the sort key only,
/// so either list follows the votes at no extra write.
pub fn home_pk(challenge: Option<&str>) -> String {
    match challenge {
        Some(c) => format!("PROPOSALS#{c}"),
        None => TOP_PK.to_owned(),
    }
}

/// Characters of a body a list shows.
pub const EXCERPT_CHARS: usize = 280;

/// The start of a body a list shows, cut at a word and ended with `…` when
/// the body is longer, and whether it was cut.
pub fn excerpt(body: &str) -> (String, bool) {
    if body.chars().count() <= EXCERPT_CHARS {
        return (body.to_owned(), false);
    }
    let cut: String = body.chars().take(EXCERPT_CHARS).collect();
    let at_word = match cut.rfind(char::is_whitespace) {
        Some(i) if i > EXCERPT_CHARS / 2 => &cut[..i],
        _ => cut.as_str(),
    };
    (format!("{}…", at_word.trim_end()), true)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIdea {
    pub theme: Option<String>,
    pub title: Option<String>,
    pub body: Option<String>,
}

/// An idea as stored (key attributes aside).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdeaRow {
    pub id: String,
    pub theme: String,
    pub title: String,
    /// Empty as loaded by [`load`]: the body is its own item
    /// ([`body_key`]); [`load_full`] and [`with_bodies`] read it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    pub author_id: String,
    pub author_name: String,
    pub status: IdeaStatus,
    /// The count, as the thresholds aggregator last rolled it up: lists,
    /// the idea's page and vote responses all read this one number.
    #[serde(default)]
    pub votes: i64,
    /// The version of the tally that count comes from (`thresholds::Tally`).
    #[serde(default)]
    pub votes_seq: i64,
    pub created_at: String,
    #[serde(default)]
    pub reached_threshold_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub progress: Vec<ProgressNote>,
    /// Visible comments (see `crate::comments`).
    #[serde(default)]
    pub comment_count: i64,
    /// `Some("hidden")` while moderation hides the idea (see `crate::moderation`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation: Option<String>,
    /// What lists show of the body ([`excerpt`]); written with the body.
    #[serde(default)]
    pub excerpt: String,
    #[serde(default)]
    pub truncated: bool,
    /// When the idea got its first official answer (`crate::answers`);
    /// `None` while it has none (it is then in the answer queue).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
    /// Official answers given, ever: the guard of the next one.
    #[serde(default)]
    pub answer_count: i64,
    /// The official answers, oldest first; the last is the official one.
    /// Held by the body item ([`body_key`]), not by the row: filled in by
    /// [`load_full`], empty as loaded by [`load`].
    #[serde(default, skip_serializing)]
    pub answers: Vec<crate::answers::Answer>,
    /// The idea this one was merged into (`crate::merge`): out of every
    /// list and of search, no more votes, still readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// The merge's target, reason and time (with `merged_into`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Merge>,
    /// The co-creation challenge this idea is a proposal to
    /// (`crate::challenges`): its gsi4 entry is the challenge's top list
    /// ([`home_pk`]) instead of the home list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
}

/// A moderator's merge of a duplicate into another idea (`crate::merge`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Merge {
    pub into: String,
    pub reason: String,
    pub at: String,
}

/// The feasibility committee's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Decision {
    pub outcome: IdeaStatus,
    pub reason: String,
    pub decided_at: String,
}

/// A step of an accepted idea's implementation, for its author and voters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProgressNote {
    pub status: IdeaStatus,
    pub note: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Author {
    pub id: String,
    pub display_name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IdeaView {
    pub id: String,
    pub theme: String,
    pub title: String,
    pub body: String,
    pub author: Author,
    pub status: IdeaStatus,
    pub votes: i64,
    pub created_at: String,
    pub reached_threshold_at: Option<String>,
    pub decision: Option<Decision>,
    pub progress: Vec<ProgressNote>,
    pub comment_count: i64,
    /// `"hidden"` when moderation hid the idea (shown only to its author and
    /// to moderators; everyone else gets 404).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moderation: Option<String>,
    /// The committee's or a moderator's current answer (the last of `answers`).
    pub official_answer: Option<crate::answers::Answer>,
    /// Every official answer given, oldest first.
    pub answers: Vec<crate::answers::Answer>,
    /// The idea this one was merged into: present only once merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
    /// The merge's target, reason and time: present only once merged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge: Option<Merge>,
    /// The challenge this idea is a proposal to: present only on proposals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
}

/// An idea as a list shows it: what gsi4 projects (`store::CARD_ATTRS`).
/// `body` is the excerpt; `truncated` says whether the idea's page has more.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IdeaCard {
    pub id: String,
    pub theme: String,
    pub title: String,
    pub body: String,
    pub truncated: bool,
    pub author: Author,
    pub status: IdeaStatus,
    pub votes: i64,
    pub created_at: String,
    pub reached_threshold_at: Option<String>,
    pub comment_count: i64,
    /// The challenge this idea is a proposal to: present only on proposals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub challenge_id: Option<String>,
}

/// A card as stored: a whole row (gsi1, gsi2) or its projection (gsi4).
#[derive(Deserialize)]
struct CardRow {
    id: String,
    theme: String,
    title: String,
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    excerpt: Option<String>,
    #[serde(default)]
    truncated: bool,
    author_id: String,
    author_name: String,
    status: IdeaStatus,
    #[serde(default)]
    votes: i64,
    created_at: String,
    #[serde(default)]
    reached_threshold_at: Option<String>,
    #[serde(default)]
    comment_count: i64,
    #[serde(default)]
    challenge_id: Option<String>,
}

pub fn card_from(item: Item) -> Result<IdeaCard> {
    let r: CardRow = serde_json::from_value(Value::Object(item))
        .map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    // A row written before excerpts were stored has its body instead.
    let (body, truncated) = match (r.excerpt, r.body) {
        (Some(e), _) => (e, r.truncated),
        (None, Some(b)) => excerpt(&b),
        (None, None) => (String::new(), false),
    };
    Ok(IdeaCard {
        id: r.id,
        theme: r.theme,
        title: r.title,
        body,
        truncated,
        author: Author {
            id: r.author_id,
            display_name: r.author_name,
        },
        status: r.status,
        votes: r.votes,
        created_at: r.created_at,
        reached_threshold_at: r.reached_threshold_at,
        comment_count: r.comment_count.max(0),
        challenge_id: r.challenge_id,
    })
}

impl IdeaRow {
    pub fn view(self, votes: i64) -> IdeaView {
        IdeaView {
            id: self.id,
            theme: self.theme,
            title: self.title,
            body: self.body,
            author: Author {
                id: self.author_id,
                display_name: self.author_name,
            },
            status: self.status,
            votes,
            created_at: self.created_at,
            reached_threshold_at: self.reached_threshold_at,
            decision: self.decision,
            progress: self.progress,
            // Folded per batch, moved by moderation at once: never shown
            // below zero while a hide overtakes its post's +1.
            comment_count: self.comment_count.max(0),
            moderation: self.moderation,
            official_answer: self.answers.last().cloned(),
            answers: self.answers,
            merged_into: self.merged_into,
            merge: self.merge,
            challenge_id: self.challenge_id,
        }
    }

    pub fn is_hidden(&self) -> bool {
        self.moderation.is_some()
    }

    /// Whether it was merged into another idea (`crate::merge`).
    pub fn is_merged(&self) -> bool {
        self.merged_into.is_some()
    }

    /// The condition that the idea is merged (or not) as read.
    pub fn merge_unchanged(&self) -> Cond {
        match &self.merged_into {
            Some(m) => Cond::Eq("merged_into".into(), json!(m)),
            None => Cond::AttrAbsent("merged_into".into()),
        }
    }

    /// The list-index part of a status change: a hidden or merged idea stays
    /// out of the lists (no `gsi1pk`/`gsi2pk`), and the condition makes the
    /// change fail if moderation hid or restored the idea, or a moderator
    /// merged it, since `self` was read.
    pub fn relist(&self, u: Update, to: IdeaStatus) -> (Update, Cond) {
        let merged = self.merge_unchanged();
        match &self.moderation {
            Some(m) => (u, Cond::Eq("moderation".into(), json!(m)).and(merged)),
            None if self.is_merged() => (u, Cond::AttrAbsent("moderation".into()).and(merged)),
            // gsi4 (the home list) does not depend on the status.
            None => {
                let lp = list_pk(&self.theme, to);
                (
                    u.set("gsi1pk", lp.as_str()).set("gsi2pk", lp.as_str()),
                    Cond::AttrAbsent("moderation".into()).and(merged),
                )
            }
        }
    }

    /// The full item, index attributes included.
    pub fn to_item(&self) -> Result<Item> {
        let Value::Object(mut item) =
            serde_json::to_value(self).map_err(|e| Error::Store(StoreError::unavailable(e)))?
        else {
            return Err(Error::Store(StoreError::Invalid("idea row".into())));
        };
        let id = IdeaId::parse(&self.id).ok_or(Error::NotFound("idea"))?;
        let k = key(&id);
        let lp = list_pk(&self.theme, self.status);
        item.insert("pk".into(), json!(k.pk));
        item.insert("sk".into(), json!(k.sk));
        item.insert("gsi1pk".into(), json!(lp));
        item.insert("gsi1sk".into(), json!(new_sk(&self.created_at, &self.id)));
        item.insert("gsi2pk".into(), json!(lp));
        item.insert(
            "gsi2sk".into(),
            json!(top_sk(self.votes, &self.created_at, &self.id)),
        );
        item.insert(
            "gsi4pk".into(),
            json!(home_pk(self.challenge_id.as_deref())),
        );
        item.insert(
            "gsi4sk".into(),
            json!(top_sk(self.votes, &self.created_at, &self.id)),
        );
        if self.is_hidden() || self.is_merged() {
            for a in ["gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi4pk", "gsi4sk"] {
                item.remove(a);
            }
        }
        Ok(item)
    }
}

pub fn row_from(item: Item) -> Result<IdeaRow> {
    serde_json::from_value(Value::Object(item))
        .map_err(|e| Error::Store(StoreError::unavailable(e)))
}

pub async fn load<T: Table>(app: &App<T>, id: &IdeaId, consistent: bool) -> Result<IdeaRow> {
    match app.table.get(&key(id), consistent).await? {
        Some(item) => row_from(item),
        None => Err(Error::NotFound("idea")),
    }
}

/// An idea's row with its body (one BatchGetItem of both items).
pub async fn load_full<T: Table>(app: &App<T>, id: &IdeaId, consistent: bool) -> Result<IdeaRow> {
    let items = app
        .table
        .get_many(&[key(id), body_key(id)], consistent)
        .await?;
    let mut row = None;
    let mut body = None;
    for i in items {
        match i.get("sk").and_then(Value::as_str) {
            Some("IDEA") => row = Some(row_from(i)?),
            Some("BODY") => body = Some(i),
            _ => {}
        }
    }
    let mut row = row.ok_or(Error::NotFound("idea"))?;
    if let Some(b) = body {
        fill_from_body(&mut row, &b);
    }
    Ok(row)
}

/// Fills in the bodies of rows read from an index or a batch (one
/// BatchGetItem per 100 rows; eventually consistent: a body never changes).
pub async fn with_bodies<T: Table>(app: &App<T>, rows: &mut [IdeaRow]) -> Result<()> {
    let keys: Vec<Key> = rows
        .iter()
        .filter(|r| r.body.is_empty())
        .filter_map(|r| IdeaId::parse(&r.id))
        .map(|i| body_key(&i))
        .collect();
    if keys.is_empty() {
        return Ok(());
    }
    let mut bodies = std::collections::HashMap::new();
    for i in crate::store::get_all(&app.table, &keys, false).await? {
        let id = i
            .get("pk")
            .and_then(Value::as_str)
            .and_then(|pk| pk.strip_prefix("IDEA#"))
            .map(str::to_owned);
        if let Some(id) = id {
            bodies.insert(id, i);
        }
    }
    for r in rows.iter_mut().filter(|r| r.body.is_empty()) {
        if let Some(b) = bodies.remove(&r.id) {
            fill_from_body(r, &b);
        }
    }
    Ok(())
}

/// What the body item holds: the body and the official answers.
fn fill_from_body(row: &mut IdeaRow, item: &Item) {
    if let Some(b) = item.get("body").and_then(Value::as_str) {
        row.body = b.to_owned();
    }
    if let Some(a) = item.get("answers") {
        row.answers = serde_json::from_value(a.clone()).unwrap_or_default();
    }
}

pub async fn create<T: Table>(
    app: &App<T>,
    caller: &Caller,
    req: NewIdea,
    receipt: Option<&Receipt>,
) -> Result<IdeaView> {
    create_in(app, caller, req, receipt, None).await
}

/// The extra writes of a proposal's transaction, given its row.
pub type ExtraWrites = Box<dyn Fn(&IdeaRow) -> Vec<Write> + Send + Sync>;

/// Where a new idea goes besides the lists: a challenge's proposal
/// (`crate::challenges`) names the challenge, the points its author earns,
/// and the extra writes of its transaction (the challenge's `new` list).
pub struct Within {
    pub challenge_id: String,
    pub points: i64,
    pub writes: ExtraWrites,
}

/// Posts an idea (or, `within` a challenge, a proposal): the row, its body,
/// its outbox event and the rest in one transaction.
pub async fn create_in<T: Table>(
    app: &App<T>,
    caller: &Caller,
    req: NewIdea,
    receipt: Option<&Receipt>,
    within: Option<Within>,
) -> Result<IdeaView> {
    let mut errs = Errors::default();
    let theme = match req.theme {
        None => {
            errs.push(FieldError::new("theme", "is required"));
            None
        }
        Some(t) if app.settings().theme(&t).is_some() => Some(t),
        Some(_) => {
            let settings = app.settings();
            let ids: Vec<&str> = settings.themes.iter().map(|t| t.id.as_str()).collect();
            errs.push(FieldError::new(
                "theme",
                format!("must be one of {}", ids.join(", ")),
            ));
            None
        }
    };
    let title = errs.take(IdeaTitle::parse(req.title));
    let body = errs.take(IdeaBody::parse(req.body));
    let (Some(theme), Some(title), Some(body)) = (theme, title, body) else {
        return Err(Error::Invalid(errs.0));
    };
    let member = members::require(app, caller).await?;
    crate::ratelimit::check(app, &member.id, crate::ratelimit::Action::Idea).await?;
    let id = IdeaId::new();
    let (excerpt, truncated) = excerpt(body.as_str());
    let row = IdeaRow {
        id: id.as_str().to_owned(),
        theme,
        title: title.as_str().to_owned(),
        body: body.as_str().to_owned(),
        author_id: member.id,
        author_name: member.display_name,
        status: IdeaStatus::Open,
        votes: 0,
        votes_seq: 0,
        created_at: now(),
        reached_threshold_at: None,
        decision: None,
        progress: Vec::new(),
        comment_count: 0,
        moderation: None,
        excerpt,
        truncated,
        answered_at: None,
        answer_count: 0,
        answers: Vec::new(),
        merged_into: None,
        merge: None,
        challenge_id: within.as_ref().map(|w| w.challenge_id.clone()),
    };
    let mut stored = row.clone();
    stored.body = String::new();
    let item = stored.to_item()?;
    let body_item =
        json!({"pk": format!("IDEA#{}", row.id), "sk": "BODY", "id": row.id, "body": row.body});
    let Value::Object(body_item) = body_item else {
        return Err(Error::Store(StoreError::Invalid("idea body".into())));
    };
    let data = match &within {
        // A proposal's points are the challenge's (the points consumer's
        // `challenge_proposal` rule when 0).
        Some(w) => json!({"theme": row.theme, "challenge_id": w.challenge_id,
                          "points": (w.points > 0).then_some(w.points)}),
        None => json!({"theme": row.theme}),
    };
    let event = Event::new(Kind::IdeaPosted, &row.author_id, Some(&row.id), data);
    let pointer = crate::contrib::pointer(
        &row.author_id,
        crate::contrib::ContribKind::Idea,
        &row.created_at,
        &row.id,
        &key(&id),
    );
    // The idea's words for `GET /ideas?q=` (at most 40 items; search.rs).
    let postings = crate::search::postings(&row);
    let queued = crate::answers::unanswered_write(&row.created_at, &row.id);
    let extra = within
        .as_ref()
        .map(|w| (w.writes)(&row))
        .unwrap_or_default();
    let view = row.view(0);
    let body = serde_json::to_value(&view).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    let mut writes = vec![
        Write::put_new(item),
        Write::put_new(body_item),
        event.write(),
        pointer,
        // In the answer queue until the committee or a moderator answers.
        queued,
    ];
    writes.extend(postings);
    writes.extend(extra);
    commit(&app.table, writes, receipt.map(|r| (r, 201, &body))).await?;
    crate::metrics::record_idea_posted(&view.theme);
    Ok(view)
}

/// One idea with its aggregated vote count (404 when moderation hid it).
pub async fn get<T: Table>(app: &App<T>, id: &IdeaId) -> Result<IdeaView> {
    get_for(app, id, None).await
}

/// Whether `viewer` may see hidden content of `author`: its author and moderators.
pub fn sees_hidden(viewer: Option<&Caller>, author_id: &str) -> bool {
    viewer.is_some_and(|c| c.id.as_str() == author_id || c.in_group(crate::auth::MODERATOR))
}

/// One idea as `viewer` may see it: a hidden idea is 404 except to its
/// author and to moderators, who see it with `"moderation": "hidden"`.
pub async fn get_for<T: Table>(
    app: &App<T>,
    id: &IdeaId,
    viewer: Option<&Caller>,
) -> Result<IdeaView> {
    let row = load_full(app, id, false).await?;
    if row.is_hidden() && !sees_hidden(viewer, &row.author_id) {
        return Err(Error::NotFound("idea"));
    }
    let votes = row.votes;
    Ok(row.view(votes))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    New,
    Top,
}

#[derive(Debug, Clone, Default)]
pub struct ListRequest {
    pub theme: Option<String>,
    pub status: Option<IdeaStatus>,
    pub sort: Sort,
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ListPage<V> {
    pub items: Vec<V>,
    pub next_cursor: Option<String>,
}

/// `GET /ideas`: cards, newest or most voted first. The home list (most
/// voted, no filter) is one Query of gsi4; the others merge the partitions
/// of gsi1 or gsi2 their filters cover.
pub async fn list<T: Table>(app: &App<T>, req: ListRequest) -> Result<ListPage<IdeaCard>> {
    if req.theme.is_none() && req.status.is_none() && req.sort == Sort::Top {
        return home(app, req.limit, req.cursor).await;
    }
    let themes: Vec<String> = match &req.theme {
        Some(t) if app.settings().theme(t).is_some() => vec![t.clone()],
        Some(_) => {
            let settings = app.settings();
            let ids: Vec<&str> = settings.themes.iter().map(|t| t.id.as_str()).collect();
            return Err(Error::invalid(
                "theme",
                format!("must be one of {}", ids.join(", ")),
            ));
        }
        None => app.settings().themes.iter().map(|t| t.id.clone()).collect(),
    };
    let statuses: Vec<IdeaStatus> = match req.status {
        Some(s) => vec![s],
        None => IdeaStatus::ALL.to_vec(),
    };
    let index = match req.sort {
        Sort::New => Index::Gsi1,
        Sort::Top => Index::Gsi2,
    };
    let partitions: Vec<String> = themes
        .iter()
        .flat_map(|t| statuses.iter().map(move |s| list_pk(t, *s)))
        .collect();
    let start = match &req.cursor {
        Some(c) => Some(
            cursor::decode_where(c, index, |pk| partitions.iter().any(|p| p == pk))
                .map_err(|e| Error::invalid("cursor", e.to_string()))?,
        ),
        None => None,
    };
    let (ipk, isk) = index.key_attrs();
    let limit = req.limit.clamp(1, 100);
    let queries = partitions.iter().map(|p| {
        let start_after = start.as_ref().map(|s| {
            let mut k = s.clone();
            k.insert(ipk.into(), json!(p));
            k
        });
        let q = Query::new(index, p.clone())
            .backward()
            .limit(limit + 1)
            .start_after(start_after);
        let table = &app.table;
        async move { table.query(&q).await }
    });
    let pages = futures::future::try_join_all(queries).await?;
    let mut items: Vec<Item> = pages.into_iter().flat_map(|p| p.items).collect();
    let sort_key = |i: &Item| {
        (
            i.get(isk)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            i.get("pk")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        )
    };
    items.sort_by_key(|i| std::cmp::Reverse(sort_key(i)));
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items
            .last()
            .map(|i| cursor::encode(&crate::store::page_key(index, i)))
    } else {
        None
    };
    let items = items
        .into_iter()
        .map(card_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(ListPage { items, next_cursor })
}

/// The home list: one Query of gsi4's `TOP` partition (a page of 20 cards
/// is ~12 KB: 1.5 read units, eventually consistent).
async fn home<T: Table>(
    app: &App<T>,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<IdeaCard>> {
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi4, TOP_PK)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi4, TOP_PK)
                .backward()
                .limit(limit.clamp(1, 100))
                .start_after(start),
        )
        .await?;
    let items = page
        .items
        .into_iter()
        .map(card_from)
        .collect::<Result<Vec<_>>>()?;
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}
