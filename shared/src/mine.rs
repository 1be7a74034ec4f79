//! `GET /members/me/contributions?type=idea|comment|review`: a member's own
//! ideas, comments or reviews, newest first, each with its moderation state.
//!
//! This is how an author follows what they wrote on AWS, where the public
//! reads (`GET /ideas/{id}`, `GET /comments/{id}`) run without the JWT
//! authorizer and so cannot tell the author from anyone else: a hidden
//! contribution is 404 there, and listed here with `"state": "hidden"`, who
//! hid it (the reports, or a moderator with their reason) and whether a
//! moderator still has to decide.
//!
//! One `Query` on the member's partition (the contribution pointers of
//! `crate::contrib`, sorted by kind then time), one `BatchGetItem` of the
//! targets, and one of the moderation states of the hidden ones: no scan.
//! Reports on visible content are not shown (who reported what stays with
//! the moderators).

use crate::app::App;
use crate::auth::Caller;
use crate::comments;
use crate::contrib::{self, ContribKind};
use crate::error::{Error, Result};
use crate::ideas::{self, ListPage};
use crate::moderation::{self, TargetType, HIDDEN};
use crate::products::Review;
use crate::store::{cursor, Index, Item, Key, Query, SortKey, StoreError, Table};
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Contribution {
    /// `idea`, `comment` or `review`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    pub created_at: String,
    /// `visible` or `hidden`.
    pub state: &'static str,
    /// Present while the contribution is hidden.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moderation: Option<Hidden>,
    /// The idea, comment or review as its public route shows it to its author.
    pub content: Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Hidden {
    pub hidden_at: Option<String>,
    /// `reports` (hidden automatically when enough members reported it) or
    /// `moderator`.
    pub hidden_by: &'static str,
    /// The moderator's reason (none while hidden by reports alone).
    pub reason: Option<String>,
    /// True while a moderator still has to confirm or restore it.
    pub awaiting_decision: bool,
}

fn kind_of(param: Option<&str>) -> Result<(ContribKind, TargetType)> {
    match param {
        Some("idea") => Ok((ContribKind::Idea, TargetType::Idea)),
        Some("comment") => Ok((ContribKind::Comment, TargetType::Comment)),
        Some("review") => Ok((ContribKind::Review, TargetType::Review)),
        Some(_) => Err(Error::invalid("type", "must be idea, comment or review")),
        None => Err(Error::invalid(
            "type",
            "is required: idea, comment or review",
        )),
    }
}

fn bad_item(e: serde_json::Error) -> Error {
    Error::Store(StoreError::unavailable(e))
}

/// The public representation of a target item (what its route answers).
fn content(kind: ContribKind, item: Item) -> Result<Value> {
    match kind {
        ContribKind::Idea => {
            let row = ideas::row_from(item)?;
            let votes = row.votes;
            serde_json::to_value(row.view(votes)).map_err(bad_item)
        }
        ContribKind::Comment => serde_json::to_value(comments::from_item(item)?).map_err(bad_item),
        _ => {
            let r: Review = serde_json::from_value(Value::Object(item)).map_err(bad_item)?;
            serde_json::to_value(r).map_err(bad_item)
        }
    }
}

fn text(item: &Item, attr: &str) -> Option<String> {
    item.get(attr).and_then(Value::as_str).map(str::to_owned)
}

/// Who hid a hidden target, from its moderation state item.
fn hidden(target: &Item, state: Option<&Item>) -> Hidden {
    let queued = state.is_some_and(|s| s.contains_key("gsi1pk"));
    let decision = state.and_then(|s| s.get("decision"));
    let by_moderator = !queued
        && decision
            .and_then(|d| d.get("action"))
            .and_then(Value::as_str)
            == Some("hide");
    Hidden {
        hidden_at: text(target, "hidden_at"),
        hidden_by: if by_moderator { "moderator" } else { "reports" },
        reason: if by_moderator {
            decision
                .and_then(|d| d.get("reason"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        } else {
            None
        },
        awaiting_decision: queued,
    }
}

/// Items read by key (one `BatchGetItem` per 100), found by their key.
async fn by_key<T: Table>(app: &App<T>, keys: &[Key]) -> Result<HashMap<Key, Item>> {
    Ok(crate::store::get_all(&app.table, keys, true)
        .await?
        .into_iter()
        .filter_map(|i| Some((Key::of(&i)?, i)))
        .collect())
}

/// The caller's contributions of one type, newest first.
pub async fn list<T: Table>(
    app: &App<T>,
    caller: &Caller,
    kind: Option<&str>,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<Contribution>> {
    let (kind, ty) = kind_of(kind)?;
    crate::members::require(app, caller).await?;
    let pk = crate::members::pk(caller.id.as_str());
    let prefix = format!("{}{}#", contrib::PREFIX, kind.as_str());
    let start = cursor::start(cursor_in.as_deref(), Index::Primary, &pk)?;
    // A cursor of another type's list would start in the wrong place.
    if start.as_ref().is_some_and(|k| {
        !k.get("sk")
            .and_then(Value::as_str)
            .is_some_and(|sk| sk.starts_with(&prefix))
    }) {
        return Err(Error::invalid("cursor", "is not one this list returned"));
    }
    let mut q = Query::new(Index::Primary, pk)
        .sk(SortKey::BeginsWith(prefix))
        .backward()
        .limit(limit.clamp(1, 100))
        .start_after(start);
    q.consistent = true;
    let page = app.table.query(&q).await?;
    let pointers: Vec<Key> = page
        .items
        .iter()
        .filter_map(contrib::target_of)
        .map(|(_, k)| k)
        .collect();
    let mut targets = by_key(app, &pointers).await?;
    if kind == ContribKind::Idea {
        // An idea's body is its own item (ideas.rs).
        let body_keys: Vec<Key> = pointers
            .iter()
            .map(|k| Key::new(k.pk.clone(), "BODY"))
            .collect();
        for (k, b) in by_key(app, &body_keys).await? {
            let row = Key::new(k.pk, "IDEA");
            if let (Some(item), Some(body)) = (targets.get_mut(&row), b.get("body")) {
                item.insert("body".into(), body.clone());
            }
        }
    }
    let hidden_ids: Vec<String> = targets
        .values()
        .filter(|i| i.get("moderation").and_then(Value::as_str) == Some(HIDDEN))
        .filter_map(|i| text(i, "id"))
        .collect();
    let state_keys: Vec<Key> = hidden_ids
        .iter()
        .map(|id| moderation::state_key(ty, id))
        .collect();
    let states = by_key(app, &state_keys).await?;
    let mut items = Vec::with_capacity(pointers.len());
    for key in pointers {
        // A pointer whose target is gone (never expected) is skipped rather
        // than failing the member's whole list.
        let Some(item) = targets.get(&key).cloned() else {
            tracing::warn!(target_pk = %key.pk, "contribution pointer without its target");
            continue;
        };
        let id = text(&item, "id").unwrap_or_default();
        let created_at = text(&item, "created_at").unwrap_or_default();
        let is_hidden = item.get("moderation").and_then(Value::as_str) == Some(HIDDEN);
        let moderation =
            is_hidden.then(|| hidden(&item, states.get(&moderation::state_key(ty, &id))));
        items.push(Contribution {
            kind: kind.as_str(),
            id,
            created_at,
            state: if is_hidden { HIDDEN } else { "visible" },
            moderation,
            content: content(kind, item)?,
        });
    }
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Item {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn the_type_is_required_and_checked() {
        assert!(matches!(kind_of(None), Err(Error::Invalid(e)) if e[0].field == "type"));
        assert!(matches!(kind_of(Some("vote")), Err(Error::Invalid(e)) if e[0].field == "type"));
        assert_eq!(
            kind_of(Some("review")).ok(),
            Some((ContribKind::Review, TargetType::Review))
        );
    }

    #[test]
    fn who_hid_it_comes_from_the_moderation_state() {
        let target = obj(json!({"id": "x", "moderation": "hidden", "hidden_at": "t"}));
        let queued = obj(json!({"gsi1pk": "MODQUEUE", "state": "hidden"}));
        let h = hidden(&target, Some(&queued));
        assert_eq!((h.hidden_by, h.awaiting_decision), ("reports", true));
        assert_eq!(h.reason, None);
        let decided = obj(json!({"state": "hidden",
            "decision": {"action": "hide", "reason": "insultes", "by": "mod", "at": "t2"}}));
        let h = hidden(&target, Some(&decided));
        assert_eq!((h.hidden_by, h.awaiting_decision), ("moderator", false));
        assert_eq!(h.reason.as_deref(), Some("insultes"));
        assert_eq!(h.hidden_at.as_deref(), Some("t"));
    }
}
