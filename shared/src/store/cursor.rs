//! Opaque list cursors: the page's last key (DynamoDB's `LastEvaluatedKey`
//! shape), as URL-safe base64 JSON. A cursor is user input: decoding checks
//! that it is a key of the expected query, so a forged cursor is a 400, never
//! a storage error.

use super::{Index, Item, PK, SK};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

pub fn encode(key: &Item) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the cursor is not one this list returned")]
pub struct BadCursor;

/// A list's `cursor` parameter: `None` for the first page, else the key to
/// start after — or a 422 naming `cursor` when it is not one this list gave.
pub fn start(cursor: Option<&str>, index: Index, pk: &str) -> crate::error::Result<Option<Item>> {
    cursor
        .map(|c| {
            decode(c, index, pk).map_err(|e| crate::error::Error::invalid("cursor", e.to_string()))
        })
        .transpose()
}

/// Decodes a cursor for a query on `index` with partition key `pk`.
pub fn decode(cursor: &str, index: Index, pk: &str) -> Result<Item, BadCursor> {
    decode_where(cursor, index, |p| p == pk)
}

/// Decodes a cursor whose index partition key satisfies `pk_ok` (for lists
/// merged from several partitions).
pub fn decode_where(
    cursor: &str,
    index: Index,
    pk_ok: impl Fn(&str) -> bool,
) -> Result<Item, BadCursor> {
    if cursor.len() > 2048 {
        return Err(BadCursor);
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| BadCursor)?;
    let item: Item = serde_json::from_slice(&bytes).map_err(|_| BadCursor)?;
    let (ipk, isk) = index.key_attrs();
    let allowed = [PK, SK, ipk, isk];
    if item.keys().any(|k| !allowed.contains(&k.as_str())) {
        return Err(BadCursor);
    }
    for a in allowed {
        if !matches!(item.get(a), Some(Value::String(_))) {
            return Err(BadCursor);
        }
    }
    if !item.get(ipk).and_then(Value::as_str).is_some_and(pk_ok) {
        return Err(BadCursor);
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Item {
        json!({"pk":"IDEA#1","sk":"IDEA","gsi1pk":"IDEAS#x","gsi1sk":"2026#1"})
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn round_trips() {
        let c = encode(&key());
        assert_eq!(decode(&c, Index::Gsi1, "IDEAS#x"), Ok(key()));
    }

    #[test]
    fn rejects_other_partition_and_garbage() {
        let c = encode(&key());
        assert_eq!(decode(&c, Index::Gsi1, "IDEAS#y"), Err(BadCursor));
        assert_eq!(decode(&c, Index::Gsi2, "IDEAS#x"), Err(BadCursor));
        assert_eq!(decode("!!!", Index::Gsi1, "IDEAS#x"), Err(BadCursor));
        assert_eq!(
            decode(&encode(&Item::new()), Index::Gsi1, "IDEAS#x"),
            Err(BadCursor)
        );
        let mut extra = key();
        extra.insert("email".into(), json!("x"));
        assert_eq!(
            decode(&encode(&extra), Index::Gsi1, "IDEAS#x"),
            Err(BadCursor)
        );
    }
}
