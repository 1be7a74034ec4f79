//! Contests and product tests as config: one TOML file per campaign under
//! `infra/campaigns/contests/` and `infra/campaigns/product-tests/`,
//! validated (every error names the file and the field) and applied to the
//! table, where the functions read them. Applying keeps a contest's secret
//! draw seed: it is created once, and only its SHA-256 is ever published
//! before the draw.

use crate::domain::parse_ts;
use crate::store::{Item, Key, StoreError, Table, Update, Write};
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
    pub kind: ContestKind,
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
    pub brand: String,
    pub slots: u32,
    pub applications_open_at: String,
    pub applications_close_at: String,
    pub reviews_open_at: String,
    pub reviews_close_at: String,
    pub reviews_for_label: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Campaigns {
    pub contests: Vec<ContestConfig>,
    pub product_tests: Vec<ProductTestConfig>,
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
        let o = parse_ts(&self.opens_at);
        let c = parse_ts(&self.closes_at);
        if o.is_none() {
            e(
                "opens_at",
                format!("{:?} is not an RFC 3339 date-time", self.opens_at),
            );
        }
        if c.is_none() {
            e(
                "closes_at",
                format!("{:?} is not an RFC 3339 date-time", self.closes_at),
            );
        }
        if let (Some(o), Some(c)) = (o, c) {
            if c <= o {
                e("closes_at", "must be after opens_at".into());
            }
        }
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
        if self.slots == 0 {
            e("slots", "must be at least 1".into());
        }
        if self.reviews_for_label == 0 {
            e("reviews_for_label", "must be at least 1".into());
        }
        let times: Vec<(&str, Option<time::OffsetDateTime>)> = [
            ("applications_open_at", &self.applications_open_at),
            ("applications_close_at", &self.applications_close_at),
            ("reviews_open_at", &self.reviews_open_at),
            ("reviews_close_at", &self.reviews_close_at),
        ]
        .into_iter()
        .map(|(n, v)| (n, parse_ts(v)))
        .collect();
        for (n, t) in &times {
            if t.is_none() {
                e(n, "is not an RFC 3339 date-time".into());
            }
        }
        for w in times.windows(2) {
            if let ((_, Some(a)), (bn, Some(b))) = (&w[0], &w[1]) {
                if b < a {
                    e(bn, format!("must not be before {}", w[0].0));
                }
            }
        }
        if let (Some(a), Some(b)) = (times[0].1, times[1].1) {
            if b <= a {
                e(
                    "applications_close_at",
                    "must be after applications_open_at".into(),
                );
            }
        }
        errs
    }
}

/// Parses a campaign file; a type or unknown-field error names its field path.
fn parse_file<C: serde::de::DeserializeOwned>(text: &str) -> Result<C, (String, String)> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| ("(file)".to_owned(), e.message().to_owned()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().message().to_owned();
        (
            if path == "." {
                "(file)".to_owned()
            } else {
                path
            },
            msg,
        )
    })
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
    fn id(&self) -> &str;
    fn validate(&self, file: &str) -> Vec<CampaignError>;
}

impl CampaignFile for ContestConfig {
    const KIND: &'static str = "contest";
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, file: &str) -> Vec<CampaignError> {
        ContestConfig::validate(self, file)
    }
}

impl CampaignFile for ProductTestConfig {
    const KIND: &'static str = "product test";
    fn id(&self) -> &str {
        &self.id
    }
    fn validate(&self, file: &str) -> Vec<CampaignError> {
        ProductTestConfig::validate(self, file)
    }
}

/// Parses and validates every file of one kind in `dir`, refusing ids
/// already seen; errors go to `errs`.
fn load_kind<C: CampaignFile>(dir: &Path, errs: &mut Vec<CampaignError>) -> Vec<C> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for path in read_dir_sorted(dir) {
        let file = path.display().to_string();
        match std::fs::read_to_string(&path)
            .map_err(|e| ("(file)".to_owned(), e.to_string()))
            .and_then(|t| parse_file::<C>(&t))
        {
            Ok(c) => {
                errs.extend(c.validate(&file));
                if let Some(prev) = seen.insert(c.id().to_owned(), file.clone()) {
                    errs.push(CampaignError {
                        file: file.clone(),
                        field: "id".into(),
                        message: format!("duplicate {} id {:?} (also in {prev})", C::KIND, c.id()),
                    });
                }
                out.push(c);
            }
            Err((field, m)) => errs.push(CampaignError {
                file,
                field,
                message: m.trim().replace('\n', " "),
            }),
        }
    }
    out
}

/// Parses and validates every campaign file under `dir`; all errors at once.
pub fn load_dir(dir: &Path) -> Result<Campaigns, Vec<CampaignError>> {
    let mut errs = Vec::new();
    let out = Campaigns {
        contests: load_kind(&dir.join("contests"), &mut errs),
        product_tests: load_kind(&dir.join("product-tests"), &mut errs),
    };
    if errs.is_empty() {
        Ok(out)
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
    Key::new(format!("PTEST#{id}"), "PTEST")
}

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

/// Upserts every campaign into the table (config fields only: entries, draws
/// and seeds are kept). Returns the ids applied.
pub async fn apply<T: Table>(table: &T, c: &Campaigns) -> Result<Vec<String>, StoreError> {
    let mut done = Vec::new();
    for contest in &c.contests {
        let seed_hash = ensure_seed(table, "contest", &contest.id).await?;
        let mut u = config_update(json!({"config": contest, "seed_hash": seed_hash}));
        u.set.insert("gsi1pk".into(), json!("CONTESTS"));
        u.set.insert(
            "gsi1sk".into(),
            json!(format!("{}#{}", contest.opens_at, contest.id)),
        );
        table
            .transact(vec![Write::update(contest_key(&contest.id), u)])
            .await?;
        done.push(format!("contest {}", contest.id));
    }
    for t in &c.product_tests {
        let seed_hash = ensure_seed(table, "product-test", &t.id).await?;
        let mut u = config_update(json!({"config": t, "seed_hash": seed_hash}));
        u.set.insert("gsi1pk".into(), json!("PRODUCT_TESTS"));
        u.set.insert(
            "gsi1sk".into(),
            json!(format!("{}#{}", t.applications_open_at, t.id)),
        );
        u.set
            .insert("gsi2pk".into(), json!(format!("PRODUCT#{}", t.ean)));
        u.set
            .insert("gsi2sk".into(), json!(format!("PTEST#{}", t.id)));
        table
            .transact(vec![Write::update(product_test_key(&t.id), u)])
            .await?;
        done.push(format!("product test {}", t.id));
    }
    Ok(done)
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
