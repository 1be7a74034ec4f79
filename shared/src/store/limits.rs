//! DynamoDB's request and item limits, computed the way DynamoDB computes
//! them, and checked by both adapters before a request is sent (the embedded
//! store has no other way to know them; the DynamoDB adapter checks them too,
//! so both return the same [`Limit`] for the same request, and maps
//! DynamoDB's own `ValidationException` for them to the same error).
//!
//! Sizes (<https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html>):
//! an item is the sum of its attribute names (UTF-8 bytes) and values:
//! a string is its UTF-8 length; a number is 1 byte per two significant
//! digits plus 1; a boolean or null is 1 byte; a list or map is 3 bytes plus
//! 1 byte per element plus its elements (a map element also counts its name).

use super::{Index, Item, Key, Write, PK, SK};
use serde_json::Value;

/// The largest item DynamoDB stores: 400 KB, names and values included.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;
/// Actions in one `TransactWriteItems`.
pub const MAX_TRANSACTION_ACTIONS: usize = 100;
/// The aggregate size of the items in one transaction.
pub const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// Keys in one `BatchGetItem`.
pub const MAX_BATCH_GET_KEYS: usize = 100;
/// A `Query` stops reading after 1 MB and returns `LastEvaluatedKey`.
pub const MAX_QUERY_PAGE_BYTES: usize = 1024 * 1024;
/// Partition and sort key values (key attributes have their own caps).
pub const MAX_PARTITION_KEY_BYTES: usize = 2048;
pub const MAX_SORT_KEY_BYTES: usize = 1024;

/// Which of DynamoDB's limits a request broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Limit {
    #[error("item size {bytes} bytes exceeds DynamoDB's 400 KB ({pk}, {sk})")]
    ItemSize {
        pk: String,
        sk: String,
        bytes: usize,
    },
    #[error("a transaction holds 1 to 100 actions, not {0}")]
    TransactionActions(usize),
    #[error("transaction size {0} bytes exceeds DynamoDB's 4 MB")]
    TransactionSize(usize),
    #[error("two actions of one transaction on the same item ({pk}, {sk})")]
    TransactionDuplicateItem { pk: String, sk: String },
    #[error("a BatchGetItem takes 1 to 100 distinct keys, not {0}")]
    BatchGetKeys(usize),
    #[error("a BatchGetItem names the key ({pk}, {sk}) twice")]
    BatchGetDuplicateKey { pk: String, sk: String },
    #[error("key attribute {attr}: {problem}")]
    KeyAttribute { attr: String, problem: String },
}

/// Size of one attribute value, as DynamoDB counts it.
pub fn value_size(v: &Value) -> usize {
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::String(s) => s.len(),
        Value::Number(n) => number_size(&n.to_string()),
        Value::Array(a) => 3 + a.iter().map(|e| 1 + value_size(e)).sum::<usize>(),
        Value::Object(m) => {
            3 + m
                .iter()
                .map(|(k, e)| 1 + k.len() + value_size(e))
                .sum::<usize>()
        }
    }
}

/// 1 byte per two significant digits, plus 1 (leading and trailing zeroes
/// are not significant).
fn number_size(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or(text);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.div_ceil(2) + 1
}

/// Size of an item: attribute names plus values.
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

/// The size a write sends (the item of a put; the key and the attributes an
/// update sets; the key of a delete or a check): what counts towards a
/// transaction's 4 MB.
pub fn write_size(w: &Write) -> usize {
    let key_size = |k: &Key| PK.len() + k.pk.len() + SK.len() + k.sk.len();
    match w {
        Write::Put { item, .. } => item_size(item),
        Write::Update { key, update, .. } => {
            key_size(key)
                + item_size(&update.set)
                + update
                    .add
                    .iter()
                    .map(|(a, n)| a.len() + number_size(&n.to_string()))
                    .sum::<usize>()
                + update.remove.iter().map(String::len).sum::<usize>()
        }
        Write::Delete { key, .. } | Write::Check { key, .. } => key_size(key),
    }
}

/// Checks the key attributes of an item as DynamoDB does: `pk` and `sk` are
/// non-empty strings under their size caps; an index key attribute, when
/// present, is a non-empty string (the table declares every key as `S`).
pub fn check_item(item: &Item) -> Result<(), Limit> {
    let bad = |attr: &str, problem: &str| Limit::KeyAttribute {
        attr: attr.to_owned(),
        problem: problem.to_owned(),
    };
    for (attr, cap) in [(PK, MAX_PARTITION_KEY_BYTES), (SK, MAX_SORT_KEY_BYTES)] {
        match item.get(attr) {
            None => return Err(bad(attr, "missing")),
            Some(Value::String(s)) if s.is_empty() => return Err(bad(attr, "empty string")),
            Some(Value::String(s)) if s.len() > cap => return Err(bad(attr, "too long")),
            Some(Value::String(_)) => {}
            Some(_) => return Err(bad(attr, "not a string (declared S)")),
        }
    }
    for index in Index::SECONDARY {
        let (a, b) = index.key_attrs();
        for attr in [a, b] {
            match item.get(attr) {
                None => {}
                Some(Value::String(s)) if s.is_empty() => {
                    return Err(bad(attr, "empty string for an index key"))
                }
                Some(Value::String(_)) => {}
                Some(_) => return Err(bad(attr, "not a string (declared S)")),
            }
        }
    }
    let bytes = item_size(item);
    if bytes > MAX_ITEM_BYTES {
        let s = |a: &str| item.get(a).and_then(Value::as_str).unwrap_or("").to_owned();
        return Err(Limit::ItemSize {
            pk: s(PK),
            sk: s(SK),
            bytes,
        });
    }
    Ok(())
}

/// Checks a key given on its own (update, delete, check, get).
pub fn check_key(key: &Key) -> Result<(), Limit> {
    let mut item = Item::new();
    item.insert(PK.into(), Value::String(key.pk.clone()));
    item.insert(SK.into(), Value::String(key.sk.clone()));
    check_item(&item)
}

/// Checks a write group before it is sent: 1 to 100 actions, one per item,
/// keys well formed, every put item ≤ 400 KB, the whole ≤ 4 MB. (An update's
/// resulting size is only known when it applies: the embedded store checks
/// it then, DynamoDB likewise.)
pub fn check_group(writes: &[Write]) -> Result<(), Limit> {
    if writes.is_empty() || writes.len() > MAX_TRANSACTION_ACTIONS {
        return Err(Limit::TransactionActions(writes.len()));
    }
    let mut seen = std::collections::HashSet::new();
    let mut total = 0usize;
    for w in writes {
        match w {
            Write::Put { item, .. } => check_item(item)?,
            Write::Update { key, update, .. } => {
                check_key(key)?;
                for attr in [PK, SK] {
                    if update.set.contains_key(attr) || update.remove.iter().any(|r| r == attr) {
                        return Err(Limit::KeyAttribute {
                            attr: attr.to_owned(),
                            problem: "an update cannot change a primary key attribute".into(),
                        });
                    }
                }
            }
            Write::Delete { key, .. } | Write::Check { key, .. } => check_key(key)?,
        }
        let Some(key) = w.key() else {
            return Err(Limit::KeyAttribute {
                attr: PK.into(),
                problem: "missing".into(),
            });
        };
        if !seen.insert(key.clone()) {
            return Err(Limit::TransactionDuplicateItem {
                pk: key.pk,
                sk: key.sk,
            });
        }
        total += write_size(w);
    }
    if total > MAX_TRANSACTION_BYTES {
        return Err(Limit::TransactionSize(total));
    }
    Ok(())
}

/// Checks the keys of a batch read: 1 to 100, distinct, well formed.
pub fn check_batch_get(keys: &[Key]) -> Result<(), Limit> {
    if keys.len() > MAX_BATCH_GET_KEYS {
        return Err(Limit::BatchGetKeys(keys.len()));
    }
    let mut seen = std::collections::HashSet::new();
    for k in keys {
        check_key(k)?;
        if !seen.insert(k) {
            return Err(Limit::BatchGetDuplicateKey {
                pk: k.pk.clone(),
                sk: k.sk.clone(),
            });
        }
    }
    Ok(())
}

/// Maps the message of DynamoDB's `ValidationException` to the limit it
/// reports, when it is one of these (the texts of DynamoDB and moto).
pub fn from_validation_message(msg: &str) -> Option<Limit> {
    let m = msg.to_ascii_lowercase();
    if m.contains("item size") && m.contains("maximum allowed size") {
        return Some(Limit::ItemSize {
            pk: String::new(),
            sk: String::new(),
            bytes: 0,
        });
    }
    if m.contains("transactitems") && m.contains("less than or equal to 100") {
        return Some(Limit::TransactionActions(0));
    }
    if m.contains("transaction request cannot include multiple operations on one item") {
        return Some(Limit::TransactionDuplicateItem {
            pk: String::new(),
            sk: String::new(),
        });
    }
    if m.contains("too many items requested for the batchgetitem") {
        return Some(Limit::BatchGetKeys(0));
    }
    if m.contains("provided list of item keys contains duplicates") {
        return Some(Limit::BatchGetDuplicateKey {
            pk: String::new(),
            sk: String::new(),
        });
    }
    if m.contains("empty string value") || m.contains("key attribute") {
        return Some(Limit::KeyAttribute {
            attr: String::new(),
            problem: msg.to_owned(),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(v: Value) -> Item {
        match v {
            Value::Object(m) => m,
            _ => Item::new(),
        }
    }

    #[test]
    fn sizes_follow_dynamodb_rules() {
        assert_eq!(value_size(&json!("héllo")), 6);
        assert_eq!(value_size(&json!(true)), 1);
        assert_eq!(value_size(&json!(null)), 1);
        // 12345 → 5 significant digits → 3 + 1
        assert_eq!(value_size(&json!(12345)), 4);
        // 1000 → 1 significant digit
        assert_eq!(value_size(&json!(1000)), 2);
        assert_eq!(value_size(&json!(-0.5)), 2);
        assert_eq!(value_size(&json!([])), 3);
        assert_eq!(value_size(&json!(["ab", "c"])), 3 + (1 + 2) + (1 + 1));
        assert_eq!(value_size(&json!({"ab": 1})), 3 + 1 + 2 + 2);
        assert_eq!(
            item_size(&item(json!({"pk": "A", "sk": "B"}))),
            2 + 1 + 2 + 1
        );
    }

    #[test]
    fn item_limit_is_400_kb_names_included() {
        let base = item_size(&item(json!({"pk": "P", "sk": "S", "body": ""})));
        let fits = "x".repeat(MAX_ITEM_BYTES - base);
        assert!(check_item(&item(json!({"pk": "P", "sk": "S", "body": fits}))).is_ok());
        let over = "x".repeat(MAX_ITEM_BYTES - base + 1);
        assert!(matches!(
            check_item(&item(json!({"pk": "P", "sk": "S", "body": over}))),
            Err(Limit::ItemSize { .. })
        ));
    }

    #[test]
    fn key_attributes_are_checked() {
        for bad in [
            json!({"sk": "S"}),
            json!({"pk": "", "sk": "S"}),
            json!({"pk": 1, "sk": "S"}),
            json!({"pk": "P", "sk": "S", "gsi1pk": ""}),
            json!({"pk": "P", "sk": "S", "gsi2sk": 7}),
        ] {
            assert!(
                matches!(
                    check_item(&item(bad.clone())),
                    Err(Limit::KeyAttribute { .. })
                ),
                "{bad}"
            );
        }
        assert!(check_item(&item(json!({"pk": "P", "sk": "S", "gsi1pk": "G"}))).is_ok());
    }
}
