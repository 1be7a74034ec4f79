//! Run-time settings. The campaign's settings files (`community.toml`,
//! `points.toml`, `trust.toml`) are applied to the table by
//! `campaigns apply`, and the launch mode by `launch public|soft`; every
//! function reads them back at run time, cached for [`TTL`], so marketing
//! changes a threshold, a point rule, a rate limit or the launch without a
//! redeploy.
//!
//! Keys: `CONFIG / CAMPAIGN` (`files`: the three texts, `digest`,
//! `applied_at`) and `CONFIG / LAUNCH` (`mode`: `soft|public`,
//! `changed_at`). One eventually consistent Query on `CONFIG` reads both
//! (~6 KB: 1 read unit) once per [`TTL`] per warm instance, and at each
//! cold start.
//!
//! What a function runs with ([`effective`]): the applied files when there
//! are any (else the files compiled in, `infra/campaigns/`), the launch
//! item's mode over the file's `invite_only`, the deployment's own settings
//! (public URL, link secret, sender, committee address: environment) kept,
//! and, on the local server only, [`Overrides`] from its environment.

use crate::config::{CampaignFiles, ConfigError, Settings};
use crate::store::{Index, Item, Key, Query, StoreError, Table, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub const PK: &str = "CONFIG";
/// How long a function keeps what it read before reading again.
pub const TTL: Duration = Duration::from_secs(30);

pub fn campaign_key() -> Key {
    Key::new(PK, "CAMPAIGN")
}

pub fn launch_key() -> Key {
    Key::new(PK, "LAUNCH")
}

/// `soft`: invited members only (sign-up needs an invite code, reads need a
/// member's token); `public`: open to all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LaunchMode {
    Soft,
    Public,
}

impl LaunchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LaunchMode::Soft => "soft",
            LaunchMode::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<LaunchMode> {
        match s {
            "soft" => Some(LaunchMode::Soft),
            "public" => Some(LaunchMode::Public),
            _ => None,
        }
    }

    pub fn of(s: &Settings) -> LaunchMode {
        if s.invite_only {
            LaunchMode::Soft
        } else {
            LaunchMode::Public
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchState {
    pub mode: LaunchMode,
    pub changed_at: String,
}

/// What the table holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Applied {
    pub files: Option<CampaignFiles>,
    /// The SHA-256 of the applied files (`digest`).
    pub digest: Option<String>,
    pub applied_at: Option<String>,
    pub launch: Option<LaunchState>,
}

/// The files' digest: equal files, equal digest.
pub fn digest(files: &CampaignFiles) -> String {
    let mut all = Vec::new();
    for t in [&files.community, &files.points, &files.trust] {
        all.extend_from_slice(&(t.len() as u64).to_be_bytes());
        all.extend_from_slice(t.as_bytes());
    }
    crate::campaigns::sha256_hex(&all)
}

/// Reads the applied settings: one Query on `CONFIG`.
pub async fn read<T: Table + ?Sized>(table: &T) -> Result<Applied, StoreError> {
    let page = table
        .query(&Query::new(Index::Primary, PK).limit(10))
        .await?;
    let mut out = Applied::default();
    for item in page.items {
        match item.get("sk").and_then(Value::as_str) {
            Some("CAMPAIGN") => {
                out.files = item
                    .get("files")
                    .cloned()
                    .and_then(|v| serde_json::from_value(v).ok());
                out.digest = str_attr(&item, "digest");
                out.applied_at = str_attr(&item, "applied_at");
            }
            Some("LAUNCH") => {
                out.launch = serde_json::from_value(Value::Object(item)).ok();
            }
            _ => {}
        }
    }
    Ok(out)
}

fn str_attr(item: &Item, name: &str) -> Option<String> {
    item.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn object(v: Value) -> Item {
    match v {
        Value::Object(m) => m,
        _ => Item::new(),
    }
}

/// Writes the files (replacing what was applied).
pub fn campaign_write(files: &CampaignFiles, at: &str) -> Write {
    let k = campaign_key();
    Write::put(object(json!({
        "pk": k.pk, "sk": k.sk, "files": files, "digest": digest(files), "applied_at": at,
    })))
}

/// Sets the launch mode.
pub fn launch_write(mode: LaunchMode, at: &str) -> Write {
    let k = launch_key();
    Write::put(object(json!({
        "pk": k.pk, "sk": k.sk, "mode": mode, "changed_at": at,
    })))
}

/// Sets the launch mode only if none is set yet: the first `campaigns apply`
/// takes it from the file's `invite_only`; after that only the `launch`
/// command changes it.
pub fn launch_seed(mode: LaunchMode, at: &str) -> Write {
    match launch_write(mode, at) {
        Write::Put { item, .. } => Write::put_new(item),
        other => other,
    }
}

/// The local server's environment over the applied settings (API.md,
/// "Configuration the local server honours"): `COMMUNITY_INVITE_ONLY` and
/// `COMMUNITY_VOTE_THRESHOLD`. Deployed functions have none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub invite_only: Option<bool>,
    pub vote_threshold: Option<u64>,
}

impl Overrides {
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Overrides, ConfigError> {
        let mut o = Overrides::default();
        if let Some(v) = get("COMMUNITY_INVITE_ONLY") {
            o.invite_only = Some(match v.trim() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => {
                    return Err(ConfigError::Env {
                        var: "COMMUNITY_INVITE_ONLY",
                        message: format!("{other:?} is not true or false"),
                    })
                }
            });
        }
        if let Some(v) = get("COMMUNITY_VOTE_THRESHOLD") {
            o.vote_threshold =
                Some(v.trim().parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    ConfigError::Env {
                        var: "COMMUNITY_VOTE_THRESHOLD",
                        message: format!("{v:?} is not a whole number >= 1"),
                    }
                })?);
        }
        Ok(o)
    }

    pub fn apply(&self, s: &mut Settings) {
        if let Some(v) = self.invite_only {
            s.invite_only = v;
        }
        if let Some(v) = self.vote_threshold {
            s.vote_threshold = v;
        }
    }
}

/// The settings a function runs with, from what the table holds (see the
/// module's documentation).
pub fn effective(
    applied: &Applied,
    base: &Settings,
    overrides: &Overrides,
) -> Result<Settings, ConfigError> {
    let mut s = match &applied.files {
        Some(f) => {
            let mut s = f.settings("the table (campaigns apply)")?;
            s.keep_deployment_of(base);
            s
        }
        None => base.clone(),
    };
    if let Some(l) = &applied.launch {
        s.invite_only = l.mode == LaunchMode::Soft;
    }
    overrides.apply(&mut s);
    Ok(s)
}

/// Why settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("the applied settings could not be read: {0}")]
    Store(#[from] StoreError),
    #[error("the applied settings are not valid: {0}")]
    Invalid(#[from] ConfigError),
}

struct Current {
    settings: Arc<Settings>,
    /// When the table was last read (None: never).
    read_at: Option<Instant>,
}

/// The settings of one process: fixed (tests, tools) or read from the table
/// and refreshed when older than the TTL. Reading is a lock and a clone of
/// an `Arc`; refreshing happens at the boundaries (each HTTP request, each
/// consumer batch, each scheduled run) through `App::refresh`.
pub struct Live {
    current: RwLock<Current>,
    source: Option<Source>,
    refreshing: tokio::sync::Mutex<()>,
}

struct Source {
    base: Settings,
    overrides: Overrides,
    ttl: Duration,
}

impl Live {
    /// Settings that never change (tests, one-off commands).
    pub fn fixed(s: Settings) -> Live {
        Live {
            current: RwLock::new(Current {
                settings: Arc::new(s),
                read_at: None,
            }),
            source: None,
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Settings read from the table, over `base` (the built-in files and the
    /// deployment's environment), every `ttl`. Until the first read, `base`
    /// with the overrides.
    pub fn from_table(base: Settings, overrides: Overrides, ttl: Duration) -> Live {
        let mut first = base.clone();
        overrides.apply(&mut first);
        Live {
            current: RwLock::new(Current {
                settings: Arc::new(first),
                read_at: None,
            }),
            source: Some(Source {
                base,
                overrides,
                ttl,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn get(&self) -> Arc<Settings> {
        match self.current.read() {
            Ok(c) => c.settings.clone(),
            Err(poisoned) => poisoned.into_inner().settings.clone(),
        }
    }

    fn fresh(&self, ttl: Duration) -> bool {
        let read_at = match self.current.read() {
            Ok(c) => c.read_at,
            Err(poisoned) => poisoned.into_inner().read_at,
        };
        read_at.is_some_and(|t| t.elapsed() < ttl)
    }

    /// Reads the table again when what this process holds is older than
    /// the TTL (one reader at a time; the others keep the current settings
    /// meanwhile). On an error the current settings stay, and the next
    /// call tries again.
    pub async fn refresh<T: Table + ?Sized>(&self, table: &T) -> Result<(), RefreshError> {
        let Some(src) = &self.source else {
            return Ok(());
        };
        if self.fresh(src.ttl) {
            return Ok(());
        }
        let Ok(_guard) = self.refreshing.try_lock() else {
            // Another request is reading it; use what we have, unless we
            // have never read it: then wait for that read.
            if self.fresh(Duration::MAX) {
                return Ok(());
            }
            let _wait = self.refreshing.lock().await;
            return Ok(());
        };
        if self.fresh(src.ttl) {
            return Ok(());
        }
        let applied = read(table).await?;
        let s = effective(&applied, &src.base, &src.overrides)?;
        let mut c = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        c.settings = Arc::new(s);
        c.read_at = Some(Instant::now());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BUILTIN_CAMPAIGN;

    fn base() -> Settings {
        let mut s = Settings::from_campaign(BUILTIN_CAMPAIGN, "builtin").expect("campaign");
        s.public_url = "https://communaute.example.fr/api".into();
        s.link_secret = "deployment-secret".into();
        s
    }

    #[test]
    fn the_table_decides_and_the_deployment_stays() {
        let mut files = CampaignFiles::builtin();
        files.community = files
            .community
            .replace("vote_threshold = 10000", "vote_threshold = 2500")
            .replace("invite_only = false", "invite_only = true");
        let applied = Applied {
            files: Some(files),
            ..Applied::default()
        };
        let s = effective(&applied, &base(), &Overrides::default()).expect("valid");
        assert_eq!(s.vote_threshold, 2500);
        assert!(s.invite_only, "the file's launch mode while no launch item");
        assert_eq!(s.public_url, "https://communaute.example.fr/api");
        assert_eq!(s.link_secret, "deployment-secret");
        // The launch item wins over the file.
        let applied = Applied {
            launch: Some(LaunchState {
                mode: LaunchMode::Public,
                changed_at: "2026-12-07T20:00:00Z".into(),
            }),
            ..applied
        };
        let s = effective(&applied, &base(), &Overrides::default()).expect("valid");
        assert!(!s.invite_only);
        // The local server's environment wins over both.
        let o = Overrides::from_env(|k| match k {
            "COMMUNITY_INVITE_ONLY" => Some("true".into()),
            "COMMUNITY_VOTE_THRESHOLD" => Some("5".into()),
            _ => None,
        })
        .expect("valid env");
        let s = effective(&applied, &base(), &o).expect("valid");
        assert!(s.invite_only);
        assert_eq!(s.vote_threshold, 5);
        // Nothing applied: the built-in files.
        let s = effective(&Applied::default(), &base(), &Overrides::default()).expect("ok");
        assert_eq!(s.vote_threshold, 10_000);
    }

    #[test]
    fn overrides_reject_nonsense() {
        let e = Overrides::from_env(|k| (k == "COMMUNITY_VOTE_THRESHOLD").then(|| "lots".into()))
            .expect_err("rejected");
        assert!(e.to_string().contains("COMMUNITY_VOTE_THRESHOLD"));
        let e = Overrides::from_env(|k| (k == "COMMUNITY_INVITE_ONLY").then(|| "perhaps".into()))
            .expect_err("rejected");
        assert!(e.to_string().contains("COMMUNITY_INVITE_ONLY"));
    }

    #[test]
    fn invalid_applied_files_are_refused_naming_the_file() {
        let mut files = CampaignFiles::builtin();
        files.trust = "[moderation]\nauto_hide_reports = 0\n".into();
        let applied = Applied {
            files: Some(files),
            ..Applied::default()
        };
        let e = effective(&applied, &base(), &Overrides::default()).expect_err("invalid");
        assert!(e.to_string().contains("trust.toml"), "{e}");
    }

    #[test]
    fn the_digest_follows_the_text() {
        let a = CampaignFiles::builtin();
        let mut b = a.clone();
        assert_eq!(digest(&a), digest(&b));
        b.points.push(' ');
        assert_ne!(digest(&a), digest(&b));
    }
}
