//! `digests`: on an hourly EventBridge schedule, mails each author who opted
//! in ONE digest of the new comments on their ideas (`community::digests`),
//! and starts the reminders of tomorrow's events and round tables
//! (`community::roundtables::remind`; the emails consumer mails them).

use community::mail::Mailer;
use community::store::Table;
use community::App;
use serde_json::Value;

/// One scheduled invocation: the event's content does not matter (any
/// EventBridge scheduled event); the answer says what was sent.
pub async fn handle<T: Table + Clone, M: Mailer>(
    app: &App<T>,
    mailer: &M,
    _event: Value,
) -> Result<Value, community::error::Error> {
    // The reminders first: a failure of the digests does not hold them.
    let reminders = community::roundtables::remind(app).await?;
    tracing::info!(
        events = reminders.events,
        started = reminders.started,
        "event reminders started"
    );
    let report = community::digests::run(app, mailer).await?;
    tracing::info!(
        mails = report.mails,
        comments = report.comments,
        dropped = report.dropped,
        "comment digests sent"
    );
    let mut out = serde_json::to_value(report).unwrap_or(Value::Null);
    out["event_reminders"] = serde_json::to_value(reminders).unwrap_or(Value::Null);
    Ok(out)
}
