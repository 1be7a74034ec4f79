//! Merging duplicate ideas: `POST /ideas/{id}/merge` (`moderator` group)
//! `{"into", "reason"}` merges the idea (the *source*) into another (the
//! *target*).
//!
//! **The request** is one transaction: the source's row gets `merged_into`
//! and `merge` (`{into, reason, at}`), leaves every list (its gsi1, gsi2 and
//! gsi4 attributes removed, as a hidden idea's; an idea under review also
//! leaves the committee's queue, gsi3), the search index (its postings
//! deleted: a merge is for good) and the answer queue (`crate::answers`: its
//! author is told why by the merge's mail), on the condition that it is still
//! unmerged, visible and in the status read; a condition check that the
//! target exists, is visible and is not merged itself (so two crossed merges
//! cannot both commit); and the `idea.merged` event (outbox). The same
//! request again answers the same idea, changes nothing; a merge into
//! another idea after that is 409. Only an `open` or `under_review` idea can
//! be merged (a decided one has had its answer). The merged idea stays
//! readable (`GET /ideas/{id}`, its comments) and takes no votes,
//! withdrawals or follows any more (409 naming the target).
//!
//! **The copy is a job, in pages.** The emails consumer (it already runs
//! the decisions' fan-out pages, and it tells the author) receives
//! `idea.merged`: it mails the author once (the claim of every mail), and
//! starts 64 chains — one per voter bucket and one per follower bucket of
//! the source — in one transaction with its marker, so a redelivery starts
//! nothing twice. A `merge.page` message reads up to [`PAGE`] records of its
//! bucket (one strongly consistent Query) and copies each:
//!
//! - a vote becomes a vote record on the target (`votes::vote_key(target,
//!   member)`, the member's original `created_at`, marked
//!   [`MERGED_FROM`]), in one transaction with a mark on the source's record
//!   ([`COPIED_TO`]): the copy is a conditional put (the member has no
//!   record on the target: one who voted for both counts once), the mark is
//!   conditional on the source's record still being there and not copied
//!   yet. So a vote is copied at most once, ever: a redelivered page, a page
//!   run again after the member withdrew the copy from the target, or the
//!   aggregator forwarding the same record (below) find the mark and copy
//!   nothing. A member who already voted for the target has their source
//!   vote marked all the same (counted once, for good). Each copy is its own
//!   transaction (one failed condition must not cancel the others' copies);
//!   at most [`PAGE_CONCURRENCY`] at once.
//! - a follow record with `following: true` becomes one on the target
//!   (`follows::key(target, member)`, source `merge`), put only when the
//!   member has no record there: an explicit unfollow of the target sticks.
//!   Voters follow without a record (`crate::follows`): their copied votes
//!   make them followers of the target.
//!
//! Then the page's marker (`DONE#merge#{page event}`) with the next page's
//! event when the bucket has more, in one transaction; a delivery that finds
//! its marker does nothing. The aggregator counts the copies from the
//! stream like any vote (`crate::thresholds`), so a threshold the merge
//! crosses moves the target to the committee once, through the normal
//! roll-up. Copies earn no vote points (`points::vote_credits` skips them),
//! carry no `vote.cast` event (`events::from_change`), and are listed in
//! `GET /members/me/votes` (the merged idea is not: it is in no list).
//!
//! **A vote racing the merge.** A vote (or a withdrawal) that read the
//! source's row before the merge committed can write its record after the
//! page passed its bucket. Every such record is written after the merge
//! committed; the thresholds aggregator reads the row of the idea of every
//! vote record change it counts, consistently, after the change was written,
//! so it sees `merged_into` and forwards the batch's changes of that idea
//! ([`forward`]): a cast is copied as a page copies it (same transaction,
//! same mark), a withdrawal deletes the copy on the target on the condition
//! that it is that source's copy (`merged_from`: never the member's own
//! vote for the target) and that the source's record is still gone (so a
//! batch delivered again after a new vote undoes nothing). And every record
//! written before the page's read
//! is seen by the page, which reads after the merge committed (the event is
//! written in the merge's transaction). Both paths may meet on one record:
//! the mark makes the second a no-op, and a copy made before a withdrawal
//! is deleted by the withdrawal's forward (which runs after it). So the
//! target counts each member of either idea once, exactly. The same holds
//! for a copy reaching an idea merged meanwhile (a chain A → B → C).
//!
//! What is not forwarded: a follow or a comment racing the merge (follow
//! records are not streamed); such a member follows the merged idea only.
//! Unfollowing the merged idea is still allowed and changes nothing on the
//! target. The rate limit on votes reads a member's recent vote records,
//! copies included: a copy of a vote cast within the window counts twice
//! there until the window passes.
//!
//! Keys: none of its own; the source's row (`merged_into`, `merge`,
//! `merged_by`), vote records with `merged_from` / `copied_to`, follow
//! records with `merged_from`, markers `DONE#merge#{event}.start` and
//! `DONE#merge#{page event}`. Costs: docs/architecture.md, "Merging ideas".

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{now, Errors, FieldError, IdeaId, IdeaStatus};
use crate::error::{commit, Error, Result};
use crate::events::{consumed_marker, marker_key, Event, Kind};
use crate::ideas::{self, IdeaView};
use crate::store::{Cond, Index, Item, Key, Query, StoreError, Table, Update, Write};
use crate::{follows, moderation, search, votes};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

/// The markers' consumer name (`DONE#merge#…`).
pub const CONSUMER: &str = "merge";
/// Records one `merge.page` message copies: one Query (~50 KB of votes,
/// 13 read units), at most this many small transactions, well inside a
/// 30 s consumer invocation (the bound is tested).
pub const PAGE: u32 = 200;
/// Copies of a page in flight at once.
pub const PAGE_CONCURRENCY: usize = 16;
/// On a vote or follow record copied by a merge: the idea it was copied from.
pub const MERGED_FROM: &str = "merged_from";
/// On a source's vote record, once copied: the idea it was copied to.
pub const COPIED_TO: &str = "copied_to";
/// Characters of a merge's reason (as the committee's reasons).
const MIN_REASON: usize = 10;
const MAX_REASON: usize = 2000;
/// Attempts of the merge's transaction, and of one copy.
const ATTEMPTS: u32 = 12;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    pub into: Option<String>,
    pub reason: Option<String>,
}

async fn backoff(attempt: u32) {
    crate::retry::pause(attempt).await;
}

/// The target and the reason, or a 422 naming each bad field.
fn validate(id: &IdeaId, req: MergeRequest) -> Result<(IdeaId, String)> {
    let mut errs = Errors::default();
    let into = match req.into.as_deref().map(str::trim) {
        None | Some("") => {
            errs.push(FieldError::new(
                "into",
                "is required: the id of the idea to merge into",
            ));
            None
        }
        Some(s) => match IdeaId::parse(s) {
            None => {
                errs.push(FieldError::new("into", "must be the id of an idea"));
                None
            }
            Some(i) if &i == id => {
                errs.push(FieldError::new(
                    "into",
                    "must be another idea than the one merged",
                ));
                None
            }
            Some(i) => Some(i),
        },
    };
    let reason = req.reason.map(|r| r.trim().to_owned()).unwrap_or_default();
    let n = reason.chars().count();
    if n < MIN_REASON {
        errs.push(FieldError::new(
            "reason",
            format!("is required: at least {MIN_REASON} characters the author will read"),
        ));
    } else if n > MAX_REASON {
        errs.push(FieldError::new(
            "reason",
            format!("must be at most {MAX_REASON} characters (it is {n})"),
        ));
    } else if let Err(e) = crate::domain::refuse_controls("reason", &reason, true) {
        errs.push(e);
    }
    match into {
        Some(into) if errs.is_empty() => Ok((into, reason)),
        _ => Err(Error::Invalid(errs.0)),
    }
}

fn target_conflict(message: String) -> Error {
    Error::ConflictOn(FieldError::new("into", message))
}

/// `POST /ideas/{id}/merge`: merges the idea into `into` (see the module's
/// doc). Idempotent: the same merge again answers the same idea.
#[tracing::instrument(skip(app, caller, req), fields(idea = %id.as_str()))]
pub async fn merge<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &IdeaId,
    req: MergeRequest,
) -> Result<IdeaView> {
    moderation::require_moderator(caller)?;
    let (into, reason) = validate(id, req)?;
    for attempt in 0..ATTEMPTS {
        let source = ideas::load_full(app, id, true).await?;
        match source.merged_into.as_deref() {
            Some(m) if m == into.as_str() => return Ok(view(source)),
            Some(m) => {
                return Err(Error::Conflict(format!(
                    "this idea was already merged into {m}; it cannot be merged into another"
                )))
            }
            None => {}
        }
        if source.is_hidden() {
            return Err(Error::Conflict(
                "this idea is hidden by moderation: restore it before merging it".into(),
            ));
        }
        if !votes::takes_votes(source.status) {
            return Err(Error::Conflict(format!(
                "a decided idea cannot be merged (this one is {})",
                source.status.as_str()
            )));
        }
        let target = match ideas::load(app, &into, true).await {
            Ok(t) => t,
            Err(Error::NotFound(_)) => {
                return Err(target_conflict(format!(
                    "no idea {} to merge into",
                    into.as_str()
                )))
            }
            Err(e) => return Err(e),
        };
        if let Some(m) = &target.merged_into {
            return Err(target_conflict(format!(
                "idea {} was itself merged into {m}: merge into {m}",
                into.as_str()
            )));
        }
        if target.is_hidden() {
            return Err(target_conflict(format!(
                "idea {} is hidden by moderation: it cannot take a merge",
                into.as_str()
            )));
        }
        let info = ideas::Merge {
            into: into.as_str().to_owned(),
            reason: reason.clone(),
            at: now(),
        };
        let mut u = Update::default()
            .set("merged_into", into.as_str())
            .set("merge", serde_json::to_value(&info).unwrap_or(Value::Null))
            .set("merged_by", caller.id.as_str());
        for a in ["gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi4pk", "gsi4sk"] {
            u = u.remove(a);
        }
        if source.status == IdeaStatus::UnderReview {
            // Out of the committee's queue: the target carries its votes.
            u = u.remove("gsi3pk").remove("gsi3sk");
        }
        let source_cond = Cond::Exists
            .and(Cond::AttrAbsent("merged_into".into()))
            .and(Cond::AttrAbsent("moderation".into()))
            .and(Cond::Eq("status".into(), json!(source.status.as_str())));
        let target_cond = Cond::Exists
            .and(Cond::AttrAbsent("merged_into".into()))
            .and(Cond::AttrAbsent("moderation".into()));
        let event = Event::new(
            Kind::IdeaMerged,
            &source.author_id,
            Some(&source.id),
            json!({
                "into": into.as_str(), "into_title": target.title,
                "into_author": target.author_id, "reason": reason,
                "title": source.title, "by": caller.id.as_str(),
            }),
        );
        let mut writes = vec![
            Write::update(ideas::key(id), u).when(source_cond),
            Write::Check {
                key: ideas::key(&into),
                cond: target_cond,
            },
            event.write(),
        ];
        writes.extend(search::posting_deletes(&source));
        // Out of the answer queue: its author is told why, by the merge's mail.
        writes.push(crate::answers::answered_write(
            &source.created_at,
            &source.id,
        ));
        match app.table.transact(writes).await {
            Ok(()) => {
                tracing::info!(idea = %source.id, into = %into.as_str(), "idea merged");
                return Ok(view(ideas::load_full(app, id, true).await?));
            }
            // The source or the target changed since read (merged, hidden,
            // decided, a crossed merge), or a transaction held one of them:
            // read again, which decides.
            Err(
                StoreError::ConditionFailed { .. } | StoreError::Conflict | StoreError::Throttled,
            ) => backoff(attempt).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Busy)
}

fn view(row: ideas::IdeaRow) -> IdeaView {
    let votes = row.votes;
    row.view(votes)
}

/// One write group, run again when a conflict or throttling cancelled it;
/// `Ok(Err(key))` when the condition of the write of item `key` failed.
async fn attempt<T: Table>(
    table: &T,
    writes: &[Write],
) -> Result<std::result::Result<(), Option<Key>>> {
    for n in 0..ATTEMPTS {
        match table.transact(writes.to_vec()).await {
            Ok(()) => return Ok(Ok(())),
            Err(StoreError::ConditionFailed { key, .. }) => return Ok(Err(key)),
            Err(StoreError::Conflict | StoreError::Throttled) => backoff(n).await,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Busy)
}

/// A source's vote as copied onto the target.
fn vote_copy(
    source: &str,
    into: &IdeaId,
    into_author: &str,
    member: &str,
    vote_id: &str,
    created_at: &str,
) -> Item {
    let k = votes::vote_key(into, member);
    let mut item = Item::new();
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert(
        "vote_id".into(),
        json!(format!("{vote_id}.{}", into.as_str())),
    );
    item.insert("idea_id".into(), json!(into.as_str()));
    item.insert("member_id".into(), json!(member));
    item.insert("author_id".into(), json!(into_author));
    item.insert("created_at".into(), json!(created_at));
    item.insert(MERGED_FROM.into(), json!(source));
    item.insert("gsi3pk".into(), json!(crate::members::pk(member)));
    item.insert(
        "gsi3sk".into(),
        json!(crate::votes::member_vote_sk(created_at, into.as_str())),
    );
    item
}

/// Copies `member`'s vote for `source` onto `into`, at most once ever (see
/// the module's doc): the copy and the source record's mark in one
/// transaction. Returns whether a copy was made.
async fn copy_vote<T: Table>(
    app: &App<T>,
    source: &IdeaId,
    into: &IdeaId,
    into_author: &str,
    member: &str,
    vote_id: &str,
    created_at: &str,
) -> Result<bool> {
    let copy = vote_copy(
        source.as_str(),
        into,
        into_author,
        member,
        vote_id,
        created_at,
    );
    let copy_key = votes::vote_key(into, member);
    let mark = Write::update(
        votes::vote_key(source, member),
        Update::default().set(COPIED_TO, into.as_str()),
    )
    .when(Cond::Exists.and(Cond::AttrAbsent(COPIED_TO.into())));
    match attempt(&app.table, &[Write::put_new(copy), mark.clone()]).await? {
        Ok(()) => Ok(true),
        // The member has a vote for the target already (their own, or a
        // copy from another merge): counted once; the source's vote is
        // marked so that no later run copies it.
        Err(Some(k)) if k == copy_key => {
            let _ = attempt(&app.table, &[mark]).await?;
            Ok(false)
        }
        // Copied already, or withdrawn (the withdrawal's forward, or the
        // page's read, has the last word).
        Err(_) => Ok(false),
    }
}

/// One vote record change of a merged idea, for [`forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarded {
    /// A record put (a vote cast, or a copy); false: removed.
    pub cast: bool,
    pub member: String,
    pub vote_id: String,
    pub created_at: String,
}

/// Forwards the vote record changes of the merged idea `source` to `into`,
/// in feed order (the aggregator calls it for a batch's changes of a merged
/// idea): a cast is copied as a page copies it, a removal deletes the
/// source's copy on the target (never the member's own vote there) on the
/// condition that the source's record is still gone. Both follow the state
/// of the records, so forwarding a batch again changes nothing.
pub async fn forward<T: Table>(
    app: &App<T>,
    source: &str,
    into: &str,
    changes: &[Forwarded],
) -> Result<()> {
    let (Some(source), Some(into)) = (IdeaId::parse(source), IdeaId::parse(into)) else {
        return Ok(());
    };
    let target = match ideas::load(app, &into, false).await {
        Ok(t) => t,
        Err(Error::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    for c in changes {
        if c.cast {
            let copied = copy_vote(
                app,
                &source,
                &into,
                &target.author_id,
                &c.member,
                &c.vote_id,
                &c.created_at,
            )
            .await?;
            if copied {
                tracing::info!(idea = %source.as_str(), into = %into.as_str(), member = %c.member, "vote cast on a merged idea forwarded");
            }
        } else {
            // The copy goes while the source's record is gone: a removal
            // delivered again after a new vote for the source deletes nothing.
            let uncopy = [
                Write::Delete {
                    key: votes::vote_key(&into, &c.member),
                    cond: Some(Cond::Eq(MERGED_FROM.into(), json!(source.as_str()))),
                },
                Write::Check {
                    key: votes::vote_key(&source, &c.member),
                    cond: Cond::NotExists,
                },
            ];
            if attempt(&app.table, &uncopy).await?.is_ok() {
                tracing::info!(idea = %source.as_str(), into = %into.as_str(), member = %c.member, "vote withdrawn from a merged idea: its copy withdrawn");
            }
        }
    }
    Ok(())
}

/// What a merge's pages need of it (from `idea.merged`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
struct Job {
    /// The `idea.merged` event.
    merge: String,
    idea: String,
    into: String,
    into_author: String,
}

impl Job {
    fn of(e: &Event) -> Result<Job> {
        let text = |a: &str| e.data.get(a).and_then(Value::as_str).map(str::to_owned);
        match (e.idea_id.clone(), text("into"), text("into_author")) {
            (Some(idea), Some(into), Some(into_author)) => Ok(Job {
                merge: e.event_id.clone(),
                idea,
                into,
                into_author,
            }),
            _ => Err(malformed(
                "idea.merged without its idea, target or target's author",
            )),
        }
    }
}

/// A `merge.page` event's details.
#[derive(Debug, Clone, Deserialize)]
struct PageData {
    job: Job,
    bucket: u32,
    page: u32,
    #[serde(default)]
    after: Option<String>,
    followers: bool,
}

/// A message no delivery can apply: it fails every time and so reaches the
/// dead-letter queue, with this in the log.
fn malformed(why: &str) -> Error {
    tracing::error!(why, "malformed merge event");
    Error::Store(StoreError::Invalid(format!("malformed merge event: {why}")))
}

/// The event of one page of a merge's copy: of the source's voters, or of
/// its follow records, in one bucket. Its id is derived from the merge, the
/// bucket and the page number, so every delivery names the same next page.
fn page_event(
    job: &Job,
    author: &str,
    bucket: u32,
    page: u32,
    after: Option<&str>,
    followers: bool,
) -> Event {
    let what = if followers { "f" } else { "v" };
    Event {
        event_id: format!("{}.{what}{bucket:02}.p{page}", job.merge),
        kind: Kind::MergePage,
        at: now(),
        member_id: author.to_owned(),
        idea_id: Some(job.idea.clone()),
        data: json!({"job": job, "bucket": bucket, "page": page, "after": after, "followers": followers}),
    }
}

/// Starts the copy of a merge (`idea.merged`): the first page of each of
/// the 64 chains, with the start's marker, in one transaction (65 writes),
/// so a redelivery starts nothing twice.
pub async fn start_copy<T: Table>(app: &App<T>, e: &Event) -> Result<()> {
    let job = Job::of(e)?;
    let mut writes = vec![consumed_marker(CONSUMER, &format!("{}.start", e.event_id))];
    for b in 0..votes::VOTER_BUCKETS {
        writes.push(page_event(&job, &e.member_id, b, 0, None, false).write());
        writes.push(page_event(&job, &e.member_id, b, 0, None, true).write());
    }
    match commit(&app.table, writes, None).await {
        // Started by an earlier delivery.
        Ok(()) | Err(Error::Store(StoreError::ConditionFailed { .. })) => Ok(()),
        Err(err) => Err(err),
    }
}

/// What a page copies of one record.
struct Record {
    member: String,
    following: bool,
    vote_id: String,
    created_at: String,
}

impl Record {
    fn of(i: &Item) -> Record {
        let text = |a: &str| {
            i.get(a)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Record {
            member: text("member_id"),
            following: follows::state_of(Some(i)) == Some(true),
            vote_id: text("vote_id"),
            created_at: text("created_at"),
        }
    }
}

/// A page's merge and kind of records.
struct Ctx {
    source: IdeaId,
    into: IdeaId,
    into_author: String,
    followers: bool,
}

/// Copies one record of a page onto the target (module doc).
async fn copy_record<T: Table>(app: &App<T>, ctx: &Ctx, r: Record) -> Result<()> {
    if r.member.is_empty() {
        return Ok(());
    }
    if !ctx.followers {
        let (s, i, a) = (&ctx.source, &ctx.into, &ctx.into_author);
        copy_vote(app, s, i, a, &r.member, &r.vote_id, &r.created_at).await?;
        return Ok(());
    }
    if !r.following {
        return Ok(());
    }
    let mut record = follows::record(ctx.into.as_str(), &r.member, true, follows::BY_MERGE);
    record.insert(MERGED_FROM.into(), json!(ctx.source.as_str()));
    // A record there already (a follow, an unfollow) stands.
    let _ = attempt(&app.table, &[Write::put_new(record)]).await?;
    Ok(())
}

/// One page of a merge's copy (`merge.page`): up to [`PAGE`] records of one
/// bucket after the page's `after` member, each copied once (see the
/// module's doc), then the page's marker with the next page's event.
pub async fn copy_page<T: Table>(app: &App<T>, e: &Event) -> Result<()> {
    let p: PageData = serde_json::from_value(e.data.clone())
        .map_err(|err| malformed(&format!("unreadable page: {err}")))?;
    if p.bucket >= votes::VOTER_BUCKETS {
        return Err(malformed("bucket out of range"));
    }
    let (Some(source), Some(into)) = (IdeaId::parse(&p.job.idea), IdeaId::parse(&p.job.into))
    else {
        return Err(malformed("not an idea id"));
    };
    let marker = marker_key(CONSUMER, &e.event_id);
    if app.table.get(&marker, true).await?.is_some() {
        // Done by an earlier delivery (copies, marker and next page).
        return Ok(());
    }
    let pk = if p.followers {
        follows::followers_pk(source.as_str(), p.bucket)
    } else {
        votes::voters_pk(source.as_str(), p.bucket)
    };
    let start = p.after.as_ref().map(|m| {
        let mut k = Item::new();
        k.insert("pk".into(), json!(pk));
        k.insert("sk".into(), json!(m));
        k
    });
    let mut q = Query::new(Index::Primary, pk.clone())
        .limit(PAGE)
        .start_after(start);
    // Every record written before this read is copied here; the later ones
    // are the aggregator's to forward (module doc).
    q.consistent = true;
    let found = app.table.query(&q).await?;
    let records: Vec<Record> = found.items.iter().map(Record::of).collect();
    let ctx = Ctx {
        source,
        into,
        into_author: p.job.into_author.clone(),
        followers: p.followers,
    };
    let copies = futures::stream::iter(records)
        .map(|r| copy_record(app, &ctx, r))
        .buffer_unordered(PAGE_CONCURRENCY)
        .collect::<Vec<Result<()>>>()
        .await;
    for c in copies {
        c?;
    }
    let last = found
        .last_key
        .as_ref()
        .and_then(|k| k.get("sk"))
        .and_then(Value::as_str);
    let mut writes = vec![consumed_marker(CONSUMER, &e.event_id)];
    if let Some(last) = last {
        writes.push(
            page_event(
                &p.job,
                &e.member_id,
                p.bucket,
                p.page + 1,
                Some(last),
                p.followers,
            )
            .write(),
        );
    }
    match commit(&app.table, writes, None).await {
        // Continued by an earlier delivery of this page.
        Ok(()) | Err(Error::Store(StoreError::ConditionFailed { .. })) => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_checked_field_by_field() {
        let id = IdeaId::parse("01JD8Z3K4M5N6P7Q8R9S0TVWXY").expect("id");
        let fields = |into: Option<&str>, reason: Option<&str>| -> Vec<String> {
            let req = MergeRequest {
                into: into.map(str::to_owned),
                reason: reason.map(str::to_owned),
            };
            match validate(&id, req) {
                Ok(_) => vec![],
                Err(Error::Invalid(errs)) => errs.into_iter().map(|e| e.field).collect(),
                Err(e) => panic!("{e:?}"),
            }
        };
        let reason = Some("Même idée que la précédente");
        assert_eq!(fields(None, reason), ["into"]);
        assert_eq!(fields(Some("not-an-id"), reason), ["into"]);
        assert_eq!(fields(Some(id.as_str()), reason), ["into"], "itself");
        assert_eq!(
            fields(Some(&id.as_str().to_lowercase()), reason),
            ["into"],
            "itself, in lower case"
        );
        assert_eq!(
            fields(Some("01JD8Z3K4M5N6P7Q8R9S0TVWXZ"), Some("  trop court ")),
            Vec::<String>::new(),
            "10 characters once trimmed"
        );
        assert_eq!(
            fields(Some("01JD8Z3K4M5N6P7Q8R9S0TVWXZ"), Some(" court ")),
            ["reason"]
        );
        assert_eq!(
            fields(Some("01JD8Z3K4M5N6P7Q8R9S0TVWXZ"), Some(&"x".repeat(2001))),
            ["reason"]
        );
        assert_eq!(fields(None, None), ["into", "reason"]);
    }

    #[test]
    fn a_copy_is_the_targets_vote_marked_with_its_source() {
        let into = IdeaId::parse("01JD8Z3K4M5N6P7Q8R9S0TVWXZ").expect("id");
        let c = vote_copy(
            "01JD8Z3K4M5N6P7Q8R9S0TVWXY",
            &into,
            "carla",
            "bob",
            "v1",
            "2026-11-23T09:00:00.000Z",
        );
        assert_eq!(
            crate::store::Key::of(&c),
            Some(votes::vote_key(&into, "bob"))
        );
        assert_eq!(c[MERGED_FROM], "01JD8Z3K4M5N6P7Q8R9S0TVWXY");
        assert_eq!(c["author_id"], "carla");
        assert_eq!(
            c["gsi3sk"],
            "VOTE#2026-11-23T09:00:00.000Z#01JD8Z3K4M5N6P7Q8R9S0TVWXZ"
        );
    }
}
