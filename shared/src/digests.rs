//! Comment digests: authors who opted in (`comment_digest` on their profile)
//! get ONE mail per run listing the new comments on their ideas, instead of
//! a mail per comment.
//!
//! - Accumulate: the `emails` consumer, on `comment.posted`, records a
//!   pending item for the idea's author when they opted in, **in the same
//!   transaction as its marker** `DONE#digest#{comment}`:
//!   `DIGEST#{author} / PENDING#{created_at}#{comment}`, in gsi1
//!   `DIGESTS#{bucket 00-15}` / `{author}#{created_at}#{comment}` (the bucket
//!   is a hash of the author, so one author's items share a bucket and the
//!   pending work spreads over 16 index partitions).
//! - Send (`run`, hourly: the `digests` function on an EventBridge schedule;
//!   locally every `COMMUNITY_SCHEDULE_EVERY_SECS` and `POST /local/digests/run`):
//!   a Query per bucket finds the pending items (no scan), grouped by author;
//!   per author one mail is sent, then one transaction writes the send marker
//!   `DONE#digest-sent#{author}#{digest id}`, counts the mail and deletes the
//!   pending items it listed. A rerun finds nothing left to send. As for the
//!   other mails, a crash between the SES call and that transaction can repeat
//!   that one mail; nothing is lost.
//!
//! Comments hidden by moderation meanwhile, and authors who opted out (or
//! unsubscribed from community mails, or whose address SES suppressed) since,
//! are dropped without a mail.

use crate::app::App;
use crate::comments;
use crate::domain::{now, IdeaId, MemberId};
use crate::error::{Error, Result};
use crate::events::{consumed_marker, Event};
use crate::ideas;
use crate::mail::{self, templates, Mailer};
use crate::members;
use crate::store::{Index, Item, Key, Query, StoreError, Table, Write};
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

pub const BUCKETS: u32 = 16;
/// Comments listed in one author's mail per run (the rest wait for the next run).
pub const MAX_PER_MAIL: usize = 90;
const EXCERPT: usize = 160;

fn bucket(author: &str) -> u32 {
    let h = Sha256::digest(author.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % BUCKETS
}

pub fn bucket_pk(b: u32) -> String {
    format!("DIGESTS#{b:02}")
}

pub fn pending_key(author: &str, created_at: &str, comment: &str) -> Key {
    Key::new(
        format!("DIGEST#{author}"),
        format!("PENDING#{created_at}#{comment}"),
    )
}

/// `comment.posted` → a pending digest item, when the idea's author opted in.
pub async fn record<T: Table>(app: &App<T>, e: &Event) -> Result<()> {
    let (Some(comment), Some(author)) = (
        e.data["comment_id"].as_str(),
        e.data["idea_author_id"].as_str(),
    ) else {
        return Ok(());
    };
    if author == e.member_id {
        return Ok(());
    }
    let Some(author_id) = MemberId::parse(author) else {
        return Ok(());
    };
    let m = match members::get(app, &author_id).await {
        Ok(m) => m,
        Err(Error::NotFound(_)) => return Ok(()),
        Err(err) => return Err(err),
    };
    if !m.comment_digest || !m.mailable() {
        return Ok(());
    }
    let k = pending_key(author, &e.at, comment);
    let item = json!({
        "pk": k.pk, "sk": k.sk, "author_id": author, "comment_id": comment,
        "idea_id": e.idea_id, "created_at": e.at,
        "gsi1pk": bucket_pk(bucket(author)),
        "gsi1sk": format!("{author}#{}#{comment}", e.at),
    });
    let Value::Object(item) = item else {
        return Ok(());
    };
    let writes = vec![consumed_marker("digest", comment), Write::put(item)];
    match app.table.transact(writes).await {
        Ok(()) => Ok(()),
        // Listed by an earlier delivery.
        Err(e) if e.failed_on(&crate::events::marker_key("digest", comment)) => Ok(()),
        Err(err) => Err(err.into()),
    }
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct RunReport {
    /// Mails sent (one per author at most).
    pub mails: usize,
    /// Comments listed in those mails.
    pub comments: usize,
    /// Pending items dropped without a mail (opted out, hidden, gone).
    pub dropped: usize,
}

/// Sends the pending digests: one mail per author.
pub async fn run<T: Table, M: Mailer>(app: &App<T>, mailer: &M) -> Result<RunReport> {
    crate::access::function("digests", run_inner(app, mailer)).await
}

async fn run_inner<T: Table, M: Mailer>(app: &App<T>, mailer: &M) -> Result<RunReport> {
    app.refresh_or_keep().await;
    let mut report = RunReport::default();
    let mail_id = format!(
        "comment-digest-{}",
        now().get(..13).unwrap_or("0000-00-00T00")
    );
    for b in 0..BUCKETS {
        let mut by_author: BTreeMap<String, Vec<Item>> = BTreeMap::new();
        let mut start = None;
        loop {
            let page = app
                .table
                .query(
                    &Query::new(Index::Gsi1, bucket_pk(b))
                        .limit(1000)
                        .start_after(start),
                )
                .await?;
            for i in page.items {
                let a = i
                    .get("author_id")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                by_author.entry(a).or_default().push(i);
            }
            start = page.last_key;
            if start.is_none() {
                break;
            }
        }
        for (author, mut items) in by_author {
            items.truncate(MAX_PER_MAIL);
            match send_one(app, mailer, &mail_id, &author, &items).await {
                Ok(Some(n)) => {
                    report.mails += 1;
                    report.comments += n;
                }
                Ok(None) => report.dropped += items.len(),
                // One author's failure does not stop the others; the next
                // run retries them.
                Err(e) => tracing::warn!(author = %author, error = %e, "digest not sent"),
            }
        }
    }
    Ok(report)
}

fn deletes(items: &[Item]) -> Vec<Write> {
    items
        .iter()
        .filter_map(Key::of)
        .map(|key| Write::Delete { key, cond: None })
        .collect()
}

/// Sends one author's digest; `Ok(None)` when there was nothing to send.
async fn send_one<T: Table, M: Mailer>(
    app: &App<T>,
    mailer: &M,
    mail_id: &str,
    author: &str,
    items: &[Item],
) -> Result<Option<usize>> {
    let drop_all = || async {
        for chunk in deletes(items).chunks(100) {
            app.table.transact(chunk.to_vec()).await?;
        }
        Ok::<_, Error>(None)
    };
    let Some(author_id) = MemberId::parse(author) else {
        return drop_all().await;
    };
    let m = match members::get(app, &author_id).await {
        Ok(m) => m,
        Err(Error::NotFound(_)) => return drop_all().await,
        Err(e) => return Err(e),
    };
    // Opted out, or the address suppressed (a permanent bounce or a
    // complaint, `mail::feedback`).
    if !m.wants(crate::members::Notice::CommentDigest) {
        return drop_all().await;
    }
    let comment_keys: Vec<Key> = items
        .iter()
        .filter_map(|i| i.get("comment_id").and_then(Value::as_str))
        .map(comments::key)
        .collect();
    let mut visible: Vec<comments::Comment> =
        crate::store::get_all(&app.table, &comment_keys, true)
            .await?
            .into_iter()
            .filter_map(|i| comments::from_item(i).ok())
            .filter(|c| c.moderation.is_none())
            .collect();
    visible.sort_by(|a, b| a.created_at.cmp(&b.created_at));
    let idea_keys: Vec<Key> = {
        let mut ids: Vec<&str> = visible.iter().map(|c| c.idea_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(IdeaId::parse)
            .map(|i| ideas::key(&i))
            .collect()
    };
    let idea_rows: Vec<ideas::IdeaRow> = crate::store::get_all(&app.table, &idea_keys, true)
        .await?
        .into_iter()
        .filter_map(|i| ideas::row_from(i).ok())
        .filter(|r| !r.is_hidden())
        .collect();
    let mut groups: Vec<templates::DigestIdea> = Vec::new();
    for c in &visible {
        let Some(idea) = idea_rows.iter().find(|r| r.id == c.idea_id) else {
            continue;
        };
        let mut excerpt: String = c.body.chars().take(EXCERPT).collect();
        if c.body.chars().count() > EXCERPT {
            excerpt.push('…');
        }
        let entry = (c.author.display_name.clone(), excerpt);
        match groups.iter_mut().find(|g| g.idea_id == idea.id) {
            Some(g) => g.comments.push(entry),
            None => groups.push(templates::DigestIdea {
                idea_id: idea.id.clone(),
                title: idea.title.clone(),
                comments: vec![entry],
            }),
        }
    }
    let listed: usize = groups.iter().map(|g| g.comments.len()).sum();
    if listed == 0 {
        return drop_all().await;
    }
    // The digest's identity: the pending items it covers.
    let mut h = Sha256::new();
    for k in items.iter().filter_map(Key::of) {
        h.update(k.sk.as_bytes());
        h.update(b"\n");
    }
    let digest_id: String = h
        .finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect();
    let marker = consumed_marker("digest-sent", &format!("{author}#{digest_id}"));
    if let Some(mk) = marker.key() {
        if app.table.get(&mk, true).await?.is_some() {
            // Sent, and its pending items deleted in the same write: only a
            // stale index read can bring us here.
            return Ok(None);
        }
    }
    let t = templates::comment_digest(&app.settings(), mail_id, &m.display_name, &m.id, &groups);
    let mail = mail::compose(&app.settings(), &m.email, &m.id, t);
    mail::send(mailer, &mail)
        .await
        .map_err(|err| Error::Store(StoreError::unavailable(err)))?;
    let marker_key = crate::events::marker_key("digest-sent", &format!("{author}#{digest_id}"));
    let mut writes = vec![
        marker,
        mail::count_sent(mail_id),
        // The member's record of the mail (GDPR export; erasure removes it).
        mail::sent_record(author, &format!("digest-{digest_id}"), &mail),
    ];
    writes.extend(deletes(items));
    match app.table.transact(writes).await {
        Ok(()) => Ok(Some(listed)),
        // Sent and recorded by an earlier run.
        Err(e) if e.failed_on(&marker_key) => Ok(Some(listed)),
        Err(e) => Err(e.into()),
    }
}
