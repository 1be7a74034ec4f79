//! The domain's error enum; `crate::http::problem` maps it to HTTP once.

use crate::domain::FieldError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Well-formed input with invalid values (422).
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The object does not exist (or is not visible to the caller) (404).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The object's state does not allow this (409).
    #[error("{0}")]
    Conflict(String),
    /// A conflict on one field's value (409, the field named in `errors`),
    /// e.g. a loyalty card already linked to another member.
    #[error("{}: {}", .0.field, .0.message)]
    ConflictOn(FieldError),
    /// The member made too many writes of this kind in the current window
    /// (429 with `Retry-After: retry_after` seconds).
    #[error("rate limited, retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// The store is too busy right now; retrying later will work (503).
    #[error("busy, retry later")]
    Busy,
    /// The identity provider's signing keys could not be fetched to verify
    /// the token sent (503 with `Retry-After`): the token may be fine.
    #[error("token signing keys unavailable")]
    KeysUnavailable,
    /// The request's `Idempotency-Key` was already used: replay its receipt.
    #[error("already done")]
    Replay,
    /// The first request with this `Idempotency-Key` is still running
    /// (409 naming the header, with `Retry-After`).
    #[error("a request with this Idempotency-Key is still being processed")]
    KeyInUse,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Error::Invalid(vec![FieldError::new(field, message)])
    }

    /// Whether a store condition failed on the write of item `key`
    /// ([`StoreError::failed_on`]).
    pub fn failed_on(&self, key: &crate::store::Key) -> bool {
        matches!(self, Error::Store(e) if e.failed_on(key))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// Commits `writes` plus the receipt (when there is one) atomically. A failed
/// condition on the receipt means the same request was already done.
pub async fn commit<T: crate::store::Table>(
    table: &T,
    mut writes: Vec<crate::store::Write>,
    receipt: Option<(&crate::receipt::Receipt, u16, &serde_json::Value)>,
) -> Result<()> {
    let receipt_key = receipt.map(|(r, _, _)| r.key());
    if let Some((r, status, body)) = receipt {
        writes.push(r.write(status, body));
    }
    // A transaction cancelled by a conflict wrote nothing: run it again
    // (its conditions then decide, e.g. a duplicate entry becomes a 409),
    // with jittered backoff, as DynamoDB advises for TransactionConflict.
    let mut attempt = 0u32;
    loop {
        match table.transact(writes.clone()).await {
            Err(e) if receipt_key.as_ref().is_some_and(|k| e.failed_on(k)) => {
                return Err(Error::Replay)
            }
            Err(StoreError::Conflict) if attempt < COMMIT_ATTEMPTS => {
                crate::retry::pause(attempt).await;
                attempt += 1;
            }
            other => {
                other?;
                if let Some((r, _, _)) = receipt {
                    r.mark_written();
                }
                return Ok(());
            }
        }
    }
}

/// Attempts of a request's transaction cancelled by conflicts.
const COMMIT_ATTEMPTS: u32 = 6;
