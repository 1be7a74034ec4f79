//! `GET /community` (API.md v1.1): what a frontend needs before sign-up —
//! the terms to accept, the launch mode, the themes, the vote threshold and
//! the point rules — from the applied campaign files, so that a frontend
//! learns the terms version here rather than from the 422 that refuses a
//! wrong one.

use crate::config::Settings;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CommunityView {
    pub terms_version: String,
    pub terms_url: String,
    /// `soft` while sign-up needs an invite (`launch.invite_only`), then `public`.
    pub launch: &'static str,
    pub themes: Vec<ThemeView>,
    pub vote_threshold: u64,
    pub points: PointsView,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ThemeView {
    pub id: String,
    pub label: String,
    pub description: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PointsView {
    pub rules: Vec<RuleView>,
    /// Euros a point is worth on the loyalty card (0.01: 100 points = 1 €).
    pub euros_per_point: f64,
    pub points_per_euro: i64,
    pub minimum_redemption: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleView {
    pub action: String,
    pub points: i64,
    pub label: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_cap: Option<i64>,
}

pub fn view(s: &Settings) -> CommunityView {
    let conv = &s.points.conversion;
    CommunityView {
        terms_version: s.terms_version.clone(),
        terms_url: s.terms_url(),
        launch: if s.invite_only { "soft" } else { "public" },
        themes: s
            .themes
            .iter()
            .map(|t| ThemeView {
                id: t.id.clone(),
                label: t.label.clone(),
                description: t.description.clone(),
            })
            .collect(),
        vote_threshold: s.vote_threshold,
        points: PointsView {
            rules: s
                .points
                .rules
                .iter()
                .map(|(action, r)| RuleView {
                    action: action.clone(),
                    points: r.points,
                    label: r.label.clone(),
                    daily_cap: r.daily_cap,
                })
                .collect(),
            euros_per_point: 1.0 / conv.points_per_euro.max(1) as f64,
            points_per_euro: conv.points_per_euro,
            minimum_redemption: conv.minimum_redemption,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_view_follows_the_campaign_files() {
        let mut s =
            Settings::from_campaign(crate::config::BUILTIN_CAMPAIGN, "builtin").expect("campaign");
        let v = view(&s);
        assert_eq!(v.terms_version, s.terms_version);
        assert_eq!(v.terms_url, format!("{}/cgu", s.public_url));
        assert_eq!(v.launch, "public");
        assert_eq!(v.themes.len(), 5);
        assert_eq!(v.vote_threshold, 10_000);
        assert_eq!(v.points.euros_per_point, 0.01);
        let signed_up = v
            .points
            .rules
            .iter()
            .find(|r| r.action == "member_signed_up")
            .expect("the sign-up rule");
        assert_eq!(signed_up.points, s.points.rules["member_signed_up"].points);
        s.invite_only = true;
        s.terms_url = Some("https://communaute.example.fr/cgu-v3".into());
        s.vote_threshold = 500;
        let v = view(&s);
        assert_eq!(v.launch, "soft");
        assert_eq!(v.terms_url, "https://communaute.example.fr/cgu-v3");
        assert_eq!(v.vote_threshold, 500);
    }
}
