//! Ambassadors: an engagement score per member, computed by a scheduled run
//! from activity counters maintained as events happen, and the top members
//! flagged on their profile (`ambassador`, `level`).
//!
//! **Counters.** `MEMBER#{id} / SCORE` holds the member's activity counters
//! (`COUNTERS`): `points` (credited by the points consumer in its credit
//! transaction), `ideas`, `comments`, `reviews`, `entries` (maintained by
//! the insights consumer, in the transaction of its marker) and `clicks`
//! (unique clicks on community mails, in the click's own transaction).
//! `votes_drawn` (net votes on the member's ideas) is not stored here: the
//! run reads it from the vote aggregator's tallies (thresholds.rs), so a
//! vote writes nothing of the author's. Every counter write but the
//! sign-up bonus also puts the item in the sharded index of scored members:
//! gsi2 `SCORED#{00-15}` / `{member}` — a member who only signed up is not
//! read by the run. A GDPR erasure replaces the item by a tombstone
//! (`erased = true`, out of every index) and every counter write is
//! conditional on there being no tombstone.
//!
//! **Score** = Σ weight × counter over `COUNTERS`, with the weights of
//! `[ambassadors.weights]` in `infra/campaigns/community.toml`.
//!
//! **The run** reads the scored members (one query per index shard: members
//! without any activity are never read, and nothing is scanned) and the
//! current ambassadors (gsi3 `AMBASSADORS`), ranks by score (ties by member
//! id), keeps the first `top_count` (or `ceil(top_share × members with a
//! positive score)`) whose score is at least `min_score`, and gives each the
//! highest `[[ambassadors.levels]]` its score reaches. It writes only what
//! changed: a member's snapshot (score, counts, weights, level, gsi3 entry)
//! when it differs from the stored one, their profile only when the flag or
//! the level changes. A second run with no new activity writes nothing.

use crate::app::App;
use crate::auth::{Caller, MARKETING};
use crate::config::ConfigError;
use crate::error::{Error, Result};
use crate::ideas::ListPage;
use crate::members::{self, DEFAULT_LEVEL};
use crate::store::{cursor, Cond, Index, Item, Key, Query, StoreError, Table, Update, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

/// The activity counters a score is made of.
pub const COUNTERS: [&str; 7] = [
    "points",
    "ideas",
    "votes_drawn",
    "comments",
    "reviews",
    "entries",
    "clicks",
];
pub const SCORE_BUCKETS: u32 = 16;
/// gsi3 partition of the current ambassadors, best first.
pub const AMBASSADORS_PK: &str = "AMBASSADORS";
const SCORE_KEY_MAX: i64 = 999_999_999_999_999;

pub fn score_key(member: &str) -> Key {
    Key::new(crate::members::pk(member), "SCORE")
}

pub fn scored_pk(bucket: u32) -> String {
    format!("SCORED#{bucket:02}")
}

fn bucket(member: &str) -> u32 {
    let h = Sha256::digest(member.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % SCORE_BUCKETS
}

/// The base update of a member's score item: keeps it in the scored index.
pub fn score_update(member: &str) -> Update {
    indexed(Update::default().set("member_id", member), member)
}

/// Puts the member's score item in the scored index (gsi2 `SCORED#{b}`).
pub fn indexed(u: Update, member: &str) -> Update {
    u.set("gsi2pk", scored_pk(bucket(member)))
        .set("gsi2sk", member)
}

/// Adds to a member's counters without putting them in the scored index:
/// the sign-up bonus alone does not make a member worth scoring.
pub fn quiet_counter_write(member: &str, adds: &[(&str, i64)]) -> Write {
    let mut u = Update::default().set("member_id", member);
    for (c, n) in adds {
        u = u.add(c, *n);
    }
    Write::update(score_key(member), u).when(not_erased())
}

/// The condition every counter write carries: the member was not erased.
pub fn not_erased() -> Cond {
    Cond::AttrAbsent("erased".into())
}

/// Adds to a member's counters (put it in the transaction of the change).
pub fn counter_write(member: &str, adds: &[(&str, i64)]) -> Write {
    let mut u = score_update(member);
    for (c, n) in adds {
        u = u.add(c, *n);
    }
    Write::update(score_key(member), u).when(not_erased())
}

/// The tombstone of an erased member: no counter, no index entry.
pub fn tombstone(member: &str) -> Write {
    let k = score_key(member);
    let mut item = Item::new();
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("erased".into(), json!(true));
    Write::put(item)
}

// ---------------------------------------------------------------- config

/// `[ambassadors]` of the campaign file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmbassadorsFile {
    #[serde(default)]
    top_count: Option<u32>,
    #[serde(default)]
    top_share: Option<f64>,
    min_score: i64,
    weights: BTreeMap<String, i64>,
    levels: Vec<LevelFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelFile {
    name: String,
    min_score: i64,
}

/// How many members are ambassadors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Top {
    Count(u32),
    Share(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    pub name: String,
    pub min_score: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AmbassadorsConfig {
    pub top: Top,
    pub min_score: i64,
    /// One weight per counter of `COUNTERS` (0 when the file leaves it out).
    pub weights: BTreeMap<String, i64>,
    /// Ascending by `min_score`.
    pub levels: Vec<Level>,
}

impl Default for AmbassadorsConfig {
    fn default() -> Self {
        AmbassadorsConfig {
            top: Top::Count(50),
            min_score: 100,
            weights: COUNTERS.iter().map(|c| (c.to_string(), 1)).collect(),
            levels: vec![Level {
                name: "bronze".into(),
                min_score: 100,
            }],
        }
    }
}

impl AmbassadorsConfig {
    /// Validates the file's `[ambassadors]`; errors name the file and field.
    pub fn from_file(
        f: Option<AmbassadorsFile>,
        file: &str,
    ) -> std::result::Result<Self, ConfigError> {
        let Some(f) = f else {
            return Ok(AmbassadorsConfig::default());
        };
        let err = |message: String| ConfigError::File {
            file: file.to_owned(),
            message,
        };
        let top = match (f.top_count, f.top_share) {
            (Some(n), None) if n >= 1 => Top::Count(n),
            (Some(_), None) => return Err(err("ambassadors.top_count: must be at least 1".into())),
            (None, Some(s)) if s > 0.0 && s <= 1.0 => Top::Share(s),
            (None, Some(_)) => {
                return Err(err(
                    "ambassadors.top_share: must be above 0 and at most 1".into()
                ))
            }
            _ => {
                return Err(err(
                    "ambassadors.top_count: give exactly one of top_count and top_share".into(),
                ))
            }
        };
        if f.min_score < 0 {
            return Err(err("ambassadors.min_score: must not be negative".into()));
        }
        let mut weights = BTreeMap::new();
        for (name, w) in &f.weights {
            if !COUNTERS.contains(&name.as_str()) {
                return Err(err(format!(
                    "ambassadors.weights.{name}: unknown counter (known: {})",
                    COUNTERS.join(", ")
                )));
            }
            if !(0..=1_000_000).contains(w) {
                return Err(err(format!(
                    "ambassadors.weights.{name}: must be from 0 to 1000000"
                )));
            }
            weights.insert(name.clone(), *w);
        }
        for c in COUNTERS {
            weights.entry(c.to_string()).or_insert(0);
        }
        if f.levels.is_empty() {
            return Err(err("ambassadors.levels: at least one level".into()));
        }
        let mut levels = Vec::new();
        for (i, l) in f.levels.iter().enumerate() {
            let ok = (1..=32).contains(&l.name.len())
                && l.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok || l.name == DEFAULT_LEVEL {
                return Err(err(format!(
                    "ambassadors.levels[{i}].name: {:?} must be 1-32 of a-z, 0-9 and '-', not {DEFAULT_LEVEL:?}",
                    l.name
                )));
            }
            if let Some(prev) = levels.last().map(|p: &Level| p.min_score) {
                if l.min_score <= prev {
                    return Err(err(format!(
                        "ambassadors.levels[{i}].min_score: levels go up: must be above {prev}"
                    )));
                }
            } else if l.min_score > f.min_score {
                return Err(err(format!(
                    "ambassadors.levels[{i}].min_score: the first level must start at or below ambassadors.min_score ({})",
                    f.min_score
                )));
            }
            if levels.iter().any(|p: &Level| p.name == l.name) {
                return Err(err(format!(
                    "ambassadors.levels[{i}].name: duplicate level {:?}",
                    l.name
                )));
            }
            levels.push(Level {
                name: l.name.clone(),
                min_score: l.min_score,
            });
        }
        Ok(AmbassadorsConfig {
            top,
            min_score: f.min_score,
            weights,
            levels,
        })
    }

    pub fn weight(&self, counter: &str) -> i64 {
        self.weights.get(counter).copied().unwrap_or(0)
    }

    /// Σ weight × counter.
    pub fn score(&self, counts: &BTreeMap<String, i64>) -> i64 {
        COUNTERS
            .iter()
            .map(|c| self.weight(c) * counts.get(*c).copied().unwrap_or(0))
            .sum()
    }

    /// The highest level `score` reaches.
    pub fn level(&self, score: i64) -> &str {
        self.levels
            .iter()
            .rev()
            .find(|l| score >= l.min_score)
            .map(|l| l.name.as_str())
            .unwrap_or(DEFAULT_LEVEL)
    }

    /// How many of `positive` members with a positive score are ambassadors.
    pub fn top_n(&self, positive: usize) -> usize {
        match self.top {
            Top::Count(n) => n as usize,
            Top::Share(s) => (s * positive as f64).ceil() as usize,
        }
    }
}

// ---------------------------------------------------------------- the run

/// A member's counters as read from their score item.
pub fn counts_of(item: &Item) -> BTreeMap<String, i64> {
    COUNTERS
        .iter()
        .map(|c| {
            (
                c.to_string(),
                item.get(*c).and_then(Value::as_i64).unwrap_or(0),
            )
        })
        .collect()
}

/// Ranks `(member, score)` pairs and picks the ambassadors with their level:
/// score descending, ties by member id.
pub fn select(cfg: &AmbassadorsConfig, scores: &[(String, i64)]) -> Vec<(String, i64, String)> {
    let mut ranked: Vec<&(String, i64)> = scores.iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let positive = ranked.iter().filter(|(_, s)| *s > 0).count();
    ranked
        .into_iter()
        .take(cfg.top_n(positive))
        .filter(|(_, s)| *s >= cfg.min_score && *s > 0)
        .map(|(m, s)| (m.clone(), *s, cfg.level(*s).to_owned()))
        .collect()
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunReport {
    /// Members with activity that were scored.
    pub scored: usize,
    pub ambassadors: usize,
    /// Newly flagged, flagged no more, level changed.
    pub flagged: usize,
    pub unflagged: usize,
    pub level_changed: usize,
    /// Items written.
    pub writes: usize,
}

async fn all_pages<T: Table>(table: &T, q: Query) -> Result<Vec<Item>> {
    Ok(crate::store::all_pages(table, q).await?)
}

fn breakdown_snapshot(cfg: &AmbassadorsConfig, counts: &BTreeMap<String, i64>) -> Value {
    let mut m = Map::new();
    for c in COUNTERS {
        let n = counts.get(c).copied().unwrap_or(0);
        let w = cfg.weight(c);
        m.insert(
            c.to_string(),
            json!({"count": n, "weight": w, "points": n * w}),
        );
    }
    Value::Object(m)
}

fn rank_sk(score: i64, member: &str) -> String {
    format!(
        "{:015}#{member}",
        SCORE_KEY_MAX - score.clamp(0, SCORE_KEY_MAX)
    )
}

/// Commits a member's writes; when their profile is gone (erased) the score
/// item alone is written.
async fn commit_member<T: Table>(table: &T, score: Write, profile: Option<Write>) -> Result<usize> {
    // The member's profile is also written by the points consumer and by
    // the member: a conflict is retried, not the end of the run.
    let commit = |w: Vec<Write>| crate::store::transact_retrying(table, w, RETRIES);
    let Some(p) = profile else {
        return match commit(vec![score]).await {
            Ok(()) => Ok(1),
            Err(StoreError::ConditionFailed { .. }) => Ok(0),
            Err(e) => Err(e.into()),
        };
    };
    let profile = p.key();
    match commit(vec![score.clone(), p]).await {
        Ok(()) => Ok(2),
        Err(e) if profile.as_ref().is_some_and(|k| e.failed_on(k)) => {
            match commit(vec![score]).await {
                Ok(()) => Ok(1),
                Err(StoreError::ConditionFailed { .. }) => Ok(0),
                Err(e) => Err(e.into()),
            }
        }
        Err(StoreError::ConditionFailed { .. }) => Ok(0),
        Err(e) => Err(e.into()),
    }
}

/// Tries per member write of a run (see `store::transact_retrying`).
const RETRIES: u32 = 8;

/// The scheduled run (daily on AWS; every `COMMUNITY_SCHEDULE_EVERY_SECS`
/// and `POST /local/ambassadors/run` locally).
pub async fn run<T: Table>(app: &App<T>) -> Result<RunReport> {
    crate::access::function("ambassadors", run_inner(app)).await
}

async fn run_inner<T: Table>(app: &App<T>) -> Result<RunReport> {
    app.refresh_or_keep().await;
    let cfg = &app.settings().ambassadors;
    let queries = (0..SCORE_BUCKETS).map(|b| {
        all_pages(
            &app.table,
            Query::new(Index::Gsi2, scored_pk(b)).limit(1000),
        )
    });
    let scored: Vec<Item> = futures::future::try_join_all(queries)
        .await?
        .into_iter()
        .flatten()
        .filter(|i| i.get("erased").is_none())
        .collect();
    let current = all_pages(
        &app.table,
        Query::new(Index::Gsi3, AMBASSADORS_PK).limit(1000),
    )
    .await?;

    let mut by_member: HashMap<String, Item> = HashMap::new();
    for i in scored.into_iter().chain(current.iter().cloned()) {
        if let Some(m) = i.get("member_id").and_then(Value::as_str) {
            by_member.insert(m.to_owned(), i);
        }
    }
    // `votes_drawn` is not a stored counter: it is the net votes of the
    // member's ideas, from the aggregator's tallies (one read per run, not a
    // write per vote).
    let mut drawn: HashMap<String, i64> = HashMap::new();
    for t in crate::thresholds::all_tallies(app).await? {
        if let Some(a) = t.author_id {
            *drawn.entry(a).or_default() += t.votes;
        }
    }
    for (m, i) in by_member.iter_mut() {
        i.insert(
            "votes_drawn".into(),
            json!(drawn.get(m).copied().unwrap_or(0)),
        );
    }
    let scores: Vec<(String, i64)> = by_member
        .iter()
        .filter(|(_, i)| i.get("erased").is_none())
        .map(|(m, i)| (m.clone(), cfg.score(&counts_of(i))))
        .collect();
    let chosen = select(cfg, &scores);
    let mut report = RunReport {
        scored: scores.len(),
        ambassadors: chosen.len(),
        ..Default::default()
    };
    let mut keep = std::collections::HashSet::new();
    for (member, score, level) in &chosen {
        keep.insert(member.clone());
        let Some(item) = by_member.get(member) else {
            continue;
        };
        let counts = counts_of(item);
        let snapshot = breakdown_snapshot(cfg, &counts);
        let was_level = item.get("amb_level").and_then(Value::as_str);
        let same = was_level == Some(level.as_str())
            && item.get("amb_score").and_then(Value::as_i64) == Some(*score)
            && item.get("amb_breakdown") == Some(&snapshot)
            && item.get("gsi3sk").and_then(Value::as_str) == Some(rank_sk(*score, member).as_str());
        if same {
            continue;
        }
        let score_write = Write::update(
            score_key(member),
            Update::default()
                .set("amb_level", level.as_str())
                .set("amb_score", *score)
                .set("amb_breakdown", snapshot)
                .set("gsi3pk", AMBASSADORS_PK)
                .set("gsi3sk", rank_sk(*score, member)),
        )
        .when(not_erased().and(Cond::Exists));
        let profile = (was_level != Some(level.as_str())).then(|| {
            Write::update(
                members_key(member),
                Update::default()
                    .set("ambassador", true)
                    .set("level", level.as_str()),
            )
            .when(Cond::Exists)
        });
        match was_level {
            None => report.flagged += 1,
            Some(l) if l != level => report.level_changed += 1,
            _ => {}
        }
        report.writes += commit_member(&app.table, score_write, profile).await?;
    }
    for item in &current {
        let Some(member) = item.get("member_id").and_then(Value::as_str) else {
            continue;
        };
        if keep.contains(member) {
            continue;
        }
        let score_write = Write::update(
            score_key(member),
            Update::default()
                .remove("amb_level")
                .remove("amb_score")
                .remove("amb_breakdown")
                .remove("gsi3pk")
                .remove("gsi3sk"),
        )
        .when(Cond::Exists);
        let profile = Write::update(
            members_key(member),
            Update::default()
                .set("ambassador", false)
                .set("level", DEFAULT_LEVEL),
        )
        .when(Cond::Exists);
        report.unflagged += 1;
        report.writes += commit_member(&app.table, score_write, Some(profile)).await?;
    }
    tracing::info!(?report, "ambassadors run");
    Ok(report)
}

fn members_key(member: &str) -> Key {
    match crate::domain::MemberId::parse(member) {
        Some(id) => members::key(&id),
        None => crate::members::profile_key(member),
    }
}

// ---------------------------------------------------------------- the list

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BreakdownLine {
    pub counter: String,
    pub count: i64,
    pub weight: i64,
    pub points: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AmbassadorView {
    pub member_id: String,
    pub display_name: Option<String>,
    pub level: String,
    pub score: i64,
    pub breakdown: Vec<BreakdownLine>,
}

pub fn require_marketing(caller: &Caller) -> Result<()> {
    if caller.in_group(MARKETING) {
        Ok(())
    } else {
        Err(Error::Forbidden("only marketing may read this".into()))
    }
}

/// `GET /ambassadors` (marketing): the current ambassadors, best first, with
/// the breakdown of their score as of the last run.
pub async fn list<T: Table>(
    app: &App<T>,
    caller: &Caller,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<AmbassadorView>> {
    require_marketing(caller)?;
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi3, AMBASSADORS_PK)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi3, AMBASSADORS_PK)
                .limit(limit)
                .start_after(start),
        )
        .await?;
    let ids: Vec<String> = page
        .items
        .iter()
        .filter_map(|i| {
            i.get("member_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .collect();
    let keys: Vec<Key> = ids.iter().map(|m| members_key(m)).collect();
    let names: HashMap<String, String> = if keys.is_empty() {
        HashMap::new()
    } else {
        crate::store::get_all(&app.table, &keys, false)
            .await?
            .into_iter()
            .filter_map(|p| {
                Some((
                    p.get("id")?.as_str()?.to_owned(),
                    p.get("display_name")?.as_str()?.to_owned(),
                ))
            })
            .collect()
    };
    let items = page
        .items
        .iter()
        .filter_map(|i| {
            let member = i.get("member_id")?.as_str()?.to_owned();
            let b = i.get("amb_breakdown").cloned().unwrap_or(Value::Null);
            let breakdown = COUNTERS
                .iter()
                .map(|c| BreakdownLine {
                    counter: c.to_string(),
                    count: b[*c]["count"].as_i64().unwrap_or(0),
                    weight: b[*c]["weight"].as_i64().unwrap_or(0),
                    points: b[*c]["points"].as_i64().unwrap_or(0),
                })
                .collect();
            Some(AmbassadorView {
                display_name: names.get(&member).cloned(),
                member_id: member,
                level: i.get("amb_level")?.as_str()?.to_owned(),
                score: i.get("amb_score").and_then(Value::as_i64).unwrap_or(0),
                breakdown,
            })
        })
        .collect();
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> std::result::Result<AmbassadorsConfig, ConfigError> {
        #[derive(Deserialize)]
        struct F {
            ambassadors: AmbassadorsFile,
        }
        let f: F = toml::from_str(text).map_err(|e| ConfigError::File {
            file: "t.toml".into(),
            message: e.to_string(),
        })?;
        AmbassadorsConfig::from_file(Some(f.ambassadors), "t.toml")
    }

    const OK: &str = "[ambassadors]\ntop_count = 2\nmin_score = 10\nweights = { points = 1, ideas = 5 }\nlevels = [{ name = \"bronze\", min_score = 10 }, { name = \"gold\", min_score = 100 }]\n";

    #[test]
    fn config_validates_and_names_the_field() {
        let c = file(OK).expect("valid");
        assert_eq!(c.top, Top::Count(2));
        assert_eq!(c.weight("clicks"), 0);
        assert_eq!(c.level(99), "bronze");
        assert_eq!(c.level(100), "gold");
        for (bad, field) in [
            (
                OK.replace("ideas = 5", "likes = 5"),
                "ambassadors.weights.likes",
            ),
            (
                OK.replace("top_count = 2", "top_count = 2\ntop_share = 0.1"),
                "ambassadors.top_count",
            ),
            (
                OK.replace("top_count = 2", "top_share = 1.5"),
                "ambassadors.top_share",
            ),
            (
                OK.replace("min_score = 100", "min_score = 5"),
                "ambassadors.levels[1].min_score",
            ),
            (
                OK.replace("\"gold\"", "\"bronze\""),
                "ambassadors.levels[1].name",
            ),
            (
                OK.replace("ideas = 5", "ideas = -1"),
                "ambassadors.weights.ideas",
            ),
        ] {
            let e = file(&bad).expect_err(field);
            assert!(
                e.to_string().contains(field) && e.to_string().contains("t.toml"),
                "{e}"
            );
        }
    }

    #[test]
    fn selection_ranks_by_score_then_id_and_applies_the_minimum() {
        let c = file(OK).expect("valid");
        let s = vec![
            ("b".to_string(), 50),
            ("a".to_string(), 50),
            ("c".to_string(), 500),
            ("d".to_string(), 5),
        ];
        let got = select(&c, &s);
        assert_eq!(
            got,
            vec![
                ("c".to_string(), 500, "gold".to_string()),
                ("a".to_string(), 50, "bronze".to_string())
            ]
        );
        let share = file(&OK.replace("top_count = 2", "top_share = 0.5")).expect("valid");
        // ceil(0.5 × 4) = 2, and d is under the minimum anyway.
        assert_eq!(select(&share, &s).len(), 2);
    }
}
