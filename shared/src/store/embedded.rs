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
use tokio::sync::oneshot;

const ITEMS: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("items");
const GSI1: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi1");
const GSI2: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi2");
const GSI3: TableDefinition<(&str, &str, &str, &str), ()> = TableDefinition::new("gsi3");

fn gsi_def(
    index: Index,
) -> TableDefinition<'static, (&'static str, &'static str, &'static str, &'static str), ()> {
    match index {
        Index::Gsi2 => GSI2,
        Index::Gsi3 => GSI3,
        _ => GSI1,
    }
}

/// Writer batches are capped so one batch cannot hold callers for long.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<StoreResult<()>>;

struct Job {
    writes: Vec<Write>,
    reply: Reply,
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
}

impl EmbeddedTable {
    /// Opens (or creates) the store in `dir` (created if missing).
    pub fn open(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(StoreError::unavailable)?;
        let db = Database::create(dir.join(FILE)).map_err(StoreError::unavailable)?;
        let txn = db.begin_write().map_err(StoreError::unavailable)?;
        {
            txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
            for i in Index::SECONDARY {
                txn.open_table(gsi_def(i))
                    .map_err(StoreError::unavailable)?;
            }
        }
        txn.commit().map_err(StoreError::unavailable)?;
        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel::<Job>();
        let wdb = db.clone();
        std::thread::Builder::new()
            .name("embedded-writer".into())
            .spawn(move || writer_loop(&wdb, rx))
            .map_err(StoreError::unavailable)?;
        Ok(EmbeddedTable { db, writer: tx })
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

fn writer_loop(db: &Database, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        match commit_batch(db, &jobs) {
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
fn commit_batch(db: &Database, jobs: &[Job]) -> StoreResult<Vec<StoreResult<()>>> {
    let mut txn = db.begin_write().map_err(StoreError::unavailable)?;
    txn.set_durability(Durability::Immediate)
        .map_err(StoreError::unavailable)?;
    let mut results = Vec::with_capacity(jobs.len());
    {
        let mut items = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
        let mut gsis = [
            txn.open_table(GSI1).map_err(StoreError::unavailable)?,
            txn.open_table(GSI2).map_err(StoreError::unavailable)?,
            txn.open_table(GSI3).map_err(StoreError::unavailable)?,
        ];
        for job in jobs {
            results.push(apply_group(&mut items, &mut gsis, &job.writes)?);
        }
    }
    txn.commit().map_err(StoreError::unavailable)?;
    Ok(results)
}

type ItemsTable<'t> = redb::Table<'t, (&'static str, &'static str), &'static [u8]>;
type GsiTable<'t> = redb::Table<'t, (&'static str, &'static str, &'static str, &'static str), ()>;

/// The outer `Err` aborts the whole batch (I/O); the inner result is the job's.
fn apply_group(
    items: &mut ItemsTable<'_>,
    gsis: &mut [GsiTable<'_>; 3],
    writes: &[Write],
) -> StoreResult<StoreResult<()>> {
    if let Err(e) = validate_group(writes) {
        return Ok(Err(e));
    }
    // Phase 1: read current state and check every condition.
    let mut currents = Vec::with_capacity(writes.len());
    for (index, w) in writes.iter().enumerate() {
        let Some(key) = w.key() else {
            return Ok(Err(StoreError::Invalid("write without key".into())));
        };
        let current = get_item(items, &key)?;
        if let Some(c) = w.cond() {
            if !c.holds(current.as_ref()) {
                return Ok(Err(StoreError::ConditionFailed { index }));
            }
        }
        currents.push((key, current));
    }
    // Phase 2: apply (cannot fail on conditions any more).
    for (w, (key, current)) in writes.iter().zip(currents) {
        let next = match w {
            Write::Put { item, .. } => Some(item.clone()),
            Write::Update { update, .. } => Some(update.apply(&key, current.as_ref())),
            Write::Delete { .. } => None,
            Write::Check { .. } => continue,
        };
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

fn run_query(txn: &redb::ReadTransaction, q: &Query) -> StoreResult<Page> {
    let items = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
    let limit = q.limit.clamp(1, 1000) as usize;
    let mut out: Vec<Item> = Vec::new();
    let mut more = false;
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
            if out.len() == limit {
                more = true;
                break;
            }
            out.push(decode(v.value())?);
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
            if out.len() == limit {
                more = true;
                break;
            }
            let key = Key::new(pk, sk);
            match get_item(&items, &key)? {
                Some(item) => out.push(item),
                None => return Err(StoreError::Invalid("index entry without item".into())),
            }
        }
    }
    let last_key = if more {
        out.last().map(|i| page_key(q.index, i))
    } else {
        None
    };
    Ok(Page {
        items: out,
        last_key,
    })
}

#[async_trait]
impl Table for EmbeddedTable {
    async fn get(&self, key: &Key, _consistent: bool) -> StoreResult<Option<Item>> {
        let key = key.clone();
        self.read(move |txn| {
            let t = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
            get_item(&t, &key)
        })
        .await
    }

    async fn get_many(&self, keys: &[Key], _consistent: bool) -> StoreResult<Vec<Item>> {
        let keys = keys.to_vec();
        self.read(move |txn| {
            let t = txn.open_table(ITEMS).map_err(StoreError::unavailable)?;
            let mut out = Vec::with_capacity(keys.len());
            for k in &keys {
                if let Some(i) = get_item(&t, k)? {
                    out.push(i);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn query(&self, q: &Query) -> StoreResult<Page> {
        let q = q.clone();
        self.read(move |txn| run_query(txn, &q)).await
    }

    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()> {
        validate_group(&writes)?;
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(Job { writes, reply: tx })
            .map_err(|_| StoreError::Unavailable("embedded writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("embedded writer stopped".into()))?
    }
}
