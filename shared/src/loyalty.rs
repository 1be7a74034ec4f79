//! The loyalty programme's round trip.
//!
//! Out: a redemption (`POST /members/me/redemptions`, points.rs) debits the
//! member's balance and sends `points.redeemed` to the outbound loyalty
//! queue; the redemption is `pending`.
//!
//! In: the loyalty programme answers each redemption on the inbound
//! `loyalty_answers` queue with `{"redemption_id","status":"credited|rejected",
//! "reason"?}` ([`LoyaltyAnswer`]). The [`AnswersConsumer`] records the
//! answer on the redemption; a rejection gives the points back (a ledger
//! entry and the balance) in the same transaction. The redemption's own
//! status is the consumer's marker: the transaction holds only while it is
//! `pending`, so a redelivered answer changes nothing and a refund happens
//! once. An answer naming no redemption, or contradicting the one already
//! recorded, is never applied: it fails until it reaches the dead-letter
//! queue, with an error log line.
//!
//! Keys: the redemption `MEMBER#{member} / REDEMPTION#{id}` (the member's
//! list, `GET /members/me/redemptions`); its pointer `REDEMPTION#{id} /
//! REDEMPTION` (`member_id`), which finds the member from the answer and,
//! while the redemption is pending, sits in gsi1 under `REDEMPTIONS#PENDING`
//! sorted by creation time: the redemptions left unanswered longer than
//! `points.toml`'s `answer_within_hours` are one Query ([`overdue`]),
//! reported by `GET /insights` and, every hour on AWS, as the
//! `RedemptionsOverdue` metric its alarm watches.
//!
//! The same inbound queue carries the answers to card links
//! (`{"card_link_id","status":"confirmed|rejected","reason"?}`, cards.rs):
//! [`Answer::parse`] tells the two shapes apart by their id field; a body
//! of neither shape (or of both) is poison.

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{now, parse_ts};
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::ListPage;
use crate::members;
use crate::points::{ledger_write, LedgerEntry};
use crate::queue::Consumer;
use crate::store::{cursor, Cond, Index, Item, Key, Query, SortKey, StoreError, Table, Update};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const CONSUMER: &str = "loyalty_answers";
/// gsi1's partition of the pending redemptions (sorted by creation time).
pub const PENDING_PK: &str = "REDEMPTIONS#PENDING";

/// What the loyalty programme answers about one redemption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoyaltyAnswer {
    pub redemption_id: String,
    pub status: AnswerStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerStatus {
    Credited,
    Rejected,
}

impl AnswerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerStatus::Credited => "credited",
            AnswerStatus::Rejected => "rejected",
        }
    }
}

/// The longest reason kept (the rest is cut): it is shown to the member.
const REASON_MAX: usize = 500;

/// A message of the inbound queue: an answer to a redemption or to a card link.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Redemption(LoyaltyAnswer),
    Card(crate::cards::CardAnswer),
}

impl Answer {
    /// Parses an inbound message body: `redemption_id` makes it a
    /// redemption's answer, `card_link_id` a card link's; the error says
    /// what is wrong.
    pub fn parse(body: &str) -> std::result::Result<Answer, String> {
        let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        Answer::from_value(v)
    }

    pub fn from_value(v: Value) -> std::result::Result<Answer, String> {
        let Value::Object(m) = &v else {
            return Err("not a JSON object".into());
        };
        match (
            m.contains_key("redemption_id"),
            m.contains_key("card_link_id"),
        ) {
            (true, false) => LoyaltyAnswer::from_value(v).map(Answer::Redemption),
            (false, true) => crate::cards::CardAnswer::from_value(v).map(Answer::Card),
            (true, true) => Err("either redemption_id or card_link_id, not both".into()),
            (false, false) => Err("neither a redemption_id nor a card_link_id".into()),
        }
    }

    pub fn into_event(self) -> Event {
        match self {
            Answer::Redemption(a) => a.into_event(),
            Answer::Card(a) => a.into_event(),
        }
    }
}

impl LoyaltyAnswer {
    /// Parses an inbound message body; the error says what is wrong.
    pub fn parse(body: &str) -> std::result::Result<LoyaltyAnswer, String> {
        let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
        LoyaltyAnswer::from_value(v)
    }

    fn from_value(v: Value) -> std::result::Result<LoyaltyAnswer, String> {
        let a: LoyaltyAnswer = serde_json::from_value(v).map_err(|e| e.to_string())?;
        if ulid::Ulid::from_string(&a.redemption_id).is_err() {
            return Err("redemption_id: not a redemption id".into());
        }
        Ok(a)
    }

    /// The answer as an event, so the queue's batch handling and the
    /// consumer's span and logs are those of every other consumer. Its id
    /// is the answer's business key: the same answer twice is one event.
    pub fn into_event(self) -> Event {
        let mut e = Event::new(
            Kind::LoyaltyAnswered,
            "",
            None,
            serde_json::to_value(&self).unwrap_or(Value::Null),
        );
        e.event_id = format!("{}.{}", self.redemption_id, self.status.as_str());
        e
    }
}

/// The sort keys of a member's redemptions begin with this.
pub const REDEMPTION_PREFIX: &str = "REDEMPTION#";

pub fn redemption_key(member: &str, id: &str) -> Key {
    Key::new(
        crate::members::pk(member),
        format!("{REDEMPTION_PREFIX}{id}"),
    )
}

pub fn pointer_key(id: &str) -> Key {
    Key::new(format!("{REDEMPTION_PREFIX}{id}"), "REDEMPTION")
}

/// The pointer item written with a new redemption: pending in gsi1.
pub fn pointer_item(member: &str, id: &str, at: &str) -> Item {
    let k = pointer_key(id);
    let v = json!({"pk": k.pk, "sk": k.sk, "member_id": member, "redemption_id": id,
                   "status": "pending", "created_at": at,
                   "gsi1pk": PENDING_PK, "gsi1sk": format!("{at}#{id}")});
    match v {
        Value::Object(m) => m,
        _ => Item::new(),
    }
}

/// A redemption as `GET /members/me/redemptions` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RedemptionView {
    pub id: String,
    pub points: i64,
    pub euros: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_at: Option<String>,
}

/// `GET /members/me/redemptions`: the caller's redemptions, newest first.
pub async fn list<T: Table>(
    app: &App<T>,
    caller: &Caller,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<RedemptionView>> {
    members::require(app, caller).await?;
    let pk = crate::members::pk(caller.id.as_str());
    let start = cursor::start(cursor_in.as_deref(), Index::Primary, &pk)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Primary, pk)
                .sk(SortKey::BeginsWith(REDEMPTION_PREFIX.into()))
                .backward()
                .limit(limit)
                .start_after(start),
        )
        .await?;
    let items = page
        .items
        .into_iter()
        .map(|i| {
            serde_json::from_value(Value::Object(i))
                .map_err(|e| Error::Store(StoreError::unavailable(e)))
        })
        .collect::<Result<Vec<RedemptionView>>>()?;
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

/// What an answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Recorded now (and, for a rejection, the points given back).
    Recorded,
    /// The same answer was recorded before: nothing changed.
    AlreadyRecorded,
}

/// Records one answer (see the module doc). `Err(NotFound)` when no
/// redemption has that id, `Err(Conflict)` when another answer was
/// recorded for it: both are permanent, the message reaches the
/// dead-letter queue.
pub async fn apply_answer<T: Table>(app: &App<T>, a: &LoyaltyAnswer) -> Result<Applied> {
    let Some(pointer) = app.table.get(&pointer_key(&a.redemption_id), true).await? else {
        return Err(Error::NotFound("redemption"));
    };
    let member = attr_text(&pointer, "member_id").to_owned();
    let rk = redemption_key(&member, &a.redemption_id);
    let Some(redemption) = app.table.get(&rk, true).await? else {
        return Err(Error::NotFound("redemption"));
    };
    let status = attr_text(&redemption, "status");
    if status == a.status.as_str() {
        return Ok(Applied::AlreadyRecorded);
    }
    if status != "pending" {
        return Err(Error::Conflict(format!(
            "redemption {} is already {status}; the loyalty programme answered {}",
            a.redemption_id,
            a.status.as_str()
        )));
    }
    let points = redemption
        .get("points")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let euros = attr_text(&redemption, "euros").to_owned();
    let reason = a.reason.as_deref().map(|r| {
        let r = r.trim();
        match r.char_indices().nth(REASON_MAX) {
            Some((i, _)) => r[..i].to_owned(),
            None => r.to_owned(),
        }
    });
    let at = now();
    let mut update = Update::default()
        .set("status", a.status.as_str())
        .set("answered_at", at.as_str());
    if let Some(r) = &reason {
        update = update.set("reason", r.as_str());
    }
    let mut writes = vec![
        crate::store::Write::update(rk, update).when(Cond::Eq("status".into(), json!("pending"))),
        crate::store::Write::update(
            pointer_key(&a.redemption_id),
            Update::default()
                .set("status", a.status.as_str())
                .remove("gsi1pk")
                .remove("gsi1sk"),
        )
        .when(Cond::Exists),
    ];
    let member_id = crate::domain::MemberId::parse(&member);
    // A rejection gives the points back, unless the member has since been
    // erased (their balance is gone with them).
    let profile = match &member_id {
        Some(id) => app.table.get(&members::key(id), true).await?,
        None => None,
    };
    let refund = a.status == AnswerStatus::Rejected
        && profile.as_ref().is_some_and(|p| !members::is_closed(p));
    if let (true, Some(id)) = (refund, &member_id) {
        writes.push(
            crate::store::Write::update(
                members::key(id),
                Update::default().add("points_balance", points),
            )
            .when(Cond::Exists),
        );
        writes.push(ledger_write(
            &member,
            &LedgerEntry {
                id: format!("{}-refund", a.redemption_id),
                delta: points,
                reason: "redemption_refund".into(),
                label: format!("Conversion de {euros} € refusée : points rendus"),
                reference: a.redemption_id.clone(),
                created_at: at.clone(),
            },
        ));
    }
    let event = Event::new(
        Kind::RedemptionAnswered,
        &member,
        None,
        json!({"redemption_id": a.redemption_id, "status": a.status.as_str(), "reason": reason,
               "points": points, "euros": euros, "refunded": refund}),
    );
    writes.push(event.write());
    match commit(&app.table, writes, None).await {
        Ok(()) => {
            crate::metrics::record_redemption_answered(a.status.as_str());
            Ok(Applied::Recorded)
        }
        // Answered meanwhile (the same answer delivered twice at once):
        // read again to tell a redelivery from a contradiction.
        Err(Error::Store(StoreError::ConditionFailed { .. })) => {
            let now_status = app
                .table
                .get(&redemption_key(&member, &a.redemption_id), true)
                .await?
                .map(|r| attr_text(&r, "status").to_owned())
                .unwrap_or_default();
            if now_status == a.status.as_str() {
                Ok(Applied::AlreadyRecorded)
            } else {
                Err(Error::Conflict(format!(
                    "redemption {} is already {now_status}",
                    a.redemption_id
                )))
            }
        }
        Err(e) => Err(e),
    }
}

fn attr_text<'a>(item: &'a Item, attr: &str) -> &'a str {
    item.get(attr).and_then(Value::as_str).unwrap_or_default()
}

/// The redemptions still pending: how many, how many past the delay the
/// loyalty programme has to answer, and since when the oldest waits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pending {
    pub pending: u64,
    pub overdue: u64,
    pub oldest_at: Option<String>,
    pub answer_within_hours: i64,
}

/// The most pending redemptions read per call (10 pages of 1,000): beyond
/// that the figures say "at least".
const PENDING_READ_MAX: u64 = 10_000;

/// Reads the pending redemptions from gsi1 (one Query, paged), oldest first.
pub async fn pending<T: Table>(app: &App<T>) -> Result<Pending> {
    let hours = app.settings().points.conversion.answer_within_hours;
    let cutoff = time::OffsetDateTime::now_utc() - time::Duration::hours(hours);
    let mut out = Pending {
        pending: 0,
        overdue: 0,
        oldest_at: None,
        answer_within_hours: hours,
    };
    let mut start = None;
    loop {
        let page = app
            .table
            .query(
                &Query::new(Index::Gsi1, PENDING_PK)
                    .limit(1000)
                    .start_after(start),
            )
            .await?;
        for i in &page.items {
            let at = attr_text(i, "created_at");
            if out.oldest_at.is_none() {
                out.oldest_at = Some(at.to_owned());
            }
            out.pending += 1;
            if parse_ts(at).is_some_and(|t| t < cutoff) {
                out.overdue += 1;
            }
        }
        match page.last_key {
            Some(k) if out.pending < PENDING_READ_MAX => start = Some(k),
            _ => break,
        }
    }
    Ok(out)
}

/// The hourly check on AWS (and on the local scheduler): logs and records
/// the overdue redemptions as the `RedemptionsOverdue` metric.
pub async fn check_overdue<T: Table>(app: &App<T>) -> Result<Pending> {
    crate::access::function("loyalty", check_overdue_inner(app)).await
}

async fn check_overdue_inner<T: Table>(app: &App<T>) -> Result<Pending> {
    app.refresh_or_keep().await;
    let p = pending(app).await?;
    crate::metrics::record_redemptions_overdue(p.overdue);
    if p.overdue > 0 {
        tracing::warn!(
            overdue = p.overdue,
            pending = p.pending,
            oldest_at = p.oldest_at.as_deref().unwrap_or(""),
            hours = p.answer_within_hours,
            "redemptions unanswered by the loyalty programme"
        );
    }
    Ok(p)
}

/// The inbound queue's consumer.
pub struct AnswersConsumer<T> {
    pub app: App<T>,
}

#[async_trait]
impl<T: Table + Clone> Consumer for AnswersConsumer<T> {
    fn name(&self) -> &'static str {
        CONSUMER
    }
    fn function(&self) -> &'static str {
        "loyalty"
    }

    async fn prepare(&self) {
        self.app.refresh_or_keep().await;
    }

    fn parse(&self, body: &str) -> std::result::Result<Event, String> {
        Answer::parse(body).map(Answer::into_event)
    }

    async fn apply(&self, e: &Event) -> Result<()> {
        if e.kind != Kind::LoyaltyAnswered {
            return Err(Error::invalid("kind", "not a loyalty answer"));
        }
        let a = match Answer::from_value(e.data.clone()) {
            Ok(Answer::Redemption(a)) => a,
            Ok(Answer::Card(a)) => return apply_card(&self.app, &a).await,
            Err(err) => return Err(Error::invalid("answer", err)),
        };
        match apply_answer(&self.app, &a).await {
            Ok(Applied::Recorded) => {
                tracing::info!(redemption = %a.redemption_id, status = a.status.as_str(), "loyalty answer recorded");
                Ok(())
            }
            Ok(Applied::AlreadyRecorded) => Ok(()),
            Err(err @ (Error::NotFound(_) | Error::Conflict(_))) => {
                tracing::error!(redemption = %a.redemption_id, status = a.status.as_str(), error = %err, "loyalty answer not applied; it goes to the dead-letter queue");
                Err(err)
            }
            Err(err) => Err(err),
        }
    }
}

/// A card link's answer, as the consumer logs it (the link and the member,
/// never the card number).
async fn apply_card<T: Table>(app: &App<T>, a: &crate::cards::CardAnswer) -> Result<()> {
    use crate::cards::Applied;
    match crate::cards::apply_answer(app, a).await {
        Ok(Applied::Recorded) => {
            tracing::info!(card_link = %a.card_link_id, status = a.status.as_str(), "loyalty card answer recorded");
            Ok(())
        }
        Ok(Applied::Superseded) => {
            tracing::info!(card_link = %a.card_link_id, status = a.status.as_str(), "loyalty card answer for a card no longer linked: recorded on its link only");
            Ok(())
        }
        Ok(Applied::AlreadyRecorded) => Ok(()),
        Err(err @ (Error::NotFound(_) | Error::Conflict(_))) => {
            tracing::error!(card_link = %a.card_link_id, status = a.status.as_str(), error = %err, "loyalty card answer not applied; it goes to the dead-letter queue");
            Err(err)
        }
        Err(err) => Err(err),
    }
}
