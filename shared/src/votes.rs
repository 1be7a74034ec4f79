//! Votes. The vote record is the truth, and a vote is one conditional write
//! of it: no counter, no outbox item, no transaction. The record's own
//! change is the event (the table's stream on AWS, the embedded store's
//! change feed locally, see `store::feed`): the relay turns it into
//! `vote.cast` for the insights queue (the voter's last active day), and
//! the thresholds aggregator (`crate::thresholds`) counts it onto the idea
//! with the vote totals. A vote's points are read from the records
//! (`points::vote_credits`); its limit too (`ratelimit::check_votes`).
//!
//! Keys:
//! - vote: `VOTERS#{idea}#{bucket} / {member}`, the voters of one idea
//!   spread over [`VOTER_BUCKETS`] partitions (a partition takes 1,000
//!   writes/s, so one idea takes 32,000 votes/s); in gsi3 as
//!   `MEMBER#{member}` / `VOTE#…` (a member's votes: GDPR export and
//!   erasure, `GET /members/me/votes`). Whether a member voted is a GetItem
//!   (the bucket is a hash of the member id).
//!
//! The count is the idea row's `votes`, written by the aggregator in
//! batches: lists, the idea's page and the vote response read that one
//! number, so they agree; it trails the vote records by the aggregation
//! delay (docs/architecture.md). An idea takes votes while it is `open` and
//! while the committee studies it (`under_review`); a decided idea answers
//! 409, and so does an idea merged into another (`crate::merge`: its votes
//! were copied onto the target, marked `merged_from`, and a vote or a
//! withdrawal goes there). docs/architecture.md explains the design and its
//! cost per vote.

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{now, IdeaId, IdeaStatus};
use crate::error::{Error, Result};
use crate::ideas;
use crate::members;
use crate::store::{Cond, Index, Key, Query, StoreError, Table, Write};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Partitions the voters of one idea are spread over.
pub const VOTER_BUCKETS: u32 = 32;
/// Attempts of a vote write on a throttled or contended store.
const ATTEMPTS: u32 = 6;

pub fn bucket(member: &str) -> u32 {
    let h = Sha256::digest(member.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % VOTER_BUCKETS
}

/// The partitions of an idea's voters begin with this (the change
/// feed's filter names it too: store/feed.rs, like the template's).
pub const VOTERS_PREFIX: &str = "VOTERS#";

/// A vote record's sort key in its member's list of votes (gsi3) begins
/// with this: `VOTE#{created_at}#{idea}`, so a member's votes read by time.
pub const MEMBER_VOTE_PREFIX: &str = "VOTE#";

/// The partition of one bucket of an idea's voters.
pub fn voters_pk(idea: &str, bucket: u32) -> String {
    format!("{VOTERS_PREFIX}{idea}#{bucket:02}")
}

/// A vote record's gsi3 sort key (its place in the member's votes).
pub fn member_vote_sk(created_at: &str, idea: &str) -> String {
    format!("{MEMBER_VOTE_PREFIX}{created_at}#{idea}")
}

/// All of a member's votes, on gsi3 under the member's partition.
pub fn member_votes() -> crate::store::SortKey {
    crate::store::SortKey::BeginsWith(MEMBER_VOTE_PREFIX.into())
}

/// A member's votes cast at `since` or later, on gsi3.
pub fn member_votes_since(since: &str) -> crate::store::SortKey {
    crate::store::SortKey::Between(
        format!("{MEMBER_VOTE_PREFIX}{since}"),
        format!("{MEMBER_VOTE_PREFIX}~"),
    )
}

pub fn vote_key(idea: &IdeaId, member: &str) -> Key {
    Key::new(voters_pk(idea.as_str(), bucket(member)), member)
}

/// The idea a vote record's partition belongs to.
pub fn idea_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix(VOTERS_PREFIX)?
        .rsplit_once('#')
        .map(|(i, _)| i)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VoteView {
    pub idea_id: String,
    pub voted: bool,
    /// The idea's count as last aggregated, with the change this request
    /// made (so a voter sees their own vote at once); other members' recent
    /// votes show after the aggregation delay.
    pub votes: i64,
}

async fn votable<T: Table>(app: &App<T>, caller: &Caller, idea: &IdeaId) -> Result<ideas::IdeaRow> {
    let row = ideas::load(app, idea, false).await?;
    if row.is_hidden() {
        // Hidden by moderation: it takes no votes, and to voters it does not exist.
        return Err(Error::NotFound("idea"));
    }
    members::require_cheap(app, caller).await?;
    if let Some(into) = &row.merged_into {
        // Its votes joined the target's (`crate::merge`): that one counts now.
        return Err(Error::Conflict(format!(
            "this idea was merged into {into}: vote for that one"
        )));
    }
    if !takes_votes(row.status) {
        return Err(closed(row.status));
    }
    Ok(row)
}

/// Open ideas and ideas under the committee's review take votes (the
/// count keeps growing while the committee studies it); decided ones not.
pub fn takes_votes(status: IdeaStatus) -> bool {
    matches!(status, IdeaStatus::Open | IdeaStatus::UnderReview)
}

fn closed(status: IdeaStatus) -> Error {
    Error::Conflict(format!(
        "this idea no longer takes votes (it is {})",
        status.as_str()
    ))
}

/// One conditional write, retried on throttling or a conflict with a
/// transaction (GDPR erasure) in flight on the record. Returns whether the
/// record changed.
async fn write_once<T: Table>(app: &App<T>, w: Write) -> Result<bool> {
    for attempt in 0..ATTEMPTS {
        match app.table.transact(vec![w.clone()]).await {
            Ok(()) => return Ok(true),
            Err(StoreError::ConditionFailed { .. }) => return Ok(false),
            Err(StoreError::Conflict | StoreError::Throttled) => {
                crate::retry::pause(attempt).await;
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
    let row = votable(app, caller, idea).await?;
    let member = caller.id.as_str();
    crate::ratelimit::check_votes(app, member).await?;
    let k = vote_key(idea, member);
    let created = now();
    let record = json!({
        "pk": k.pk, "sk": k.sk, "vote_id": ulid::Ulid::new().to_string(),
        "idea_id": idea.as_str(), "member_id": member, "author_id": row.author_id,
        "created_at": created,
        "gsi3pk": crate::members::pk(member),
        "gsi3sk": member_vote_sk(&created, idea.as_str()),
    });
    let Value::Object(mut record) = record else {
        return Err(Error::Store(StoreError::Invalid("vote record".into())));
    };
    // A vote on a challenge's proposal names it (its event carries it to
    // insights: participation per challenge).
    if let Some(c) = &row.challenge_id {
        record.insert("challenge_id".into(), json!(c));
    }
    let created = write_once(app, Write::put_new(record)).await?;
    if created {
        crate::metrics::record_vote_cast();
    }
    Ok(VoteView {
        idea_id: idea.as_str().to_owned(),
        voted: true,
        votes: row.votes + i64::from(created),
    })
}

/// `DELETE /ideas/{id}/vote`: idempotent; withdrawing twice changes nothing.
#[tracing::instrument(skip(app, caller), fields(idea = %idea.as_str()))]
pub async fn withdraw<T: Table>(app: &App<T>, caller: &Caller, idea: &IdeaId) -> Result<VoteView> {
    let row = votable(app, caller, idea).await?;
    // The votes limit counts current votes (`ratelimit::check_votes`);
    // withdrawals have the window counter, so a cast-and-withdraw loop is
    // limited too. Withdrawals are rare: this write is not on the hot path.
    crate::ratelimit::check(app, caller.id.as_str(), crate::ratelimit::Action::Vote).await?;
    let record = Write::Delete {
        key: vote_key(idea, caller.id.as_str()),
        cond: Some(Cond::Exists),
    };
    let deleted = write_once(app, record).await?;
    Ok(VoteView {
        idea_id: idea.as_str().to_owned(),
        voted: false,
        votes: (row.votes - i64::from(deleted)).max(0),
    })
}

/// Whether `member` voted for `idea` (one GetItem).
pub async fn has_voted<T: Table>(app: &App<T>, idea: &IdeaId, member: &str) -> Result<bool> {
    Ok(app
        .table
        .get(&vote_key(idea, member), false)
        .await?
        .is_some())
}

/// The voters of an idea, bucket by bucket, in pages of the primary index.
pub async fn voters<T: Table>(app: &App<T>, idea: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for b in 0..VOTER_BUCKETS {
        let mut start = None;
        loop {
            let page = app
                .table
                .query(
                    &Query::new(Index::Primary, voters_pk(idea, b))
                        .limit(1000)
                        .start_after(start.take()),
                )
                .await?;
            out.extend(page.items.iter().filter_map(|i| {
                i.get("member_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }));
            match page.last_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
    }
    Ok(out)
}
