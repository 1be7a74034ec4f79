//! Bounces and complaints. SES publishes them through the configuration
//! set the emails and digests functions send with (its event destination:
//! an SNS topic, delivered raw to the `mail_feedback` queue, so a message
//! body is SES's event JSON itself). Every community mail carries its member
//! and mail ids as message tags ([`tags_header`]: the `X-SES-MESSAGE-TAGS`
//! header, which SES reads and removes before delivery), so the event names
//! the member.
//!
//! The [`FeedbackConsumer`] (the `mailfeedback` function; locally the
//! `mail_feedback` queue, fed by `POST /local/ses-events`) records each SES
//! event exactly once, its marker `DONE#mail_feedback#{event}` in the same
//! transaction as its effects:
//! - a permanent bounce or a complaint suppresses the member's address
//!   (`email_suppressed` on the profile: `bounce` or `complaint`, with
//!   `email_suppressed_at`): no mail of any kind goes to it any more
//!   (`MemberRow::mailable`, read by the emails consumer, its fan-out pages
//!   and the digests). The write holds only while the profile's address is
//!   still the one that bounced (compared case-insensitively, then
//!   conditioned on the stored value), so feedback about an address the
//!   member no longer has suppresses nothing. There is no address change
//!   yet (`PATCH /members/me` does not take one); support lifts a
//!   suppression by removing the attribute (docs/operations.md);
//! - every bounce and complaint, transient bounces included, is counted in
//!   marketing's totals (`mail_feedback.bounces`, `.complaints` and
//!   `.suppressed` of `GET /insights`).
//!
//! A transient (or undetermined) bounce, a full mailbox, suppresses nothing.
//!
//! **Untagged events** (a mail sent without the tags: Cognito's
//! verification and password mails go through the same configuration set,
//! and mails sent before the tags existed) are counted and suppress nothing,
//! with a warning naming SES's message id: they are genuine SES feedback,
//! and failing them would only fill the dead-letter queue.
//! **Poison**: a body that is not an SES bounce or complaint event (not JSON,
//! another event type, no message id) fails every delivery and reaches the
//! dead-letter queue, changing nothing.
//!
//! **Totals are folded per batch**: a batch's events are applied in one
//! transaction (markers, the members' profiles, one write of the summed
//! figures on one of the insights' 16 `TOTALS` shards), never one shared
//! item per event. A condition that fails (an event recorded meanwhile by a
//! concurrent delivery, a profile changed) makes the batch re-read and
//! re-plan; a conflict or throttling retries with backoff in process; a
//! batch that still fails is applied event by event so that only the failing
//! ones go back to the queue.

use crate::app::App;
use crate::domain::{now, MemberId};
use crate::error::{Error, Result};
use crate::events::{consumed_marker, marker_key, Event, Kind};
use crate::members;
use crate::queue::Consumer;
use crate::store::{Cond, Item, Key, StoreError, Table, Update, Write};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

pub const CONSUMER: &str = "mail_feedback";
/// The header SES reads message tags from (and removes before delivery).
pub const TAGS_HEADER: &str = "X-SES-MESSAGE-TAGS";
/// The member tag: the member id as is, when it is only of the characters
/// SES allows in a tag value (`A-Z a-z 0-9 _ -`; a Cognito `sub` is).
const MEMBER_TAG: &str = "member";
/// The member tag of any other member id: base64url, whose alphabet is that.
const MEMBER_TAG_B64: &str = "member64";
const MAIL_TAG: &str = "mail";
/// SES's limit on a tag value.
const TAG_MAX: usize = 256;
/// Events per transaction: a marker and at most one profile each, and the
/// totals: 21 writes, far under the 100 of a transaction.
const CHUNK: usize = 10;
const ATTEMPTS: u32 = 12;

fn tag_safe(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= TAG_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The tags header every community mail carries: its member (reversibly,
/// [`member_of_tags`]) and its mail id (for the logs; characters SES does not
/// take are replaced).
pub fn tags_header(member: &str, mail_id: &str) -> (String, String) {
    let member_tag = if tag_safe(member) {
        format!("{MEMBER_TAG}={member}")
    } else {
        format!("{MEMBER_TAG_B64}={}", URL_SAFE_NO_PAD.encode(member))
    };
    let mail: String = mail_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(TAG_MAX)
        .collect();
    let mail = if mail.is_empty() { "none".into() } else { mail };
    (
        TAGS_HEADER.into(),
        format!("{member_tag}, {MAIL_TAG}={mail}"),
    )
}

/// The member an SES event's tags name (`None`: untagged, or not a member id).
pub fn member_of_tags(tags: &HashMap<String, Vec<String>>) -> Option<MemberId> {
    let first = |name: &str| tags.get(name).and_then(|v| v.first());
    if let Some(m) = first(MEMBER_TAG) {
        return MemberId::parse(m);
    }
    let bytes = URL_SAFE_NO_PAD.decode(first(MEMBER_TAG_B64)?).ok()?;
    MemberId::parse(std::str::from_utf8(&bytes).ok()?)
}

/// SES's event (event publishing: `eventType`; identity notifications say
/// `notificationType` and are read the same way).
#[derive(Debug, Deserialize)]
struct SesEvent {
    #[serde(rename = "eventType", alias = "notificationType")]
    event_type: String,
    #[serde(default)]
    bounce: Option<SesBounce>,
    #[serde(default)]
    complaint: Option<SesComplaint>,
    mail: SesMail,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesBounce {
    bounce_type: String,
    #[serde(default)]
    bounce_sub_type: Option<String>,
    #[serde(default)]
    bounced_recipients: Vec<SesRecipient>,
    #[serde(default)]
    feedback_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesComplaint {
    #[serde(default)]
    complained_recipients: Vec<SesRecipient>,
    #[serde(default)]
    feedback_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesRecipient {
    email_address: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SesMail {
    message_id: String,
    #[serde(default)]
    destination: Vec<String>,
    #[serde(default)]
    tags: HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedbackKind {
    Bounce,
    Complaint,
}

impl FeedbackKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedbackKind::Bounce => "bounce",
            FeedbackKind::Complaint => "complaint",
        }
    }
}

/// One bounce or complaint, as the consumer's event carries it (`data`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    pub kind: FeedbackKind,
    /// A permanent bounce or a complaint: the address is suppressed.
    pub suppresses: bool,
    /// SES's `bounceType` (`Permanent`, `Transient`, `Undetermined`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bounce_sub_type: Option<String>,
    /// The addresses that bounced or complained (lower-cased).
    pub recipients: Vec<String>,
    /// SES's message id.
    pub message_id: String,
    /// The mail (template instance) it was, from the tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mail_id: Option<String>,
}

fn bounded(what: &str, s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || s.len() > 512 {
        return Err(format!("{what}: empty or longer than 512 bytes"));
    }
    Ok(())
}

/// Reads a queue message: SES's event JSON (SNS raw delivery), or the same
/// inside SNS's envelope (a subscription without raw delivery). The event's
/// id is SES's message id, the type and SES's feedback id: the same
/// notification delivered twice is one event.
pub fn parse(body: &str) -> std::result::Result<Event, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| e.to_string())?;
    let v = match (v.get("Type").and_then(Value::as_str), v.get("Message")) {
        (Some("Notification"), Some(Value::String(inner))) => {
            serde_json::from_str(inner).map_err(|e| format!("Message: {e}"))?
        }
        _ => v,
    };
    let e: SesEvent = serde_json::from_value(v).map_err(|e| e.to_string())?;
    bounded("mail.messageId", &e.mail.message_id)?;
    let (kind, recipients, feedback_id, bounce) = match (e.event_type.as_str(), e.bounce, e.complaint)
    {
        ("Bounce", Some(b), _) => {
            let r: Vec<String> = b
                .bounced_recipients
                .iter()
                .map(|r| r.email_address.clone())
                .collect();
            (
                FeedbackKind::Bounce,
                r,
                b.feedback_id.clone(),
                Some((b.bounce_type, b.bounce_sub_type)),
            )
        }
        ("Complaint", _, Some(c)) => {
            let r: Vec<String> = c
                .complained_recipients
                .iter()
                .map(|r| r.email_address.clone())
                .collect();
            (FeedbackKind::Complaint, r, c.feedback_id, None)
        }
        ("Bounce", None, _) => return Err("a Bounce event without its bounce object".into()),
        ("Complaint", _, None) => {
            return Err("a Complaint event without its complaint object".into())
        }
        (other, _, _) => {
            return Err(format!(
                "eventType {other:?} is not a Bounce or a Complaint (the configuration set publishes only those)"
            ))
        }
    };
    if let Some(f) = &feedback_id {
        bounded("feedbackId", f)?;
    }
    // SES names the recipients; the mail's destination when it does not.
    let recipients: Vec<String> = if recipients.is_empty() {
        e.mail.destination
    } else {
        recipients
    }
    .iter()
    .map(|a| crate::mail::ses::address(a.trim()).to_ascii_lowercase())
    .collect();
    let member = member_of_tags(&e.mail.tags);
    let mail_id = e.mail.tags.get(MAIL_TAG).and_then(|v| v.first()).cloned();
    let suppresses = match &bounce {
        Some((t, _)) => t == "Permanent",
        None => true,
    };
    let (bounce_type, bounce_sub_type) = bounce.unzip();
    let f = Feedback {
        kind,
        suppresses,
        bounce_type,
        bounce_sub_type: bounce_sub_type.flatten(),
        recipients,
        message_id: e.mail.message_id.clone(),
        mail_id,
    };
    let mut event = Event::new(
        Kind::MailFeedback,
        member.as_ref().map_or("", MemberId::as_str),
        None,
        serde_json::to_value(&f).map_err(|e| e.to_string())?,
    );
    event.event_id = match feedback_id {
        Some(fid) => format!("{}.{}.{fid}", e.mail.message_id, kind.as_str()),
        None => format!("{}.{}", e.mail.message_id, kind.as_str()),
    };
    Ok(event)
}

/// A message no delivery can apply: it fails every time and so reaches the
/// dead-letter queue.
fn malformed(why: &str) -> Error {
    tracing::error!(consumer = CONSUMER, why, "malformed mail feedback event");
    Error::Store(StoreError::Invalid(format!(
        "malformed mail feedback event: {why}"
    )))
}

/// The feedback an event carries.
pub fn feedback_of(e: &Event) -> Result<Feedback> {
    if e.kind != Kind::MailFeedback {
        return Err(malformed(&format!(
            "kind {} is not mail.feedback",
            e.kind.as_str()
        )));
    }
    serde_json::from_value(e.data.clone()).map_err(|err| malformed(&err.to_string()))
}

/// The `mail_feedback` queue's consumer.
pub struct FeedbackConsumer<T> {
    pub app: App<T>,
}

enum Outcome {
    Done,
    /// A condition failed: re-read and plan again.
    Replan,
    /// Contention: back off and retry.
    Busy,
}

impl<T: Table + Clone> FeedbackConsumer<T> {
    /// One attempt at a chunk of events (at most [`CHUNK`]).
    async fn attempt(&self, events: &[(&Event, &Feedback)]) -> Result<Outcome> {
        let table = &self.app.table;
        // 1. Once per event: the same notification twice in one batch is
        // one, and those recorded before are dropped.
        let mut seen = HashSet::new();
        let events: Vec<(&Event, &Feedback)> = events
            .iter()
            .copied()
            .filter(|(e, _)| seen.insert(e.event_id.as_str()))
            .collect();
        let keys: Vec<Key> = events
            .iter()
            .map(|(e, _)| marker_key(CONSUMER, &e.event_id))
            .collect();
        let done: HashSet<String> = crate::store::get_all(table, &keys, true)
            .await?
            .iter()
            .filter_map(|i| i.get("pk")?.as_str().map(str::to_owned))
            .collect();
        let pending: Vec<(&Event, &Feedback)> = events
            .into_iter()
            .filter(|(e, _)| !done.contains(&marker_key(CONSUMER, &e.event_id).pk))
            .collect();
        if pending.is_empty() {
            return Ok(Outcome::Done);
        }
        // 2. The profiles of the members to suppress, read consistently (a
        // welcome mail can bounce within seconds of the sign-up; feedback
        // is rare enough for the full read units).
        let mut to_suppress: BTreeMap<String, Vec<&Feedback>> = BTreeMap::new();
        for (e, f) in &pending {
            if f.suppresses && MemberId::parse(&e.member_id).is_some() {
                to_suppress.entry(e.member_id.clone()).or_default().push(f);
            }
        }
        let profile_keys: Vec<Key> = to_suppress
            .keys()
            .filter_map(|m| MemberId::parse(m))
            .map(|m| members::key(&m))
            .collect();
        let mut profiles: HashMap<String, Item> = HashMap::new();
        for i in crate::store::get_all(table, &profile_keys, true).await? {
            let id = i
                .get("pk")
                .and_then(Value::as_str)
                .and_then(crate::members::id_of_pk)
                .map(str::to_owned);
            if let Some(id) = id {
                profiles.insert(id, i);
            }
        }
        // 3. The writes: markers, suppressions (one per member), totals.
        let mut writes: Vec<Write> = pending
            .iter()
            .map(|(e, _)| consumed_marker(CONSUMER, &e.event_id))
            .collect();
        let mut suppressed = Vec::new();
        for (member, feedback) in &to_suppress {
            let Some(p) = profiles.get(member) else {
                tracing::info!(consumer = CONSUMER, member = %member, "no such member (erased, or never one): counted only");
                continue;
            };
            if members::is_closed(p) || p.get("email_suppressed").is_some() {
                continue;
            }
            let Some(email) = p.get("email").and_then(Value::as_str) else {
                continue;
            };
            let lower = email.to_ascii_lowercase();
            if !feedback.iter().any(|f| f.recipients.contains(&lower)) {
                tracing::info!(consumer = CONSUMER, member = %member, "feedback about an address the member no longer has: nothing suppressed");
                continue;
            }
            let why = if feedback.iter().any(|f| f.kind == FeedbackKind::Complaint) {
                FeedbackKind::Complaint
            } else {
                FeedbackKind::Bounce
            };
            let Some(id) = MemberId::parse(member) else {
                continue;
            };
            writes.push(
                Write::update(
                    members::key(&id),
                    // Out of the community news index too.
                    members::out_of_news(
                        Update::default()
                            .set("email_suppressed", why.as_str())
                            .set("email_suppressed_at", now()),
                    ),
                )
                .when(
                    Cond::Eq("email".into(), json!(email))
                        .and(Cond::AttrAbsent("email_suppressed".into()))
                        .and(Cond::AttrAbsent("erased_at".into()))
                        .and(Cond::AttrAbsent("erasing_at".into())),
                ),
            );
            suppressed.push((member.as_str(), why));
        }
        let count = |k: FeedbackKind| pending.iter().filter(|(_, f)| f.kind == k).count() as i64;
        if let Some(w) = crate::insights::totals_write(&[
            ("mail_bounces", count(FeedbackKind::Bounce)),
            ("mail_complaints", count(FeedbackKind::Complaint)),
            ("mail_suppressed", suppressed.len() as i64),
        ]) {
            writes.push(w);
        }
        match table.transact(writes).await {
            Ok(()) => {
                for (e, f) in &pending {
                    if e.member_id.is_empty() {
                        tracing::warn!(consumer = CONSUMER, message_id = %f.message_id, kind = f.kind.as_str(), "feedback about an untagged mail (not sent by the emails or digests function): counted, nothing suppressed");
                    } else {
                        tracing::info!(consumer = CONSUMER, member = %e.member_id, kind = f.kind.as_str(), bounce_type = ?f.bounce_type, mail_id = ?f.mail_id, "mail feedback recorded");
                    }
                }
                for (member, why) in &suppressed {
                    tracing::info!(consumer = CONSUMER, member = %member, reason = why.as_str(), "address suppressed: no more mail to it");
                }
                crate::metrics::record_mail_feedback(
                    count(FeedbackKind::Bounce) as u64,
                    count(FeedbackKind::Complaint) as u64,
                    suppressed.len() as u64,
                );
                Ok(Outcome::Done)
            }
            Err(StoreError::ConditionFailed { .. }) => Ok(Outcome::Replan),
            Err(StoreError::Conflict | StoreError::Throttled) => Ok(Outcome::Busy),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies events, [`CHUNK`] per transaction, retrying in process.
    async fn apply_all(&self, events: &[(&Event, &Feedback)]) -> Result<()> {
        for chunk in events.chunks(CHUNK) {
            let mut attempt = 0;
            loop {
                match self.attempt(chunk).await? {
                    Outcome::Done => break,
                    Outcome::Replan if attempt < ATTEMPTS => {}
                    Outcome::Busy if attempt < ATTEMPTS => {
                        crate::retry::pause(attempt).await;
                    }
                    _ => return Err(Error::Busy),
                }
                attempt += 1;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl<T: Table + Clone> Consumer for FeedbackConsumer<T> {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    fn function(&self) -> &'static str {
        "mailfeedback"
    }

    async fn prepare(&self) {
        self.app.refresh_or_keep().await;
    }

    /// SES's event JSON (see [`parse`]), not an outbox event.
    fn parse(&self, body: &str) -> std::result::Result<Event, String> {
        parse(body)
    }

    async fn apply(&self, e: &Event) -> Result<()> {
        let f = feedback_of(e)?;
        self.apply_all(&[(e, &f)]).await
    }

    /// The batch in one transaction (its figures summed in one write); when
    /// that fails, each event on its own so that only the failing ones are
    /// retried by the queue.
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        let mut failed = Vec::new();
        let mut good = Vec::new();
        for (id, e) in batch {
            match feedback_of(e) {
                Ok(f) => good.push((id, e, f)),
                Err(err) => {
                    tracing::warn!(consumer = CONSUMER, message_id = %id, error = %err, "event failed; it will be retried");
                    failed.push(id.clone());
                }
            }
        }
        let events: Vec<(&Event, &Feedback)> = good.iter().map(|(_, e, f)| (*e, f)).collect();
        if let Err(err) = self.apply_all(&events).await {
            tracing::warn!(consumer = CONSUMER, error = %err, "batch failed; applying its events one by one");
            for (id, e, f) in &good {
                if let Err(err) = self.apply_all(&[(e, f)]).await {
                    tracing::warn!(consumer = CONSUMER, message_id = %id, event_id = %e.event_id, error = %err, "event failed; it will be retried");
                    failed.push((*id).clone());
                }
            }
        }
        failed
    }
}
