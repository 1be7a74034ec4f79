//! Surveys and panels (enquêtes): campaign files
//! (`infra/campaigns/surveys/*.toml`) with questions (`single`, `multiple`,
//! `scale`, `text`), an audience (cohorts such as the soft-launch panels,
//! levels, ambassadors, an invited panel of members), a window and points
//! for completion.
//!
//! Keys:
//! - survey `SURVEY#{id} / SURVEY` (gsi1 `SURVEYS` / `{opens_at}#{id}`),
//!   written by `campaigns apply`;
//! - response `SURVEY#{id}#R{00-15} / {respondent}`: the respondent is the
//!   member's pseudonym for this survey (keyed HMAC, [`pseudonym`]), so the
//!   CSV export and its pages never carry a member id; the bucket spreads a
//!   panel's rush over 16 partitions. The item keeps `member_id` (the
//!   points, the member's own export);
//! - results `SURVEY#{id} / RESULTS#{00-15}` (and `CONTEST#{id} /
//!   RESULTS#{00-15}` for a survey contest's answers): counters the insights
//!   consumer adds each batch's answers to ([`tally`] in the event, folded
//!   per survey and batch); a read sums the 16 shards of one partition (one
//!   Query), never the responses.
//!
//! A response is one transaction: the response item (condition: absent →
//! 409 on a second response) and its `survey.responded` event (outbox). The
//! points consumer credits the survey's `points` once (`survey_completed`).

use crate::app::App;
use crate::auth::{Caller, MARKETING};
use crate::campaigns::{valid_cohort, valid_id, CampaignError, QuestionType};
use crate::domain::{now, parse_ts, FieldError};
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::ListPage;
use crate::members::{self, MemberRow};
use crate::receipt::Receipt;
use crate::store::{Index, Item, Key, Query, SortKey, StoreError, Table, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Partitions of a survey's responses.
pub const RESPONSE_BUCKETS: u32 = 16;
/// Shards of a survey's (or contest's) results counters.
pub const RESULT_SHARDS: u32 = 16;
/// The event data field carrying a response's [`tally`].
pub const TALLY: &str = "tally";
/// gsi1 partition listing the surveys.
pub const LIST_PK: &str = "SURVEYS";
/// The longest text answer unless a question sets `max_length`.
pub const TEXT_MAX: u32 = 2000;
/// The most values a scale may have (`max - min + 1`).
pub const SCALE_VALUES: i64 = 11;
/// The most questions of one survey (a response item stays far under 400 KB).
pub const MAX_QUESTIONS: usize = 50;
/// The most members an invited panel lists in a survey file.
pub const MAX_PANEL: usize = 5000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerType {
    Single,
    Multiple,
    Scale,
    Text,
}

impl AnswerType {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerType::Single => "single",
            AnswerType::Multiple => "multiple",
            AnswerType::Scale => "scale",
            AnswerType::Text => "text",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyQuestion {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: AnswerType,
    pub label: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default)]
    pub required: bool,
    /// `multiple`: the fewest options to pick (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_choices: Option<u32>,
    /// `multiple`: the most options to pick (default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_choices: Option<u32>,
    /// `scale`: the lowest value (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    /// `scale`: the highest value (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// `text`: the longest answer in characters (default 2000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u32>,
}

impl SurveyQuestion {
    fn scale(&self) -> (i64, i64) {
        (self.min.unwrap_or(1), self.max.unwrap_or(5))
    }
    fn choices(&self) -> (usize, usize) {
        let n = self.options.len();
        (
            self.min_choices.map_or(1, |m| m as usize),
            self.max_choices.map_or(n, |m| m as usize),
        )
    }

    /// A contest's question as a survey question (the contest's results
    /// have the same shape as a survey's).
    pub fn from_contest(q: &crate::campaigns::Question) -> SurveyQuestion {
        let kind = match q.kind {
            QuestionType::SingleChoice => AnswerType::Single,
            QuestionType::MultipleChoice => AnswerType::Multiple,
            QuestionType::Rating => AnswerType::Scale,
            QuestionType::FreeText => AnswerType::Text,
        };
        SurveyQuestion {
            id: q.id.clone(),
            kind,
            label: q.label.clone(),
            options: q.options.clone(),
            required: q.required,
            min_choices: None,
            max_choices: None,
            min: None,
            max: None,
            max_length: None,
        }
    }
}

/// Who a survey is for: a member in any of the listed groups. All empty
/// (and `ambassadors` false): every member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    /// Cohorts (the invite codes' cohorts: `staff`, `panel`, `facebook-group`,
    /// `public` for members who joined without a code).
    #[serde(default)]
    pub cohorts: Vec<String>,
    /// Levels (`member` or a `[[ambassadors.levels]]` name of community.toml).
    #[serde(default)]
    pub levels: Vec<String>,
    /// The members flagged ambassadors.
    #[serde(default)]
    pub ambassadors: bool,
    /// An invited panel: member ids.
    #[serde(default)]
    pub members: Vec<String>,
}

impl Audience {
    pub fn everyone(&self) -> bool {
        self.cohorts.is_empty()
            && self.levels.is_empty()
            && !self.ambassadors
            && self.members.is_empty()
    }

    pub fn admits(&self, m: &MemberRow) -> bool {
        self.everyone()
            || self.cohorts.contains(&m.cohort)
            || self.levels.contains(&m.level)
            || (self.ambassadors && m.ambassador)
            || self.members.contains(&m.id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyConfig {
    pub id: String,
    pub title: String,
    pub description: String,
    /// The brand partner's slug (`brand:<slug>` group) who may read the
    /// results; none for the community's own surveys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub brand: Option<String>,
    pub opens_at: String,
    pub closes_at: String,
    /// Points for a completed response (0: none).
    #[serde(default)]
    pub points: i64,
    #[serde(default)]
    pub audience: Audience,
    pub questions: Vec<SurveyQuestion>,
}

impl SurveyConfig {
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
        if let Some(b) = &self.brand {
            if !crate::auth::is_brand_slug(b) {
                e(
                    "brand",
                    format!("{b:?} must be a brand slug: 1-40 of a-z, 0-9 and '-'"),
                );
            }
        }
        crate::campaigns::window(&self.opens_at, &self.closes_at, &mut e);
        if self.points < 0 {
            e("points", "must not be negative".into());
        }
        for (i, c) in self.audience.cohorts.iter().enumerate() {
            if !valid_cohort(c) {
                e(
                    &format!("audience.cohorts[{i}]"),
                    format!("{c:?} must be 1-32 of a-z, 0-9 and '-'"),
                );
            }
        }
        for (i, m) in self.audience.members.iter().enumerate() {
            if crate::domain::MemberId::parse(m).is_none() {
                e(
                    &format!("audience.members[{i}]"),
                    format!("{m:?} is not a member id"),
                );
            }
        }
        if self.audience.members.len() > MAX_PANEL {
            e(
                "audience.members",
                format!("at most {MAX_PANEL} members (use a cohort for a larger panel)"),
            );
        }
        if self.questions.is_empty() {
            e("questions", "a survey needs at least one question".into());
        }
        if self.questions.len() > MAX_QUESTIONS {
            e("questions", format!("at most {MAX_QUESTIONS} questions"));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, q) in self.questions.iter().enumerate() {
            let f = |name: &str| format!("questions[{i}].{name}");
            if !valid_id(&q.id) {
                e(&f("id"), "must be 1-64 of a-z, 0-9 and '-'".into());
            }
            if !ids.insert(q.id.clone()) {
                e(&f("id"), format!("duplicate question id {:?}", q.id));
            }
            if q.label.trim().is_empty() {
                e(&f("label"), "must not be empty".into());
            }
            let choices = matches!(q.kind, AnswerType::Single | AnswerType::Multiple);
            if choices {
                if q.options.len() < 2 {
                    e(
                        &f("options"),
                        "a choice question needs at least two options".into(),
                    );
                }
                let mut seen = std::collections::HashSet::new();
                for (j, o) in q.options.iter().enumerate() {
                    if o.trim().is_empty() {
                        e(&f(&format!("options[{j}]")), "must not be empty".into());
                    } else if !seen.insert(o) {
                        e(
                            &f(&format!("options[{j}]")),
                            format!("duplicate option {o:?}"),
                        );
                    }
                }
            } else if !q.options.is_empty() {
                e(&f("options"), "only choice questions have options".into());
            }
            if q.kind != AnswerType::Multiple {
                for (name, v) in [
                    ("min_choices", q.min_choices),
                    ("max_choices", q.max_choices),
                ] {
                    if v.is_some() {
                        e(&f(name), "only multiple questions have it".into());
                    }
                }
            } else {
                let (lo, hi) = q.choices();
                if lo < 1 {
                    e(&f("min_choices"), "must be at least 1".into());
                }
                if hi > q.options.len() {
                    e(
                        &f("max_choices"),
                        "must not exceed the number of options".into(),
                    );
                }
                if lo > hi {
                    e(&f("max_choices"), "must not be below min_choices".into());
                }
            }
            if q.kind != AnswerType::Scale {
                for (name, v) in [("min", q.min), ("max", q.max)] {
                    if v.is_some() {
                        e(&f(name), "only scale questions have it".into());
                    }
                }
            } else {
                let (lo, hi) = q.scale();
                if hi <= lo {
                    e(&f("max"), "must be above min".into());
                } else if hi - lo + 1 > SCALE_VALUES {
                    e(
                        &f("max"),
                        format!("a scale has at most {SCALE_VALUES} values"),
                    );
                }
            }
            match (q.kind, q.max_length) {
                (AnswerType::Text, Some(n)) if !(1..=5000).contains(&n) => {
                    e(&f("max_length"), "must be 1 to 5000".into())
                }
                (AnswerType::Text, _) | (_, None) => {}
                (_, Some(_)) => e(&f("max_length"), "only text questions have it".into()),
            }
        }
        errs
    }
}

// ------------------------------------------------------------------- keys

pub fn survey_key(id: &str) -> Key {
    Key::new(format!("SURVEY#{id}"), "SURVEY")
}

/// The survey whose config row `k` is, if it is one (a survey's responses
/// have partitions of their own: `SURVEY#{id}#Rnn`).
pub fn id_of_key(k: &Key) -> Option<&str> {
    k.pk.strip_prefix("SURVEY#").filter(|_| k.sk == "SURVEY")
}

/// The results shard `shard` of the results partition `pk` (`SURVEY#{id}`
/// or `CONTEST#{id}`).
pub fn results_key(pk: &str, shard: u32) -> Key {
    Key::new(pk, format!("RESULTS#{shard:02}"))
}

fn bucket_of(respondent: &str) -> u32 {
    u32::from_str_radix(respondent.get(..8).unwrap_or("0"), 16).unwrap_or(0) % RESPONSE_BUCKETS
}

pub fn responses_pk(id: &str, bucket: u32) -> String {
    format!("SURVEY#{id}#R{bucket:02}")
}

pub fn response_key(id: &str, respondent: &str) -> Key {
    Key::new(responses_pk(id, bucket_of(respondent)), respondent)
}

/// The member's pseudonym in one survey: HMAC-SHA256 keyed with the
/// deployment's secret (`COMMUNITY_LINK_SECRET`), over the survey and the
/// member; stable for the survey, different across surveys, and not
/// computable without the secret (so not reversible by hashing known ids).
pub fn pseudonym(secret: &str, survey: &str, member: &str) -> String {
    use hmac::{Hmac, Mac};
    let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(format!("survey-respondent\n{survey}\n{member}").as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ------------------------------------------------------------------ views

#[derive(Debug, Clone, Serialize)]
pub struct SurveyView {
    pub id: String,
    pub title: String,
    pub description: String,
    pub brand: Option<String>,
    pub opens_at: String,
    pub closes_at: String,
    /// upcoming, open or closed.
    pub status: &'static str,
    pub points: i64,
    pub questions: Vec<SurveyQuestion>,
    /// For a member: whether they have responded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responded: Option<bool>,
}

fn status(c: &SurveyConfig, at: time::OffsetDateTime) -> &'static str {
    match (parse_ts(&c.opens_at), parse_ts(&c.closes_at)) {
        (Some(o), _) if at < o => "upcoming",
        (_, Some(cl)) if at < cl => "open",
        _ => "closed",
    }
}

fn config_of(item: &Item) -> Result<SurveyConfig> {
    crate::campaigns::config_of(item)
        .ok_or_else(|| Error::Store(StoreError::Invalid("survey config".into())))
}

fn view(c: SurveyConfig, responded: Option<bool>) -> SurveyView {
    SurveyView {
        status: status(&c, time::OffsetDateTime::now_utc()),
        id: c.id,
        title: c.title,
        description: c.description,
        brand: c.brand,
        opens_at: c.opens_at,
        closes_at: c.closes_at,
        points: c.points,
        questions: c.questions,
        responded,
    }
}

/// Marketing, or the brand partner the survey names.
fn staff_of(caller: &Caller, c: &SurveyConfig) -> bool {
    caller.in_group(MARKETING) || c.brand.as_deref().is_some_and(|b| caller.acts_for_brand(b))
}

async fn load<T: Table>(app: &App<T>, id: &str) -> Result<SurveyConfig> {
    match app.table.get(&survey_key(id), false).await? {
        Some(i) => config_of(&i),
        None => Err(Error::NotFound("survey")),
    }
}

fn outside() -> Error {
    Error::Forbidden("this survey is not open to you".into())
}

/// `GET /surveys`: the open surveys whose audience holds the caller.
pub async fn list<T: Table>(
    app: &App<T>,
    caller: &Caller,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<SurveyView>> {
    let member = members::require(app, caller).await?;
    let mut start = crate::store::cursor::start(cursor_in.as_deref(), Index::Gsi1, LIST_PK)?;
    let mut kept: Vec<(SurveyConfig, Item)> = Vec::new();
    let mut more = false;
    'pages: loop {
        let page = app
            .table
            .query(
                &Query::new(Index::Gsi1, LIST_PK)
                    .backward()
                    .limit(100)
                    .start_after(start.take()),
            )
            .await?;
        for item in page.items {
            let c = config_of(&item)?;
            if status(&c, time::OffsetDateTime::now_utc()) != "open" || !c.audience.admits(&member)
            {
                continue;
            }
            if kept.len() == limit as usize {
                more = true;
                break 'pages;
            }
            kept.push((c, item));
        }
        match page.last_key {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    let next_cursor = if more {
        kept.last().map(|(_, item)| {
            let mut k = Item::new();
            for a in ["pk", "sk", "gsi1pk", "gsi1sk"] {
                if let Some(v) = item.get(a) {
                    k.insert(a.into(), v.clone());
                }
            }
            crate::store::cursor::encode(&k)
        })
    } else {
        None
    };
    let secret = app.settings().link_secret.clone();
    let keys: Vec<Key> = kept
        .iter()
        .map(|(c, _)| response_key(&c.id, &pseudonym(&secret, &c.id, &member.id)))
        .collect();
    let answered: std::collections::HashSet<String> =
        crate::store::get_all(&app.table, &keys, false)
            .await?
            .iter()
            .filter_map(|i| {
                i.get("survey_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .collect();
    Ok(ListPage {
        items: kept
            .into_iter()
            .map(|(c, _)| {
                let r = answered.contains(&c.id);
                view(c, Some(r))
            })
            .collect(),
        next_cursor,
    })
}

/// `GET /surveys/{id}`: a member of its audience (with `responded`),
/// marketing, or the survey's brand.
pub async fn get<T: Table>(app: &App<T>, caller: &Caller, id: &str) -> Result<SurveyView> {
    let c = load(app, id).await?;
    if staff_of(caller, &c) {
        return Ok(view(c, None));
    }
    let member = members::require(app, caller).await?;
    if !c.audience.admits(&member) {
        return Err(outside());
    }
    let secret = app.settings().link_secret.clone();
    let responded = app
        .table
        .get(
            &response_key(id, &pseudonym(&secret, id, &member.id)),
            false,
        )
        .await?
        .is_some();
    Ok(view(c, Some(responded)))
}

// ---------------------------------------------------------------- answers

/// Checks answers against the questions; errors name `answers.{question}`.
pub fn check_answers(
    questions: &[SurveyQuestion],
    answers: &Map<String, Value>,
) -> std::result::Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    for k in answers.keys() {
        if !questions.iter().any(|q| &q.id == k) {
            errs.push(FieldError::new(
                format!("answers.{k}"),
                "is not a question of this survey",
            ));
        }
    }
    for q in questions {
        let f = format!("answers.{}", q.id);
        let Some(a) = answers.get(&q.id).filter(|v| !v.is_null()) else {
            if q.required {
                errs.push(FieldError::new(f, "is required"));
            }
            continue;
        };
        let problem = match q.kind {
            AnswerType::Single => (!a.as_str().is_some_and(|s| q.options.iter().any(|o| o == s)))
                .then(|| format!("must be one of: {}", q.options.join(" | "))),
            AnswerType::Multiple => {
                let (lo, hi) = q.choices();
                let ok = a.as_array().is_some_and(|v| {
                    let picked: Vec<&str> = v.iter().filter_map(Value::as_str).collect();
                    let mut uniq = picked.clone();
                    uniq.sort_unstable();
                    uniq.dedup();
                    picked.len() == v.len()
                        && uniq.len() == picked.len()
                        && (lo..=hi).contains(&picked.len())
                        && picked.iter().all(|p| q.options.iter().any(|o| o == p))
                });
                (!ok).then(|| {
                    format!(
                        "must be a list of {lo} to {hi} distinct options among: {}",
                        q.options.join(" | ")
                    )
                })
            }
            AnswerType::Scale => {
                let (lo, hi) = q.scale();
                (!a.as_i64().is_some_and(|n| (lo..=hi).contains(&n)))
                    .then(|| format!("must be a whole number from {lo} to {hi}"))
            }
            AnswerType::Text => {
                let max = q.max_length.unwrap_or(TEXT_MAX) as usize;
                let ok = a.as_str().is_some_and(|s| {
                    (1..=max).contains(&s.trim().chars().count())
                        && !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
                });
                (!ok).then(|| format!("must be text of 1 to {max} characters"))
            }
        };
        if let Some(m) = problem {
            errs.push(FieldError::new(f, m));
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// What one (valid) response adds to its results counters: `n` (responses),
/// `a#{q}` (answered), `o#{q}#{option index}`, `s#{q}` (sum of a scale) and
/// `v#{q}#{value}` (a scale's values). Carried by the response's event and
/// folded by the insights consumer.
pub fn tally(questions: &[SurveyQuestion], answers: &Map<String, Value>) -> Map<String, Value> {
    let mut t = Map::new();
    t.insert("n".into(), json!(1));
    for q in questions {
        let Some(a) = answers.get(&q.id).filter(|v| !v.is_null()) else {
            continue;
        };
        t.insert(format!("a#{}", q.id), json!(1));
        let picked: Vec<&str> = match a {
            Value::String(s) if q.kind == AnswerType::Single => vec![s.as_str()],
            Value::Array(v) => v.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        for p in picked {
            if let Some(i) = q.options.iter().position(|o| o == p) {
                t.insert(format!("o#{}#{i}", q.id), json!(1));
            }
        }
        if q.kind == AnswerType::Scale {
            if let Some(n) = a.as_i64() {
                t.insert(format!("s#{}", q.id), json!(n));
                t.insert(format!("v#{}#{n}", q.id), json!(1));
            }
        }
    }
    t
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResponseRequest {
    pub answers: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SurveyResponse {
    pub survey_id: String,
    pub responded_at: String,
    /// The points the response earns (credited shortly after).
    pub points: i64,
}

/// `POST /surveys/{id}/responses`.
pub async fn respond<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &str,
    req: ResponseRequest,
    receipt: Option<&Receipt>,
) -> Result<SurveyResponse> {
    let c = load(app, id).await?;
    let member = members::require(app, caller).await?;
    if !c.audience.admits(&member) {
        return Err(outside());
    }
    let st = status(&c, time::OffsetDateTime::now_utc());
    if st != "open" {
        return Err(Error::Conflict(format!(
            "this survey is not open (it is {st})"
        )));
    }
    check_answers(&c.questions, &req.answers).map_err(Error::Invalid)?;
    let at = now();
    let respondent = pseudonym(&app.settings().link_secret, id, &member.id);
    let k = response_key(id, &respondent);
    let record = json!({"pk": k.pk, "sk": k.sk, "survey_id": id, "member_id": member.id,
        "respondent": respondent, "cohort": member.cohort, "answers": req.answers,
        "responded_at": at});
    let Value::Object(record) = record else {
        return Err(Error::Store(StoreError::Invalid("response".into())));
    };
    let out = SurveyResponse {
        survey_id: id.to_owned(),
        responded_at: at,
        points: c.points,
    };
    let event = Event::new(
        Kind::SurveyResponded,
        &member.id,
        None,
        json!({"survey_id": id, "cohort": member.cohort,
               "points": (c.points > 0).then_some(c.points),
               TALLY: tally(&c.questions, &req.answers)}),
    );
    let writes = vec![Write::put_new(record), event.write()];
    let body = serde_json::to_value(&out).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    match commit(&app.table, writes, receipt.map(|r| (r, 201, &body))).await {
        Ok(()) => Ok(out),
        Err(e) if e.failed_on(&k) => Err(Error::Conflict(
            "you have already responded to this survey".into(),
        )),
        Err(e) => Err(e),
    }
}

// ---------------------------------------------------------------- results

/// Sums the results shards of `pk` (one Query of 16 items at most).
pub async fn counters<T: Table>(
    app: &App<T>,
    pk: &str,
) -> Result<std::collections::BTreeMap<String, i64>> {
    let items = crate::store::all_pages(
        &app.table,
        Query::new(Index::Primary, pk)
            .sk(SortKey::BeginsWith("RESULTS#".into()))
            .limit(RESULT_SHARDS),
    )
    .await?;
    let mut sums = std::collections::BTreeMap::new();
    for i in items {
        for (k, v) in i {
            if k == "pk" || k == "sk" {
                continue;
            }
            if let Some(n) = v.as_i64() {
                *sums.entry(k).or_default() += n;
            }
        }
    }
    Ok(sums)
}

/// The results of `questions` from the counters of `pk`: per question the
/// answers, counts per option, mean (and counts per value) of a scale.
pub async fn results_of<T: Table>(
    app: &App<T>,
    kind: &str,
    id: &str,
    title: &str,
    pk: &str,
    questions: &[SurveyQuestion],
) -> Result<Value> {
    let sums = counters(app, pk).await?;
    let n = |k: &str| sums.get(k).copied().unwrap_or(0);
    let qs: Vec<Value> = questions
        .iter()
        .map(|q| {
            let answered = n(&format!("a#{}", q.id));
            let mut v = json!({"id": q.id, "type": q.kind.as_str(), "label": q.label,
                               "answered": answered});
            if matches!(q.kind, AnswerType::Single | AnswerType::Multiple) {
                v["options"] = json!(q
                    .options
                    .iter()
                    .enumerate()
                    .map(|(i, o)| json!({"option": o, "count": n(&format!("o#{}#{i}", q.id))}))
                    .collect::<Vec<_>>());
            }
            if q.kind == AnswerType::Scale {
                let (lo, hi) = q.scale();
                let sum = n(&format!("s#{}", q.id));
                v["mean"] = if answered > 0 {
                    json!(sum as f64 / answered as f64)
                } else {
                    Value::Null
                };
                v["values"] = json!((lo..=hi)
                    .map(|x| json!({"value": x, "count": n(&format!("v#{}#{x}", q.id))}))
                    .collect::<Vec<_>>());
            }
            v
        })
        .collect();
    Ok(
        json!({"id": id, "kind": kind, "title": title, "responses": n("n"),
              "generated_at": now(), "questions": qs}),
    )
}

/// `GET /surveys/{id}/results` as JSON: marketing, or the survey's brand.
pub async fn results<T: Table>(app: &App<T>, caller: &Caller, id: &str) -> Result<Value> {
    let c = load(app, id).await?;
    if !staff_of(caller, &c) {
        return Err(Error::Forbidden(
            "only marketing or the survey's brand may read its results".into(),
        ));
    }
    results_of(
        app,
        "survey",
        id,
        &c.title,
        &survey_key(id).pk,
        &c.questions,
    )
    .await
}

fn csv_cell(a: Option<&Value>) -> String {
    match a {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(v)) => v
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" | "),
        Some(other) => other.to_string(),
    }
}

/// `GET /surveys/{id}/results` with `Accept: text/csv` (marketing only):
/// one row per response, by its pseudonym, never a member id or address.
/// Reads the 16 response partitions in pages of 1,000.
pub async fn export_csv<T: Table>(app: &App<T>, caller: &Caller, id: &str) -> Result<String> {
    let c = load(app, id).await?;
    if !caller.in_group(MARKETING) {
        return Err(Error::Forbidden(if staff_of(caller, &c) {
            "a brand reads the aggregated results only (no responses)".into()
        } else {
            "only marketing may export the responses".into()
        }));
    }
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    let csv_err = |e: csv::Error| Error::Store(StoreError::unavailable(e));
    let mut header = vec![
        "respondent".to_owned(),
        "responded_at".into(),
        "cohort".into(),
    ];
    header.extend(c.questions.iter().map(|q| q.id.clone()));
    w.write_record(&header).map_err(csv_err)?;
    for b in 0..RESPONSE_BUCKETS {
        let mut start = None;
        loop {
            let page = app
                .table
                .query(
                    &Query::new(Index::Primary, responses_pk(id, b))
                        .limit(1000)
                        .start_after(start.take()),
                )
                .await?;
            for i in &page.items {
                let text = |a: &str| {
                    i.get(a)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                let mut row = vec![text("respondent"), text("responded_at"), text("cohort")];
                let answers = i.get("answers").and_then(Value::as_object);
                row.extend(
                    c.questions
                        .iter()
                        .map(|q| csv_cell(answers.and_then(|a| a.get(&q.id)))),
                );
                w.write_record(&row).map_err(csv_err)?;
            }
            match page.last_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Store(StoreError::unavailable(e.into_error())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

// ------------------------------------------------------------------- GDPR

/// The member's responses with their surveys (GDPR export and erasure):
/// a response is keyed by the member's pseudonym in each survey, so they
/// are found through the surveys' list (gsi1 `SURVEYS`, tens: one Query
/// per 100) and one BatchGetItem of the member's response keys per 100
/// surveys; nothing is scanned.
async fn responses_of<T: Table>(
    app: &App<T>,
    member: &str,
    consistent: bool,
) -> Result<Vec<(SurveyConfig, Item)>> {
    let surveys =
        crate::store::all_pages(&app.table, Query::new(Index::Gsi1, LIST_PK).limit(100)).await?;
    let secret = app.settings().link_secret.clone();
    let mut configs = std::collections::HashMap::new();
    for i in &surveys {
        if let Ok(c) = config_of(i) {
            configs.insert(c.id.clone(), c);
        }
    }
    let keys: Vec<Key> = configs
        .keys()
        .map(|id| response_key(id, &pseudonym(&secret, id, member)))
        .collect();
    let mut out = Vec::new();
    for r in crate::store::get_all(&app.table, &keys, consistent).await? {
        if r.get("member_id").and_then(Value::as_str) != Some(member) {
            continue;
        }
        let id = r
            .get("survey_id")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(c) = configs.remove(id) {
            out.push((c, r));
        }
    }
    out.sort_by(|a, b| a.0.opens_at.cmp(&b.0.opens_at));
    Ok(out)
}

/// The member's responses as `GET /members/me/export` lists them: the
/// survey, when, the cohort recorded with it, and the answers given.
pub async fn export_of<T: Table>(app: &App<T>, member: &str) -> Result<Vec<Value>> {
    Ok(responses_of(app, member, false)
        .await?
        .into_iter()
        .map(|(c, r)| {
            json!({"survey_id": c.id, "title": c.title,
                   "responded_at": r.get("responded_at"), "cohort": r.get("cohort"),
                   "answers": r.get("answers").cloned().unwrap_or_else(|| json!({}))})
        })
        .collect())
}

/// Erasure (`gdpr::erase`, phase 2): the member's response items are
/// deleted, so the CSV export has no row of theirs any more; the results'
/// counters keep the response (anonymous aggregates, already folded from
/// the event's tally, which holds no text). No other item names the
/// respondent (the uniqueness needs no member-keyed item).
pub async fn erase_writes<T: Table>(app: &App<T>, member: &str) -> Result<Vec<Write>> {
    Ok(responses_of(app, member, true)
        .await?
        .into_iter()
        .filter_map(|(_, r)| Key::of(&r))
        .map(|key| Write::Delete { key, cond: None })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(kind: AnswerType) -> SurveyQuestion {
        SurveyQuestion {
            id: "q".into(),
            kind,
            label: "Q".into(),
            options: if matches!(kind, AnswerType::Single | AnswerType::Multiple) {
                vec!["a".into(), "b".into(), "c".into()]
            } else {
                vec![]
            },
            required: true,
            min_choices: None,
            max_choices: None,
            min: None,
            max: None,
            max_length: None,
        }
    }

    #[test]
    fn a_tally_counts_options_and_scales() {
        let qs = vec![
            SurveyQuestion {
                id: "m".into(),
                ..q(AnswerType::Multiple)
            },
            SurveyQuestion {
                id: "s".into(),
                ..q(AnswerType::Scale)
            },
            SurveyQuestion {
                id: "t".into(),
                ..q(AnswerType::Text)
            },
        ];
        let a = json!({"m": ["a", "c"], "s": 4})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let t = tally(&qs, &a);
        assert_eq!(
            Value::Object(t),
            json!({"n": 1, "a#m": 1, "o#m#0": 1, "o#m#2": 1, "a#s": 1, "s#s": 4, "v#s#4": 1})
        );
    }

    #[test]
    fn pseudonyms_are_keyed_and_per_survey() {
        let a = pseudonym("k1", "s1", "alice");
        assert_eq!(a.len(), 32);
        assert_eq!(a, pseudonym("k1", "s1", "alice"));
        assert_ne!(a, pseudonym("k2", "s1", "alice"));
        assert_ne!(a, pseudonym("k1", "s2", "alice"));
        assert!(!a.contains("alice"));
    }
}
