//! The one retry policy for store calls that DynamoDB refuses for now: a
//! transaction cancelled by a conflict with another transaction on one of
//! its items (`TransactionConflict`, nothing applied) or a partition over
//! its throughput (`Throttled`). DynamoDB's advice for both is to try
//! again with jittered exponential backoff, which every retry loop of the
//! code does through [`pause`]: attempt `n` (from 0) waits a random 5–20 ms
//! doubled `n` times, at most 64 times (0.3–1.3 s), so concurrent writers
//! of one item spread out instead of meeting again.
//!
//! The SDK retries throttling too (its own standard policy, a few quick
//! attempts) before a `Throttled` reaches this code; it never retries a
//! cancelled transaction. How many attempts a loop makes is the caller's:
//! a member's request gives up sooner (then 503 with `Retry-After`, and
//! the client retries) than a consumer or a scheduled run, whose message
//! would otherwise go back to its queue.

use crate::store::{StoreError, StoreResult, Table, Write};
use rand::Rng as _;
use std::time::Duration;

/// The doublings of the delay stop here (64 × 5–20 ms).
const MAX_SHIFT: u32 = 6;

/// How long attempt `attempt` (0 for the first retry) waits.
pub fn delay(attempt: u32) -> Duration {
    let ms = rand::rng().random_range(5..20u64) << attempt.min(MAX_SHIFT);
    Duration::from_millis(ms)
}

/// Waits before retry number `attempt` (0 for the first).
pub async fn pause(attempt: u32) {
    tokio::time::sleep(delay(attempt)).await;
}

/// Whether a store error is worth retrying as it is: nothing was applied,
/// and the same request may succeed in a moment.
pub fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict | StoreError::Throttled)
}

/// A transaction tried up to `attempts` times in all while it is
/// [`retryable`]. Any other outcome, a failed condition included, is
/// returned at once: the same conditional writes are safe to run again,
/// since a cancelled transaction applied none of them.
pub async fn transact<T: Table + ?Sized>(
    table: &T,
    writes: Vec<Write>,
    attempts: u32,
) -> StoreResult<()> {
    let mut attempt = 0;
    loop {
        match table.transact(writes.clone()).await {
            Err(e) if retryable(&e) && attempt + 1 < attempts => {
                pause(attempt).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_5_to_20_ms_and_stop_doubling() {
        for _ in 0..200 {
            let first = delay(0).as_millis();
            assert!((5..20).contains(&first), "{first}");
            let third = delay(2).as_millis();
            assert!((20..80).contains(&third), "{third}");
            let late = delay(30).as_millis();
            assert!((320..1280).contains(&late), "{late}");
        }
    }

    #[test]
    fn only_conflicts_and_throttling_are_retried() {
        assert!(retryable(&StoreError::Conflict));
        assert!(retryable(&StoreError::Throttled));
        assert!(!retryable(&StoreError::ConditionFailed {
            index: 0,
            key: None,
        }));
    }
}
