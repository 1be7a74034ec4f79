//! Votes. The vote record is the truth; the count is a sharded counter
//! written in the same transaction as the record, so it always equals the
//! number of distinct voters, and no transaction touches the idea's own row.
//!
//! Keys:
//! - vote: `VOTE#{idea}#{member} / VOTE` (one partition per vote), in gsi1 as
//!   `VOTERS#{idea}#{bucket}` (16 buckets, so the voters of one idea spread
//!   over 16 index partitions) and in gsi3 as `MEMBER#{member}` (a member's votes).
//! - counter shard: `IDEA#{idea}#VC#{k} / COUNT` with `votes` and `seq`, and
//!   `closed` once the idea stops taking votes.
//!
//! The idea row's `votes` (used by lists and the `top` order) is a roll-up of
//! the shards, written by `rollup` — called by the `thresholds` consumer once
//! per idea per batch of vote events — and only ever replaced by a roll-up
//! that saw more shard updates.
//! docs/architecture.md explains the design and its cost per vote.

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{now, IdeaId, IdeaStatus};
use crate::error::{Error, Result};
use crate::events::{Event, Kind};
use crate::ideas;
use crate::members;
use crate::store::{Cond, Key, StoreError, Table, Update, Write};
use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// Index buckets for the voters of one idea.
pub const VOTER_BUCKETS: u32 = 16;
/// Attempts before a vote gives up on a contended or throttled store.
/// Vote transactions conflict on a shared shard under DynamoDB's rules
/// (a shard is in every vote's transaction); retried on another shard.
const ATTEMPTS: u32 = 10;

pub fn vote_key(idea: &IdeaId, member: &str) -> Key {
    Key::new(format!("VOTE#{}#{member}", idea.as_str()), "VOTE")
}

pub fn shard_key(idea: &IdeaId, shard: u32) -> Key {
    Key::new(format!("IDEA#{}#VC#{shard:02}", idea.as_str()), "COUNT")
}

fn bucket(member: &str) -> u32 {
    let h = Sha256::digest(member.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % VOTER_BUCKETS
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VoteView {
    pub idea_id: String,
    pub voted: bool,
    pub votes: i64,
}

/// The exact count from the shards, and the number of shard updates seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tally {
    pub votes: i64,
    pub seq: i64,
}

pub async fn tally<T: Table>(app: &App<T>, idea: &IdeaId) -> Result<Tally> {
    let keys: Vec<Key> = (0..app.settings.vote_shards)
        .map(|k| shard_key(idea, k))
        .collect();
    let shards = app.table.get_many(&keys, true).await?;
    let mut t = Tally::default();
    for s in shards {
        t.votes += s.get("votes").and_then(Value::as_i64).unwrap_or(0);
        t.seq += s.get("seq").and_then(Value::as_i64).unwrap_or(0);
    }
    Ok(t)
}

async fn open_idea<T: Table>(
    app: &App<T>,
    caller: &Caller,
    idea: &IdeaId,
) -> Result<ideas::IdeaRow> {
    let row = ideas::load(app, idea, true).await?;
    if row.is_hidden() {
        // Hidden by moderation: it takes no votes, and to voters it does not exist.
        return Err(Error::NotFound("idea"));
    }
    members::require(app, caller).await?;
    if row.status != IdeaStatus::Open {
        return Err(closed(row.status));
    }
    Ok(row)
}

fn closed(status: IdeaStatus) -> Error {
    Error::Conflict(format!(
        "this idea no longer takes votes (it is {})",
        status.as_str()
    ))
}

/// Runs a vote transaction on a random shard, retrying with another shard
/// on contention. Returns whether the vote record changed.
async fn on_shard<T: Table>(
    app: &App<T>,
    idea: &IdeaId,
    record: Write,
    delta: i64,
    event: Write,
) -> Result<bool> {
    for attempt in 0..ATTEMPTS {
        let shard = rand::rng().random_range(0..app.settings.vote_shards);
        let counter = Write::update(
            shard_key(idea, shard),
            Update::default().add("votes", delta).add("seq", 1),
        )
        .when(Cond::AttrAbsent("closed".into()));
        match app
            .table
            .transact(vec![record.clone(), counter, event.clone()])
            .await
        {
            Ok(()) => return Ok(true),
            Err(StoreError::ConditionFailed { index: 0 }) => return Ok(false),
            Err(StoreError::ConditionFailed { index: 1 }) => {
                let row = ideas::load(app, idea, true).await?;
                return Err(closed(row.status));
            }
            Err(StoreError::Conflict | StoreError::Throttled) => {
                let ms = rand::rng().random_range(5..20u64) << attempt.min(5);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Busy)
}

/// `PUT /ideas/{id}/vote`: idempotent; a repeated vote changes nothing.
#[tracing::instrument(skip(app, caller), fields(idea = %idea.as_str()))]
pub async fn cast<T: Table>(app: &App<T>, caller: &Caller, idea: &IdeaId) -> Result<VoteView> {
    caller.require_verified_email()?;
    open_idea(app, caller, idea).await?;
    let member = caller.id.as_str();
    crate::ratelimit::check(app, member, crate::ratelimit::Action::Vote).await?;
    let k = vote_key(idea, member);
    let created = now();
    let record = json!({
        "pk": k.pk, "sk": k.sk, "idea_id": idea.as_str(), "member_id": member,
        "created_at": created,
        "gsi1pk": format!("VOTERS#{}#{:02}", idea.as_str(), bucket(member)),
        "gsi1sk": format!("{created}#{member}"),
        "gsi3pk": format!("MEMBER#{member}"),
        "gsi3sk": format!("VOTE#{created}#{}", idea.as_str()),
    });
    let Value::Object(record) = record else {
        return Err(Error::Store(StoreError::Invalid("vote record".into())));
    };
    let event = Event::new(Kind::VoteCast, member, Some(idea.as_str()), Value::Null);
    if on_shard(app, idea, Write::put_new(record), 1, event.write()).await? {
        crate::metrics::record_vote_cast();
    }
    finish(app, idea, true).await
}

/// `DELETE /ideas/{id}/vote`: idempotent; withdrawing twice changes nothing.
#[tracing::instrument(skip(app, caller), fields(idea = %idea.as_str()))]
pub async fn withdraw<T: Table>(app: &App<T>, caller: &Caller, idea: &IdeaId) -> Result<VoteView> {
    open_idea(app, caller, idea).await?;
    let record = Write::Delete {
        key: vote_key(idea, caller.id.as_str()),
        cond: Some(Cond::Exists),
    };
    let event = Event::new(
        Kind::VoteWithdrawn,
        caller.id.as_str(),
        Some(idea.as_str()),
        Value::Null,
    );
    on_shard(app, idea, record, -1, event.write()).await?;
    finish(app, idea, false).await
}

async fn finish<T: Table>(app: &App<T>, idea: &IdeaId, voted: bool) -> Result<VoteView> {
    let t = tally(app, idea).await?;
    Ok(VoteView {
        idea_id: idea.as_str().to_owned(),
        voted,
        votes: t.votes,
    })
}

/// Writes the shards' sum onto the idea row (for lists and `sort=top`),
/// unless a roll-up that saw more shard updates got there first.
pub async fn rollup<T: Table>(app: &App<T>, idea: &IdeaId) -> Result<()> {
    let t = tally(app, idea).await?;
    let row = ideas::load(app, idea, true).await?;
    if row.votes_seq >= t.seq {
        return Ok(());
    }
    let u = Update::default()
        .set("votes", t.votes)
        .set("votes_seq", t.seq)
        .set("gsi2sk", ideas::top_sk(t.votes, &row.created_at, &row.id));
    match app
        .table
        .transact(vec![
            Write::update(ideas::key(idea), u).when(Cond::LessThan("votes_seq".into(), t.seq))
        ])
        .await
    {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Stops an open idea taking votes and moves it to `to`, atomically: the idea
/// row (status, list partitions, `extra`), every counter shard's `closed`
/// flag and the writes in `also` (an event, a marker) in one write, so no vote
/// can be counted after the change and the change happens once.
pub async fn close<T: Table>(
    app: &App<T>,
    idea: &IdeaId,
    to: IdeaStatus,
    extra: Update,
    also: Vec<Write>,
) -> Result<ideas::IdeaRow> {
    let row = ideas::load(app, idea, true).await?;
    if row.status != IdeaStatus::Open {
        return Err(closed(row.status));
    }
    let (u, listed) = row.relist(extra.set("status", to.as_str()), to);
    let mut writes = vec![Write::update(ideas::key(idea), u)
        .when(Cond::Eq("status".into(), json!("open")).and(listed))];
    for k in 0..app.settings.vote_shards {
        writes.push(Write::update(
            shard_key(idea, k),
            Update::default().set("closed", true),
        ));
    }
    writes.extend(also);
    match app.table.transact(writes).await {
        Ok(()) => ideas::load(app, idea, true).await,
        Err(StoreError::ConditionFailed { index: 0 }) => {
            let row = ideas::load(app, idea, true).await?;
            if row.status == IdeaStatus::Open {
                // Moderation hid or restored it meanwhile: retry from a fresh read.
                return Err(Error::Store(StoreError::Conflict));
            }
            Err(closed(row.status))
        }
        Err(e) => Err(e.into()),
    }
}
