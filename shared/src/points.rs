//! Reward points: a ledger per member whose sum is always the member's
//! balance (each entry is written in the same transaction as the balance
//! change), credited from events by the `points` consumer, and redeemed into
//! euros on the loyalty card.
//!
//! Keys: ledger entry `MEMBER#{id} / LEDGER#{created_at}#{entry id}`;
//! redemption `MEMBER#{id} / REDEMPTION#{id}`; daily cap counter
//! `MEMBER#{id} / CAP#{rule}#{yyyy-mm-dd}`.
//!
//! Votes are the exception, because they are the programme's most frequent
//! action (thousands a second on launch night): a vote's points are not
//! written anywhere. They are read from the member's current vote records
//! (gsi3 `MEMBER#{id}` / `VOTE#{created_at}#{idea}`), per day, capped by the
//! `vote_cast` rule's `daily_cap` ([`vote_credits`]): one entry per day in
//! the ledger, added to the stored balance wherever a balance is shown or
//! spent. Withdrawing a vote takes its points back; voting again gives them
//! again (the same idea is never counted twice at once). The stored
//! `points_balance` holds everything else.

use crate::app::App;
use crate::auth::Caller;
use crate::domain::{now, IdeaStatus};
use crate::error::{commit, Error, Result};
use crate::events::{consumed_marker, lasting_marker_with, marker_key, Event, Kind};
use crate::ideas::ListPage;
use crate::members;
use crate::queue::Consumer;
use crate::receipt::Receipt;
use crate::store::{
    cursor, Cond, Index, Item, Key, Query, SortKey, StoreError, Table, Update, Write,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub const CONSUMER: &str = "points";

/// The sort keys of a member's ledger entries begin with this.
pub const LEDGER_PREFIX: &str = "LEDGER#";

/// The sort keys of a member's daily cap counters begin with this.
pub const CAP_PREFIX: &str = "CAP#";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LedgerEntry {
    pub id: String,
    pub delta: i64,
    pub reason: String,
    pub label: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub created_at: String,
}

pub fn ledger_write(member: &str, e: &LedgerEntry) -> Write {
    let mut item = Item::new();
    item.insert("pk".into(), json!(crate::members::pk(member)));
    item.insert(
        "sk".into(),
        json!(format!("{LEDGER_PREFIX}{}#{}", e.created_at, e.id)),
    );
    if let Value::Object(m) = serde_json::to_value(e).unwrap_or(Value::Null) {
        item.extend(m);
    }
    Write::put_new(item)
}

pub struct PointsConsumer<T> {
    pub app: App<T>,
}

/// What one event asks of the points consumer.
enum Step {
    Credit(Box<CreditPlan>),
    /// Several members credited by one event (a challenge's winners).
    Credits(Vec<CreditPlan>),
    Moderated,
    Nothing,
}

impl<T: Table + Clone> PointsConsumer<T> {
    fn step(&self, e: &Event) -> Step {
        let idea_ref = e.idea_id.clone().unwrap_or_default();
        let app = &self.app;
        let credit_for = |rule: &str, key: &str, reference: &str| match plan_credit(
            app,
            e,
            &e.member_id,
            rule,
            key,
            reference,
        ) {
            Some(p) => Step::Credit(Box::new(p)),
            None => Step::Nothing,
        };
        match e.kind {
            Kind::MemberSignedUp => credit_for("member_signed_up", &e.event_id, ""),
            // Keyed by the idea, so moderation can find what it was credited.
            // A challenge's proposal: its own rule (and the challenge's
            // points), under the same key, so moderation finds it too.
            Kind::IdeaPosted if e.data["challenge_id"].is_string() => {
                credit_for("challenge_proposal", &format!("idea#{idea_ref}"), &idea_ref)
            }
            Kind::IdeaPosted => credit_for("idea_posted", &format!("idea#{idea_ref}"), &idea_ref),
            // Each winner once per challenge, however many of their
            // proposals won and however often the event is delivered.
            Kind::ChallengeDecided => {
                let challenge = e.data["challenge_id"].as_str().unwrap_or_default();
                let mut members: Vec<&str> = e.data["winners"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|w| w["member_id"].as_str()).collect())
                    .unwrap_or_default();
                members.sort_unstable();
                members.dedup();
                Step::Credits(
                    members
                        .into_iter()
                        .filter(|m| !m.is_empty())
                        .filter_map(|m| {
                            plan_credit(
                                app,
                                e,
                                m,
                                "challenge_winner",
                                &format!("challenge#{challenge}#{m}"),
                                challenge,
                            )
                        })
                        .collect(),
                )
            }
            // Votes are not credited here: their points are read from the
            // member's vote records (`vote_credits`), so a vote costs no
            // ledger transaction. A `vote.cast` from before that change, or
            // one relayed by an older relay, is acknowledged without effect.
            Kind::IdeaReachedThreshold => credit_for(
                "idea_reached_threshold",
                &format!("threshold#{idea_ref}"),
                &idea_ref,
            ),
            Kind::IdeaDecided if e.data["outcome"] == json!(IdeaStatus::Accepted.as_str()) => {
                credit_for("idea_accepted", &format!("accepted#{idea_ref}"), &idea_ref)
            }
            Kind::ContestEntered => {
                let contest = e.data["contest_id"].as_str().unwrap_or_default();
                credit_for(
                    "contest_entry",
                    &format!("contest#{contest}#{}", e.member_id),
                    contest,
                )
            }
            // Once per survey and member; only a survey that gives points.
            Kind::SurveyResponded if e.data["points"].as_i64().is_some_and(|p| p > 0) => {
                let survey = e.data["survey_id"].as_str().unwrap_or_default();
                credit_for(
                    "survey_completed",
                    &format!("survey#{survey}#{}", e.member_id),
                    survey,
                )
            }
            Kind::ReviewPosted => {
                let ean = e.data["ean"].as_str().unwrap_or_default();
                credit_for("review", &format!("review#{ean}#{}", e.member_id), ean)
            }
            // Once per comment, however often the event is delivered.
            Kind::CommentPosted => {
                let comment = e.data["comment_id"].as_str().unwrap_or_default();
                credit_for("comment_posted", &format!("comment#{comment}"), &idea_ref)
            }
            Kind::ContentHidden | Kind::ContentRestored => Step::Moderated,
            // Once per member and event, however often marketing posts it.
            Kind::RoundtableAttended => {
                let event = e.data["roundtable_id"].as_str().unwrap_or_default();
                credit_for(
                    "event_attended",
                    &format!("roundtable#{event}#{}", e.member_id),
                    event,
                )
            }
            _ => Step::Nothing,
        }
    }
}

#[async_trait]
impl<T: Table + Clone> Consumer for PointsConsumer<T> {
    fn name(&self) -> &'static str {
        CONSUMER
    }

    async fn prepare(&self) {
        self.app.refresh_or_keep().await;
    }

    async fn apply(&self, e: &Event) -> Result<()> {
        match self.step(e) {
            Step::Credit(p) => match credit_all(&self.app, vec![(String::new(), *p)]).await.pop() {
                None => Ok(()),
                Some(_) => Err(Error::Busy),
            },
            Step::Credits(ps) => {
                let all = ps.into_iter().map(|p| (String::new(), p)).collect();
                if credit_all(&self.app, all).await.is_empty() {
                    Ok(())
                } else {
                    Err(Error::Busy)
                }
            }
            Step::Moderated => moderated(&self.app, e).await,
            Step::Nothing => Ok(()),
        }
    }

    /// The batch's credits go in as few transactions as their items allow
    /// ([`credit_all`]): marketing's `points_credited` total is written once
    /// per transaction, not once per credit, so a sign-up spike does not
    /// queue every credit behind the same 16 totals items. Moderation
    /// events are applied one by one.
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        let mut failed = Vec::new();
        let mut credits = Vec::new();
        for (id, e) in batch {
            match self.step(e) {
                Step::Credit(p) => credits.push((id.clone(), *p)),
                Step::Credits(ps) => credits.extend(ps.into_iter().map(|p| (id.clone(), p))),
                Step::Nothing => {}
                Step::Moderated => {
                    let span = tracing::info_span!("message", consumer = CONSUMER, message_id = %id, event_id = %e.event_id, kind = e.kind.as_str());
                    if let Err(err) =
                        tracing::Instrument::instrument(moderated(&self.app, e), span).await
                    {
                        tracing::warn!(consumer = CONSUMER, message_id = %id, event_id = %e.event_id, error = %crate::observe::redact(&err.to_string()), "event failed; it will be retried");
                        failed.push(id.clone());
                    }
                }
            }
        }
        failed.extend(credit_all(&self.app, credits).await);
        failed
    }
}

/// The credit key of a moderated contribution (the key its credit used).
fn credit_key_of(e: &Event) -> Option<(&'static str, String)> {
    let id = e.data["target_id"].as_str()?;
    match e.data["target_type"].as_str()? {
        "idea" => Some(("idea_posted", format!("idea#{id}"))),
        "comment" => Some(("comment_posted", format!("comment#{id}"))),
        "review" => {
            let ean = e.data["ean"].as_str()?;
            Some(("review", format!("review#{ean}#{}", e.member_id)))
        }
        _ => None,
    }
}

/// `content.hidden` takes back the points the contribution earned (a ledger
/// entry of the opposite sign, the balance, marketing's total and the
/// member's ambassador counter, in one transaction with the event's marker);
/// `content.restored` gives them again. A moderator's confirmation of a hide
/// by reports (`confirmed`) changes nothing. The balance may go below zero
/// if the points were already converted: the ledger still sums to it, and
/// nothing more can be converted until it is positive again.
async fn moderated<T: Table>(app: &App<T>, e: &Event) -> Result<()> {
    let hide = e.kind == Kind::ContentHidden;
    if hide && e.data["confirmed"] == json!(true) {
        return Ok(());
    }
    let Some((rule, credit_key)) = credit_key_of(e) else {
        return Ok(());
    };
    if app.settings().points.rule(rule).is_none() {
        return Ok(());
    }
    let credited = match app
        .table
        .get(&marker_key(CONSUMER, &credit_key), true)
        .await?
    {
        Some(m) => m.get("points").and_then(Value::as_i64).unwrap_or(0),
        // The credit's own event has not been applied yet (queues do not
        // keep order): retry this message later rather than miss it.
        None => return Err(Error::Busy),
    };
    let marker = consumed_marker(CONSUMER, &format!("moderation#{}", e.event_id));
    if credited <= 0 {
        // Capped, or given to a member since erased: nothing to move.
        return match app.table.transact(vec![marker]).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        };
    }
    let delta = if hide { -credited } else { credited };
    let member = e.member_id.as_str();
    let entry = LedgerEntry {
        id: e.event_id.clone(),
        delta,
        reason: if hide {
            "content_hidden"
        } else {
            "content_restored"
        }
        .into(),
        label: if hide {
            "Contribution masquée par la modération"
        } else {
            "Contribution rétablie par la modération"
        }
        .into(),
        reference: e.data["target_id"].as_str().unwrap_or_default().to_owned(),
        created_at: e.at.clone(),
    };
    let writes = vec![
        marker.clone(),
        ledger_write(member, &entry),
        Write::update(
            crate::members::profile_key(member),
            Update::default().add("points_balance", delta),
        )
        .when(Cond::Exists.and(Cond::AttrAbsent("erased_at".into()))),
        crate::insights::total_write("points_withdrawn", -delta),
        crate::ambassadors::counter_write(member, &[("points", delta)]),
    ];
    match crate::retry::transact(&app.table, writes, 9).await {
        Ok(()) => Ok(()),
        // Already applied: a redelivery.
        Err(err) if err.failed_on(&marker_key(CONSUMER, &format!("moderation#{}", e.event_id))) => {
            Ok(())
        }
        // The member was erased meanwhile: nothing to move.
        Err(StoreError::ConditionFailed { .. }) => match app.table.transact(vec![marker]).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        },
        Err(err) => Err(err.into()),
    }
}

/// One credit, ready to commit: its writes (the marker first, then the
/// ledger entry, the balance, the day's cap and the member's ambassador
/// counter) and the marker that closes the event when a condition says
/// there is nothing to credit.
struct CreditPlan {
    event_id: String,
    kind: &'static str,
    rule: String,
    points: i64,
    writes: Vec<Write>,
    nothing_credited: Write,
}

/// Plans crediting `rule` to `member` once per `business_key`; `None` when
/// the rule is not configured.
fn plan_credit<T: Table>(
    app: &App<T>,
    e: &Event,
    member: &str,
    rule: &str,
    business_key: &str,
    reference: &str,
) -> Option<CreditPlan> {
    let settings = app.settings();
    let rule_conf = settings.points.rule(rule)?;
    // A campaign may set its own points (a contest's `entry_points`).
    let mut r = rule_conf.clone();
    if let Some(p) = e.data["points"].as_i64().filter(|p| *p > 0) {
        r.points = p;
    }
    // The marker keeps what the credit gave (0 when capped or the member is
    // gone), for `moderated` to take back.
    let marker_for =
        |points: i64| lasting_marker_with(CONSUMER, business_key, &[("points", json!(points))]);
    let entry = LedgerEntry {
        id: e.event_id.clone(),
        delta: r.points,
        reason: rule.to_owned(),
        label: r.label.clone(),
        reference: if reference.is_empty() {
            e.kind.as_str().to_owned()
        } else {
            reference.to_owned()
        },
        created_at: e.at.clone(),
    };
    let member_key = crate::members::profile_key(member);
    let mut writes = vec![
        marker_for(r.points),
        ledger_write(member, &entry),
        Write::update(
            member_key,
            Update::default().add("points_balance", r.points),
        )
        .when(Cond::Exists.and(Cond::AttrAbsent("erased_at".into()))),
    ];
    if let Some(cap) = r.daily_cap {
        let day = e.at.get(..10).unwrap_or("0000-00-00");
        writes.push(
            Write::update(
                Key::new(
                    crate::members::pk(member),
                    format!("{CAP_PREFIX}{rule}#{day}"),
                ),
                Update::default().add("n", 1),
            )
            .when(Cond::NotExists.or(Cond::LessThan("n".into(), cap))),
        );
    }
    // The member's activity counter moves with the credit (ambassadors.rs).
    // A tombstoned (erased) member fails its condition, and then nothing is
    // credited, like a member whose profile is gone.
    writes.push(if rule == "member_signed_up" {
        crate::ambassadors::quiet_counter_write(member, &[("points", r.points)])
    } else {
        crate::ambassadors::counter_write(member, &[("points", r.points)])
    });
    Some(CreditPlan {
        event_id: e.event_id.clone(),
        kind: e.kind.as_str(),
        rule: rule.to_owned(),
        points: r.points,
        writes,
        nothing_credited: marker_for(0),
    })
}

/// Commits credits, as many per transaction as DynamoDB allows (100 actions,
/// no item twice), each transaction adding its credits' sum to marketing's
/// `points_credited` total on one shard (insights.rs), so the total matches
/// the ledgers exactly. A condition that fails names one credit: a marker
/// already there (a redelivery: nothing to do) or a cap reached / member
/// erased (the event is closed with a 0-point marker); the others go again.
/// Returns the message ids whose credit could not be committed.
async fn credit_all<T: Table>(app: &App<T>, credits: Vec<(String, CreditPlan)>) -> Vec<String> {
    use crate::store::limits::MAX_TRANSACTION_ACTIONS;
    let mut failed = Vec::new();
    // Credits already made (a redelivered message, the same business key
    // twice in the batch) are dropped before any transaction: a
    // transaction cancelled by a condition is billed for every item it
    // holds, so finding them by the transaction's failure would cost a whole
    // batch's writes per duplicate (the launch bench's redeliveries).
    let marker_of = |p: &CreditPlan| p.writes.first().and_then(Write::key);
    let keys: Vec<Key> = credits.iter().filter_map(|(_, p)| marker_of(p)).collect();
    let done: std::collections::HashSet<Key> = match crate::store::get_all(&app.table, &keys, true)
        .await
    {
        Ok(items) => items
            .iter()
            .filter_map(|i| {
                Some(Key::new(
                    i.get("pk")?.as_str()?.to_owned(),
                    i.get("sk")?.as_str()?.to_owned(),
                ))
            })
            .collect(),
        Err(err) => {
            tracing::warn!(consumer = CONSUMER, error = %crate::observe::redact(&err.to_string()), "credits failed; they will be retried");
            return credits.into_iter().map(|(id, _)| id).collect();
        }
    };
    let mut seen = std::collections::HashSet::new();
    let credits: Vec<(String, CreditPlan)> = credits
        .into_iter()
        .filter(|(_, p)| marker_of(p).is_none_or(|k| !done.contains(&k) && seen.insert(k)))
        .collect();
    let mut pending: std::collections::VecDeque<(String, CreditPlan)> = credits.into();
    // How many credits a transaction may hold: halved each time a
    // transaction of several is still cancelled by conflicts (or
    // throttling) after a few attempts. A transaction holding 20 members'
    // profiles conflicts when any one of them is being written (a card's
    // confirmation, a welcome mail's marker during a sign-up spike), so a
    // large one can lose to its neighbours for longer than its retries
    // last; smaller ones commit around them.
    let mut max_credits = usize::MAX;
    while !pending.is_empty() {
        // A transaction's credits: distinct items, room left for the total.
        let mut chunk: Vec<(String, CreditPlan)> = Vec::new();
        let mut keys = std::collections::HashSet::new();
        let mut actions = 0;
        let mut later = std::collections::VecDeque::new();
        for (id, p) in pending.drain(..) {
            let ks: Vec<Key> = p.writes.iter().filter_map(Write::key).collect();
            let fits = chunk.len() < max_credits
                && actions + p.writes.len() < MAX_TRANSACTION_ACTIONS
                && ks.iter().all(|k| !keys.contains(k));
            if fits || chunk.is_empty() {
                actions += p.writes.len();
                keys.extend(ks);
                chunk.push((id, p));
            } else {
                later.push_back((id, p));
            }
        }
        pending = later;
        let total: i64 = chunk.iter().map(|(_, p)| p.points).sum();
        let mut writes: Vec<Write> = chunk
            .iter()
            .flat_map(|(_, p)| p.writes.iter().cloned())
            .collect();
        if total != 0 {
            writes.push(crate::insights::total_write("points_credited", total));
        }
        // A lone credit gets the consumer's full patience; a group, a few
        // attempts before it is split.
        let attempts = if chunk.len() > 1 { 3 } else { 9 };
        match crate::retry::transact(&app.table, writes, attempts).await {
            Err(e) if crate::retry::retryable(&e) && chunk.len() > 1 => {
                max_credits = chunk.len() / 2;
                tracing::debug!(
                    consumer = CONSUMER,
                    credits = chunk.len(),
                    error = %e,
                    "credits still contended; split into smaller transactions"
                );
                for c in chunk.into_iter().rev() {
                    pending.push_front(c);
                }
            }
            Ok(()) => {
                for (id, p) in &chunk {
                    crate::metrics::record_points_credited(&p.rule, p.points);
                    let span = tracing::info_span!("message", consumer = CONSUMER, message_id = %id, event_id = %p.event_id, kind = p.kind);
                    span.in_scope(|| {
                        tracing::debug!(rule = %p.rule, points = p.points, credits = chunk.len(), "credited")
                    });
                }
            }
            Err(StoreError::ConditionFailed { key, .. }) => {
                let mut named = false;
                for (id, p) in chunk {
                    let owns = key
                        .as_ref()
                        .is_some_and(|k| p.writes.iter().any(|w| w.key().as_ref() == Some(k)));
                    if owns {
                        named = true;
                        // At the marker: already credited (a redelivery).
                        // Elsewhere: the member is gone (erased) or the
                        // day's cap is reached: nothing to credit, but the
                        // event is done.
                        if key != marker_of(&p) {
                            match app.table.transact(vec![p.nothing_credited]).await {
                                Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
                                Err(err) => {
                                    tracing::warn!(consumer = CONSUMER, message_id = %id, error = %crate::observe::redact(&err.to_string()), "event failed; it will be retried");
                                    failed.push(id);
                                }
                            }
                        }
                    } else {
                        pending.push_back((id, p));
                    }
                }
                if !named {
                    // Not a credit's condition (none other has one): give
                    // the messages back rather than loop.
                    tracing::warn!(
                        consumer = CONSUMER,
                        item = ?key,
                        "a condition no credit owns failed; the batch will be retried"
                    );
                    failed.extend(pending.drain(..).map(|(id, _)| id));
                }
            }
            Err(err) => {
                tracing::warn!(consumer = CONSUMER, credits = chunk.len(), error = %crate::observe::redact(&err.to_string()), "credits failed; they will be retried");
                failed.extend(chunk.into_iter().map(|(id, _)| id));
            }
        }
    }
    failed
}

/// `GET /members/me/points`: the ledger, newest first.
pub async fn ledger<T: Table>(
    app: &App<T>,
    caller: &Caller,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<LedgerEntry>> {
    let pk = crate::members::pk(caller.id.as_str());
    let start = cursor::start(cursor_in.as_deref(), Index::Primary, &pk)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Primary, pk)
                .sk(SortKey::BeginsWith(LEDGER_PREFIX.into()))
                .backward()
                .limit(limit)
                .start_after(start.clone()),
        )
        .await?;
    let mut items = page
        .items
        .into_iter()
        .map(|i| {
            serde_json::from_value(Value::Object(i))
                .map_err(|e| Error::Store(StoreError::unavailable(e)))
        })
        .collect::<Result<Vec<LedgerEntry>>>()?;
    // The vote days this page covers: newer than its last stored entry
    // (all of the older ones on the last page) and older than the entry the
    // cursor continues from.
    let upper = start
        .as_ref()
        .and_then(|k| k.get("sk"))
        .and_then(Value::as_str)
        .and_then(|sk| sk.strip_prefix(LEDGER_PREFIX))
        .and_then(|sk| sk.rsplit_once('#'))
        .map(|(at, _)| at.to_owned());
    let lower = page
        .last_key
        .as_ref()
        .and_then(|_| items.last())
        .map(|e| e.created_at.clone());
    let days = vote_credits(app, caller.id.as_str()).await?;
    items.extend(days.into_iter().filter(|d| {
        upper.as_ref().is_none_or(|u| d.created_at < *u)
            && lower.as_ref().is_none_or(|l| d.created_at >= *l)
    }));
    items.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

/// The points a member's current votes give, one ledger entry per day
/// (newest first): the `vote_cast` rule's points per vote, at most
/// `daily_cap` votes a day. Read from the member's vote records in gsi3
/// (eventually consistent: a vote shows within a second), except the
/// copies a merge made (`merged_from`).
pub async fn vote_credits<T: Table>(app: &App<T>, member: &str) -> Result<Vec<LedgerEntry>> {
    let settings = app.settings();
    let Some(rule) = settings.points.rule("vote_cast") else {
        return Ok(Vec::new());
    };
    let pk = crate::members::pk(member);
    // day → (votes, latest vote's time)
    let mut days: std::collections::BTreeMap<String, (i64, String)> = Default::default();
    let q = Query::new(Index::Gsi3, pk)
        .sk(crate::votes::member_votes())
        .limit(1000);
    for i in &crate::store::all_pages(&app.table, q).await? {
        // A vote a merge copied onto another idea (`crate::merge`) earned
        // its points once, as the vote it copies.
        if i.contains_key(crate::merge::MERGED_FROM) {
            continue;
        }
        let Some(at) = i.get("created_at").and_then(Value::as_str) else {
            continue;
        };
        let day = days
            .entry(at.get(..10).unwrap_or(at).to_owned())
            .or_default();
        day.0 += 1;
        if day.1.as_str() < at {
            day.1 = at.to_owned();
        }
    }
    Ok(days
        .into_iter()
        .rev()
        .map(|(day, (n, at))| {
            let credited = rule.daily_cap.map_or(n, |c| n.min(c));
            LedgerEntry {
                id: format!("votes-{day}"),
                delta: credited * rule.points,
                reason: "vote_cast".into(),
                label: format!("{} ({credited})", rule.label),
                reference: day,
                created_at: at,
            }
        })
        .collect())
}

/// The points of a member's current votes (see [`vote_credits`]).
pub async fn vote_points<T: Table>(app: &App<T>, member: &str) -> Result<i64> {
    Ok(vote_credits(app, member)
        .await?
        .iter()
        .map(|e| e.delta)
        .sum())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedemptionRequest {
    #[serde(default, deserialize_with = "crate::domain::optional_integer")]
    pub points: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Redemption {
    pub id: String,
    pub points: i64,
    pub euros: String,
    pub status: String,
    pub created_at: String,
}

/// `POST /members/me/redemptions`: converts points into euros on the loyalty
/// card. The balance can never go below zero: the debit is conditional on
/// the balance, in the same transaction as the ledger entry, the redemption
/// (and its pointer, `crate::loyalty`) and the `points.redeemed` event for
/// the loyalty queue. It stays `pending` until the loyalty programme answers.
pub async fn redeem<T: Table>(
    app: &App<T>,
    caller: &Caller,
    req: RedemptionRequest,
    receipt: Option<&Receipt>,
) -> Result<Redemption> {
    let conv = &app.settings().points.conversion;
    let Some(points) = req.points else {
        return Err(Error::invalid("points", "is required"));
    };
    if points < conv.minimum_redemption {
        return Err(Error::invalid(
            "points",
            format!("must be at least {}", conv.minimum_redemption),
        ));
    }
    if points % conv.points_per_euro != 0 {
        return Err(Error::invalid(
            "points",
            format!("must be a multiple of {} (1 €)", conv.points_per_euro),
        ));
    }
    let member = members::require(app, caller).await?;
    // The balance is the stored one plus the votes' points, which only the
    // member's own withdrawals can lower: read first, the condition below
    // still holds the debit to what the member has.
    let from_votes = vote_points(app, &member.id).await?;
    let Some(card) = member.loyalty_card.clone() else {
        return Err(Error::invalid(
            "loyalty_card",
            "add your loyalty card (PATCH /members/me) before converting points into euros",
        ));
    };
    // The euros go to a card the loyalty programme confirmed exists
    // (cards.rs): a card still being checked cannot receive them yet.
    if member
        .loyalty_card_status
        .as_deref()
        .unwrap_or(crate::cards::CONFIRMED)
        != crate::cards::CONFIRMED
    {
        return Err(card_pending());
    }
    let cents = points * 100 / conv.points_per_euro;
    let euros = format!("{}.{:02}", cents / 100, cents % 100);
    let id = ulid::Ulid::new().to_string();
    let at = now();
    let r = Redemption {
        id: id.clone(),
        points,
        euros: euros.clone(),
        status: "pending".into(),
        created_at: at.clone(),
    };
    let entry = LedgerEntry {
        id: id.clone(),
        delta: -points,
        reason: "redemption".into(),
        label: format!("Conversion en {euros} € sur la carte de fidélité"),
        reference: id.clone(),
        created_at: at.clone(),
    };
    let key = crate::loyalty::redemption_key(&member.id, &id);
    let redemption_item = json!({"pk": key.pk, "sk": key.sk, "id": id, "points": points,
        "euros": euros, "status": "pending", "created_at": at});
    let Value::Object(redemption_item) = redemption_item else {
        return Err(Error::Store(StoreError::Invalid("redemption".into())));
    };
    let event = Event::new(
        Kind::PointsRedeemed,
        &member.id,
        None,
        json!({"redemption_id": id, "points": points, "euros": euros, "loyalty_card": card}),
    );
    let writes = vec![
        Write::update(
            members::key(&caller.id),
            Update::default().add("points_balance", -points),
        )
        .when(
            Cond::AtLeast("points_balance".into(), points - from_votes)
                // Still the card read above, still confirmed.
                .and(Cond::Eq("loyalty_card".into(), json!(card)))
                .and(Cond::AttrAbsent("loyalty_card_status".into()).or(Cond::Eq(
                    "loyalty_card_status".into(),
                    json!(crate::cards::CONFIRMED),
                ))),
        ),
        ledger_write(&member.id, &entry),
        Write::put_new(redemption_item),
        // Finds the member from the loyalty programme's answer, and lists
        // the redemption as pending until then (loyalty.rs).
        Write::put_new(crate::loyalty::pointer_item(&member.id, &id, &at)),
        event.write(),
    ];
    let body = serde_json::to_value(&r).map_err(|e| Error::Store(StoreError::unavailable(e)))?;
    match commit(&app.table, writes, receipt.map(|rc| (rc, 202, &body))).await {
        Ok(()) => {
            crate::metrics::record_redemption(points);
            Ok(r)
        }
        Err(e) if e.failed_on(&members::key(&caller.id)) => {
            // The card changed meanwhile (unlinked by the loyalty
            // programme, or another one linked), or the balance is short.
            let now = members::require(app, caller).await?;
            let same_card = now.loyalty_card.as_deref() == Some(card.as_str())
                && now
                    .loyalty_card_status
                    .as_deref()
                    .unwrap_or(crate::cards::CONFIRMED)
                    == crate::cards::CONFIRMED;
            if same_card {
                Err(Error::Conflict(format!(
                    "your balance is below {points} points"
                )))
            } else if now.loyalty_card.is_none() {
                Err(Error::invalid(
                    "loyalty_card",
                    "add your loyalty card (PATCH /members/me) before converting points into euros",
                ))
            } else {
                Err(card_pending())
            }
        }
        Err(e) => Err(e),
    }
}

fn card_pending() -> Error {
    Error::ConflictOn(crate::domain::FieldError::new(
        "loyalty_card",
        "your loyalty card is being checked by the loyalty programme: convert your points once it is confirmed (loyalty_card_status)",
    ))
}
