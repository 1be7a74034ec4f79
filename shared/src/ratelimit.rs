//! Anti-abuse rules from `infra/campaigns/trust.toml`: per-member rate
//! limits on writes (`[rate_limits]`) and sign-up rules (`[signup]`). Other
//! sections of that file belong to other modules and are ignored here.
//!
//! A rate limit is a fixed-window counter per member, action and window:
//! `RATE#{member}#{action} / {window start, epoch seconds}` holding `count`
//! (and a TTL just past the window's end), incremented with the condition
//! `count < max` in one conditional write. However many requests race, at
//! most `max` increments succeed per window; the others get
//! `Error::RateLimited` (429 with `Retry-After` = seconds to the window's
//! end). `COMMUNITY_RATE_LIMITS=off` disables every limit (load tests).
//! Votes are checked without a counter ([`check_votes`]: the member's own
//! recent vote records); withdrawals take the counter.

use crate::app::App;
use crate::error::{Error, Result};
use crate::store::{Cond, Index, Key, Query, StoreError, Table, Update, Write};
use serde::Deserialize;
use std::collections::BTreeMap;

/// A write that is rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Idea,
    Comment,
    Vote,
    Report,
    Entry,
}

impl Action {
    pub const ALL: [Action; 5] = [
        Action::Idea,
        Action::Comment,
        Action::Vote,
        Action::Report,
        Action::Entry,
    ];
    /// Its name in `[rate_limits]` and in the counter's key.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Idea => "ideas",
            Action::Comment => "comments",
            Action::Vote => "votes",
            Action::Report => "reports",
            Action::Entry => "entries",
        }
    }
}

/// At most `max` writes per member per window of `per_secs` seconds.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub max: i64,
    pub per_secs: i64,
}

/// The `[rate_limits]` section. An action without a limit is unlimited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimits {
    pub enabled: bool,
    pub limits: BTreeMap<&'static str, Limit>,
}

impl RateLimits {
    pub fn limit(&self, a: Action) -> Option<Limit> {
        if !self.enabled {
            return None;
        }
        self.limits.get(a.as_str()).copied()
    }
}

/// The `[signup]` section.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SignupRules {
    /// Refuse addresses of disposable-mail providers (list from the
    /// `mailchecker` crate).
    #[serde(default = "yes")]
    pub refuse_disposable_emails: bool,
    /// Domains accepted even if the list calls them disposable.
    #[serde(default)]
    pub allowed_email_domains: Vec<String>,
}

fn yes() -> bool {
    true
}

impl Default for SignupRules {
    fn default() -> Self {
        SignupRules {
            refuse_disposable_emails: true,
            allowed_email_domains: Vec::new(),
        }
    }
}

/// What this module reads from `trust.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbuseConfig {
    pub rate_limits: RateLimits,
    pub signup: SignupRules,
}

impl Default for AbuseConfig {
    fn default() -> Self {
        AbuseConfig {
            rate_limits: RateLimits {
                enabled: true,
                limits: BTreeMap::new(),
            },
            signup: SignupRules::default(),
        }
    }
}

fn file_err(file: &str, message: String) -> crate::config::ConfigError {
    crate::config::ConfigError::File {
        file: file.to_owned(),
        message,
    }
}

impl AbuseConfig {
    /// Parses the `[rate_limits]` and `[signup]` sections of `text`; errors
    /// name `file` and the field.
    pub fn parse(text: &str, file: &str) -> std::result::Result<Self, crate::config::ConfigError> {
        let doc: toml::Table = toml::from_str(text).map_err(|e| file_err(file, e.to_string()))?;
        let mut out = AbuseConfig::default();
        if let Some(v) = doc.get("rate_limits") {
            let t = v
                .as_table()
                .ok_or_else(|| file_err(file, "rate_limits: must be a table".into()))?;
            for (name, lv) in t {
                let Some(action) = Action::ALL.into_iter().find(|a| a.as_str() == name) else {
                    let known: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                    return Err(file_err(
                        file,
                        format!(
                            "rate_limits.{name}: unknown action (known: {})",
                            known.join(", ")
                        ),
                    ));
                };
                let l: Limit = lv
                    .clone()
                    .try_into()
                    .map_err(|e| file_err(file, format!("rate_limits.{name}: {e}")))?;
                if l.max < 1 {
                    return Err(file_err(
                        file,
                        format!("rate_limits.{name}.max: must be at least 1"),
                    ));
                }
                if l.per_secs < 1 {
                    return Err(file_err(
                        file,
                        format!("rate_limits.{name}.per_secs: must be at least 1"),
                    ));
                }
                out.rate_limits.limits.insert(action.as_str(), l);
            }
        }
        if let Some(v) = doc.get("signup") {
            out.signup = v
                .clone()
                .try_into()
                .map_err(|e| file_err(file, format!("signup: {e}")))?;
            for (i, d) in out.signup.allowed_email_domains.iter_mut().enumerate() {
                *d = d.trim().to_ascii_lowercase();
                if !d.contains('.') {
                    return Err(file_err(
                        file,
                        format!("signup.allowed_email_domains[{i}]: {d:?} is not a domain"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// The counter's key for `member`, `action` and the window starting at `start`.
pub fn key(member: &str, action: Action, window_start: i64) -> Key {
    Key::new(
        format!("RATE#{member}#{}", action.as_str()),
        window_start.to_string(),
    )
}

/// Counts one `action` by `member`; `Error::RateLimited` once the window's
/// limit is reached. Call it right before the write it guards.
pub async fn check<T: Table>(app: &App<T>, member: &str, action: Action) -> Result<()> {
    let Some(limit) = app.settings().abuse.rate_limits.limit(action) else {
        return Ok(());
    };
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let now = now_ms / 1000;
    let start = now - now.rem_euclid(limit.per_secs);
    let end = start + limit.per_secs;
    let w = Write::update(
        key(member, action, start),
        Update::default()
            .add("count", 1)
            .set("ttl", end + 60)
            .set("window_end", end),
    )
    .when(Cond::NotExists.or(Cond::LessThan("count".into(), limit.max)));
    match app.table.transact(vec![w]).await {
        Ok(()) => Ok(()),
        Err(StoreError::ConditionFailed { .. }) => {
            let left_ms = end * 1000 - now_ms;
            let retry_after = u64::try_from((left_ms + 999) / 1000).unwrap_or(1).max(1);
            Err(Error::RateLimited { retry_after })
        }
        Err(StoreError::Conflict | StoreError::Throttled) => Err(Error::Busy),
        Err(e) => Err(e.into()),
    }
}

/// The votes limit, without a counter: a vote is its own record, so the
/// member's votes of the last `per_secs` seconds are read from gsi3
/// (`MEMBER#{id}` / `VOTE#{created_at}#…`, at most `max` of them) instead of
/// writing a window counter on every vote. A sliding window; eventually
/// consistent, so a burst of concurrent votes may pass the limit by the few
/// made within the same second. Withdrawn votes no longer count.
pub async fn check_votes<T: Table>(app: &App<T>, member: &str) -> Result<()> {
    let Some(limit) = app.settings().abuse.rate_limits.limit(Action::Vote) else {
        return Ok(());
    };
    let now = time::OffsetDateTime::now_utc();
    let since = crate::domain::format_ts(now - time::Duration::seconds(limit.per_secs));
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi3, crate::members::pk(member))
                .sk(crate::votes::member_votes_since(&since))
                .limit(u32::try_from(limit.max).unwrap_or(u32::MAX)),
        )
        .await?;
    if (page.items.len() as i64) < limit.max {
        return Ok(());
    }
    // The oldest vote in the window leaves it first.
    let oldest = page
        .items
        .first()
        .and_then(|i| i.get("created_at"))
        .and_then(serde_json::Value::as_str)
        .and_then(crate::domain::parse_ts)
        .unwrap_or(now);
    let left = (oldest + time::Duration::seconds(limit.per_secs) - now).whole_seconds();
    Err(Error::RateLimited {
        retry_after: u64::try_from(left).unwrap_or(1).max(1),
    })
}

/// `COMMUNITY_RATE_LIMITS`: `on` (default) or `off`.
pub fn parse_switch(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Some(true),
        "off" | "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// Whether `email`'s domain is a disposable-mail provider (and not allowed
/// by `[signup] allowed_email_domains`).
pub fn is_disposable(rules: &SignupRules, email: &str) -> bool {
    if !rules.refuse_disposable_emails {
        return false;
    }
    let domain = email
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
        .unwrap_or_default();
    if rules
        .allowed_email_domains
        .iter()
        .any(|d| *d == domain || domain.ends_with(&format!(".{d}")))
    {
        return false;
    }
    // The domain and each parent domain, against the crate's list (the
    // address's syntax was checked by `domain::Email` already).
    let list = disposable_list();
    let mut d = domain.as_str();
    loop {
        if list.contains(d) {
            return true;
        }
        match d.split_once('.') {
            Some((_, parent)) if parent.contains('.') => d = parent,
            _ => return false,
        }
    }
}

fn disposable_list() -> &'static std::collections::HashSet<&'static str> {
    static LIST: std::sync::OnceLock<std::collections::HashSet<&'static str>> =
        std::sync::OnceLock::new();
    LIST.get_or_init(|| mailchecker::blacklist().into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_its_sections_and_ignores_the_others() {
        let text = r#"
[moderation]
auto_hide_after_reports = 3

[rate_limits]
ideas = { max = 5, per_secs = 3600 }
votes = { max = 200, per_secs = 3600 }

[signup]
refuse_disposable_emails = true
allowed_email_domains = ["Example.ORG"]
"#;
        let c = AbuseConfig::parse(text, "trust.toml").expect("valid");
        assert_eq!(
            c.rate_limits.limit(Action::Idea),
            Some(Limit {
                max: 5,
                per_secs: 3600
            })
        );
        assert_eq!(c.rate_limits.limit(Action::Comment), None);
        assert_eq!(c.signup.allowed_email_domains, vec!["example.org"]);
    }

    #[test]
    fn bad_values_name_file_and_field() {
        let e = AbuseConfig::parse(
            "[rate_limits]\nideas = { max = 0, per_secs = 60 }",
            "t.toml",
        )
        .expect_err("max");
        assert!(
            e.to_string().contains("t.toml") && e.to_string().contains("rate_limits.ideas.max")
        );
        let e = AbuseConfig::parse(
            "[rate_limits]\nlikes = { max = 1, per_secs = 60 }",
            "t.toml",
        )
        .expect_err("unknown");
        assert!(e.to_string().contains("rate_limits.likes"), "{e}");
        let e = AbuseConfig::parse("[rate_limits]\nvotes = { max = 1 }", "t.toml")
            .expect_err("missing");
        assert!(e.to_string().contains("rate_limits.votes"), "{e}");
        let e = AbuseConfig::parse("[signup]\nrefuse = true", "t.toml").expect_err("unknown");
        assert!(e.to_string().contains("signup"), "{e}");
    }

    #[test]
    fn the_builtin_file_is_valid() {
        let c = AbuseConfig::parse(crate::config::BUILTIN_TRUST, "trust.toml").expect("valid");
        for a in Action::ALL {
            assert!(c.rate_limits.limit(a).is_some(), "{a:?} has a limit");
        }
    }

    #[test]
    fn disposable_domains_come_from_the_list() {
        let r = SignupRules::default();
        assert!(is_disposable(&r, "someone@mailinator.com"));
        assert!(is_disposable(&r, "someone@yopmail.com"));
        assert!(!is_disposable(&r, "marie@example.fr"));
        assert!(!is_disposable(&r, "marie@orange.fr"));
        assert!(is_disposable(&r, "someone@sub.mailinator.com"));
        let allow = SignupRules {
            refuse_disposable_emails: true,
            allowed_email_domains: vec!["yopmail.com".into()],
        };
        assert!(!is_disposable(&allow, "someone@yopmail.com"));
        let off = SignupRules {
            refuse_disposable_emails: false,
            allowed_email_domains: vec![],
        };
        assert!(!is_disposable(&off, "someone@mailinator.com"));
    }
}
