//! Who is calling: the claims API Gateway's JWT authorizer verified (or, in
//! local mode, the local server verified the same way).

use crate::domain::MemberId;

pub const COMMITTEE: &str = "committee";
pub const MODERATOR: &str = "moderator";
pub const MARKETING: &str = "marketing";
/// A brand partner's group is `brand:<slug>` (API.md v1.1 "Brand partners").
pub const BRAND_PREFIX: &str = "brand:";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: MemberId,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// The issuer's `email_verified` claim, when it sends one.
    pub email_verified: Option<bool>,
}

impl Caller {
    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// The brand this token acts for: the slug of its one `brand:<slug>`
    /// group. None when it holds none, or more than one (a token acts for
    /// one brand only; two would make every "its own" check ambiguous).
    pub fn brand(&self) -> Option<&str> {
        let mut slugs = self
            .groups
            .iter()
            .filter_map(|g| g.strip_prefix(BRAND_PREFIX))
            .filter(|s| is_brand_slug(s));
        let first = slugs.next()?;
        if slugs.next().is_some() {
            return None;
        }
        Some(first)
    }

    /// True when this token acts for `slug` (see [`Caller::brand`]).
    pub fn acts_for_brand(&self, slug: &str) -> bool {
        self.brand() == Some(slug)
    }

    /// Votes and contest entries need a verified address when the issuer
    /// says it is not (`email_verified: false`, or the string "false" as
    /// API Gateway renders claims). An absent claim is allowed: the issuer
    /// does not track verification (see docs/architecture.md).
    pub fn require_verified_email(&self) -> crate::error::Result<()> {
        if self.email_verified == Some(false) {
            return Err(crate::error::Error::Forbidden(
                "your e-mail address must be verified before you vote or enter a contest: \
                 confirm it with the link you received, then sign in again"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A brand slug as campaign files and groups spell it: 1–40 characters of
/// `a-z`, `0-9` and `-`, not starting or ending with `-`.
pub fn is_brand_slug(s: &str) -> bool {
    (1..=40).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Reads an `email_verified` claim as it reaches a function: `true`/`false`
/// (a JSON boolean rendered as text by API Gateway) in any case; anything
/// else counts as absent.
pub fn parse_verified(raw: &str) -> Option<bool> {
    match raw.trim().trim_matches('"').to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Parses a groups claim in the forms it reaches a function in: API
/// Gateway's `[a b]` rendering of an array, a JSON array, or a
/// comma/space-separated string.
pub fn parse_groups(raw: &str) -> Vec<String> {
    let t = raw.trim();
    if let Ok(v) = serde_json::from_str::<Vec<String>>(t) {
        return v.into_iter().filter(|g| !g.is_empty()).collect();
    }
    let inner = t
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(t);
    inner
        .split([' ', ','])
        .map(|g| g.trim().trim_matches('"'))
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_verified_in_every_shape() {
        assert_eq!(parse_verified("true"), Some(true));
        assert_eq!(parse_verified("false"), Some(false));
        assert_eq!(parse_verified("FALSE"), Some(false));
        assert_eq!(parse_verified("\"false\""), Some(false));
        assert_eq!(parse_verified(""), None);
        let mut c = Caller {
            id: MemberId::parse("a").expect("id"),
            email: None,
            groups: vec![],
            email_verified: None,
        };
        assert!(c.require_verified_email().is_ok());
        c.email_verified = Some(false);
        assert!(c.require_verified_email().is_err());
        c.email_verified = Some(true);
        assert!(c.require_verified_email().is_ok());
    }

    #[test]
    fn a_token_acts_for_one_brand_only() {
        let caller = |groups: &[&str]| Caller {
            id: MemberId::parse("m-1").expect("member id"),
            email: None,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            email_verified: None,
        };
        assert_eq!(caller(&["brand:bonne-maman"]).brand(), Some("bonne-maman"));
        assert!(caller(&["marketing", "brand:lu"]).acts_for_brand("lu"));
        assert!(!caller(&["brand:lu"]).acts_for_brand("bonne-maman"));
        assert_eq!(caller(&["brand:lu", "brand:danone"]).brand(), None);
        assert_eq!(caller(&["brand:"]).brand(), None);
        assert_eq!(caller(&["brand:Not A Slug"]).brand(), None);
        assert_eq!(caller(&["marketing"]).brand(), None);
    }

    #[test]
    fn groups_in_every_shape() {
        let want = vec!["committee".to_string(), "marketing".to_string()];
        assert_eq!(parse_groups("[committee marketing]"), want);
        assert_eq!(parse_groups("[\"committee\",\"marketing\"]"), want);
        assert_eq!(parse_groups("committee,marketing"), want);
        assert_eq!(parse_groups("committee"), vec!["committee".to_string()]);
        assert!(parse_groups("[]").is_empty());
        assert!(parse_groups("").is_empty());
    }
}
