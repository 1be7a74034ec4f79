//! Basket uplift (issue 13, item 5): the loyalty programme's weekly basket
//! summaries, on the inbound `baskets` queue (the `baskets` function;
//! locally `POST /local/baskets`), folded into aggregates that
//! `GET /insights` reports as `basket_uplift` without scanning anything.
//!
//! **Messages** (one JSON object each; any other field, a missing one or a
//! value out of range makes the message poison: it fails every delivery
//! and reaches the dead-letter queue, with the reason logged):
//! - a member's week: `{"kind": "member_week", "card", "week": "2026-W49",
//!   "baskets", "average_basket_eur", "sent_at"}`;
//! - the non-member baseline of a week: `{"kind": "baseline_week", "week",
//!   "baskets", "average_basket_eur", "customers"?, "sent_at"}`.
//!
//! `week` is an ISO 8601 week (Monday 00:00 to the next Monday 00:00, UTC)
//! that has begun; `baskets` an integer (≥ 0; at most 1,000 for a member's
//! week); `average_basket_eur` a number ≥ 0 with at most two decimals
//! (0 when `baskets` is 0); `sent_at` the RFC 3339 time the loyalty
//! programme produced the figures: of two summaries of the same week, the
//! later `sent_at` wins (a correction), an earlier or equal one with the
//! same figures is a redelivery (nothing changes), an equal one with other
//! figures contradicts the one recorded (poison).
//!
//! **Spend** is kept in cents, as integers: a week's spend is
//! `baskets × average_basket_cents`, so every average the report gives is
//! a sum of spends over a sum of baskets, exact to aggregate.
//!
//! **Members.** The card is looked up in the card guards (`CARD#{sha256}`,
//! `members::card_key`): a card no member has linked is a non-member's,
//! its summary is not applied and is counted once per card and week as
//! `unmatched_summaries` (marker `DONE#baskets#unmatched#{card hash}#{week}`,
//! kept 90 days; the card number itself is never stored nor logged). A
//! member being erased is skipped. For a member, the week is **before
//! joining** when it ends at or before the member's `joined_at`, **after**
//! otherwise (the week they joined counts as after). Items:
//! - `MEMBER#{id} / BASKET#{week}`: the week's figures as last received
//!   (`baskets`, `spend_cents`, `side`, `sent_at`); the per-week marker;
//! - `MEMBER#{id} / BASKETS`: the member's sums before and after joining
//!   (weeks, baskets, spend) and a version.
//!
//! Both are in the member's partition (exported, deleted by erasure).
//!
//! **Global figures are folded per batch** (no shared item per event): a
//! chunk of up to 10 messages is one transaction holding the week items
//! (condition: the `sent_at` read, or absent), the members' sums
//! (condition: the version read), a check that each member is not being
//! erased, the baseline weeks, the unmatched markers, one write per week to
//! a random `INSIGHTS#{nn} / BASKET#{week}` (members' before and after
//! figures of that week, the difference the chunk made) and one write to a
//! random `INSIGHTS#{nn} / TOTALS` (members with data, members with weeks
//! on both sides and their sums, unmatched summaries). A correction adds
//! the difference between the new figures and the recorded ones. A
//! condition that fails re-reads and re-plans; conflicts and throttling
//! retry in process; a chunk that still fails is applied message by
//! message so that only the failing ones go back to the queue.
//!
//! **Baseline**: `BASKETBASE / {week}` (one partition: one message a week),
//! read whole by `GET /insights`.

use crate::app::App;
use crate::domain::{format_ts, now, parse_ts};
use crate::error::{Error, Result};
use crate::events::{consumed_marker, marker_key, Event, Kind};
use crate::members;
use crate::queue::Consumer;
use crate::store::{Cond, Index, Item, Key, Query, SortKey, StoreError, Table, Update, Write};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use time::OffsetDateTime;

pub const CONSUMER: &str = "baskets";
/// The member's partition's items of this feature start with it.
pub const PREFIX: &str = "BASKET";
/// The member's sums (`MEMBER#{id} / BASKETS`).
pub const SUMS_SK: &str = "BASKETS";
/// The baseline weeks' partition.
pub const BASELINE_PK: &str = "BASKETBASE";
/// Messages per transaction: per message at most a week item, a member's
/// sums, a check and a shard week, plus the totals: far under 100.
const CHUNK: usize = 10;
const ATTEMPTS: u32 = 12;
/// A member's baskets in a week, at most (a shop's staff card would be
/// more: not a member's shopping).
const MAX_MEMBER_BASKETS: i64 = 1_000;
const MAX_BASELINE: i64 = 1_000_000_000;
/// The largest average basket taken, in euros.
const MAX_AVERAGE_EUR: f64 = 10_000.0;

/// What `GET /insights` states beside the figures.
pub const METHOD: &str = "Source: the loyalty programme's weekly summaries (per card and ISO week: baskets and average basket, in euros to the cent). A week's spend is baskets × average basket, in cents; every average below is total spend / total baskets over the weeks it covers (a basket-weighted mean, not a mean of averages). A member's week is 'before joining' when the week (Monday 00:00 to Monday 00:00 UTC) ends at or before the member's sign-up time, 'after' otherwise (the week they joined counts as after). after_vs_before compares, for the members with at least one week on each side only (paired members), their average basket after joining with their average basket before. Same weeks: members' average basket over their after-joining weeks that have a non-member baseline, against the baseline's average over those same weeks; members_vs_baseline is the first over the second. A summary for a card no member has linked is not used (counted in unmatched_summaries). A corrected summary for a week replaces the previous one. Ratios are null while a side has no baskets. Members who later erased their account stay in the sums (anonymous totals).";

fn now_utc() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// An ISO week: `YYYY-Www`, its start (Monday 00:00 UTC) and end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Week {
    pub id: String,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

/// Reads `YYYY-Www` (a week the year has: W53 only in a 53-week year).
pub fn parse_week(s: &str) -> Option<Week> {
    let (y, w) = s.split_once("-W")?;
    if y.len() != 4 || w.len() != 2 || !y.bytes().chain(w.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i32 = y.parse().ok()?;
    let week: u8 = w.parse().ok()?;
    if !(2000..=9998).contains(&year) {
        return None;
    }
    let monday = time::Date::from_iso_week_date(year, week, time::Weekday::Monday).ok()?;
    let start = monday.midnight().assume_utc();
    Some(Week {
        id: s.to_owned(),
        start,
        end: start + time::Duration::weeks(1),
    })
}

/// Before or after the member joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Before,
    After,
}

impl Side {
    /// The week is before joining when it ends at or before `joined_at`.
    pub fn of(week: &Week, joined_at: OffsetDateTime) -> Side {
        if week.end <= joined_at {
            Side::Before
        } else {
            Side::After
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Before => "before",
            Side::After => "after",
        }
    }
}

/// A summary as the consumer's event carries it (`data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// `member_week` or `baseline_week`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    pub week: String,
    pub baskets: i64,
    pub spend_cents: i64,
    pub average_basket_cents: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customers: Option<i64>,
    /// Normalised (`format_ts`), so string order is time order.
    pub sent_at: String,
}

impl Summary {
    fn figures(&self) -> (i64, i64) {
        (self.baskets, self.spend_cents)
    }
}

fn int_field(o: &Map<String, Value>, name: &str, max: i64) -> std::result::Result<i64, String> {
    let v = o.get(name).ok_or(format!("{name} is missing"))?;
    match v.as_i64() {
        Some(n) if (0..=max).contains(&n) => Ok(n),
        _ => Err(format!("{name} must be an integer from 0 to {max}")),
    }
}

fn cents_field(o: &Map<String, Value>, name: &str) -> std::result::Result<i64, String> {
    let v = o.get(name).ok_or(format!("{name} is missing"))?;
    let x = v
        .as_f64()
        .ok_or(format!("{name} must be a number of euros"))?;
    if !(0.0..=MAX_AVERAGE_EUR).contains(&x) {
        return Err(format!("{name} must be from 0 to {MAX_AVERAGE_EUR} euros"));
    }
    let cents = (x * 100.0).round();
    if (x * 100.0 - cents).abs() > 1e-6 {
        return Err(format!("{name} must have at most two decimals (cents)"));
    }
    Ok(cents as i64)
}

/// Reads a message of the `baskets` queue (see the module doc). Errors
/// name the field, never echo a value (a card number is never logged).
pub fn parse_summary(body: &str) -> std::result::Result<Summary, String> {
    let v: Value = serde_json::from_str(body).map_err(|_| "not JSON".to_string())?;
    let Value::Object(o) = v else {
        return Err("not a JSON object".into());
    };
    let kind = o
        .get("kind")
        .and_then(Value::as_str)
        .ok_or("kind is missing (member_week or baseline_week)")?
        .to_owned();
    let allowed: &[&str] = match kind.as_str() {
        "member_week" => &[
            "kind",
            "card",
            "week",
            "baskets",
            "average_basket_eur",
            "sent_at",
        ],
        "baseline_week" => &[
            "kind",
            "week",
            "baskets",
            "average_basket_eur",
            "customers",
            "sent_at",
        ],
        _ => return Err("kind must be member_week or baseline_week".into()),
    };
    if let Some(extra) = o.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("unknown field {extra:?} in a {kind}"));
    }
    let card = if kind == "member_week" {
        let c = o
            .get("card")
            .and_then(Value::as_str)
            .ok_or("card is missing (a string of digits)")?;
        crate::domain::LoyaltyCard::parse(c.to_owned())
            .map_err(|_| "card must be 8 to 19 digits, without spaces".to_string())?;
        Some(c.to_owned())
    } else {
        None
    };
    let week_s = o
        .get("week")
        .and_then(Value::as_str)
        .ok_or("week is missing (YYYY-Www)")?;
    let week = parse_week(week_s).ok_or("week must be an ISO week YYYY-Www the year has")?;
    if week.start > now_utc() {
        return Err("week has not begun yet".into());
    }
    let max = if kind == "member_week" {
        MAX_MEMBER_BASKETS
    } else {
        MAX_BASELINE
    };
    let baskets = int_field(&o, "baskets", max)?;
    let average = cents_field(&o, "average_basket_eur")?;
    if baskets == 0 && average != 0 {
        return Err("average_basket_eur must be 0 when baskets is 0".into());
    }
    let customers = match o.get("customers") {
        None => None,
        Some(_) => Some(int_field(&o, "customers", MAX_BASELINE)?),
    };
    let sent_at = o
        .get("sent_at")
        .and_then(Value::as_str)
        .and_then(parse_ts)
        .ok_or("sent_at must be an RFC 3339 time")?;
    if sent_at > now_utc() + time::Duration::minutes(5) {
        return Err("sent_at is in the future".into());
    }
    Ok(Summary {
        kind,
        card,
        week: week.id,
        baskets,
        spend_cents: baskets * average,
        average_basket_cents: average,
        customers,
        sent_at: format_ts(sent_at),
    })
}

fn card_hash(card: &str) -> String {
    members::card_hash(card)
}

/// Reads a message into the consumer's event: its id names the week and
/// the version, never the card (a hash of it).
pub fn parse(body: &str) -> std::result::Result<Event, String> {
    let s = parse_summary(body)?;
    let id = match &s.card {
        Some(c) => format!(
            "member_week.{}.{}.{}",
            &card_hash(c)[..16],
            s.week,
            s.sent_at
        ),
        None => format!("baseline_week.{}.{}", s.week, s.sent_at),
    };
    let mut e = Event::new(
        Kind::BasketWeek,
        "",
        None,
        serde_json::to_value(&s).map_err(|e| e.to_string())?,
    );
    e.event_id = id;
    Ok(e)
}

fn malformed(why: &str) -> Error {
    tracing::error!(consumer = CONSUMER, why, "malformed basket summary");
    Error::Store(StoreError::Invalid(format!(
        "malformed basket summary: {why}"
    )))
}

pub fn summary_of(e: &Event) -> Result<Summary> {
    if e.kind != Kind::BasketWeek {
        return Err(malformed(&format!(
            "kind {} is not basket.week",
            e.kind.as_str()
        )));
    }
    serde_json::from_value(e.data.clone()).map_err(|err| malformed(&err.to_string()))
}

pub fn week_key(member: &str, week: &str) -> Key {
    Key::new(crate::members::pk(member), format!("{PREFIX}#{week}"))
}

pub fn sums_key(member: &str) -> Key {
    Key::new(crate::members::pk(member), SUMS_SK)
}

pub fn baseline_key(week: &str) -> Key {
    Key::new(BASELINE_PK, week)
}

fn shard_week_key(week: &str) -> Key {
    use rand::Rng;
    let shard = rand::rng().random_range(0..crate::insights::INSIGHTS_SHARDS);
    Key::new(crate::insights::shard_pk(shard), format!("{PREFIX}#{week}"))
}

fn num(i: &Item, a: &str) -> i64 {
    i.get(a).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(i: &'a Item, a: &str) -> Option<&'a str> {
    i.get(a).and_then(Value::as_str)
}

/// A member's sums.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sums {
    before: [i64; 3],
    after: [i64; 3],
}

impl Sums {
    fn of(i: &Item) -> Sums {
        Sums {
            before: [
                num(i, "before_weeks"),
                num(i, "before_baskets"),
                num(i, "before_cents"),
            ],
            after: [
                num(i, "after_weeks"),
                num(i, "after_baskets"),
                num(i, "after_cents"),
            ],
        }
    }
    fn side(&mut self, s: Side) -> &mut [i64; 3] {
        match s {
            Side::Before => &mut self.before,
            Side::After => &mut self.after,
        }
    }
    fn has_data(&self) -> bool {
        self.before[0] + self.after[0] > 0
    }
    fn paired(&self) -> bool {
        self.before[0] > 0 && self.after[0] > 0
    }
    /// What the member adds to the paired totals.
    fn paired_part(&self) -> ([i64; 3], [i64; 3]) {
        if self.paired() {
            (self.before, self.after)
        } else {
            ([0; 3], [0; 3])
        }
    }
}

/// A recorded week (member's or baseline): `sent_at`, baskets, spend, side.
#[derive(Debug, Clone)]
struct Recorded {
    sent_at: String,
    baskets: i64,
    spend: i64,
    side: Option<Side>,
}

impl Recorded {
    fn of(i: &Item) -> Option<Recorded> {
        Some(Recorded {
            sent_at: text(i, "sent_at")?.to_owned(),
            baskets: num(i, "baskets"),
            spend: num(i, "spend_cents"),
            side: match text(i, "side") {
                Some("before") => Some(Side::Before),
                Some("after") => Some(Side::After),
                _ => None,
            },
        })
    }
}

/// What a new summary does to a recorded week.
enum Verdict {
    Apply,
    /// A redelivery, or older than the recorded figures.
    Skip(&'static str),
    /// Same `sent_at`, other figures.
    Contradicts,
}

fn verdict(rec: Option<&Recorded>, s: &Summary) -> Verdict {
    match rec {
        None => Verdict::Apply,
        Some(r) if s.sent_at > r.sent_at => Verdict::Apply,
        Some(r) if s.sent_at < r.sent_at => Verdict::Skip("older than the figures recorded"),
        Some(r) if (r.baskets, r.spend) == s.figures() => Verdict::Skip("already recorded"),
        Some(_) => Verdict::Contradicts,
    }
}

/// The `baskets` queue's consumer (the `baskets` function).
pub struct BasketsConsumer<T> {
    pub app: App<T>,
}

enum Outcome {
    /// Applied; the ids (of this chunk) that contradict what is recorded.
    Done(Vec<String>),
    Replan,
    Busy,
}

struct MemberState {
    sums: Sums,
    old: Sums,
    ver: Option<i64>,
    joined_at: OffsetDateTime,
    touched: bool,
}

impl<T: Table + Clone> BasketsConsumer<T> {
    async fn attempt(&self, chunk: &[(&str, &Summary)]) -> Result<Outcome> {
        let table = &self.app.table;
        // Corrections in the same chunk apply in their order.
        let mut chunk: Vec<(&str, &Summary)> = chunk.to_vec();
        chunk.sort_by(|a, b| a.1.sent_at.cmp(&b.1.sent_at));

        // 1. Cards → members (the guards), then the members' profiles,
        // sums and weeks, the baselines and the unmatched markers.
        let cards: Vec<&str> = chunk
            .iter()
            .filter_map(|(_, s)| s.card.as_deref())
            .collect();
        let guard_keys: Vec<Key> = cards.iter().map(|c| members::card_key(c)).collect();
        let mut member_of: HashMap<String, String> = HashMap::new();
        for g in crate::store::get_all(table, &guard_keys, true).await? {
            if let (Some(pk), Some(m)) = (text(&g, "pk"), text(&g, "member_id")) {
                member_of.insert(pk.to_owned(), m.to_owned());
            }
        }
        let member_for = |card: &str| member_of.get(&members::card_key(card).pk).cloned();
        let mut keys: Vec<Key> = Vec::new();
        let mut unmatched_keys = Vec::new();
        for (_, s) in &chunk {
            match s.card.as_deref() {
                Some(c) => match member_for(c) {
                    Some(m) => {
                        if let Some(id) = crate::domain::MemberId::parse(&m) {
                            keys.push(members::key(&id));
                        }
                        keys.push(sums_key(&m));
                        keys.push(week_key(&m, &s.week));
                    }
                    None => {
                        let k = unmatched_id(c, &s.week);
                        unmatched_keys.push(marker_key(CONSUMER, &k));
                        keys.push(marker_key(CONSUMER, &k));
                    }
                },
                None => keys.push(baseline_key(&s.week)),
            }
        }
        keys.sort();
        keys.dedup();
        let mut found: HashMap<Key, Item> = HashMap::new();
        for i in crate::store::get_all(table, &keys, true).await? {
            if let Some(k) = Key::of(&i) {
                found.insert(k, i);
            }
        }

        // 2. The plan, message after message, on what was read.
        let mut members_state: BTreeMap<String, MemberState> = BTreeMap::new();
        let mut weeks: BTreeMap<(String, String), (Option<Recorded>, Option<Summary>)> =
            BTreeMap::new();
        let mut baselines: BTreeMap<String, (Option<Recorded>, Option<Summary>)> = BTreeMap::new();
        let mut unmatched: Vec<String> = Vec::new();
        let mut shard_weeks: BTreeMap<String, Sums> = BTreeMap::new();
        let mut contradicting = Vec::new();
        for (id, s) in &chunk {
            let Some(card) = s.card.as_deref() else {
                let e = baselines.entry(s.week.clone()).or_insert_with(|| {
                    (
                        found.get(&baseline_key(&s.week)).and_then(Recorded::of),
                        None,
                    )
                });
                let current = e.1.as_ref().map(|n| Recorded {
                    sent_at: n.sent_at.clone(),
                    baskets: n.baskets,
                    spend: n.spend_cents,
                    side: None,
                });
                match verdict(current.as_ref().or(e.0.as_ref()), s) {
                    Verdict::Apply => e.1 = Some((*s).clone()),
                    Verdict::Skip(why) => {
                        tracing::info!(consumer = CONSUMER, message_id = %id, week = %s.week, why, "baseline week not applied")
                    }
                    Verdict::Contradicts => contradicting.push(id.to_string()),
                }
                continue;
            };
            let Some(member) = member_for(card) else {
                let k = unmatched_id(card, &s.week);
                if !found.contains_key(&marker_key(CONSUMER, &k)) && !unmatched.contains(&k) {
                    unmatched.push(k);
                }
                tracing::info!(consumer = CONSUMER, message_id = %id, week = %s.week, "a card no member has linked: counted as unmatched");
                continue;
            };
            let profile =
                crate::domain::MemberId::parse(&member).and_then(|m| found.get(&members::key(&m)));
            let joined = profile
                .filter(|p| !members::is_closed(p))
                .and_then(|p| text(p, "joined_at"))
                .and_then(parse_ts);
            let Some(joined_at) = joined else {
                tracing::info!(consumer = CONSUMER, message_id = %id, member = %member, "member absent or being erased: summary ignored");
                continue;
            };
            let st = members_state.entry(member.clone()).or_insert_with(|| {
                let item = found.get(&sums_key(&member));
                let sums = item.map(Sums::of).unwrap_or_default();
                MemberState {
                    sums,
                    old: sums,
                    ver: item.map(|i| num(i, "ver")),
                    joined_at,
                    touched: false,
                }
            });
            let e = weeks
                .entry((member.clone(), s.week.clone()))
                .or_insert_with(|| {
                    (
                        found
                            .get(&week_key(&member, &s.week))
                            .and_then(Recorded::of),
                        None,
                    )
                });
            let side_of_new = match parse_week(&s.week) {
                Some(w) => Side::of(&w, st.joined_at),
                None => continue,
            };
            let current: Option<Recorded> = match &e.1 {
                Some(n) => Some(Recorded {
                    sent_at: n.sent_at.clone(),
                    baskets: n.baskets,
                    spend: n.spend_cents,
                    side: Some(side_of_new),
                }),
                None => e.0.clone(),
            };
            match verdict(current.as_ref(), s) {
                Verdict::Apply => {
                    let sw = shard_weeks.entry(s.week.clone()).or_default();
                    if let Some(old) = &current {
                        let side = old.side.unwrap_or(side_of_new);
                        for t in [st.sums.side(side), sw.side(side)] {
                            t[0] -= 1;
                            t[1] -= old.baskets;
                            t[2] -= old.spend;
                        }
                    }
                    for t in [st.sums.side(side_of_new), sw.side(side_of_new)] {
                        t[0] += 1;
                        t[1] += s.baskets;
                        t[2] += s.spend_cents;
                    }
                    st.touched = true;
                    e.1 = Some((*s).clone());
                }
                Verdict::Skip(why) => {
                    tracing::info!(consumer = CONSUMER, message_id = %id, member = %member, week = %s.week, why, "member week not applied")
                }
                Verdict::Contradicts => contradicting.push(id.to_string()),
            }
        }

        // 3. The writes.
        let at = now();
        let mut writes = Vec::new();
        for ((member, week), (old, new)) in &weeks {
            let Some(n) = new else { continue };
            let side = members_state
                .get(member)
                .and_then(|st| parse_week(week).map(|w| Side::of(&w, st.joined_at)))
                .unwrap_or(Side::After);
            let k = week_key(member, week);
            let mut item = Item::new();
            item.insert("pk".into(), json!(k.pk));
            item.insert("sk".into(), json!(k.sk));
            item.insert("week".into(), json!(week));
            item.insert("baskets".into(), json!(n.baskets));
            item.insert("average_basket_cents".into(), json!(n.average_basket_cents));
            item.insert("spend_cents".into(), json!(n.spend_cents));
            item.insert("side".into(), json!(side.as_str()));
            item.insert("sent_at".into(), json!(n.sent_at));
            item.insert("recorded_at".into(), json!(at));
            let cond = match old {
                Some(o) => Cond::Eq("sent_at".into(), json!(o.sent_at)),
                None => Cond::NotExists,
            };
            writes.push(Write::put(item).when(cond));
        }
        let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
        for (member, st) in &members_state {
            if !st.touched {
                continue;
            }
            let k = sums_key(member);
            let mut item = Item::new();
            item.insert("pk".into(), json!(k.pk));
            item.insert("sk".into(), json!(k.sk));
            for (side, v) in [("before", st.sums.before), ("after", st.sums.after)] {
                item.insert(format!("{side}_weeks"), json!(v[0]));
                item.insert(format!("{side}_baskets"), json!(v[1]));
                item.insert(format!("{side}_cents"), json!(v[2]));
            }
            item.insert("ver".into(), json!(st.ver.unwrap_or(0) + 1));
            item.insert("updated_at".into(), json!(at));
            let cond = match st.ver {
                Some(v) => Cond::Eq("ver".into(), json!(v)),
                None => Cond::NotExists,
            };
            writes.push(Write::put(item).when(cond));
            // The member is still there, and not being erased.
            if let Some(id) = crate::domain::MemberId::parse(member) {
                writes.push(Write::Check {
                    key: members::key(&id),
                    cond: Cond::Exists
                        .and(Cond::AttrAbsent("erasing_at".into()))
                        .and(Cond::AttrAbsent("erased_at".into())),
                });
            }
            *totals.entry("basket_members").or_default() +=
                i64::from(st.sums.has_data()) - i64::from(st.old.has_data());
            *totals.entry("basket_paired_members").or_default() +=
                i64::from(st.sums.paired()) - i64::from(st.old.paired());
            let (nb, na) = st.sums.paired_part();
            let (ob, oa) = st.old.paired_part();
            for i in 0..3 {
                *totals.entry(PAIRED_BEFORE[i]).or_default() += nb[i] - ob[i];
                *totals.entry(PAIRED_AFTER[i]).or_default() += na[i] - oa[i];
            }
        }
        for (week, (old, new)) in &baselines {
            let Some(n) = new else { continue };
            let k = baseline_key(week);
            let mut item = Item::new();
            item.insert("pk".into(), json!(k.pk));
            item.insert("sk".into(), json!(k.sk));
            item.insert("week".into(), json!(week));
            item.insert("baskets".into(), json!(n.baskets));
            item.insert("average_basket_cents".into(), json!(n.average_basket_cents));
            item.insert("spend_cents".into(), json!(n.spend_cents));
            if let Some(c) = n.customers {
                item.insert("customers".into(), json!(c));
            }
            item.insert("sent_at".into(), json!(n.sent_at));
            item.insert("recorded_at".into(), json!(at));
            let cond = match old {
                Some(o) => Cond::Eq("sent_at".into(), json!(o.sent_at)),
                None => Cond::NotExists,
            };
            writes.push(Write::put(item).when(cond));
        }
        for k in &unmatched {
            writes.push(consumed_marker(CONSUMER, k));
        }
        *totals.entry("basket_unmatched").or_default() += unmatched.len() as i64;
        for (week, d) in &shard_weeks {
            let mut u = Update::default();
            let mut any = false;
            for (side, v) in [("before", d.before), ("after", d.after)] {
                for (i, what) in ["weeks", "baskets", "cents"].iter().enumerate() {
                    if v[i] != 0 {
                        u = u.add(&format!("{side}_{what}"), v[i]);
                        any = true;
                    }
                }
            }
            if any {
                writes.push(Write::update(shard_week_key(week), u));
            }
        }
        let adds: Vec<(&str, i64)> = totals.into_iter().collect();
        if let Some(w) = crate::insights::totals_write(&adds) {
            writes.push(w);
        }
        if writes.is_empty() {
            return Ok(Outcome::Done(contradicting));
        }
        match table.transact(writes).await {
            Ok(()) => {
                tracing::info!(
                    consumer = CONSUMER,
                    member_weeks = weeks.values().filter(|w| w.1.is_some()).count(),
                    baseline_weeks = baselines.values().filter(|w| w.1.is_some()).count(),
                    unmatched = unmatched.len(),
                    "basket summaries recorded"
                );
                Ok(Outcome::Done(contradicting))
            }
            Err(StoreError::ConditionFailed { .. }) => Ok(Outcome::Replan),
            Err(StoreError::Conflict | StoreError::Throttled) => Ok(Outcome::Busy),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies summaries, [`CHUNK`] per transaction, retrying in process;
    /// returns the ids that contradict what is recorded.
    async fn apply_all(&self, summaries: &[(&str, &Summary)]) -> Result<Vec<String>> {
        let mut contradicting = Vec::new();
        for chunk in summaries.chunks(CHUNK) {
            let mut attempt = 0;
            loop {
                match self.attempt(chunk).await? {
                    Outcome::Done(c) => {
                        contradicting.extend(c);
                        break;
                    }
                    Outcome::Replan if attempt < ATTEMPTS => {}
                    Outcome::Busy if attempt < ATTEMPTS => {
                        crate::retry::pause(attempt).await;
                    }
                    _ => return Err(Error::Busy),
                }
                attempt += 1;
            }
        }
        Ok(contradicting)
    }
}

const PAIRED_BEFORE: [&str; 3] = [
    "basket_paired_before_weeks",
    "basket_paired_before_baskets",
    "basket_paired_before_cents",
];
const PAIRED_AFTER: [&str; 3] = [
    "basket_paired_after_weeks",
    "basket_paired_after_baskets",
    "basket_paired_after_cents",
];

fn unmatched_id(card: &str, week: &str) -> String {
    format!("unmatched#{}#{week}", card_hash(card))
}

fn log_contradiction(id: &str) {
    tracing::error!(consumer = CONSUMER, message_id = %id, "poison message: same sent_at as the recorded summary of that week, other figures (send a correction with a later sent_at)");
}

#[async_trait]
impl<T: Table + Clone> Consumer for BasketsConsumer<T> {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn prepare(&self) {
        self.app.refresh_or_keep().await;
    }

    /// The loyalty programme's summary (see [`parse`]), not an outbox event.
    fn parse(&self, body: &str) -> std::result::Result<Event, String> {
        parse(body)
    }

    async fn apply(&self, e: &Event) -> Result<()> {
        let s = summary_of(e)?;
        let c = self.apply_all(&[(e.event_id.as_str(), &s)]).await?;
        if !c.is_empty() {
            log_contradiction(&e.event_id);
            return Err(malformed("contradicts the recorded summary"));
        }
        Ok(())
    }

    /// The batch in transactions of [`CHUNK`]; when one fails, each
    /// message on its own, so that only the failing ones are retried.
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        let mut failed = Vec::new();
        let mut good = Vec::new();
        for (id, e) in batch {
            match summary_of(e) {
                Ok(s) => good.push((id.as_str(), s)),
                Err(err) => {
                    tracing::warn!(consumer = CONSUMER, message_id = %id, error = %err, "message failed; it will be retried");
                    failed.push(id.clone());
                }
            }
        }
        let all: Vec<(&str, &Summary)> = good.iter().map(|(id, s)| (*id, s)).collect();
        match self.apply_all(&all).await {
            Ok(c) => {
                for id in &c {
                    log_contradiction(id);
                }
                failed.extend(c);
            }
            Err(err) => {
                tracing::warn!(consumer = CONSUMER, error = %err, "batch failed; applying its messages one by one");
                for (id, s) in &all {
                    match self.apply_all(&[(id, s)]).await {
                        Ok(c) if c.is_empty() => {}
                        Ok(_) => {
                            log_contradiction(id);
                            failed.push(id.to_string());
                        }
                        Err(err) => {
                            tracing::warn!(consumer = CONSUMER, message_id = %id, error = %err, "message failed; it will be retried");
                            failed.push(id.to_string());
                        }
                    }
                }
            }
        }
        failed
    }
}

fn add3(a: &mut [i64; 3], b: [i64; 3]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
}

fn eur(cents: i64) -> f64 {
    cents as f64 / 100.0
}

fn average(baskets: i64, cents: i64) -> Option<f64> {
    (baskets > 0).then(|| ((cents as f64 / baskets as f64).round()) / 100.0)
}

/// `(ca / ba) / (cb / bb)`, from the sums (not the rounded averages),
/// to two decimals; None while a side has no baskets (or no spend).
fn ratio(ba: i64, ca: i64, bb: i64, cb: i64) -> Option<f64> {
    if ba == 0 || bb == 0 || cb == 0 {
        return None;
    }
    let r = (ca as f64 / ba as f64) / (cb as f64 / bb as f64);
    Some((r * 100.0).round() / 100.0)
}

fn side_figures(weeks: i64, baskets: i64, cents: i64) -> Value {
    json!({"weeks": weeks, "baskets": baskets, "spend_eur": eur(cents),
           "average_basket_eur": average(baskets, cents)})
}

/// `basket_uplift` of `GET /insights`, from the totals already summed and
/// the members' weeks (16 Queries of `INSIGHTS#{nn}` / `BASKET#…`) and the
/// baseline weeks (one Query of `BASKETBASE`).
pub async fn report<T: Table>(app: &App<T>, totals: &BTreeMap<String, i64>) -> Result<Value> {
    let t = |k: &str| totals.get(k).copied().unwrap_or(0);
    let table = &app.table;
    let queries = (0..crate::insights::INSIGHTS_SHARDS).map(|s| async move {
        all_of(
            table,
            Query::new(Index::Primary, crate::insights::shard_pk(s))
                .sk(SortKey::BeginsWith(format!("{PREFIX}#"))),
        )
        .await
    });
    let mut per_week: BTreeMap<String, Sums> = BTreeMap::new();
    for items in futures::future::try_join_all(queries).await? {
        for i in items {
            let Some(w) = text(&i, "sk").and_then(|sk| sk.strip_prefix("BASKET#")) else {
                continue;
            };
            let e = per_week.entry(w.to_owned()).or_default();
            let s = Sums::of(&i);
            add3(&mut e.before, s.before);
            add3(&mut e.after, s.after);
        }
    }
    let baseline = all_of(table, Query::new(Index::Primary, BASELINE_PK)).await?;
    // Same weeks: the members' after-joining figures of the weeks with a baseline.
    let (mut weeks, mut mw, mut mb, mut mc, mut bb, mut bc) = (0i64, 0i64, 0i64, 0i64, 0i64, 0i64);
    for b in &baseline {
        let Some(w) = text(b, "week") else { continue };
        let Some(m) = per_week.get(w) else { continue };
        if m.after[0] <= 0 {
            continue;
        }
        weeks += 1;
        mw += m.after[0];
        mb += m.after[1];
        mc += m.after[2];
        bb += num(b, "baskets");
        bc += num(b, "spend_cents");
    }
    let before = [
        t(PAIRED_BEFORE[0]),
        t(PAIRED_BEFORE[1]),
        t(PAIRED_BEFORE[2]),
    ];
    let after = [t(PAIRED_AFTER[0]), t(PAIRED_AFTER[1]), t(PAIRED_AFTER[2])];
    let (mut all_before, mut all_after) = ([0i64; 3], [0i64; 3]);
    for s in per_week.values() {
        add3(&mut all_before, s.before);
        add3(&mut all_after, s.after);
    }
    let (base_b, base_c) = baseline.iter().fold((0, 0), |(b, c), i| {
        (b + num(i, "baskets"), c + num(i, "spend_cents"))
    });
    Ok(json!({
        "members_with_data": t("basket_members"),
        "members_paired": t("basket_paired_members"),
        "unmatched_summaries": t("basket_unmatched"),
        "before_joining": side_figures(before[0], before[1], before[2]),
        "after_joining": side_figures(after[0], after[1], after[2]),
        "after_vs_before": ratio(after[1], after[2], before[1], before[2]),
        "same_weeks": {
            "weeks": weeks,
            "members": side_figures(mw, mb, mc),
            "baseline": side_figures(weeks, bb, bc),
            "members_vs_baseline": ratio(mb, mc, bb, bc),
        },
        "all_weeks": {
            "members_before_joining": side_figures(all_before[0], all_before[1], all_before[2]),
            "members_after_joining": side_figures(all_after[0], all_after[1], all_after[2]),
            "baseline": side_figures(baseline.len() as i64, base_b, base_c),
        },
        "method": METHOD,
    }))
}

async fn all_of<T: Table>(table: &T, q: Query) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = table
            .query(&q.clone().limit(1000).start_after(start.take()))
            .await?;
        out.extend(page.items);
        match page.last_key {
            Some(k) => start = Some(k),
            None => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> String {
        v.to_string()
    }

    #[test]
    fn weeks_and_sides() {
        let w = parse_week("2026-W49").expect("week");
        assert_eq!(format_ts(w.start), "2026-11-30T00:00:00.000Z");
        assert_eq!(format_ts(w.end), "2026-12-07T00:00:00.000Z");
        assert!(parse_week("2026-W53").is_some(), "2026 has 53 weeks");
        assert!(parse_week("2025-W53").is_none());
        for bad in [
            "2026-W00", "2026-W5", "2026W49", "26-W49", "2026-w49", "2026-W4a",
        ] {
            assert!(parse_week(bad).is_none(), "{bad}");
        }
        let joined = parse_ts("2026-12-07T00:00:00.000Z").expect("ts");
        assert_eq!(Side::of(&w, joined), Side::Before, "ends when they join");
        let joined = parse_ts("2026-12-06T23:00:00.000Z").expect("ts");
        assert_eq!(
            Side::of(&w, joined),
            Side::After,
            "the joining week is after"
        );
    }

    #[test]
    fn strict_messages() {
        let ok = json!({"kind": "member_week", "card": "9130012345678901", "week": "2026-W45",
                        "baskets": 3, "average_basket_eur": 42.15, "sent_at": "2026-11-10T06:00:00Z"});
        let s = parse_summary(&body(ok.clone())).expect("valid");
        assert_eq!(
            (s.baskets, s.average_basket_cents, s.spend_cents),
            (3, 4215, 12645)
        );
        assert_eq!(s.sent_at, "2026-11-10T06:00:00.000Z");
        let base = json!({"kind": "baseline_week", "week": "2026-W45", "baskets": 120000,
                          "average_basket_eur": 14.2, "customers": 41000, "sent_at": "2026-11-10T06:00:00Z"});
        assert_eq!(
            parse_summary(&body(base)).expect("valid").spend_cents,
            170_400_000
        );
        for (field, v, why) in [
            ("average_basket_eur", json!(42.155), "two decimals"),
            ("average_basket_eur", json!(-1), "from 0"),
            ("average_basket_eur", json!("42"), "number"),
            ("baskets", json!(2.5), "integer"),
            ("baskets", json!(-1), "integer"),
            ("baskets", json!(1001), "integer"),
            ("week", json!("2026-W60"), "ISO week"),
            ("week", json!("2999-W01"), "not begun"),
            ("card", json!("9130 0123"), "digits"),
            ("card", json!(9130012345678901u64), "card"),
            ("sent_at", json!("yesterday"), "RFC 3339"),
            ("kind", json!("other"), "kind"),
            ("customers", json!(3), "unknown field"),
            ("extra", json!(1), "unknown field"),
        ] {
            let mut m = ok.clone();
            m.as_object_mut().expect("object").insert(field.into(), v);
            let err = parse_summary(&body(m)).expect_err(field);
            assert!(err.contains(why), "{field}: {err}");
            assert!(!err.contains("9130"), "no card number in a reason: {err}");
        }
        let mut zero = ok.clone();
        zero["baskets"] = json!(0);
        assert!(
            parse_summary(&body(zero.clone())).is_err(),
            "0 baskets, 42.15 average"
        );
        zero["average_basket_eur"] = json!(0);
        assert!(parse_summary(&body(zero)).is_ok());
        let mut missing = ok.clone();
        missing.as_object_mut().expect("object").remove("sent_at");
        assert!(parse_summary(&body(missing)).is_err());
        assert!(parse_summary("[1]").is_err());
        assert!(parse_summary("not json").is_err());
    }
}
