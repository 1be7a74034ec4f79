//! The feasibility committee: the review queue, decisions (with a reason the
//! author is always told) and the progress of accepted ideas.

use crate::app::App;
use crate::auth::{Caller, COMMITTEE};
use crate::domain::{now, parse_ts, Errors, FieldError, IdeaId, IdeaStatus};
use crate::error::{Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::{self, Decision, IdeaView, ProgressNote};
use crate::store::{Cond, Index, Query, Table, Update, Write};
use crate::thresholds::REVIEW_PK;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub fn require_committee(caller: &Caller) -> Result<()> {
    if caller.in_group(COMMITTEE) {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "only the feasibility committee may do this".into(),
        ))
    }
}

#[derive(Debug, Serialize)]
pub struct QueuedIdea {
    #[serde(flatten)]
    pub idea: IdeaView,
    /// Seconds since the idea reached the threshold.
    pub age_seconds: i64,
}

/// `GET /review-queue`: ideas under review, oldest first.
pub async fn review_queue<T: Table>(
    app: &App<T>,
    caller: &Caller,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<crate::ideas::ListPage<QueuedIdea>> {
    require_committee(caller)?;
    let start = crate::store::cursor::start(cursor_in.as_deref(), Index::Gsi3, REVIEW_PK)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi3, REVIEW_PK)
                .limit(limit)
                .start_after(start),
        )
        .await?;
    let now_t = time::OffsetDateTime::now_utc();
    let mut rows = page
        .items
        .into_iter()
        .map(ideas::row_from)
        .collect::<Result<Vec<_>>>()?;
    ideas::with_bodies(app, &mut rows).await?;
    let mut items = Vec::new();
    for row in rows {
        let age = row
            .reached_threshold_at
            .as_deref()
            .and_then(parse_ts)
            .map(|t| (now_t - t).whole_seconds())
            .unwrap_or(0);
        let votes = row.votes;
        items.push(QueuedIdea {
            idea: row.view(votes),
            age_seconds: age,
        });
    }
    Ok(crate::ideas::ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(crate::store::cursor::encode),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    pub outcome: Option<String>,
    pub reason: Option<String>,
}

fn reason(field: &str, v: Option<String>) -> std::result::Result<String, FieldError> {
    let v = v.map(|s| s.trim().to_owned()).unwrap_or_default();
    let n = v.chars().count();
    if n < 10 {
        return Err(FieldError::new(
            field,
            "is required: at least 10 characters the author will read",
        ));
    }
    if n > 2000 {
        return Err(FieldError::new(field, "must be at most 2000 characters"));
    }
    crate::domain::refuse_controls(field, &v, true)?;
    Ok(v)
}

/// The committee sees the idea it works on even while moderation hides it.
async fn exact_view<T: Table>(app: &App<T>, id: &IdeaId) -> Result<IdeaView> {
    let row = ideas::load_full(app, id, true).await?;
    let votes = row.votes;
    Ok(row.view(votes))
}

/// `POST /ideas/{id}/decision`.
pub async fn decide<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &IdeaId,
    req: DecisionRequest,
) -> Result<IdeaView> {
    require_committee(caller)?;
    let mut errs = Errors::default();
    let outcome = match req.outcome.as_deref() {
        Some("accepted") => Some(IdeaStatus::Accepted),
        Some("rejected") => Some(IdeaStatus::Rejected),
        _ => {
            errs.push(FieldError::new("outcome", "must be accepted or rejected"));
            None
        }
    };
    let reason = errs.take(reason("reason", req.reason));
    let (Some(outcome), Some(reason)) = (outcome, reason) else {
        return Err(Error::Invalid(errs.0));
    };
    let row = ideas::load(app, id, true).await?;
    if let Some(into) = &row.merged_into {
        // Its votes joined the target's (`crate::merge`), which the
        // committee decides on when it reaches the threshold.
        return Err(Error::Conflict(format!(
            "this idea was merged into {into}: decide on that one"
        )));
    }
    if row.status != IdeaStatus::UnderReview {
        return Err(Error::Conflict(format!(
            "only an idea under review can be decided (this one is {})",
            row.status.as_str()
        )));
    }
    let decision = Decision {
        outcome,
        reason: reason.clone(),
        decided_at: now(),
    };
    let u = Update::default()
        .set("status", outcome.as_str())
        .set(
            "decision",
            serde_json::to_value(&decision).unwrap_or(Value::Null),
        )
        .set("decided_by", caller.id.as_str())
        .remove("gsi3pk")
        .remove("gsi3sk");
    // A decision answers the idea: it leaves the answer queue, and is its
    // first answer when none was given (`crate::answers`).
    let first_answer = row.answered_at.is_none();
    let mut u = u;
    let mut answered = Cond::Exists;
    if first_answer {
        u = u.set("answered_at", decision.decided_at.as_str());
        answered = Cond::AttrAbsent("answered_at".into());
    }
    let (u, listed) = row.relist(u, outcome);
    let event = Event::new(
        Kind::IdeaDecided,
        &row.author_id,
        Some(&row.id),
        json!({"outcome": outcome.as_str(), "reason": reason, "title": row.title,
               "first_answer": first_answer, "posted_at": row.created_at}),
    );
    let mut writes = vec![
        Write::update(ideas::key(id), u).when(
            Cond::Eq("status".into(), json!(IdeaStatus::UnderReview.as_str()))
                .and(listed)
                .and(answered),
        ),
        event.write(),
    ];
    if first_answer {
        writes.push(crate::answers::answered_write(&row.created_at, &row.id));
    }
    match app.table.transact(writes).await {
        Ok(()) => {
            crate::metrics::record_decision(outcome.as_str());
            exact_view(app, id).await
        }
        Err(e) if e.failed_on(&ideas::key(id)) => Err(Error::Conflict(
            "the idea was decided or answered meanwhile: read it again".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgressRequest {
    pub status: Option<String>,
    pub note: Option<String>,
}

/// `POST /ideas/{id}/progress`: accepted → in_progress → implemented.
pub async fn progress<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &IdeaId,
    req: ProgressRequest,
) -> Result<IdeaView> {
    require_committee(caller)?;
    let mut errs = Errors::default();
    let to = match req.status.as_deref() {
        Some("in_progress") => Some(IdeaStatus::InProgress),
        Some("implemented") => Some(IdeaStatus::Implemented),
        _ => {
            errs.push(FieldError::new(
                "status",
                "must be in_progress or implemented",
            ));
            None
        }
    };
    let note = errs.take(reason("note", req.note));
    let (Some(to), Some(note)) = (to, note) else {
        return Err(Error::Invalid(errs.0));
    };
    let row = ideas::load(app, id, true).await?;
    let allowed = match to {
        IdeaStatus::InProgress => row.status == IdeaStatus::Accepted,
        _ => matches!(row.status, IdeaStatus::Accepted | IdeaStatus::InProgress),
    };
    if !allowed {
        return Err(Error::Conflict(format!(
            "an idea that is {} cannot become {}",
            row.status.as_str(),
            to.as_str()
        )));
    }
    let mut notes = row.progress.clone();
    notes.push(ProgressNote {
        status: to,
        note: note.clone(),
        at: now(),
    });
    let u = Update::default().set("status", to.as_str()).set(
        "progress",
        serde_json::to_value(&notes).unwrap_or(Value::Null),
    );
    let (u, listed) = row.relist(u, to);
    let event = Event::new(
        Kind::IdeaProgressed,
        &row.author_id,
        Some(&row.id),
        json!({"status": to.as_str(), "from": row.status.as_str(), "note": note, "title": row.title}),
    );
    let writes = vec![
        Write::update(ideas::key(id), u)
            .when(Cond::Eq("status".into(), json!(row.status.as_str())).and(listed)),
        event.write(),
    ];
    match app.table.transact(writes).await {
        Ok(()) => exact_view(app, id).await,
        Err(e) if e.failed_on(&ideas::key(id)) => {
            Err(Error::Conflict("the idea changed meanwhile".into()))
        }
        Err(e) => Err(e.into()),
    }
}
