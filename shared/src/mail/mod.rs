//! Community emails: the `emails` consumer turns events into French mails
//! (plain text and HTML), sends them through the `Mailer` port (SES on AWS,
//! a mailbox directory locally), tracks unique clicks through signed
//! redirect links, and carries a one-click unsubscribe on every mail.
//!
//! Transactional mails (welcome, your idea is under review, the committee's
//! decision on your idea, progress of your idea, your idea merged into
//! another) always go; community mails (news of the ideas a member follows:
//! `crate::follows`; community news, a new contest or product test:
//! `start_news`) only with `email_opt_in` and the member's preference for
//! their kind (`MemberRow::wants`: `idea_updates`, `comment_digest`,
//! `community_news`).
//!
//! Sending is the one effect outside the table, so a mail is recorded
//! before it is sent. Its marker `DONE#email#{event}#{recipient}` is claimed
//! first (`state: sending`, a single-item conditional write: no other
//! request or event writes it), then the mail is sent, then the marker says
//! `sent`. The batch's mails are finalised at the end of the batch (marker
//! `done`, the member's sent record, and one of the mail's `STATS#nn`
//! shards counted once per mail and batch, not per copy). A redelivery skips `done` and `sent`
//! markers (finalising the latter), leaves a recent `sending` claim to the
//! worker that holds it, and sends again only when a claim is older than
//! [`CLAIM_LEASE_MS`] (its worker died between the claim and the send's
//! answer: the one case where a mail can go twice). A conflict or a
//! throttled write after the send never sends a mail again.
//!
//! The consumer also runs the pages of a merge's copy of votes and
//! followers (`merge.page`, `crate::merge`), the same way as it runs the
//! fan-out's pages: one bucket page per message, continued by an event.
//!
//! Every mail carries its member and mail ids as SES message tags
//! (`feedback::tags_header`), so SES's bounces and complaints name the
//! member; a member whose address bounced for good or complained is
//! suppressed (`MemberRow::mailable`) and gets no mail of any kind any more
//! (`feedback`).

pub mod dir;
pub mod feedback;
pub mod ses;
pub mod templates;

use crate::app::App;
use crate::domain::{now, IdeaId};
use crate::error::{Error, Result};
use crate::events::{marker_key, Event, Kind};
use crate::queue::Consumer;
use crate::store::{Cond, Item, Key, StoreError, Table, Update, Write};
use crate::{ideas, members};
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use tracing::Instrument;

pub const CONSUMER: &str = "email";
/// Voters mailed by one fan-out message (`mail.page`): one Query of a voter
/// bucket, one batch read of their profiles and at most this many mails,
/// well inside a 30 s consumer invocation (the bound is tested).
pub const FANOUT_PAGE: u32 = 50;
/// A `sending` claim older than this is taken over (its worker died): it
/// exceeds a consumer invocation (30 s timeout) and is shorter than the
/// queue's visibility timeout (180 s), so a redelivery takes it over.
pub const CLAIM_LEASE_MS: i64 = 60_000;

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// A mail sent in this batch, to be finalised with the batch.
struct Sent {
    /// The message it belongs to (so a failed finalisation fails it).
    message: usize,
    claim: Key,
    /// This delivery's claim, when its `sent` mark could not be written:
    /// finalising accepts the marker in that state too.
    claimed_ms: Option<i64>,
    mail_id: String,
    record: Option<Write>,
}

/// One mail to one recipient.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mail {
    /// The mail (template instance) this copy belongs to, for click rates.
    pub mail_id: String,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Extra headers (List-Unsubscribe, List-Unsubscribe-Post).
    pub headers: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("mail not sent: {0}")]
pub struct MailError(pub String);

/// The mail-sending port.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, mail: &Mail) -> std::result::Result<(), MailError>;
}

/// The IAM action [`ses::SesMailer`]'s `SendRawEmail` request needs; it
/// names the sending identity, and the configuration set when one is set.
pub const SEND_ACTION: &str = "ses:SendRawEmail";

/// Sends through the port, recording the send for the least-privilege
/// proof ([`crate::access`]): every mail goes through here.
pub async fn send<M: Mailer + ?Sized>(
    mailer: &M,
    mail: &Mail,
) -> std::result::Result<(), MailError> {
    if crate::access::recording() {
        crate::access::record(SEND_ACTION, "ses:identity", None, None);
        crate::access::record(SEND_ACTION, "ses:configuration-set", None, None);
    }
    mailer.send(mail).await
}

type HmacSha256 = Hmac<Sha256>;

fn sign(secret: &str, payload: &[u8]) -> String {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(payload);
    URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
}

/// A signed token `base64(payload).signature`.
pub fn token(secret: &str, payload: &Value) -> String {
    let p = URL_SAFE_NO_PAD.encode(payload.to_string());
    let s = sign(secret, p.as_bytes());
    format!("{p}.{s}")
}

/// Verifies a token and returns its payload.
pub fn verify(secret: &str, token: &str) -> Option<Value> {
    let (p, s) = token.split_once('.')?;
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return None;
    };
    mac.update(p.as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(s).ok()?).ok()?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).ok()?).ok()
}

pub fn unsubscribe_url(app_settings: &crate::config::Settings, member: &str) -> String {
    let t = token(
        &app_settings.link_secret,
        &json!({"u": member, "a": "unsubscribe"}),
    );
    format!("{}/unsubscribe/{t}", app_settings.public_url)
}

/// A tracked link: `/r/{token}` records the member's first click on this
/// mail, then redirects to `url`.
pub fn tracked_url(
    app_settings: &crate::config::Settings,
    mail_id: &str,
    member: &str,
    url: &str,
) -> String {
    let t = token(
        &app_settings.link_secret,
        &json!({"m": mail_id, "u": member, "l": url}),
    );
    format!("{}/r/{t}", app_settings.public_url)
}

/// A mail's figures are spread over this many items (`STATS#{00-15}`): a
/// welcome mail at launch is sent by every emails batch at once, and one
/// item would be written by all of them (conflicts). Readers sum the shards.
pub const STATS_SHARDS: u32 = 16;

fn stats_key(mail_id: &str, shard: u32) -> Key {
    Key::new(format!("MAIL#{mail_id}"), format!("STATS#{shard:02}"))
}

fn random_stats_shard() -> u32 {
    rand::Rng::random_range(&mut rand::rng(), 0..STATS_SHARDS)
}

/// The sum of a mail's figure shards.
async fn stats_sum<T: Table>(app: &App<T>, mail_id: &str) -> Result<(i64, i64)> {
    let keys: Vec<Key> = (0..STATS_SHARDS).map(|s| stats_key(mail_id, s)).collect();
    let (mut sent, mut clicks) = (0, 0);
    for i in app.table.get_many(&keys, true).await? {
        sent += i.get("sent").and_then(Value::as_i64).unwrap_or(0);
        clicks += i.get("unique_clicks").and_then(Value::as_i64).unwrap_or(0);
    }
    Ok((sent, clicks))
}

/// A mail's figures (sent, unique clicks): one BatchGetItem of its
/// [`STATS_SHARDS`] shards (brand reports, `crate::brands`).
pub async fn figures<T: Table>(app: &App<T>, mail_id: &str) -> Result<(i64, i64)> {
    stats_sum(app, mail_id).await
}

/// `sent + 1`; a community mail (not a personal notice to an author or the
/// committee) is also listed in gsi1 `MAILS` for `GET /insights`.
fn stats_update(mail_id: &str) -> Update {
    listed(mail_id, Update::default().add("sent", 1))
}

/// `u`, and for a community mail the shard's gsi1 `MAILS` entry.
fn listed(mail_id: &str, u: Update) -> Update {
    // Notices to one person (author, committee, moderation) are not
    // community mails: only these are listed in the insights.
    if ["-author", "-committee", "-moderation"]
        .iter()
        .any(|s| mail_id.ends_with(s))
    {
        u
    } else {
        // Every shard is listed; insights groups them by `mail_id`.
        u.set("gsi1pk", crate::insights::MAILS_PK)
            .set("gsi1sk", mail_id)
            .set("mail_id", mail_id)
    }
}

/// Records a click from a verified token; returns the target URL. Unique per
/// member per mail: the click record and the counter move together.
pub async fn click<T: Table>(app: &App<T>, token_str: &str) -> Result<String> {
    let p = verify(&app.settings().link_secret, token_str).ok_or(Error::NotFound("link"))?;
    let (Some(mail), Some(member), Some(url)) = (p["m"].as_str(), p["u"].as_str(), p["l"].as_str())
    else {
        return Err(Error::NotFound("link"));
    };
    let click_key = Key::new(format!("MAIL#{mail}"), format!("CLICK#{member}"));
    let mut rec = Item::new();
    rec.insert("pk".into(), json!(click_key.pk));
    rec.insert("sk".into(), json!(click_key.sk));
    rec.insert("at".into(), json!(now()));
    let mut writes = vec![
        Write::put_new(rec),
        Write::update(
            stats_key(mail, crate::votes::bucket(member) % STATS_SHARDS),
            listed(mail, Update::default().add("unique_clicks", 1)),
        ),
    ];
    // The member's activity counter (ambassadors), unless they were erased.
    if !mail.ends_with("-committee") && crate::domain::MemberId::parse(member).is_some() {
        writes.push(crate::ambassadors::counter_write(member, &[("clicks", 1)]));
    }
    match app.table.transact(writes.clone()).await {
        Ok(()) => Ok(url.to_owned()),
        // Clicked before: counted then.
        Err(e) if e.failed_on(&click_key) => Ok(url.to_owned()),
        Err(StoreError::ConditionFailed { .. }) => {
            writes.truncate(2);
            match app.table.transact(writes).await {
                Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(url.to_owned()),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The member an unsubscribe token is for (404 when it does not verify).
/// `GET /unsubscribe/{token}` only checks it: mail scanners follow links.
pub fn unsubscribe_member(
    app_settings: &crate::config::Settings,
    token_str: &str,
) -> Result<String> {
    let p = verify(&app_settings.link_secret, token_str).ok_or(Error::NotFound("link"))?;
    match (p["u"].as_str(), p["a"].as_str()) {
        (Some(member), Some("unsubscribe")) => Ok(member.to_owned()),
        _ => Err(Error::NotFound("link")),
    }
}

/// One-click unsubscribe from a verified token (`POST`, RFC 8058).
pub async fn unsubscribe<T: Table>(app: &App<T>, token_str: &str) -> Result<()> {
    let member = unsubscribe_member(&app.settings(), token_str)?;
    let key = crate::members::profile_key(&member);
    // Out of the community news index too (`members::news_index`).
    let u = members::out_of_news(
        Update::default()
            .set("email_opt_in", false)
            .set("email_opt_in_at", now()),
    );
    match app
        .table
        .transact(vec![Write::update(key, u).when(crate::store::Cond::Exists)])
        .await
    {
        Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Sent/unique-click figures of a mail.
pub async fn stats<T: Table>(app: &App<T>, mail_id: &str) -> Result<Value> {
    let (sent, clicks) = stats_sum(app, mail_id).await?;
    let rate = if sent > 0 {
        clicks as f64 / sent as f64
    } else {
        0.0
    };
    Ok(
        json!({"mail_id": mail_id, "sent": sent, "unique_clicks": clicks, "unique_click_rate": rate}),
    )
}

/// The committee's mailbox is a recipient, not a member.
const COMMITTEE_RECIPIENT: &str = "committee";

/// The member's record of a mail sent to them (GDPR export; erasure removes
/// the address): `MEMBER#{member} / MAIL#{sent_at}#{event}#{mail id}`,
/// written with the send's marker.
pub fn sent_record(member: &str, event_id: &str, mail: &Mail) -> Write {
    let at = now();
    let mut item = Item::new();
    item.insert("pk".into(), json!(crate::members::pk(member)));
    item.insert(
        "sk".into(),
        json!(format!("{SENT_PREFIX}{at}#{event_id}#{}", mail.mail_id)),
    );
    item.insert("mail_id".into(), json!(mail.mail_id));
    item.insert("event_id".into(), json!(event_id));
    item.insert("to".into(), json!(mail.to));
    item.insert("subject".into(), json!(mail.subject));
    item.insert("sent_at".into(), json!(at));
    Write::put(item)
}

/// Sort-key prefix of sent-mail records in a member's partition.
pub const SENT_PREFIX: &str = "MAIL#";

/// A rendered template as the mail sent to `member` at `to`: the
/// unsubscribe footer and the one-click `List-Unsubscribe` headers added.
pub fn compose(
    settings: &crate::config::Settings,
    to: &str,
    member: &str,
    t: templates::Rendered,
) -> Mail {
    let unsub = unsubscribe_url(settings, member);
    // Read and removed by SES: its bounce and complaint events carry them
    // (`feedback`).
    let tags = feedback::tags_header(member, &t.mail_id);
    Mail {
        mail_id: t.mail_id,
        to: to.to_owned(),
        from: settings.mail_from.clone(),
        subject: t.subject,
        text: format!("{}\n\n--\nNe plus recevoir les e-mails de la communauté : {unsub}\n", t.text),
        html: format!(
            "<!doctype html><html lang=\"fr\"><body>{}<hr><p style=\"font-size:small\"><a href=\"{}\">Ne plus recevoir les e-mails de la communauté</a></p></body></html>",
            t.html,
            templates::esc(&unsub)
        ),
        headers: vec![
            ("List-Unsubscribe".into(), format!("<{unsub}>")),
            ("List-Unsubscribe-Post".into(), "List-Unsubscribe=One-Click".into()),
            tags,
        ],
    }
}

/// Counts one more copy of a mail sent (the denominator of its click rate).
pub fn count_sent(mail_id: &str) -> Write {
    Write::update(
        stats_key(mail_id, random_stats_shard()),
        stats_update(mail_id),
    )
}

pub struct EmailsConsumer<T, M> {
    pub app: App<T>,
    pub mailer: M,
}

/// Whom a mail goes to.
struct Recipient {
    member: String,
    email: String,
    name: String,
}

impl<T: Table + Clone, M: Mailer> EmailsConsumer<T, M> {
    async fn member(&self, id: &str) -> Result<Option<(Recipient, bool)>> {
        let Some(mid) = crate::domain::MemberId::parse(id) else {
            return Ok(None);
        };
        match members::get(&self.app, &mid).await {
            // A permanent bounce or a complaint: no mail of any kind.
            Ok(m) if !m.mailable() => {
                tracing::info!(member = %m.id, suppressed = ?m.email_suppressed, "address suppressed: no mail");
                Ok(None)
            }
            Ok(m) => Ok(Some((
                Recipient {
                    member: m.id,
                    email: m.email,
                    name: m.display_name,
                },
                m.email_opt_in,
            ))),
            Err(Error::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Sends `t` to `r` once for this event; the mail is finalised with
    /// the batch (`finalise`).
    async fn deliver(
        &self,
        e: &Event,
        r: &Recipient,
        t: templates::Rendered,
        out: &mut Vec<Sent>,
        message: usize,
    ) -> Result<()> {
        let claim = marker_key(CONSUMER, &format!("{}#{}", e.event_id, r.member));
        let mail = compose(&self.app.settings(), &r.email, &r.member, t);
        let record =
            (r.member != COMMITTEE_RECIPIENT).then(|| sent_record(&r.member, &e.event_id, &mail));
        let mut sent = Sent {
            message,
            claim: claim.clone(),
            claimed_ms: None,
            mail_id: mail.mail_id.clone(),
            record,
        };
        // The same event twice in one batch (a relay retry): once is enough.
        if out.iter().any(|o| o.claim == claim) {
            return Ok(());
        }
        if let Some(m) = self.app.table.get(&claim, true).await? {
            match m.get("state").and_then(Value::as_str) {
                // Sent by an earlier delivery whose finalisation failed.
                Some("sent") => {
                    out.push(sent);
                    return Ok(());
                }
                Some("sending") => {
                    let at = m.get("claimed_ms").and_then(Value::as_i64).unwrap_or(0);
                    if now_ms() - at < CLAIM_LEASE_MS {
                        // Another worker holds it: try again later.
                        return Err(Error::Busy);
                    }
                }
                // `done`, or a marker of before claims: sent and counted.
                _ => return Ok(()),
            }
        }
        let mine = now_ms();
        let mut item = Item::new();
        item.insert("pk".into(), json!(claim.pk));
        item.insert("sk".into(), json!(claim.sk));
        item.insert("state".into(), json!("sending"));
        item.insert("claimed_ms".into(), json!(mine));
        item.insert("at".into(), json!(now()));
        // A claim is the mail's exactly-once marker: kept as long as one.
        item.insert(
            crate::store::TTL.into(),
            json!(
                time::OffsetDateTime::now_utc().unix_timestamp() + crate::events::MARKER_TTL_SECS
            ),
        );
        let free = Cond::NotExists.or(Cond::Eq("state".into(), json!("sending")).and(
            Cond::LessThan("claimed_ms".into(), now_ms() - CLAIM_LEASE_MS),
        ));
        match single(&self.app.table, Write::put(item).when(free)).await {
            Ok(()) => {}
            // Claimed or sent by another delivery meanwhile.
            Err(Error::Store(StoreError::ConditionFailed { .. })) => return Err(Error::Busy),
            Err(err) => return Err(err),
        }
        if let Err(err) = send(&self.mailer, &mail).await {
            // Not sent: free the claim so that the retry sends it.
            let release = Write::update(claim.clone(), Update::default().set("claimed_ms", 0));
            let _ = single(&self.app.table, release).await;
            return Err(Error::Store(StoreError::unavailable(err)));
        }
        crate::metrics::record_email_sent(&mail.mail_id);
        // The mail is out: say so on its own marker (no other writer). If
        // even that is refused, the batch's finalisation still finalises
        // this claim (it knows it by `claimed_ms`), so the mail is never
        // sent again because of it.
        let u = Update::default().set("state", "sent");
        let mark = Write::update(claim, u).when(Cond::Eq("claimed_ms".into(), json!(mine)));
        if let Err(err) = single(&self.app.table, mark).await {
            tracing::warn!(error = %err, "sent mark not written; the batch finalises the claim");
            sent.claimed_ms = Some(mine);
        }
        out.push(sent);
        Ok(())
    }

    /// Finalises the batch's sent mails: markers `done`, the members' sent
    /// records and each mail's `sent` count, as few transactions as DynamoDB
    /// allows (100 actions); returns the messages whose mails could not be
    /// finalised (they are delivered again and finalised then, not re-sent).
    async fn finalise(&self, sent: Vec<Sent>) -> Vec<usize> {
        let mut failed = Vec::new();
        let mut chunk: Vec<Sent> = Vec::new();
        let flush = |chunk: Vec<Sent>| async move {
            let mut counts: std::collections::BTreeMap<String, i64> = Default::default();
            let mut writes = Vec::new();
            for s in &chunk {
                *counts.entry(s.mail_id.clone()).or_default() += 1;
                let mut ours = Cond::Eq("state".into(), json!("sent"));
                if let Some(ms) = s.claimed_ms {
                    ours = ours.or(Cond::Eq("state".into(), json!("sending"))
                        .and(Cond::Eq("claimed_ms".into(), json!(ms))));
                }
                writes.push(
                    Write::update(s.claim.clone(), Update::default().set("state", "done"))
                        .when(ours),
                );
                if let Some(r) = &s.record {
                    writes.push(r.clone());
                }
            }
            // Each attempt counts on fresh random shards: a retry after a
            // conflict does not go back to the shard another batch holds.
            let with_stats = || {
                let mut w = writes.clone();
                for (mail_id, n) in &counts {
                    let mut u = stats_update(mail_id);
                    u.add = vec![("sent".into(), *n)];
                    w.push(Write::update(stats_key(mail_id, random_stats_shard()), u));
                }
                w
            };
            match retrying_with(&self.app.table, with_stats).await {
                Ok(()) => Vec::new(),
                // Another delivery finalised one of them: finalise the
                // others one by one.
                Err(Error::Store(StoreError::ConditionFailed { .. })) if chunk.len() > 1 => {
                    let mut failed = Vec::new();
                    for s in chunk {
                        let m = s.message;
                        if Box::pin(self.finalise(vec![s])).await.is_empty() {
                            continue;
                        }
                        failed.push(m);
                    }
                    failed
                }
                Err(Error::Store(StoreError::ConditionFailed { .. })) => Vec::new(),
                Err(e) => {
                    tracing::warn!(error = %e, "sent mails not finalised; their messages are retried (the mails are not sent again)");
                    chunk.iter().map(|s| s.message).collect()
                }
            }
        };
        for s in sent {
            let distinct = chunk
                .iter()
                .chain(std::iter::once(&s))
                .map(|c| c.mail_id.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let actions: usize = chunk
                .iter()
                .chain(std::iter::once(&s))
                .map(|c| 1 + usize::from(c.record.is_some()))
                .sum();
            if actions + distinct > crate::store::limits::MAX_TRANSACTION_ACTIONS {
                failed.extend(flush(std::mem::take(&mut chunk)).await);
            }
            chunk.push(s);
        }
        if !chunk.is_empty() {
            failed.extend(flush(chunk).await);
        }
        failed
    }

    /// Writes the first page events of fan-out `e` with its marker
    /// (`{event}.fanout`) in one transaction, so a redelivery starts
    /// nothing twice: a failed condition is the marker of an earlier
    /// delivery that started them.
    async fn start_pages(&self, e: &Event, pages: impl Iterator<Item = Event>) -> Result<()> {
        let mut writes = vec![crate::events::consumed_marker(
            CONSUMER,
            &format!("{}.fanout", e.event_id),
        )];
        writes.extend(pages.map(|p| p.write()));
        match crate::error::commit(&self.app.table, writes, None).await {
            Ok(()) | Err(Error::Store(StoreError::ConditionFailed { .. })) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Starts the fan-out of `e` (a decision, progress or answer) to the idea's
    /// followers (`crate::follows`): one `mail.page` event per voter bucket
    /// and one per follower bucket, written with the fan-out's marker in one
    /// transaction (65 writes), so a redelivery starts nothing twice. Each
    /// page mails its members and writes the next page's event.
    async fn start_fanout(&self, e: &Event) -> Result<()> {
        let pages = (0..crate::votes::VOTER_BUCKETS).flat_map(|b| {
            [
                page_event(e, b, 0, None),
                follower_page_event(e, b, 0, None),
            ]
        });
        self.start_pages(e, pages).await
    }

    /// Starts the mailing of community news `e` (`community.news`): one
    /// `mail.page` event per bucket of the news index
    /// (`members::NEWS_BUCKETS`), written with the fan-out's marker in one
    /// transaction (17 writes), so a redelivery starts nothing twice.
    async fn start_news(&self, e: &Event) -> Result<()> {
        let pages = (0..members::NEWS_BUCKETS).map(|b| news_page_event(e, b, 0, None));
        self.start_pages(e, pages).await
    }

    /// One page of community news: up to [`FANOUT_PAGE`] members of one
    /// bucket of the news index (gsi1 `NEWS#{bucket}`, after the page's
    /// `after` member), whose profiles are then read again (one
    /// BatchGetItem): what the profile says now wins over the index (a
    /// preference turned off since, an erasure under way). Each member's
    /// mail is claimed by the event and the member, as any mail; then the
    /// next page's event, with this page's marker.
    async fn news_page(
        &self,
        e: &Event,
        page: &FanoutPage,
        out: &mut Vec<Sent>,
        message: usize,
    ) -> Result<()> {
        let source = &page.source;
        let pk = members::news_pk(page.bucket);
        let start = page.after.as_ref().map(|m| {
            let mut k = Item::new();
            k.insert("pk".into(), json!(crate::members::pk(m)));
            k.insert("sk".into(), json!("PROFILE"));
            k.insert("gsi1pk".into(), json!(pk));
            k.insert("gsi1sk".into(), json!(m));
            k
        });
        let found = self
            .app
            .table
            .query(
                &crate::store::Query::new(crate::store::Index::Gsi1, pk.clone())
                    .limit(FANOUT_PAGE)
                    .start_after(start),
            )
            .await?;
        let listed: Vec<String> = found
            .items
            .iter()
            .filter_map(|i| i.get("gsi1sk").and_then(Value::as_str))
            .map(str::to_owned)
            .collect();
        let s = &self.app.settings();
        for r in members::opted_in(&self.app, &listed).await? {
            if !r.wants(members::Notice::CommunityNews) {
                continue;
            }
            let t = templates::for_news(s, source, &r.display_name, &r.id);
            let to = Recipient {
                member: r.id,
                email: r.email,
                name: r.display_name,
            };
            self.deliver(source, &to, t, out, message).await?;
        }
        let Some(last) = found
            .last_key
            .as_ref()
            .and_then(|k| k.get("gsi1sk"))
            .and_then(Value::as_str)
        else {
            return Ok(());
        };
        let next = news_page_event(source, page.bucket, page.page + 1, Some(last));
        self.next_page(e, next).await
    }

    /// Starts the mailing of a challenge's results (`challenge.decided`):
    /// one `mail.page` event per bucket of its participants
    /// (`challenges::BUCKETS`), written with the fan-out's marker in one
    /// transaction (17 writes), so a redelivery starts nothing twice.
    async fn start_challenge(&self, e: &Event) -> Result<()> {
        let pages = (0..crate::challenges::BUCKETS).map(|b| challenge_page_event(e, b, 0, None));
        self.start_pages(e, pages).await
    }

    /// One page of a challenge's results: up to [`FANOUT_PAGE`] participants
    /// of one bucket (`CHPART#{challenge}#{bucket}`, after `after`). Authors
    /// (winners among them) are told as the contest winners are (it is about
    /// their own proposal); voters only when they accept community mails.
    /// Each member's mail is claimed by the event and the member, so a
    /// member is mailed once; then the next page's event, with this page's
    /// marker.
    async fn challenge_page(
        &self,
        e: &Event,
        page: &FanoutPage,
        out: &mut Vec<Sent>,
        message: usize,
    ) -> Result<()> {
        let source = &page.source;
        let challenge = source.data["challenge_id"].as_str().unwrap_or_default();
        let pk = crate::challenges::participants_pk(challenge, page.bucket);
        let start = page.after.as_ref().map(|m| {
            let mut k = Item::new();
            k.insert("pk".into(), json!(pk));
            k.insert("sk".into(), json!(m));
            k
        });
        let found = self
            .app
            .table
            .query(
                &crate::store::Query::new(crate::store::Index::Primary, pk.clone())
                    .limit(FANOUT_PAGE)
                    .start_after(start),
            )
            .await?;
        let winners: std::collections::HashSet<&str> = source.data["winners"]
            .as_array()
            .map(|a| a.iter().filter_map(|w| w["member_id"].as_str()).collect())
            .unwrap_or_default();
        let s = &self.app.settings();
        for i in &found.items {
            let Some(m) = i.get("sk").and_then(Value::as_str) else {
                continue;
            };
            let author = i.get("author").and_then(Value::as_bool).unwrap_or(false);
            if let Some((r, opt_in)) = self.member(m).await? {
                if !(author || winners.contains(m) || opt_in) {
                    continue;
                }
                let t =
                    templates::for_challenge(s, source, &r.name, &r.member, winners.contains(m));
                self.deliver(source, &r, t, out, message).await?;
            }
        }
        let Some(last) = found
            .last_key
            .as_ref()
            .and_then(|k| k.get("sk"))
            .and_then(Value::as_str)
        else {
            return Ok(());
        };
        let next = challenge_page_event(source, page.bucket, page.page + 1, Some(last));
        self.next_page(e, next).await
    }

    /// Writes the next page's event with this page's marker, once.
    async fn next_page(&self, e: &Event, next: Event) -> Result<()> {
        let writes = vec![
            crate::events::consumed_marker(CONSUMER, &e.event_id),
            next.write(),
        ];
        match crate::error::commit(&self.app.table, writes, None).await {
            // Continued by an earlier delivery of this page.
            Ok(()) | Err(Error::Store(StoreError::ConditionFailed { .. })) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// One page of a fan-out: up to [`FANOUT_PAGE`] voters (or follow
    /// records) of one bucket, after the page's `after` member, each
    /// follower mailed once (the mail's claim is keyed by the source event
    /// and the member, as for any mail); then the next page's event, with
    /// this page's marker, in one transaction.
    ///
    /// A voters' page reads the page's follow records (one BatchGetItem of
    /// the same partition's bucket) and leaves out the voters who
    /// unfollowed, or set `auto_follow: false` without following. A
    /// followers' page leaves out the unfollowed records and the followers
    /// who voted (one BatchGetItem of their votes): their voters' page
    /// mails them. Each member is mailed once either way: the claim.
    async fn mail_page(&self, e: &Event, out: &mut Vec<Sent>, message: usize) -> Result<()> {
        let page = FanoutPage::parse(e)?;
        if page.source.kind == Kind::CommunityNews {
            return self.news_page(e, &page, out, message).await;
        }
        if page.source.kind == Kind::ChallengeDecided {
            return self.challenge_page(e, &page, out, message).await;
        }
        let source = &page.source;
        let Some(idea_id) = source.idea_id.as_deref().and_then(IdeaId::parse) else {
            return Err(malformed("the source event names no idea"));
        };
        let idea = match ideas::load(&self.app, &idea_id, true).await {
            Ok(i) => i,
            Err(Error::NotFound(_)) => return Ok(()),
            Err(err) => return Err(err),
        };
        let pk = if page.followers {
            crate::follows::followers_pk(&idea.id, page.bucket)
        } else {
            crate::votes::voters_pk(&idea.id, page.bucket)
        };
        let start = page.after.as_ref().map(|m| {
            let mut k = Item::new();
            k.insert("pk".into(), json!(pk));
            k.insert("sk".into(), json!(m));
            k
        });
        let found = self
            .app
            .table
            .query(
                &crate::store::Query::new(crate::store::Index::Primary, pk.clone())
                    .limit(FANOUT_PAGE)
                    .start_after(start),
            )
            .await?;
        let listed: Vec<String> = found
            .items
            .iter()
            .filter(|i| !page.followers || crate::follows::state_of(Some(i)) == Some(true))
            .filter_map(|i| i.get("member_id").and_then(Value::as_str))
            .filter(|m| *m != idea.author_id)
            .map(str::to_owned)
            .collect();
        // Whom this page mails (module doc of `crate::follows`).
        let (records, voted) = if page.followers {
            let voted = crate::follows::voters_among(&self.app, &idea_id, &listed).await?;
            (Default::default(), voted)
        } else {
            let records = crate::follows::records_of(&self.app, &idea.id, &listed).await?;
            (records, Default::default())
        };
        let candidates: Vec<String> = listed
            .into_iter()
            .filter(|m| !voted.contains(m) && records.get(m) != Some(&false))
            .collect();
        let s = &self.app.settings();
        for r in members::opted_in(&self.app, &candidates).await? {
            let follows = page.followers
                || crate::follows::follows(records.get(&r.id).copied(), true, r.auto_follow);
            if !follows || !r.wants(members::Notice::IdeaUpdates) {
                continue;
            }
            let t = templates::for_voter(s, source, &idea, &r.display_name, &r.id);
            let to = Recipient {
                member: r.id,
                email: r.email,
                name: r.display_name,
            };
            self.deliver(source, &to, t, out, message).await?;
        }
        let Some(last) = found
            .last_key
            .as_ref()
            .and_then(|k| k.get("sk"))
            .and_then(Value::as_str)
        else {
            return Ok(());
        };
        let next = if page.followers {
            follower_page_event(source, page.bucket, page.page + 1, Some(last))
        } else {
            page_event(source, page.bucket, page.page + 1, Some(last))
        };
        self.next_page(e, next).await
    }
}

impl<T: Table + Clone, M: Mailer> EmailsConsumer<T, M> {
    /// One page of an event's reminder (`roundtable.reminder`): the members
    /// registered among one page of its registrations, each mailed once
    /// (the claim is keyed by the reminder's id and the member, whichever
    /// page or run mails them); then the next page's event, with this
    /// page's marker (as the fan-out's pages).
    async fn reminder_page(&self, e: &Event, out: &mut Vec<Sent>, message: usize) -> Result<()> {
        let (Some(id), Some(reminder)) = (
            e.data["roundtable_id"].as_str(),
            e.data["reminder_id"].as_str(),
        ) else {
            return Err(malformed("a reminder names no event"));
        };
        let (members, next) =
            crate::roundtables::reminder_page(&self.app, id, e.data["after"].as_str()).await?;
        let mut source = e.clone();
        source.event_id = reminder.to_owned();
        let s = &self.app.settings();
        for m in members {
            if let Some((r, _)) = self.member(&m).await? {
                let t = crate::roundtables::reminder_mail(s, e, &r.name, &r.member);
                self.deliver(&source, &r, t, out, message).await?;
            }
        }
        let Some(after) = next else {
            return Ok(());
        };
        let page = e.data["page"].as_u64().unwrap_or(0) as u32 + 1;
        let mut n = e.clone();
        n.event_id = format!("{reminder}.p{page}");
        n.data["page"] = json!(page);
        n.data["after"] = json!(after);
        self.next_page(e, n).await
    }
}

/// Whose page a fan-out page event is: its letter in the event id, and
/// whether it belongs to an idea.
#[derive(Clone, Copy)]
enum PageOf {
    Voters,
    Followers,
    News,
    Challenge,
}

/// The event of one fan-out page. Its id is derived from the source event,
/// the list, the bucket and the page number, so every delivery of a page
/// names the same next page.
fn fanout_page_event(
    of: PageOf,
    source: &Event,
    bucket: u32,
    page: u32,
    after: Option<&str>,
) -> Event {
    let (letter, of_idea) = match of {
        PageOf::Voters => ('b', true),
        PageOf::Followers => ('f', true),
        PageOf::News => ('n', false),
        PageOf::Challenge => ('c', false),
    };
    let mut data = json!({"source": source, "bucket": bucket, "page": page, "after": after});
    if matches!(of, PageOf::Followers) {
        data["followers"] = json!(true);
    }
    Event {
        event_id: format!("{}.{letter}{bucket:02}.p{page}", source.event_id),
        kind: Kind::MailPage,
        at: source.at.clone(),
        member_id: source.member_id.clone(),
        idea_id: if of_idea {
            source.idea_id.clone()
        } else {
            None
        },
        data,
    }
}

/// The event of one fan-out page of an idea's voters (bucket `bucket`,
/// after member `after`).
pub fn page_event(source: &Event, bucket: u32, page: u32, after: Option<&str>) -> Event {
    fanout_page_event(PageOf::Voters, source, bucket, page, after)
}

/// [`page_event`] of the idea's follow records (`crate::follows`).
pub fn follower_page_event(source: &Event, bucket: u32, page: u32, after: Option<&str>) -> Event {
    fanout_page_event(PageOf::Followers, source, bucket, page, after)
}

/// The event of one page of community news `source` (`community.news`):
/// one bucket of the news index (`members::news_pk`), after member `after`.
pub fn news_page_event(source: &Event, bucket: u32, page: u32, after: Option<&str>) -> Event {
    fanout_page_event(PageOf::News, source, bucket, page, after)
}

/// The event of one page of a challenge's results `source`
/// (`challenge.decided`): one bucket of its participants, after `after`.
pub fn challenge_page_event(source: &Event, bucket: u32, page: u32, after: Option<&str>) -> Event {
    fanout_page_event(PageOf::Challenge, source, bucket, page, after)
}

/// A `mail.page` event's details.
#[derive(Deserialize)]
struct FanoutPage {
    source: Event,
    bucket: u32,
    page: u32,
    #[serde(default)]
    after: Option<String>,
    /// A page of follow records (absent: of voters, as before follows).
    #[serde(default)]
    followers: bool,
}

impl FanoutPage {
    fn parse(e: &Event) -> Result<FanoutPage> {
        let p: FanoutPage = serde_json::from_value(e.data.clone())
            .map_err(|err| malformed(&format!("unreadable page: {err}")))?;
        let buckets = match p.source.kind {
            Kind::IdeaDecided | Kind::IdeaProgressed | Kind::IdeaAnswered => {
                crate::votes::VOTER_BUCKETS
            }
            Kind::CommunityNews if !p.followers => members::NEWS_BUCKETS,
            Kind::ChallengeDecided if !p.followers => crate::challenges::BUCKETS,
            _ => 0,
        };
        if p.bucket >= buckets {
            return Err(malformed("bucket out of range or not a fan-out kind"));
        }
        Ok(p)
    }
}

/// A message no delivery can apply: it fails every time and so reaches the
/// dead-letter queue, with this in the log.
fn malformed(why: &str) -> Error {
    tracing::error!(why, "malformed mail.page event");
    Error::Store(StoreError::Invalid(format!(
        "malformed mail.page event: {why}"
    )))
}

/// One write, retried in process when throttled or conflicting.
async fn single<T: Table>(table: &T, w: Write) -> Result<()> {
    retrying(table, vec![w]).await
}

/// A write group, run again in process (jittered backoff, up to ~2 s in
/// all) when a conflict or throttling cancelled it: at launch the new
/// table's write limit throttles whole seconds, and a batch given back for
/// that would be received again and again until it reached the dead-letter
/// queue although nothing was wrong with it.
async fn retrying<T: Table>(table: &T, writes: Vec<Write>) -> Result<()> {
    retrying_with(table, || writes.clone()).await
}

/// [`retrying`], with the group built again for each attempt.
async fn retrying_with<T: Table>(table: &T, writes: impl Fn() -> Vec<Write>) -> Result<()> {
    let mut attempt = 0u32;
    loop {
        match table.transact(writes()).await {
            Err(StoreError::Conflict | StoreError::Throttled) if attempt < 8 => {
                crate::retry::pause(attempt).await;
                attempt += 1;
            }
            other => return Ok(other?),
        }
    }
}

/// Whether an event's failure is the store's load (throttled reads or
/// writes, conflicts), worth another try in process before the message goes
/// back to the queue.
fn transient(e: &Error) -> bool {
    matches!(
        e,
        Error::Store(StoreError::Throttled | StoreError::Conflict)
    )
}

/// Attempts of one event in a batch when the store is throttling.
const EVENT_ATTEMPTS: u32 = 4;

#[async_trait]
impl<T: Table + Clone, M: Mailer> Consumer for EmailsConsumer<T, M> {
    fn name(&self) -> &'static str {
        CONSUMER
    }
    fn function(&self) -> &'static str {
        "emails"
    }

    async fn prepare(&self) {
        self.app.refresh_or_keep().await;
    }

    async fn apply(&self, e: &Event) -> Result<()> {
        let mut sent = Vec::new();
        let r = self.apply_into(e, &mut sent, 0).await;
        if !self.finalise(sent).await.is_empty() {
            return Err(Error::Busy);
        }
        r
    }

    /// Every event of the batch, then one finalisation for all the mails
    /// the batch sent (one `STATS` write per mail per batch).
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        let mut sent = Vec::new();
        let mut failed = std::collections::BTreeSet::new();
        for (i, (id, e)) in batch.iter().enumerate() {
            let span = tracing::info_span!("message", consumer = CONSUMER, message_id = %id, event_id = %e.event_id, kind = e.kind.as_str());
            let mut attempt = 1;
            let outcome = loop {
                match self
                    .apply_into(e, &mut sent, i)
                    .instrument(span.clone())
                    .await
                {
                    Err(err) if transient(&err) && attempt < EVENT_ATTEMPTS => {
                        // What it claimed or sent is kept (claims, `sent`):
                        // another try sends nothing twice.
                        let ms = rand::Rng::random_range(&mut rand::rng(), 50..150u64) << attempt;
                        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            if let Err(err) = outcome {
                tracing::warn!(consumer = CONSUMER, message_id = %id, event_id = %e.event_id, error = %crate::observe::redact(&err.to_string()), "event failed; it will be retried");
                failed.insert(i);
            }
        }
        failed.extend(self.finalise(sent).await);
        failed.into_iter().map(|i| batch[i].0.clone()).collect()
    }
}

impl<T: Table + Clone, M: Mailer> EmailsConsumer<T, M> {
    async fn apply_into(&self, e: &Event, out: &mut Vec<Sent>, message: usize) -> Result<()> {
        let s = &self.app.settings();
        match e.kind {
            Kind::MemberSignedUp => {
                if let Some((r, _)) = self.member(&e.member_id).await? {
                    let t = templates::welcome(s, &r.name, &e.event_id, &r.member);
                    self.deliver(e, &r, t, out, message).await?;
                }
                Ok(())
            }
            Kind::IdeaReachedThreshold
            | Kind::IdeaDecided
            | Kind::IdeaProgressed
            | Kind::IdeaAnswered => {
                let Some(idea_id) = e.idea_id.as_deref().and_then(IdeaId::parse) else {
                    return Ok(());
                };
                // With its body: the committee's mail quotes it.
                let idea = match ideas::load_full(&self.app, &idea_id, true).await {
                    Ok(i) => i,
                    Err(Error::NotFound(_)) => return Ok(()),
                    Err(err) => return Err(err),
                };
                if let Some((author, _)) = self.member(&idea.author_id).await? {
                    let t = templates::for_author(s, e, &idea, &author.name, &author.member);
                    self.deliver(e, &author, t, out, message).await?;
                }
                if e.kind == Kind::IdeaReachedThreshold {
                    let committee = Recipient {
                        member: COMMITTEE_RECIPIENT.into(),
                        email: s.committee_email.clone(),
                        name: "Comité".into(),
                    };
                    let t = templates::for_committee(s, e, &idea);
                    self.deliver(e, &committee, t, out, message).await?;
                } else {
                    // The voters, in pages: one queue message per page.
                    self.start_fanout(e).await?;
                }
                Ok(())
            }
            Kind::MailPage => self.mail_page(e, out, message).await,
            // A new contest or product test: mailed in pages of the news index.
            Kind::CommunityNews => self.start_news(e).await,
            // A challenge's results: every participant, in pages.
            Kind::ChallengeDecided => self.start_challenge(e).await,
            Kind::ContestDrawn | Kind::TestersSelected => {
                let targets: Vec<(String, Option<String>)> = if e.kind == Kind::ContestDrawn {
                    e.data["winners"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|w| {
                                    Some((
                                        w["member_id"].as_str()?.to_owned(),
                                        w["prize"].as_str().map(str::to_owned),
                                    ))
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                } else {
                    e.data["members"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|m| Some((m.as_str()?.to_owned(), None)))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                for (member, prize) in targets {
                    if let Some((r, _)) = self.member(&member).await? {
                        let t = templates::for_campaign(s, e, &r.name, prize.as_deref());
                        self.deliver(e, &r, t, out, message).await?;
                    }
                }
                Ok(())
            }
            // New comments on the ideas of authors who opted in: recorded
            // for the next digest (`crate::digests`), not mailed one by one.
            Kind::CommentPosted => crate::digests::record(&self.app, e).await,
            // The loyalty programme's answer to a redemption (loyalty.rs).
            Kind::RedemptionAnswered => {
                if let Some((r, _)) = self.member(&e.member_id).await? {
                    let t = templates::for_redemption(s, e, &r.name, &r.member);
                    self.deliver(e, &r, t, out, message).await?;
                }
                Ok(())
            }
            // The loyalty programme did not recognise the member's card (cards.rs).
            Kind::MemberCardRejected => {
                if let Some((r, _)) = self.member(&e.member_id).await? {
                    let t = templates::for_card_rejected(s, e, &r.name, &r.member);
                    self.deliver(e, &r, t, out, message).await?;
                }
                Ok(())
            }
            // Moderation: the author is told, with the moderator's reason.
            Kind::ContentHidden | Kind::ContentRestored => {
                if let Some((r, _)) = self.member(&e.member_id).await? {
                    let t = templates::for_moderation(s, e, &r.name, &r.member);
                    self.deliver(e, &r, t, out, message).await?;
                }
                Ok(())
            }
            // A merge (`crate::merge`): the copy of the votes and followers
            // starts first (the essential effect; a mail that fails does not
            // hold it), then the author is told, with the reason.
            Kind::IdeaMerged => {
                crate::merge::start_copy(&self.app, e).await?;
                if let Some((r, _)) = self.member(&e.member_id).await? {
                    let t = templates::for_merged(s, e, &r.name, &r.member);
                    self.deliver(e, &r, t, out, message).await?;
                }
                Ok(())
            }
            Kind::MergePage => crate::merge::copy_page(&self.app, e).await,
            // Events and round tables (`crate::roundtables`).
            Kind::RoundtablePromoted => {
                if let Some((r, _)) = self.member(&e.member_id).await? {
                    let t = crate::roundtables::promoted_mail(s, e, &r.name, &r.member);
                    self.deliver(e, &r, t, out, message).await?;
                }
                Ok(())
            }
            Kind::RoundtableReminder => self.reminder_page(e, out, message).await,
            _ => Ok(()),
        }
    }
}
