//! `digests`: on an hourly EventBridge schedule, mails each author who opted
//! in ONE digest of the new comments on their ideas (`community::digests`).

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
    let report = community::digests::run(app, mailer).await?;
    tracing::info!(
        mails = report.mails,
        comments = report.comments,
        dropped = report.dropped,
        "comment digests sent"
    );
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}
