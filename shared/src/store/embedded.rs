//! The embedded adapter: a durable single-file store (redb) with the same
//! semantics as the DynamoDB adapter.
//!
//! - Every acknowledged write group is committed with `Durability::Immediate`
//!   (fsync) before its caller hears `Ok`, so it survives `kill -9`.
//! - Writes go through one writer thread that does *group commit*: it drains
//!   the queue of pending groups, applies each one atomically (conditions are
//!   checked against the state including the groups before it in the same
//!   batch; a failed group writes nothing), then commits the whole batch with
//!   one fsync. Callers are answered only after that commit.
//! - Reads run concurrently on MVCC snapshots and always see the last commit
//!   (so every read is strongly consistent).
//! - Each secondary index is its own ordered table keyed by
//!   `(index pk, index sk, pk, sk)`, maintained in the same transaction.
//! - It is never kinder than DynamoDB: its limits ([`super::limits`]: item
//!   size, transaction actions and size, batch keys, key attributes, 1 MB
//!   query pages), transaction conflicts and per-partition throughput
//!   ([`super::capacity`], set by [`Rules`]) hold, and every unit DynamoDB
//!   would bill is counted on its [`Meter`], attributed to the caller's
//!   cause.

use super::capacity::{self, is_local_queue, Holds, Kind, Meter, Rules, Throughput};
use super::feed::{self, Change, ChangeFeed, ChangeName};
use super::limits;
use super::{
    page_key, validate_group, Index, Item, Key, Page, Query, SortKey, StoreError, StoreResult,
    Table, Write, PK, SK,
};
use async_trait::async_trait;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;
use std::ops::Bound;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi1");
const GSI2: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi2");
const GSI3: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi3");
const GSI4: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi4");
/// The change feed: sequence number → [`Change`] (JSON), for [`feed::STREAMED`] items.
const FEED: TableDefinition<u64, &[u8]> = TableDefinition::new("feed");
/// The feed's next sequence number (`next`) and its readers' cursors (`cursor:{reader}`).
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

fn gsi_def(
    index: Index,
) -> TableDefinition<'static, (&'static str, &'static str, &'static str, &'static str), ()> {
    match index {
        Index::Gsi2 => GSI2,
        Index::Gsi3 => GSI3,
        Index::Gsi4 => GSI4,
        _ => GSI1,
    }
}

/// Writer batches are capped so one batch cannot hold callers for long.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<StoreResult<()>>;

struct Job {
    writes: Vec<Write>,
    reply: Reply,
    /// Whether DynamoDB would run this group as `TransactWriteItems`.
    transactional: bool,
    cause: Arc<str>,
}

/// The DynamoDB model shared by all clones of one table.
struct Strict {
    rules: Rules,
    meter: Arc<Meter>,
    throughput: Throughput,
    holds: Holds,
}

impl Strict {
    fn new(rules: Rules) -> Self {
        Strict {
            throughput: Throughput::new(rules.clone()),
            rules,
            meter: Arc::new(Meter::default()),
            holds: Holds::default(),
        }
    }

    /// Charges a read of `bytes` on `partition`, or refuses it (throttled).
    fn read(&self, partition: &str, bytes: usize, consistent: bool) -> StoreResult<()> {
        if is_local_queue(partition) {
            return Ok(());
        }
        let cause = capacity::cause();
        let charge = [(
            partition.to_owned(),
            capacity::read_units(bytes, consistent),
        )];
        if let Err(over) = self.throughput.take(Kind::Read, &charge) {
            self.meter.throttle(&cause, &over);
            return Err(StoreError::Throttled);
        }
        self.meter.read(&cause, partition, charge[0].1);
        Ok(())
    }

    /// Charges the items of one batch read (`(partition, bytes)` each, each
    /// item rounded up on its own), all or none: a throttled batch takes
    /// no units, as on DynamoDB, so refused requests do not eat the
    /// capacity of the ones that get through.
    fn read_all(&self, items: &[(&str, usize)], consistent: bool) -> StoreResult<()> {
        let cause = capacity::cause();
        let charges: Vec<(String, f64)> = items
            .iter()
            .filter(|(p, _)| !is_local_queue(p))
            .map(|(p, bytes)| ((*p).to_owned(), capacity::read_units(*bytes, consistent)))
            .collect();
        if charges.is_empty() {
            return Ok(());
        }
        if let Err(over) = self.throughput.take(Kind::Read, &charges) {
            self.meter.throttle(&cause, &over);
            return Err(StoreError::Throttled);
        }
        for (p, u) in &charges {
            self.meter.read(&cause, p, *u);
        }
        Ok(())
    }
}

/// The store's file in its directory.
pub const FILE: &str = "community.redb";

/// Whether [`EmbeddedTable::open`] failed because another process (a
/// running local server) holds the store's file lock.
pub fn is_locked(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(src) => src
            .downcast_ref::<redb::DatabaseError>()
            .is_some_and(|d| matches!(d, redb::DatabaseError::DatabaseAlreadyOpen)),
        _ => false,
    }
}

/// A durable embedded table. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct EmbeddedTable {
    db: Arc<Database>,
    writer: mpsc::Sender<Job>,
    strict: Arc<Strict>,
}

impl EmbeddedTable {
    /// Opens (or creates) the store in `dir` (created if missing), as strict
    /// as DynamoDB ([`Rules::default`]).
    pub fn open(dir: &Path) -> StoreResult<Self> {
        Self::open_with(dir, Rules::default())
    }

    /// The capacity meter of this table (shared by its clones).
    pub fn meter(&self) -> Arc<Meter> {
        self.strict.meter.clone()
    }

    /// The rules this table was opened with.
    pub fn rules(&self) -> &Rules {
        &self.strict.rules
    }

    /// Opens the store with the given load rules.
    pub fn open_with(dir: &Path, rules: Rules) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(StoreError::unavailable)?;
        let db = Database::create(dir.join(FILE)).map_err(StoreError::unavailable)?;
        let txn = db.begin_write().map_err(StoreError::unavailable)?;
        {
            txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
            for i in Index::SECONDARY {
                txn.open_table(gsi_def(i))
                    .map_err(StoreError::unavailable)?;
            }
            txn.open_table(FEED).map_err(StoreError::unavailable)?;
            txn.open_table(META).map_err(StoreError::unavailable)?;
        }
        txn.commit().map_err(StoreError::unavailable)?;
        let next_seq = {
            let r = db.begin_read().map_err(StoreError::unavailable)?;
            let meta = r.open_table(META).map_err(StoreError::unavailable)?;
            meta.get("next")
                .map_err(StoreError::unavailable)?
                .map_or(1, |g| g.value())
        };
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<Job>();
        let wdb = db.clone();
        let strict = Arc::new(Strict::new(rules));
        let wstrict = strict.clone();
        std::thread::Builder::new()
            .name("embedded-writer".into())
            .spawn(move || writer_loop(&wdb, &wstrict, rx, next_seq))
            .map_err(StoreError::unavailable)?;
        Ok(EmbeddedTable {
            db,
            writer: tx,
            strict,
        })
    }

    fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> StoreResult<R> + Send + 'static,
    ) -> impl std::future::Future<Output = StoreResult<R>> {
        let db = self.db.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let txn = db.begin_read().map_err(StoreError::unavailable)?;
                f(&txn)
            })
            .await
            .map_err(StoreError::unavailable)?
        }
    }

    /// Every item of the table: a full read for tests only (the `Table`
    /// port has no scan, and no route may use one).
    #[cfg(feature = "testing")]
    pub async fn dump(&self) -> StoreResult<Vec<Item>> {
        self.read(|txn| {
            let t = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
            let mut out = Vec::new();
            for row in t.iter().map_err(StoreError::unavailable)? {
                let (_, v) = row.map_err(StoreError::unavailable)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }
}

fn decode(bytes: &[u8]) -> StoreResult<Item> {
    serde_json::from_slice(bytes).map_err(StoreError::unavailable)
}

fn get_item(
    t: &impl ReadableTable<(&'static str, &'static str), &'static [u8]>,
    key: &Key,
) -> StoreResult<Option<Item>> {
    match t
        .get((key.pk.as_str(), key.sk.as_str()))
        .map_err(StoreError::unavailable)?
    {
        Some(g) => Ok(Some(decode(g.value())?)),
        None => Ok(None),
    }
}

fn index_key(index: Index, item: &Item) -> Option<(String, String)> {
    let (a, b) = index.key_attrs();
    Some((
        item.get(a)?.as_str()?.to_owned(),
        item.get(b)?.as_str()?.to_owned(),
    ))
}

fn writer_loop(db: &Database, strict: &Strict, rx: mpsc::Receiver<Job>, mut next_seq: u64) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        match commit_batch(db, strict, &jobs, &mut next_seq) {
            Ok(results) => {
                for (job, r) in jobs.into_iter().zip(results) {
                    let _ = job.reply.send(r);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "embedded store commit failed");
                let msg = e.to_string();
                for job in jobs {
                    let _ = job
                        .reply
                        .send(Err(StoreError::Unavailable(msg.clone().into())));
                }
            }
        }
    }
}

/// Applies each job atomically inside one write transaction and commits it.
/// Returns per-job results (condition failures are per job); an `Err` means
/// nothing in the batch was committed.
fn commit_batch(
    db: &Database,
    strict: &Strict,
    jobs: &[Job],
    next_seq: &mut u64,
) -> StoreResult<Vec<StoreResult<()>>> {
    let mut txn = db.begin_write().map_err(StoreError::unavailable)?;
    txn.set_durability(Durability::Immediate)
        .map_err(StoreError::unavailable)?;
    let mut results = Vec::with_capacity(jobs.len());
    let mut changes: Vec<Change> = Vec::new();
    {
        let mut items = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
        let mut gsis = [
            txn.open_table(GSI1).map_err(StoreError::unavailable)?,
            txn.open_table(GSI2).map_err(StoreError::unavailable)?,
            txn.open_table(GSI3).map_err(StoreError::unavailable)?,
            txn.open_table(GSI4).map_err(StoreError::unavailable)?,
        ];
        for job in jobs {
            results.push(apply_group(
                &mut items,
                &mut gsis,
                strict,
                job,
                &mut changes,
            )?);
        }
    }
    if !changes.is_empty() {
        let mut feed_t = txn.open_table(FEED).map_err(StoreError::unavailable)?;
        let mut seq = *next_seq;
        for mut c in changes {
            c.seq = format!("{seq:020}");
            let bytes = serde_json::to_vec(&c).map_err(StoreError::unavailable)?;
            feed_t
                .insert(seq, bytes.as_slice())
                .map_err(StoreError::unavailable)?;
            seq += 1;
        }
        drop(feed_t);
        let mut meta = txn.open_table(META).map_err(StoreError::unavailable)?;
        meta.insert("next", seq).map_err(StoreError::unavailable)?;
        drop(meta);
        txn.commit().map_err(StoreError::unavailable)?;
        *next_seq = seq;
        return Ok(results);
    }
    txn.commit().map_err(StoreError::unavailable)?;
    Ok(results)
}

type ItemsTable<'t> = redb::Table<'t, (&'static str, &'static str), &'static [u8]>;
type GsiTable<'t> = redb::Table<'t, (&'static str, &'static str, &'static str, &'static str), ()>;

/// The outer `Err` aborts the whole batch (I/O); the inner result is the job's.
fn apply_group(
    items: &mut ItemsTable<'_>,
    gsis: &mut [GsiTable<'_>; 4],
    strict: &Strict,
    job: &Job,
    changes: &mut Vec<Change>,
) -> StoreResult<StoreResult<()>> {
    let writes = &job.writes;
    if let Err(e) = validate_group(writes) {
        return Ok(Err(e));
    }
    // Phase 1: read current state, check every condition, compute the new
    // items (each within DynamoDB's item size) and what DynamoDB would bill.
    let mut planned = Vec::with_capacity(writes.len());
    let mut charges: Vec<(String, f64)> = Vec::new();
    let mut failed = None;
    for (index, w) in writes.iter().enumerate() {
        let Some(key) = w.key() else {
            return Ok(Err(StoreError::Invalid("write without key".into())));
        };
        let current = get_item(items, &key)?;
        let next = match w {
            Write::Put { item, .. } => Some(item.clone()),
            Write::Update { update, .. } => Some(update.apply(&key, current.as_ref())),
            Write::Delete { .. } => None,
            Write::Check { .. } => current.clone(),
        };
        if let Some(n) = &next {
            if let Err(limit) = limits::check_item(n) {
                return Ok(Err(StoreError::Limit(limit)));
            }
        }
        if !is_local_queue(&key.pk) {
            // A write whose condition fails is billed too (on the item as it is).
            let after = if failed.is_some() {
                current.as_ref()
            } else {
                next.as_ref()
            };
            charges.extend(capacity::write_charges(
                w,
                &key,
                current.as_ref(),
                after,
                job.transactional,
            ));
        }
        if failed.is_none() {
            if let Some(c) = w.cond() {
                if !c.holds(current.as_ref()) {
                    failed = Some(index);
                }
            }
        }
        planned.push((key, current, next));
    }
    if let Err(over) = strict.throughput.take(Kind::Write, &charges) {
        strict.meter.throttle(&job.cause, &over);
        return Ok(Err(StoreError::Throttled));
    }
    strict.meter.write(&job.cause, &charges);
    if let Some(index) = failed {
        return Ok(Err(StoreError::condition_failed(writes, index)));
    }
    // Phase 2: apply (cannot fail on conditions any more).
    for (w, (key, current, next)) in writes.iter().zip(planned) {
        if matches!(w, Write::Check { .. }) {
            continue;
        }
        if let Some(queue) = key.pk.strip_prefix("LQ#") {
            let fresh = next
                .as_ref()
                .and_then(|n| n.get("receive_count"))
                .and_then(Value::as_i64)
                == Some(0);
            if current.is_none() && fresh {
                strict.meter.message(&job.cause, queue);
            }
        }
        for (n, index) in Index::SECONDARY.into_iter().enumerate() {
            let old = current.as_ref().and_then(|i| index_key(index, i));
            let new = next.as_ref().and_then(|i| index_key(index, i));
            if old == new {
                continue;
            }
            if let Some((a, b)) = old {
                gsis[n]
                    .remove((a.as_str(), b.as_str(), key.pk.as_str(), key.sk.as_str()))
                    .map_err(StoreError::unavailable)?;
            }
            if let Some((a, b)) = new {
                gsis[n]
                    .insert(
                        (a.as_str(), b.as_str(), key.pk.as_str(), key.sk.as_str()),
                        (),
                    )
                    .map_err(StoreError::unavailable)?;
            }
        }
        let name = match (&current, &next) {
            (None, Some(_)) => Some(ChangeName::Insert),
            (Some(c), Some(n)) if c != n => Some(ChangeName::Modify),
            (Some(_), None) => Some(ChangeName::Remove),
            _ => None,
        };
        if let Some(name) = name.filter(|n| feed::streamed(&key.pk, *n)) {
            changes.push(Change {
                seq: String::new(),
                name,
                pk: key.pk.clone(),
                sk: key.sk.clone(),
                new: next.clone(),
                old: current.clone(),
                at: time::OffsetDateTime::now_utc().unix_timestamp(),
            });
        }
        match next {
            Some(item) => {
                let bytes = serde_json::to_vec(&item).map_err(StoreError::unavailable)?;
                items
                    .insert((key.pk.as_str(), key.sk.as_str()), bytes.as_slice())
                    .map_err(StoreError::unavailable)?;
            }
            None => {
                items
                    .remove((key.pk.as_str(), key.sk.as_str()))
                    .map_err(StoreError::unavailable)?;
            }
        }
    }
    Ok(Ok(()))
}

fn str_attr<'a>(item: &'a Item, attr: &str) -> StoreResult<&'a str> {
    item.get(attr)
        .and_then(Value::as_str)
        .ok_or_else(|| StoreError::Invalid(format!("start key lacks {attr}")))
}

/// Runs a query; returns the page and the bytes it read. A page stops at
/// `limit` items or before the item that would take it past 1 MB.
fn run_query(txn: &redb::ReadTransaction, q: &Query) -> StoreResult<(Page, usize)> {
    let items = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
    let limit = q.limit.clamp(1, 1000) as usize;
    let mut out: Vec<Item> = Vec::new();
    let mut more = false;
    let mut bytes = 0usize;
    // Adds an item unless the page is full (by count or by size).
    let mut push = |item: Item, out: &mut Vec<Item>| -> bool {
        let size = limits::item_size(&item);
        if out.len() == limit || (!out.is_empty() && bytes + size > limits::MAX_QUERY_PAGE_BYTES) {
            return false;
        }
        bytes += size;
        out.push(item);
        true
    };
    // Sort-key bounds from the condition; the start key narrows them further.
    let (lo_sk, hi_sk): (Option<&str>, Option<&str>) = match &q.sk {
        SortKey::All => (None, None),
        SortKey::BeginsWith(p) => (Some(p.as_str()), None),
        SortKey::Between(a, b) => (Some(a.as_str()), Some(b.as_str())),
    };
    let end_pk = format!("{}\u{0}", q.pk);
    if q.index == Index::Primary {
        let start = q
            .start_after
            .as_ref()
            .map(|k| str_attr(k, SK))
            .transpose()?;
        let lower = match (q.forward, start) {
            (true, Some(s)) => Bound::Excluded((q.pk.as_str(), s)),
            _ => Bound::Included((q.pk.as_str(), lo_sk.unwrap_or(""))),
        };
        let upper = match (q.forward, start) {
            (false, Some(s)) => Bound::Excluded((q.pk.as_str(), s)),
            _ => match hi_sk {
                Some(h) => Bound::Included((q.pk.as_str(), h)),
                None => Bound::Excluded((end_pk.as_str(), "")),
            },
        };
        let range = items
            .range::<(&str, &str)>((lower, upper))
            .map_err(StoreError::unavailable)?;
        let mut iter: Box<dyn Iterator<Item = _>> = if q.forward {
            Box::new(range)
        } else {
            Box::new(range.rev())
        };
        for entry in iter.by_ref() {
            let (k, v) = entry.map_err(StoreError::unavailable)?;
            let sk = k.value().1;
            if !q.sk.matches(sk) {
                continue;
            }
            if !push(decode(v.value())?, &mut out) {
                more = true;
                break;
            }
        }
    } else {
        let gsi = txn
            .open_table(gsi_def(q.index))
            .map_err(StoreError::unavailable)?;
        let (ipk, isk) = q.index.key_attrs();
        let start = match &q.start_after {
            Some(k) => Some((str_attr(k, isk)?, str_attr(k, PK)?, str_attr(k, SK)?)),
            None => None,
        };
        let _ = ipk;
        let lower = match (q.forward, start) {
            (true, Some((s, p, k))) => Bound::Excluded((q.pk.as_str(), s, p, k)),
            _ => Bound::Included((q.pk.as_str(), lo_sk.unwrap_or(""), "", "")),
        };
        let hi_end = hi_sk.map(|h| format!("{h}\u{0}"));
        let upper = match (q.forward, start) {
            (false, Some((s, p, k))) => Bound::Excluded((q.pk.as_str(), s, p, k)),
            _ => match &hi_end {
                Some(h) => Bound::Excluded((q.pk.as_str(), h.as_str(), "", "")),
                None => Bound::Excluded((end_pk.as_str(), "", "", "")),
            },
        };
        let range = gsi
            .range::<(&str, &str, &str, &str)>((lower, upper))
            .map_err(StoreError::unavailable)?;
        let mut iter: Box<dyn Iterator<Item = _>> = if q.forward {
            Box::new(range)
        } else {
            Box::new(range.rev())
        };
        for entry in iter.by_ref() {
            let (k, _) = entry.map_err(StoreError::unavailable)?;
            let (_, gsk, pk, sk) = k.value();
            if !q.sk.matches(gsk) {
                continue;
            }
            let key = Key::new(pk, sk);
            let Some(item) = get_item(&items, &key)? else {
                return Err(StoreError::Invalid("index entry without item".into()));
            };
            if !push(q.index.project(&item), &mut out) {
                more = true;
                break;
            }
        }
    }
    let last_key = if more {
        out.last().map(|i| page_key(q.index, i))
    } else {
        None
    };
    Ok((
        Page {
            items: out,
            last_key,
        },
        bytes,
    ))
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key, consistent: bool) -> StoreResult<Option<Item>> {
        limits::check_key(key)?;
        super::record(super::Call::Get(key));
        let k = key.clone();
        let found = self
            .read(move |txn| {
                let t = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
                get_item(&t, &k)
            })
            .await?;
        let bytes = found.as_ref().map(limits::item_size).unwrap_or(0);
        self.strict.read(&key.pk, bytes, consistent)?;
        Ok(found)
    }

    async fn get_many(&self, keys: &[Key], consistent: bool) -> StoreResult<Vec<Item>> {
        limits::check_batch_get(keys)?;
        super::record(super::Call::GetMany(keys));
        let ks = keys.to_vec();
        let found = self
            .read(move |txn| {
                let t = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
                let mut out = Vec::with_capacity(ks.len());
                for k in &ks {
                    if let Some(i) = get_item(&t, k)? {
                        out.push(i);
                    }
                }
                Ok(out)
            })
            .await?;
        // BatchGetItem bills each item on its own, rounded up to 4 KB
        // (a request that finds nothing still costs the minimum).
        let mut charges: Vec<(&str, usize)> = found
            .iter()
            .map(|i| {
                let pk = i.get(PK).and_then(Value::as_str).unwrap_or_default();
                (pk, limits::item_size(i))
            })
            .collect();
        if charges.is_empty() {
            if let Some(k) = keys.first() {
                charges.push((&k.pk, 0));
            }
        }
        self.strict.read_all(&charges, consistent)?;
        Ok(found)
    }

    async fn query(&self, q: &Query) -> StoreResult<Page> {
        super::record(super::Call::Query(q));
        // DynamoDB refuses an empty string in a key condition.
        let empty = match &q.sk {
            SortKey::All => false,
            SortKey::BeginsWith(p) => p.is_empty(),
            SortKey::Between(a, b) => a.is_empty() || b.is_empty(),
        };
        if q.pk.is_empty() || empty {
            return Err(StoreError::Invalid(
                "a key condition value is an empty string (DynamoDB refuses it)".into(),
            ));
        }
        let qc = q.clone();
        let (page, bytes) = self.read(move |txn| run_query(txn, &qc)).await?;
        let partition = match q.index.name() {
            Some(name) => format!("{name}:{}", q.pk),
            None => q.pk.clone(),
        };
        self.strict
            .read(&partition, bytes, q.consistent && q.index == Index::Primary)?;
        Ok(page)
    }

    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()> {
        validate_group(&writes)?;
        super::record(super::Call::Transact(&writes));
        let cause = capacity::cause();
        let table_keys: Vec<Key> = writes
            .iter()
            .filter_map(Write::key)
            .filter(|k| !is_local_queue(&k.pk))
            .collect();
        // What DynamoDB runs as TransactWriteItems (the DynamoDB adapter
        // sends a lone put, update or delete as a plain conditional write).
        let transactional =
            table_keys.len() > 1 || writes.iter().any(|w| matches!(w, Write::Check { .. }));
        let window = self.strict.rules.txn_window;
        let start = Instant::now();
        let guard = if window.is_zero() || table_keys.is_empty() {
            None
        } else {
            match self.strict.holds.acquire(table_keys, transactional) {
                Ok(g) => Some(g),
                Err(busy) => {
                    self.strict.meter.conflict(&cause, &busy);
                    return Err(StoreError::Conflict);
                }
            }
        };
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Job {
                writes,
                reply: tx,
                transactional,
                cause,
            })
            .map_err(|_| StoreError::Unavailable("embedded writer stopped".into()))?;
        let result = rx
            .await
            .map_err(|_| StoreError::Unavailable("embedded writer stopped".into()))?;
        if transactional && guard.is_some() {
            // In flight for the whole window: its items stay locked.
            tokio::time::sleep_until((start + window).into()).await;
        }
        drop(guard);
        result
    }
}

fn cursor_key(reader: &str) -> String {
    format!("cursor:{reader}")
}

/// The embedded store's change feed: one global order (so also in order per
/// partition key), durable like the items, trimmed once every reader in
/// [`feed::READERS`] has acknowledged a change.
#[async_trait]
impl ChangeFeed for EmbeddedTable {
    async fn changes(&self, reader: &str, limit: usize) -> StoreResult<Vec<Change>> {
        let ck = cursor_key(reader);
        self.read(move |txn| {
            let meta = txn.open_table(META).map_err(StoreError::unavailable)?;
            let after = meta
                .get(ck.as_str())
                .map_err(StoreError::unavailable)?
                .map_or(0, |g| g.value());
            let t = txn.open_table(FEED).map_err(StoreError::unavailable)?;
            let mut out = Vec::new();
            for row in t
                .range((after + 1)..)
                .map_err(StoreError::unavailable)?
                .take(limit)
            {
                let (_, v) = row.map_err(StoreError::unavailable)?;
                out.push(serde_json::from_slice(v.value()).map_err(StoreError::unavailable)?);
            }
            Ok(out)
        })
        .await
    }

    async fn ack(&self, reader: &str, seq: &str) -> StoreResult<()> {
        let upto: u64 = seq
            .parse()
            .map_err(|_| StoreError::Invalid(format!("not a feed sequence number: {seq}")))?;
        let ck = cursor_key(reader);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let mut txn = db.begin_write().map_err(StoreError::unavailable)?;
            txn.set_durability(Durability::Immediate)
                .map_err(StoreError::unavailable)?;
            {
                let mut meta = txn.open_table(META).map_err(StoreError::unavailable)?;
                let old = meta
                    .get(ck.as_str())
                    .map_err(StoreError::unavailable)?
                    .map_or(0, |g| g.value());
                meta.insert(ck.as_str(), old.max(upto))
                    .map_err(StoreError::unavailable)?;
                let mut low = u64::MAX;
                for r in feed::READERS {
                    let c = meta
                        .get(cursor_key(r).as_str())
                        .map_err(StoreError::unavailable)?
                        .map_or(0, |g| g.value());
                    low = low.min(c);
                }
                drop(meta);
                if low > 0 {
                    let mut t = txn.open_table(FEED).map_err(StoreError::unavailable)?;
                    t.retain_in(..=low, |_, _| false)
                        .map_err(StoreError::unavailable)?;
                }
            }
            txn.commit().map_err(StoreError::unavailable)
        })
        .await
        .map_err(StoreError::unavailable)?
    }
}
