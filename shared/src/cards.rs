//! Loyalty cards: a card is linked `pending` until the loyalty programme
//! confirms it belongs to a real card, through the same round trip as the
//! redemptions (loyalty.rs).
//!
//! Out: linking a card (`POST /members` with `loyalty_card`, or
//! `PATCH /members/me` with a new one, members.rs) writes, in the
//! transaction that sets the card and its guard, a card link
//! `CARDLINK#{id} / CARDLINK` (`member_id`, `status: pending`) and a
//! `member.card_linked` event (`{card_link_id, loyalty_card}`, the full
//! number: the loyalty programme needs it) routed to the outbound loyalty
//! queue. The profile says `loyalty_card_status: pending` and
//! `loyalty_card_link: {id}`.
//!
//! In: the loyalty programme answers on the inbound `loyalty_answers` queue
//! with `{"card_link_id","status":"confirmed|rejected","reason"?}`
//! ([`CardAnswer`]); the [`crate::loyalty::AnswersConsumer`] tells it from a
//! redemption's answer by its id field. [`apply_answer`]:
//! - `confirmed`: the profile's card status becomes `confirmed`;
//! - `rejected`: the card is unlinked (the profile's card, status and link
//!   removed, the card guard freed so the card can be linked again) and a
//!   `member.card_rejected` event mails the member (the card masked, the
//!   reason).
//!
//! The link's own status is the marker: the transaction holds only while it
//! is `pending`, so a redelivered answer changes nothing. An answer for a
//! link the member has since replaced (another card linked, or the member
//! erased) is recorded on that link only (`superseded: true`) and
//! acknowledged: the current card is not touched. An answer naming no link,
//! or contradicting the one recorded, is never applied: it fails until it
//! reaches the dead-letter queue, with an error log line.
//!
//! No log line carries a card number: the link id and the member id are
//! what is logged.

use crate::app::App;
use crate::domain::{now, LoyaltyCard, MemberId};
use crate::error::{Error, Result};
use crate::events::{Event, Kind};
use crate::members;
use crate::store::{Cond, Item, Key, StoreError, Table, Update, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// A card's status on the profile while the loyalty programme checks it.
pub const PENDING: &str = "pending";
/// A card the loyalty programme confirmed (or one linked before cards were
/// checked: a profile with a card and no status reads as confirmed).
pub const CONFIRMED: &str = "confirmed";

/// The longest reason kept (the rest is cut): it is shown to the member.
const REASON_MAX: usize = 500;

/// Attempts of one answer when the profile or the link moved between the
/// reads and the transaction.
const ATTEMPTS: u32 = 4;

pub fn link_key(id: &str) -> Key {
    Key::new(format!("CARDLINK#{id}"), "CARDLINK")
}

/// The status a profile's card shows: its stored status, `confirmed` for a
/// card linked before cards were checked, none without a card.
pub fn status_of(card: Option<&str>, status: Option<&str>) -> Option<String> {
    card.map(|_| status.unwrap_or(CONFIRMED).to_owned())
}

/// What linking `card` to `member` adds to the transaction that sets the
/// card on the profile (with `loyalty_card_status: pending` and
/// `loyalty_card_link: {link id}`) and its guard: the link and the event
/// asking the loyalty programme to confirm the card. Returns the link id.
pub fn link_writes(member: &str, card: &str) -> (String, Vec<Write>) {
    let id = ulid::Ulid::new().to_string();
    let at = now();
    let k = link_key(&id);
    let mut item = Item::new();
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("card_link_id".into(), json!(id));
    item.insert("member_id".into(), json!(member));
    item.insert("status".into(), json!(PENDING));
    item.insert("created_at".into(), json!(at));
    let event = Event::new(
        Kind::MemberCardLinked,
        member,
        None,
        json!({"card_link_id": id, "loyalty_card": card}),
    );
    (id, vec![Write::put_new(item), event.write()])
}

/// What the loyalty programme answers about one card link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardAnswer {
    pub card_link_id: String,
    pub status: CardStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CardStatus {
    Confirmed,
    Rejected,
}

impl CardStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CardStatus::Confirmed => "confirmed",
            CardStatus::Rejected => "rejected",
        }
    }
}

impl CardAnswer {
    /// Reads an inbound message already parsed as JSON; the error says
    /// what is wrong.
    pub fn from_value(v: Value) -> std::result::Result<CardAnswer, String> {
        let a: CardAnswer = serde_json::from_value(v).map_err(|e| e.to_string())?;
        if ulid::Ulid::from_string(&a.card_link_id).is_err() {
            return Err("card_link_id: not a card link id".into());
        }
        Ok(a)
    }

    /// The answer as an event (`loyalty.answered`, as a redemption's
    /// answer): its id is the answer's business key.
    pub fn into_event(self) -> Event {
        let mut e = Event::new(
            Kind::LoyaltyAnswered,
            "",
            None,
            serde_json::to_value(&self).unwrap_or(Value::Null),
        );
        e.event_id = format!("card.{}.{}", self.card_link_id, self.status.as_str());
        e
    }
}

/// What a card answer did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Recorded now, on the link and the member's card.
    Recorded,
    /// Recorded on the link only: the member has since linked another card
    /// (or was erased); their current card is untouched.
    Superseded,
    /// The same answer was recorded before: nothing changed.
    AlreadyRecorded,
}

fn attr_text<'a>(item: &'a Item, attr: &str) -> &'a str {
    item.get(attr).and_then(Value::as_str).unwrap_or_default()
}

fn cut(reason: Option<&str>) -> Option<String> {
    reason.map(str::trim).filter(|r| !r.is_empty()).map(|r| {
        match r.char_indices().nth(REASON_MAX) {
            Some((i, _)) => r[..i].to_owned(),
            None => r.to_owned(),
        }
    })
}

/// Records one answer (see the module doc). `Err(NotFound)` when no link
/// has that id, `Err(Conflict)` when another answer was recorded for it:
/// both are permanent, the message reaches the dead-letter queue.
pub async fn apply_answer<T: Table>(app: &App<T>, a: &CardAnswer) -> Result<Applied> {
    let reason = cut(a.reason.as_deref());
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Some(link) = app.table.get(&link_key(&a.card_link_id), true).await? else {
            return Err(Error::NotFound("card link"));
        };
        let status = attr_text(&link, "status");
        if status == a.status.as_str() {
            return Ok(Applied::AlreadyRecorded);
        }
        if status != PENDING {
            return Err(Error::Conflict(format!(
                "card link {} is already {status}; the loyalty programme answered {}",
                a.card_link_id,
                a.status.as_str()
            )));
        }
        let member = attr_text(&link, "member_id").to_owned();
        let member_id = MemberId::parse(&member);
        let profile = match &member_id {
            Some(id) => app.table.get(&members::key(id), true).await?,
            None => None,
        };
        // The profile's card, when this link is still the member's current one.
        let card = profile
            .as_ref()
            .filter(|p| !members::is_closed(p))
            .filter(|p| attr_text(p, "loyalty_card_link") == a.card_link_id)
            .map(|p| attr_text(p, "loyalty_card").to_owned())
            .filter(|c| !c.is_empty());
        let at = now();
        let mut link_update = Update::default()
            .set("status", a.status.as_str())
            .set("answered_at", at.as_str());
        if let Some(r) = &reason {
            link_update = link_update.set("reason", r.as_str());
        }
        if card.is_none() {
            link_update = link_update.set("superseded", true);
        }
        let mut writes = vec![Write::update(link_key(&a.card_link_id), link_update)
            .when(Cond::Eq("status".into(), json!(PENDING)))];
        if let (Some(card), Some(id)) = (&card, &member_id) {
            // Still this link, still this card, still a member.
            let same = Cond::Eq("loyalty_card_link".into(), json!(a.card_link_id))
                .and(Cond::Eq("loyalty_card".into(), json!(card)))
                .and(Cond::AttrAbsent("erased_at".into()))
                .and(Cond::AttrAbsent("erasing_at".into()));
            match a.status {
                CardStatus::Confirmed => writes.push(
                    Write::update(
                        members::key(id),
                        Update::default().set("loyalty_card_status", CONFIRMED),
                    )
                    .when(same),
                ),
                CardStatus::Rejected => {
                    writes.push(
                        Write::update(
                            members::key(id),
                            Update::default()
                                .remove("loyalty_card")
                                .remove("loyalty_card_status")
                                .remove("loyalty_card_link"),
                        )
                        .when(same),
                    );
                    writes.push(members::free_card(card, &member));
                    writes.push(
                        Event::new(
                            Kind::MemberCardRejected,
                            &member,
                            None,
                            json!({"card_link_id": a.card_link_id,
                                   "loyalty_card": LoyaltyCard::masked(card),
                                   "reason": reason}),
                        )
                        .write(),
                    );
                }
            }
        }
        match app.table.transact(writes).await {
            Ok(()) if card.is_some() => return Ok(Applied::Recorded),
            Ok(()) => return Ok(Applied::Superseded),
            // The link was answered meanwhile (the same answer delivered
            // twice at once), or the profile moved (another card linked):
            // read again, which tells a redelivery from a contradiction
            // and a current link from a superseded one.
            Err(
                StoreError::ConditionFailed { .. } | StoreError::Conflict | StoreError::Throttled,
            ) if attempt < ATTEMPTS => {
                crate::retry::pause(attempt).await;
            }
            Err(StoreError::ConditionFailed { .. }) => return Err(Error::Busy),
            Err(e) => return Err(e.into()),
        }
    }
}
