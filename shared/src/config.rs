//! Settings: the campaign file (`infra/campaigns/community.toml`, compiled in
//! as the default) overridden by environment variables.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The campaign file shipped with the code; a deployed function uses it
/// unless `COMMUNITY_CAMPAIGNS_DIR` points elsewhere.
pub const BUILTIN_CAMPAIGN: &str = include_str!("../../infra/campaigns/community.toml");
pub const CAMPAIGN_FILE: &str = "community.toml";
pub const BUILTIN_POINTS: &str = include_str!("../../infra/campaigns/points.toml");
pub const POINTS_FILE: &str = "points.toml";
pub const BUILTIN_TRUST: &str = include_str!("../../infra/campaigns/trust.toml");
pub const TRUST_FILE: &str = "trust.toml";

/// The three settings files of a campaign directory, as text: what
/// `campaigns apply` writes to the table and every function reads back at
/// run time (`crate::live`). A missing `points.toml` or `trust.toml` is the
/// built-in copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignFiles {
    pub community: String,
    pub points: String,
    pub trust: String,
}

impl CampaignFiles {
    /// The files compiled into the code (`infra/campaigns/`).
    pub fn builtin() -> CampaignFiles {
        CampaignFiles {
            community: BUILTIN_CAMPAIGN.to_owned(),
            points: BUILTIN_POINTS.to_owned(),
            trust: BUILTIN_TRUST.to_owned(),
        }
    }

    /// Reads `community.toml` (required), `points.toml` and `trust.toml`
    /// (built-in when absent) from a campaign directory.
    pub fn read_dir(dir: &Path) -> Result<CampaignFiles, ConfigError> {
        let read = |name: &str, builtin: Option<&str>| -> Result<String, ConfigError> {
            let path: PathBuf = dir.join(name);
            match (std::fs::read_to_string(&path), builtin) {
                (Ok(t), _) => Ok(t),
                (Err(e), Some(b)) if e.kind() == std::io::ErrorKind::NotFound => Ok(b.to_owned()),
                (Err(e), _) => Err(ConfigError::File {
                    file: path.display().to_string(),
                    message: e.to_string(),
                }),
            }
        };
        Ok(CampaignFiles {
            community: read(CAMPAIGN_FILE, None)?,
            points: read(POINTS_FILE, Some(BUILTIN_POINTS))?,
            trust: read(TRUST_FILE, Some(BUILTIN_TRUST))?,
        })
    }

    /// The settings these files give (deployment fields at their local
    /// defaults: see [`Settings::keep_deployment_of`]); errors name the
    /// file (under `label`, a directory or "the table") and the field.
    pub fn settings(&self, label: &str) -> Result<Settings, ConfigError> {
        let name = |f: &str| format!("{}/{f}", label.trim_end_matches('/'));
        let mut s = Settings::check_campaign(&self.community)
            .map_err(|p| first_problem(&name(CAMPAIGN_FILE), p))?;
        s.points = PointsConfig::parse(&self.points, &name(POINTS_FILE))?;
        s.abuse = crate::ratelimit::AbuseConfig::parse(&self.trust, &name(TRUST_FILE))?;
        s.moderation = ModerationConfig::parse(&self.trust, &name(TRUST_FILE))?;
        Ok(s)
    }
}

/// The `[moderation]` section of `trust.toml` (other sections belong to
/// other modules and are ignored here).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModerationConfig {
    /// Distinct reports that hide content until a moderator decides.
    pub auto_hide_reports: i64,
}

impl ModerationConfig {
    pub fn parse(text: &str, file: &str) -> Result<ModerationConfig, ConfigError> {
        let err = |message: String| ConfigError::File {
            file: file.to_owned(),
            message,
        };
        let doc: toml::Table = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        let Some(section) = doc.get("moderation") else {
            return Err(err("moderation: the [moderation] section is missing".into()));
        };
        let c = ModerationConfig::deserialize(section.clone())
            .map_err(|e| err(format!("moderation: {}", e.message())))?;
        if !(1..=1000).contains(&c.auto_hide_reports) {
            return Err(err(
                "moderation.auto_hide_reports: must be a whole number from 1 to 1000".into(),
            ));
        }
        Ok(c)
    }
}

/// Point rules and their conversion into euros.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointsConfig {
    pub conversion: Conversion,
    pub rules: std::collections::BTreeMap<String, PointRule>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Conversion {
    pub points_per_euro: i64,
    pub minimum_redemption: i64,
    /// How long the loyalty programme has to answer a redemption before it
    /// shows as overdue (insights, the `RedemptionsOverdue` alarm).
    #[serde(default = "default_answer_within_hours")]
    pub answer_within_hours: i64,
}

fn default_answer_within_hours() -> i64 {
    72
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PointRule {
    pub points: i64,
    #[serde(default)]
    pub daily_cap: Option<i64>,
    pub label: String,
}

/// The rules the code credits; a points file may not name others.
pub const POINT_RULES: [&str; 12] = [
    "member_signed_up",
    "idea_posted",
    "vote_cast",
    "idea_reached_threshold",
    "idea_accepted",
    "contest_entry",
    "review",
    "comment_posted",
    "challenge_proposal",
    "challenge_winner",
    // Events and round tables: attendance recorded by marketing.
    "event_attended",
    "survey_completed",
];

impl PointsConfig {
    pub fn parse(text: &str, file: &str) -> Result<PointsConfig, ConfigError> {
        PointsConfig::check(text).map_err(|p| first_problem(file, p))
    }

    /// Parses and checks a points file: every problem, each with its field.
    pub fn check(text: &str) -> Result<PointsConfig, Vec<Problem>> {
        let c: PointsConfig = parse_toml(text).map_err(|p| vec![p])?;
        let mut errs: Vec<Problem> = Vec::new();
        let mut e = |f: String, m: &str| errs.push((f, m.to_owned()));
        if c.conversion.points_per_euro < 1 {
            e("conversion.points_per_euro".into(), "must be at least 1");
        }
        if !(1..=24 * 30).contains(&c.conversion.answer_within_hours) {
            e(
                "conversion.answer_within_hours".into(),
                "must be between 1 and 720 (30 days)",
            );
        }
        if c.conversion.minimum_redemption < 1 {
            e("conversion.minimum_redemption".into(), "must be at least 1");
        }
        for (name, r) in &c.rules {
            if !POINT_RULES.contains(&name.as_str()) {
                errs.push((
                    format!("rules.{name}"),
                    format!("unknown rule (known: {})", POINT_RULES.join(", ")),
                ));
                continue;
            }
            let mut e = |f: &str, m: &str| errs.push((format!("rules.{name}.{f}"), m.to_owned()));
            if r.points < 0 {
                e("points", "must not be negative");
            }
            if r.daily_cap.is_some_and(|c| c < 1) {
                e("daily_cap", "must be at least 1");
            }
            if r.label.trim().is_empty() {
                e("label", "must not be empty");
            }
        }
        if errs.is_empty() {
            Ok(c)
        } else {
            Err(errs)
        }
    }

    pub fn rule(&self, name: &str) -> Option<&PointRule> {
        self.rules.get(name).filter(|r| r.points > 0)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Theme {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignFile {
    launch: Launch,
    ideas: IdeasCampaign,
    #[serde(default)]
    ambassadors: Option<crate::ambassadors::AmbassadorsFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Launch {
    invite_only: bool,
    terms_version: String,
    /// Where the terms of that version are published (`GET /community`);
    /// by default `{public_url}/cgu`.
    #[serde(default)]
    terms_url: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdeasCampaign {
    vote_threshold: u64,
    themes: Vec<Theme>,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub invite_only: bool,
    pub terms_version: String,
    /// The terms' address, when the campaign file gives one (else
    /// [`Settings::terms_url`] derives it from `public_url`).
    pub terms_url: Option<String>,
    pub vote_threshold: u64,
    pub themes: Vec<Theme>,
    pub points: PointsConfig,
    /// Where the committee is told of ideas that reached the threshold.
    pub committee_email: String,
    /// The public base URL of the API (tracked links, unsubscribe links).
    pub public_url: String,
    /// Signs tracked-link and unsubscribe tokens.
    pub link_secret: String,
    /// The sender of community mails.
    pub mail_from: String,
    /// Rate limits and sign-up rules (`trust.toml`, see `ratelimit`).
    pub abuse: crate::ratelimit::AbuseConfig,
    /// `[ambassadors]`: the engagement score and who is an ambassador.
    pub ambassadors: crate::ambassadors::AmbassadorsConfig,
    /// Reports and moderation (`trust.toml`, `[moderation]`).
    pub moderation: ModerationConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{var}: {message}")]
    Env { var: &'static str, message: String },
}

impl Settings {
    /// Parses a campaign file's text; `file` names it in errors.
    pub fn from_campaign(text: &str, file: &str) -> Result<Settings, ConfigError> {
        let mut s = Settings::check_campaign(text).map_err(|p| first_problem(file, p))?;
        s.points = PointsConfig::parse(BUILTIN_POINTS, "infra/campaigns/points.toml")?;
        Ok(s)
    }

    /// Parses and checks a campaign file: every problem, each with its field.
    /// The points are the built-in ones (see [`PointsConfig::check`]).
    pub fn check_campaign(text: &str) -> Result<Settings, Vec<Problem>> {
        let f: CampaignFile = parse_toml(text).map_err(|p| vec![p])?;
        let mut errs: Vec<Problem> = Vec::new();
        let mut e = |f: String, m: String| errs.push((f, m));
        if f.ideas.vote_threshold == 0 {
            e("ideas.vote_threshold".into(), "must be at least 1".into());
        }
        if f.launch.terms_version.trim().is_empty() {
            e("launch.terms_version".into(), "must not be empty".into());
        }
        if let Some(u) = &f.launch.terms_url {
            if !(u.starts_with("https://") || u.starts_with("http://"))
                || u.contains(char::is_whitespace)
            {
                e(
                    "launch.terms_url".into(),
                    format!("{u:?} must be an http(s) address"),
                );
            }
        }
        if f.ideas.themes.is_empty() {
            e("ideas.themes".into(), "at least one theme".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in f.ideas.themes.iter().enumerate() {
            let ok = !t.id.is_empty()
                && t.id.len() <= 32
                && t.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                e(
                    format!("ideas.themes[{i}].id"),
                    format!("{:?} must be 1-32 of a-z, 0-9 and '-'", t.id),
                );
            } else if !seen.insert(t.id.clone()) {
                e(
                    format!("ideas.themes[{i}].id"),
                    format!("duplicate id {:?}", t.id),
                );
            }
            if t.label.trim().is_empty() {
                e(
                    format!("ideas.themes[{i}].label"),
                    "must not be empty".into(),
                );
            }
        }
        let ambassadors = match crate::ambassadors::AmbassadorsConfig::from_file(f.ambassadors, "")
        {
            Ok(a) => a,
            Err(ConfigError::File { message, .. }) => {
                let (field, m) = message
                    .split_once(": ")
                    .unwrap_or(("ambassadors", message.as_str()));
                errs.push((field.to_owned(), m.to_owned()));
                crate::ambassadors::AmbassadorsConfig::default()
            }
            Err(other) => {
                errs.push(("ambassadors".to_owned(), other.to_string()));
                crate::ambassadors::AmbassadorsConfig::default()
            }
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        let points = PointsConfig::check(BUILTIN_POINTS).map_err(|mut p| {
            for (f, _) in p.iter_mut() {
                *f = format!("(built-in points.toml) {f}");
            }
            p
        })?;
        Ok(Settings {
            ambassadors,
            invite_only: f.launch.invite_only,
            terms_version: f.launch.terms_version,
            terms_url: f.launch.terms_url,
            vote_threshold: f.ideas.vote_threshold,
            themes: f.ideas.themes,
            points,
            committee_email: "comite-idees@example.fr".into(),
            public_url: "http://127.0.0.1:3000".into(),
            link_secret: "local-link-secret".into(),
            mail_from: "La communauté <communaute@example.fr>".into(),
            abuse: crate::ratelimit::AbuseConfig::parse(
                BUILTIN_TRUST,
                "infra/campaigns/trust.toml",
            )
            .map_err(|e| vec![("(built-in trust.toml)".to_owned(), e.to_string())])?,
            moderation: ModerationConfig::parse(BUILTIN_TRUST, "infra/campaigns/trust.toml")
                .map_err(|e| vec![("(built-in trust.toml)".to_owned(), e.to_string())])?,
        })
    }

    /// Where the current terms of use are published.
    pub fn terms_url(&self) -> String {
        self.terms_url
            .clone()
            .unwrap_or_else(|| format!("{}/cgu", self.public_url.trim_end_matches('/')))
    }

    /// Loads the campaign from `dir` (or the built-in copy), then applies
    /// the deployment's environment (`apply_env`).
    pub fn load(dir: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut s = match dir {
            Some(d) => CampaignFiles::read_dir(d)?.settings(&d.display().to_string())?,
            None => CampaignFiles::builtin().settings("infra/campaigns")?,
        };
        s.apply_env(|k| std::env::var(k).ok())?;
        Ok(s)
    }

    /// Takes the deployment's own settings from `d` (where mails link to,
    /// who signs links, the sender, the committee's address, whether rate
    /// limits are on): what no campaign file holds, so a campaign read
    /// from the table changes none of them.
    pub fn keep_deployment_of(&mut self, d: &Settings) {
        self.committee_email.clone_from(&d.committee_email);
        self.public_url.clone_from(&d.public_url);
        self.link_secret.clone_from(&d.link_secret);
        self.mail_from.clone_from(&d.mail_from);
        self.abuse.rate_limits.enabled = d.abuse.rate_limits.enabled;
    }

    /// The campaign directory named by `COMMUNITY_CAMPAIGNS_DIR`, if any.
    pub fn campaigns_dir_from_env() -> Option<PathBuf> {
        std::env::var_os("COMMUNITY_CAMPAIGNS_DIR").map(PathBuf::from)
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("COMMUNITY_COMMITTEE_EMAIL") {
            self.committee_email = v;
        }
        if let Some(v) = get("COMMUNITY_PUBLIC_URL") {
            self.public_url = v.trim_end_matches('/').to_owned();
        }
        if let Some(v) = get("COMMUNITY_LINK_SECRET") {
            self.link_secret = v;
        }
        if let Some(v) = get("COMMUNITY_MAIL_FROM") {
            self.mail_from = v;
        }
        if let Some(v) = get("COMMUNITY_RATE_LIMITS") {
            self.abuse.rate_limits.enabled =
                crate::ratelimit::parse_switch(&v).ok_or_else(|| ConfigError::Env {
                    var: "COMMUNITY_RATE_LIMITS",
                    message: format!("{v:?} is not on or off"),
                })?;
        }
        Ok(())
    }

    pub fn theme(&self, id: &str) -> Option<&Theme> {
        self.themes.iter().find(|t| t.id == id)
    }
}

/// A problem in a config file: the field (a dotted path such as
/// `ideas.themes[1].id`, or `line N` for a syntax error) and what is wrong.
pub type Problem = (String, String);

fn first_problem(file: &str, mut p: Vec<Problem>) -> ConfigError {
    let (field, message) = if p.is_empty() {
        ("(file)".to_owned(), "invalid".to_owned())
    } else {
        p.swap_remove(0)
    };
    ConfigError::File {
        file: file.to_owned(),
        message: format!("{field}: {message}"),
    }
}

/// Parses a TOML config file; an error names its field path: a missing
/// required field is `path.field: is required`, a wrong type or an unknown
/// field is named where it is, a syntax error by its line.
pub fn parse_toml<C: serde::de::DeserializeOwned>(text: &str) -> Result<C, Problem> {
    let line = |span: Option<std::ops::Range<usize>>| {
        span.map(|s| {
            let at = s.start.min(text.len());
            text.get(..at).map_or(0, |t| t.matches('\n').count()) + 1
        })
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        let field = line(e.span()).map_or_else(|| "(file)".to_owned(), |l| format!("line {l}"));
        (field, e.message().trim().replace('\n', " "))
    })?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let msg = e.inner().message().trim().replace('\n', " ");
        if let Some(name) = msg
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            let field = if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            };
            return (field, "is required".to_owned());
        }
        let field = if path.is_empty() {
            line(e.inner().span()).map_or_else(|| "(file)".to_owned(), |l| format!("line {l}"))
        } else {
            path
        };
        (field, msg)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_campaign_has_the_five_themes() {
        let s = Settings::from_campaign(BUILTIN_CAMPAIGN, "builtin").expect("valid");
        let ids: Vec<_> = s.themes.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(
            ids,
            ["eat-well", "children", "loyalty", "environment", "shopping"]
        );
        assert_eq!(s.vote_threshold, 10_000);
    }

    #[test]
    fn env_sets_the_deployment_and_rejects_nonsense() {
        let mut s = Settings::from_campaign(BUILTIN_CAMPAIGN, "builtin").expect("valid");
        s.apply_env(|k| match k {
            "COMMUNITY_PUBLIC_URL" => Some("https://communaute.example.fr/api/".into()),
            "COMMUNITY_RATE_LIMITS" => Some("off".into()),
            _ => None,
        })
        .expect("valid env");
        assert_eq!(s.public_url, "https://communaute.example.fr/api");
        assert!(!s.abuse.rate_limits.enabled);
        let e = s
            .apply_env(|k| (k == "COMMUNITY_RATE_LIMITS").then(|| "maybe".into()))
            .expect_err("rejected");
        assert!(e.to_string().contains("COMMUNITY_RATE_LIMITS"));
    }

    #[test]
    fn campaign_files_give_the_same_settings_as_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/campaigns");
        let files = CampaignFiles::read_dir(&dir).expect("read");
        assert_eq!(files, CampaignFiles::builtin());
        let s = files.settings("the table").expect("valid");
        assert_eq!(s.vote_threshold, 10_000);
        assert_eq!(s.moderation.auto_hide_reports, 3);
        let mut bad = files.clone();
        bad.points = bad
            .points
            .replace("points_per_euro = 100", "points_per_euro = 0");
        let e = bad.settings("the table").expect_err("bad points");
        assert!(e.to_string().contains("the table/points.toml"), "{e}");
        assert!(e.to_string().contains("conversion.points_per_euro"), "{e}");
    }

    #[test]
    fn points_rules_parse_and_bad_ones_name_the_field() {
        let p = PointsConfig::parse(BUILTIN_POINTS, "points.toml").expect("valid");
        assert_eq!(p.conversion.points_per_euro, 100);
        assert_eq!(p.rule("vote_cast").and_then(|r| r.daily_cap), Some(20));
        let bad = BUILTIN_POINTS.replace("[rules.vote_cast]", "[rules.vote_casted]");
        let e = PointsConfig::parse(&bad, "points.toml").expect_err("unknown rule");
        assert!(e.to_string().contains("rules.vote_casted"), "{e}");
        let bad = BUILTIN_POINTS.replace("daily_cap = 20", "daily_cap = 0");
        let e = PointsConfig::parse(&bad, "points.toml").expect_err("cap");
        assert!(e.to_string().contains("rules.vote_cast.daily_cap"), "{e}");
    }

    #[test]
    fn moderation_section_is_read_alone_and_checked() {
        let m = ModerationConfig::parse(BUILTIN_TRUST, "trust.toml").expect("valid");
        assert_eq!(m.auto_hide_reports, 3);
        // Other modules' sections are not this loader's business.
        let other = "[rate_limits]\nideas_per_hour = 5\n\n[moderation]\nauto_hide_reports = 4\n";
        assert_eq!(
            ModerationConfig::parse(other, "trust.toml")
                .map(|m| m.auto_hide_reports)
                .ok(),
            Some(4)
        );
        for (bad, field) in [
            (
                "[moderation]\nauto_hide_reports = 0\n",
                "moderation.auto_hide_reports",
            ),
            (
                "[moderation]\nauto_hide_reports = \"trois\"\n",
                "moderation",
            ),
            (
                "[moderation]\nauto_hide_reports = 3\nhide_after = 2\n",
                "hide_after",
            ),
            ("[rate_limits]\n", "moderation"),
        ] {
            let e = ModerationConfig::parse(bad, "x/trust.toml").expect_err(bad);
            let e = e.to_string();
            assert!(e.contains("x/trust.toml") && e.contains(field), "{e}");
        }
    }

    #[test]
    fn bad_files_name_the_field() {
        let bad = BUILTIN_CAMPAIGN.replace("id = \"children\"", "id = \"eat-well\"");
        let e = Settings::from_campaign(&bad, "x.toml").expect_err("duplicate");
        assert!(e.to_string().contains("x.toml") && e.to_string().contains("ideas.themes[1].id"));
        let bad = BUILTIN_CAMPAIGN.replace("vote_threshold = 10000", "vote_threshold = \"many\"");
        let e = Settings::from_campaign(&bad, "x.toml").expect_err("type");
        assert!(e.to_string().contains("vote_threshold"), "{e}");
    }
}
