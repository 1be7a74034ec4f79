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
use aws_lambda_events::event::dynamodb::{EventRecord, StreamRecord, StreamViewType};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
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
    /// `None` when it is not a well-formed item-level record. The record is
    /// read as `aws_lambda_events`' type and its images by `serde_dynamo`.
    pub fn from_stream_record(record: &Value) -> Option<Change> {
        let record: EventRecord = serde_json::from_value(record.clone()).ok()?;
        Change::from_event_record(&record)
    }

    /// An `aws_lambda_events` stream record as a change (see
    /// [`Change::from_stream_record`]).
    pub fn from_event_record(record: &EventRecord) -> Option<Change> {
        let name = match record.event_name.as_str() {
            "INSERT" => ChangeName::Insert,
            "MODIFY" => ChangeName::Modify,
            "REMOVE" => ChangeName::Remove,
            _ => return None,
        };
        let ddb = &record.change;
        let keys: Item = serde_dynamo::from_item(ddb.keys.clone()).ok()?;
        let key = |k: &str| keys.get(k).and_then(Value::as_str).map(str::to_owned);
        // An absent image is empty; one that does not read makes the whole
        // record unreadable (never a change without what it changed).
        let image = |i: &serde_dynamo::Item| -> Result<Option<Item>, ()> {
            if i.is_empty() {
                return Ok(None);
            }
            serde_dynamo::from_item(i.clone()).map(Some).map_err(|_| ())
        };
        Some(Change {
            seq: ddb.sequence_number.clone()?,
            name,
            pk: key("pk")?,
            sk: key("sk")?,
            new: image(&ddb.new_image).ok()?,
            old: image(&ddb.old_image).ok()?,
            at: ddb.approximate_creation_date_time.timestamp(),
        })
    }

    /// The change as a DynamoDB stream record (`NEW_AND_OLD_IMAGES`), as
    /// Lambda would deliver it: tests drive the Lambda entries with it.
    pub fn to_stream_record(&self) -> Value {
        let item =
            |i: &Item| -> serde_dynamo::Item { serde_dynamo::to_item(i).unwrap_or_default() };
        let mut keys = Item::new();
        keys.insert("pk".into(), json!(self.pk));
        keys.insert("sk".into(), json!(self.sk));
        let mut ddb = StreamRecord::default();
        ddb.keys = item(&keys);
        ddb.new_image = self.new.as_ref().map(item).unwrap_or_default();
        ddb.old_image = self.old.as_ref().map(item).unwrap_or_default();
        ddb.sequence_number = Some(self.seq.clone());
        ddb.stream_view_type = Some(StreamViewType::NewAndOldImages);
        ddb.size_bytes = serde_json::to_vec(&self.image()).map_or(0, |b| b.len() as i64);
        let mut r = EventRecord::default();
        r.aws_region = "eu-west-3".into();
        r.change = ddb;
        r.event_id = self.seq.clone();
        r.event_name = match self.name {
            ChangeName::Insert => "INSERT",
            ChangeName::Modify => "MODIFY",
            ChangeName::Remove => "REMOVE",
        }
        .into();
        r.event_source = Some("aws:dynamodb".into());
        r.event_version = Some("1.1".into());
        r.event_source_arn =
            Some("arn:aws:dynamodb:eu-west-3:123456789012:table/community/stream/local".into());
        let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
        // Epoch seconds, as Lambda gives them (the type holds a chrono time).
        v["dynamodb"]["ApproximateCreationDateTime"] = json!(self.at as f64);
        v
    }
}

/// Orders sequence numbers: decimal strings of any length, as DynamoDB
/// Streams gives them (and zero-padded ones, as the embedded feed does).
pub fn seq_cmp(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
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
        let r = json!({"eventID": "1", "eventName": "REMOVE", "awsRegion": "eu-west-3",
            "eventSourceARN": "arn:aws:dynamodb:eu-west-3:1:table/t/stream/2026",
            "dynamodb": {"Keys": {"pk": {"S": "VOTERS#i#01"}, "sk": {"S": "VOTE"}},
                         "OldImage": {"pk": {"S": "VOTERS#i#01"}, "sk": {"S": "VOTE"}, "n": {"N": "2"}},
                         "SequenceNumber": "4200", "SizeBytes": 90,
                         "ApproximateCreationDateTime": 1795424400.0}});
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

    #[test]
    fn an_image_of_every_attribute_type_reads_as_plain_json() {
        let r = json!({"eventID": "2", "eventName": "INSERT", "awsRegion": "eu-west-3",
            "dynamodb": {"Keys": {"pk": {"S": "OUTBOX#03"}, "sk": {"S": "01J"}},
                "NewImage": {"pk": {"S": "OUTBOX#03"}, "sk": {"S": "01J"},
                    "n": {"N": "-7"}, "f": {"N": "2.5"}, "b": {"BOOL": true}, "z": {"NULL": true},
                    "l": {"L": [{"S": "a"}, {"N": "1"}]},
                    "m": {"M": {"inner": {"M": {"x": {"S": "y"}}}}}},
                "SequenceNumber": "4201", "SizeBytes": 120,
                "ApproximateCreationDateTime": 1795424401.0}});
        let c = Change::from_stream_record(&r).expect("a change");
        let image = c.new.clone().map(Value::Object).expect("a new image");
        assert_eq!(
            image,
            json!({"pk": "OUTBOX#03", "sk": "01J", "n": -7, "f": 2.5, "b": true, "z": null,
                   "l": ["a", 1], "m": {"inner": {"x": "y"}}})
        );
        assert!(c.old.is_none());
        assert_eq!(Change::from_stream_record(&c.to_stream_record()), Some(c));
        // Without its sequence number or its keys a record is unreadable.
        let mut no_seq = r.clone();
        no_seq["dynamodb"]["SequenceNumber"] = Value::Null;
        assert!(Change::from_stream_record(&no_seq).is_none());
        let mut no_sk = r;
        no_sk["dynamodb"]["Keys"] = json!({"pk": {"S": "OUTBOX#03"}});
        assert!(Change::from_stream_record(&no_sk).is_none());
    }
}
