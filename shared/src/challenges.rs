//! Co-creation challenges (défis): a question put to the members by
//! marketing or a sponsoring brand. Members post proposals (ideas tied to the
//! challenge) while it is open and vote on them with `PUT /ideas/{id}/vote`;
//! after it closes its owner publishes the results (winners and an answer),
//! once; every participant is told, winners earn their points once, and a
//! winning proposal is `accepted`, so the committee's progress route takes
//! it on (`in_progress`, then `implemented`: on shelves).
//!
//! Keys (see docs/architecture.md, "Co-creation challenges"):
//! - challenge `CHALLENGE#{id} / CHALLENGE` (gsi1 `CHALLENGES` /
//!   `{opens_at}#{id}`), written by `campaigns apply`; `results` set once;
//! - a proposal is an idea row (`ideas::IdeaRow`, `challenge_id` set) whose
//!   gsi4 partition is `PROPOSALS#{challenge}` (`ideas::home_pk`), sorted by
//!   its rolled-up votes: the challenge's `top` list, moved by the vote
//!   aggregator's roll-up like the home list, one write per proposal per
//!   batch, never one per vote;
//! - the `new` list `CHPROPS#{challenge} / {created_at}#{idea}` (a pointer,
//!   written with the proposal; the rows are read in one BatchGetItem);
//! - participants `CHPART#{challenge}#{00-15} / {member}`: the author's put
//!   with the proposal, every voter's by the insights consumer, which counts
//!   each member once (`counted`); the results' mail pages read them;
//! - participation figures `CHSTATS#{challenge} / {00-15}` (proposals,
//!   participants, votes), folded per batch by the insights consumer on a
//!   random shard; one Query of the partition sums them.

use crate::app::App;
use crate::auth::{Caller, MARKETING};
use crate::campaigns::{challenge_key, config_of, ChallengeConfig, Sponsor, CHALLENGES_PK};
use crate::domain::{now, parse_ts, FieldError, IdeaId, IdeaStatus};
use crate::error::{commit, Error, Result};
use crate::events::{Event, Kind};
use crate::ideas::{self, IdeaCard, ListPage, NewIdea, Sort, Within};
use crate::receipt::Receipt;
use crate::store::{cursor, Cond, Index, Item, Key, Query, StoreError, Table, Update, Write};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Partitions of a challenge's participants and of its figures.
pub const BUCKETS: u32 = 16;
/// At most this many winners per challenge.
pub const MAX_WINNERS: usize = 10;

fn bucket(member: &str) -> u32 {
    let h = Sha256::digest(member.as_bytes());
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) % BUCKETS
}

/// The `new` list of a challenge's proposals (pointers).
pub fn proposals_pk(challenge: &str) -> String {
    format!("CHPROPS#{challenge}")
}

pub fn participants_pk(challenge: &str, bucket: u32) -> String {
    format!("CHPART#{challenge}#{bucket:02}")
}

/// A participant's record (author of a proposal, or voter on one).
pub fn participant_key(challenge: &str, member: &str) -> Key {
    Key::new(participants_pk(challenge, bucket(member)), member)
}

pub fn stats_pk(challenge: &str) -> String {
    format!("CHSTATS#{challenge}")
}

/// Adds to a challenge's figures on a random shard (insights consumer).
pub fn stats_write(challenge: &str, adds: &[(&str, i64)]) -> Option<Write> {
    use rand::Rng;
    let shard = rand::rng().random_range(0..BUCKETS);
    let mut u = Update::default().set("challenge_id", challenge);
    let mut any = false;
    for (a, n) in adds.iter().filter(|(_, n)| *n != 0) {
        u = u.add(a, *n);
        any = true;
    }
    any.then(|| Write::update(Key::new(stats_pk(challenge), format!("{shard:02}")), u))
}

/// A challenge's participation (insights): proposals, distinct
/// participants (authors and voters), votes cast on its proposals.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Participation {
    pub proposals: i64,
    pub participants: i64,
    pub votes: i64,
}

/// Sums the figures' shards: one Query of the challenge's partition.
pub async fn participation<T: Table>(app: &App<T>, challenge: &str) -> Result<Participation> {
    let page = app
        .table
        .query(&Query::new(Index::Primary, stats_pk(challenge)).limit(BUCKETS))
        .await?;
    let mut p = Participation::default();
    for i in &page.items {
        let n = |a: &str| i.get(a).and_then(Value::as_i64).unwrap_or(0);
        p.proposals += n("proposals");
        p.participants += n("participants");
        p.votes += n("votes");
    }
    Ok(p)
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ChallengeView {
    pub id: String,
    pub title: String,
    pub question: String,
    pub brief: String,
    pub theme: String,
    pub sponsor: Option<Sponsor>,
    pub opens_at: String,
    pub closes_at: String,
    pub proposal_points: i64,
    pub winner_points: i64,
    /// upcoming, open, closed or decided.
    pub status: &'static str,
    pub proposal_count: i64,
    /// Present once published: winners, answer, publication time.
    pub results: Option<Value>,
}

fn status(c: &ChallengeConfig, decided: bool, at: time::OffsetDateTime) -> &'static str {
    if decided {
        return "decided";
    }
    match (parse_ts(&c.opens_at), parse_ts(&c.closes_at)) {
        (Some(o), _) if at < o => "upcoming",
        (_, Some(cl)) if at < cl => "open",
        _ => "closed",
    }
}

fn config(item: &Item) -> Result<ChallengeConfig> {
    config_of(item).ok_or_else(|| Error::Store(StoreError::Invalid("challenge config".into())))
}

async fn view<T: Table>(app: &App<T>, item: &Item) -> Result<ChallengeView> {
    let c = config(item)?;
    let results = item.get("results").cloned();
    let p = participation(app, &c.id).await?;
    Ok(ChallengeView {
        status: status(&c, results.is_some(), time::OffsetDateTime::now_utc()),
        proposal_count: p.proposals.max(0),
        results,
        id: c.id,
        title: c.title,
        question: c.question,
        brief: c.brief,
        theme: c.theme,
        sponsor: c.sponsor,
        opens_at: c.opens_at,
        closes_at: c.closes_at,
        proposal_points: c.proposal_points,
        winner_points: c.winner_points,
    })
}

async fn load<T: Table>(app: &App<T>, id: &str, consistent: bool) -> Result<Item> {
    app.table
        .get(&challenge_key(id), consistent)
        .await?
        .ok_or(Error::NotFound("challenge"))
}

/// `GET /challenges`: newest opening first.
pub async fn list<T: Table>(
    app: &App<T>,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<ChallengeView>> {
    let start = cursor::start(cursor_in.as_deref(), Index::Gsi1, CHALLENGES_PK)?;
    let page = app
        .table
        .query(
            &Query::new(Index::Gsi1, CHALLENGES_PK)
                .backward()
                .limit(limit)
                .start_after(start),
        )
        .await?;
    let items = futures::future::try_join_all(page.items.iter().map(|i| view(app, i))).await?;
    Ok(ListPage {
        items,
        next_cursor: page.last_key.as_ref().map(cursor::encode),
    })
}

/// `GET /challenges/{id}`.
pub async fn get<T: Table>(app: &App<T>, id: &str) -> Result<ChallengeView> {
    let item = load(app, id, false).await?;
    view(app, &item).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProposal {
    pub title: Option<String>,
    pub body: Option<String>,
}

/// `POST /challenges/{id}/proposals`: an idea in the challenge's theme,
/// posted by `ideas::create_in` (one transaction: the row, its body, its
/// `idea.posted` event with the challenge and its points, the search
/// postings, the challenge's `new` pointer and the author's participant
/// record). 409 unless the challenge is open.
pub async fn propose<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &str,
    req: NewProposal,
    receipt: Option<&Receipt>,
) -> Result<ideas::IdeaView> {
    let item = load(app, id, false).await?;
    let c = config(&item)?;
    let st = status(
        &c,
        item.contains_key("results"),
        time::OffsetDateTime::now_utc(),
    );
    if st != "open" {
        return Err(Error::Conflict(format!(
            "this challenge does not take proposals (it is {st})"
        )));
    }
    let cid = c.id.clone();
    let within = Within {
        challenge_id: c.id.clone(),
        points: c.proposal_points,
        writes: Box::new(move |row: &ideas::IdeaRow| {
            let mut out = Vec::new();
            let pointer = json!({"pk": proposals_pk(&cid),
                "sk": format!("{}#{}", row.created_at, row.id),
                "idea_id": row.id, "author_id": row.author_id});
            if let Value::Object(p) = pointer {
                out.push(Write::put(p));
            }
            // An update, not a put: the member may have voted first, and
            // then insights counted them already (`counted` is kept).
            out.push(Write::update(
                participant_key(&cid, &row.author_id),
                Update::default()
                    .set("member_id", row.author_id.as_str())
                    .set("challenge_id", cid.as_str())
                    .set("author", true),
            ));
            out
        }),
    };
    let req = NewIdea {
        theme: Some(c.theme.clone()),
        title: req.title,
        body: req.body,
    };
    ideas::create_in(app, caller, req, receipt, Some(within)).await
}

/// `GET /challenges/{id}/proposals?sort=new|top`: cards, like `GET /ideas`.
/// `top` is one Query of gsi4 `PROPOSALS#{id}`; `new` one Query of the
/// challenge's pointers and one BatchGetItem of their rows (a hidden or
/// merged proposal is left out of the page).
pub async fn proposals<T: Table>(
    app: &App<T>,
    id: &str,
    sort: Sort,
    limit: u32,
    cursor_in: Option<String>,
) -> Result<ListPage<IdeaCard>> {
    load(app, id, false).await?;
    let limit = limit.clamp(1, 100);
    match sort {
        Sort::Top => {
            let pk = ideas::home_pk(Some(id));
            let start = cursor::start(cursor_in.as_deref(), Index::Gsi4, &pk)?;
            let page = app
                .table
                .query(
                    &Query::new(Index::Gsi4, pk)
                        .backward()
                        .limit(limit)
                        .start_after(start),
                )
                .await?;
            let items = page
                .items
                .into_iter()
                .map(|i| {
                    ideas::card_from(i).map(|mut c| {
                        c.challenge_id = Some(id.to_owned());
                        c
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(ListPage {
                items,
                next_cursor: page.last_key.as_ref().map(cursor::encode),
            })
        }
        Sort::New => {
            let pk = proposals_pk(id);
            let start = cursor::start(cursor_in.as_deref(), Index::Primary, &pk)?;
            let page = app
                .table
                .query(
                    &Query::new(Index::Primary, pk)
                        .backward()
                        .limit(limit)
                        .start_after(start),
                )
                .await?;
            let ids: Vec<IdeaId> = page
                .items
                .iter()
                .filter_map(|i| i.get("idea_id").and_then(Value::as_str))
                .filter_map(IdeaId::parse)
                .collect();
            let keys: Vec<Key> = ids.iter().map(ideas::key).collect();
            let mut rows = std::collections::HashMap::new();
            for i in crate::store::get_all(&app.table, &keys, false).await? {
                if let Some(rid) = i.get("id").and_then(Value::as_str) {
                    rows.insert(rid.to_owned(), i);
                }
            }
            let mut items = Vec::new();
            for i in &ids {
                let Some(item) = rows.remove(i.as_str()) else {
                    continue;
                };
                if item.contains_key("moderation") || item.contains_key("merged_into") {
                    continue;
                }
                items.push(ideas::card_from(item)?);
            }
            Ok(ListPage {
                items,
                next_cursor: page.last_key.as_ref().map(cursor::encode),
            })
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WinnerRequest {
    pub idea_id: Option<String>,
    pub note: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultsRequest {
    pub winners: Option<Vec<WinnerRequest>>,
    pub answer: Option<String>,
}

/// Trims and checks a text field: `min..=max` characters, and the one
/// control-character rule (`domain::refuse_controls`, multi-line: line
/// breaks and tabs allowed).
fn text(
    field: &str,
    v: Option<&str>,
    min: usize,
    max: usize,
) -> std::result::Result<String, FieldError> {
    let t = v.unwrap_or_default().trim().to_owned();
    let n = t.chars().count();
    if n < min || n > max {
        return Err(FieldError::new(
            field,
            if v.is_none() && min > 0 {
                "is required".to_owned()
            } else {
                format!("must be {min} to {max} characters long (it is {n})")
            },
        ));
    }
    crate::domain::refuse_controls(field, &t, true)?;
    Ok(t)
}

/// Whether `caller` may publish the results of `c`: marketing, or a
/// partner token acting for the sponsoring brand.
pub fn owns(caller: &Caller, c: &ChallengeConfig) -> bool {
    caller.in_group(MARKETING)
        || c.sponsor
            .as_ref()
            .is_some_and(|s| caller.acts_for_brand(&s.brand))
}

/// `POST /challenges/{id}/results`: after close, once (a conditional write
/// of `results` with the `challenge.decided` event; a second publication is
/// 409). Winning proposals still open or under review become `accepted`
/// in the same transaction (the committee's progress route then follows
/// them to the shelves).
pub async fn publish<T: Table>(
    app: &App<T>,
    caller: &Caller,
    id: &str,
    req: ResultsRequest,
) -> Result<ChallengeView> {
    let item = load(app, id, true).await?;
    let c = config(&item)?;
    if !owns(caller, &c) {
        return Err(Error::Forbidden(
            "only marketing or the challenge's sponsoring brand may publish its results".into(),
        ));
    }
    let st = status(
        &c,
        item.contains_key("results"),
        time::OffsetDateTime::now_utc(),
    );
    match st {
        "decided" => {
            return Err(Error::Conflict(
                "the results of this challenge are already published".into(),
            ))
        }
        "closed" => {}
        other => {
            return Err(Error::Conflict(format!(
                "results are published once the challenge closes (it is {other})"
            )))
        }
    }
    let mut errs = Vec::new();
    let answer = text("answer", req.answer.as_deref(), 10, 5000)
        .map_err(|e| errs.push(e))
        .ok();
    let mut picked: Vec<(IdeaId, Option<String>)> = Vec::new();
    match &req.winners {
        None => errs.push(FieldError::new("winners", "is required")),
        Some(w) if w.is_empty() || w.len() > MAX_WINNERS => errs.push(FieldError::new(
            "winners",
            format!("must name 1 to {MAX_WINNERS} proposals"),
        )),
        Some(w) => {
            for (i, wr) in w.iter().enumerate() {
                let f = format!("winners[{i}].idea_id");
                match wr.idea_id.as_deref().and_then(IdeaId::parse) {
                    None => errs.push(FieldError::new(f, "must be a proposal's id")),
                    Some(idea) if picked.iter().any(|(p, _)| p == &idea) => {
                        errs.push(FieldError::new(f, "is named twice"))
                    }
                    Some(idea) => {
                        let note = match &wr.note {
                            None => None,
                            Some(n) => match text(&format!("winners[{i}].note"), Some(n), 0, 500) {
                                Ok(n) if n.is_empty() => None,
                                Ok(n) => Some(n),
                                Err(e) => {
                                    errs.push(e);
                                    None
                                }
                            },
                        };
                        picked.push((idea, note));
                    }
                }
            }
        }
    }
    // The winners' rows, consistently: each must be a visible proposal to
    // this challenge.
    let keys: Vec<Key> = picked.iter().map(|(i, _)| ideas::key(i)).collect();
    let mut rows = std::collections::HashMap::new();
    for i in crate::store::get_all(&app.table, &keys, true).await? {
        let row = ideas::row_from(i)?;
        rows.insert(row.id.clone(), row);
    }
    for (n, (idea, _)) in picked.iter().enumerate() {
        let ok = rows.get(idea.as_str()).is_some_and(|r| {
            r.challenge_id.as_deref() == Some(id) && !r.is_hidden() && !r.is_merged()
        });
        if !ok {
            errs.push(FieldError::new(
                format!("winners[{n}].idea_id"),
                "is not a proposal to this challenge",
            ));
        }
    }
    let (Some(answer), true) = (answer, errs.is_empty()) else {
        return Err(Error::Invalid(errs));
    };
    let at = now();
    let mut winners = Vec::new();
    let mut event_winners = Vec::new();
    let mut row_writes = Vec::new();
    for (idea, note) in &picked {
        let Some(row) = rows.get(idea.as_str()) else {
            continue;
        };
        winners.push(json!({"idea_id": row.id, "title": row.title,
            "author": {"id": row.author_id, "display_name": row.author_name},
            "note": note}));
        let accepting = matches!(row.status, IdeaStatus::Open | IdeaStatus::UnderReview);
        event_winners.push(json!({"idea_id": row.id, "member_id": row.author_id,
            "title": row.title, "note": note, "from": row.status.as_str(),
            "accepted": accepting}));
        if accepting {
            row_writes.extend(accept(row, note.as_deref().unwrap_or(&answer), &at));
        }
    }
    let results = json!({"winners": winners, "answer": answer, "published_at": at});
    let by = if caller.in_group(MARKETING) {
        "marketing".to_owned()
    } else {
        format!("brand:{}", caller.brand().unwrap_or_default())
    };
    let event = Event::new(
        Kind::ChallengeDecided,
        caller.id.as_str(),
        None,
        json!({"challenge_id": id, "title": c.title, "theme": c.theme,
               "winners": event_winners, "answer": answer, "by": by,
               "points": (c.winner_points > 0).then_some(c.winner_points)}),
    );
    let mut writes = vec![
        Write::update(
            challenge_key(id),
            Update::default()
                .set("results", results)
                .set("published_by", by.as_str())
                // The results mail's id, for its click rate (brand reports).
                .set(
                    "results_mail_id",
                    crate::mail::templates::challenge_mail_id(&event.event_id),
                ),
        )
        .when(Cond::AttrAbsent("results".into())),
        event.write(),
    ];
    writes.extend(row_writes);
    match commit(&app.table, writes, None).await {
        Ok(()) => {}
        Err(e) if e.failed_on(&challenge_key(id)) => {
            return Err(Error::Conflict(
                "the results of this challenge are already published".into(),
            ))
        }
        Err(Error::Store(StoreError::ConditionFailed { .. })) => {
            return Err(Error::Conflict(
                "a winning proposal changed meanwhile: read it again and publish again".into(),
            ))
        }
        Err(e) => return Err(e),
    }
    let item = load(app, id, true).await?;
    view(app, &item).await
}

/// A winning proposal still open or under review becomes `accepted` (its
/// decision the winner's note, or the challenge's answer), leaves the
/// committee's queue and, unanswered, the answer queue.
fn accept(row: &ideas::IdeaRow, reason: &str, at: &str) -> Vec<Write> {
    let decision = ideas::Decision {
        outcome: IdeaStatus::Accepted,
        reason: reason.to_owned(),
        decided_at: at.to_owned(),
    };
    let mut u = Update::default()
        .set("status", IdeaStatus::Accepted.as_str())
        .set(
            "decision",
            serde_json::to_value(&decision).unwrap_or(Value::Null),
        )
        .remove("gsi3pk")
        .remove("gsi3sk");
    let first_answer = row.answered_at.is_none();
    let mut answered = Cond::Exists;
    if first_answer {
        u = u.set("answered_at", at);
        answered = Cond::AttrAbsent("answered_at".into());
    }
    let (u, listed) = row.relist(u, IdeaStatus::Accepted);
    let Some(id) = IdeaId::parse(&row.id) else {
        return Vec::new();
    };
    let mut out = vec![Write::update(ideas::key(&id), u).when(
        Cond::Eq("status".into(), json!(row.status.as_str()))
            .and(listed)
            .and(answered),
    )];
    if first_answer {
        out.push(crate::answers::answered_write(&row.created_at, &row.id));
    }
    out
}

// ------------------------------------------------------------------- GDPR

/// The challenges a member took part in (GDPR export and erasure), from
/// what the member's side already lists: their proposals (ideas with
/// `challenge_id`, through the contribution pointers) and their votes (the
/// vote record copies the proposal's `challenge_id`). `(challenge, idea)`
/// pairs in, one entry per challenge out: its item (if it still exists)
/// with the member's proposals and the proposals they voted on.
pub struct Taken {
    pub challenge: String,
    pub item: Option<Item>,
    pub proposals: Vec<String>,
    pub voted_on: Vec<String>,
}

pub async fn taken_part<T: Table>(
    app: &App<T>,
    proposals: &[(String, String)],
    votes: &[(String, String)],
    consistent: bool,
) -> Result<Vec<Taken>> {
    let mut by: std::collections::BTreeMap<String, Taken> = std::collections::BTreeMap::new();
    let entry = |by: &mut std::collections::BTreeMap<String, Taken>, c: &str| {
        by.entry(c.to_owned()).or_insert_with(|| Taken {
            challenge: c.to_owned(),
            item: None,
            proposals: Vec::new(),
            voted_on: Vec::new(),
        });
    };
    for (c, idea) in proposals {
        entry(&mut by, c);
        if let Some(t) = by.get_mut(c) {
            t.proposals.push(idea.clone());
        }
    }
    for (c, idea) in votes {
        entry(&mut by, c);
        if let Some(t) = by.get_mut(c) {
            t.voted_on.push(idea.clone());
        }
    }
    let keys: Vec<Key> = by.keys().map(|c| challenge_key(c)).collect();
    for item in crate::store::get_all(&app.table, &keys, consistent).await? {
        if let Ok(c) = config(&item) {
            if let Some(t) = by.get_mut(&c.id) {
                t.item = Some(item);
            }
        }
    }
    Ok(by.into_values().collect())
}

/// The member's participations as `GET /members/me/export` lists them
/// (the proposals themselves are in its `ideas`, with `challenge_id`).
pub fn export_of(taken: &[Taken]) -> Vec<Value> {
    taken
        .iter()
        .map(|t| {
            let title = t
                .item
                .as_ref()
                .and_then(|i| config(i).ok())
                .map(|c| c.title);
            json!({"challenge_id": t.challenge, "title": title,
                   "proposals": t.proposals, "voted_on": t.voted_on})
        })
        .collect()
}

/// Erasure (`gdpr::erase`, phase 2): the member's participant record of
/// each challenge is deleted, and published results that name them as a
/// winner's author show `former` instead (the proposals are ideas,
/// anonymised as the member's other ideas). The participation figures
/// (`CHSTATS`) keep their counts: anonymous aggregates.
pub fn erase_writes(taken: &[Taken], member: &str, former: &str) -> Vec<Write> {
    let mut out = Vec::new();
    for t in taken {
        out.push(Write::Delete {
            key: participant_key(&t.challenge, member),
            cond: None,
        });
        let Some(mut results) = t.item.as_ref().and_then(|i| i.get("results")).cloned() else {
            continue;
        };
        let mut changed = false;
        if let Some(ws) = results["winners"].as_array_mut() {
            for w in ws {
                if w["author"]["id"] == json!(member)
                    && w["author"]["display_name"] != json!(former)
                {
                    w["author"]["display_name"] = json!(former);
                    changed = true;
                }
            }
        }
        if changed {
            out.push(
                Write::update(
                    challenge_key(&t.challenge),
                    Update::default().set("results", results),
                )
                .when(Cond::Exists),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_follow_the_one_control_character_rule_naming_their_field() {
        let ok = text("answer", Some("  Merci à tous,\n\tà bientôt !  "), 10, 5000);
        assert_eq!(ok.as_deref(), Ok("Merci à tous,\n\tà bientôt !"));
        for bad in [
            "Merci à tous\u{7} !",
            "Merci à tous\u{85} !",
            "Merci\u{0} à tous",
        ] {
            let e = text("answer", Some(bad), 10, 5000).expect_err("refused");
            assert_eq!(e.field, "answer");
            assert!(e.message.contains("control characters"), "{}", e.message);
        }
        let e = text("winners[0].note", Some("Bravo\u{1b}"), 0, 500).expect_err("refused");
        assert_eq!(e.field, "winners[0].note");
        let e = text("answer", None, 10, 5000).expect_err("required");
        assert_eq!(
            (e.field.as_str(), e.message.as_str()),
            ("answer", "is required")
        );
    }
}
