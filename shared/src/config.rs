//! Settings: the campaign file (`infra/campaigns/community.toml`, compiled in
//! as the default) overridden by environment variables.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The campaign file shipped with the code; a deployed function uses it
/// unless `COMMUNITY_CAMPAIGNS_DIR` points elsewhere.
pub const BUILTIN_CAMPAIGN: &str = include_str!("../../infra/campaigns/community.toml");
pub const CAMPAIGN_FILE: &str = "community.toml";
pub const BUILTIN_POINTS: &str = include_str!("../../infra/campaigns/points.toml");
pub const POINTS_FILE: &str = "points.toml";
pub const BUILTIN_TRUST: &str = include_str!("../../infra/campaigns/trust.toml");
pub const TRUST_FILE: &str = "trust.toml";

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
pub const POINT_RULES: [&str; 8] = [
    "member_signed_up",
    "idea_posted",
    "vote_cast",
    "idea_reached_threshold",
    "idea_accepted",
    "contest_entry",
    "review",
    "comment_posted",
];

impl PointsConfig {
    pub fn parse(text: &str, file: &str) -> Result<PointsConfig, ConfigError> {
        let err = |message: String| ConfigError::File {
            file: file.to_owned(),
            message,
        };
        let c: PointsConfig = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if c.conversion.points_per_euro < 1 {
            return Err(err("conversion.points_per_euro: must be at least 1".into()));
        }
        if c.conversion.minimum_redemption < 1 {
            return Err(err(
                "conversion.minimum_redemption: must be at least 1".into()
            ));
        }
        for (name, r) in &c.rules {
            if !POINT_RULES.contains(&name.as_str()) {
                return Err(err(format!(
                    "rules.{name}: unknown rule (known: {})",
                    POINT_RULES.join(", ")
                )));
            }
            if r.points < 0 {
                return Err(err(format!("rules.{name}.points: must not be negative")));
            }
            if r.daily_cap.is_some_and(|c| c < 1) {
                return Err(err(format!("rules.{name}.daily_cap: must be at least 1")));
            }
        }
        Ok(c)
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Launch {
    invite_only: bool,
    terms_version: String,
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
    pub vote_threshold: u64,
    pub themes: Vec<Theme>,
    /// Counter shards per idea (see docs/architecture.md, "Counting votes").
    pub vote_shards: u32,
    pub points: PointsConfig,
    /// Where the committee is told of ideas that reached the threshold.
    pub committee_email: String,
    /// The public base URL of the API (tracked links, unsubscribe links).
    pub public_url: String,
    /// Signs tracked-link and unsubscribe tokens.
    pub link_secret: String,
    /// The sender of community mails.
    pub mail_from: String,
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
        let err = |message: String| ConfigError::File {
            file: file.to_owned(),
            message,
        };
        let f: CampaignFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if f.ideas.vote_threshold == 0 {
            return Err(err("ideas.vote_threshold: must be at least 1".into()));
        }
        if f.launch.terms_version.trim().is_empty() {
            return Err(err("launch.terms_version: must not be empty".into()));
        }
        if f.ideas.themes.is_empty() {
            return Err(err("ideas.themes: at least one theme".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in f.ideas.themes.iter().enumerate() {
            let ok = !t.id.is_empty()
                && t.id.len() <= 32
                && t.id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !ok {
                return Err(err(format!(
                    "ideas.themes[{i}].id: {:?} must be 1-32 of a-z, 0-9 and '-'",
                    t.id
                )));
            }
            if !seen.insert(t.id.clone()) {
                return Err(err(format!(
                    "ideas.themes[{i}].id: duplicate id {:?}",
                    t.id
                )));
            }
            if t.label.trim().is_empty() {
                return Err(err(format!("ideas.themes[{i}].label: must not be empty")));
            }
        }
        Ok(Settings {
            invite_only: f.launch.invite_only,
            terms_version: f.launch.terms_version,
            vote_threshold: f.ideas.vote_threshold,
            themes: f.ideas.themes,
            vote_shards: 16,
            points: PointsConfig::parse(BUILTIN_POINTS, "infra/campaigns/points.toml")?,
            committee_email: "comite-idees@example.fr".into(),
            public_url: "http://127.0.0.1:3000".into(),
            link_secret: "local-link-secret".into(),
            mail_from: "La communauté <communaute@example.fr>".into(),
            moderation: ModerationConfig::parse(BUILTIN_TRUST, "infra/campaigns/trust.toml")?,
        })
    }

    /// Loads the campaign from `dir` (or the built-in copy), then applies
    /// environment overrides.
    pub fn load(dir: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut s = match dir {
            Some(d) => {
                let path: PathBuf = d.join(CAMPAIGN_FILE);
                let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::File {
                    file: path.display().to_string(),
                    message: e.to_string(),
                })?;
                let mut s = Settings::from_campaign(&text, &path.display().to_string())?;
                let ppath: PathBuf = d.join(POINTS_FILE);
                if ppath.exists() {
                    let text = std::fs::read_to_string(&ppath).map_err(|e| ConfigError::File {
                        file: ppath.display().to_string(),
                        message: e.to_string(),
                    })?;
                    s.points = PointsConfig::parse(&text, &ppath.display().to_string())?;
                }
                let tpath: PathBuf = d.join(TRUST_FILE);
                if tpath.exists() {
                    let text = std::fs::read_to_string(&tpath).map_err(|e| ConfigError::File {
                        file: tpath.display().to_string(),
                        message: e.to_string(),
                    })?;
                    s.moderation = ModerationConfig::parse(&text, &tpath.display().to_string())?;
                }
                s
            }
            None => Settings::from_campaign(BUILTIN_CAMPAIGN, "infra/campaigns/community.toml")?,
        };
        s.apply_env(|k| std::env::var(k).ok())?;
        Ok(s)
    }

    /// The campaign directory named by `COMMUNITY_CAMPAIGNS_DIR`, if any.
    pub fn campaigns_dir_from_env() -> Option<PathBuf> {
        std::env::var_os("COMMUNITY_CAMPAIGNS_DIR").map(PathBuf::from)
    }

    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = get("COMMUNITY_INVITE_ONLY") {
            self.invite_only = match v.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => {
                    return Err(ConfigError::Env {
                        var: "COMMUNITY_INVITE_ONLY",
                        message: format!("{other:?} is not true or false"),
                    })
                }
            };
        }
        if let Some(v) = get("COMMUNITY_VOTE_THRESHOLD") {
            self.vote_threshold =
                v.trim()
                    .parse()
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| ConfigError::Env {
                        var: "COMMUNITY_VOTE_THRESHOLD",
                        message: format!("{v:?} is not a whole number >= 1"),
                    })?;
        }
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
        if let Some(v) = get("COMMUNITY_VOTE_SHARDS") {
            self.vote_shards = v
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=64).contains(n))
                .ok_or_else(|| ConfigError::Env {
                    var: "COMMUNITY_VOTE_SHARDS",
                    message: format!("{v:?} is not a whole number from 1 to 64"),
                })?;
        }
        Ok(())
    }

    pub fn theme(&self, id: &str) -> Option<&Theme> {
        self.themes.iter().find(|t| t.id == id)
    }
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
    fn env_overrides_and_rejects_nonsense() {
        let mut s = Settings::from_campaign(BUILTIN_CAMPAIGN, "builtin").expect("valid");
        s.apply_env(|k| match k {
            "COMMUNITY_INVITE_ONLY" => Some("true".into()),
            "COMMUNITY_VOTE_THRESHOLD" => Some("5".into()),
            _ => None,
        })
        .expect("valid env");
        assert!(s.invite_only);
        assert_eq!(s.vote_threshold, 5);
        let e = s
            .apply_env(|k| (k == "COMMUNITY_VOTE_THRESHOLD").then(|| "lots".into()))
            .expect_err("rejected");
        assert!(e.to_string().contains("COMMUNITY_VOTE_THRESHOLD"));
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
