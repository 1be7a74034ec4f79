//! Events and round tables (tables rondes), routes `/events…`: campaign
//! files `infra/campaigns/events/*.toml` (online or in store, a place or a
//! link, a start, a capacity, a registration window), registration with a
//! waitlist, the reminder the day before, attendance earning points once.
//! (`crate::events` is the outbox; this module is named after the round
//! tables to keep the two apart.)
//!
//! Keys, all in the event's partition `RTABLE#{id}`:
//! - the event `RTABLE#{id} / RTABLE`: its `config`, `capacity`, and the
//!   counters `registered` and `waitlisted`; gsi1 `RTABLES` /
//!   `{starts_at}#{id}` (the list), gsi2 `RTABLEDAY#{Paris day}` /
//!   `{starts_at}#{id}` (the reminder's Query of tomorrow's events);
//! - a registration `RTABLE#{id} / REG#{member}`: `status` `registered` or
//!   `waitlisted`, `registered_at`, `attended_at` once recorded;
//! - a waitlist place `RTABLE#{id} / WAIT#{registered_at}#{member}`, while
//!   the member waits: the first one (a Query, limit 1) takes a freed seat.
//!
//! **Seats.** Registrations and cancellations write the event item (its
//! counters, conditionally): it is the one item every registration of an
//! event shares. That is deliberate: capacities are tens to a few hundred,
//! so an event takes at most a few hundred seat changes in its life, a few
//! per second at its busiest (the minute its registrations open), far below
//! an item's 1,000 writes/s; two transactions on it at the same instant
//! conflict and the loser retries (`commit`, then this module's loop). The
//! counters make "exactly one promotion per freed seat" one transaction:
//! the cancellation deletes the registration, deletes the first waitlist
//! place (condition: it exists) and turns that member's registration into
//! `registered` (condition: still `waitlisted`), so two cancellations racing
//! for the same waiting member cannot both promote them: one fails its
//! condition and promotes the next one. A cancellation with nobody waiting
//! frees the seat on condition that nobody waits (`waitlisted < 1`), and a
//! registration takes a seat on condition that one is free and nobody waits
//! (or joins the waitlist on the opposite condition), so a seat is never
//! free while someone waits. Write units: a registration 3 items (its
//! record, the event, the outbox event; +1 waitlist place) = 6–8 WCU
//! transactional; a cancellation 3–6 items = 6–12 WCU.

use crate::app::App;
use crate::auth::{Caller, MARKETING};
use crate::campaigns::{config_of, CampaignError};
use crate::domain::{format_ts, now, parse_ts, FieldError, MemberId};
use crate::error::{commit, Error, Result};
use crate::events::{consumed_marker, Event, Kind};
use crate::ideas::ListPage;
use crate::members;
use crate::receipt::Receipt;
use crate::store::{
    cursor, Cond, Index, Item, Key, Query, SortKey, StoreError, Table, Update, Write,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{OffsetDateTime, UtcOffset};

/// The list's gsi1 partition.
pub const LIST_PK: &str = "RTABLES";
/// At most this many seats per event (and member ids per attendance call).
pub const MAX_CAPACITY: u32 = 500;
/// Registrations mailed by one reminder page (`roundtable.reminder`).
pub const REMINDER_PAGE: u32 = 50;
/// Attempts of a registration or cancellation whose event condition failed
/// (another seat change won the race): each re-reads and plans again.
const SEAT_ATTEMPTS: u32 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoundtableKind {
    Online,
    InStore,
}

/// An event file (`infra/campaigns/events/{id}.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundtableConfig {
    pub id: String,
    pub title: String,
    pub description: String,
    pub kind: RoundtableKind,
    /// In store: the store and its address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// Online: the video call's https link (sent to registered members).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    pub starts_at: String,
    #[serde(default = "default_duration")]
    pub duration_minutes: u32,
    pub capacity: u32,
    pub registration_opens_at: String,
    pub registration_closes_at: String,
    /// The idea theme (`community.toml`) it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
}

fn default_duration() -> u32 {
    90
}

impl RoundtableConfig {
    pub fn validate(&self, file: &str) -> Vec<CampaignError> {
        let mut errs = Vec::new();
        let mut e = |field: &str, message: String| {
            errs.push(CampaignError {
                file: file.into(),
                field: field.into(),
                message,
            })
        };
        if !crate::campaigns::valid_id(&self.id) {
            e("id", "must be 1-64 of a-z, 0-9 and '-'".into());
        }
        if self.title.trim().is_empty() {
            e("title", "must not be empty".into());
        }
        if self.description.trim().is_empty() {
            e("description", "must not be empty".into());
        }
        match self.kind {
            RoundtableKind::InStore => {
                if self.place.as_deref().is_none_or(|p| p.trim().is_empty()) {
                    e(
                        "place",
                        "an in_store event needs its place (store and address)".into(),
                    );
                }
                if self.link.is_some() {
                    e("link", "only an online event has a link".into());
                }
            }
            RoundtableKind::Online => {
                match self.link.as_deref() {
                    None => e("link", "an online event needs its link (https://…)".into()),
                    Some(l) if !l.starts_with("https://") || l.contains(char::is_whitespace) => {
                        e("link", format!("{l:?} is not an https:// link"))
                    }
                    Some(_) => {}
                }
                if self.place.is_some() {
                    e("place", "only an in_store event has a place".into());
                }
            }
        }
        if !(1..=MAX_CAPACITY).contains(&self.capacity) {
            e("capacity", format!("must be from 1 to {MAX_CAPACITY}"));
        }
        if !(15..=24 * 60).contains(&self.duration_minutes) {
            e("duration_minutes", "must be from 15 to 1440".into());
        }
        use crate::campaigns::{dates, ordered, Order};
        let [opens, closes, starts] = dates(
            [
                ("registration_opens_at", &self.registration_opens_at),
                ("registration_closes_at", &self.registration_closes_at),
                ("starts_at", &self.starts_at),
            ],
            &mut e,
        );
        ordered(
            ("registration_opens_at", opens),
            ("registration_closes_at", closes),
            Order::After,
            &mut e,
        );
        // Registration may close as the event starts, not after.
        if let (Some(c), Some(s)) = (closes, starts) {
            if c > s {
                e(
                    "registration_closes_at",
                    "must not be after starts_at".into(),
                );
            }
        }
        errs
    }
}

pub fn key(id: &str) -> Key {
    Key::new(pk(id), "RTABLE")
}

fn pk(id: &str) -> String {
    format!("RTABLE#{id}")
}

/// The event a partition key names, if it names one.
pub fn id_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix("RTABLE#")
}

pub fn registration_key(id: &str, member: &str) -> Key {
    Key::new(pk(id), format!("REG#{member}"))
}

fn wait_key(id: &str, registered_at: &str, member: &str) -> Key {
    Key::new(pk(id), format!("WAIT#{registered_at}#{member}"))
}

/// The offset of Paris time at `t` (CET, CEST from the last Sunday of March
/// to the last Sunday of October, 01:00 UTC).
pub fn paris_offset(t: OffsetDateTime) -> UtcOffset {
    fn last_sunday_1am(year: i32, month: time::Month) -> Option<OffsetDateTime> {
        let days = month.length(year);
        let last = time::Date::from_calendar_date(year, month, days).ok()?;
        let back = last.weekday().number_days_from_sunday();
        let d = last - time::Duration::days(i64::from(back));
        Some(d.with_hms(1, 0, 0).ok()?.assume_utc())
    }
    let u = t.to_offset(UtcOffset::UTC);
    let summer = matches!(
        (last_sunday_1am(u.year(), time::Month::March), last_sunday_1am(u.year(), time::Month::October)),
        (Some(s), Some(e)) if u >= s && u < e
    );
    UtcOffset::from_hms(if summer { 2 } else { 1 }, 0, 0).unwrap_or(UtcOffset::UTC)
}

/// The Paris calendar day of `t`, `yyyy-mm-dd`.
pub fn paris_day(t: OffsetDateTime) -> String {
    let p = t.to_offset(paris_offset(t));
    format!("{:04}-{:02}-{:02}", p.year(), u8::from(p.month()), p.day())
}

/// `14 janvier 2027 à 18h30` (Paris time), as the mails write a start.
pub fn paris_fr(ts: &str) -> String {
    match parse_ts(ts) {
        Some(t) => {
            let p = t.to_offset(paris_offset(t));
            format!(
                "{} à {}h{:02}",
                crate::mail::templates::date_fr(&format_ts(p)),
                p.hour(),
                p.minute()
            )
        }
        None => ts.to_owned(),
    }
}

pub fn day_pk(day: &str) -> String {
    format!("RTABLEDAY#{day}")
}

/// Writes an event file's item: its config and index keys; the counters
/// and registrations are kept (a re-applied file changes neither).
pub async fn apply<T: Table + ?Sized>(
    table: &T,
    c: &RoundtableConfig,
) -> std::result::Result<(), StoreError> {
    let day = parse_ts(&c.starts_at)
        .map(paris_day)
        .unwrap_or_else(|| "0000-00-00".into());
    let u = Update::default()
        .set("config", serde_json::to_value(c).unwrap_or(Value::Null))
        .set("capacity", c.capacity)
        .set("gsi1pk", LIST_PK)
        .set("gsi1sk", format!("{}#{}", c.starts_at, c.id))
        .set("gsi2pk", day_pk(&day))
        .set("gsi2sk", format!("{}#{}", c.starts_at, c.id));
    table.transact(vec![Write::update(key(&c.id), u)]).await
}

/// An event as `GET /events` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RoundtableView {
    pub id: String,
    pub title: String,
    pub description: String,
    pub kind: RoundtableKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    pub starts_at: String,
    pub duration_minutes: u32,
    pub capacity: u32,
    pub registered: i64,
    pub waitlisted: i64,
    pub registration_opens_at: String,
    pub registration_closes_at: String,
    /// `upcoming`, `open`, `closed` (the window is over) or `past` (started).
    pub registration: &'static str,
}

struct Loaded {
    config: RoundtableConfig,
    registered: i64,
    waitlisted: i64,
}

impl Loaded {
    fn of(item: &Item) -> Result<Loaded> {
        let config: RoundtableConfig = config_of(item)
            .ok_or_else(|| Error::Store(StoreError::Invalid("event config".into())))?;
        let n = |a: &str| item.get(a).and_then(Value::as_i64).unwrap_or(0);
        Ok(Loaded {
            config,
            registered: n("registered"),
            waitlisted: n("waitlisted"),
        })
    }

    fn phase(&self, at: OffsetDateTime) -> &'static str {
        let t = |s: &str| parse_ts(s).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let c = &self.config;
        if at >= t(&c.starts_at) {
            "past"
        } else if at < t(&c.registration_opens_at) {
            "upcoming"
        } else if at < t(&c.registration_closes_at) {
            "open"
        } else {
            "closed"
        }
    }

    fn started(&self) -> bool {
        self.phase(OffsetDateTime::now_utc()) == "past"
    }

    fn view(self) -> RoundtableView {
        let registration = self.phase(OffsetDateTime::now_utc());
        let c = self.config;
        RoundtableView {
            id: c.id,
            title: c.title,
            description: c.description,
            kind: c.kind,
            place: c.place,
            link: c.link,
            theme: c.theme,
            starts_at: c.starts_at,
            duration_minutes: c.duration_minutes,
            capacity: c.capacity,
            registered: self.registered,
            waitlisted: self.waitlisted,
            registration_opens_at: c.registration_opens_at,
            registration_closes_at: c.registration_closes_at,
            registration,
        }
    }
}

async fn load<T: Table>(app: &App<T>, id: &str, consistent: bool) -> Result<Loaded> {
    if !crate::campaigns::valid_id(id) {
        return Err(Error::NotFound("event"));
    }
    match app.table.get(&key(id), consistent).await? {
        Some(i) => Loaded::of(&i),
        None => Err(Error::NotFound("event")),
    }
}

/// `GET /events?when=upcoming|past`: upcoming events soonest first (the
/// default), or past ones latest first.
pub async fn list<T: Table>(
    app: &App<T>,
    when: Option<&str>,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<RoundtableView>> {
    let past = match when {
        None | Some("upcoming") => false,
        Some("past") => true,
        Some(_) => return Err(Error::invalid("when", "must be upcoming or past")),
    };
    let now_s = now();
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi1, LIST_PK)?;
    let mut q = Query::new(Index::Gsi1, LIST_PK)
        .limit(limit)
        .start_after(start);
    q = if past {
        q.sk(SortKey::Between("0".into(), now_s)).backward()
    } else {
        q.sk(SortKey::Between(now_s, "~".into()))
    };
    let page = app.table.query(&q).await?;
    Ok(ListPage {
        items: page
            .items
            .iter()
            .map(|i| Loaded::of(i).map(Loaded::view))
            .collect::<Result<_>>()?,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

/// `GET /events/{id}`.
pub async fn get<T: Table>(app: &App<T>, id: &str) -> Result<RoundtableView> {
    Ok(load(app, id, false).await?.view())
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Registration {
    pub event_id: String,
    /// `registered` or `waitlisted`.
    pub status: String,
    pub registered_at: String,
}

fn obj(v: Value) -> Result<Item> {
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(Error::Store(StoreError::Invalid("item".into()))),
    }
}

fn seat_race() -> Error {
    Error::Busy
}

async fn backoff(attempt: u32) {
    crate::retry::pause(attempt).await;
}

/// `POST /events/{id}/registrations`: a seat while one is free and nobody
/// waits, else a place on the waitlist. 409 outside the registration
/// window (before it opens, after it closes, once the event started) and
/// for a second registration.
pub async fn register<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &str,
    receipt: Option<&Receipt>,
) -> Result<Registration> {
    let ev = load(app, id, false).await?;
    match ev.phase(OffsetDateTime::now_utc()) {
        "open" => {}
        "upcoming" => {
            return Err(Error::Conflict(format!(
                "registration opens at {}",
                ev.config.registration_opens_at
            )))
        }
        "closed" => {
            return Err(Error::Conflict(format!(
                "registration closed at {}",
                ev.config.registration_closes_at
            )))
        }
        _ => return Err(Error::Conflict("this event has already started".into())),
    }
    caller.require_verified_email()?;
    let member = members::require(app, caller).await?;
    let at = now();
    let rk = registration_key(id, &member.id);
    let mut attempt = 0u32;
    loop {
        let ev = load(app, id, true).await?;
        let cap = i64::from(ev.config.capacity);
        if ev.registered < cap && ev.waitlisted > 0 {
            // Seats freed by a raised capacity: the waiting members first.
            if attempt >= SEAT_ATTEMPTS {
                return Err(seat_race());
            }
            attempt += 1;
            promote_one(app, &ev.config).await?;
            continue;
        }
        let seat = ev.registered < cap;
        let status = if seat { "registered" } else { "waitlisted" };
        let reg = obj(json!({"pk": rk.pk, "sk": rk.sk, "member_id": member.id,
            "event_id": id, "status": status, "registered_at": at}))?;
        let counter = if seat {
            Write::update(key(id), Update::default().add("registered", 1)).when(
                Cond::LessThan("registered".into(), cap)
                    .and(Cond::LessThan("waitlisted".into(), 1)),
            )
        } else {
            Write::update(key(id), Update::default().add("waitlisted", 1)).when(
                Cond::AtLeast("registered".into(), cap).or(Cond::AtLeast("waitlisted".into(), 1)),
            )
        };
        let mut writes = vec![Write::put_new(reg), counter];
        if !seat {
            let wk = wait_key(id, &at, &member.id);
            writes.push(Write::put(obj(
                json!({"pk": wk.pk, "sk": wk.sk, "member_id": member.id, "registered_at": at}),
            )?));
        }
        writes.push(
            Event::new(
                Kind::RoundtableRegistered,
                &member.id,
                None,
                json!({"roundtable_id": id, "status": status}),
            )
            .write(),
        );
        let out = Registration {
            event_id: id.to_owned(),
            status: status.to_owned(),
            registered_at: at.clone(),
        };
        let body =
            serde_json::to_value(&out).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
        match commit(&app.table, writes, receipt.map(|r| (r, 201, &body))).await {
            Ok(()) => return Ok(out),
            Err(e) if e.failed_on(&rk) => {
                return Err(Error::Conflict(
                    "you are already registered for this event".into(),
                ))
            }
            // The seats changed since they were read (the counter's
            // condition), or the counter was busy: read again.
            Err(e)
                if (e.failed_on(&key(id))
                    || matches!(
                        e,
                        Error::Store(StoreError::Conflict | StoreError::Throttled)
                    ))
                    && attempt < SEAT_ATTEMPTS =>
            {
                attempt += 1;
                backoff(attempt).await;
            }
            Err(e) if e.failed_on(&key(id)) || matches!(e, Error::Store(StoreError::Conflict)) => {
                return Err(seat_race())
            }
            Err(e) => return Err(e),
        }
    }
}

/// The first waitlist place (oldest registration first), strongly read.
async fn first_waiting<T: Table>(app: &App<T>, id: &str) -> Result<Option<(Key, String)>> {
    let mut q = Query::new(Index::Primary, pk(id))
        .sk(SortKey::BeginsWith("WAIT#".into()))
        .limit(1);
    q.consistent = true;
    let page = app.table.query(&q).await?;
    Ok(page.items.first().and_then(|i| {
        let k = Key::of(i)?;
        let m = i.get("member_id")?.as_str()?.to_owned();
        Some((k, m))
    }))
}

/// The writes that give member `m` (waiting at `wait`) a seat, and tell them.
fn promotion(c: &RoundtableConfig, wait: &Key, m: &str) -> Vec<Write> {
    vec![
        Write::Delete {
            key: wait.clone(),
            cond: Some(Cond::Exists),
        },
        Write::update(
            registration_key(&c.id, m),
            Update::default()
                .set("status", "registered")
                .set("promoted_at", now()),
        )
        .when(Cond::Eq("status".into(), json!("waitlisted"))),
        Event::new(
            Kind::RoundtablePromoted,
            m,
            None,
            json!({"roundtable_id": c.id, "title": c.title, "starts_at": c.starts_at,
                   "kind": c.kind, "place": c.place, "link": c.link}),
        )
        .write(),
    ]
}

/// Gives one free seat to the first waiting member (a capacity raised by a
/// re-applied file); nothing when no seat is free or nobody waits.
async fn promote_one<T: Table>(app: &App<T>, c: &RoundtableConfig) -> Result<()> {
    let Some((wait, m)) = first_waiting(app, &c.id).await? else {
        return Ok(());
    };
    let mut writes = vec![Write::update(
        key(&c.id),
        Update::default().add("registered", 1).add("waitlisted", -1),
    )
    .when(Cond::LessThan("registered".into(), i64::from(c.capacity)))];
    writes.extend(promotion(c, &wait, &m));
    match app.table.transact(writes).await {
        Ok(()) | Err(StoreError::ConditionFailed { .. } | StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Cancellation {
    pub event_id: String,
    pub status: &'static str,
    /// Whether a waiting member took the freed seat.
    pub seat_taken_by_waitlist: bool,
}

/// `DELETE /events/{id}/registrations/me`: 404 when not registered; a
/// freed seat goes to the first waiting member in the same transaction.
pub async fn cancel<T: Table>(app: &App<T>, caller: &Caller, id: &str) -> Result<Cancellation> {
    let ev = load(app, id, false).await?;
    if ev.started() {
        return Err(Error::Conflict(
            "this event has started: its registrations are final".into(),
        ));
    }
    withdraw(app, caller.id.as_str(), id)
        .await?
        .ok_or(Error::NotFound("registration"))
}

/// The cancellation of `me`'s registration to event `id` (`cancel`, and
/// the erasure of a member registered for an event not started yet): the
/// registration deleted, a freed seat given to the first waiting member in
/// the same transaction. `None` when `me` holds no registration (never
/// registered, or already cancelled: a retried erasure frees nothing twice).
async fn withdraw<T: Table>(app: &App<T>, me: &str, id: &str) -> Result<Option<Cancellation>> {
    let rk = registration_key(id, me);
    let mut attempt = 0u32;
    loop {
        let Some(reg) = app.table.get(&rk, true).await? else {
            return Ok(None);
        };
        let status = reg
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let registered_at = reg
            .get("registered_at")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut writes = vec![Write::Delete {
            key: rk.clone(),
            cond: Some(Cond::Eq("status".into(), json!(status))),
        }];
        let mut promoted = None;
        if status == "waitlisted" {
            writes.push(Write::Delete {
                key: wait_key(id, &registered_at, me),
                cond: None,
            });
            writes.push(Write::update(
                key(id),
                Update::default().add("waitlisted", -1),
            ));
        } else {
            let c = &load(app, id, true).await?.config;
            match first_waiting(app, id).await? {
                Some((wait, m)) => {
                    writes.push(Write::update(
                        key(id),
                        Update::default().add("waitlisted", -1),
                    ));
                    writes.extend(promotion(c, &wait, &m));
                    promoted = Some(m);
                }
                None => writes.push(
                    Write::update(key(id), Update::default().add("registered", -1))
                        .when(Cond::LessThan("waitlisted".into(), 1)),
                ),
            }
        }
        writes.push(
            Event::new(
                Kind::RoundtableCancelled,
                me,
                None,
                json!({"roundtable_id": id, "was": status, "promoted": promoted}),
            )
            .write(),
        );
        match commit(&app.table, writes, None).await {
            Ok(()) => {
                return Ok(Some(Cancellation {
                    event_id: id.to_owned(),
                    status: "cancelled",
                    seat_taken_by_waitlist: promoted.is_some(),
                }))
            }
            // Cancelled (or promoted) meanwhile: read it again.
            Err(Error::Store(
                StoreError::ConditionFailed { .. } | StoreError::Conflict | StoreError::Throttled,
            )) if attempt < SEAT_ATTEMPTS => {
                attempt += 1;
                backoff(attempt).await;
            }
            Err(Error::Store(StoreError::ConditionFailed { .. } | StoreError::Conflict)) => {
                return Err(seat_race())
            }
            Err(e) => return Err(e),
        }
    }
}

// ------------------------------------------------------------------- GDPR

/// The member's registrations with their events (GDPR export and erasure).
/// A registration lives in its event's partition, so they are found
/// through the list of events (gsi1 `RTABLES`, past and upcoming: tens to
/// hundreds, one Query per 100) and one BatchGetItem of the member's
/// registration keys per 100 events; nothing is scanned.
async fn registrations_of<T: Table>(
    app: &App<T>,
    member: &str,
    consistent: bool,
) -> Result<Vec<(Loaded, Item)>> {
    let events =
        crate::store::all_pages(&app.table, Query::new(Index::Gsi1, LIST_PK).limit(100)).await?;
    let mut loaded = std::collections::HashMap::new();
    for i in &events {
        if let Ok(ev) = Loaded::of(i) {
            loaded.insert(ev.config.id.clone(), ev);
        }
    }
    let keys: Vec<Key> = loaded
        .keys()
        .map(|id| registration_key(id, member))
        .collect();
    let mut out = Vec::new();
    for reg in crate::store::get_all(&app.table, &keys, consistent).await? {
        let id = reg
            .get("event_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(ev) = loaded.remove(id) {
            out.push((ev, reg));
        }
    }
    out.sort_by(|a, b| a.0.config.starts_at.cmp(&b.0.config.starts_at));
    Ok(out)
}

/// The member's registrations as `GET /members/me/export` lists them:
/// the event, its start, the status (`registered` or `waitlisted`), when
/// they registered, were promoted from the waitlist, attended.
pub async fn export_of<T: Table>(app: &App<T>, member: &str) -> Result<Vec<Value>> {
    Ok(registrations_of(app, member, false)
        .await?
        .into_iter()
        .map(|(ev, reg)| {
            json!({"event_id": ev.config.id, "title": ev.config.title,
                   "starts_at": ev.config.starts_at, "status": reg.get("status"),
                   "registered_at": reg.get("registered_at"),
                   "promoted_at": reg.get("promoted_at"),
                   "attended_at": reg.get("attended_at")})
        })
        .collect())
}

/// Erasure (`gdpr::erase`, phase 2): a registration for an event not
/// started yet is cancelled as `DELETE /events/{id}/registrations/me` does
/// (its seat goes to the first waiting member, promoted once, in the same
/// transaction; `roundtable.cancelled` and `roundtable.promoted` as on any
/// cancellation); a registration for an event already started is deleted
/// with its waitlist place, the event's counters kept (what the event
/// held, anonymously). Idempotent: a retried erasure finds nothing left.
/// Returns the registrations removed.
pub async fn erase_member<T: Table>(app: &App<T>, member: &str) -> Result<usize> {
    let mut n = 0;
    for (ev, reg) in registrations_of(app, member, true).await? {
        let id = ev.config.id.clone();
        if !ev.started() {
            if withdraw(app, member, &id).await?.is_some() {
                n += 1;
            }
            continue;
        }
        let mut writes = vec![Write::Delete {
            key: registration_key(&id, member),
            cond: None,
        }];
        if reg.get("status") == Some(&json!("waitlisted")) {
            let at = reg
                .get("registered_at")
                .and_then(Value::as_str)
                .unwrap_or_default();
            writes.push(Write::Delete {
                key: wait_key(&id, at, member),
                cond: None,
            });
        }
        commit(&app.table, writes, None).await?;
        n += 1;
    }
    Ok(n)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttendanceRequest {
    pub member_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Attendance {
    pub event_id: String,
    /// Attendance recorded now (each earns the `event_attended` points once).
    pub recorded: Vec<String>,
    /// Already recorded before: nothing more.
    pub already_recorded: Vec<String>,
    /// Not registered (unknown, waitlisted or cancelled): nothing recorded.
    pub not_registered: Vec<String>,
}

/// `POST /events/{id}/attendance` (marketing): once the event has started.
pub async fn attendance<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &str,
    req: AttendanceRequest,
) -> Result<Attendance> {
    if !caller.in_group(MARKETING) {
        return Err(Error::Forbidden("only marketing records attendance".into()));
    }
    let Some(ids) = req.member_ids else {
        return Err(Error::invalid("member_ids", "is required"));
    };
    if ids.is_empty() || ids.len() > MAX_CAPACITY as usize {
        return Err(Error::invalid(
            "member_ids",
            format!(
                "must list 1 to {MAX_CAPACITY} member ids (it lists {})",
                ids.len()
            ),
        ));
    }
    let mut errs = Vec::new();
    for (i, m) in ids.iter().enumerate() {
        if MemberId::parse(m).is_none() {
            errs.push(FieldError::new(
                format!("member_ids[{i}]"),
                "is not a member id",
            ));
        }
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs));
    }
    let mut ids = ids;
    ids.sort();
    ids.dedup();
    let ev = load(app, id, false).await?;
    if !ev.started() {
        return Err(Error::Conflict(format!(
            "attendance is recorded once the event has started ({})",
            ev.config.starts_at
        )));
    }
    let keys: Vec<Key> = ids.iter().map(|m| registration_key(id, m)).collect();
    let regs = crate::store::get_all(&app.table, &keys, true).await?;
    let mut out = Attendance {
        event_id: id.to_owned(),
        ..Default::default()
    };
    let at = now();
    for m in ids {
        let reg = regs
            .iter()
            .find(|r| r.get("member_id").and_then(Value::as_str) == Some(m.as_str()));
        let Some(reg) = reg.filter(|r| r.get("status") == Some(&json!("registered"))) else {
            out.not_registered.push(m);
            continue;
        };
        if reg.contains_key("attended_at") {
            out.already_recorded.push(m);
            continue;
        }
        let writes = vec![
            Write::update(
                registration_key(id, &m),
                Update::default().set("attended_at", at.as_str()),
            )
            .when(
                Cond::Eq("status".into(), json!("registered"))
                    .and(Cond::AttrAbsent("attended_at".into())),
            ),
            Event::new(
                Kind::RoundtableAttended,
                &m,
                None,
                json!({"roundtable_id": id, "title": ev.config.title}),
            )
            .write(),
        ];
        match commit(&app.table, writes, None).await {
            Ok(()) => out.recorded.push(m),
            Err(Error::Store(StoreError::ConditionFailed { .. })) => out.already_recorded.push(m),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What one reminder run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReminderReport {
    /// Tomorrow's events (Paris day).
    pub events: usize,
    /// Reminders started by this run (0 on a rerun the same day).
    pub started: usize,
}

/// The id of an event's reminder (and of its mails' claims): one per event
/// and start, so a moved event is reminded again for its new date.
pub fn reminder_id(c: &RoundtableConfig) -> String {
    let day = parse_ts(&c.starts_at).map(paris_day).unwrap_or_default();
    format!("reminder-{}-{day}", c.id)
}

/// The page `page` of a reminder (after registration `after`).
pub fn reminder_event(c: &RoundtableConfig, page: u32, after: Option<&str>) -> Event {
    let id = reminder_id(c);
    let mut e = Event::new(
        Kind::RoundtableReminder,
        "",
        None,
        json!({"reminder_id": id, "roundtable_id": c.id, "title": c.title,
               "starts_at": c.starts_at, "kind": c.kind, "place": c.place, "link": c.link,
               "page": page, "after": after}),
    );
    e.event_id = if page == 0 {
        id
    } else {
        format!("{id}.p{page}")
    };
    e
}

/// The scheduled reminder (hourly; the first run of the day before the
/// event starts it): tomorrow's events are one Query of gsi2
/// `RTABLEDAY#{tomorrow, Paris}`; each event's reminder starts once (its
/// marker and its first page's event in one transaction). The emails
/// consumer mails the registered members in pages of [`REMINDER_PAGE`],
/// each member once (the mail's claim is keyed by the reminder and the
/// member), and writes the next page's event.
/// On AWS it runs in the hourly `digests` function (its calls are that
/// function's).
pub async fn remind<T: Table>(app: &App<T>) -> Result<ReminderReport> {
    crate::access::function("digests", remind_inner(app)).await
}

async fn remind_inner<T: Table>(app: &App<T>) -> Result<ReminderReport> {
    let tomorrow = paris_day(OffsetDateTime::now_utc() + time::Duration::days(1));
    let items = crate::store::all_pages(
        &app.table,
        Query::new(Index::Gsi2, day_pk(&tomorrow)).limit(100),
    )
    .await?;
    let mut report = ReminderReport::default();
    for i in &items {
        let Ok(ev) = Loaded::of(i) else { continue };
        report.events += 1;
        let first = reminder_event(&ev.config, 0, None);
        let writes = vec![
            consumed_marker("roundtable-reminder", &first.event_id),
            first.write(),
        ];
        match app.table.transact(writes).await {
            Ok(()) => report.started += 1,
            Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

/// One page of registrations of a reminder: the members registered
/// (`status = registered`) among up to [`REMINDER_PAGE`] registrations
/// after `after`, and the sort key to continue from (None: last page).
pub async fn reminder_page<T: Table>(
    app: &App<T>,
    id: &str,
    after: Option<&str>,
) -> Result<(Vec<String>, Option<String>)> {
    let start = after.map(|sk| {
        let mut k = Item::new();
        k.insert("pk".into(), json!(pk(id)));
        k.insert("sk".into(), json!(sk));
        k
    });
    let page = app
        .table
        .query(
            &Query::new(Index::Primary, pk(id))
                .sk(SortKey::BeginsWith("REG#".into()))
                .limit(REMINDER_PAGE)
                .start_after(start),
        )
        .await?;
    let members = page
        .items
        .iter()
        .filter(|i| i.get("status") == Some(&json!("registered")))
        .filter_map(|i| i.get("member_id").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    let next = page
        .last_key
        .as_ref()
        .and_then(|k| k.get("sk"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((members, next))
}

fn where_fr(data: &Value) -> String {
    match (data["place"].as_str(), data["link"].as_str()) {
        (Some(p), _) => format!("Lieu : {p}"),
        (None, Some(l)) => format!("En ligne : {l}"),
        _ => String::new(),
    }
}

/// The mail to a member promoted from the waitlist (`roundtable.promoted`).
pub fn promoted_mail(
    s: &crate::config::Settings,
    e: &Event,
    name: &str,
    member: &str,
) -> crate::mail::templates::Rendered {
    let id = e.data["roundtable_id"].as_str().unwrap_or_default();
    let title = e.data["title"].as_str().unwrap_or_default();
    let mail_id = format!("{}-promoted", e.event_id);
    let lines = vec![
        format!("Bonjour {name},"),
        format!("Une place s'est libérée : vous êtes inscrit(e) à « {title} », le {}.", paris_fr(e.data["starts_at"].as_str().unwrap_or_default())),
        where_fr(&e.data),
        "Si vous ne pouvez plus venir, annulez votre inscription depuis la page de l'événement : la place ira au membre suivant sur la liste d'attente.".into(),
    ];
    let link = Some((
        "Voir l'événement".to_string(),
        crate::mail::tracked_url(
            s,
            &mail_id,
            member,
            &format!("{}/events/{id}", s.public_url),
        ),
    ));
    crate::mail::templates::render(
        mail_id,
        format!("Une place s'est libérée : {title}"),
        lines,
        link,
    )
}

/// The reminder the day before (`roundtable.reminder`, one per event: its
/// mail id is the reminder's).
pub fn reminder_mail(
    s: &crate::config::Settings,
    e: &Event,
    name: &str,
    member: &str,
) -> crate::mail::templates::Rendered {
    let id = e.data["roundtable_id"].as_str().unwrap_or_default();
    let title = e.data["title"].as_str().unwrap_or_default();
    let mail_id = e.data["reminder_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let lines = vec![
        format!("Bonjour {name},"),
        format!("Rappel : « {title} » a lieu demain, le {}.", paris_fr(e.data["starts_at"].as_str().unwrap_or_default())),
        where_fr(&e.data),
        "Un empêchement ? Annulez votre inscription depuis la page de l'événement : votre place ira à un membre de la liste d'attente.".into(),
    ];
    let link = Some((
        "Voir l'événement".to_string(),
        crate::mail::tracked_url(
            s,
            &mail_id,
            member,
            &format!("{}/events/{id}", s.public_url),
        ),
    ));
    crate::mail::templates::render(mail_id, format!("Rappel : {title}, demain"), lines, link)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paris_days_follow_summer_time() {
        let t = |s: &str| parse_ts(s).expect("ts");
        // Winter: UTC+1; 23:30 UTC is already the next day in Paris.
        assert_eq!(paris_day(t("2027-01-14T23:30:00Z")), "2027-01-15");
        assert_eq!(paris_day(t("2027-01-14T22:30:00Z")), "2027-01-14");
        // Summer: UTC+2.
        assert_eq!(paris_day(t("2027-07-14T22:30:00Z")), "2027-07-15");
        assert_eq!(paris_fr("2027-07-14T16:00:00Z"), "14 juillet 2027 à 18h00");
        assert_eq!(paris_fr("2027-01-14T17:00:00Z"), "14 janvier 2027 à 18h00");
        // The switches: last Sundays of March and October, 01:00 UTC.
        assert_eq!(paris_offset(t("2027-03-28T00:59:00Z")).whole_hours(), 1);
        assert_eq!(paris_offset(t("2027-03-28T01:00:00Z")).whole_hours(), 2);
        assert_eq!(paris_offset(t("2027-10-31T00:59:00Z")).whole_hours(), 2);
        assert_eq!(paris_offset(t("2027-10-31T01:00:00Z")).whole_hours(), 1);
    }
}
