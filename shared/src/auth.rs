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
