//! Scheduled jobs in local mode: what EventBridge schedules do on AWS, run
//! in-process every `COMMUNITY_SCHEDULE_EVERY_SECS` seconds (default 3600).

use std::future::Future;
use std::time::Duration;

pub const EVERY_VAR: &str = "COMMUNITY_SCHEDULE_EVERY_SECS";
pub const DEFAULT_EVERY_SECS: u64 = 3600;

/// The period of scheduled jobs, from `COMMUNITY_SCHEDULE_EVERY_SECS`.
pub fn period_from(value: Option<String>) -> Result<Duration, String> {
    match value {
        None => Ok(Duration::from_secs(DEFAULT_EVERY_SECS)),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{EVERY_VAR}: {v:?} is not a whole number of seconds >= 1")),
    }
}

pub fn period() -> Result<Duration, String> {
    period_from(std::env::var(EVERY_VAR).ok())
}

/// Runs `job` every `period` (the first run one period after start) until
/// the process ends; a failed run is logged and retried at the next tick.
pub fn spawn_every<F, Fut, E>(name: &'static str, period: Duration, job: F)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match job().await {
                Ok(()) => tracing::info!(job = name, "scheduled job done"),
                Err(e) => tracing::error!(job = name, error = %e, "scheduled job failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_defaults_and_rejects_nonsense() {
        assert_eq!(period_from(None), Ok(Duration::from_secs(3600)));
        assert_eq!(period_from(Some("5".into())), Ok(Duration::from_secs(5)));
        for bad in ["0", "-1", "soon"] {
            let e = period_from(Some(bad.into())).expect_err(bad);
            assert!(e.contains(EVERY_VAR), "{e}");
        }
    }
}
