//! The DynamoDB adapter (aws-sdk-dynamodb). Same semantics as the embedded
//! adapter; items convert with serde_dynamo.
//!
//! A group of one write uses the plain conditional operation (1 WCU/KB); a
//! larger group uses `TransactWriteItems` (2 WCU/KB per item). Condition
//! failures inside a cancelled transaction are mapped back to the position of
//! the write that failed, from the cancellation reasons.

use super::{
    lone_write, record, validate_group, Call, Cond, Index, Item, Key, Page, Query, SortKey,
    StoreError, StoreResult, Table, Update, Write, PK, SK,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, Delete, GlobalSecondaryIndex,
    KeySchemaElement, KeyType, KeysAndAttributes, Projection, ProjectionType, Put,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
    TransactWriteItem, Update as DdbUpdate,
};
use aws_sdk_dynamodb::Client;
use serde_json::Value;
use std::collections::HashMap;

type Attrs = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoTable {
    client: Client,
    table: String,
}

impl DynamoTable {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoTable {
            client,
            table: table.into(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn name(&self) -> &str {
        &self.table
    }

    /// Every item of the table: a full `Scan` for tests only (the `Table`
    /// port has no scan, and no route may use one).
    #[cfg(feature = "testing")]
    pub async fn dump(&self) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    StoreError::Invalid(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
                })?;
            for attrs in page.items.unwrap_or_default() {
                out.push(from_attrs(attrs)?);
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

fn to_attrs(item: &Item) -> StoreResult<Attrs> {
    serde_dynamo::aws_sdk_dynamodb_1::to_item(item).map_err(StoreError::unavailable)
}

fn from_attrs(attrs: Attrs) -> StoreResult<Item> {
    serde_dynamo::aws_sdk_dynamodb_1::from_item(attrs).map_err(StoreError::unavailable)
}

fn to_av(v: &Value) -> StoreResult<AttributeValue> {
    serde_dynamo::aws_sdk_dynamodb_1::to_attribute_value(v).map_err(StoreError::unavailable)
}

fn key_attrs(key: &Key) -> Attrs {
    HashMap::from([
        (PK.to_owned(), AttributeValue::S(key.pk.clone())),
        (SK.to_owned(), AttributeValue::S(key.sk.clone())),
    ])
}

/// Collects expression attribute names and values.
#[derive(Default)]
struct Expr {
    names: HashMap<String, String>,
    values: Attrs,
}

impl Expr {
    fn name(&mut self, attr: &str) -> String {
        if let Some((k, _)) = self.names.iter().find(|(_, v)| v.as_str() == attr) {
            return k.clone();
        }
        let k = format!("#n{}", self.names.len());
        self.names.insert(k.clone(), attr.to_owned());
        k
    }
    fn value(&mut self, v: AttributeValue) -> String {
        let k = format!(":v{}", self.values.len());
        self.values.insert(k.clone(), v);
        k
    }
    fn num(&mut self, n: i64) -> String {
        self.value(AttributeValue::N(n.to_string()))
    }

    fn cond(&mut self, c: &Cond) -> StoreResult<String> {
        Ok(match c {
            Cond::NotExists => format!("attribute_not_exists({})", self.name(PK)),
            Cond::Exists => format!("attribute_exists({})", self.name(PK)),
            Cond::Eq(a, v) => {
                let v = to_av(v)?;
                format!("{} = {}", self.name(a), self.value(v))
            }
            Cond::AttrAbsent(a) => format!("attribute_not_exists({})", self.name(a)),
            Cond::LessThan(a, n) => {
                let (pk, a, v) = (self.name(PK), self.name(a), self.num(*n));
                if *n > 0 {
                    format!("attribute_exists({pk}) AND (attribute_not_exists({a}) OR {a} < {v})")
                } else {
                    format!("attribute_exists({pk}) AND {a} < {v}")
                }
            }
            Cond::AtLeast(a, n) => {
                let (a, v) = (self.name(a), self.num(*n));
                if *n <= 0 {
                    let pk = self.name(PK);
                    format!("attribute_exists({pk}) AND (attribute_not_exists({a}) OR {a} >= {v})")
                } else {
                    format!("{a} >= {v}")
                }
            }
            Cond::And(x, y) => format!("({}) AND ({})", self.cond(x)?, self.cond(y)?),
            Cond::Or(x, y) => format!("({}) OR ({})", self.cond(x)?, self.cond(y)?),
        })
    }

    fn update(&mut self, u: &Update) -> StoreResult<String> {
        let mut parts = Vec::new();
        if !u.set.is_empty() {
            let mut sets = Vec::new();
            for (k, v) in &u.set {
                let v = to_av(v)?;
                sets.push(format!("{} = {}", self.name(k), self.value(v)));
            }
            parts.push(format!("SET {}", sets.join(", ")));
        }
        if !u.add.is_empty() {
            let adds: Vec<String> = u
                .add
                .iter()
                .map(|(k, n)| format!("{} {}", self.name(k), self.num(*n)))
                .collect();
            parts.push(format!("ADD {}", adds.join(", ")));
        }
        if !u.remove.is_empty() {
            let rems: Vec<String> = u.remove.iter().map(|k| self.name(k)).collect();
            parts.push(format!("REMOVE {}", rems.join(", ")));
        }
        if parts.is_empty() {
            return Err(StoreError::Invalid("an update that changes nothing".into()));
        }
        Ok(parts.join(" "))
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }
    fn values(&self) -> Option<Attrs> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// Maps an SDK error. `ConditionalCheckFailed` maps to the write at `index`.
fn map_err<E, R>(e: SdkError<E, R>, index: usize) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = e.code().map(str::to_owned);
    match code.as_deref() {
        Some("ConditionalCheckFailedException") => StoreError::ConditionFailed { index, key: None },
        Some("TransactionConflictException") => StoreError::Conflict,
        Some(
            "ProvisionedThroughputExceededException"
            | "ThrottlingException"
            | "RequestLimitExceeded",
        ) => StoreError::Throttled,
        Some("ValidationException") => {
            let msg = e.message().unwrap_or("validation error");
            match super::limits::from_validation_message(msg) {
                Some(limit) => StoreError::Limit(limit),
                None => StoreError::Invalid(msg.to_owned()),
            }
        }
        _ => StoreError::unavailable(e),
    }
}

fn transact_item(w: &Write, table: &str) -> StoreResult<TransactWriteItem> {
    let mut ex = Expr::default();
    let cond = w.cond().map(|c| ex.cond(c)).transpose()?;
    let b = TransactWriteItem::builder();
    let item = match w {
        Write::Put { item, .. } => b.put(
            Put::builder()
                .table_name(table)
                .set_item(Some(to_attrs(item)?))
                .set_condition_expression(cond)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .build()
                .map_err(StoreError::unavailable)?,
        ),
        Write::Update { key, update, .. } => {
            let ue = ex.update(update)?;
            b.update(
                DdbUpdate::builder()
                    .table_name(table)
                    .set_key(Some(key_attrs(key)))
                    .update_expression(ue)
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(ex.names())
                    .set_expression_attribute_values(ex.values())
                    .build()
                    .map_err(StoreError::unavailable)?,
            )
        }
        Write::Delete { key, .. } => b.delete(
            Delete::builder()
                .table_name(table)
                .set_key(Some(key_attrs(key)))
                .set_condition_expression(cond)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .build()
                .map_err(StoreError::unavailable)?,
        ),
        Write::Check { key, .. } => b.condition_check(
            ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(key_attrs(key)))
                .set_condition_expression(cond)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .build()
                .map_err(StoreError::unavailable)?,
        ),
    };
    Ok(item.build())
}

impl DynamoTable {
    async fn single(&self, w: &Write) -> StoreResult<()> {
        let mut ex = Expr::default();
        let cond = w.cond().map(|c| ex.cond(c)).transpose()?;
        match w {
            Write::Put { item, .. } => self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(to_attrs(item)?))
                .set_condition_expression(cond)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_err(e, 0)),
            Write::Update { key, update, .. } => {
                let ue = ex.update(update)?;
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .set_key(Some(key_attrs(key)))
                    .update_expression(ue)
                    .set_condition_expression(cond)
                    .set_expression_attribute_names(ex.names())
                    .set_expression_attribute_values(ex.values())
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| map_err(e, 0))
            }
            Write::Delete { key, .. } => self
                .client
                .delete_item()
                .table_name(&self.table)
                .set_key(Some(key_attrs(key)))
                .set_condition_expression(cond)
                .set_expression_attribute_names(ex.names())
                .set_expression_attribute_values(ex.values())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| map_err(e, 0)),
            Write::Check { .. } => unreachable_check(),
        }
    }
}

fn unreachable_check() -> StoreResult<()> {
    Err(StoreError::Invalid(
        "a lone condition check goes through a transaction".into(),
    ))
}

#[async_trait]
impl Table for DynamoTable {
    async fn get(&self, key: &Key, consistent: bool) -> StoreResult<Option<Item>> {
        record(Call::Get(key));
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key_attrs(key)))
            .consistent_read(consistent)
            .send()
            .await
            .map_err(|e| map_err(e, 0))?;
        out.item.map(from_attrs).transpose()
    }

    async fn get_many(&self, keys: &[Key], consistent: bool) -> StoreResult<Vec<Item>> {
        super::limits::check_batch_get(keys)?;
        record(Call::GetMany(keys));
        let mut out = Vec::with_capacity(keys.len());
        if keys.is_empty() {
            return Ok(out);
        }
        {
            let mut pending: Vec<Attrs> = keys.iter().map(key_attrs).collect();
            let mut attempt = 0u32;
            while !pending.is_empty() {
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(consistent)
                    .build()
                    .map_err(StoreError::unavailable)?;
                let res = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, ka)
                    .send()
                    .await
                    .map_err(|e| map_err(e, 0))?;
                if let Some(mut r) = res.responses {
                    for attrs in r.remove(&self.table).unwrap_or_default() {
                        out.push(from_attrs(attrs)?);
                    }
                }
                pending = res
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .map(|k| k.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    attempt += 1;
                    if attempt > 8 {
                        return Err(StoreError::Throttled);
                    }
                    crate::retry::pause(attempt - 1).await;
                }
            }
        }
        Ok(out)
    }

    async fn query(&self, q: &Query) -> StoreResult<Page> {
        record(Call::Query(q));
        let (ipk, isk) = q.index.key_attrs();
        let mut ex = Expr::default();
        let pk_name = ex.name(ipk);
        let pk_val = ex.value(AttributeValue::S(q.pk.clone()));
        let mut kce = format!("{pk_name} = {pk_val}");
        match &q.sk {
            SortKey::All => {}
            SortKey::BeginsWith(p) => {
                let (n, v) = (ex.name(isk), ex.value(AttributeValue::S(p.clone())));
                kce.push_str(&format!(" AND begins_with({n}, {v})"));
            }
            SortKey::Between(a, b) => {
                let n = ex.name(isk);
                let va = ex.value(AttributeValue::S(a.clone()));
                let vb = ex.value(AttributeValue::S(b.clone()));
                kce.push_str(&format!(" AND {n} BETWEEN {va} AND {vb}"));
            }
        }
        let start = q.start_after.as_ref().map(to_attrs).transpose()?;
        let res = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(q.index.name().map(str::to_owned))
            .key_condition_expression(kce)
            .set_expression_attribute_names(ex.names())
            .set_expression_attribute_values(ex.values())
            .scan_index_forward(q.forward)
            .limit(q.limit.clamp(1, 1000) as i32)
            .set_exclusive_start_key(start)
            .consistent_read(q.consistent && q.index == Index::Primary)
            .send()
            .await
            .map_err(|e| map_err(e, 0))?;
        let items = res
            .items
            .unwrap_or_default()
            .into_iter()
            .map(from_attrs)
            .collect::<StoreResult<Vec<_>>>()?;
        let last_key = res.last_evaluated_key.map(from_attrs).transpose()?;
        Ok(Page { items, last_key })
    }

    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()> {
        validate_group(&writes)?;
        record(Call::Transact(&writes));
        if let Some(w) = lone_write(&writes) {
            return self.single(w).await.map_err(|e| e.locate(&writes));
        }
        let items = writes
            .iter()
            .map(|w| transact_item(w, &self.table))
            .collect::<StoreResult<Vec<_>>>()?;
        let res = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) => {
                use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as TE;
                if let Some(TE::TransactionCanceledException(c)) = e.as_service_error() {
                    let reasons = c.cancellation_reasons();
                    if let Some(i) = reasons
                        .iter()
                        .position(|r| r.code() == Some("ConditionalCheckFailed"))
                    {
                        return Err(StoreError::condition_failed(&writes, i));
                    }
                    if reasons
                        .iter()
                        .any(|r| r.code() == Some("TransactionConflict"))
                    {
                        return Err(StoreError::Conflict);
                    }
                    if reasons.iter().any(|r| {
                        matches!(
                            r.code(),
                            Some("ThrottlingError" | "ProvisionedThroughputExceeded")
                        )
                    }) {
                        return Err(StoreError::Throttled);
                    }
                }
                Err(map_err(e, 0))
            }
        }
    }
}

/// Creates the table with the layout the code queries (the SAM template
/// declares the same one). Used by tests against moto and by local tooling.
pub async fn create_table(client: &Client, name: &str) -> Result<(), aws_sdk_dynamodb::Error> {
    let attr = |n: &str| {
        AttributeDefinition::builder()
            .attribute_name(n)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    let key = |n: &str, t: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(n)
            .key_type(t)
            .build()
    };
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash)?)
        .key_schema(key(SK, KeyType::Range)?)
        .attribute_definitions(attr(PK)?)
        .attribute_definitions(attr(SK)?)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()?,
        );
    for index in Index::SECONDARY {
        let (p, s) = index.key_attrs();
        req = req
            .attribute_definitions(attr(p)?)
            .attribute_definitions(attr(s)?)
            .global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name().unwrap_or_default())
                    .key_schema(key(p, KeyType::Hash)?)
                    .key_schema(key(s, KeyType::Range)?)
                    .projection(match index.projection() {
                        None => Projection::builder()
                            .projection_type(ProjectionType::All)
                            .build(),
                        Some(attrs) => Projection::builder()
                            .projection_type(ProjectionType::Include)
                            .set_non_key_attributes(Some(
                                attrs.iter().map(|a| (*a).to_owned()).collect(),
                            ))
                            .build(),
                    })
                    .build()?,
            );
    }
    req.send().await?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(super::TTL)
                .enabled(true)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}
