//! Idempotency receipts: the first response to a POST carrying an
//! `Idempotency-Key`, stored in the same atomic write as the POST's effect,
//! so a retry replays it instead of acting twice.

use crate::domain::MemberId;
use crate::store::{Item, Key, Table, Write};
use serde_json::{json, Value};

/// Receipts are kept one day; DynamoDB's TTL removes them after that.
pub const RECEIPT_TTL_SECS: i64 = 24 * 3600;
/// Sort-key prefix of receipts in the member's partition.
pub const RECEIPT_PREFIX: &str = "IDEMP#";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    key: Key,
    /// What the key was first used for (`METHOD path`).
    request: String,
}

/// A stored response.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub request: String,
    pub status: u16,
    pub body: Value,
}

impl Receipt {
    /// `idem_key` must already be checked (see `valid_key`).
    pub fn new(member: &MemberId, idem_key: &str, request: String) -> Receipt {
        Receipt {
            // In the member's partition, so erasure finds (and deletes)
            // the stored responses, which may hold personal data.
            key: Key::new(
                format!("MEMBER#{}", member.as_str()),
                format!("{RECEIPT_PREFIX}{idem_key}"),
            ),
            request,
        }
    }

    pub fn request(&self) -> &str {
        &self.request
    }

    /// The write that records the response; fails if the key was used before.
    pub fn write(&self, status: u16, body: &Value) -> Write {
        let expires = time::OffsetDateTime::now_utc().unix_timestamp() + RECEIPT_TTL_SECS;
        let mut item = Item::new();
        item.insert("pk".into(), json!(self.key.pk));
        item.insert("sk".into(), json!(self.key.sk));
        item.insert("request".into(), json!(self.request));
        item.insert("status".into(), json!(status));
        item.insert("body".into(), body.clone());
        item.insert("ttl".into(), json!(expires));
        Write::put_new(item)
    }

    pub async fn load<T: Table>(&self, table: &T) -> crate::error::Result<Option<Stored>> {
        let Some(item) = table.get(&self.key, true).await? else {
            return Ok(None);
        };
        Ok(Some(Stored {
            request: item
                .get("request")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            status: item
                .get("status")
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(200),
            body: item.get("body").cloned().unwrap_or(Value::Null),
        }))
    }
}

/// An `Idempotency-Key` is 1 to 128 of `A-Z a-z 0-9 - _ . :`.
pub fn valid_key(k: &str) -> bool {
    (1..=128).contains(&k.len())
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}
