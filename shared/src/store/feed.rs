//! The change feed: what DynamoDB Streams gives on AWS, and what the
//! embedded store records locally, in one shape ([`Change`]).
//!
//! Only the items events are made of are streamed ([`STREAMED`]): outbox
//! inserts (events that have no entity write of their own) and vote records
//! (a vote's own write is its event). The template's event-source filters
//! use the same prefixes, so on AWS the relay and the thresholds aggregator
//! are invoked only for these records, and the embedded store records
//! nothing else.
//!
//! A change has a sequence number. Lambda delivers a shard's records in
//! order when it reads the shard one batch at a time (ParallelizationFactor
//! 1; above 1 it keeps order per item only), the items of one partition key
//! live in one shard, and the embedded feed is in one global order; so a
//! reader that keeps, per partition key it aggregates, the last sequence
//! number it applied (a watermark) recognises a redelivered record and
//! skips it.

use super::{Item, StoreResult};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::cmp::Ordering;

/// What happened to the item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeName {
    #[serde(rename = "INSERT")]
    Insert,
    #[serde(rename = "MODIFY")]
    Modify,
    #[serde(rename = "REMOVE")]
    Remove,
}

/// The partition-key prefixes that are streamed, with the changes of each
/// that readers receive (the template's `FilterCriteria` say the same).
pub const STREAMED: &[(&str, &[ChangeName])] = &[
    ("OUTBOX#", &[ChangeName::Insert]),
    ("VOTERS#", &[ChangeName::Insert, ChangeName::Remove]),
];

/// Whether a change of an item under `pk` is streamed.
pub fn streamed(pk: &str, name: ChangeName) -> bool {
    STREAMED
        .iter()
        .any(|(prefix, names)| pk.starts_with(prefix) && names.contains(&name))
}

/// One item-level change, as a stream record carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Increasing per partition key (compare with [`seq_cmp`]).
    pub seq: String,
    pub name: ChangeName,
    pub pk: String,
    pub sk: String,
    /// The item after the change (absent for a removal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Item>,
    /// The item before the change (absent for an insert).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<Item>,
    /// When the change was made (epoch seconds).
    pub at: i64,
}

impl Change {
    /// The image that describes the item: the new one, or the old one for a
    /// removal.
    pub fn image(&self) -> Option<&Item> {
        self.new.as_ref().or(self.old.as_ref())
    }

    /// A DynamoDB stream record (as Lambda delivers it) as a change, or
    /// `None` when it is not a well-formed item-level record.
    pub fn from_stream_record(record: &Value) -> Option<Change> {
        let name = match record.get("eventName")?.as_str()? {
            "INSERT" => ChangeName::Insert,
            "MODIFY" => ChangeName::Modify,
            "REMOVE" => ChangeName::Remove,
            _ => return None,
        };
        let ddb = record.get("dynamodb")?;
        let keys = ddb.get("Keys")?;
        let pk = keys.get("pk")?.get("S")?.as_str()?.to_owned();
        let sk = keys.get("sk")?.get("S")?.as_str()?.to_owned();
        let image = |attr: &str| -> Option<Item> {
            match from_dynamo_item(ddb.get(attr)?) {
                Value::Object(m) if !m.is_empty() => Some(m),
                _ => None,
            }
        };
        Some(Change {
            seq: ddb.get("SequenceNumber")?.as_str()?.to_owned(),
            name,
            pk,
            sk,
            new: image("NewImage"),
            old: image("OldImage"),
            at: ddb
                .get("ApproximateCreationDateTime")
                .and_then(Value::as_f64)
                .map_or(0, |f| f as i64),
        })
    }
}

impl Change {
    /// The change as a DynamoDB stream record (`NEW_AND_OLD_IMAGES`), as
    /// Lambda would deliver it: tests drive the Lambda entries with it.
    pub fn to_stream_record(&self) -> Value {
        let keys = json!({"pk": {"S": self.pk}, "sk": {"S": self.sk}});
        let mut ddb = json!({"Keys": keys, "SequenceNumber": self.seq,
            "ApproximateCreationDateTime": self.at, "StreamViewType": "NEW_AND_OLD_IMAGES"});
        if let Some(n) = &self.new {
            ddb["NewImage"] = to_dynamo_item(n);
        }
        if let Some(o) = &self.old {
            ddb["OldImage"] = to_dynamo_item(o);
        }
        let name = match self.name {
            ChangeName::Insert => "INSERT",
            ChangeName::Modify => "MODIFY",
            ChangeName::Remove => "REMOVE",
        };
        json!({"eventID": self.seq, "eventName": name, "eventSource": "aws:dynamodb",
               "eventVersion": "1.1", "awsRegion": "eu-west-3", "dynamodb": ddb,
               "eventSourceARN": "arn:aws:dynamodb:eu-west-3:123456789012:table/community/stream/local"})
    }
}

/// A plain JSON item in DynamoDB JSON.
pub fn to_dynamo_item(item: &Item) -> Value {
    Value::Object(
        item.iter()
            .map(|(k, v)| (k.clone(), to_dynamo_json(v)))
            .collect(),
    )
}

/// One plain JSON value in DynamoDB JSON.
pub fn to_dynamo_json(v: &Value) -> Value {
    match v {
        Value::Null => json!({"NULL": true}),
        Value::Bool(b) => json!({"BOOL": b}),
        Value::Number(n) => json!({"N": n.to_string()}),
        Value::String(s) => json!({"S": s}),
        Value::Array(a) => json!({"L": a.iter().map(to_dynamo_json).collect::<Vec<_>>()}),
        Value::Object(m) => json!({"M": to_dynamo_item(m)}),
    }
}

/// Orders sequence numbers: decimal strings of any length, as DynamoDB
/// Streams gives them (and zero-padded ones, as the embedded feed does).
pub fn seq_cmp(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// An item in DynamoDB JSON (`{"a": {"S": "x"}}`) as plain JSON.
pub fn from_dynamo_item(v: &Value) -> Value {
    match v.as_object() {
        Some(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), from_dynamo_json(v)))
                .collect(),
        ),
        None => Value::Null,
    }
}

/// One DynamoDB JSON value (`{"S": "x"}`, `{"N": "1"}`, `{"M": {...}}`…) as
/// plain JSON.
pub fn from_dynamo_json(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return Value::Null;
    };
    let Some((t, inner)) = obj.iter().next() else {
        return Value::Null;
    };
    match t.as_str() {
        "S" => inner.clone(),
        "N" => inner
            .as_str()
            .and_then(|n| {
                n.parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| n.parse::<f64>().ok().map(|f| json!(f)))
            })
            .unwrap_or(Value::Null),
        "BOOL" => inner.clone(),
        "NULL" => Value::Null,
        "M" => Value::Object(
            inner
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), from_dynamo_json(v)))
                        .collect::<Map<_, _>>()
                })
                .unwrap_or_default(),
        ),
        "L" => Value::Array(
            inner
                .as_array()
                .map(|a| a.iter().map(from_dynamo_json).collect())
                .unwrap_or_default(),
        ),
        "SS" | "NS" => inner.clone(),
        _ => Value::Null,
    }
}

/// The readers of the embedded feed: a change is dropped from it once
/// each has acknowledged it. On AWS they are the two Lambda functions on
/// the table's stream (DynamoDB allows two readers per shard).
pub const READERS: [&str; 2] = ["relay", "thresholds"];

/// A change feed with named readers, each with its own durable cursor.
/// Delivery is at least once: a reader acknowledges a batch after applying
/// it, and a crash in between delivers the batch again.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// Up to `limit` changes after `reader`'s cursor, oldest first.
    async fn changes(&self, reader: &str, limit: usize) -> StoreResult<Vec<Change>>;
    /// Moves `reader`'s cursor to `seq` (its batch is applied).
    async fn ack(&self, reader: &str, seq: &str) -> StoreResult<()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_order_as_numbers() {
        assert_eq!(seq_cmp("9", "10"), Ordering::Less);
        assert_eq!(seq_cmp("00000000000000000010", "9"), Ordering::Greater);
        assert_eq!(
            seq_cmp("111100000000000000000001", "111100000000000000000001"),
            Ordering::Equal
        );
    }

    #[test]
    fn only_outbox_inserts_and_vote_records_are_streamed() {
        assert!(streamed("OUTBOX#03", ChangeName::Insert));
        assert!(!streamed("OUTBOX#03", ChangeName::Remove));
        assert!(streamed("VOTERS#01J#07", ChangeName::Insert));
        assert!(streamed("VOTERS#01J#07", ChangeName::Remove));
        assert!(!streamed("VOTERS#01J#07", ChangeName::Modify));
        assert!(!streamed("IDEA#01J", ChangeName::Modify));
    }

    #[test]
    fn a_stream_record_reads_as_a_change() {
        let r = json!({"eventID": "1", "eventName": "REMOVE",
            "eventSourceARN": "arn:aws:dynamodb:eu-west-3:1:table/t/stream/2026",
            "dynamodb": {"Keys": {"pk": {"S": "VOTERS#i#01"}, "sk": {"S": "VOTE"}},
                         "OldImage": {"pk": {"S": "VOTERS#i#01"}, "sk": {"S": "VOTE"}, "n": {"N": "2"}},
                         "SequenceNumber": "4200", "ApproximateCreationDateTime": 1795424400.0}});
        let c = Change::from_stream_record(&r).expect("a change");
        assert_eq!(c.name, ChangeName::Remove);
        assert_eq!((c.pk.as_str(), c.seq.as_str()), ("VOTERS#i#01", "4200"));
        assert!(c.new.is_none());
        assert_eq!(c.image().and_then(|i| i.get("n")), Some(&json!(2)));
        assert_eq!(c.at, 1795424400);
        assert!(Change::from_stream_record(&json!({"eventName": "INSERT"})).is_none());
        let back = Change::from_stream_record(&c.to_stream_record()).expect("round trip");
        assert_eq!(back, c);
    }
}
