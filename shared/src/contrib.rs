//! The member's contribution index: every contribution a member makes
//! (idea, comment, contest entry, product-test application, review, report)
//! writes, **in the same transaction as the contribution**, a pointer item in
//! the member's own partition:
//!
//! `MEMBER#{member} / CONTRIB#{kind}#{created_at}#{target id}` →
//! `{kind, target_pk, target_sk, created_at}`.
//!
//! A member's contributions are then one `Query` on their partition (no
//! scan): the GDPR export reads them, erasure anonymises each target, and the
//! ambassadors' scoring can count them. Votes are indexed already (gsi3
//! `MEMBER#{member}` / `VOTE#…`) and write no pointer.

use crate::store::{Item, Key, Write};
use serde_json::json;

/// Sort-key prefix of every pointer in a member's partition.
pub const PREFIX: &str = "CONTRIB#";

/// What a pointer points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContribKind {
    Idea,
    Comment,
    Entry,
    Application,
    Review,
    Report,
}

impl ContribKind {
    pub const ALL: [ContribKind; 6] = [
        ContribKind::Idea,
        ContribKind::Comment,
        ContribKind::Entry,
        ContribKind::Application,
        ContribKind::Review,
        ContribKind::Report,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ContribKind::Idea => "idea",
            ContribKind::Comment => "comment",
            ContribKind::Entry => "entry",
            ContribKind::Application => "application",
            ContribKind::Review => "review",
            ContribKind::Report => "report",
        }
    }
    pub fn parse(s: &str) -> Option<ContribKind> {
        ContribKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The pointer's key in the member's partition.
pub fn pointer_key(member_id: &str, kind: ContribKind, created_at: &str, target_id: &str) -> Key {
    Key::new(
        crate::members::pk(member_id),
        format!("{PREFIX}{}#{created_at}#{target_id}", kind.as_str()),
    )
}

/// The pointer write to add to the contribution's transaction.
pub fn pointer(
    member_id: &str,
    kind: ContribKind,
    created_at: &str,
    target_id: &str,
    target: &Key,
) -> Write {
    let k = pointer_key(member_id, kind, created_at, target_id);
    let mut item = Item::new();
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("kind".into(), json!(kind.as_str()));
    item.insert("target_pk".into(), json!(target.pk));
    item.insert("target_sk".into(), json!(target.sk));
    item.insert("created_at".into(), json!(created_at));
    Write::put(item)
}

/// The target of a pointer item read back from the member's partition.
pub fn target_of(item: &Item) -> Option<(ContribKind, Key)> {
    let kind = ContribKind::parse(item.get("kind")?.as_str()?)?;
    let pk = item.get("target_pk")?.as_str()?;
    let sk = item.get("target_sk")?.as_str()?;
    Some((kind, Key::new(pk, sk)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pointer_round_trips_to_its_target() {
        let target = Key::new("IDEA#01J", "IDEA");
        let Write::Put { item, .. } = pointer(
            "alice",
            ContribKind::Idea,
            "2026-12-01T10:00:00.000Z",
            "01J",
            &target,
        ) else {
            panic!("a put")
        };
        assert_eq!(item["pk"], "MEMBER#alice");
        assert_eq!(item["sk"], "CONTRIB#idea#2026-12-01T10:00:00.000Z#01J");
        assert_eq!(target_of(&item), Some((ContribKind::Idea, target)));
    }
}
