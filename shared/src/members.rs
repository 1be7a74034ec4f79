//! Members: sign-up (with consent records and soft-launch invites), profile.
//!
//! Keys: `MEMBER#{sub} / PROFILE` for the member; `INVITE#{code} / INVITE`
//! for an invite code.
//!
//! The profile is in gsi1 `NEWS#{bucket 00-15}` / `{member id}` exactly
//! while the member wants community news ([`news_index`]: `email_opt_in`,
//! `community_news` on, address not suppressed, not erased): the sparse
//! list the emails consumer reads to mail community news without a scan
//! (`mail::start_news`). Every write that changes one of those attributes
//! sets or removes the two index attributes in the same write: sign-up,
//! `PATCH /members/me`, the one-click unsubscribe, a suppression
//! (`mail::feedback`) and erasure (`gdpr`).
//!
//! A loyalty card is linked `pending` (`loyalty_card_status`, with its
//! link's id in `loyalty_card_link`) until the loyalty programme confirms
//! it (cards.rs): its link and the `member.card_linked` event are written in
//! the transaction that sets the card and its guard.

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{now, DisplayName, Email, Errors, FieldError, LoyaltyCard, MemberId};
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::receipt::Receipt;
use crate::store::{Cond, Item, Key, StoreError, Table, Update, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const PUBLIC_COHORT: &str = "public";
pub const DEFAULT_LEVEL: &str = "member";

/// The partition of everything a member owns: `MEMBER#{id}` (profile,
/// ledger, caps, redemptions, score, receipts; and the gsi3 partition of
/// their votes, follows and contributions). The only place the prefix is
/// written (a test fails when another module formats it).
pub fn pk(member: &str) -> String {
    format!("{MEMBER_PREFIX}{member}")
}

/// The member id of a [`pk`], or `None` for another entity's key.
pub fn id_of_pk(pk: &str) -> Option<&str> {
    pk.strip_prefix(MEMBER_PREFIX)
}

const MEMBER_PREFIX: &str = "MEMBER#";

pub fn key(id: &MemberId) -> Key {
    profile_key(id.as_str())
}

/// A member's profile row, by a member id read from an event or a key.
pub fn profile_key(member: &str) -> Key {
    Key::new(pk(member), "PROFILE")
}

pub fn invite_key(code: &str) -> Key {
    Key::new(format!("INVITE#{code}"), "INVITE")
}

/// The guard that links a loyalty card to one member: keyed by the card's
/// SHA-256, so the number itself is not in the key. Written with the
/// condition that it is absent in the transaction that sets the card.
pub fn card_key(card: &str) -> Key {
    Key::new(format!("CARD#{}", card_hash(card)), "CARD")
}

/// A loyalty card's SHA-256 in hex: how the card is named in keys, so the
/// number itself never is.
pub fn card_hash(card: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(card.as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Partitions of the community news index (gsi1 `NEWS#{00-15}`): one
/// fan-out chain each, and a member's index writes spread over them.
pub const NEWS_BUCKETS: u32 = 16;

/// The news index partition of a bucket.
pub fn news_pk(bucket: u32) -> String {
    format!("NEWS#{bucket:02}")
}

/// The news index bucket of a member.
pub fn news_bucket(member: &str) -> u32 {
    crate::votes::bucket(member) % NEWS_BUCKETS
}

/// The profile's gsi1 key in the community news index, when the member
/// wants community news (`MemberRow::wants(Notice::CommunityNews)`, not
/// erased); None: out of the index.
pub fn news_index(row: &MemberRow) -> Option<(String, String)> {
    (row.erased_at.is_none() && row.wants(Notice::CommunityNews))
        .then(|| (news_pk(news_bucket(&row.id)), row.id.clone()))
}

/// `u`, with the profile put in the news index (`Some`) or taken out.
pub fn with_news_index(u: Update, index: Option<(String, String)>) -> Update {
    match index {
        Some((pk, sk)) => u.set("gsi1pk", pk).set("gsi1sk", sk),
        None => out_of_news(u),
    }
}

/// `u`, with the profile taken out of the news index (an opt-out, a
/// suppression, an erasure: always right, whatever else the row says).
pub fn out_of_news(u: Update) -> Update {
    u.remove("gsi1pk").remove("gsi1sk")
}

fn card_guard(card: &str, member: &str) -> Write {
    let k = card_key(card);
    let mut item = Item::new();
    item.insert("pk".into(), json!(k.pk));
    item.insert("sk".into(), json!(k.sk));
    item.insert("member_id".into(), json!(member));
    Write::put_new(item)
}

/// Frees a card guard, only if it is this member's (or already gone).
pub fn free_card(card: &str, member: &str) -> Write {
    Write::Delete {
        key: card_key(card),
        cond: Some(Cond::NotExists.or(Cond::Eq("member_id".into(), json!(member)))),
    }
}

fn card_taken() -> Error {
    Error::ConflictOn(FieldError::new(
        "loyalty_card",
        "this loyalty card is already linked to another member account",
    ))
}

/// Whether a stored profile is erased (GDPR) or being erased: such a
/// member is treated as absent everywhere.
pub fn is_closed(item: &Item) -> bool {
    item.contains_key("erased_at") || item.contains_key("erasing_at")
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub accept_terms_version: Option<String>,
    pub email_opt_in: Option<bool>,
    pub loyalty_card: Option<String>,
    pub invite_code: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    pub display_name: Option<String>,
    pub email_opt_in: Option<bool>,
    pub loyalty_card: Option<String>,
    /// Opt-in to the digest of new comments on the member's ideas.
    pub comment_digest: Option<bool>,
    /// Whether voting or commenting follows the idea (`crate::follows`).
    pub auto_follow: Option<bool>,
    pub notifications: Option<NotificationsPatch>,
}

/// `PATCH /members/me {"notifications":{...}}`: each preference optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsPatch {
    pub idea_updates: Option<bool>,
    pub comment_digest: Option<bool>,
    pub community_news: Option<bool>,
}

/// The member's mail preferences as shown (`notifications` on Member).
/// Each refines `email_opt_in` (the consent to community mails, which the
/// one-click unsubscribe revokes): a mail of a kind goes only with both.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Notifications {
    /// Answers, decisions and progress of the ideas the member follows
    /// (default on).
    pub idea_updates: bool,
    /// The digest of new comments on the member's ideas (default off).
    pub comment_digest: bool,
    /// Community news: mails about the community at large, not about the
    /// member's ideas or the ones they follow (default on).
    pub community_news: bool,
}

/// A kind of optional mail, each with its preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    IdeaUpdates,
    CommentDigest,
    CommunityNews,
}

fn yes() -> bool {
    true
}

/// A member as stored (key attributes aside).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberRow {
    pub id: String,
    pub display_name: String,
    pub email: String,
    pub email_opt_in: bool,
    pub email_opt_in_at: String,
    pub terms_version: String,
    pub terms_accepted_at: String,
    #[serde(default)]
    pub loyalty_card: Option<String>,
    /// `pending` until the loyalty programme confirms the card, then
    /// `confirmed` (cards.rs); absent for a card linked before cards were
    /// checked, which reads as confirmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loyalty_card_status: Option<String>,
    /// The card's link (`CARDLINK#{id}`), which the loyalty programme's
    /// answer names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loyalty_card_link: Option<String>,
    pub cohort: String,
    #[serde(default)]
    pub invite_code: Option<String>,
    pub joined_at: String,
    #[serde(default)]
    pub points_balance: i64,
    pub level: String,
    #[serde(default)]
    pub ambassador: bool,
    /// Set when the member's personal data was erased (the row is then a
    /// tombstone without personal data; see `gdpr`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<String>,
    /// Digest mails of new comments on the member's ideas (opt-in).
    #[serde(default)]
    pub comment_digest: bool,
    /// Voting or commenting follows the idea (`crate::follows`); absent
    /// reads as true.
    #[serde(default = "yes")]
    pub auto_follow: bool,
    /// News of followed ideas (`Notice::IdeaUpdates`); absent reads as true.
    #[serde(default = "yes")]
    pub idea_updates: bool,
    /// Community news (`Notice::CommunityNews`); absent reads as true.
    #[serde(default = "yes")]
    pub community_news: bool,
    /// Set when SES reported the address as permanently bouncing or the
    /// member's mailbox as complaining (`bounce` or `complaint`,
    /// `mail::feedback`): no mail of any kind goes to it any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_suppressed: Option<String>,
}

impl MemberRow {
    /// Whether a mail may go to the member's address (not suppressed after
    /// a permanent bounce or a complaint).
    pub fn mailable(&self) -> bool {
        self.email_suppressed.is_none() && !self.email.is_empty()
    }

    /// Whether an optional mail of this kind may go to the member: mailable,
    /// consenting to community mails (`email_opt_in`) and with the kind's
    /// preference on.
    pub fn wants(&self, n: Notice) -> bool {
        let pref = match n {
            Notice::IdeaUpdates => self.idea_updates,
            Notice::CommentDigest => self.comment_digest,
            Notice::CommunityNews => self.community_news,
        };
        pref && self.email_opt_in && self.mailable()
    }
}

/// A member as shown to themself.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberView {
    pub id: String,
    pub display_name: String,
    pub email: String,
    pub email_opt_in: bool,
    pub points_balance: i64,
    pub level: String,
    pub ambassador: bool,
    pub cohort: String,
    pub joined_at: String,
    pub terms_version: String,
    pub terms_accepted_at: String,
    /// Masked: only the last four digits are ever shown.
    pub loyalty_card: Option<String>,
    /// `pending` while the loyalty programme checks the card, `confirmed`
    /// once it did; null without a card (a rejected card is unlinked).
    pub loyalty_card_status: Option<String>,
    /// The same as `notifications.comment_digest` (kept for v1 clients).
    pub comment_digest: bool,
    pub auto_follow: bool,
    pub notifications: Notifications,
}

impl From<MemberRow> for MemberView {
    fn from(r: MemberRow) -> Self {
        MemberView {
            id: r.id,
            display_name: r.display_name,
            email: r.email,
            email_opt_in: r.email_opt_in,
            points_balance: r.points_balance,
            level: r.level,
            ambassador: r.ambassador,
            cohort: r.cohort,
            joined_at: r.joined_at,
            terms_version: r.terms_version,
            terms_accepted_at: r.terms_accepted_at,
            loyalty_card_status: crate::cards::status_of(
                r.loyalty_card.as_deref(),
                r.loyalty_card_status.as_deref(),
            ),
            loyalty_card: r.loyalty_card.as_deref().map(LoyaltyCard::masked),
            comment_digest: r.comment_digest,
            auto_follow: r.auto_follow,
            notifications: Notifications {
                idea_updates: r.idea_updates,
                comment_digest: r.comment_digest,
                community_news: r.community_news,
            },
        }
    }
}

pub fn row_from(item: Item) -> Result<MemberRow> {
    serde_json::from_value(Value::Object(item))
        .map_err(|e| Error::Store(StoreError::unavailable(e)))
}

fn to_item(key: &Key, row: &MemberRow) -> Result<Item> {
    let Value::Object(mut item) =
        serde_json::to_value(row).map_err(|e| Error::Store(StoreError::unavailable(e)))?
    else {
        return Err(Error::Store(StoreError::Invalid("member row".into())));
    };
    item.insert("pk".into(), json!(key.pk));
    item.insert("sk".into(), json!(key.sk));
    if let Some((pk, sk)) = news_index(row) {
        item.insert("gsi1pk".into(), json!(pk));
        item.insert("gsi1sk".into(), json!(sk));
    }
    Ok(item)
}

/// An invite code: 4 to 32 of `A-Z 0-9 -` (case-insensitive on input).
fn normalise_code(code: &str) -> Option<String> {
    let c = code.trim().to_ascii_uppercase();
    ((4..=32).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .then_some(c)
}

pub async fn sign_up<T: Table>(
    app: &App<T>,
    caller: &Caller,
    req: SignUp,
    receipt: Option<&Receipt>,
) -> Result<MemberView> {
    let mut errs = Errors::default();
    let display_name = errs.take(DisplayName::parse(req.display_name));
    let email = errs.take(Email::parse(req.email));
    if let Some(e) = &email {
        if crate::ratelimit::is_disposable(&app.settings().abuse.signup, e.as_str()) {
            errs.push(FieldError::new(
                "email",
                "addresses of disposable-mail providers are not accepted: use your usual address",
            ));
        }
    }
    match req.accept_terms_version.as_deref() {
        None => errs.push(FieldError::new("accept_terms_version", "is required")),
        Some(v) if v != app.settings().terms_version => errs.push(FieldError::new(
            "accept_terms_version",
            format!(
                "must be the current terms version {:?}",
                app.settings().terms_version
            ),
        )),
        Some(_) => {}
    }
    if req.email_opt_in.is_none() {
        errs.push(FieldError::new(
            "email_opt_in",
            "is required: true or false, the member's choice",
        ));
    }
    let card = match req.loyalty_card {
        Some(c) => errs.take(LoyaltyCard::parse(c)),
        None => None,
    };
    let code = match req.invite_code.as_deref() {
        Some(c) => match normalise_code(c) {
            Some(c) => Some(c),
            None => return Err(Error::Forbidden("this invite code is not valid".into())),
        },
        None => None,
    };
    if !errs.is_empty() {
        return Err(Error::Invalid(errs.0));
    }
    let (Some(display_name), Some(email)) = (display_name, email) else {
        return Err(Error::Invalid(errs.0));
    };
    if app.settings().invite_only && code.is_none() {
        return Err(Error::Forbidden(
            "the community is open on invitation only for now: an invite_code is required".into(),
        ));
    }
    let invite = match &code {
        Some(c) => match app.table.get(&invite_key(c), true).await? {
            Some(i) => Some(i),
            None => return Err(Error::Forbidden("this invite code is not valid".into())),
        },
        None => None,
    };
    let cohort = invite
        .as_ref()
        .and_then(|i| i.get("cohort"))
        .and_then(Value::as_str)
        .unwrap_or(PUBLIC_COHORT)
        .to_owned();

    let at = now();
    let card = card.map(|c| c.as_str().to_owned());
    // The card's link and its event, for the loyalty programme to confirm it.
    let link = card
        .as_deref()
        .map(|c| crate::cards::link_writes(caller.id.as_str(), c));
    let mut row = MemberRow {
        id: caller.id.as_str().to_owned(),
        display_name: display_name.as_str().to_owned(),
        email: email.as_str().to_owned(),
        email_opt_in: req.email_opt_in.unwrap_or(false),
        email_opt_in_at: at.clone(),
        terms_version: app.settings().terms_version.clone(),
        terms_accepted_at: at.clone(),
        loyalty_card: card,
        loyalty_card_status: None,
        loyalty_card_link: None,
        cohort,
        invite_code: code.clone(),
        joined_at: at,
        points_balance: 0,
        level: DEFAULT_LEVEL.into(),
        ambassador: false,
        erased_at: None,
        comment_digest: false,
        auto_follow: true,
        idea_updates: true,
        community_news: true,
        email_suppressed: None,
    };
    if let Some((id, _)) = &link {
        row.loyalty_card_status = Some(crate::cards::PENDING.into());
        row.loyalty_card_link = Some(id.clone());
    }
    let k = key(&caller.id);
    let event = Event::new(
        Kind::MemberSignedUp,
        &row.id,
        None,
        json!({"cohort": row.cohort, "email_opt_in": row.email_opt_in}),
    );
    let mut writes = vec![Write::put_new(to_item(&k, &row)?), event.write()];
    if let (Some(c), Some(inv)) = (&code, &invite) {
        let max = inv.get("max_uses").and_then(Value::as_i64).unwrap_or(1);
        writes.push(
            Write::update(invite_key(c), Update::default().add("uses", 1))
                .when(Cond::LessThan("uses".into(), max)),
        );
    }
    let invite_guard = code.as_deref().filter(|_| invite.is_some()).map(invite_key);
    let card_guarded = row.loyalty_card.as_ref().map(|c| {
        writes.push(card_guard(c, &row.id));
        card_key(c)
    });
    if let Some((_, w)) = link {
        writes.extend(w);
    }
    let view = MemberView::from(row);
    let body = serde_json::to_value(&view).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    match commit(&app.table, writes, receipt.map(|r| (r, 201, &body))).await {
        Ok(()) => {
            crate::metrics::record_sign_up(&view.cohort);
            Ok(view)
        }
        Err(e) if e.failed_on(&k) => {
            let erased = app
                .table
                .get(&k, true)
                .await?
                .is_some_and(|i| is_closed(&i));
            Err(Error::Conflict(if erased {
                "this account was erased at your request; sign up with a new account".into()
            } else {
                "you are already a member".into()
            }))
        }
        Err(e) if invite_guard.as_ref().is_some_and(|g| e.failed_on(g)) => {
            Err(Error::Forbidden("this invite code has been used up".into()))
        }
        Err(e) if card_guarded.as_ref().is_some_and(|g| e.failed_on(g)) => Err(card_taken()),
        Err(e) => Err(e),
    }
}

/// The member's stored row, or 404.
pub async fn get<T: Table>(app: &App<T>, id: &MemberId) -> Result<MemberRow> {
    match app.table.get(&key(id), true).await? {
        Some(item) if !is_closed(&item) => row_from(item),
        _ => Err(Error::NotFound("member")),
    }
}

/// The members among `ids` who accept community mails (`email_opt_in`) and
/// can be mailed (`MemberRow::mailable`: no suppressed address), in one
/// batch read per 100 (eventually consistent: a mail may follow an opt-out
/// by a second). Closed and unknown members are left out.
pub async fn opted_in<T: Table>(app: &App<T>, ids: &[String]) -> Result<Vec<MemberRow>> {
    let keys: Vec<Key> = ids
        .iter()
        .filter_map(|i| MemberId::parse(i))
        .map(|i| key(&i))
        .collect();
    let mut out = Vec::new();
    for chunk in keys.chunks(100) {
        for item in app.table.get_many(chunk, false).await? {
            if is_closed(&item) {
                continue;
            }
            let row = row_from(item)?;
            if row.email_opt_in && row.mailable() {
                out.push(row);
            }
        }
    }
    Ok(out)
}

/// A member as shown to themself: the stored row, with the points of their
/// votes added to the stored balance (`points::vote_credits`).
pub async fn view<T: Table>(app: &App<T>, row: MemberRow) -> Result<MemberView> {
    let from_votes = crate::points::vote_points(app, &row.id).await?;
    let mut v = MemberView::from(row);
    v.points_balance += from_votes;
    Ok(v)
}

/// The caller's row, or 403 when they have not signed up (for member-only writes).
pub async fn require<T: Table>(app: &App<T>, caller: &Caller) -> Result<MemberRow> {
    match app.table.get(&key(&caller.id), true).await? {
        Some(item) if !is_closed(&item) => row_from(item),
        _ => Err(Error::Forbidden(
            "sign up first: POST /members makes you a member".into(),
        )),
    }
}

/// As [`require`], for the hottest routes (a vote): an eventually
/// consistent read first (half the read units), and a consistent one only
/// when it finds nothing (a member who signed up a moment ago).
pub async fn require_cheap<T: Table>(app: &App<T>, caller: &Caller) -> Result<MemberRow> {
    match app.table.get(&key(&caller.id), false).await? {
        Some(item) if !is_closed(&item) => row_from(item),
        _ => require(app, caller).await,
    }
}

pub async fn update<T: Table>(app: &App<T>, caller: &Caller, p: Patch) -> Result<MemberView> {
    let mut errs = Errors::default();
    let mut u = Update::default();
    if p.display_name.is_some() {
        if let Some(n) = errs.take(DisplayName::parse(p.display_name)) {
            u = u.set("display_name", n.as_str());
        }
    }
    let mut new_card = None;
    if let Some(card) = p.loyalty_card {
        if let Some(c) = errs.take(LoyaltyCard::parse(card)) {
            u = u.set("loyalty_card", c.as_str());
            new_card = Some(c.as_str().to_owned());
        }
    }
    if let Some(opt) = p.email_opt_in {
        u = u.set("email_opt_in", opt).set("email_opt_in_at", now());
    }
    let n = p.notifications.unwrap_or_default();
    if let (Some(a), Some(b)) = (p.comment_digest, n.comment_digest) {
        if a != b {
            errs.push(FieldError::new(
                "notifications.comment_digest",
                "differs from comment_digest: send one of them",
            ));
        }
    }
    if let Some(d) = n.comment_digest.or(p.comment_digest) {
        u = u.set("comment_digest", d).set("comment_digest_at", now());
    }
    if let Some(v) = n.idea_updates {
        u = u.set("idea_updates", v).set("idea_updates_at", now());
    }
    if let Some(v) = n.community_news {
        u = u.set("community_news", v).set("community_news_at", now());
    }
    if let Some(v) = p.auto_follow {
        u = u.set("auto_follow", v).set("auto_follow_at", now());
    }
    if !errs.is_empty() {
        return Err(Error::Invalid(errs.0));
    }
    let current = get(app, &caller.id).await?;
    if u.set.is_empty() {
        return view(app, current).await;
    }
    // The news index follows the row as it will be (set again on every
    // change, so a profile without its entry gets it back), on the
    // condition that what it is derived from is still what was read.
    let mut after = current.clone();
    if let Some(v) = p.email_opt_in {
        after.email_opt_in = v;
    }
    if let Some(v) = n.community_news {
        after.community_news = v;
    }
    u = with_news_index(u, news_index(&after));
    // A new card moves the card guard, on the condition that the card read
    // above is still the member's (two concurrent changes cannot both move it).
    let mut cond = Cond::Exists
        .and(Cond::AttrAbsent("erased_at".into()))
        .and(Cond::AttrAbsent("erasing_at".into()))
        .and(news_inputs_as_read(&current));
    let mut writes = Vec::new();
    let mut card_guarded = None;
    if let Some(c) = new_card.filter(|c| Some(c) != current.loyalty_card.as_ref()) {
        cond = cond.and(match &current.loyalty_card {
            Some(old) => Cond::Eq("loyalty_card".into(), json!(old)),
            // A row without a card stores it as null (or not at all).
            None => Cond::AttrAbsent("loyalty_card".into())
                .or(Cond::Eq("loyalty_card".into(), Value::Null)),
        });
        writes.push(card_guard(&c, &current.id));
        card_guarded = Some(card_key(&c));
        if let Some(old) = &current.loyalty_card {
            writes.push(free_card(old, &current.id));
        }
        // A new card is pending until the loyalty programme confirms it;
        // an answer about the previous card's link changes nothing now.
        let (link, w) = crate::cards::link_writes(&current.id, &c);
        u = u
            .set("loyalty_card_status", crate::cards::PENDING)
            .set("loyalty_card_link", link.as_str());
        writes.extend(w);
    }
    writes.insert(0, Write::update(key(&caller.id), u).when(cond));
    // A transaction conflict (the loyalty programme confirming the previous
    // card, a consumer touching the profile) applied nothing: the same
    // conditional writes are tried again, a few times, before a 503.
    match crate::store::transact_retrying(&app.table, writes, 5).await {
        Ok(()) => view(app, get(app, &caller.id).await?).await,
        Err(e) if e.failed_on(&key(&caller.id)) => match get(app, &caller.id).await {
            Ok(_) => Err(Error::Conflict(
                "your profile changed at the same time; read it again and retry".into(),
            )),
            Err(e) => Err(e),
        },
        Err(e) if card_guarded.as_ref().is_some_and(|g| e.failed_on(g)) => Err(card_taken()),
        Err(StoreError::ConditionFailed { .. }) => Err(Error::Conflict(
            "your previous loyalty card could not be released; contact support".into(),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The attributes the news index is derived from are as in `row`: two
/// concurrent changes (an opt-in and a preference, a PATCH and an
/// unsubscribe) cannot leave the index saying the opposite of the row.
fn news_inputs_as_read(row: &MemberRow) -> Cond {
    let news = Cond::Eq("community_news".into(), json!(row.community_news));
    let news = if row.community_news {
        // Absent reads as on (profiles of before the preference).
        news.or(Cond::AttrAbsent("community_news".into()))
    } else {
        news
    };
    let suppressed = match &row.email_suppressed {
        Some(s) => Cond::Eq("email_suppressed".into(), json!(s)),
        None => Cond::AttrAbsent("email_suppressed".into()),
    };
    Cond::Eq("email_opt_in".into(), json!(row.email_opt_in))
        .and(news)
        .and(suppressed)
}

/// Creates `count` invite codes for a cohort (soft launch). Each code admits
/// `max_uses` members.
pub async fn create_invites<T: Table>(
    table: &T,
    cohort: &str,
    count: usize,
    max_uses: i64,
) -> Result<Vec<String>> {
    let cohort_ok = (1..=32).contains(&cohort.len())
        && cohort
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !cohort_ok {
        return Err(Error::invalid("cohort", "must be 1-32 of a-z, 0-9 and '-'"));
    }
    if cohort == PUBLIC_COHORT {
        return Err(Error::invalid(
            "cohort",
            "\"public\" is the cohort of members without an invite",
        ));
    }
    if max_uses < 1 {
        return Err(Error::invalid("max_uses", "must be at least 1"));
    }
    let mut codes = Vec::with_capacity(count);
    for _ in 0..count {
        let code = new_code();
        let k = invite_key(&code);
        let item = json!({
            "pk": k.pk, "sk": k.sk, "code": code, "cohort": cohort,
            "max_uses": max_uses, "uses": 0, "created_at": now(),
        });
        if let Value::Object(item) = item {
            table.transact(vec![Write::put_new(item)]).await?;
        }
        codes.push(code);
    }
    Ok(codes)
}

/// 12 characters from an alphabet without look-alikes, grouped for reading.
fn new_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let chars: String = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{}-{}-{}", &chars[0..4], &chars[4..8], &chars[8..12])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> MemberRow {
        row_from(
            json!({"id": "bob", "display_name": "Bob", "email": "bob@example.fr",
                   "email_opt_in": true, "email_opt_in_at": "2026-11-02T17:45:03.000Z",
                   "terms_version": "2026-11", "terms_accepted_at": "2026-11-02T17:45:03.000Z",
                   "cohort": "public", "joined_at": "2026-11-02T17:45:03.000Z", "level": "member"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        )
        .expect("row")
    }

    #[test]
    fn a_profile_of_before_the_preferences_follows_and_gets_news_but_no_digest() {
        let r = row();
        assert!(r.auto_follow && r.idea_updates && r.community_news && !r.comment_digest);
        assert!(r.wants(Notice::IdeaUpdates) && r.wants(Notice::CommunityNews));
        assert!(!r.wants(Notice::CommentDigest));
    }

    #[test]
    fn the_news_index_holds_exactly_the_members_who_want_community_news() {
        let r = row();
        let (pk, sk) = news_index(&r).expect("indexed");
        assert_eq!(pk, news_pk(news_bucket("bob")));
        assert!(pk.starts_with("NEWS#") && news_bucket("bob") < NEWS_BUCKETS);
        assert_eq!(sk, "bob");
        let item = to_item(&key(&MemberId::parse("bob").expect("id")), &r).expect("item");
        assert_eq!(item["gsi1pk"], json!(pk));
        for out in [
            |r: &mut MemberRow| r.community_news = false,
            |r: &mut MemberRow| r.email_opt_in = false,
            |r: &mut MemberRow| r.email_suppressed = Some("complaint".into()),
            |r: &mut MemberRow| r.erased_at = Some("2026-12-01T00:00:00.000Z".into()),
        ] {
            let mut r = row();
            out(&mut r);
            assert_eq!(news_index(&r), None, "{r:?}");
            let item = to_item(&key(&MemberId::parse("bob").expect("id")), &r).expect("item");
            assert!(!item.contains_key("gsi1pk") && !item.contains_key("gsi1sk"));
        }
    }

    #[test]
    fn each_notice_needs_its_preference_the_consent_and_a_mailable_address() {
        for n in [
            Notice::IdeaUpdates,
            Notice::CommentDigest,
            Notice::CommunityNews,
        ] {
            let mut r = row();
            r.comment_digest = true;
            assert!(r.wants(n), "{n:?}");
            match n {
                Notice::IdeaUpdates => r.idea_updates = false,
                Notice::CommentDigest => r.comment_digest = false,
                Notice::CommunityNews => r.community_news = false,
            }
            assert!(!r.wants(n), "{n:?} off");
            let mut r = row();
            r.comment_digest = true;
            r.email_opt_in = false;
            assert!(!r.wants(n), "{n:?} without email_opt_in");
            let mut r = row();
            r.comment_digest = true;
            r.email_suppressed = Some("bounce".into());
            assert!(!r.wants(n), "{n:?} suppressed");
        }
    }
}
