//! The `thresholds` aggregator: it counts votes from the change feed (the
//! table's stream on AWS, the embedded store's feed locally), in batches,
//! onto the idea, and moves an idea that reaches the campaign threshold
//! `open → under_review` exactly once.
//!
//! Per batch and per idea it makes one conditional write of the idea's
//! tally (`IDEA#{id} / TALLY`: the count, a version, and per voter bucket
//! the sequence number of the last vote record change it counted), then one
//! roll-up of the count onto the idea row (lists, `sort=top`, the idea's
//! page). Changes of one voter bucket (one partition key, so one stream
//! shard) come in order: the function reads each shard one batch at a time
//! (`ParallelizationFactor: 1`; above 1, Lambda keeps order per item only),
//! and the embedded feed keeps one global order. So a redelivered change has
//! a sequence number at or below its bucket's watermark and is not counted
//! again: a batch delivered twice, or split and retried, changes nothing. No
//! vote request writes a shared item.
//!
//! Crossing the threshold is the roll-up's own condition (`status = open`)
//! with the `idea.reached_threshold` event in the same write; the idea keeps
//! counting while the committee studies it.
//!
//! Merges (`crate::merge`): the votes a merge copies onto its target are
//! vote records like any other (marked `merged_from`), counted here once
//! per member, so a threshold the merge crosses moves the target to the
//! committee through this same roll-up. A merged idea never reaches the
//! threshold, and the vote record changes of a merged idea (a vote that
//! raced the merge, or a copy onto an idea merged since) are forwarded to
//! its target: see `merge::forward`.

use crate::app::App;
use crate::domain::{now, IdeaId, IdeaStatus};
use crate::error::{Error, Result};
use crate::events::{Event, Kind};
use crate::ideas;
use crate::store::feed::{seq_cmp, Change, ChangeFeed, ChangeName};
use crate::store::{Cond, Key, StoreError, Table, Update, Write};
use crate::votes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;

/// The aggregator's name: its feed reader, its log and metric dimension.
pub const CONSUMER: &str = "thresholds";
/// The review queue: ideas under review, oldest first (gsi3).
pub const REVIEW_PK: &str = "REVIEW";
/// Changes read from the embedded feed per batch (a Lambda batch on AWS).
pub const FEED_BATCH: usize = 1000;
/// Ideas of one batch aggregated at once.
const CONCURRENT_IDEAS: usize = 16;
/// Attempts per idea and batch on a contended or throttled store.
const ATTEMPTS: u32 = 8;

pub fn tally_key(idea: &str) -> Key {
    Key::new(crate::ideas::pk(idea), "TALLY")
}

/// The aggregator's state for one idea.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub votes: i64,
    /// Incremented by every write: the roll-up's order, the write's guard.
    pub ver: i64,
    /// Per voter partition (`VOTERS#{idea}#{bucket}`'s bucket): the sequence
    /// number of the last change counted.
    #[serde(default)]
    pub seqs: BTreeMap<String, String>,
    /// Votes cast and withdrawn, ever (counted with `votes`, so exactly
    /// once): insights' vote totals and the author's `votes_drawn` are read
    /// from the tallies (`TALLIES_PK` in gsi1), so no vote event writes a
    /// shared totals item or the author's score.
    #[serde(default)]
    pub cast: i64,
    #[serde(default)]
    pub withdrawn: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_id: Option<String>,
    /// Votes copied onto the idea by merges (`crate::merge`), ever: in
    /// `votes`, not in `cast` (no member cast them again). A copy withdrawn
    /// is in `withdrawn`: `votes = cast + merged - withdrawn`.
    #[serde(default)]
    pub merged: i64,
}

/// Partitions of gsi1 listing the tallies (a tally is rewritten once per
/// batch; spread so the index's partitions take launch night's rate).
pub const TALLY_SHARDS: u32 = 16;

pub fn tallies_pk(shard: u32) -> String {
    format!("TALLIES#{shard:02}")
}

fn tally_shard(idea: &str) -> u32 {
    votes::bucket(idea) % TALLY_SHARDS
}

/// A tally as stored: its key and its gsi1 entry.
pub fn tally_item(idea: &str, t: &Tally) -> Result<crate::store::Item> {
    let key = tally_key(idea);
    let Value::Object(mut body) = serde_json::to_value(t).unwrap_or(Value::Null) else {
        return Err(Error::Store(StoreError::Invalid("tally".into())));
    };
    body.insert("pk".into(), json!(key.pk));
    body.insert("sk".into(), json!(key.sk));
    body.insert("idea_id".into(), json!(idea));
    body.insert("gsi1pk".into(), json!(tallies_pk(tally_shard(idea))));
    body.insert("gsi1sk".into(), json!(idea));
    Ok(body)
}

/// Every idea's tally, read from the gsi1 shards (insights, ambassadors).
pub async fn all_tallies<T: Table>(app: &App<T>) -> Result<Vec<Tally>> {
    let mut out = Vec::new();
    for shard in 0..TALLY_SHARDS {
        let q = crate::store::Query::new(crate::store::Index::Gsi1, tallies_pk(shard)).limit(1000);
        for i in crate::store::all_pages(&app.table, q).await? {
            out.push(
                serde_json::from_value(Value::Object(i))
                    .map_err(|e| Error::Store(StoreError::unavailable(e)))?,
            );
        }
    }
    Ok(out)
}

/// One counted change: its position in the batch, bucket, sequence, ±1,
/// and what a merge's forwarding needs of its record.
#[derive(Debug, Clone, PartialEq)]
struct Delta {
    index: usize,
    bucket: String,
    seq: String,
    delta: i64,
    author: Option<String>,
    /// A copy made by a merge (`merged_from`).
    copy: bool,
    member: String,
    vote_id: String,
    created_at: String,
}

/// The vote record changes of a batch, per idea.
fn deltas(changes: &[Change]) -> BTreeMap<String, Vec<Delta>> {
    let mut out: BTreeMap<String, Vec<Delta>> = BTreeMap::new();
    for (index, c) in changes.iter().enumerate() {
        let delta = match c.name {
            ChangeName::Insert => 1,
            ChangeName::Remove => -1,
            ChangeName::Modify => continue,
        };
        let Some(idea) = votes::idea_of_pk(&c.pk) else {
            continue;
        };
        let bucket = c.pk.rsplit('#').next().unwrap_or_default().to_owned();
        let text = |a: &str| {
            c.image()
                .and_then(|i| i.get(a))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        out.entry(idea.to_owned()).or_default().push(Delta {
            index,
            bucket,
            seq: c.seq.clone(),
            delta,
            author: text("author_id"),
            copy: text(crate::merge::MERGED_FROM).is_some(),
            member: text("member_id").unwrap_or_else(|| c.sk.clone()),
            vote_id: text("vote_id").unwrap_or_else(|| format!("seq.{}", c.seq)),
            created_at: text("created_at").unwrap_or_default(),
        });
    }
    out
}

/// Aggregates one batch of changes (in feed order). On failure returns the
/// position of the first change that must be delivered again (Lambda's
/// partial batch response names its sequence number); what was counted
/// before it is not counted twice on redelivery.
pub async fn apply<T: Table>(app: &App<T>, changes: &[Change]) -> std::result::Result<(), usize> {
    let per_idea = deltas(changes);
    let results = futures::stream::iter(per_idea.into_iter().map(|(idea, ds)| async move {
        let first = ds.first().map_or(0, |d| d.index);
        match aggregate(app, &idea, &ds).await {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(idea = %idea, error = %e, "vote aggregation failed; the batch is retried from here");
                Some(first)
            }
        }
    }))
    .buffer_unordered(CONCURRENT_IDEAS)
    .collect::<Vec<_>>()
    .await;
    match results.into_iter().flatten().min() {
        Some(i) => Err(i),
        None => Ok(()),
    }
}

async fn backoff(attempt: u32) {
    crate::retry::pause(attempt).await;
}

fn is_retryable(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Conflict | StoreError::Throttled | StoreError::ConditionFailed { .. }
    )
}

/// Counts one idea's changes of a batch, then rolls the count up.
async fn aggregate<T: Table>(app: &App<T>, idea: &str, ds: &[Delta]) -> Result<()> {
    let key = tally_key(idea);
    let mut attempt = 0;
    let tally = loop {
        let item = app.table.get(&key, true).await?;
        let old: Tally = match &item {
            Some(i) => serde_json::from_value(Value::Object(i.clone()))
                .map_err(|e| Error::Store(StoreError::unavailable(e)))?,
            None => Tally::default(),
        };
        let mut next = old.clone();
        for d in ds {
            let seen = next
                .seqs
                .get(&d.bucket)
                .is_some_and(|w| seq_cmp(&d.seq, w) != Ordering::Greater);
            if !seen {
                next.votes += d.delta;
                if d.delta > 0 && d.copy {
                    next.merged += d.delta;
                } else if d.delta > 0 {
                    next.cast += d.delta;
                } else {
                    next.withdrawn -= d.delta;
                }
                if next.author_id.is_none() {
                    next.author_id.clone_from(&d.author);
                }
                next.seqs.insert(d.bucket.clone(), d.seq.clone());
            }
        }
        if next == old {
            break old;
        }
        next.ver += 1;
        let body = tally_item(idea, &next)?;
        let guard = if item.is_some() {
            Cond::Eq("ver".into(), json!(old.ver))
        } else {
            Cond::NotExists
        };
        match app.table.transact(vec![Write::put(body).when(guard)]).await {
            Ok(()) => break next,
            Err(e) if is_retryable(&e) && attempt < ATTEMPTS => {
                attempt += 1;
                backoff(attempt).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let Some(id) = IdeaId::parse(idea) else {
        return Ok(());
    };
    let mut attempt = 0;
    let mut forwarded = false;
    loop {
        match rollup(app, &id, &tally, ds, &mut forwarded).await {
            Err(Error::Store(e)) if is_retryable(&e) && attempt < ATTEMPTS => {
                attempt += 1;
                backoff(attempt).await;
            }
            other => return other,
        }
    }
}

/// Writes the tally's count onto the idea row unless a newer roll-up got
/// there first, and moves an open idea at the threshold to the committee
/// in the same write (with its event). The changes of a merged idea are
/// first forwarded to its target (once per batch: `forwarded`).
async fn rollup<T: Table>(
    app: &App<T>,
    idea: &IdeaId,
    t: &Tally,
    ds: &[Delta],
    forwarded: &mut bool,
) -> Result<()> {
    let row = match ideas::load(app, idea, true).await {
        Ok(r) => r,
        // A vote for an idea that no longer exists: nothing to show it on.
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    if let (Some(into), false) = (row.merged_into.as_deref(), *forwarded) {
        // Every change of the batch, counted before or not: a redelivery
        // forwards again, and forwarding twice changes nothing.
        let changes: Vec<crate::merge::Forwarded> = ds
            .iter()
            .map(|d| crate::merge::Forwarded {
                cast: d.delta > 0,
                member: d.member.clone(),
                vote_id: d.vote_id.clone(),
                created_at: d.created_at.clone(),
            })
            .collect();
        crate::merge::forward(app, &row.id, into, &changes).await?;
        *forwarded = true;
    }
    let newer = t.ver > row.votes_seq;
    // The count this write leaves on the row: the tally's if newer (an
    // older tally never replaces a newer roll-up, nor decides the threshold).
    let (votes, seq) = if newer {
        (t.votes, t.ver)
    } else {
        (row.votes, row.votes_seq)
    };
    let crossing = row.status == IdeaStatus::Open
        && !row.is_merged()
        && votes >= 0
        && votes as u64 >= app.settings().vote_threshold;
    if !newer && !crossing {
        return Ok(());
    }
    let mut u = Update::default()
        .set("votes", votes)
        .set("votes_seq", seq)
        .set("gsi2sk", ideas::top_sk(votes, &row.created_at, &row.id));
    // The home list's sort key, on a listed idea only (a hidden or merged
    // one has no gsi4pk, and a lone sort key puts nothing in the index).
    if row.moderation.is_none() && !row.is_merged() {
        u = u.set("gsi4sk", ideas::top_sk(votes, &row.created_at, &row.id));
    }
    // Any other change of the row since it was read (a status change,
    // moderation, a merge, another roll-up) fails this write, which is
    // then retried.
    let mut cond = Cond::Eq("votes_seq".into(), json!(row.votes_seq))
        .and(Cond::Eq("status".into(), json!(row.status.as_str())))
        .and(row.merge_unchanged());
    let mut writes = Vec::new();
    if crossing {
        let (u2, c2, event) = review(app, &row, u, votes);
        u = u2;
        cond = cond.and(c2);
        writes.push(event);
    }
    writes.insert(0, Write::update(ideas::key(idea), u).when(cond));
    app.table.transact(writes).await?;
    if crossing {
        crate::metrics::record_threshold_reached();
        tracing::info!(idea = %row.id, votes, "idea reached the threshold");
    }
    Ok(())
}

/// The move to the committee's review: the row's new status, review-queue
/// and list keys added to `u`, the condition that it is still listed as
/// read, and the `idea.reached_threshold` event.
fn review<T: Table>(
    app: &App<T>,
    row: &ideas::IdeaRow,
    u: Update,
    votes: i64,
) -> (Update, Cond, Write) {
    let at = now();
    let u = u
        .set("status", IdeaStatus::UnderReview.as_str())
        .set("reached_threshold_at", at.as_str())
        .set("gsi3pk", REVIEW_PK)
        .set("gsi3sk", format!("{at}#{}", row.id));
    let (u, listed) = row.relist(u, IdeaStatus::UnderReview);
    let event = Event::new(
        Kind::IdeaReachedThreshold,
        &row.author_id,
        Some(&row.id),
        json!({"votes": votes, "threshold": app.settings().vote_threshold, "title": row.title}),
    );
    (u, listed, event.write())
}

/// Sends an open idea to the committee as reaching the threshold does
/// (tests and tools that need an idea under review without its votes).
pub async fn send_to_review<T: Table>(app: &App<T>, idea: &IdeaId) -> Result<ideas::IdeaRow> {
    let row = ideas::load(app, idea, true).await?;
    if row.status != IdeaStatus::Open {
        return Err(Error::Conflict(format!(
            "the idea is {}, not open",
            row.status.as_str()
        )));
    }
    let (u, listed, event) = review(app, &row, Update::default(), row.votes);
    let cond = Cond::Eq("status".into(), json!("open")).and(listed);
    app.table
        .transact(vec![Write::update(ideas::key(idea), u).when(cond), event])
        .await?;
    ideas::load(app, idea, true).await
}

/// The Lambda entry's work: one DynamoDB stream batch (filtered to vote
/// records) aggregated; the response names the first record to deliver
/// again (`ReportBatchItemFailures`), if any.
pub async fn stream_batch<T: Table>(app: &App<T>, batch: &Value) -> Value {
    crate::access::function("thresholds", stream_batch_inner(app, batch)).await
}

async fn stream_batch_inner<T: Table>(app: &App<T>, batch: &Value) -> Value {
    app.refresh_or_keep().await;
    let empty = Vec::new();
    let records = batch
        .get("Records")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    // Positions in `records` of the changes, to name a failed one.
    let mut changes = Vec::with_capacity(records.len());
    let mut at = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        match Change::from_stream_record(r) {
            Some(c) => {
                changes.push(c);
                at.push(i);
            }
            // Nothing in it to count; retrying it would hold the shard
            // (the function retries until records expire), so it is logged
            // and passed over.
            None => tracing::error!(
                record = i,
                "unreadable stream record skipped: no vote to count"
            ),
        }
    }
    match apply(app, &changes).await {
        Ok(()) => json!({"batchItemFailures": []}),
        Err(i) => {
            let seq = at
                .get(i)
                .and_then(|r| records.get(*r))
                .map(|r| r["dynamodb"]["SequenceNumber"].clone())
                .unwrap_or(Value::Null);
            json!({"batchItemFailures": [{"itemIdentifier": seq}]})
        }
    }
}

/// Reads the embedded feed as the aggregator's reader until it is empty
/// (the local pipeline's loop, and tests that cast votes directly).
/// Returns how many changes it read.
pub async fn drain_feed<T: Table + ChangeFeed>(app: &App<T>) -> Result<usize> {
    app.refresh_or_keep().await;
    let mut n = 0;
    loop {
        let changes = app.table.changes(CONSUMER, FEED_BATCH).await?;
        let Some(last) = changes.last() else {
            return Ok(n);
        };
        match apply(app, &changes).await {
            Ok(()) => {
                app.table.ack(CONSUMER, &last.seq).await?;
                n += changes.len();
            }
            Err(i) => {
                if i > 0 {
                    app.table.ack(CONSUMER, &changes[i - 1].seq).await?;
                }
                return Err(Error::Busy);
            }
        }
    }
}

/// An idea's tally as the aggregator left it.
pub async fn tally<T: Table>(app: &App<T>, idea: &str) -> Result<Tally> {
    match app.table.get(&tally_key(idea), true).await? {
        Some(i) => serde_json::from_value(Value::Object(i))
            .map_err(|e| Error::Store(StoreError::unavailable(e))),
        None => Ok(Tally::default()),
    }
}
