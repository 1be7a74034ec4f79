//! The storage port: a small single-table model that both adapters implement
//! with the same semantics (the conformance suite in `shared/tests` proves it).
//!
//! Items are JSON maps. The primary key is `(pk, sk)`; the secondary indexes
//! are `gsi1`..`gsi4`, each keyed by `(gsiNpk, gsiNsk)` and sparse (an item is
//! in an index only when it carries both attributes). Entity types own their
//! key layouts (see `crate::domain`); nothing above this module knows which
//! adapter is in use.

pub mod capacity;
pub mod cursor;
pub mod dynamo;
pub mod embedded;
pub mod feed;
pub mod limits;

use async_trait::async_trait;
use serde_json::{Map, Value};
use std::sync::Arc;

/// One stored item: attribute name → value.
pub type Item = Map<String, Value>;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
/// Epoch-second expiry attribute. DynamoDB's TTL deletes such items some time
/// after expiry; the embedded store keeps them. Domain code never relies on
/// an expired item being gone.
pub const TTL: &str = "ttl";

/// The primary key of an item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub pk: String,
    pub sk: String,
}

impl Key {
    pub fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Key {
            pk: pk.into(),
            sk: sk.into(),
        }
    }

    pub fn of(item: &Item) -> Option<Key> {
        Some(Key::new(
            item.get(PK)?.as_str()?.to_owned(),
            item.get(SK)?.as_str()?.to_owned(),
        ))
    }
}

/// An index the table can be queried on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    Primary,
    Gsi1,
    Gsi2,
    Gsi3,
    /// The home list's index: one partition (`ideas::TOP_PK`) sorted by
    /// votes, projecting only an idea's card (`CARD_ATTRS`), not its body.
    Gsi4,
}

/// The non-key attributes `gsi4` projects (`INCLUDE` in the template): what
/// a list shows of an idea.
pub const CARD_ATTRS: &[&str] = &[
    "id",
    "theme",
    "title",
    "excerpt",
    "truncated",
    "author_id",
    "author_name",
    "status",
    "votes",
    "created_at",
    "reached_threshold_at",
    "comment_count",
];

impl Index {
    pub const SECONDARY: [Index; 4] = [Index::Gsi1, Index::Gsi2, Index::Gsi3, Index::Gsi4];

    /// The non-key attributes this index projects; `None` = all of them.
    pub fn projection(self) -> Option<&'static [&'static str]> {
        match self {
            Index::Gsi4 => Some(CARD_ATTRS),
            _ => None,
        }
    }

    /// What of `item` this index holds: its keys (the table's and the
    /// index's) and the projected attributes.
    pub fn project(self, item: &Item) -> Item {
        let Some(attrs) = self.projection() else {
            return item.clone();
        };
        let (a, b) = self.key_attrs();
        item.iter()
            .filter(|(k, _)| {
                let k = k.as_str();
                k == PK || k == SK || k == a || k == b || attrs.contains(&k)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Attribute names of the (partition, sort) key of this index.
    pub fn key_attrs(self) -> (&'static str, &'static str) {
        match self {
            Index::Primary => (PK, SK),
            Index::Gsi1 => ("gsi1pk", "gsi1sk"),
            Index::Gsi2 => ("gsi2pk", "gsi2sk"),
            Index::Gsi3 => ("gsi3pk", "gsi3sk"),
            Index::Gsi4 => ("gsi4pk", "gsi4sk"),
        }
    }

    pub fn name(self) -> Option<&'static str> {
        match self {
            Index::Primary => None,
            Index::Gsi1 => Some("gsi1"),
            Index::Gsi2 => Some("gsi2"),
            Index::Gsi3 => Some("gsi3"),
            Index::Gsi4 => Some("gsi4"),
        }
    }
}

/// A condition on the current state of one item, evaluated atomically with the
/// write it guards.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    /// The item does not exist.
    NotExists,
    /// The item exists.
    Exists,
    /// The item exists and the attribute equals the value.
    Eq(String, Value),
    /// The item is absent, or exists without this attribute.
    AttrAbsent(String),
    /// The item exists and the numeric attribute is strictly less than the value
    /// (an absent attribute counts as 0).
    LessThan(String, i64),
    /// The item exists and the numeric attribute is >= the value
    /// (an absent attribute counts as 0).
    AtLeast(String, i64),
    /// Both conditions hold.
    And(Box<Cond>, Box<Cond>),
    /// Either condition holds.
    Or(Box<Cond>, Box<Cond>),
}

impl Cond {
    pub fn and(self, other: Cond) -> Cond {
        Cond::And(Box::new(self), Box::new(other))
    }
    pub fn or(self, other: Cond) -> Cond {
        Cond::Or(Box::new(self), Box::new(other))
    }

    /// Evaluates the condition against the current item (None = absent).
    /// The DynamoDB adapter translates the same enum into a condition
    /// expression; both must agree, which the conformance suite checks.
    pub fn holds(&self, current: Option<&Item>) -> bool {
        let num = |item: &Item, attr: &str| item.get(attr).and_then(Value::as_i64).unwrap_or(0);
        match self {
            Cond::NotExists => current.is_none(),
            Cond::Exists => current.is_some(),
            Cond::Eq(attr, v) => current.and_then(|i| i.get(attr)) == Some(v),
            Cond::AttrAbsent(attr) => current.is_none_or(|i| !i.contains_key(attr)),
            Cond::LessThan(attr, n) => current.is_some_and(|i| num(i, attr) < *n),
            Cond::AtLeast(attr, n) => current.is_some_and(|i| num(i, attr) >= *n),
            Cond::And(a, b) => a.holds(current) && b.holds(current),
            Cond::Or(a, b) => a.holds(current) || b.holds(current),
        }
    }
}

/// An update of one item. Creates the item when absent (like DynamoDB's
/// `UpdateItem`), unless a condition says otherwise.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// Attributes to set.
    pub set: Item,
    /// Numeric attributes to add to (absent counts as 0).
    pub add: Vec<(String, i64)>,
    /// Attributes to remove.
    pub remove: Vec<String>,
}

impl Update {
    pub fn set(mut self, attr: &str, v: impl Into<Value>) -> Self {
        self.set.insert(attr.to_owned(), v.into());
        self
    }
    pub fn add(mut self, attr: &str, n: i64) -> Self {
        self.add.push((attr.to_owned(), n));
        self
    }
    pub fn remove(mut self, attr: &str) -> Self {
        self.remove.push(attr.to_owned());
        self
    }

    /// Applies the update to an item (None = absent) and returns the new item.
    pub fn apply(&self, key: &Key, current: Option<&Item>) -> Item {
        let mut item = current.cloned().unwrap_or_default();
        item.insert(PK.into(), Value::String(key.pk.clone()));
        item.insert(SK.into(), Value::String(key.sk.clone()));
        for (k, v) in &self.set {
            item.insert(k.clone(), v.clone());
        }
        for (k, n) in &self.add {
            let old = item.get(k).and_then(Value::as_i64).unwrap_or(0);
            item.insert(k.clone(), Value::from(old + n));
        }
        for k in &self.remove {
            item.remove(k);
        }
        item
    }
}

/// One write in an atomic group.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Put {
        item: Item,
        cond: Option<Cond>,
    },
    Update {
        key: Key,
        update: Update,
        cond: Option<Cond>,
    },
    Delete {
        key: Key,
        cond: Option<Cond>,
    },
    /// Fails the group unless the condition holds; writes nothing.
    Check {
        key: Key,
        cond: Cond,
    },
}

impl Write {
    pub fn put(item: Item) -> Self {
        Write::Put { item, cond: None }
    }
    pub fn put_new(item: Item) -> Self {
        Write::Put {
            item,
            cond: Some(Cond::NotExists),
        }
    }
    pub fn update(key: Key, update: Update) -> Self {
        Write::Update {
            key,
            update,
            cond: None,
        }
    }
    pub fn when(self, c: Cond) -> Self {
        match self {
            Write::Put { item, .. } => Write::Put {
                item,
                cond: Some(c),
            },
            Write::Update { key, update, .. } => Write::Update {
                key,
                update,
                cond: Some(c),
            },
            Write::Delete { key, .. } => Write::Delete { key, cond: Some(c) },
            Write::Check { key, .. } => Write::Check { key, cond: c },
        }
    }

    pub fn key(&self) -> Option<Key> {
        match self {
            Write::Put { item, .. } => Key::of(item),
            Write::Update { key, .. } | Write::Delete { key, .. } | Write::Check { key, .. } => {
                Some(key.clone())
            }
        }
    }

    pub fn cond(&self) -> Option<&Cond> {
        match self {
            Write::Put { cond, .. } | Write::Update { cond, .. } | Write::Delete { cond, .. } => {
                cond.as_ref()
            }
            Write::Check { cond, .. } => Some(cond),
        }
    }
}

/// Which sort keys a query selects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SortKey {
    #[default]
    All,
    BeginsWith(String),
    /// Inclusive range.
    Between(String, String),
}

impl SortKey {
    pub fn matches(&self, sk: &str) -> bool {
        match self {
            SortKey::All => true,
            SortKey::BeginsWith(p) => sk.starts_with(p.as_str()),
            SortKey::Between(a, b) => a.as_str() <= sk && sk <= b.as_str(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub index: Index,
    pub pk: String,
    pub sk: SortKey,
    /// Ascending sort key order when true.
    pub forward: bool,
    /// At most this many items (1..=1000).
    pub limit: u32,
    /// Resume after this key (a `Page::last_key` from the same query).
    pub start_after: Option<Item>,
    /// Strongly consistent read (primary index only).
    pub consistent: bool,
}

impl Query {
    pub fn new(index: Index, pk: impl Into<String>) -> Self {
        Query {
            index,
            pk: pk.into(),
            sk: SortKey::All,
            forward: true,
            limit: 100,
            start_after: None,
            consistent: false,
        }
    }
    pub fn sk(mut self, sk: SortKey) -> Self {
        self.sk = sk;
        self
    }
    pub fn backward(mut self) -> Self {
        self.forward = false;
        self
    }
    pub fn limit(mut self, n: u32) -> Self {
        self.limit = n;
        self
    }
    pub fn start_after(mut self, k: Option<Item>) -> Self {
        self.start_after = k;
        self
    }
}

/// One page of a query: the items, and the key to resume after when more may follow.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Page {
    pub items: Vec<Item>,
    pub last_key: Option<Item>,
}

/// Extracts the key attributes (primary plus the queried index) from an item,
/// in the shape DynamoDB uses for `LastEvaluatedKey`.
pub fn page_key(index: Index, item: &Item) -> Item {
    let mut k = Item::new();
    let (ipk, isk) = index.key_attrs();
    for a in [PK, SK, ipk, isk] {
        if let Some(v) = item.get(a) {
            k.insert(a.to_owned(), v.clone());
        }
    }
    k
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The condition of the write at this position in the group failed;
    /// nothing in the group was written. `key` is that write's item (set
    /// by the adapters' `transact`): callers tell which condition failed
    /// by the item it guards ([`StoreError::failed_on`]), not by the
    /// write's position.
    #[error("condition failed on write {index}")]
    ConditionFailed { index: usize, key: Option<Key> },
    /// Another transaction touched the same item concurrently; nothing was
    /// written and the group may be retried.
    #[error("transaction conflict")]
    Conflict,
    /// The store is over its provisioned or partition rate; retry later.
    #[error("throttled")]
    Throttled,
    /// The request broke one of DynamoDB's limits (item size, transaction
    /// actions or size, batch keys, key attributes): a programming error,
    /// never user input, and both adapters report it the same way.
    #[error("DynamoDB limit: {0}")]
    Limit(#[from] limits::Limit),
    /// The request itself was invalid (a programming error, not user input).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Anything else (I/O, network, corrupted data).
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Whether a condition failed on the write of item `key` (a group
    /// writes an item once at most, so the item names the write).
    pub fn failed_on(&self, key: &Key) -> bool {
        matches!(self, StoreError::ConditionFailed { key: Some(k), .. } if k == key)
    }

    /// A failed condition of the group `writes` at `index`, naming its
    /// item.
    pub fn condition_failed(writes: &[Write], index: usize) -> Self {
        StoreError::ConditionFailed {
            index,
            key: writes.get(index).and_then(Write::key),
        }
    }

    /// This error with the item of a failed condition's write filled in
    /// from the group it came from.
    pub fn locate(self, writes: &[Write]) -> Self {
        match self {
            StoreError::ConditionFailed { index, key: None } => {
                StoreError::condition_failed(writes, index)
            }
            other => other,
        }
    }
}

impl StoreError {
    pub fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The single-table port. Both adapters guarantee:
/// - `transact` is atomic: every write applies, or none does; conditions are
///   evaluated against the state at commit; at most 100 writes, one per item.
/// - a write acknowledged with `Ok` is durable.
/// - `query` returns items in sort-key order (byte order of UTF-8 strings);
///   ties on an index sort key are broken by the primary key. A page stops
///   at `limit` items or after 1 MB read, whichever comes first, so a short
///   page with a `last_key` is not the end.
/// - DynamoDB's limits hold on both ([`limits`]).
#[async_trait]
pub trait Table: Send + Sync + 'static {
    async fn get(&self, key: &Key, consistent: bool) -> StoreResult<Option<Item>>;
    /// Returns the items that exist, in any order. At most 100 distinct keys
    /// (DynamoDB's `BatchGetItem`); [`get_all`] reads more in batches.
    async fn get_many(&self, keys: &[Key], consistent: bool) -> StoreResult<Vec<Item>>;
    async fn query(&self, q: &Query) -> StoreResult<Page>;
    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()>;
}

#[async_trait]
impl<T: Table + ?Sized> Table for Arc<T> {
    async fn get(&self, key: &Key, consistent: bool) -> StoreResult<Option<Item>> {
        (**self).get(key, consistent).await
    }
    async fn get_many(&self, keys: &[Key], consistent: bool) -> StoreResult<Vec<Item>> {
        (**self).get_many(keys, consistent).await
    }
    async fn query(&self, q: &Query) -> StoreResult<Page> {
        (**self).query(q).await
    }
    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()> {
        (**self).transact(writes).await
    }
}

/// A call of the [`Table`] port.
#[derive(Debug, Clone, Copy)]
pub enum Call<'a> {
    Get(&'a Key),
    GetMany(&'a [Key]),
    Query(&'a Query),
    Transact(&'a [Write]),
}

/// The write a group of writes is sent as on its own, when it is one: the
/// DynamoDB adapter sends a lone put, update or delete as that plain
/// conditional request, and anything else as `TransactWriteItems`.
pub fn lone_write(writes: &[Write]) -> Option<&Write> {
    match writes {
        [w] if !matches!(w, Write::Check { .. }) => Some(w),
        _ => None,
    }
}

/// The IAM action an item write needs, alone or inside `TransactWriteItems`
/// (which IAM authorises per item action; it is no action of its own).
pub fn write_action(w: &Write) -> &'static str {
    match w {
        Write::Put { .. } => "dynamodb:PutItem",
        Write::Update { .. } => "dynamodb:UpdateItem",
        Write::Delete { .. } => "dynamodb:DeleteItem",
        Write::Check { .. } => "dynamodb:ConditionCheckItem",
    }
}

/// What IAM authorises for a call as the DynamoDB adapter sends it:
/// (action, index queried, partition key named), one per item for batch
/// reads and write groups. An empty batch read sends nothing.
pub fn iam_actions(call: Call<'_>) -> Vec<(&'static str, Option<&'static str>, &str)> {
    match call {
        Call::Get(k) => vec![("dynamodb:GetItem", None, k.pk.as_str())],
        Call::GetMany(keys) => keys
            .iter()
            .map(|k| ("dynamodb:BatchGetItem", None, k.pk.as_str()))
            .collect(),
        Call::Query(q) => vec![("dynamodb:Query", q.index.name(), q.pk.as_str())],
        Call::Transact(writes) => writes
            .iter()
            .map(|w| {
                let pk = match w {
                    Write::Put { item, .. } => item.get(PK).and_then(Value::as_str).unwrap_or(""),
                    Write::Update { key, .. }
                    | Write::Delete { key, .. }
                    | Write::Check { key, .. } => key.pk.as_str(),
                };
                (write_action(w), None, pk)
            })
            .collect(),
    }
}

/// Records a call's IAM actions for the least-privilege proof
/// ([`crate::access`]); both adapters call it for every call. The local
/// stand-ins for SQS queues ([`capacity::is_local_queue`]) are not the table.
pub fn record(call: Call<'_>) {
    if !crate::access::recording() {
        return;
    }
    for (action, index, pk) in iam_actions(call) {
        if !capacity::is_local_queue(pk) {
            crate::access::record(action, "table", index, Some(pk));
        }
    }
}

/// Checks the rules both adapters enforce on a write group (see
/// [`limits::check_group`]).
pub fn validate_group(writes: &[Write]) -> StoreResult<()> {
    Ok(limits::check_group(writes)?)
}

/// A transaction tried again while DynamoDB refuses it for now (a
/// conflict, throttling): [`crate::retry::transact`], the one retry policy.
pub use crate::retry::transact as transact_retrying;

/// Every item a query matches, page after page (for reads that need them
/// all: a scheduled run, an aggregate read, a member's own records).
pub async fn all_pages<T: Table + ?Sized>(table: &T, q: Query) -> StoreResult<Vec<Item>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let page = table.query(&q.clone().start_after(start)).await?;
        out.extend(page.items);
        match page.last_key {
            Some(k) => start = Some(k),
            None => return Ok(out),
        }
    }
}

/// Reads any number of keys in batches of at most 100 distinct keys (one
/// `BatchGetItem` each, as DynamoDB requires); duplicates are read once.
pub async fn get_all<T: Table + ?Sized>(
    table: &T,
    keys: &[Key],
    consistent: bool,
) -> StoreResult<Vec<Item>> {
    let mut seen = std::collections::HashSet::new();
    let distinct: Vec<Key> = keys.iter().filter(|k| seen.insert(*k)).cloned().collect();
    let mut out = Vec::with_capacity(distinct.len());
    for chunk in distinct.chunks(limits::MAX_BATCH_GET_KEYS) {
        out.extend(table.get_many(chunk, consistent).await?);
    }
    Ok(out)
}
