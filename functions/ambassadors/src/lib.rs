//! `ambassadors`: the scheduled run (EventBridge, daily) that scores members
//! and flags the ambassadors (`community::ambassadors`).

use community::store::Table;
use community::App;
use serde_json::Value;

/// One scheduled invocation: the event (an EventBridge schedule) carries
/// nothing the run needs; the answer is the run's report.
pub async fn handle<T: Table>(
    app: &App<T>,
    _event: Value,
) -> Result<Value, community::error::Error> {
    let report = community::ambassadors::run(app).await?;
    Ok(serde_json::to_value(report).unwrap_or(Value::Null))
}
