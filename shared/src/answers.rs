//! Official answers: the committee or a moderator answers any idea, below
//! the vote threshold too ("répondre à chaque proposition"), and staff see
//! which ideas are still waiting for one.
//!
//! An answer is one transaction (5 writes at most, no shared item):
//! - the idea row: `answer_count` + 1 (the condition: the count read, so two
//!   answers given at once never both win) and, the first time,
//!   `answered_at`;
//! - the idea's body item (`ideas::body_key`): `answers`, the history,
//!   oldest first; the last one is `official_answer`. The body item is read
//!   with the row by the idea's page anyway (one BatchGetItem), and it is in
//!   no index, so an answer of 2,000 characters costs neither the lists nor
//!   the vote aggregator's roll-up of the row;
//! - the first time, the idea's entry in the answer queue is deleted
//!   (`UNANSWERED / {created_at}#{id}`, put with the idea);
//! - the `idea.answered` event (outbox): the emails consumer tells the
//!   author and fans the answer out to the idea's followers in pages
//!   (`mail::EmailsConsumer`, as decisions); insights count the first
//!   answer per theme with its delay.
//!
//! A committee decision is an answer too: it leaves the answer queue and
//! counts as the idea's first answer when it had none (`committee::decide`).
//!
//! Cost per answer: ~1 + (the body item's size, up to ~23 KB with 20
//! answers: 23) + 1 + 1 write units, once per answer, never per vote.
//! The queue is one partition: ideas are posted at far less than the
//! 1,000 writes/s a partition takes.

use crate::app::App;
use crate::auth::{Caller, COMMITTEE, MODERATOR};
use crate::committee::QueuedIdea;
use crate::domain::{format_ts, now, parse_ts, FieldError, IdeaId};
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::{self, IdeaView, ListPage};
use crate::store::{cursor, Cond, Index, Key, Query, SortKey, StoreError, Table, Update, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The answer queue's partition: one item per idea without an answer.
pub const UNANSWERED_PK: &str = "UNANSWERED";
/// Answers one idea keeps (its body item stays far below 400 KB).
pub const MAX_ANSWERS: i64 = 20;
/// Characters of an answer.
pub const MIN_TEXT: usize = 10;
pub const MAX_TEXT: usize = 2000;

/// One official answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Answer {
    pub text: String,
    pub at: String,
    /// Who answered, as a role: `committee` or `moderator` (staff members'
    /// identities are not shown).
    pub by: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerRequest {
    pub text: Option<String>,
}

pub fn unanswered_key(created_at: &str, idea: &str) -> Key {
    Key::new(UNANSWERED_PK, format!("{created_at}#{idea}"))
}

/// The idea's entry in the answer queue (written with the idea).
pub fn unanswered_write(created_at: &str, idea: &str) -> Write {
    let k = unanswered_key(created_at, idea);
    let mut item = crate::store::Item::new();
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("idea_id".into(), json!(idea));
    item.insert("created_at".into(), json!(created_at));
    Write::put(item)
}

/// Its removal (the idea's first answer, or its decision).
pub fn answered_write(created_at: &str, idea: &str) -> Write {
    Write::Delete {
        key: unanswered_key(created_at, idea),
        cond: None,
    }
}

/// The role an answer is given in: the committee's first.
pub fn staff_role(caller: &Caller) -> Result<&'static str> {
    if caller.in_group(COMMITTEE) {
        Ok(COMMITTEE)
    } else if caller.in_group(MODERATOR) {
        Ok(MODERATOR)
    } else {
        Err(Error::Forbidden(
            "only the committee or a moderator may do this".into(),
        ))
    }
}

fn text(v: Option<String>) -> std::result::Result<String, FieldError> {
    let v = v.map(|s| s.trim().to_owned()).unwrap_or_default();
    let n = v.chars().count();
    if n < MIN_TEXT {
        return Err(FieldError::new(
            "text",
            "is required: at least 10 characters the author and the followers will read",
        ));
    }
    if n > MAX_TEXT {
        return Err(FieldError::new("text", "must be at most 2000 characters"));
    }
    crate::domain::refuse_controls("text", &v, true)?;
    Ok(v)
}

/// `POST /ideas/{id}/answer`: the idea's official answer (a second one
/// replaces the first; every one is kept in `answers`).
#[tracing::instrument(skip(app, caller, req), fields(idea = %id.as_str()))]
pub async fn answer<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &IdeaId,
    req: AnswerRequest,
) -> Result<IdeaView> {
    let role = staff_role(caller)?;
    let text = text(req.text).map_err(|e| Error::Invalid(vec![e]))?;
    let mut row = ideas::load_full(app, id, true).await?;
    let n = row.answer_count;
    if n >= MAX_ANSWERS {
        return Err(Error::Conflict(format!(
            "this idea has {n} answers already, the most one idea keeps"
        )));
    }
    let at = now();
    let answer = Answer {
        text: text.clone(),
        at: at.clone(),
        by: role.to_owned(),
    };
    let first = row.answered_at.is_none();
    row.answers.push(answer);
    let history = serde_json::to_value(&row.answers).unwrap_or(Value::Null);
    let mut u = Update::default().set("answer_count", n + 1);
    if first {
        u = u.set("answered_at", at.as_str());
    }
    let guard = if n == 0 {
        Cond::AttrAbsent("answer_count".into()).or(Cond::Eq("answer_count".into(), json!(0)))
    } else {
        Cond::Eq("answer_count".into(), json!(n))
    };
    let event = Event::new(
        Kind::IdeaAnswered,
        &row.author_id,
        Some(&row.id),
        json!({
            "text": text, "by": role, "first": first, "number": n + 1,
            "title": row.title, "theme": row.theme, "posted_at": row.created_at,
        }),
    );
    let mut writes = vec![
        Write::update(ideas::key(id), u).when(guard),
        Write::update(
            ideas::body_key(id),
            Update::default().set("answers", history),
        )
        .when(Cond::Exists),
        event.write(),
    ];
    if first {
        writes.push(answered_write(&row.created_at, &row.id));
    }
    match commit(&app.table, writes, None).await {
        Ok(()) => {}
        Err(Error::Store(StoreError::ConditionFailed { .. })) => {
            return Err(Error::Conflict(
                "another answer was given meanwhile: read the idea again".into(),
            ))
        }
        Err(e) => return Err(e),
    }
    row.answer_count = n + 1;
    if first {
        row.answered_at = Some(at);
    }
    let votes = row.votes;
    Ok(row.view(votes))
}

/// `GET /review-queue?state=unanswered[&older_than_days=N]`: ideas with no
/// official answer (nor decision), oldest first; with `older_than_days`,
/// only those posted at least N days ago. Hidden ideas are left out (their
/// authors were told by moderation).
pub async fn unanswered<T: Table>(
    app: &App<T>,
    caller: &Caller,
    older_than_days: Option<u32>,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<QueuedIdea>> {
    staff_role(caller)?;
    let start = cursor::start(cursor_in.as_deref(), Index::Primary, UNANSWERED_PK)?;
    let now_t = time::OffsetDateTime::now_utc();
    let mut q = Query::new(Index::Primary, UNANSWERED_PK)
        .limit(limit.clamp(1, 100))
        .start_after(start);
    if let Some(days) = older_than_days {
        let cutoff = format_ts(now_t - time::Duration::days(i64::from(days)));
        // Sort keys are `{created_at}#{id}` (DynamoDB takes no empty bound).
        q = q.sk(SortKey::Between("0".into(), format!("{cutoff}#~")));
    }
    let page = app.table.query(&q).await?;
    let keys: Vec<Key> = page
        .items
        .iter()
        .filter_map(|i| i.get("idea_id").and_then(Value::as_str))
        .filter_map(IdeaId::parse)
        .map(|i| ideas::key(&i))
        .collect();
    let mut by_id = std::collections::HashMap::new();
    for item in crate::store::get_all(&app.table, &keys, false).await? {
        let row = ideas::row_from(item)?;
        by_id.insert(row.id.clone(), row);
    }
    // In the queue's order (the batch read returns any order).
    let mut rows: Vec<ideas::IdeaRow> = page
        .items
        .iter()
        .filter_map(|i| i.get("idea_id").and_then(Value::as_str))
        .filter_map(|id| by_id.remove(id))
        .filter(|r| !r.is_hidden() && !r.is_merged() && r.answered_at.is_none())
        .collect();
    ideas::with_bodies(app, &mut rows).await?;
    let items = rows
        .into_iter()
        .map(|row| {
            let age = parse_ts(&row.created_at)
                .map(|t| (now_t - t).whole_seconds())
                .unwrap_or(0);
            let votes = row.votes;
            QueuedIdea {
                idea: row.view(votes),
                age_seconds: age,
            }
        })
        .collect();
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

/// Bucket of the time from posting to the first answer, for insights'
/// median: whole hours below two days (`h{n}`), whole days below 90
/// (`d{n}`), then `d90`.
pub fn delay_bucket(posted_at: &str, answered_at: &str) -> Option<String> {
    let secs = (parse_ts(answered_at)? - parse_ts(posted_at)?)
        .whole_seconds()
        .max(0);
    let hours = secs / 3600;
    Some(if hours < 48 {
        format!("h{hours}")
    } else {
        format!("d{}", (hours / 24).min(90))
    })
}

/// The lower bound, in hours, of a [`delay_bucket`].
pub fn bucket_hours(bucket: &str) -> Option<i64> {
    if let Some(h) = bucket.strip_prefix('h') {
        return h.parse().ok();
    }
    bucket
        .strip_prefix('d')
        .and_then(|d| d.parse::<i64>().ok())
        .map(|d| d * 24)
}

/// The median of a histogram of [`delay_bucket`]s, in hours (the lower
/// bound of the bucket holding the middle answer).
pub fn median_hours(histogram: &[(i64, i64)]) -> Option<i64> {
    let mut h: Vec<(i64, i64)> = histogram.iter().copied().filter(|(_, n)| *n > 0).collect();
    h.sort();
    let total: i64 = h.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let middle = (total + 1) / 2;
    let mut seen = 0;
    for (hours, n) in h {
        seen += n;
        if seen >= middle {
            return Some(hours);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_buckets_are_hours_then_days() {
        let p = "2026-01-01T00:00:00.000Z";
        assert_eq!(
            delay_bucket(p, "2026-01-01T00:59:59.000Z").as_deref(),
            Some("h0")
        );
        assert_eq!(
            delay_bucket(p, "2026-01-02T23:00:00.000Z").as_deref(),
            Some("h47")
        );
        assert_eq!(
            delay_bucket(p, "2026-01-03T00:00:00.000Z").as_deref(),
            Some("d2")
        );
        assert_eq!(
            delay_bucket(p, "2027-01-03T00:00:00.000Z").as_deref(),
            Some("d90")
        );
        assert_eq!(bucket_hours("h5"), Some(5));
        assert_eq!(bucket_hours("d3"), Some(72));
        assert_eq!(bucket_hours("x"), None);
    }

    #[test]
    fn median_is_the_middle_answers_bucket() {
        assert_eq!(median_hours(&[]), None);
        assert_eq!(median_hours(&[(5, 1)]), Some(5));
        // 1 at 0 h, 1 at 2 h, 3 at 48 h: the 3rd of 5 is at 48 h.
        assert_eq!(median_hours(&[(48, 3), (0, 1), (2, 1)]), Some(48));
        assert_eq!(median_hours(&[(0, 2), (10, 1)]), Some(0));
    }
}
