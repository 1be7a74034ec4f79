//! Contests and product tests as config: one TOML file per campaign under
//! `infra/campaigns/contests/` and `infra/campaigns/product-tests/`,
//! validated (every error names the file and the field) and applied to the
//! table, where the functions read them. Applying keeps a contest's secret
//! draw seed: it is created once, and only its SHA-256 is ever published
//! before the draw.

use crate::domain::parse_ts;
use crate::events::{Event, Kind};
use crate::store::{Cond, Index, Item, Key, Query, StoreError, Table, Update, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContestKind {
    Sweepstake,
    Survey,
    Themed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionType {
    SingleChoice,
    MultipleChoice,
    FreeText,
    Rating,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Question {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: QuestionType,
    pub label: String,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prize {
    pub label: String,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Eligibility {
    /// Cohorts allowed to enter; empty means every cohort.
    #[serde(default)]
    pub cohorts: Vec<String>,
    #[serde(default)]
    pub min_membership_days: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContestConfig {
    pub id: String,
    pub title: String,
    pub description: String,
    #[serde(default)]
    pub sponsor: Option<String>,
    /// The sponsor's brand slug (its partners' `brand:<slug>` group), who
    /// may read the contest's results (`GET /contests/{id}/results`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    pub kind: ContestKind,
    /// The idea theme (`community.toml`) the contest belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    pub opens_at: String,
    pub closes_at: String,
    #[serde(default)]
    pub entry_points: i64,
    #[serde(default)]
    pub eligibility: Eligibility,
    #[serde(default)]
    pub questions: Vec<Question>,
    pub prizes: Vec<Prize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProductTestConfig {
    pub id: String,
    pub ean: String,
    pub product_name: String,
    /// The brand's name, shown to members.
    pub brand: String,
    /// The brand's slug (its partners' `brand:<slug>` group), whose report
    /// (`GET /brands/me/report`) lists this test.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand_slug: Option<String>,
    /// The idea theme (`community.toml`) the product test belongs to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub theme: Option<String>,
    pub slots: u32,
    pub applications_open_at: String,
    pub applications_close_at: String,
    pub reviews_open_at: String,
    pub reviews_close_at: String,
    pub reviews_for_label: u32,
}

/// The brand sponsoring a challenge: its slug (as a partner token's
/// `brand:<slug>` group names it, `auth::is_brand_slug`) and its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sponsor {
    pub brand: String,
    pub name: String,
}

/// A co-creation challenge (défi): a question put to the members, who post
/// proposals (ideas tied to it) while it is open and vote on them; its owner
/// (marketing, or the sponsoring brand) publishes the results after it
/// closes (`crate::challenges`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeConfig {
    pub id: String,
    pub title: String,
    /// The question members answer with their proposals.
    pub question: String,
    /// What the challenge is about: context, constraints, what happens next.
    pub brief: String,
    /// The idea theme (`community.toml`) its proposals belong to.
    pub theme: String,
    #[serde(default)]
    pub sponsor: Option<Sponsor>,
    pub opens_at: String,
    pub closes_at: String,
    /// Points for a proposal (rule `challenge_proposal` when 0).
    #[serde(default)]
    pub proposal_points: i64,
    /// Points for a winner, once per member (rule `challenge_winner` when 0).
    #[serde(default)]
    pub winner_points: i64,
}

impl ChallengeConfig {
    pub fn validate(&self, file: &str) -> Vec<CampaignError> {
        let mut errs = Vec::new();
        let mut e = |field: &str, message: String| {
            errs.push(CampaignError {
                file: file.into(),
                field: field.into(),
                message,
            })
        };
        if !valid_id(&self.id) {
            e("id", "must be 1-64 of a-z, 0-9 and '-'".into());
        }
        for (field, v, max) in [
            ("title", &self.title, 120),
            ("question", &self.question, 300),
            ("brief", &self.brief, 5000),
        ] {
            let n = v.trim().chars().count();
            if n == 0 {
                e(field, "must not be empty".into());
            } else if n > max {
                e(field, format!("must be at most {max} characters"));
            }
        }
        if let Some(s) = &self.sponsor {
            if !crate::auth::is_brand_slug(&s.brand) {
                e(
                    "sponsor.brand",
                    format!(
                        "{:?} is not a brand slug (a-z, 0-9 and '-', as in the partner's `brand:<slug>` group)",
                        s.brand
                    ),
                );
            }
            if s.name.trim().is_empty() {
                e("sponsor.name", "must not be empty".into());
            }
        }
        window(&self.opens_at, &self.closes_at, &mut e);
        if self.proposal_points < 0 {
            e("proposal_points", "must not be negative".into());
        }
        if self.winner_points < 0 {
            e("winner_points", "must not be negative".into());
        }
        errs
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Campaigns {
    pub contests: Vec<ContestConfig>,
    pub product_tests: Vec<ProductTestConfig>,
    /// Co-creation challenges (`challenges/*.toml`, `crate::challenges`).
    pub challenges: Vec<ChallengeConfig>,
    /// Events and round tables (`events/*.toml`, `crate::roundtables`).
    pub events: Vec<crate::roundtables::RoundtableConfig>,
    /// Surveys and panels (`surveys/*.toml`, `crate::surveys`).
    pub surveys: Vec<crate::surveys::SurveyConfig>,
    /// The settings files (`community.toml`, `points.toml`, `trust.toml`),
    /// applied to the table for the functions to read at run time
    /// (`crate::live`); None leaves the applied ones as they are.
    pub files: Option<crate::config::CampaignFiles>,
}

/// A problem in a campaign file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct CampaignError {
    pub file: String,
    pub field: String,
    pub message: String,
}

/// A valid EAN-13: 13 digits whose last is the check digit.
pub fn valid_ean13(s: &str) -> bool {
    if s.len() != 13 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let d: Vec<u32> = s.bytes().map(|b| u32::from(b - b'0')).collect();
    let sum: u32 = d[..12]
        .iter()
        .enumerate()
        .map(|(i, x)| if i % 2 == 1 { x * 3 } else { *x })
        .sum();
    (10 - sum % 10) % 10 == d[12]
}

pub fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A cohort name as invite codes carry it.
pub fn valid_cohort(s: &str) -> bool {
    (1..=32).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl ContestConfig {
    pub fn validate(&self, file: &str) -> Vec<CampaignError> {
        let mut errs = Vec::new();
        let mut e = |field: &str, message: String| {
            errs.push(CampaignError {
                file: file.into(),
                field: field.into(),
                message,
            })
        };
        if !valid_id(&self.id) {
            e("id", "must be 1-64 of a-z, 0-9 and '-'".into());
        }
        if self.title.trim().is_empty() {
            e("title", "must not be empty".into());
        }
        if self.description.trim().is_empty() {
            e("description", "must not be empty".into());
        }
        if self.sponsor.as_ref().is_some_and(|s| s.trim().is_empty()) {
            e(
                "sponsor",
                "must not be empty (leave it out when none)".into(),
            );
        }
        if let Some(b) = self
            .brand
            .as_ref()
            .filter(|b| !crate::auth::is_brand_slug(b))
        {
            e(
                "brand",
                format!("{b:?} must be a brand slug: 1-40 of a-z, 0-9 and '-'"),
            );
        }
        for (i, c) in self.eligibility.cohorts.iter().enumerate() {
            if !valid_cohort(c) {
                e(
                    &format!("eligibility.cohorts[{i}]"),
                    format!("{c:?} must be 1-32 of a-z, 0-9 and '-'"),
                );
            }
        }
        window(&self.opens_at, &self.closes_at, &mut e);
        if self.entry_points < 0 {
            e("entry_points", "must not be negative".into());
        }
        if self.prizes.is_empty() {
            e("prizes", "at least one prize".into());
        }
        for (i, p) in self.prizes.iter().enumerate() {
            if p.count == 0 {
                e(&format!("prizes[{i}].count"), "must be at least 1".into());
            }
            if p.label.trim().is_empty() {
                e(&format!("prizes[{i}].label"), "must not be empty".into());
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, q) in self.questions.iter().enumerate() {
            if !valid_id(&q.id) {
                e(
                    &format!("questions[{i}].id"),
                    "must be 1-64 of a-z, 0-9 and '-'".into(),
                );
            }
            if !ids.insert(q.id.clone()) {
                e(
                    &format!("questions[{i}].id"),
                    format!("duplicate question id {:?}", q.id),
                );
            }
            let choices = matches!(
                q.kind,
                QuestionType::SingleChoice | QuestionType::MultipleChoice
            );
            if choices && q.options.len() < 2 {
                e(
                    &format!("questions[{i}].options"),
                    "a choice question needs at least two options".into(),
                );
            }
            if !choices && !q.options.is_empty() {
                e(
                    &format!("questions[{i}].options"),
                    "only choice questions have options".into(),
                );
            }
        }
        if self.kind == ContestKind::Survey && self.questions.is_empty() {
            e("questions", "a survey contest needs questions".into());
        }
        errs
    }
}

impl ProductTestConfig {
    pub fn validate(&self, file: &str) -> Vec<CampaignError> {
        let mut errs = Vec::new();
        let mut e = |field: &str, message: String| {
            errs.push(CampaignError {
                file: file.into(),
                field: field.into(),
                message,
            })
        };
        if !valid_id(&self.id) {
            e("id", "must be 1-64 of a-z, 0-9 and '-'".into());
        }
        if !valid_ean13(&self.ean) {
            e(
                "ean",
                format!(
                    "{:?} is not a valid EAN-13 (13 digits, last one the check digit)",
                    self.ean
                ),
            );
        }
        if self.product_name.trim().is_empty() {
            e("product_name", "must not be empty".into());
        }
        if self.brand.trim().is_empty() {
            e("brand", "must not be empty".into());
        }
        if let Some(b) = self
            .brand_slug
            .as_ref()
            .filter(|b| !crate::auth::is_brand_slug(b))
        {
            e(
                "brand_slug",
                format!("{b:?} must be a brand slug: 1-40 of a-z, 0-9 and '-'"),
            );
        }
        if self.slots == 0 {
            e("slots", "must be at least 1".into());
        }
        if self.reviews_for_label == 0 {
            e("reviews_for_label", "must be at least 1".into());
        }
        let [ao, ac, ro, rc] = dates(
            [
                ("applications_open_at", &self.applications_open_at),
                ("applications_close_at", &self.applications_close_at),
                ("reviews_open_at", &self.reviews_open_at),
                ("reviews_close_at", &self.reviews_close_at),
            ],
            &mut e,
        );
        ordered(
            ("applications_open_at", ao),
            ("applications_close_at", ac),
            Order::After,
            &mut e,
        );
        ordered(
            ("applications_close_at", ac),
            ("reviews_open_at", ro),
            Order::NotBefore,
            &mut e,
        );
        ordered(
            ("reviews_open_at", ro),
            ("reviews_close_at", rc),
            Order::NotBefore,
            &mut e,
        );
        errs
    }
}

/// A campaign file's dates, parsed once each: one that is not an RFC 3339
/// date-time is reported under its field's name (with the value read).
pub(crate) fn dates<const N: usize>(
    named: [(&str, &str); N],
    e: &mut impl FnMut(&str, String),
) -> [Option<time::OffsetDateTime>; N] {
    named.map(|(field, value)| {
        let t = parse_ts(value);
        if t.is_none() {
            e(field, format!("{value:?} is not an RFC 3339 date-time"));
        }
        t
    })
}

/// How a later date of a campaign file stands to an earlier one.
#[derive(Clone, Copy)]
pub(crate) enum Order {
    /// Strictly after (a window's close after its opening).
    After,
    /// At the same time or after.
    NotBefore,
}

/// Reports `later` when it does not stand to `earlier` as `order` says;
/// nothing when either could not be read (that was reported by [`dates`]).
pub(crate) fn ordered(
    earlier: (&str, Option<time::OffsetDateTime>),
    later: (&str, Option<time::OffsetDateTime>),
    order: Order,
    e: &mut impl FnMut(&str, String),
) {
    if let ((a_name, Some(a)), (b_name, Some(b))) = (earlier, later) {
        match order {
            Order::After if b <= a => e(b_name, format!("must be after {a_name}")),
            Order::NotBefore if b < a => e(b_name, format!("must not be before {a_name}")),
            _ => {}
        }
    }
}

/// A campaign's `opens_at` / `closes_at` window: both dates, closing after
/// opening.
pub(crate) fn window(opens_at: &str, closes_at: &str, e: &mut impl FnMut(&str, String)) {
    let [o, c] = dates([("opens_at", opens_at), ("closes_at", closes_at)], e);
    ordered(("opens_at", o), ("closes_at", c), Order::After, e);
}

fn read_dir_sorted(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p: &std::path::PathBuf| p.extension().is_some_and(|x| x == "toml"));
    v.sort();
    v
}

/// A kind of campaign file: how it is named in messages and validated.
trait CampaignFile: serde::de::DeserializeOwned {
    const KIND: &'static str;
    /// The top-level fields without a default, so that a file missing
    /// several of them gets one message per field (serde stops at the first).
    const REQUIRED: &'static [&'static str];
    fn id(&self) -> &str;
    fn validate(&self, file: &str) -> Vec<CampaignError>;
}

impl CampaignFile for ContestConfig {
    const KIND: &'static str = "contest";
    const REQUIRED: &'static [&'static str] = &[
        "id",
        "title",
        "description",
        "kind",
        "opens_at",
        "closes_at",
        "prizes",
    ];
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, file: &str) -> Vec<CampaignError> {
        ContestConfig::validate(self, file)
    }
}

impl CampaignFile for ProductTestConfig {
    const KIND: &'static str = "product test";
    const REQUIRED: &'static [&'static str] = &[
        "id",
        "ean",
        "product_name",
        "brand",
        "slots",
        "applications_open_at",
        "applications_close_at",
        "reviews_open_at",
        "reviews_close_at",
        "reviews_for_label",
    ];
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, file: &str) -> Vec<CampaignError> {
        ProductTestConfig::validate(self, file)
    }
}

impl CampaignFile for ChallengeConfig {
    const KIND: &'static str = "challenge";
    const REQUIRED: &'static [&'static str] = &[
        "id",
        "title",
        "question",
        "brief",
        "theme",
        "opens_at",
        "closes_at",
    ];
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, file: &str) -> Vec<CampaignError> {
        ChallengeConfig::validate(self, file)
    }
}

impl CampaignFile for crate::surveys::SurveyConfig {
    const KIND: &'static str = "survey";
    const REQUIRED: &'static [&'static str] = &[
        "id",
        "title",
        "description",
        "opens_at",
        "closes_at",
        "questions",
    ];
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, file: &str) -> Vec<CampaignError> {
        crate::surveys::SurveyConfig::validate(self, file)
    }
}

/// Checks across files for surveys: file names, audience levels (those of
/// community.toml), the `survey_completed` points rule.
fn cross_check_surveys(
    dir: &Path,
    surveys: &[(String, crate::surveys::SurveyConfig)],
    settings: Option<&crate::config::Settings>,
    points: Option<&crate::config::PointsConfig>,
    errs: &mut Vec<CampaignError>,
) {
    let community = dir.join(crate::config::CAMPAIGN_FILE).display().to_string();
    let points_file = dir.join(crate::config::POINTS_FILE).display().to_string();
    for (file, sv) in surveys {
        if !file_stem_is(file, &sv.id) {
            errs.push(problem(
                file,
                "id",
                format!("{:?} must match the file name ({}.toml)", sv.id, sv.id),
            ));
        }
        if let Some(s) = settings {
            let mut known = vec![crate::members::DEFAULT_LEVEL.to_owned()];
            known.extend(s.ambassadors.levels.iter().map(|l| l.name.clone()));
            for (i, l) in sv.audience.levels.iter().enumerate() {
                if !known.contains(l) {
                    errs.push(problem(
                        file,
                        format!("audience.levels[{i}]"),
                        format!(
                            "no level {l:?} in {community} (levels: {})",
                            known.join(", ")
                        ),
                    ));
                }
            }
        }
        if sv.points > 0 && points.is_some_and(|p| p.rule("survey_completed").is_none()) {
            errs.push(problem(
                file,
                "points",
                format!(
                    "{points_file} has no `survey_completed` rule: these points would never be credited"
                ),
            ));
        }
    }
}

/// Parses and validates every file of one kind in `dir`, refusing ids
/// already seen; errors go to `errs`.
fn load_kind<C: CampaignFile>(dir: &Path, errs: &mut Vec<CampaignError>) -> Vec<(String, C)> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for path in read_dir_sorted(dir) {
        let file = path.display().to_string();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                errs.push(problem(&file, "(file)", e.to_string()));
                continue;
            }
        };
        match crate::config::parse_toml::<C>(&text) {
            Ok(c) => {
                errs.extend(c.validate(&file));
                if let Some(prev) = seen.insert(c.id().to_owned(), file.clone()) {
                    errs.push(CampaignError {
                        file: file.clone(),
                        field: "id".into(),
                        message: format!("duplicate {} id {:?} (also in {prev})", C::KIND, c.id()),
                    });
                }
                out.push((file, c));
            }
            Err((field, m)) => {
                // Every missing top-level field, not only the first.
                let missing: Vec<&str> = toml::from_str::<toml::Table>(&text)
                    .map(|t| {
                        C::REQUIRED
                            .iter()
                            .copied()
                            .filter(|k| !t.contains_key(*k) && *k != field)
                            .collect()
                    })
                    .unwrap_or_default();
                errs.push(problem(&file, field, m.trim().replace('\n', " ")));
                for k in missing {
                    errs.push(problem(&file, k, "is required"));
                }
            }
        }
    }
    out
}

fn problem(file: &str, field: impl Into<String>, message: impl Into<String>) -> CampaignError {
    CampaignError {
        file: file.to_owned(),
        field: field.into(),
        message: message.into(),
    }
}

/// Reads and checks `community.toml` (required) and `points.toml` (the
/// built-in copy when absent) in `dir`.
fn load_settings(
    dir: &Path,
    errs: &mut Vec<CampaignError>,
) -> (
    Option<crate::config::Settings>,
    Option<crate::config::PointsConfig>,
) {
    use crate::config::{PointsConfig, Settings, BUILTIN_POINTS, CAMPAIGN_FILE, POINTS_FILE};
    let read = |name: &str, errs: &mut Vec<CampaignError>| {
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(t) => Some(t),
            Err(e) => {
                let message = if e.kind() == std::io::ErrorKind::NotFound {
                    "file not found (is this a campaigns directory?)".to_owned()
                } else {
                    e.to_string()
                };
                errs.push(problem(&path.display().to_string(), "(file)", message));
                None
            }
        }
    };
    let settings = read(CAMPAIGN_FILE, errs).and_then(|t| {
        let file = dir.join(CAMPAIGN_FILE).display().to_string();
        Settings::check_campaign(&t)
            .map_err(|p| errs.extend(p.into_iter().map(|(f, m)| problem(&file, f, m))))
            .ok()
    });
    let ppath = dir.join(POINTS_FILE);
    let points = if ppath.exists() {
        read(POINTS_FILE, errs).and_then(|t| {
            let file = ppath.display().to_string();
            PointsConfig::check(&t)
                .map_err(|p| errs.extend(p.into_iter().map(|(f, m)| problem(&file, f, m))))
                .ok()
        })
    } else {
        PointsConfig::check(BUILTIN_POINTS).ok()
    };
    let tpath = dir.join(crate::config::TRUST_FILE);
    if tpath.exists() {
        if let Some(t) = read(crate::config::TRUST_FILE, errs) {
            let file = tpath.display().to_string();
            let checks = [
                crate::ratelimit::AbuseConfig::parse(&t, &file).err(),
                crate::config::ModerationConfig::parse(&t, &file).err(),
            ];
            for e in checks.into_iter().flatten() {
                let text = match e {
                    crate::config::ConfigError::File { message, .. } => message,
                    other => other.to_string(),
                };
                let (field, message) = text.split_once(": ").unwrap_or(("(file)", &text));
                errs.push(problem(&file, field, message));
            }
        }
    }
    (settings, points)
}

fn file_stem_is(file: &str, id: &str) -> bool {
    Path::new(file).file_stem().and_then(|s| s.to_str()) == Some(id)
}

/// Checks across files: file names, themes, points rules, one product test
/// per product at a time.
fn cross_check(
    dir: &Path,
    contests: &[(String, ContestConfig)],
    tests: &[(String, ProductTestConfig)],
    challenges: &[(String, ChallengeConfig)],
    settings: Option<&crate::config::Settings>,
    points: Option<&crate::config::PointsConfig>,
    errs: &mut Vec<CampaignError>,
) {
    let community = dir.join(crate::config::CAMPAIGN_FILE).display().to_string();
    let points_file = dir.join(crate::config::POINTS_FILE).display().to_string();
    let themes = |file: &str, theme: &Option<String>, errs: &mut Vec<CampaignError>| {
        if let (Some(t), Some(s)) = (theme, settings) {
            if s.theme(t).is_none() {
                let known: Vec<&str> = s.themes.iter().map(|t| t.id.as_str()).collect();
                errs.push(problem(
                    file,
                    "theme",
                    format!(
                        "no idea theme {t:?} in {community} (themes: {})",
                        known.join(", ")
                    ),
                ));
            }
        }
    };
    for (file, c) in contests {
        if !file_stem_is(file, &c.id) {
            errs.push(problem(
                file,
                "id",
                format!("{:?} must match the file name ({}.toml)", c.id, c.id),
            ));
        }
        themes(file, &c.theme, errs);
        if c.entry_points > 0 && points.is_some_and(|p| p.rule("contest_entry").is_none()) {
            errs.push(problem(
                file,
                "entry_points",
                format!(
                    "{points_file} has no `contest_entry` rule with points: these points would never be credited"
                ),
            ));
        }
    }
    for (file, c) in challenges {
        if !file_stem_is(file, &c.id) {
            errs.push(problem(
                file,
                "id",
                format!("{:?} must match the file name ({}.toml)", c.id, c.id),
            ));
        }
        themes(file, &Some(c.theme.clone()), errs);
        for (field, points_set, rule) in [
            (
                "proposal_points",
                c.proposal_points > 0,
                "challenge_proposal",
            ),
            ("winner_points", c.winner_points > 0, "challenge_winner"),
        ] {
            if points_set && points.is_some_and(|p| p.rule(rule).is_none()) {
                errs.push(problem(
                    file,
                    field,
                    format!(
                        "{points_file} has no `{rule}` rule with points: these points would never be credited"
                    ),
                ));
            }
        }
    }
    for (i, (file, t)) in tests.iter().enumerate() {
        if !file_stem_is(file, &t.id) {
            errs.push(problem(
                file,
                "id",
                format!("{:?} must match the file name ({}.toml)", t.id, t.id),
            ));
        }
        themes(file, &t.theme, errs);
        let span = |t: &ProductTestConfig| {
            parse_ts(&t.applications_open_at).zip(parse_ts(&t.reviews_close_at))
        };
        for (other_file, o) in &tests[..i] {
            if o.ean != t.ean {
                continue;
            }
            if let (Some((a0, a1)), Some((b0, b1))) = (span(t), span(o)) {
                if a0 <= b1 && b0 <= a1 {
                    errs.push(problem(
                        file,
                        "ean",
                        format!(
                            "product {} is already tested over an overlapping period by {:?} ({other_file}): one test per product at a time",
                            t.ean, o.id
                        ),
                    ));
                }
            }
        }
    }
}

/// Parses and validates every campaign file under `dir` — `community.toml`,
/// `points.toml`, `contests/*.toml`, `product-tests/*.toml`,
/// `challenges/*.toml` — then checks
/// across files; all errors at once, each naming its file and field.
pub fn load_dir(dir: &Path) -> Result<Campaigns, Vec<CampaignError>> {
    let mut errs = Vec::new();
    let (settings, points) = load_settings(dir, &mut errs);
    let contests: Vec<(String, ContestConfig)> = load_kind(&dir.join("contests"), &mut errs);
    let tests: Vec<(String, ProductTestConfig)> = load_kind(&dir.join("product-tests"), &mut errs);
    let challenges: Vec<(String, ChallengeConfig)> = load_kind(&dir.join("challenges"), &mut errs);
    let events = load_events(dir, settings.as_ref(), &mut errs);
    let surveys: Vec<(String, crate::surveys::SurveyConfig)> =
        load_kind(&dir.join("surveys"), &mut errs);
    cross_check_surveys(dir, &surveys, settings.as_ref(), points.as_ref(), &mut errs);
    cross_check(
        dir,
        &contests,
        &tests,
        &challenges,
        settings.as_ref(),
        points.as_ref(),
        &mut errs,
    );
    let files = match crate::config::CampaignFiles::read_dir(dir) {
        Ok(f) => Some(f),
        Err(e) => {
            if errs.is_empty() {
                errs.push(problem(&dir.display().to_string(), "(file)", e.to_string()));
            }
            None
        }
    };
    if errs.is_empty() {
        Ok(Campaigns {
            contests: contests.into_iter().map(|(_, c)| c).collect(),
            product_tests: tests.into_iter().map(|(_, t)| t).collect(),
            challenges: challenges.into_iter().map(|(_, c)| c).collect(),
            events,
            surveys: surveys.into_iter().map(|(_, s)| s).collect(),
            files,
        })
    } else {
        Err(errs)
    }
}

pub fn contest_key(id: &str) -> Key {
    Key::new(format!("CONTEST#{id}"), "CONTEST")
}
pub fn seed_key(kind: &str, id: &str) -> Key {
    Key::new(format!("SEED#{kind}#{id}"), "SEED")
}
pub fn product_test_key(id: &str) -> Key {
    Key::new(crate::products::test_pk(id), "PTEST")
}
pub fn challenge_key(id: &str) -> Key {
    Key::new(format!("CHALLENGE#{id}"), "CHALLENGE")
}
/// gsi1 partition listing the challenges (by `{opens_at}#{id}`).
pub const CHALLENGES_PK: &str = "CHALLENGES";

fn new_seed() -> String {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Ensures a secret seed exists for a draw; returns its SHA-256 (the commitment).
async fn ensure_seed<T: Table>(table: &T, kind: &str, id: &str) -> Result<String, StoreError> {
    let k = seed_key(kind, id);
    if let Some(s) = table.get(&k, true).await? {
        if let Some(h) = s.get("seed_hash").and_then(Value::as_str) {
            return Ok(h.to_owned());
        }
    }
    let seed = new_seed();
    let hash = sha256_hex(seed.as_bytes());
    let item = json!({"pk": k.pk, "sk": k.sk, "seed": seed, "seed_hash": hash});
    let Value::Object(item) = item else {
        return Err(StoreError::Invalid("seed".into()));
    };
    match table.transact(vec![Write::put_new(item)]).await {
        Ok(()) => Ok(hash),
        Err(StoreError::ConditionFailed { .. }) => {
            let s = table.get(&k, true).await?.unwrap_or_default();
            Ok(s.get("seed_hash")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned())
        }
        Err(e) => Err(e),
    }
}

fn config_update(v: Value) -> Update {
    let mut u = Update::default();
    if let Value::Object(m) = v {
        for (k, v) in m {
            u.set.insert(k, v);
        }
    }
    u
}

/// The id of the `community.news` event announcing a campaign: derived
/// from the campaign, so however often it is applied, one event exists.
pub fn news_event_id(kind: &str, id: &str) -> String {
    let kind = if kind == CONTEST {
        "contest"
    } else if kind == CHALLENGE {
        "challenge"
    } else {
        "product-test"
    };
    format!("news-{kind}-{id}")
}

/// The `community.news` event of a new contest (what the mail says).
pub fn contest_news(c: &ContestConfig) -> Event {
    let mut e = Event::new(
        Kind::CommunityNews,
        "",
        None,
        json!({"campaign": "contest", "contest_id": c.id, "title": c.title,
               "description": c.description, "sponsor": c.sponsor,
               "opens_at": c.opens_at, "closes_at": c.closes_at,
               "prizes": c.prizes.iter().map(|p| p.label.as_str()).collect::<Vec<_>>()}),
    );
    e.event_id = news_event_id(CONTEST, &c.id);
    e
}

/// The `community.news` event of a new product test.
pub fn product_test_news(t: &ProductTestConfig) -> Event {
    let mut e = Event::new(
        Kind::CommunityNews,
        "",
        None,
        json!({"campaign": "product_test", "product_test_id": t.id,
               "product_name": t.product_name, "brand": t.brand, "slots": t.slots,
               "applications_open_at": t.applications_open_at,
               "applications_close_at": t.applications_close_at}),
    );
    e.event_id = news_event_id(PRODUCT_TEST, &t.id);
    e
}

/// The `community.news` event of a new challenge (défi): its question and
/// window, and the sponsoring brand's name.
pub fn challenge_news(ch: &ChallengeConfig) -> Event {
    let mut e = Event::new(
        Kind::CommunityNews,
        "",
        None,
        json!({"campaign": "challenge", "challenge_id": ch.id, "title": ch.title,
               "question": ch.question,
               "sponsor": ch.sponsor.as_ref().map(|s| s.name.as_str()),
               "opens_at": ch.opens_at, "closes_at": ch.closes_at}),
    );
    e.event_id = news_event_id(CHALLENGE, &ch.id);
    e
}

/// Writes a campaign's item; with `news`, tries first to create it with
/// its announcement in one transaction (conditions: the campaign does not
/// exist, nor the event): an existing campaign is updated without one, so
/// a re-apply, a change or two racing applies announce nothing more.
async fn write_campaign<T: Table>(
    table: &T,
    key: Key,
    u: Update,
    news: Option<Event>,
) -> Result<(), StoreError> {
    if let Some(e) = news {
        let create = Write::update(key.clone(), u.clone()).when(Cond::NotExists);
        match table.transact(vec![create, e.write()]).await {
            Err(StoreError::ConditionFailed { .. }) => {}
            other => return other,
        }
    }
    table.transact(vec![Write::update(key, u)]).await
}

async fn apply_contest<T: Table>(
    table: &T,
    contest: &ContestConfig,
    announce: bool,
) -> Result<(), StoreError> {
    let seed_hash = ensure_seed(table, "contest", &contest.id).await?;
    let mut u = config_update(json!({"config": contest, "seed_hash": seed_hash}));
    u.set.insert("gsi1pk".into(), json!("CONTESTS"));
    u.set.insert(
        "gsi1sk".into(),
        json!(format!("{}#{}", contest.opens_at, contest.id)),
    );
    let news = announce.then(|| contest_news(contest));
    write_campaign(table, contest_key(&contest.id), u, news).await
}

async fn apply_product_test<T: Table>(
    table: &T,
    t: &ProductTestConfig,
    announce: bool,
) -> Result<(), StoreError> {
    let seed_hash = ensure_seed(table, "product-test", &t.id).await?;
    let mut u = config_update(json!({"config": t, "seed_hash": seed_hash}));
    u.set.insert("gsi1pk".into(), json!("PRODUCT_TESTS"));
    u.set.insert(
        "gsi1sk".into(),
        json!(format!("{}#{}", t.applications_open_at, t.id)),
    );
    let (by_product, test) = crate::products::product_index_keys(&t.ean, &t.id);
    u.set.insert("gsi2pk".into(), json!(by_product));
    u.set.insert("gsi2sk".into(), json!(test));
    let news = announce.then(|| product_test_news(t));
    write_campaign(table, product_test_key(&t.id), u, news).await
}

/// Writes a challenge's config (its results, once published, are kept).
/// A new challenge is announced as a contest is (`community.news`, with
/// its item, once).
async fn apply_challenge<T: Table>(
    table: &T,
    ch: &ChallengeConfig,
    announce: bool,
) -> Result<(), StoreError> {
    let mut u = config_update(json!({"config": ch}));
    u.set.insert("gsi1pk".into(), json!(CHALLENGES_PK));
    u.set
        .insert("gsi1sk".into(), json!(format!("{}#{}", ch.opens_at, ch.id)));
    let news = announce.then(|| challenge_news(ch));
    write_campaign(table, challenge_key(&ch.id), u, news).await
}
/// Writes a survey's item (config and list index; its responses and
/// results are other items, never touched). A survey is announced to its
/// audience by marketing, not to every member: no `community.news`.
async fn apply_survey<T: Table>(
    table: &T,
    sv: &crate::surveys::SurveyConfig,
) -> Result<(), StoreError> {
    let mut u = config_update(json!({"config": sv}));
    u.set
        .insert("gsi1pk".into(), json!(crate::surveys::LIST_PK));
    u.set
        .insert("gsi1sk".into(), json!(format!("{}#{}", sv.opens_at, sv.id)));
    table
        .transact(vec![Write::update(crate::surveys::survey_key(&sv.id), u)])
        .await
}

/// Upserts every campaign into the table (config fields only: entries, draws
/// and seeds are kept). Returns the ids applied. This is the local server's
/// start (and the tests' set-up): it announces nothing; marketing's
/// `campaigns apply` ([`apply_plan`]) announces the new campaigns.
pub async fn apply<T: Table>(table: &T, c: &Campaigns) -> Result<Vec<String>, StoreError> {
    let mut done = Vec::new();
    if let Some(files) = &c.files {
        let applied = crate::live::read(table).await?;
        if applied.digest.as_deref() != Some(crate::live::digest(files).as_str()) {
            apply_files(table, files).await?;
            done.push("settings (community.toml, points.toml, trust.toml)".to_owned());
        } else {
            seed_launch(table, files).await?;
        }
    }
    for contest in &c.contests {
        apply_contest(table, contest, false).await?;
        done.push(format!("contest {}", contest.id));
    }
    for t in &c.product_tests {
        apply_product_test(table, t, false).await?;
        done.push(format!("product test {}", t.id));
    }
    for ch in &c.challenges {
        apply_challenge(table, ch, false).await?;
        done.push(format!("challenge {}", ch.id));
    }
    for e in &c.events {
        crate::roundtables::apply(table, e).await?;
        done.push(format!("event {}", e.id));
    }
    for sv in &c.surveys {
        apply_survey(table, sv).await?;
        done.push(format!("survey {}", sv.id));
    }
    Ok(done)
}

pub const CONTEST: &str = "contest";
pub const PRODUCT_TEST: &str = "product test";
pub const CHALLENGE: &str = "challenge";
/// An event or round table (`events/*.toml`).
pub const EVENT: &str = "event";
pub const SURVEY: &str = "survey";
/// The settings files, as one planned item (id [`SETTINGS_ID`]).
pub const SETTINGS: &str = "settings";
pub const SETTINGS_ID: &str = "community.toml, points.toml, trust.toml";

/// The launch mode a file asks for (`launch.invite_only`).
fn file_launch(files: &crate::config::CampaignFiles) -> crate::live::LaunchMode {
    let soft = toml::from_str::<toml::Table>(&files.community)
        .ok()
        .and_then(|t| t.get("launch")?.get("invite_only")?.as_bool())
        .unwrap_or(false);
    if soft {
        crate::live::LaunchMode::Soft
    } else {
        crate::live::LaunchMode::Public
    }
}

/// Sets the launch mode from the file only if none is set yet (after that
/// only `launch public|soft` changes it).
async fn seed_launch<T: Table>(
    table: &T,
    files: &crate::config::CampaignFiles,
) -> Result<(), StoreError> {
    let at = crate::domain::now();
    match table
        .transact(vec![crate::live::launch_seed(file_launch(files), &at)])
        .await
    {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

async fn apply_files<T: Table>(
    table: &T,
    files: &crate::config::CampaignFiles,
) -> Result<(), StoreError> {
    let at = crate::domain::now();
    table
        .transact(vec![crate::live::campaign_write(files, &at)])
        .await?;
    seed_launch(table, files).await
}

/// The campaign items in the table (the applied settings, contests and
/// product tests, through their keys and list index; never a scan).
pub async fn current<T: Table>(table: &T) -> Result<Vec<Item>, StoreError> {
    let mut out = table
        .query(&Query::new(Index::Primary, crate::live::PK).limit(10))
        .await?
        .items;
    for list in [
        "CONTESTS",
        "PRODUCT_TESTS",
        CHALLENGES_PK,
        crate::roundtables::LIST_PK,
        crate::surveys::LIST_PK,
    ] {
        let mut start = None;
        loop {
            let page = table
                .query(&Query::new(Index::Gsi1, list).limit(100).start_after(start))
                .await?;
            out.extend(page.items);
            match page.last_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    Ok(out)
}

/// One field a re-applied file changes: its path (`title`,
/// `prizes[0].count`) and its values before and after (None: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub field: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    New,
    Changed(Vec<FieldChange>),
    Unchanged,
}

/// What applying one campaign file does.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// [`CONTEST`] or [`PRODUCT_TEST`].
    pub kind: &'static str,
    pub id: String,
    pub change: Change,
    /// Set when the contest was already drawn (or the product test's testers
    /// already selected): what happened and when. Applying keeps it.
    pub settled: Option<String>,
}

/// What `apply` would do, computed from the table's current items.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub items: Vec<Planned>,
    /// Campaigns in the table that no file names any more: applying never
    /// removes them.
    pub only_in_table: Vec<(&'static str, String)>,
    /// Things to know that applying does not change (the launch mode).
    pub notes: Vec<String>,
}

fn diff_values(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<FieldChange>) {
    if old == new {
        return;
    }
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff_values(&join(k), a.get(k), b.get(k), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_values(&format!("{path}[{i}]"), Some(x), Some(y), out);
            }
        }
        _ => out.push(FieldChange {
            field: if path.is_empty() {
                "(config)".to_owned()
            } else {
                path.to_owned()
            },
            old: old.cloned(),
            new: new.cloned(),
        }),
    }
}

fn plan_one<C: Serialize + serde::de::DeserializeOwned>(
    kind: &'static str,
    id: &str,
    config: &C,
    stored: Option<&Item>,
) -> Planned {
    let new = serde_json::to_value(config).ok();
    let change = match stored {
        None => Change::New,
        Some(item) => {
            // Normalised through the type, so defaults compare equal.
            let old = config_of::<C>(item)
                .and_then(|c| serde_json::to_value(c).ok())
                .or_else(|| item.get("config").cloned());
            let mut fields = Vec::new();
            diff_values("", old.as_ref(), new.as_ref(), &mut fields);
            if fields.is_empty() {
                Change::Unchanged
            } else {
                Change::Changed(fields)
            }
        }
    };
    let settled = stored.filter(|_| kind != SURVEY).and_then(|i| {
        let (attr, what, at) = if kind == CONTEST {
            ("draw", "already drawn", "drawn_at")
        } else if kind == CHALLENGE {
            ("results", "results already published", "published_at")
        } else {
            ("selection", "testers already selected", "selected_at")
        };
        let v = i.get(attr)?;
        Some(match v.get(at).and_then(Value::as_str) {
            Some(t) => format!("{what} on {t}"),
            None => what.to_owned(),
        })
    });
    Planned {
        kind,
        id: id.to_owned(),
        change,
        settled,
    }
}

/// Compares the campaign files with the table's current items.
pub fn plan(current: &[Item], c: &Campaigns) -> Plan {
    let stored = |key: Key| {
        current
            .iter()
            .find(|i| Key::of(i).is_some_and(|k| k == key))
    };
    let mut items = Vec::new();
    for contest in &c.contests {
        items.push(plan_one(
            CONTEST,
            &contest.id,
            contest,
            stored(contest_key(&contest.id)),
        ));
    }
    for t in &c.product_tests {
        items.push(plan_one(
            PRODUCT_TEST,
            &t.id,
            t,
            stored(product_test_key(&t.id)),
        ));
    }
    for ch in &c.challenges {
        items.push(plan_one(
            CHALLENGE,
            &ch.id,
            ch,
            stored(challenge_key(&ch.id)),
        ));
    }
    for e in &c.events {
        items.push(plan_one(
            EVENT,
            &e.id,
            e,
            stored(crate::roundtables::key(&e.id)),
        ));
    }
    for sv in &c.surveys {
        items.push(plan_one(
            SURVEY,
            &sv.id,
            sv,
            stored(crate::surveys::survey_key(&sv.id)),
        ));
    }
    let mut notes = Vec::new();
    if let Some(files) = &c.files {
        let applied = applied_of(current);
        items.insert(0, plan_files(applied.files.as_ref(), files));
        let wanted = file_launch(files);
        match &applied.launch {
            None => notes.push(format!(
                "launch: {} (from community.toml's invite_only, set by this first apply; then only `launch public|soft` changes it)",
                wanted.as_str()
            )),
            Some(l) if l.mode != wanted => notes.push(format!(
                "launch: {} since {} (`launch {}`); community.toml's invite_only asks for {} and is not applied: use `launch {}` to change it",
                l.mode.as_str(),
                l.changed_at,
                l.mode.as_str(),
                wanted.as_str(),
                wanted.as_str()
            )),
            Some(l) => notes.push(format!("launch: {} since {}", l.mode.as_str(), l.changed_at)),
        }
    }
    let mut only_in_table = Vec::new();
    for i in current {
        let Some(k) = Key::of(i) else { continue };
        if let Some(id) = k.pk.strip_prefix("CONTEST#") {
            if !c.contests.iter().any(|c| c.id == id) {
                only_in_table.push((CONTEST, id.to_owned()));
            }
        } else if let Some(id) = crate::products::test_id_of_pk(&k.pk) {
            if !c.product_tests.iter().any(|t| t.id == id) {
                only_in_table.push((PRODUCT_TEST, id.to_owned()));
            }
        } else if let Some(id) = k.pk.strip_prefix("CHALLENGE#") {
            if !c.challenges.iter().any(|t| t.id == id) {
                only_in_table.push((CHALLENGE, id.to_owned()));
            }
        } else if let Some(id) = crate::roundtables::id_of_pk(&k.pk) {
            if !c.events.iter().any(|e| e.id == id) {
                only_in_table.push((EVENT, id.to_owned()));
            }
        } else if let Some(id) = crate::surveys::id_of_key(&k) {
            if !c.surveys.iter().any(|sv| sv.id == id) {
                only_in_table.push((SURVEY, id.to_owned()));
            }
        }
    }
    Plan {
        items,
        only_in_table,
        notes,
    }
}

/// The applied settings among the current items (see [`current`]).
fn applied_of(current: &[Item]) -> crate::live::Applied {
    let mut a = crate::live::Applied::default();
    for i in current {
        match (
            i.get("pk").and_then(Value::as_str),
            i.get("sk").and_then(Value::as_str),
        ) {
            (Some(crate::live::PK), Some("CAMPAIGN")) => {
                a.files = i
                    .get("files")
                    .cloned()
                    .and_then(|v| serde_json::from_value(v).ok());
            }
            (Some(crate::live::PK), Some("LAUNCH")) => {
                a.launch = serde_json::from_value(Value::Object(i.clone())).ok();
            }
            _ => {}
        }
    }
    a
}

/// A settings file as JSON, for a field-by-field diff.
fn toml_json(text: &str) -> Option<Value> {
    toml::from_str::<toml::Table>(text)
        .ok()
        .and_then(|t| serde_json::to_value(t).ok())
}

fn plan_files(
    stored: Option<&crate::config::CampaignFiles>,
    files: &crate::config::CampaignFiles,
) -> Planned {
    let change = match stored {
        None => Change::New,
        Some(old) if old == files => Change::Unchanged,
        Some(old) => {
            let mut fields = Vec::new();
            for (name, a, b) in [
                ("community.toml", &old.community, &files.community),
                ("points.toml", &old.points, &files.points),
                ("trust.toml", &old.trust, &files.trust),
            ] {
                let mut f = Vec::new();
                diff_values("", toml_json(a).as_ref(), toml_json(b).as_ref(), &mut f);
                if f.is_empty() && a != b {
                    // Only comments or layout changed.
                    f.push(FieldChange {
                        field: "(comments or layout)".into(),
                        old: None,
                        new: None,
                    });
                }
                fields.extend(f.into_iter().map(|mut x| {
                    x.field = format!("{name} {}", x.field);
                    x
                }));
            }
            Change::Changed(fields)
        }
    };
    Planned {
        kind: SETTINGS,
        id: SETTINGS_ID.to_owned(),
        change,
        settled: None,
    }
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(none)".to_owned(),
        Some(v) => v.to_string(),
    }
}

impl Plan {
    /// The campaigns applying writes: new or changed.
    pub fn to_apply(&self) -> Vec<&Planned> {
        self.items
            .iter()
            .filter(|p| p.change != Change::Unchanged)
            .collect()
    }

    /// The diff, one line per campaign or changed field:
    /// `+ contest spring-2027` (new), `~ contest x: title "a" → "b"`
    /// (changed), `= contest y` (unchanged), `! ...` (a note).
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.items {
            match &p.change {
                Change::New => out.push(format!("+ {} {}", p.kind, p.id)),
                Change::Unchanged => out.push(format!("= {} {}", p.kind, p.id)),
                Change::Changed(fields) => {
                    for f in fields {
                        out.push(format!(
                            "~ {} {}: {} {} → {}",
                            p.kind,
                            p.id,
                            f.field,
                            show(&f.old),
                            show(&f.new)
                        ));
                    }
                }
            }
            if let Some(s) = &p.settled {
                let note = if matches!(p.change, Change::Changed(_)) {
                    "applying keeps its entries, seed and result: the changes do not alter them"
                } else {
                    "its entries, seed and result are kept"
                };
                out.push(format!("! {} {}: {s}; {note}", p.kind, p.id));
            }
        }
        for (kind, id) in &self.only_in_table {
            out.push(format!(
                "! {kind} {id}: in the table but in no file (left as is: applying never removes a campaign)"
            ));
        }
        for n in &self.notes {
            out.push(format!("! {n}"));
        }
        out
    }
}

/// Applies the new and changed campaigns of `plan` (from [`plan`] over the
/// same `c`), calling `progress(i, n, planned)` after each one. Entries,
/// seeds, draws and selections are never touched. Returns how many were
/// written.
///
/// A contest, product test or challenge the table did not hold is created with its
/// `community.news` event in the same transaction (the emails consumer
/// mails it to the members who want community news); a changed one, or
/// one created meanwhile by another apply, is updated without it.
pub async fn apply_plan<T: Table>(
    table: &T,
    c: &Campaigns,
    plan: &Plan,
    mut progress: impl FnMut(usize, usize, &Planned),
) -> Result<usize, StoreError> {
    let todo = plan.to_apply();
    let n = todo.len();
    for (i, p) in todo.into_iter().enumerate() {
        if p.kind == SETTINGS {
            if let Some(files) = &c.files {
                apply_files(table, files).await?;
            }
        } else if p.kind == CONTEST {
            if let Some(contest) = c.contests.iter().find(|x| x.id == p.id) {
                apply_contest(table, contest, p.change == Change::New).await?;
            }
        } else if p.kind == CHALLENGE {
            if let Some(ch) = c.challenges.iter().find(|x| x.id == p.id) {
                apply_challenge(table, ch, p.change == Change::New).await?;
            }
        } else if p.kind == EVENT {
            if let Some(e) = c.events.iter().find(|x| x.id == p.id) {
                crate::roundtables::apply(table, e).await?;
            }
        } else if p.kind == SURVEY {
            if let Some(sv) = c.surveys.iter().find(|x| x.id == p.id) {
                apply_survey(table, sv).await?;
            }
        } else if let Some(t) = c.product_tests.iter().find(|x| x.id == p.id) {
            apply_product_test(table, t, p.change == Change::New).await?;
        }
        progress(i + 1, n, p);
    }
    Ok(n)
}

impl CampaignFile for crate::roundtables::RoundtableConfig {
    const KIND: &'static str = "event";
    const REQUIRED: &'static [&'static str] = &[
        "id",
        "title",
        "description",
        "kind",
        "starts_at",
        "capacity",
        "registration_opens_at",
        "registration_closes_at",
    ];
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, file: &str) -> Vec<CampaignError> {
        crate::roundtables::RoundtableConfig::validate(self, file)
    }
}

/// `events/*.toml` (events and round tables): parsed, validated, each id
/// matching its file name and its theme known.
fn load_events(
    dir: &Path,
    settings: Option<&crate::config::Settings>,
    errs: &mut Vec<CampaignError>,
) -> Vec<crate::roundtables::RoundtableConfig> {
    let events: Vec<(String, crate::roundtables::RoundtableConfig)> =
        load_kind(&dir.join("events"), errs);
    let community = dir.join(crate::config::CAMPAIGN_FILE).display().to_string();
    for (file, e) in &events {
        if !file_stem_is(file, &e.id) {
            errs.push(problem(
                file,
                "id",
                format!("{:?} must match the file name ({}.toml)", e.id, e.id),
            ));
        }
        if let (Some(t), Some(s)) = (&e.theme, settings) {
            if s.theme(t).is_none() {
                errs.push(problem(
                    file,
                    "theme",
                    format!("no idea theme {t:?} in {community}"),
                ));
            }
        }
    }
    events.into_iter().map(|(_, e)| e).collect()
}

/// Reads a stored campaign's config.
pub fn config_of<C: serde::de::DeserializeOwned>(item: &Item) -> Option<C> {
    serde_json::from_value(item.get("config")?.clone()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ean_check_digits() {
        assert!(valid_ean13("3560070123452"));
        assert!(valid_ean13("4006381333931"));
        assert!(!valid_ean13("3560070123457"));
        assert!(!valid_ean13("356007012345"));
        assert!(!valid_ean13("35600701234a2"));
    }
}
