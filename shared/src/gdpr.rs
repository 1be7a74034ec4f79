//! GDPR: the export of everything held about a member
//! (`GET /members/me/export`) and erasure (`DELETE /members/me`).
//!
//! Everything personal is reachable from the member without a scan:
//! - the member's partition `MEMBER#{id}`: profile, ledger, redemptions,
//!   daily caps, contribution pointers (`CONTRIB#…`, see `contrib`), sent-mail
//!   records (`MAIL#…`), idempotency receipts (`IDEMP#…`), basket weeks and
//!   sums (`BASKET#…`, `BASKETS`: `baskets`; exported, deleted by erasure);
//! - the votes, in gsi3 `MEMBER#{id}` / `VOTE#…`;
//! - the follow records, in gsi3 `MEMBER#{id}` / `FOLLOW#…` (`follows`):
//!   exported, and deleted by erasure;
//! - the loyalty-card guard `CARD#{sha256(card)}`, from the profile's card;
//! - each contribution, through its pointer; a contest entry also leads to
//!   its per-contest card guard and to the contest's draw (winners' names);
//! - challenge participations, from the member's proposals (ideas) and
//!   votes, which carry `challenge_id`; survey responses and event
//!   registrations, by their keys (the member's pseudonym per survey,
//!   `REG#{member}` per event) in the `SURVEYS` and `RTABLES` lists
//!   (`campaign_sections`, `scrub_campaigns`).
//!
//! Erasure runs in three idempotent phases, so a retry after a partial run
//! (a timeout, a crash, a member with thousands of items and so many
//! transactions) finishes the work:
//! 1. `erasing_at` is set on the profile: from then on the member is treated
//!    as absent (no new contributions, no redemption);
//! 2. every contribution is anonymised (author shown as "Ancien membre",
//!    contest answers and application motivations removed), per-contest card
//!    guards deleted, draw results renamed, sent-mail records lose their
//!    address, receipts are deleted — in groups of at most 25 writes;
//!    challenge participant records and survey responses deleted (their
//!    aggregates kept), then event registrations cancelled (a seat freed
//!    as by a cancellation, the waitlist promoted once) or, for an event
//!    already held, deleted;
//! 3. one transaction turns the profile into a tombstone without personal
//!    data (email consent revoked, card removed), closes the ledger with a
//!    forfeit entry of the remaining balance (conditional on the balance read,
//!    so the ledger still sums to the balance, now 0), frees the card guard
//!    and writes the `member.erased` event.
//!
//! A second `DELETE` re-runs phase 2 (harmless) and answers 202 again.

use crate::app::App;
use crate::auth::Caller;
use crate::contests::entry_card_key;
use crate::contrib::{self, ContribKind};
use crate::domain::now;
use crate::error::{Error, Result};
use crate::events::{Event, Kind};
use crate::members;
use crate::points::{ledger_write, LedgerEntry};
use crate::store::{Cond, Index, Item, Key, Query, SortKey, StoreError, Table, Update, Write};
use serde_json::{json, Map, Value};

/// How an erased member is shown as the author of a contribution.
pub const FORMER_MEMBER: &str = "Ancien membre";
/// Writes per erasure transaction (well under the store's 100).
const CHUNK: usize = 25;

/// Every item of a partition (or one index partition), page after page.
async fn all<T: Table>(app: &App<T>, index: Index, pk: &str, sk: SortKey) -> Result<Vec<Item>> {
    let mut out = Vec::new();
    let mut start = None;
    loop {
        let mut q = Query::new(index, pk)
            .sk(sk.clone())
            .limit(1000)
            .start_after(start.take());
        q.consistent = index == Index::Primary;
        let page = app.table.query(&q).await?;
        out.extend(page.items);
        match page.last_key {
            Some(k) => start = Some(k),
            None => return Ok(out),
        }
    }
}

fn member_pk(id: &str) -> String {
    crate::members::pk(id)
}

/// An item without its key and index attributes (what the export shows).
fn public(mut item: Item) -> Value {
    for a in [
        "pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk", "gsi3pk", "gsi3sk", "ttl",
    ] {
        item.remove(a);
    }
    Value::Object(item)
}

fn sk_of(item: &Item) -> &str {
    item.get("sk").and_then(Value::as_str).unwrap_or_default()
}

/// The targets of the member's contribution pointers, with their kind.
async fn contributions<T: Table>(
    app: &App<T>,
    partition: &[Item],
) -> Result<Vec<(ContribKind, Key, Option<Item>)>> {
    let pointers: Vec<(ContribKind, Key)> = partition
        .iter()
        .filter(|i| sk_of(i).starts_with(contrib::PREFIX))
        .filter_map(contrib::target_of)
        .collect();
    let mut found = std::collections::HashMap::new();
    let mut keys: Vec<Key> = pointers.iter().map(|(_, k)| k.clone()).collect();
    // An idea's body is its own item (ideas.rs).
    let bodies: Vec<Key> = pointers
        .iter()
        .filter(|(kind, _)| *kind == ContribKind::Idea)
        .map(|(_, k)| Key::new(k.pk.clone(), "BODY"))
        .collect();
    keys.extend(bodies);
    keys.sort();
    keys.dedup();
    let mut body_of = std::collections::HashMap::new();
    for chunk in keys.chunks(100) {
        for item in app.table.get_many(chunk, true).await? {
            if let Some(k) = Key::of(&item) {
                if k.sk == "BODY" {
                    if let Some(b) = item.get("body") {
                        body_of.insert(k.pk.clone(), b.clone());
                    }
                    continue;
                }
                found.insert(k, item);
            }
        }
    }
    for (k, item) in found.iter_mut() {
        if let Some(b) = body_of.get(&k.pk) {
            item.entry("body").or_insert_with(|| b.clone());
        }
    }
    Ok(pointers
        .into_iter()
        .map(|(kind, k)| {
            let item = found.get(&k).cloned();
            (kind, k, item)
        })
        .collect())
}

/// `GET /members/me/export`: one JSON document with everything held about
/// the caller. 404 when not signed up (or erased).
pub async fn export<T: Table>(app: &App<T>, caller: &Caller) -> Result<Value> {
    let id = caller.id.as_str();
    let row = members::get(app, &caller.id).await?;
    let partition = all(app, Index::Primary, &member_pk(id), SortKey::All).await?;
    let votes = all(
        app,
        Index::Gsi3,
        &member_pk(id),
        crate::votes::member_votes(),
    )
    .await?;
    let follows: Vec<Value> = crate::follows::all_of(app, id)
        .await?
        .into_iter()
        .map(|f| {
            json!({"idea_id": f.get("idea_id"), "following": f.get("following"),
                   "source": f.get("source"), "at": f.get("at")})
        })
        .collect();
    let mut sections: Map<String, Value> = Map::new();
    for name in [
        "ideas",
        "comments",
        "contest_entries",
        "product_test_applications",
        "reviews",
        "reports",
    ] {
        sections.insert(name.into(), json!([]));
    }
    let mut proposals = Vec::new();
    for (kind, _, item) in contributions(app, &partition).await? {
        let Some(item) = item else { continue };
        if kind == ContribKind::Idea {
            proposals.extend(challenge_pair(&item, "id"));
        }
        let name = match kind {
            ContribKind::Idea => "ideas",
            ContribKind::Comment => "comments",
            ContribKind::Entry => "contest_entries",
            ContribKind::Application => "product_test_applications",
            ContribKind::Review => "reviews",
            ContribKind::Report => "reports",
        };
        if let Some(Value::Array(a)) = sections.get_mut(name) {
            a.push(public(item));
        }
    }
    let mut ledger = Vec::new();
    let mut redemptions = Vec::new();
    let mut mails = Vec::new();
    let mut caps = Vec::new();
    let mut baskets = Vec::new();
    let mut other = Vec::new();
    for item in partition {
        let sk = sk_of(&item).to_owned();
        if sk == "PROFILE" || sk.starts_with(contrib::PREFIX) {
            continue;
        } else if sk.starts_with(crate::points::LEDGER_PREFIX) {
            ledger.push(public(item));
        } else if sk.starts_with(crate::loyalty::REDEMPTION_PREFIX) {
            redemptions.push(public(item));
        } else if sk.starts_with(crate::mail::SENT_PREFIX) {
            mails.push(public(item));
        } else if sk.starts_with(crate::points::CAP_PREFIX) {
            let mut v = public(item);
            v["counter"] = json!(sk);
            caps.push(v);
        } else if sk.starts_with(crate::receipt::RECEIPT_PREFIX) {
            // Copies of responses already listed above, kept one day.
        } else if sk.starts_with(crate::baskets::PREFIX) {
            // The loyalty programme's weekly basket summaries (baskets.rs).
            let mut v = public(item);
            v["record"] = json!(sk);
            baskets.push(v);
        } else {
            let mut v = public(item);
            v["record"] = json!(sk);
            other.push(v);
        }
    }
    // The votes' points are part of the balance and of the ledger (points.rs).
    let vote_credits = crate::points::vote_credits(app, id).await?;
    let from_votes: i64 = vote_credits.iter().map(|e| e.delta).sum();
    for e in &vote_credits {
        ledger.push(serde_json::to_value(e).unwrap_or(Value::Null));
    }
    let voted: Vec<(String, String)> = votes
        .iter()
        .filter_map(|v| challenge_pair(v, "idea_id"))
        .collect();
    sections.extend(campaign_sections(app, id, &proposals, &voted).await?);
    let votes: Vec<Value> = votes
        .into_iter()
        .map(|v| json!({"idea_id": v.get("idea_id"), "voted_at": v.get("created_at")}))
        .collect();
    let mut doc = json!({
        "generated_at": now(),
        "profile": {
            "id": row.id, "display_name": row.display_name, "email": row.email,
            "loyalty_card": row.loyalty_card,
            "loyalty_card_status": crate::cards::status_of(row.loyalty_card.as_deref(), row.loyalty_card_status.as_deref()),
            "points_balance": row.points_balance + from_votes,
            "level": row.level, "ambassador": row.ambassador, "joined_at": row.joined_at,
        },
        "consents": {
            "terms": {"version": row.terms_version, "accepted_at": row.terms_accepted_at},
            "email_opt_in": {"value": row.email_opt_in, "at": row.email_opt_in_at},
        },
        "preferences": {
            "auto_follow": row.auto_follow,
            "notifications": {
                "idea_updates": row.idea_updates,
                "comment_digest": row.comment_digest,
                "community_news": row.community_news,
            },
        },
        "follows": follows,
        "invite": {"cohort": row.cohort, "invite_code": row.invite_code},
        "votes": votes,
        "points_ledger": ledger,
        "redemptions": redemptions,
        "emails_sent": mails,
        "daily_point_caps": caps,
        "basket_weeks": baskets,
        "other_records": other,
    });
    if let Value::Object(d) = &mut doc {
        d.extend(sections);
    }
    Ok(doc)
}

/// `(challenge, idea)` of a proposal (an idea row, `id`) or of a vote on
/// one (a vote record, `idea_id`): both carry `challenge_id`.
fn challenge_pair(item: &Item, idea_attr: &str) -> Option<(String, String)> {
    let c = item.get("challenge_id")?.as_str()?;
    let i = item.get(idea_attr)?.as_str()?;
    Some((c.to_owned(), i.to_owned()))
}

/// The export's sections of the campaigns a member takes part in beyond
/// contributions: challenges (the participations; the proposals are in
/// `ideas`), surveys (the member's own answers) and events (registrations,
/// waitlist, attendance).
async fn campaign_sections<T: Table>(
    app: &App<T>,
    member: &str,
    proposals: &[(String, String)],
    voted: &[(String, String)],
) -> Result<Map<String, Value>> {
    let taken = crate::challenges::taken_part(app, proposals, voted, false).await?;
    let mut out = Map::new();
    out.insert(
        "challenge_participations".into(),
        json!(crate::challenges::export_of(&taken)),
    );
    out.insert(
        "survey_responses".into(),
        json!(crate::surveys::export_of(app, member).await?),
    );
    out.insert(
        "event_registrations".into(),
        json!(crate::roundtables::export_of(app, member).await?),
    );
    Ok(out)
}

/// Phase 2 for those campaigns: the challenges' participant records
/// deleted (and a published winner's author renamed), the survey
/// responses deleted (the results' counters stay: anonymous), then each
/// event registration cancelled (an event not started yet: its seat freed
/// and the first waiting member promoted, once, as on a cancellation) or
/// deleted (an event already started). Idempotent, as the whole phase.
async fn scrub_campaigns<T: Table>(
    app: &App<T>,
    member: &str,
    proposals: &[(String, String)],
) -> Result<()> {
    let votes = all(
        app,
        Index::Gsi3,
        &member_pk(member),
        crate::votes::member_votes(),
    )
    .await?;
    let voted: Vec<(String, String)> = votes
        .iter()
        .filter_map(|v| challenge_pair(v, "idea_id"))
        .collect();
    let taken = crate::challenges::taken_part(app, proposals, &voted, true).await?;
    let mut writes = crate::challenges::erase_writes(&taken, member, FORMER_MEMBER);
    writes.extend(crate::surveys::erase_writes(app, member).await?);
    run_chunks(app, writes).await?;
    crate::roundtables::erase_member(app, member).await?;
    Ok(())
}

/// The update that anonymises one contribution of `member`.
fn anonymise(item: &Item) -> Update {
    let mut u = Update::default().set("author_erased", true);
    if item.contains_key("author_name") {
        u = u.set("author_name", FORMER_MEMBER);
    }
    if item.contains_key("display_name") {
        u = u.set("display_name", FORMER_MEMBER);
    }
    if let Some(Value::Object(a)) = item.get("author") {
        let mut a = a.clone();
        a.insert("display_name".into(), json!(FORMER_MEMBER));
        u = u.set("author", Value::Object(a));
    }
    for f in ["answers", "motivation", "email", "author_email"] {
        if item.contains_key(f) {
            u = u.remove(f);
        }
    }
    u
}

/// The contest's draw result with this member's name replaced, if it names them.
fn renamed_draw(contest: &Item, contest_id: &str, member: &str) -> Option<Value> {
    let mut draw = contest.get("draw")?.clone();
    let pseudonym = crate::draw::pseudonym(contest_id, member);
    let mut changed = false;
    for w in draw["winners"].as_array_mut()? {
        if w["pseudonym"] == json!(pseudonym) && w["display_name"] != json!(FORMER_MEMBER) {
            w["display_name"] = json!(FORMER_MEMBER);
            changed = true;
        }
    }
    changed.then_some(draw)
}

async fn run_chunks<T: Table>(app: &App<T>, writes: Vec<Write>) -> Result<()> {
    for chunk in writes.chunks(CHUNK) {
        let mut attempt = 0;
        loop {
            match app.table.transact(chunk.to_vec()).await {
                Ok(()) => break,
                Err(StoreError::Conflict | StoreError::Throttled) if attempt < 5 => {
                    crate::retry::pause(attempt).await;
                    attempt += 1;
                }
                Err(StoreError::Conflict | StoreError::Throttled) => return Err(Error::Busy),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Phase 2: contributions, guards, draws, mail records, receipts.
async fn scrub<T: Table>(app: &App<T>, member: &str, card: Option<&str>) -> Result<()> {
    let partition = all(app, Index::Primary, &member_pk(member), SortKey::All).await?;
    let mut writes = Vec::new();
    let mut contests = Vec::new();
    let mut proposals = Vec::new();
    for (kind, k, item) in contributions(app, &partition).await? {
        let Some(item) = item else { continue };
        if kind == ContribKind::Idea {
            proposals.extend(challenge_pair(&item, "id"));
        }
        // Only an existing item is rewritten (an update would create it).
        writes.push(Write::update(k, anonymise(&item)).when(Cond::Exists));
        if kind == ContribKind::Entry {
            if let Some(cid) = item.get("contest_id").and_then(Value::as_str) {
                contests.push(cid.to_owned());
                if let Some(c) = card {
                    writes.push(Write::Delete {
                        key: entry_card_key(cid, c),
                        cond: Some(Cond::NotExists.or(Cond::Eq("member_id".into(), json!(member)))),
                    });
                }
            }
        }
    }
    for cid in contests {
        let ck = crate::campaigns::contest_key(&cid);
        if let Some(contest) = app.table.get(&ck, true).await? {
            if let Some(draw) = renamed_draw(&contest, &cid, member) {
                writes.push(
                    Write::update(ck, Update::default().set("draw", draw)).when(Cond::Exists),
                );
            }
        }
    }
    // Which ideas the member follows is theirs alone: deleted.
    writes.extend(crate::follows::erase_writes(app, member).await?);
    for item in &partition {
        let sk = sk_of(item);
        let Some(k) = Key::of(item) else { continue };
        if sk.starts_with(crate::mail::SENT_PREFIX) && item.contains_key("to") {
            writes.push(Write::update(k, Update::default().remove("to")).when(Cond::Exists));
        } else if sk.starts_with(crate::receipt::RECEIPT_PREFIX)
            || sk.starts_with(crate::baskets::PREFIX)
        {
            // Receipts, and the weekly basket summaries (baskets.rs).
            writes.push(Write::Delete { key: k, cond: None });
        }
    }
    run_chunks(app, writes).await?;
    scrub_campaigns(app, member, &proposals).await
}

/// `DELETE /members/me`: erases the caller's personal data (see the module
/// doc). Idempotent: an erased member's `DELETE` finishes any leftover work
/// and answers the same. 404 when the caller never signed up.
pub async fn erase<T: Table>(app: &App<T>, caller: &Caller) -> Result<Value> {
    let id = caller.id.as_str();
    let k = members::key(&caller.id);
    let Some(profile) = app.table.get(&k, true).await? else {
        return Err(Error::NotFound("member"));
    };
    if let Some(at) = profile.get("erased_at").and_then(Value::as_str) {
        let at = at.to_owned();
        scrub(app, id, None).await?;
        return Ok(json!({"status": "erased", "erased_at": at}));
    }
    // Phase 1: the member is closed to every write from now on.
    if !profile.contains_key("erasing_at") {
        match app
            .table
            .transact(vec![Write::update(
                k.clone(),
                // Out of the community news index from now on.
                members::out_of_news(Update::default().set("erasing_at", now())),
            )
            .when(Cond::Exists)])
            .await
        {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let card = profile
        .get("loyalty_card")
        .and_then(Value::as_str)
        .map(str::to_owned);
    // Phase 2.
    scrub(app, id, card.as_deref()).await?;
    // Phase 3: the tombstone, the ledger's closing entry, the card, the event.
    let from_votes = crate::points::vote_points(app, id).await?;
    for _ in 0..8 {
        let Some(p) = app.table.get(&k, true).await? else {
            return Err(Error::NotFound("member"));
        };
        if let Some(at) = p.get("erased_at").and_then(Value::as_str) {
            return Ok(json!({"status": "erased", "erased_at": at}));
        }
        let at = now();
        let balance = p.get("points_balance").and_then(Value::as_i64).unwrap_or(0);
        let balance_cond = match p.get("points_balance") {
            Some(v) => Cond::Eq("points_balance".into(), v.clone()),
            None => Cond::AttrAbsent("points_balance".into()),
        };
        let tombstone = Update::default()
            .set("display_name", FORMER_MEMBER)
            .set("email", "")
            .set("email_opt_in", false)
            .set("email_opt_in_at", at.as_str())
            .set("erased_at", at.as_str())
            .set("points_balance", 0)
            .remove("loyalty_card")
            .remove("loyalty_card_status")
            .remove("loyalty_card_link")
            .remove("invite_code")
            .remove("erasing_at")
            // Out of the community news index (phase 1 took it out already,
            // unless it ran before the index existed).
            .remove("gsi1pk")
            .remove("gsi1sk");
        let mut writes = vec![Write::update(k.clone(), tombstone).when(
            Cond::Exists
                .and(Cond::AttrAbsent("erased_at".into()))
                .and(balance_cond),
        )];
        if balance != 0 {
            let entry = LedgerEntry {
                id: ulid::Ulid::new().to_string(),
                delta: -balance,
                reason: "erasure".into(),
                label: "Points perdus : compte supprimé à la demande du membre".into(),
                reference: Kind::MemberErased.as_str().into(),
                created_at: at.clone(),
            };
            writes.push(ledger_write(id, &entry));
        }
        if let Some(c) = p.get("loyalty_card").and_then(Value::as_str) {
            writes.push(members::free_card(c, id));
        }
        writes.push(
            Event::new(
                Kind::MemberErased,
                id,
                None,
                // The votes stay (pseudonymous), and their points with
                // them, but nobody can spend them: forfeited as well.
                json!({"forfeited_points": (balance + from_votes).max(0)}),
            )
            .write(),
        );
        match app.table.transact(writes).await {
            Ok(()) => return Ok(json!({"status": "erased", "erased_at": at})),
            // The balance moved (a credit landed) or another erasure won: read again.
            Err(e) if e.failed_on(&k) => {}
            Err(StoreError::Conflict | StoreError::Throttled) => {}
            Err(StoreError::ConditionFailed { .. }) => {
                return Err(Error::Conflict(
                    "the loyalty card could not be released; contact support".into(),
                ))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Busy)
}
