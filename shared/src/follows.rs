//! Following ideas: who gets an idea's answers, decisions and progress.
//!
//! A member follows an idea when they
//! - followed it (`PUT /ideas/{id}/follow`) or commented on it (unless their
//!   profile says `auto_follow: false`): a follow record says so;
//! - voted for it, unless they unfollowed it (`DELETE /ideas/{id}/follow`)
//!   or set `auto_follow: false`: a voter follows without any record.
//!
//! Voters are not given a follow record: a vote is the hottest write of the
//! system (one conditional write, no transaction, see `votes`), and a record
//! per vote would double its write units. The fan-out of an idea's news
//! (`mail::EmailsConsumer`) reads the voters and the followers in pages, as
//! it read the voters, and drops the voters whose follow record says
//! `following: false` (an unfollow sticks, whatever the member votes later)
//! or whose profile says `auto_follow: false`.
//!
//! Keys: `FOLLOWERS#{idea}#{bucket} / {member}` (the bucket is the voter's,
//! `votes::bucket`: a member's vote and follow record share a partition, so
//! a page of voters reads its follow records in one BatchGetItem), with
//! `following` true or false; in gsi3 as `MEMBER#{member}` /
//! `FOLLOW#1#{at}#{idea}` (following) or `FOLLOW#0#{at}#{idea}` (unfollowed):
//! `GET /members/me/following` reads the first, GDPR export and erasure
//! both. Follow records are not streamed (`store::feed`).

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{now, IdeaId};
use crate::error::{Error, Result};
use crate::ideas::{self, IdeaCard, ListPage};
use crate::members::{self, MemberRow};
use crate::store::{cursor, Index, Item, Key, Query, SortKey, StoreError, Table, Write};
use crate::votes;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};

/// gsi3 sort-key prefix of a member's follow records (both states).
pub const PREFIX: &str = "FOLLOW#";
/// … of the ideas they follow.
pub const FOLLOWING_PREFIX: &str = "FOLLOW#1#";
/// … of the ideas they unfollowed.
pub const UNFOLLOWED_PREFIX: &str = "FOLLOW#0#";

/// How a follow record came to be.
pub const BY_MEMBER: &str = "follow";
pub const BY_COMMENT: &str = "comment";
/// Copied from a duplicate merged into the idea (`crate::merge`).
pub const BY_MERGE: &str = "merge";

/// The partition of one bucket of an idea's follow records.
pub fn followers_pk(idea: &str, bucket: u32) -> String {
    format!("FOLLOWERS#{idea}#{bucket:02}")
}

pub fn key(idea: &str, member: &str) -> Key {
    Key::new(followers_pk(idea, votes::bucket(member)), member)
}

fn member_pk(member: &str) -> String {
    crate::members::pk(member)
}

/// A follow record.
pub fn record(idea: &str, member: &str, following: bool, source: &str) -> Item {
    let k = key(idea, member);
    let at = now();
    let prefix = if following {
        FOLLOWING_PREFIX
    } else {
        UNFOLLOWED_PREFIX
    };
    let mut item = Item::new();
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("idea_id".into(), json!(idea));
    item.insert("member_id".into(), json!(member));
    item.insert("following".into(), json!(following));
    item.insert("source".into(), json!(source));
    item.insert("at".into(), json!(at));
    item.insert("gsi3pk".into(), json!(member_pk(member)));
    item.insert("gsi3sk".into(), json!(format!("{prefix}{at}#{idea}")));
    item
}

/// What a follow record says: `Some(true)` following, `Some(false)`
/// unfollowed, `None` no record.
pub fn state_of(item: Option<&Item>) -> Option<bool> {
    item.map(|i| i.get("following").and_then(Value::as_bool).unwrap_or(false))
}

/// Whether a member follows an idea, from what is stored: their follow
/// record, whether they voted, and their `auto_follow` preference.
pub fn follows(record: Option<bool>, voted: bool, auto_follow: bool) -> bool {
    match record {
        Some(f) => f,
        None => voted && auto_follow,
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FollowView {
    pub idea_id: String,
    pub following: bool,
}

/// The caller's state on one idea (`"me"` on `GET /ideas/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Me {
    pub voted: bool,
    pub following: bool,
}

/// `PUT /ideas/{id}/follow` (`following` true) and `DELETE` (false):
/// idempotent. An unknown or hidden idea is 404; a non-member 403.
#[tracing::instrument(skip(app, caller), fields(idea = %idea.as_str()))]
pub async fn set<T: Table>(
    app: &App<T>,
    caller: &Caller,
    idea: &IdeaId,
    following: bool,
) -> Result<FollowView> {
    let row = ideas::load(app, idea, false).await?;
    if row.is_hidden() {
        return Err(Error::NotFound("idea"));
    }
    members::require_cheap(app, caller).await?;
    if let (true, Some(into)) = (following, &row.merged_into) {
        // Its followers were copied onto the target (`crate::merge`); an
        // unfollow is still recorded (it changes nothing there).
        return Err(Error::Conflict(format!(
            "this idea was merged into {into}: follow that one"
        )));
    }
    let member = caller.id.as_str();
    let view = FollowView {
        idea_id: idea.as_str().to_owned(),
        following,
    };
    // The same state again writes nothing (and keeps the list's order).
    let current = app.table.get(&key(idea.as_str(), member), true).await?;
    if state_of(current.as_ref()) == Some(following) {
        return Ok(view);
    }
    crate::ratelimit::check(app, member, crate::ratelimit::Action::Vote).await?;
    let w = Write::put(record(idea.as_str(), member, following, BY_MEMBER));
    let mut attempt = 0u32;
    loop {
        match app.table.transact(vec![w.clone()]).await {
            Ok(()) => return Ok(view),
            Err(StoreError::Conflict | StoreError::Throttled) if attempt < 4 => {
                crate::retry::pause(attempt).await;
                attempt += 1;
            }
            Err(StoreError::Conflict | StoreError::Throttled) => return Err(Error::Busy),
            Err(e) => return Err(e.into()),
        }
    }
}

/// The follow record a comment by `member` writes with it (in the
/// comment's transaction, conditional on no record: an unfollow sticks),
/// or None when they have one already or set `auto_follow: false`.
pub async fn on_comment<T: Table>(
    app: &App<T>,
    member: &MemberRow,
    idea: &str,
) -> Result<Option<Write>> {
    if !member.auto_follow {
        return Ok(None);
    }
    if app.table.get(&key(idea, &member.id), true).await?.is_some() {
        return Ok(None);
    }
    Ok(Some(Write::put_new(record(
        idea, &member.id, true, BY_COMMENT,
    ))))
}

/// The caller's vote and follow state on an idea: one BatchGetItem
/// (eventually consistent) of their vote, follow record and profile.
pub async fn me<T: Table>(app: &App<T>, idea: &IdeaId, caller: &Caller) -> Result<Me> {
    let member = caller.id.as_str();
    let vk = votes::vote_key(idea, member);
    let fk = key(idea.as_str(), member);
    let pk = members::key(&caller.id);
    let items = app
        .table
        .get_many(&[vk.clone(), fk.clone(), pk.clone()], false)
        .await?;
    let (mut voted, mut record, mut auto_follow) = (false, None, true);
    for i in &items {
        match Key::of(i) {
            Some(k) if k == vk => voted = true,
            Some(k) if k == fk => record = state_of(Some(i)),
            Some(k) if k == pk => {
                auto_follow = i
                    .get("auto_follow")
                    .and_then(Value::as_bool)
                    .unwrap_or(true)
            }
            _ => {}
        }
    }
    Ok(Me {
        voted,
        following: follows(record, voted, auto_follow),
    })
}

/// The follow records (any state) of `members` on `idea`, by member: one
/// BatchGetItem per 100 (eventually consistent).
pub async fn records_of<T: Table>(
    app: &App<T>,
    idea: &str,
    members: &[String],
) -> Result<HashMap<String, bool>> {
    let keys: Vec<Key> = members.iter().map(|m| key(idea, m)).collect();
    let mut out = HashMap::new();
    for chunk in keys.chunks(100) {
        for i in app.table.get_many(chunk, false).await? {
            if let Some(m) = i.get("member_id").and_then(Value::as_str) {
                out.insert(m.to_owned(), state_of(Some(&i)).unwrap_or(false));
            }
        }
    }
    Ok(out)
}

/// Which of `members` voted for `idea`: one BatchGetItem per 100.
pub async fn voters_among<T: Table>(
    app: &App<T>,
    idea: &IdeaId,
    members: &[String],
) -> Result<HashSet<String>> {
    let keys: Vec<Key> = members.iter().map(|m| votes::vote_key(idea, m)).collect();
    let mut out = HashSet::new();
    for chunk in keys.chunks(100) {
        for i in app.table.get_many(chunk, false).await? {
            if let Some(m) = i.get("member_id").and_then(Value::as_str) {
                out.insert(m.to_owned());
            }
        }
    }
    Ok(out)
}

/// Every follow record of a member, both states (GDPR).
pub async fn all_of<T: Table>(app: &App<T>, member: &str) -> Result<Vec<Item>> {
    Ok(crate::store::all_pages(
        &app.table,
        Query::new(Index::Gsi3, member_pk(member))
            .sk(SortKey::BeginsWith(PREFIX.into()))
            .limit(1000),
    )
    .await?)
}

/// The idea cards of `ids` that exist, are not hidden and were not merged
/// into another (the member's vote and follow were copied there: the target
/// is listed instead), in that order.
async fn cards<T: Table>(app: &App<T>, ids: &[String]) -> Result<Vec<IdeaCard>> {
    let keys: Vec<Key> = ids
        .iter()
        .filter_map(|i| IdeaId::parse(i))
        .map(|i| ideas::key(&i))
        .collect();
    let mut by_id = HashMap::new();
    for chunk in keys.chunks(100) {
        for i in app.table.get_many(chunk, false).await? {
            if i.contains_key("moderation") || i.contains_key("merged_into") {
                continue;
            }
            let c = ideas::card_from(i)?;
            by_id.insert(c.id.clone(), c);
        }
    }
    Ok(ids.iter().filter_map(|i| by_id.remove(i)).collect())
}

fn idea_in(item: &Item) -> Option<String> {
    item.get("idea_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

/// `GET /members/me/votes`: the ideas the caller voted for, newest vote
/// first (gsi3 `MEMBER#{id}` / `VOTE#…`).
pub async fn voted<T: Table>(
    app: &App<T>,
    caller: &Caller,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<IdeaCard>> {
    members::require(app, caller).await?;
    let pk = member_pk(caller.id.as_str());
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi3, &pk)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi3, pk)
                .sk(crate::votes::member_votes())
                .backward()
                .limit(limit)
                .start_after(start),
        )
        .await?;
    let ids: Vec<String> = page.items.iter().filter_map(idea_in).collect();
    Ok(ListPage {
        items: cards(app, &ids).await?,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

/// `GET /members/me/following`: the ideas the caller follows. First the
/// ideas with a follow record (followed or commented), newest first; then,
/// unless the caller set `auto_follow: false`, the ideas they voted for
/// without a follow record, newest vote first. A page may hold fewer than
/// `limit` ideas (voted ideas with a record are skipped); `next_cursor` is
/// null only at the end.
pub async fn following<T: Table>(
    app: &App<T>,
    caller: &Caller,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<IdeaCard>> {
    let row = members::require(app, caller).await?;
    let pk = member_pk(caller.id.as_str());
    // The cursor is a gsi3 key: of a follow record in the first phase, of a
    // vote in the second; [`VOTES_FROM_TOP`] starts the second.
    let (in_votes, start) = match cursor_in.as_deref() {
        Some(VOTES_FROM_TOP) => (true, None),
        c => {
            let start = cursor::start(c, Index::Gsi3, &pk)?;
            let votes = start
                .as_ref()
                .and_then(|s| s.get("gsi3sk"))
                .and_then(Value::as_str)
                .is_some_and(|s| s.starts_with(crate::votes::MEMBER_VOTE_PREFIX));
            (votes, start)
        }
    };
    if !in_votes {
        let page = app
            .table
            .query(
                &Query::new(Index::Gsi3, pk.clone())
                    .sk(SortKey::BeginsWith(FOLLOWING_PREFIX.into()))
                    .backward()
                    .limit(limit)
                    .start_after(start),
            )
            .await?;
        let ids: Vec<String> = page.items.iter().filter_map(idea_in).collect();
        let next = match &page.last_key {
            Some(k) => Some(cursor::encode(k)),
            // The follow records are done: the votes next, from the top.
            None if row.auto_follow => Some(VOTES_FROM_TOP.to_owned()),
            None => None,
        };
        return Ok(ListPage {
            items: cards(app, &ids).await?,
            next_cursor: next,
        });
    }
    if !row.auto_follow {
        return Ok(ListPage {
            items: vec![],
            next_cursor: None,
        });
    }
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi3, pk)
                .sk(crate::votes::member_votes())
                .backward()
                .limit(limit)
                .start_after(start),
        )
        .await?;
    let ids: Vec<String> = page.items.iter().filter_map(idea_in).collect();
    let mut without = Vec::new();
    let records: Vec<Key> = ids.iter().map(|i| key(i, caller.id.as_str())).collect();
    let mut with_record = HashSet::new();
    for chunk in records.chunks(100) {
        for i in app.table.get_many(chunk, false).await? {
            if let Some(id) = idea_in(&i) {
                with_record.insert(id);
            }
        }
    }
    for id in ids {
        if !with_record.contains(&id) {
            without.push(id);
        }
    }
    Ok(ListPage {
        items: cards(app, &without).await?,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

/// The cursor of the following list's first page of voted ideas (not
/// base64 JSON, so no key cursor is ever this).
const VOTES_FROM_TOP: &str = "votes";

/// The deletes of every follow record of `member` (GDPR erasure).
pub async fn erase_writes<T: Table>(app: &App<T>, member: &str) -> Result<Vec<Write>> {
    Ok(all_of(app, member)
        .await?
        .iter()
        .filter_map(Key::of)
        .map(|key| Write::Delete { key, cond: None })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_decides_and_a_vote_follows_only_with_auto_follow() {
        // (record, voted, auto_follow) → follows
        for (record, voted, auto, want) in [
            (Some(true), false, false, true),
            (Some(true), true, false, true),
            (Some(false), true, true, false),
            (Some(false), false, true, false),
            (None, true, true, true),
            (None, true, false, false),
            (None, false, true, false),
        ] {
            assert_eq!(
                follows(record, voted, auto),
                want,
                "{record:?} {voted} {auto}"
            );
        }
    }

    #[test]
    fn records_share_the_voters_bucket_and_name_their_state_in_gsi3() {
        let r = record("01JD8Z3K4M5N6P7Q8R9S0TVWXY", "bob", false, BY_MEMBER);
        let b = votes::bucket("bob");
        assert_eq!(
            r["pk"],
            json!(followers_pk("01JD8Z3K4M5N6P7Q8R9S0TVWXY", b))
        );
        assert_eq!(
            votes::voters_pk("01JD8Z3K4M5N6P7Q8R9S0TVWXY", b).replace("VOTERS#", "FOLLOWERS#"),
            followers_pk("01JD8Z3K4M5N6P7Q8R9S0TVWXY", b)
        );
        assert!(r["gsi3sk"].as_str().is_some_and(
            |s| s.starts_with(UNFOLLOWED_PREFIX) && s.ends_with("#01JD8Z3K4M5N6P7Q8R9S0TVWXY")
        ));
        assert_eq!(state_of(Some(&r)), Some(false));
        assert_eq!(state_of(None), None);
    }
}
