//! Insights for marketing: aggregates maintained as events happen, read by
//! `GET /insights` without scanning anything.
//!
//! **Aggregates.** Counters live in `INSIGHTS_SHARDS` partitions
//! `INSIGHTS#{00-15}`: sort key `TOTALS` (sign-ups, erasures, cohorts, ideas
//! per theme and status, entries, reviews, labels,
//! comments, content hidden by moderation, points credited and redeemed) and `DAY#{yyyy-mm-dd}` (sign-ups
//! of the day, and `last_active`: the members whose last action was that
//! day). Each write picks a shard at random, so a vote spike spreads over 16
//! partitions; a read sums the shards (16 queries). Votes are not counted
//! here: the vote aggregator's tallies hold each idea's cast and withdrawn
//! votes exactly once (`thresholds::all_tallies`), summed by the read.
//!
//! **The consumer** (`insights` queue) applies a whole batch in one
//! transaction: a marker `DONE#insights#{event_id}` per event (condition:
//! absent; not for votes, whose one effect, the voter's last active day, is
//! conditional on the day it moves), the batch's counter deltas summed per
//! item, the members' activity counters (`ambassadors::score_key`) and the
//! ideas' `comment_count` (+1 per comment posted, folded per idea). Markers already present are
//! filtered out first; a condition that fails (a marker written meanwhile, a
//! member erased or active meanwhile) makes the batch re-read and re-plan; a
//! transaction conflict or throttle retries with backoff in-process, so a
//! spike does not end in the dead-letter queue. Deltas commute, so the order
//! events arrive in does not matter, and each is applied once: an idea's
//! move between statuses (`open → under_review → accepted → …`) is a −1 and
//! a +1 in the same transaction as that event's marker.
//!
//! **Active members.** The score item keeps the member's `last_active` day;
//! an action on a later day moves the member from `DAY#{old}.last_active` to
//! `DAY#{new}.last_active` (conditional on the old value, same transaction).
//! Every member is counted in exactly one day, so the members active in the
//! last 30 days are the sum of `last_active` over those 30 days.
//!
//! **Points credited** are added by the points consumer, once per credit
//! transaction (a batch's credits commit together, `total_write` with their
//! sum), so they match the ledgers exactly (and so are
//! the points moderation takes back and gives again, `points_withdrawn`); **labels**
//! by the review that earns the label, in the transaction that sets it.
//! **Mails**: the emails consumer indexes each community mail's figures
//! (`MAIL#{id} / STATS#{00-15}`, gsi1 `MAILS` / `{mail id}`, summed per mail).
//! **Mail feedback** (`mail_feedback`: SES's bounces and complaints, and the
//! addresses they suppressed) is added by the `mail_feedback` consumer, one
//! `totals_write` per batch (mail/feedback.rs).

use crate::ambassadors::{self, not_erased, score_key};
use crate::app::App;
use crate::auth::Caller;
use crate::domain::{parse_ts, IdeaId, IdeaStatus};
use crate::error::{Error, Result};
use crate::events::{consumed_marker, Event, Kind};
use crate::ideas;
use crate::queue::Consumer;
use crate::store::{Cond, Index, Item, Key, Query, SortKey, StoreError, Table, Update, Write};
use crate::thresholds::REVIEW_PK;
use async_trait::async_trait;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

pub const CONSUMER: &str = "insights";
pub const INSIGHTS_SHARDS: u32 = 16;
/// gsi1 partition of the community mails' figures.
pub const MAILS_PK: &str = "MAILS";
/// Days of sign-ups and activity `GET /insights` reports.
pub const WINDOW_DAYS: i64 = 30;
const TOTALS: &str = "TOTALS";
const ATTEMPTS: u32 = 12;

pub fn shard_pk(shard: u32) -> String {
    format!("INSIGHTS#{shard:02}")
}

fn random_shard() -> u32 {
    use rand::Rng;
    rand::rng().random_range(0..INSIGHTS_SHARDS)
}

fn day_sk(day: &str) -> String {
    format!("DAY#{day}")
}

/// Adds to one total on a random shard (for another consumer's transaction).
pub fn total_write(attr: &str, n: i64) -> Write {
    Write::update(
        Key::new(shard_pk(random_shard()), TOTALS),
        Update::default().add(attr, n),
    )
}

/// Adds to several totals on one random shard, in one write (for another
/// consumer's batch: `mail::feedback` folds its batch's figures into it).
/// `None` when every delta is zero.
pub fn totals_write(adds: &[(&str, i64)]) -> Option<Write> {
    let mut u = Update::default();
    let mut any = false;
    for (attr, n) in adds.iter().filter(|(_, n)| *n != 0) {
        u = u.add(attr, *n);
        any = true;
    }
    any.then(|| Write::update(Key::new(shard_pk(random_shard()), TOTALS), u))
}

fn day_of(at: &str) -> String {
    at.get(..10).unwrap_or("0000-00-00").to_owned()
}

/// The deltas of a batch, summed per item.
#[derive(Default)]
struct Plan {
    totals: BTreeMap<String, i64>,
    days: BTreeMap<String, BTreeMap<String, i64>>,
    /// member → counter → delta.
    scores: BTreeMap<String, BTreeMap<String, i64>>,
    /// member → the latest day they acted in this batch.
    active: BTreeMap<String, String>,
    /// idea → comments posted on it in this batch (its `comment_count`).
    comments: BTreeMap<String, i64>,
    erased: BTreeSet<String>,
    /// challenge → figure (`proposals`, `votes`) → delta (challenges.rs).
    challenges: BTreeMap<String, BTreeMap<&'static str, i64>>,
    /// (challenge, member): the batch's participants (authors and voters),
    /// each counted once ever by its participant record's `counted`.
    participants: BTreeSet<(String, String)>,
    /// Survey (or survey contest) results: partition → counter → delta
    /// (`crate::surveys::tally`, folded per batch).
    results: BTreeMap<String, BTreeMap<String, i64>>,
}

impl Plan {
    /// Adds a response's `tally` (its event's data) to the results of `pk`.
    fn results(&mut self, pk: String, tally: &Value) {
        let Some(t) = tally.as_object() else { return };
        let r = self.results.entry(pk).or_default();
        for (k, v) in t {
            if let Some(n) = v.as_i64() {
                *r.entry(k.clone()).or_default() += n;
            }
        }
    }
    fn total(&mut self, attr: impl Into<String>, n: i64) {
        *self.totals.entry(attr.into()).or_default() += n;
    }
    fn day(&mut self, day: &str, attr: &str, n: i64) {
        *self
            .days
            .entry(day.to_owned())
            .or_default()
            .entry(attr.to_owned())
            .or_default() += n;
    }
    fn score(&mut self, member: &str, counter: &str, n: i64) {
        if member.is_empty() {
            return;
        }
        *self
            .scores
            .entry(member.to_owned())
            .or_default()
            .entry(counter.to_owned())
            .or_default() += n;
    }
    fn challenge(&mut self, e: &Event, figure: &'static str) {
        let Some(c) = e.data["challenge_id"].as_str() else {
            return;
        };
        *self
            .challenges
            .entry(c.to_owned())
            .or_default()
            .entry(figure)
            .or_default() += 1;
        if !e.member_id.is_empty() {
            self.participants
                .insert((c.to_owned(), e.member_id.clone()));
        }
    }
    fn acted(&mut self, member: &str, at: &str) {
        if member.is_empty() {
            return;
        }
        let d = day_of(at);
        let e = self.active.entry(member.to_owned()).or_default();
        if d > *e {
            *e = d;
        }
    }
}

fn ideas_attr(theme: &str, status: &str) -> String {
    format!("ideas#{theme}#{status}")
}

/// What one event adds to the plan. `ideas` holds the rows of the ideas the
/// batch's events are about (theme, author).
fn plan_event(p: &mut Plan, e: &Event, ideas: &HashMap<String, ideas::IdeaRow>) {
    let idea = e.idea_id.as_deref().and_then(|i| ideas.get(i));
    let theme = idea
        .map(|i| i.theme.clone())
        .or_else(|| e.data["theme"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    let m = e.member_id.as_str();
    match e.kind {
        Kind::MemberSignedUp => {
            p.total("members_signed_up", 1);
            let cohort = e.data["cohort"]
                .as_str()
                .unwrap_or(crate::members::PUBLIC_COHORT);
            p.total(format!("cohort#{cohort}"), 1);
            p.day(&day_of(&e.at), "signups", 1);
            p.acted(m, &e.at);
        }
        Kind::IdeaPosted => {
            p.total(ideas_attr(&theme, IdeaStatus::Open.as_str()), 1);
            p.score(m, "ideas", 1);
            p.acted(m, &e.at);
            // A challenge's proposal (challenges.rs).
            p.challenge(e, "proposals");
        }
        // A vote only moves its voter's last active day: the vote totals and
        // the author's `votes_drawn` are the aggregator's tallies
        // (thresholds.rs), counted exactly once there. Moving a last active
        // day is conditional on the day read, so a vote event needs no
        // marker: delivered twice, it finds the day already moved.
        Kind::VoteCast => {
            p.acted(m, &e.at);
            // A vote on a challenge's proposal: counted with a marker.
            p.challenge(e, "votes");
        }
        // A challenge's winners still open or under review were accepted.
        Kind::ChallengeDecided => {
            let theme = e.data["theme"].as_str().unwrap_or("unknown");
            for w in e.data["winners"].as_array().into_iter().flatten() {
                if let (true, Some(from)) = (w["accepted"] == json!(true), w["from"].as_str()) {
                    p.total(ideas_attr(theme, from), -1);
                    p.total(ideas_attr(theme, IdeaStatus::Accepted.as_str()), 1);
                }
            }
        }
        Kind::VoteWithdrawn => {}
        Kind::IdeaReachedThreshold => {
            p.total(ideas_attr(&theme, IdeaStatus::Open.as_str()), -1);
            p.total(ideas_attr(&theme, IdeaStatus::UnderReview.as_str()), 1);
        }
        Kind::IdeaDecided => {
            if let Some(to) = e.data["outcome"].as_str().and_then(IdeaStatus::parse) {
                p.total(ideas_attr(&theme, IdeaStatus::UnderReview.as_str()), -1);
                p.total(ideas_attr(&theme, to.as_str()), 1);
            }
            // A decision is the idea's first answer when none was given.
            if e.data["first_answer"] == json!(true) {
                first_answer(p, &theme, e);
            }
        }
        Kind::IdeaAnswered if e.data["first"] == json!(true) => first_answer(p, &theme, e),
        Kind::IdeaProgressed => {
            let to = e.data["status"].as_str().and_then(IdeaStatus::parse);
            // Events written before `from` was added: in_progress comes from
            // accepted; implemented is read as coming from in_progress.
            let from = e.data["from"]
                .as_str()
                .and_then(IdeaStatus::parse)
                .or(match to {
                    Some(IdeaStatus::InProgress) => Some(IdeaStatus::Accepted),
                    Some(_) => Some(IdeaStatus::InProgress),
                    None => None,
                });
            if let (Some(from), Some(to)) = (from, to) {
                p.total(ideas_attr(&theme, from.as_str()), -1);
                p.total(ideas_attr(&theme, to.as_str()), 1);
            }
        }
        Kind::PointsRedeemed => {
            p.total("points_redeemed", e.data["points"].as_i64().unwrap_or(0));
            p.acted(m, &e.at);
        }
        Kind::RedemptionAnswered => match e.data["status"].as_str() {
            Some("credited") => p.total("redemptions_credited", 1),
            Some("rejected") => {
                p.total("redemptions_rejected", 1);
                if e.data["refunded"] == true {
                    p.total("points_refunded", e.data["points"].as_i64().unwrap_or(0));
                }
            }
            _ => {}
        },
        Kind::ContestEntered => {
            if let Some(c) = e.data["contest_id"].as_str() {
                p.results(
                    crate::campaigns::contest_key(c).pk,
                    &e.data[crate::surveys::TALLY],
                );
            }
            p.total("entries", 1);
            p.score(m, "entries", 1);
            p.acted(m, &e.at);
        }
        // A product test's applications, for its brand's report.
        Kind::ProductTestApplied => {
            if let Some(t) = e.data["product_test_id"].as_str() {
                p.results(
                    crate::products::counters_pk(t),
                    &json!({ "applications": 1 }),
                );
            }
            p.acted(m, &e.at);
        }
        Kind::ReviewPosted => {
            p.total("reviews", 1);
            p.score(m, "reviews", 1);
            p.acted(m, &e.at);
        }
        Kind::CommentPosted => {
            // The idea's count of visible comments, folded per idea and
            // batch (comments.rs keeps the row out of the comment's own
            // transaction). Moderation moves it for hidden comments.
            if let Some(i) = idea {
                *p.comments.entry(i.id.clone()).or_default() += 1;
            }
            p.total("comments", 1);
            p.score(m, "comments", 1);
            p.acted(m, &e.at);
        }
        Kind::ContentHidden | Kind::ContentRestored => {
            // Hidden content leaves its author's activity counters (so a
            // troll's hidden comments make no ambassador) and is counted in
            // `moderation.hidden`; a restore puts both back. A moderator's
            // confirmation of a hide by reports changes nothing.
            let hide = e.kind == Kind::ContentHidden;
            let counter = match e.data["target_type"].as_str() {
                Some("idea") => Some(("ideas", "idea")),
                Some("comment") => Some(("comments", "comment")),
                Some("review") => Some(("reviews", "review")),
                _ => None,
            };
            if let Some((counter, ty)) = counter {
                if !(hide && e.data["confirmed"] == json!(true)) {
                    let n = if hide { 1 } else { -1 };
                    p.total(format!("hidden#{ty}"), n);
                    p.score(m, counter, -n);
                }
            }
        }
        // Events and round tables (`crate::roundtables`): seats per event.
        Kind::RoundtableRegistered
        | Kind::RoundtableCancelled
        | Kind::RoundtablePromoted
        | Kind::RoundtableAttended => {
            let id = e.data["roundtable_id"].as_str().unwrap_or("unknown");
            let mut seat = |what: &str, n: i64| p.total(format!("rtable#{id}#{what}"), n);
            match e.kind {
                Kind::RoundtableRegistered => {
                    seat(e.data["status"].as_str().unwrap_or("registered"), 1)
                }
                Kind::RoundtableCancelled => {
                    seat(e.data["was"].as_str().unwrap_or("registered"), -1)
                }
                Kind::RoundtablePromoted => {
                    seat("waitlisted", -1);
                    seat("registered", 1);
                }
                _ => seat("attended", 1),
            }
            if e.kind == Kind::RoundtableRegistered {
                p.acted(m, &e.at);
            }
        }
        // Response rates by cohort: responses per survey and cohort, read
        // against the cohort's members (`cohort#…`).
        Kind::SurveyResponded => {
            if let Some(sv) = e.data["survey_id"].as_str() {
                p.results(
                    crate::surveys::survey_key(sv).pk,
                    &e.data[crate::surveys::TALLY],
                );
                let cohort = e.data["cohort"]
                    .as_str()
                    .unwrap_or(crate::members::PUBLIC_COHORT);
                p.total(format!("survey#{sv}#{cohort}"), 1);
            }
            p.acted(m, &e.at);
        }
        Kind::MemberErased => {
            p.total("members_erased", 1);
            if !m.is_empty() {
                p.erased.insert(m.to_owned());
            }
        }
        _ => {}
    }
}

/// An idea's first answer (`crate::answers`): counted per theme, with the
/// bucket of its delay since posting (the median's histogram).
fn first_answer(p: &mut Plan, theme: &str, e: &Event) {
    p.total(format!("answered#{theme}"), 1);
    if let Some(b) = e.data["posted_at"]
        .as_str()
        .and_then(|posted| crate::answers::delay_bucket(posted, &e.at))
    {
        p.total(format!("first_answer#{theme}#{b}"), 1);
    }
}

/// Whether an event's effect here needs its exactly-once marker (all but
/// votes, whose only effect is conditional on the state it changes; a vote
/// on a challenge's proposal is counted for the challenge, so it has one).
fn needs_marker(e: &Event) -> bool {
    !matches!(e.kind, Kind::VoteCast | Kind::VoteWithdrawn) || e.data["challenge_id"].is_string()
}

pub struct InsightsConsumer<T> {
    pub app: App<T>,
}

enum Outcome {
    Done,
    /// A condition failed: re-read and plan again.
    Replan,
    /// Contention: back off and retry.
    Busy,
}

impl<T: Table + Clone> InsightsConsumer<T> {
    /// One attempt at the whole batch.
    /// `consistent`: read the members' items consistently (a retry after
    /// a stale read failed a condition).
    async fn attempt(&self, events: &[&Event], consistent: bool) -> Result<Outcome> {
        let table = &self.app.table;
        // 1. Drop the events already applied (vote events have no marker:
        // their only effect is idempotent, see `plan_event`).
        let marker_keys: Vec<Key> = events
            .iter()
            .filter(|e| needs_marker(e))
            .filter_map(|e| consumed_marker(CONSUMER, &e.event_id).key())
            .collect();
        let done: HashSet<String> = crate::store::get_all(table, &marker_keys, true)
            .await?
            .iter()
            .filter_map(|i| i.get("pk")?.as_str().map(str::to_owned))
            .collect();
        let pending: Vec<&Event> = events
            .iter()
            .copied()
            .filter(|e| {
                !needs_marker(e)
                    || consumed_marker(CONSUMER, &e.event_id)
                        .key()
                        .is_some_and(|k| !done.contains(&k.pk))
            })
            .collect();
        if pending.is_empty() {
            return Ok(Outcome::Done);
        }
        // 2. The ideas the events are about.
        let idea_keys: Vec<Key> = pending
            .iter()
            .filter(|e| {
                !matches!(
                    e.kind,
                    Kind::IdeaPosted | Kind::VoteCast | Kind::ChallengeDecided
                ) && needs_marker(e)
            })
            .filter_map(|e| e.idea_id.as_deref().and_then(IdeaId::parse))
            .map(|i| ideas::key(&i))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut idea_rows = HashMap::new();
        if !idea_keys.is_empty() {
            for i in crate::store::get_all(table, &idea_keys, true).await? {
                let row = ideas::row_from(i)?;
                idea_rows.insert(row.id.clone(), row);
            }
        }
        let mut plan = Plan::default();
        for e in &pending {
            plan_event(&mut plan, e, &idea_rows);
        }
        // 3. The members' score items (erased? last active day?).
        let members: BTreeSet<String> = plan
            .scores
            .keys()
            .chain(plan.active.keys())
            .filter(|m| !plan.erased.contains(*m))
            .cloned()
            .collect();
        let score_keys: Vec<Key> = members.iter().map(|m| score_key(m)).collect();
        let mut score_items: HashMap<String, Item> = HashMap::new();
        if !score_keys.is_empty() {
            // Eventually consistent on a first attempt: every write below
            // is conditional on what it read (`last_active`, no tombstone),
            // so a stale read fails its condition and the batch is planned
            // again, then with consistent reads.
            for i in crate::store::get_all(table, &score_keys, consistent).await? {
                if let Some(pk) = i.get("pk").and_then(Value::as_str) {
                    let m = crate::members::id_of_pk(pk).unwrap_or(pk).to_owned();
                    score_items.insert(m, i);
                }
            }
        }
        // 4. The writes.
        let shard = random_shard();
        let mut writes: Vec<Write> = pending
            .iter()
            .filter(|e| needs_marker(e))
            .map(|e| consumed_marker(CONSUMER, &e.event_id))
            .collect();
        let mut days = plan.days.clone();
        let mut score_writes = Vec::new();
        for m in &members {
            let current = score_items.get(m);
            if current.is_some_and(|i| i.get("erased").is_some()) {
                continue;
            }
            // Only counters put a member in the scored index; being active
            // (last_active) alone does not.
            let mut u = Update::default().set("member_id", m.as_str());
            let mut cond = not_erased();
            let mut touched = false;
            if let Some(adds) = plan.scores.get(m) {
                for (c, n) in adds {
                    if *n != 0 {
                        u = u.add(c, *n);
                        touched = true;
                    }
                }
            }
            if touched {
                u = ambassadors::indexed(u, m);
            }
            if let Some(day) = plan.active.get(m) {
                let last = current
                    .and_then(|i| i.get("last_active"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                if last.as_ref().is_none_or(|l| l < day) {
                    u = u.set("last_active", day.as_str());
                    touched = true;
                    cond = match &last {
                        Some(l) => {
                            *days
                                .entry(l.clone())
                                .or_default()
                                .entry("last_active".into())
                                .or_default() -= 1;
                            cond.and(Cond::Eq("last_active".into(), json!(l)))
                        }
                        None => cond.and(Cond::AttrAbsent("last_active".into())),
                    };
                    *days
                        .entry(day.clone())
                        .or_default()
                        .entry("last_active".into())
                        .or_default() += 1;
                }
            }
            if touched {
                score_writes.push(Write::update(score_key(m), u).when(cond));
            }
        }
        for m in &plan.erased {
            score_writes.push(ambassadors::tombstone(m));
        }
        let totals: Vec<(&String, &i64)> = plan.totals.iter().filter(|(_, n)| **n != 0).collect();
        if !totals.is_empty() {
            let mut u = Update::default();
            for (a, n) in totals {
                u = u.add(a, *n);
            }
            writes.push(Write::update(Key::new(shard_pk(shard), TOTALS), u));
        }
        for (day, attrs) in &days {
            let mut u = Update::default();
            let mut any = false;
            for (a, n) in attrs {
                if *n != 0 {
                    u = u.add(a, *n);
                    any = true;
                }
            }
            if any {
                writes.push(Write::update(Key::new(shard_pk(shard), day_sk(day)), u));
            }
        }
        writes.extend(score_writes);
        for (pk, adds) in &plan.results {
            let mut u = Update::default();
            let mut any = false;
            for (a, n) in adds.iter().filter(|(_, n)| **n != 0) {
                u = u.add(a, *n);
                any = true;
            }
            if any {
                let shard = shard % crate::surveys::RESULT_SHARDS;
                writes.push(Write::update(crate::surveys::results_key(pk, shard), u));
            }
        }
        for (idea, n) in &plan.comments {
            if let Some(id) = IdeaId::parse(idea) {
                writes.push(
                    Write::update(ideas::key(&id), Update::default().add("comment_count", *n))
                        .when(Cond::Exists),
                );
            }
        }
        // Challenges: each participant counted once (its record's `counted`,
        // read here: a condition that fails replans), and the batch's figures
        // on a random shard of each challenge.
        let part_keys: Vec<Key> = plan
            .participants
            .iter()
            .filter(|(_, m)| !plan.erased.contains(m))
            .map(|(c, m)| crate::challenges::participant_key(c, m))
            .collect();
        let mut counted: HashSet<Key> = HashSet::new();
        if !part_keys.is_empty() {
            for i in crate::store::get_all(table, &part_keys, consistent).await? {
                if i.contains_key("counted") {
                    if let Some(k) = Key::of(&i) {
                        counted.insert(k);
                    }
                }
            }
        }
        let mut figures = plan.challenges.clone();
        for ((c, m), k) in plan
            .participants
            .iter()
            .filter(|(_, m)| !plan.erased.contains(m))
            .zip(part_keys)
        {
            if counted.contains(&k) {
                continue;
            }
            *figures
                .entry(c.clone())
                .or_default()
                .entry("participants")
                .or_default() += 1;
            writes.push(
                Write::update(
                    k,
                    Update::default()
                        .set("member_id", m.as_str())
                        .set("challenge_id", c.as_str())
                        .set("counted", true),
                )
                .when(Cond::AttrAbsent("counted".into())),
            );
        }
        for (c, adds) in &figures {
            let adds: Vec<(&str, i64)> = adds.iter().map(|(a, n)| (*a, *n)).collect();
            writes.extend(crate::challenges::stats_write(c, &adds));
        }
        // An erased member's profile stops being an ambassador's before the
        // tombstone is written (idempotent; a retry repeats it harmlessly).
        for m in &plan.erased {
            let reset = Write::update(
                crate::members::profile_key(m),
                Update::default()
                    .set("ambassador", false)
                    .set("level", crate::members::DEFAULT_LEVEL),
            )
            .when(Cond::Exists);
            match table.transact(vec![reset]).await {
                Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if writes.is_empty() {
            // Votes of members already active today: nothing to write.
            return Ok(Outcome::Done);
        }
        match table.transact(writes).await {
            Ok(()) => Ok(Outcome::Done),
            Err(StoreError::ConditionFailed { .. }) => Ok(Outcome::Replan),
            Err(StoreError::Conflict) | Err(StoreError::Throttled) => Ok(Outcome::Busy),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies events (at most `CHUNK` per transaction), retrying in-process.
    async fn apply_all(&self, events: &[&Event]) -> Result<()> {
        for chunk in events.chunks(CHUNK) {
            let mut attempt = 0;
            loop {
                match self.attempt(chunk, attempt > 0).await? {
                    Outcome::Done => break,
                    Outcome::Replan if attempt < ATTEMPTS => {}
                    Outcome::Busy if attempt < ATTEMPTS => {
                        crate::retry::pause(attempt).await;
                    }
                    _ => return Err(Error::Busy),
                }
                attempt += 1;
            }
        }
        Ok(())
    }
}

/// Events per transaction: each takes a marker and touches at most two
/// members (actor, idea author) plus a few shared counter items, so ten stay
/// well under the 100 writes of a transaction.
const CHUNK: usize = 10;

#[async_trait]
impl<T: Table + Clone> Consumer for InsightsConsumer<T> {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn prepare(&self) {
        self.app.refresh_or_keep().await;
    }

    async fn apply(&self, event: &Event) -> Result<()> {
        self.apply_all(&[event]).await
    }

    /// The whole batch in one transaction; when that fails, each event on
    /// its own so that only the failing ones are retried by the queue.
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        let events: Vec<&Event> = batch.iter().map(|(_, e)| e).collect();
        match self.apply_all(&events).await {
            Ok(()) => Vec::new(),
            Err(e) => {
                tracing::warn!(consumer = CONSUMER, error = %e, "batch failed; applying its events one by one");
                let mut failed = Vec::new();
                for (id, ev) in batch {
                    if let Err(e) = self.apply(ev).await {
                        tracing::warn!(consumer = CONSUMER, message_id = %id, event_id = %ev.event_id, error = %e, "event failed; it will be retried");
                        failed.push(id.clone());
                    }
                }
                failed
            }
        }
    }
}

// ---------------------------------------------------------------- reading

fn num(item: &Item, attr: &str) -> i64 {
    item.get(attr).and_then(Value::as_i64).unwrap_or(0)
}

/// `GET /insights` (marketing).
pub async fn read<T: Table>(app: &App<T>, caller: &Caller) -> Result<Value> {
    ambassadors::require_marketing(caller)?;
    let today = time::OffsetDateTime::now_utc();
    let day = |d: time::OffsetDateTime| {
        crate::domain::format_ts(d)
            .get(..10)
            .unwrap_or("")
            .to_owned()
    };
    let days: Vec<String> = (0..WINDOW_DAYS)
        .rev()
        .map(|i| day(today - time::Duration::days(i)))
        .collect();
    let first = days.first().cloned().unwrap_or_default();
    let queries = (0..INSIGHTS_SHARDS).map(|s| {
        let table = &app.table;
        let first = first.clone();
        async move {
            let totals = table.get(&Key::new(shard_pk(s), TOTALS), true).await?;
            let mut out = Vec::new();
            let mut start = None;
            loop {
                let page = table
                    .query(
                        &Query::new(Index::Primary, shard_pk(s))
                            .sk(SortKey::Between(day_sk(&first), day_sk("9999")))
                            .limit(100)
                            .start_after(start),
                    )
                    .await?;
                out.extend(page.items);
                match page.last_key {
                    Some(k) => start = Some(k),
                    None => break,
                }
            }
            Ok::<_, StoreError>((totals, out))
        }
    });
    let shards = futures::future::try_join_all(queries).await?;
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let mut per_day: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (t, day_items) in shards {
        if let Some(t) = t {
            for (k, v) in t {
                if let Some(n) = v.as_i64() {
                    *totals.entry(k).or_default() += n;
                }
            }
        }
        for i in day_items {
            let d = i["sk"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches("DAY#")
                .to_owned();
            let e = per_day.entry(d).or_default();
            e.0 += num(&i, "signups");
            e.1 += num(&i, "last_active");
        }
    }
    let t = |k: &str| totals.get(k).copied().unwrap_or(0);
    let mut cohorts = Map::new();
    let mut by_theme: BTreeMap<String, Map<String, Value>> = BTreeMap::new();
    let mut by_status: BTreeMap<String, i64> = BTreeMap::new();
    for th in &app.settings().themes {
        by_theme.insert(th.id.clone(), Map::new());
    }
    for (k, v) in &totals {
        if let Some(c) = k.strip_prefix("cohort#") {
            cohorts.insert(c.to_owned(), json!(v));
        }
        if let Some(rest) = k.strip_prefix("ideas#") {
            if let Some((theme, status)) = rest.rsplit_once('#') {
                by_theme
                    .entry(theme.to_owned())
                    .or_default()
                    .insert(status.to_owned(), json!(v));
                *by_status.entry(status.to_owned()).or_default() += v;
            }
        }
    }
    for m in by_theme.values_mut() {
        for s in IdeaStatus::ALL {
            m.entry(s.as_str()).or_insert(json!(0));
        }
    }
    for s in IdeaStatus::ALL {
        by_status.entry(s.as_str().to_owned()).or_insert(0);
    }
    let answers = answers_report(&totals, &by_theme);
    let events = events_report(&totals);
    let surveys = survey_rates(&totals);
    let new_per_day: Vec<Value> = days
        .iter()
        .map(|d| json!({"day": d, "count": per_day.get(d).map(|x| x.0).unwrap_or(0)}))
        .collect();
    let active: i64 = days
        .iter()
        .map(|d| per_day.get(d).map(|x| x.1).unwrap_or(0))
        .sum();

    // Ideas in review: the committee's queue (gsi3 `REVIEW`), oldest first.
    let mut review = Vec::new();
    let mut start = None;
    loop {
        let page = app
            .table
            .query(
                &Query::new(Index::Gsi3, REVIEW_PK)
                    .limit(100)
                    .start_after(start),
            )
            .await?;
        for i in page.items {
            let row = ideas::row_from(i)?;
            let age = row
                .reached_threshold_at
                .as_deref()
                .and_then(parse_ts)
                .map(|at| (today - at).whole_seconds())
                .unwrap_or(0);
            review.push(
                json!({"id": row.id, "title": row.title, "theme": row.theme, "age_seconds": age}),
            );
        }
        match page.last_key {
            Some(k) if review.len() < 1000 => start = Some(k),
            _ => break,
        }
    }
    let ages: Vec<i64> = review
        .iter()
        .filter_map(|r| r["age_seconds"].as_i64())
        .collect();
    let oldest = ages.iter().copied().max();
    let average = (!ages.is_empty()).then(|| ages.iter().sum::<i64>() / ages.len() as i64);

    // Community mails, newest first.
    // Each mail's figures are spread over shards (mail.rs): summed per mail,
    // the newest 100 mails.
    let shards = crate::mail::STATS_SHARDS;
    let mails_page = app
        .table
        .query(
            &Query::new(Index::Gsi1, MAILS_PK)
                .backward()
                .limit(100 * shards),
        )
        .await?;
    let mut order: Vec<String> = Vec::new();
    let mut sums: HashMap<String, (i64, i64)> = HashMap::new();
    for m in &mails_page.items {
        let Some(id) = m.get("gsi1sk").and_then(Value::as_str) else {
            continue;
        };
        let e = sums.entry(id.to_owned()).or_insert_with(|| {
            order.push(id.to_owned());
            (0, 0)
        });
        e.0 += num(m, "sent");
        e.1 += num(m, "unique_clicks");
    }
    let mails: Vec<Value> = order
        .iter()
        .take(100)
        .map(|id| {
            let (sent, clicks) = sums.get(id).copied().unwrap_or_default();
            let rate = if sent > 0 {
                clicks as f64 / sent as f64
            } else {
                0.0
            };
            json!({"mail_id": id, "sent": sent, "unique_clicks": clicks, "unique_click_rate": rate})
        })
        .collect();

    // Votes are counted by the aggregator, per idea (thresholds.rs).
    let tallies = crate::thresholds::all_tallies(app).await?;
    let cast: i64 = tallies.iter().map(|t| t.cast).sum();
    let withdrawn: i64 = tallies.iter().map(|t| t.withdrawn).sum();
    // The loyalty programme's answers (loyalty.rs): those still awaited are
    // one Query of gsi1.
    let pending = crate::loyalty::pending(app).await?;
    let challenges = challenges_report(app).await?;
    // The loyalty programme's weekly basket summaries (baskets.rs).
    let basket_uplift = crate::baskets::report(app, &totals).await?;
    // What each sponsoring brand's campaigns reached (brands.rs).
    let brand_reach = crate::brands::reach(app).await?;
    let signed_up = t("members_signed_up");
    let erased = t("members_erased");
    Ok(json!({
        "generated_at": crate::domain::now(),
        "members": {
            "total": signed_up - erased,
            "signed_up": signed_up,
            "erased": erased,
            "by_cohort": cohorts,
            "new_per_day": new_per_day,
        },
        "active_members": {"last_30_days": active},
        "ideas": {
            "total": by_status.values().sum::<i64>(),
            "by_status": by_status,
            "by_theme": by_theme,
        },
        "votes": {
            "cast": cast,
            "withdrawn": withdrawn,
            "net": cast - withdrawn,
        },
        "review": {
            "in_review": review.len(),
            "oldest_age_seconds": oldest,
            "average_age_seconds": average,
            "ideas": review,
        },
        "mails": mails,
        // SES's bounces and complaints (every one, transient bounces
        // included), and the members' addresses they suppressed.
        "mail_feedback": {
            "bounces": t("mail_bounces"),
            "complaints": t("mail_complaints"),
            "suppressed": t("mail_suppressed"),
        },
        // Official answers (answers.rs; a decision counts as one): the
        // share of ideas answered and the median time to a first answer.
        "answers": answers,
        "contests": {"entries": t("entries")},
        // Participation per co-creation challenge (challenges.rs).
        "challenges": challenges,
        // Events and round tables: registered, waitlisted and attended per event.
        "events": events,
        // Survey responses per survey and cohort, and the share of the
        // cohort's members who responded.
        "surveys": surveys,
        "reviews": {"posted": t("reviews"), "labels_earned": t("labels_earned")},
        "comments": {"posted": t("comments")},
        "moderation": {"hidden": {
            "idea": t("hidden#idea"), "comment": t("hidden#comment"), "review": t("hidden#review"),
        }},
        "points": {
            "credited": t("points_credited"),
            "redeemed": t("points_redeemed"),
            "withdrawn_by_moderation": t("points_withdrawn"),
            "refunded": t("points_refunded"),
        },
        // Members' average basket before and after joining, and against
        // the non-member baseline, with the method (baskets.rs).
        "basket_uplift": basket_uplift,
        // Per sponsoring brand: campaigns, entries, participations, mails
        // and their unique clicks (brands.rs).
        "brand_reach": brand_reach,
        "redemptions": {
            "credited": t("redemptions_credited"),
            "rejected": t("redemptions_rejected"),
            "pending": pending.pending,
            "overdue": pending.overdue,
            "oldest_pending_at": pending.oldest_at,
            "answer_within_hours": pending.answer_within_hours,
        },
    }))
}

/// `challenges` of `GET /insights`: per challenge (gsi1 `CHALLENGES`, the
/// newest 100), its proposals, distinct participants and votes cast on its
/// proposals, as the consumer folded them (one Query of each challenge's
/// figures; no scan).
async fn challenges_report<T: Table>(app: &App<T>) -> Result<Vec<Value>> {
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi1, crate::campaigns::CHALLENGES_PK)
                .backward()
                .limit(100),
        )
        .await?;
    let rows: Vec<(String, String)> = page
        .items
        .iter()
        .filter_map(|i| {
            let c = i.get("config")?;
            Some((
                c["id"].as_str()?.to_owned(),
                c["title"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let figures = futures::future::try_join_all(
        rows.iter()
            .map(|(id, _)| crate::challenges::participation(app, id)),
    )
    .await?;
    Ok(rows
        .into_iter()
        .zip(figures)
        .map(|((id, title), p)| {
            json!({"id": id, "title": title, "proposals": p.proposals,
                   "participants": p.participants, "votes": p.votes})
        })
        .collect())
}
/// `events` of `GET /insights`: per event (`rtable#{id}#{what}` totals),
/// its members registered and waitlisted now, and attended.
fn events_report(totals: &BTreeMap<String, i64>) -> Vec<Value> {
    let mut per: BTreeMap<&str, [i64; 3]> = BTreeMap::new();
    for (k, v) in totals {
        let Some((id, what)) = k.strip_prefix("rtable#").and_then(|r| r.rsplit_once('#')) else {
            continue;
        };
        let slot = match what {
            "registered" => 0,
            "waitlisted" => 1,
            "attended" => 2,
            _ => continue,
        };
        per.entry(id).or_default()[slot] += v;
    }
    per.into_iter()
        .map(|(id, [r, w, a])| json!({"id": id, "registered": r, "waitlisted": w, "attended": a}))
        .collect()
}
/// `surveys` of `GET /insights`: per survey, its responses and, per cohort,
/// the responses, the cohort's members and the response rate.
fn survey_rates(totals: &BTreeMap<String, i64>) -> Value {
    let mut out: BTreeMap<String, (i64, Map<String, Value>)> = BTreeMap::new();
    for (k, n) in totals {
        let Some((survey, cohort)) = k.strip_prefix("survey#").and_then(|r| r.rsplit_once('#'))
        else {
            continue;
        };
        let members = totals
            .get(&format!("cohort#{cohort}"))
            .copied()
            .unwrap_or(0);
        let rate = if members > 0 {
            *n as f64 / members as f64
        } else {
            0.0
        };
        let e = out.entry(survey.to_owned()).or_default();
        e.0 += n;
        e.1.insert(
            cohort.to_owned(),
            json!({"responses": n, "members": members, "response_rate": rate}),
        );
    }
    Value::Object(
        out.into_iter()
            .map(|(s, (n, by))| (s, json!({"responses": n, "by_cohort": by})))
            .collect(),
    )
}

/// `answers` of `GET /insights`: per theme and in all, the ideas posted,
/// those answered, their share, and the median hours from posting to the
/// first answer (from the `first_answer#…` histogram: hours below two
/// days, whole days after; `answers::delay_bucket`).
fn answers_report(
    totals: &BTreeMap<String, i64>,
    by_theme: &BTreeMap<String, Map<String, Value>>,
) -> Value {
    let mut themes = Map::new();
    let mut all_hist: BTreeMap<i64, i64> = BTreeMap::new();
    let (mut all_ideas, mut all_answered) = (0i64, 0i64);
    for (theme, statuses) in by_theme {
        let ideas: i64 = statuses.values().filter_map(Value::as_i64).sum();
        let answered = totals
            .get(&format!("answered#{theme}"))
            .copied()
            .unwrap_or(0);
        let prefix = format!("first_answer#{theme}#");
        let hist: Vec<(i64, i64)> = totals
            .iter()
            .filter_map(|(k, n)| {
                let h = crate::answers::bucket_hours(k.strip_prefix(&prefix)?)?;
                Some((h, *n))
            })
            .collect();
        for (h, n) in &hist {
            *all_hist.entry(*h).or_default() += n;
        }
        all_ideas += ideas;
        all_answered += answered;
        themes.insert(theme.clone(), answer_figures(ideas, answered, &hist));
    }
    let hist: Vec<(i64, i64)> = all_hist.into_iter().collect();
    json!({
        "total": answer_figures(all_ideas, all_answered, &hist),
        "by_theme": themes,
    })
}

fn answer_figures(ideas: i64, answered: i64, hist: &[(i64, i64)]) -> Value {
    let share = if ideas > 0 {
        answered as f64 / ideas as f64
    } else {
        0.0
    };
    json!({
        "ideas": ideas,
        "answered": answered,
        "answered_share": share,
        "median_hours_to_first_answer": crate::answers::median_hours(hist),
    })
}
