//! Idempotency receipts: the first response to a POST carrying an
//! `Idempotency-Key`, stored in the same atomic write as the POST's effect,
//! so a retry replays it instead of acting twice. As the IETF draft says
//! (draft-ietf-httpapi-idempotency-key-header): the key is the member's,
//! for one route; reused with another body it is refused (422); while the
//! first request with it runs, a retry gets 409.

use crate::domain::MemberId;
use crate::store::{Cond, Item, Key, Table, Write};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Receipts are kept one day; DynamoDB's TTL removes them after that.
pub const RECEIPT_TTL_SECS: i64 = 24 * 3600;
/// Sort-key prefix of receipts in the member's partition.
pub const RECEIPT_PREFIX: &str = "IDEMP#";

/// How long a request holds its key while it runs: a retry meanwhile gets
/// 409; after this the key is free again (a request that died mid-way).
/// Three times the HTTP functions' timeout (10 s, infra/template.yaml).
pub const IN_FLIGHT_MS: i64 = 30_000;

/// One request's use of an `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header):
/// scoped to the member and the route (`METHOD path`), with a fingerprint
/// of the request body. The request first *claims* the key (a `running`
/// item, [`Receipt::claim_write`]); its effect's transaction then writes the
/// response over the claim ([`Receipt::write`]), or an error releases it.
#[derive(Debug, Clone)]
pub struct Receipt {
    key: Key,
    /// What the key was first used for (`METHOD path`).
    request: String,
    /// SHA-256 of the request body (canonical JSON), when there was one.
    fingerprint: Option<String>,
    /// This request's claim on the key.
    lock: String,
    /// Whether a transaction wrote the response (`crate::error::commit`).
    written: Arc<AtomicBool>,
}

impl PartialEq for Receipt {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.request == other.request && self.lock == other.lock
    }
}
impl Eq for Receipt {}

/// A stored response, or a claim of a request still running.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub request: String,
    pub status: u16,
    pub body: Value,
    /// `running` (a claim) or `done`.
    pub state: String,
    pub fingerprint: Option<String>,
}

impl Stored {
    pub fn running(&self) -> bool {
        self.state == "running"
    }
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Receipt {
    /// `idem_key` must already be checked (see `valid_key`).
    pub fn new(member: &MemberId, idem_key: &str, request: String) -> Receipt {
        Receipt {
            // In the member's partition, so erasure finds (and deletes)
            // the stored responses, which may hold personal data.
            key: Key::new(
                crate::members::pk(member.as_str()),
                format!("{RECEIPT_PREFIX}{idem_key}"),
            ),
            request,
            fingerprint: None,
            lock: ulid::Ulid::new().to_string(),
            written: Arc::new(AtomicBool::new(false)),
        }
    }

    /// With the request body's fingerprint (see [`fingerprint`]).
    pub fn with_fingerprint(mut self, fingerprint: Option<String>) -> Receipt {
        self.fingerprint = fingerprint;
        self
    }

    pub fn request(&self) -> &str {
        &self.request
    }

    pub fn fingerprint(&self) -> Option<&str> {
        self.fingerprint.as_deref()
    }

    fn item(&self, state: &str) -> Item {
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + RECEIPT_TTL_SECS;
        let mut item = Item::new();
        item.insert("pk".into(), json!(self.key.pk));
        item.insert("sk".into(), json!(self.key.sk));
        item.insert("request".into(), json!(self.request));
        item.insert("state".into(), json!(state));
        item.insert("lock".into(), json!(self.lock));
        if let Some(f) = &self.fingerprint {
            item.insert("fingerprint".into(), json!(f));
        }
        item.insert("ttl".into(), json!(expires));
        item
    }

    /// The claim: holds while the key is unused, or held by a request that
    /// has not finished within [`IN_FLIGHT_MS`].
    pub fn claim_write(&self) -> Write {
        self.claim_write_for(IN_FLIGHT_MS)
    }

    /// A claim that holds the key for `hold_ms` (tests: a claim already
    /// expired, as a request that died mid-way leaves it).
    pub fn claim_write_for(&self, hold_ms: i64) -> Write {
        let mut item = self.item("running");
        item.insert("running_until".into(), json!(now_ms() + hold_ms));
        Write::put(item).when(
            Cond::NotExists.or(Cond::Eq("state".into(), json!("running"))
                .and(Cond::LessThan("running_until".into(), now_ms()))),
        )
    }

    /// The receipt's item.
    pub fn key(&self) -> Key {
        self.key.clone()
    }

    /// The write that records the response, over this request's own claim
    /// (or where no claim was made); fails if another request holds or used
    /// the key.
    pub fn write(&self, status: u16, body: &Value) -> Write {
        let mut item = self.item("done");
        item.insert("status".into(), json!(status));
        item.insert("body".into(), body.clone());
        Write::put(item).when(Cond::NotExists.or(Cond::Eq("lock".into(), json!(self.lock))))
    }

    /// Frees the key after a request that wrote nothing (an error).
    pub fn release_write(&self) -> Write {
        Write::Delete {
            key: self.key.clone(),
            cond: Some(
                Cond::Eq("lock".into(), json!(self.lock))
                    .and(Cond::Eq("state".into(), json!("running"))),
            ),
        }
    }

    /// Called once the transaction holding [`Receipt::write`] committed.
    pub fn mark_written(&self) {
        self.written.store(true, Ordering::SeqCst);
    }

    pub fn was_written(&self) -> bool {
        self.written.load(Ordering::SeqCst)
    }

    pub async fn load<T: Table>(&self, table: &T) -> crate::error::Result<Option<Stored>> {
        let Some(item) = table.get(&self.key, true).await? else {
            return Ok(None);
        };
        let text = |a: &str| item.get(a).and_then(Value::as_str).map(str::to_owned);
        Ok(Some(Stored {
            request: text("request").unwrap_or_default(),
            status: item
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(200),
            body: item.get("body").cloned().unwrap_or(Value::Null),
            // Receipts written before claims existed are responses.
            state: text("state").unwrap_or_else(|| "done".into()),
            fingerprint: text("fingerprint"),
        }))
    }
}

/// The fingerprint of a request body: SHA-256 of its canonical JSON (keys
/// sorted, no insignificant whitespace), or of its bytes when it is not JSON.
pub fn fingerprint(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let canonical = match serde_json::from_slice::<Value>(body) {
        Ok(v) => canonical_json(&v).into_bytes(),
        Err(_) => body.to_vec(),
    };
    Sha256::digest(&canonical)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical_json(&m[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// An `Idempotency-Key` is 1 to 128 of `A-Z a-z 0-9 - _ . :`.
pub fn valid_key(k: &str) -> bool {
    (1..=128).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_ignores_key_order_and_spacing_not_values() {
        let a = fingerprint(br#"{"title": "Des paniers", "theme": "eat-well"}"#);
        let b = fingerprint(br#"{"theme":"eat-well","title":"Des paniers"}"#);
        let c = fingerprint(br#"{"theme":"eat-well","title":"Des paniers!"}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(fingerprint(b"not json"), fingerprint(b"not  json"));
    }
}
