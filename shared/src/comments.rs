//! Comments on ideas: the exchange of tips between members, brands and staff.
//!
//! Keys: a comment is its own partition `COMMENT#{id} / COMMENT` (so a report
//! or a moderator can address it by id alone), listed in gsi1 under
//! `COMMENTS#{idea}` / `{created_at}#{id}` (oldest first). Hiding a comment
//! removes its gsi1 attributes (it leaves the list); restoring puts them back.
//!
//! Posting is one transaction: the comment, the member's contribution
//! pointer, the member's follow record of the idea when commenting makes
//! them follow it (`crate::follows`) and the `comment.posted` event (points, digest mails, and the
//! idea's `comment_count`, which the insights consumer adds per batch). The
//! idea row is not in it: a popular idea's row is rewritten by every vote
//! roll-up, and comments serialised on it would conflict by the thousand
//! (the launch bench's comments phase). The idea is read first; one hidden
//! between that read and the write keeps the comment, hidden with it.

use crate::app::App;
use crate::auth::Caller;
use crate::contrib::{self, ContribKind};
use crate::domain::{now, FieldError, IdeaId};
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::{self, ListPage};
use crate::members;
use crate::receipt::Receipt;
use crate::store::{cursor, Index, Item, Key, Query, StoreError, Table, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Groups whose members are shown with a badge on their comments.
pub const STAFF: &str = "staff";
pub const BRAND: &str = "brand";
/// Characters of a comment's body, after trimming.
pub const MAX_BODY: usize = 2000;

pub fn key(id: &str) -> Key {
    Key::new(format!("COMMENT#{id}"), "COMMENT")
}

pub fn list_pk(idea: &str) -> String {
    format!("COMMENTS#{idea}")
}

pub fn list_sk(created_at: &str, id: &str) -> String {
    format!("{created_at}#{id}")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub body: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CommentAuthor {
    pub id: String,
    pub display_name: String,
    /// `staff` or `brand` when the author wrote with such a group in their token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub badge: Option<String>,
}

/// A comment as stored (key attributes aside) and shown.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Comment {
    pub id: String,
    pub idea_id: String,
    pub author: CommentAuthor,
    pub body: String,
    pub created_at: String,
    /// `"hidden"` while moderation hides it (never in public lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moderation: Option<String>,
}

pub fn from_item(item: Item) -> Result<Comment> {
    serde_json::from_value(Value::Object(item))
        .map_err(|e| Error::Store(StoreError::unavailable(e)))
}

/// The badge a caller's groups give (staff first).
pub fn badge(caller: &Caller) -> Option<String> {
    [STAFF, BRAND]
        .into_iter()
        .find(|g| caller.in_group(g))
        .map(str::to_owned)
}

fn parse_body(v: Option<String>) -> std::result::Result<String, FieldError> {
    let Some(v) = v else {
        return Err(FieldError::new("body", "is required"));
    };
    let t = v.trim();
    let n = t.chars().count();
    if n == 0 || n > MAX_BODY {
        return Err(FieldError::new(
            "body",
            format!("must be 1 to {MAX_BODY} characters long (it is {n})"),
        ));
    }
    crate::domain::refuse_controls("body", t, true)?;
    Ok(t.to_owned())
}

/// `POST /ideas/{id}/comments`.
pub async fn post<T: Table>(
    app: &App<T>,
    caller: &Caller,
    idea_id: &IdeaId,
    req: NewComment,
    receipt: Option<&Receipt>,
) -> Result<Comment> {
    let body = parse_body(req.body).map_err(|e| Error::Invalid(vec![e]))?;
    let idea = ideas::load(app, idea_id, true).await?;
    if idea.is_hidden() {
        return Err(Error::NotFound("idea"));
    }
    let member = members::require(app, caller).await?;
    crate::ratelimit::check(app, &member.id, crate::ratelimit::Action::Comment).await?;
    let id = ulid::Ulid::new().to_string();
    let at = now();
    let c = Comment {
        id: id.clone(),
        idea_id: idea.id.clone(),
        author: CommentAuthor {
            id: member.id.clone(),
            display_name: member.display_name.clone(),
            badge: badge(caller),
        },
        body,
        created_at: at.clone(),
        moderation: None,
    };
    let k = key(&id);
    let Value::Object(mut item) =
        serde_json::to_value(&c).map_err(|e| Error::Store(StoreError::unavailable(e)))?
    else {
        return Err(Error::Store(StoreError::Invalid("comment".into())));
    };
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("author_id".into(), json!(member.id));
    item.insert("idea_author_id".into(), json!(idea.author_id));
    item.insert("gsi1pk".into(), json!(list_pk(&idea.id)));
    item.insert("gsi1sk".into(), json!(list_sk(&at, &id)));
    let event = Event::new(
        Kind::CommentPosted,
        &member.id,
        Some(&idea.id),
        json!({"comment_id": id, "idea_author_id": idea.author_id}),
    );
    let mut writes = vec![
        Write::put_new(item),
        contrib::pointer(&member.id, ContribKind::Comment, &at, &id, &k),
        event.write(),
    ];
    // Commenting follows the idea (`crate::follows`), in the same
    // transaction, unless the member has a follow record (an unfollow
    // sticks) or set `auto_follow: false`.
    let follow = crate::follows::on_comment(app, &member, &idea.id).await?;
    let follow_key = follow.as_ref().and_then(Write::key);
    writes.extend(follow);
    let shown = serde_json::to_value(&c).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    // Nothing here is shared with another request; a throttled write is
    // retried (then 503 + Retry-After).
    let mut attempt = 0;
    loop {
        match commit(
            &app.table,
            writes.clone(),
            receipt.map(|r| (r, 201, &shown)),
        )
        .await
        {
            Ok(()) => return Ok(c),
            // A follow or unfollow of the same idea landed meanwhile: it
            // stands, the comment goes without the follow record.
            Err(e) if follow_key.as_ref().is_some_and(|k| e.failed_on(k)) => {
                writes.retain(|w| w.key() != follow_key);
            }
            Err(Error::Store(StoreError::Conflict | StoreError::Throttled)) if attempt < 3 => {
                crate::retry::pause(attempt).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// `GET /ideas/{id}/comments`: visible comments, oldest first. The comments
/// of a hidden idea are 404 like the idea, except to its author and moderators.
pub async fn list<T: Table>(
    app: &App<T>,
    idea_id: &IdeaId,
    viewer: Option<&Caller>,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<Comment>> {
    let idea = ideas::load(app, idea_id, false).await?;
    if idea.is_hidden() && !ideas::sees_hidden(viewer, &idea.author_id) {
        return Err(Error::NotFound("idea"));
    }
    let pk = list_pk(idea_id.as_str());
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi1, &pk)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi1, pk)
                .limit(limit.clamp(1, 100))
                .start_after(start),
        )
        .await?;
    let items = page
        .items
        .into_iter()
        .map(from_item)
        .collect::<Result<Vec<_>>>()?;
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

/// One comment as `viewer` may see it (`GET /comments/{id}`): a hidden
/// comment (or a comment of a hidden idea) is 404 except to its author (the
/// idea's author) and to moderators.
pub async fn get<T: Table>(app: &App<T>, id: &str, viewer: Option<&Caller>) -> Result<Comment> {
    if ulid::Ulid::from_string(id).is_err() {
        return Err(Error::NotFound("comment"));
    }
    let Some(item) = app.table.get(&key(id), true).await? else {
        return Err(Error::NotFound("comment"));
    };
    let c = from_item(item)?;
    if c.moderation.is_some() && !ideas::sees_hidden(viewer, &c.author.id) {
        return Err(Error::NotFound("comment"));
    }
    // The comments of a hidden idea are hidden with it.
    if let Some(idea) = IdeaId::parse(&c.idea_id) {
        match ideas::load(app, &idea, false).await {
            Ok(row) if row.is_hidden() && !ideas::sees_hidden(viewer, &row.author_id) => {
                return Err(Error::NotFound("comment"))
            }
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_trimmed_and_bounded() {
        assert_eq!(parse_body(Some("  merci !  ".into())), Ok("merci !".into()));
        assert!(parse_body(Some("   ".into())).is_err());
        assert!(parse_body(None).is_err());
        assert!(parse_body(Some("é".repeat(MAX_BODY))).is_ok());
        assert!(parse_body(Some("é".repeat(MAX_BODY + 1))).is_err());
        assert!(parse_body(Some("a\u{0}b".into())).is_err());
        assert!(parse_body(Some("ligne 1\nligne 2".into())).is_ok());
    }
}
