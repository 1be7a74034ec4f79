//! Who is calling: the claims API Gateway's JWT authorizer verified (or, in
//! local mode, the local server verified the same way).

use crate::domain::MemberId;

pub const COMMITTEE: &str = "committee";
pub const MODERATOR: &str = "moderator";
pub const MARKETING: &str = "marketing";

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
