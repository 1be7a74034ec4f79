//! `POST /ideas/{id}/merge` through the moderation function's Lambda entry,
//! and the copy of the votes and followers it starts, through the emails
//! consumer's entry (`idea.merged`, `merge.page`), on both adapters.

use community::domain::IdeaId;
use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::ideas::NewIdea;
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::merge::MERGED_FROM;
use community::store::{Index, Query, Table, Write};
use community::testing::{call, caller, embedded_app, join, member, post_idea, As};
use community::votes::{self, VOTER_BUCKETS};
use community::App;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashSet};

const UNKNOWN_IDEA: &str = "01JD0000000000000000000000";
const REASON: &str = "Même proposition que l'idée plus ancienne, regroupée.";

fn moderator() -> As {
    member("mo").in_groups(&["moderator"])
}

fn merge_body(into: &str) -> Value {
    json!({"into": into, "reason": REASON})
}

async fn outbox<T: Table>(app: &App<T>) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, outbox_pk(b)).limit(1000);
        let items = community::store::all_pages(&app.table, q)
            .await
            .expect("outbox");
        out.extend(items.iter().filter_map(Event::from_item));
    }
    out
}

async fn count<T: Table>(app: &App<T>, kind: Kind) -> usize {
    outbox(app).await.iter().filter(|e| e.kind == kind).count()
}

/// Posts an idea whose words are its own (search tells them apart).
async fn idea<T: Table>(app: &App<T>, who: &As, title: &str) -> String {
    let req = NewIdea {
        theme: Some("eat-well".into()),
        title: Some(title.into()),
        body: Some(format!("{title} : une idée pour le magasin de demain.")),
    };
    community::ideas::create(app, &caller(who), req, None)
        .await
        .expect("idea")
        .id
}

async fn vote<T: Table>(app: &App<T>, idea: &str, who: &str) {
    let id = IdeaId::parse(idea).expect("id");
    community::votes::cast(app, &caller(&member(who)), &id)
        .await
        .expect("vote");
}

async fn joined<T: Table>(app: &App<T>, names: &[&str]) {
    for n in names {
        join(app, &member(n)).await;
    }
}

/// The members with a vote record on `idea` (the truth), sorted.
async fn voters<T: Table>(app: &App<T>, idea: &str) -> Vec<String> {
    let mut v = votes::voters(app, idea).await.expect("voters");
    v.sort();
    v
}

/// Delivers the merge's events in the outbox (`idea.merged`, then the
/// pages they chain) to the emails consumer, each delivered `times` times,
/// until no new one appears.
async fn pump<T: Table + Clone>(
    consumer: &EmailsConsumer<T, DirMailbox>,
    done: &mut HashSet<String>,
    times: usize,
) {
    loop {
        let pending: Vec<Event> = outbox(&consumer.app)
            .await
            .into_iter()
            .filter(|e| matches!(e.kind, Kind::IdeaMerged | Kind::MergePage))
            .filter(|e| !done.contains(&e.event_id))
            .collect();
        if pending.is_empty() {
            return;
        }
        for chunk in pending.chunks(10) {
            for _ in 0..times {
                let res = community::queue::sqs(consumer, community::testing::sqs_batch(chunk))
                    .await
                    .expect("batch");
                assert!(res.batch_item_failures.is_empty(), "{res:?}");
            }
        }
        done.extend(pending.into_iter().map(|e| e.event_id));
    }
}

fn list_all() -> community::ideas::ListRequest {
    community::ideas::ListRequest {
        limit: 100,
        ..Default::default()
    }
}

fn consumer<T: Table + Clone>(
    app: &App<T>,
    dir: &std::path::Path,
) -> EmailsConsumer<T, DirMailbox> {
    EmailsConsumer {
        app: app.clone(),
        mailer: DirMailbox::new(dir.join("mailbox")).expect("mailbox"),
    }
}

#[tokio::test]
async fn merge_is_for_moderators_and_validates_its_fields() {
    let (app, _d) = embedded_app(|_| {});
    let (alice, bea) = (member("alice"), member("bea"));
    join(&app, &alice).await;
    join(&app, &bea).await;
    let source = post_idea(&app, &alice).await;
    let target = post_idea(&app, &bea).await;
    let r = moderation::router(app.clone());
    let path = format!("/ideas/{source}/merge");
    let mo = moderator();

    let res = call(&r, "POST", &path, None, Some(merge_body(&target))).await;
    assert_eq!(res.status, 401, "{}", res.body);
    let res = call(&r, "POST", &path, Some(&bea), Some(merge_body(&target))).await;
    assert_eq!(res.status, 403, "{}", res.body);
    let committee = member("c").in_groups(&["committee"]);
    let res = call(
        &r,
        "POST",
        &path,
        Some(&committee),
        Some(merge_body(&target)),
    )
    .await;
    assert_eq!(res.status, 403, "{}", res.body);

    for (body, fields) in [
        (json!({"reason": REASON}), vec!["into"]),
        (json!({"into": "", "reason": REASON}), vec!["into"]),
        (json!({"into": "not-an-id", "reason": REASON}), vec!["into"]),
        (json!({"into": source, "reason": REASON}), vec!["into"]),
        (json!({"into": target}), vec!["reason"]),
        (
            json!({"into": target, "reason": "   trop  "}),
            vec!["reason"],
        ),
        (
            json!({"into": target, "reason": "x".repeat(2001)}),
            vec!["reason"],
        ),
        (json!({}), vec!["into", "reason"]),
    ] {
        let res = call(&r, "POST", &path, Some(&mo), Some(body.clone())).await;
        assert_eq!(
            (res.status, res.fields()),
            (422, fields.iter().map(|f| f.to_string()).collect()),
            "{body}: {}",
            res.body
        );
    }
    let res = call(&r, "POST", &path, Some(&mo), Some(json!({"into": 1}))).await;
    assert_eq!(res.status, 400, "{}", res.body);
    let res = call(
        &r,
        "POST",
        &path,
        Some(&mo),
        Some(json!({"into": target, "reason": REASON, "x": 1})),
    )
    .await;
    assert!(res.status == 400 || res.status == 422, "{}", res.body);

    // Unknown source: 404; unknown target: 409 naming `into`.
    for bad in [UNKNOWN_IDEA, "not-an-id"] {
        let res = call(
            &r,
            "POST",
            &format!("/ideas/{bad}/merge"),
            Some(&mo),
            Some(merge_body(&target)),
        )
        .await;
        assert_eq!(res.status, 404, "{}", res.body);
    }
    let res = call(&r, "POST", &path, Some(&mo), Some(merge_body(UNKNOWN_IDEA))).await;
    assert_eq!(
        (res.status, res.fields()),
        (409, vec!["into".to_string()]),
        "{}",
        res.body
    );
    assert!(
        res.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(UNKNOWN_IDEA)),
        "{}",
        res.body
    );

    // A hidden target cannot take a merge; a hidden source cannot be merged.
    let hide = json!({"action": "hide", "reason": "Contraire à la charte"});
    let hidden = post_idea(&app, &bea).await;
    let res = call(
        &r,
        "POST",
        &format!("/moderation/idea/{hidden}"),
        Some(&mo),
        Some(hide),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = call(&r, "POST", &path, Some(&mo), Some(merge_body(&hidden))).await;
    assert_eq!(
        (res.status, res.fields()),
        (409, vec!["into".to_string()]),
        "{}",
        res.body
    );
    let res = call(
        &r,
        "POST",
        &format!("/ideas/{hidden}/merge"),
        Some(&mo),
        Some(merge_body(&target)),
    )
    .await;
    assert_eq!(res.status, 409, "{}", res.body);

    // A decided idea cannot be merged (it has had its answer).
    let decided = post_idea(&app, &bea).await;
    let did = IdeaId::parse(&decided).expect("id");
    community::thresholds::send_to_review(&app, &did)
        .await
        .expect("review");
    let req = serde_json::from_value(
        json!({"outcome": "rejected", "reason": "Pas réalisable dans nos magasins"}),
    )
    .expect("req");
    community::committee::decide(&app, &caller(&committee), &did, req)
        .await
        .expect("decided");
    let res = call(
        &r,
        "POST",
        &format!("/ideas/{decided}/merge"),
        Some(&mo),
        Some(merge_body(&target)),
    )
    .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(
        res.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("rejected")),
        "{}",
        res.body
    );
    // A decided target takes a merge (its followers and counts grow).
    let res = call(&r, "POST", &path, Some(&mo), Some(merge_body(&decided))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(
        count(&app, Kind::IdeaMerged).await,
        1,
        "only the merge that was made"
    );
}

/// The whole merge: validation aside, what the merged idea, the target,
/// the voters, the followers and the author see, with every event of the
/// copy delivered twice.
async fn scenario<T: Table + Clone + 'static>(app: App<T>, dir: &std::path::Path) {
    joined(
        &app,
        &["alice", "carla", "v1", "v2", "v3", "v4", "f1", "f2", "c1"],
    )
    .await;
    let (alice, carla, f1, f2) = (member("alice"), member("carla"), member("f1"), member("f2"));
    let source = idea(&app, &alice, "Un rayon vrac pour les céréales").await;
    let target = idea(&app, &carla, "Plus de produits en vrac").await;
    let other = idea(&app, &carla, "Des bornes de recharge vélo").await;
    let (sid, tid) = (
        IdeaId::parse(&source).expect("id"),
        IdeaId::parse(&target).expect("id"),
    );
    // v3 voted for both: counted once.
    for v in ["v1", "v2", "v3"] {
        vote(&app, &source, v).await;
    }
    for v in ["v3", "v4"] {
        vote(&app, &target, v).await;
    }
    // f1 follows the source; f2 too, but unfollowed the target: it sticks.
    for f in [&f1, &f2] {
        community::follows::set(&app, &caller(f), &sid, true)
            .await
            .expect("follow");
    }
    community::follows::set(&app, &caller(&f2), &tid, false)
        .await
        .expect("unfollow");
    // c1 commented on the source: the comments stay readable.
    let body = serde_json::from_value(json!({"body": "Oui, surtout les flocons d'avoine !"}))
        .expect("body");
    community::comments::post(&app, &caller(&member("c1")), &sid, body, None)
        .await
        .expect("comment");

    let r = moderation::router(app.clone());
    let ideas_r = ideas::router(app.clone());
    let mo = moderator();
    let found = call(&ideas_r, "GET", "/ideas?q=cereales", None, None).await;
    assert_eq!(
        found.body["items"][0]["id"],
        json!(source),
        "{}",
        found.body
    );

    let res = call(
        &r,
        "POST",
        &format!("/ideas/{source}/merge"),
        Some(&mo),
        Some(merge_body(&target)),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["id"], json!(source));
    assert_eq!(res.body["merged_into"], json!(target));
    assert_eq!(res.body["merge"]["into"], json!(target));
    assert_eq!(res.body["merge"]["reason"], json!(REASON));
    let created = res.body["created_at"]
        .as_str()
        .expect("created_at")
        .to_owned();
    assert!(res.body["merge"]["at"].is_string());
    // The same merge again: the same idea, nothing done twice.
    let again = call(
        &r,
        "POST",
        &format!("/ideas/{source}/merge"),
        Some(&mo),
        Some(merge_body(&target)),
    )
    .await;
    assert_eq!((again.status, &again.body), (200, &res.body));
    assert_eq!(count(&app, Kind::IdeaMerged).await, 1);
    // Into another idea afterwards: 409 naming the first target.
    let res = call(
        &r,
        "POST",
        &format!("/ideas/{source}/merge"),
        Some(&mo),
        Some(merge_body(&other)),
    )
    .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(
        res.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&target)),
        "{}",
        res.body
    );
    // The target cannot be merged into the merged idea (crossed merge).
    let res = call(
        &r,
        "POST",
        &format!("/ideas/{target}/merge"),
        Some(&mo),
        Some(merge_body(&source)),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (409, vec!["into".to_string()]),
        "{}",
        res.body
    );
    assert!(
        res.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&target)),
        "{}",
        res.body
    );

    // Out of the answer queue (its author is told why by the merge's mail).
    let entry = community::answers::unanswered_key(&created, &source);
    assert!(app.table.get(&entry, true).await.expect("get").is_none());
    let waiting = community::answers::unanswered(&app, &caller(&mo), None, 100, None)
        .await
        .expect("answer queue");
    let ids: Vec<&str> = waiting.items.iter().map(|q| q.idea.id.as_str()).collect();
    assert!(
        ids.contains(&target.as_str()) && !ids.contains(&source.as_str()),
        "{ids:?}"
    );

    // Readable, with its comments; in no list and not found by search.
    let page = call(&ideas_r, "GET", &format!("/ideas/{source}"), None, None).await;
    assert_eq!(
        (page.status, &page.body["merged_into"]),
        (200, &json!(target))
    );
    let comments = call(
        &ideas_r,
        "GET",
        &format!("/ideas/{source}/comments"),
        None,
        None,
    )
    .await;
    assert_eq!(comments.status, 200);
    assert_eq!(comments.body["items"].as_array().map(Vec::len), Some(1));
    for list in [
        "/ideas",
        "/ideas?sort=top",
        "/ideas?theme=eat-well&status=open",
        "/ideas?theme=eat-well&sort=top",
    ] {
        let ids: Vec<Value> = call(&ideas_r, "GET", list, None, None).await.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert!(!ids.contains(&json!(source)), "{list}: {ids:?}");
        assert!(ids.contains(&json!(target)), "{list}: {ids:?}");
    }
    let found = call(&ideas_r, "GET", "/ideas?q=cereales", None, None).await;
    assert_eq!(found.body["items"], json!([]), "{}", found.body);
    // No more votes, withdrawals or follows (409 naming the target).
    for r in [
        community::votes::cast(&app, &caller(&member("v4")), &sid)
            .await
            .map(|_| ()),
        community::votes::withdraw(&app, &caller(&member("v1")), &sid)
            .await
            .map(|_| ()),
        community::follows::set(&app, &caller(&member("v4")), &sid, true)
            .await
            .map(|_| ()),
    ] {
        match r {
            Err(community::error::Error::Conflict(d)) => assert!(d.contains(&target), "{d}"),
            other => panic!("{other:?}"),
        }
    }

    // The copy: every event delivered twice, then everything again.
    let consumer = consumer(&app, dir);
    let mut done = HashSet::new();
    pump(&consumer, &mut done, 2).await;
    let pages = outbox(&app)
        .await
        .iter()
        .filter(|e| e.kind == Kind::MergePage)
        .count();
    assert_eq!(
        pages,
        2 * VOTER_BUCKETS as usize,
        "one page per bucket here"
    );
    done.clear();
    pump(&consumer, &mut done, 1).await;

    assert_eq!(
        voters(&app, &target).await,
        ["v1", "v2", "v3", "v4"],
        "each member once"
    );
    assert_eq!(
        voters(&app, &source).await,
        ["v1", "v2", "v3"],
        "the source keeps its records"
    );
    for (v, from) in [
        ("v1", Some(source.as_str())),
        ("v2", Some(source.as_str())),
        ("v3", None),
        ("v4", None),
    ] {
        let rec = app
            .table
            .get(&votes::vote_key(&tid, v), true)
            .await
            .expect("get")
            .expect("vote");
        assert_eq!(rec.get(MERGED_FROM).and_then(Value::as_str), from, "{v}");
    }
    // Copies earn no points again, and the member's votes list the target.
    let one_vote = community::points::vote_points(&app, "v4")
        .await
        .expect("points");
    assert!(one_vote > 0);
    assert_eq!(
        community::points::vote_points(&app, "v1")
            .await
            .expect("points"),
        one_vote
    );
    let mine = community::follows::voted(&app, &caller(&member("v1")), 20, None)
        .await
        .expect("votes");
    let ids: Vec<&str> = mine.items.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, [target.as_str()]);
    // Followers follow the target; an unfollow of the target stuck.
    let me = |who: &'static str| {
        let app = app.clone();
        let tid = tid.clone();
        async move {
            community::follows::me(&app, &tid, &caller(&member(who)))
                .await
                .expect("me")
        }
    };
    assert!(me("f1").await.following);
    assert!(!me("f2").await.following);
    assert!(
        me("v1").await.following,
        "voters follow through their copied vote"
    );

    // The author is told once, with the reason and a link to the target.
    let mails: Vec<_> = consumer
        .mailer
        .list()
        .expect("mails")
        .into_iter()
        .filter(|m| m.to == "alice@example.fr")
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(
        mails[0].subject.contains("Un rayon vrac pour les céréales"),
        "{}",
        mails[0].subject
    );
    assert!(
        mails[0].text.contains(&format!("Motif : {REASON}")),
        "{}",
        mails[0].text
    );
    assert!(
        mails[0].text.contains("« Plus de produits en vrac »"),
        "{}",
        mails[0].text
    );
    let link = mails[0]
        .text
        .lines()
        .find(|l| l.contains("/r/"))
        .expect("a tracked link");
    let token = link.rsplit("/r/").next().expect("token");
    let p = community::mail::verify(&app.settings().link_secret, token).expect("signed");
    assert!(
        p["l"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/ideas/{target}"))),
        "{p}"
    );
}

#[tokio::test]
async fn a_merge_moves_votes_and_followers_once_on_the_embedded_store() {
    let (app, dir) = embedded_app(|_| {});
    scenario(app.clone(), dir.path()).await;
    // The aggregator counts the copies like any vote.
    community::thresholds::drain_feed(&app)
        .await
        .expect("aggregated");
    let t = community::ideas::list(&app, list_all())
        .await
        .expect("list");
    let target = t
        .items
        .iter()
        .find(|c| c.title == "Plus de produits en vrac")
        .expect("target");
    assert_eq!(target.votes, 4);
    let tally = community::thresholds::tally(&app, &target.id)
        .await
        .expect("tally");
    assert_eq!((tally.cast, tally.merged, tally.withdrawn), (2, 2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_moves_votes_and_followers_once_on_dynamodb() {
    let Some(table) = community::testing::moto_table("merge").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    scenario(App::new(table, community::testing::settings()), dir.path()).await;
}

/// Members whose votes land in `bucket`, named `{prefix}{n}`.
fn in_bucket(prefix: &str, bucket: u32, n: usize) -> Vec<String> {
    (0..)
        .map(|i| format!("{prefix}{i:05}"))
        .filter(|m| votes::bucket(m) == bucket)
        .take(n)
        .collect()
}

/// Vote records as `votes::cast` writes them (many voters without
/// signing each up).
async fn put_votes<T: Table>(app: &App<T>, idea: &str, members: &[String]) {
    let id = IdeaId::parse(idea).expect("id");
    for chunk in members.chunks(25) {
        let writes = chunk
            .iter()
            .map(|m| {
                let k = votes::vote_key(&id, m);
                let Value::Object(item) = json!({
                    "pk": k.pk, "sk": k.sk, "vote_id": format!("vote-{m}"),
                    "idea_id": idea, "member_id": m, "author_id": "alice",
                    "created_at": community::domain::now(),
                    "gsi3pk": format!("MEMBER#{m}"),
                    "gsi3sk": format!("VOTE#{}#{idea}", community::domain::now()),
                }) else {
                    unreachable!()
                };
                Write::put_new(item)
            })
            .collect();
        app.table.transact(writes).await.expect("votes");
    }
}

/// A bucket with more voters than a page: its chain runs page after page,
/// each page's work bounded, every voter copied once.
#[tokio::test]
async fn a_bucket_larger_than_a_page_is_copied_page_after_page() {
    let (app, dir) = embedded_app(|_| {});
    joined(&app, &["alice", "carla"]).await;
    let source = post_idea(&app, &member("alice")).await;
    let target = post_idea(&app, &member("carla")).await;
    let n = 2 * community::merge::PAGE as usize + 50;
    let many = in_bucket("m", 7, n);
    put_votes(&app, &source, &many).await;
    put_votes(&app, &target, &many[..30]).await;
    let res = call(
        &moderation::router(app.clone()),
        "POST",
        &format!("/ideas/{source}/merge"),
        Some(&moderator()),
        Some(merge_body(&target)),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let consumer = consumer(&app, dir.path());
    let mut done = HashSet::new();
    // One message at a time, each timed.
    loop {
        let pending: Vec<Event> = outbox(&app)
            .await
            .into_iter()
            .filter(|e| matches!(e.kind, Kind::IdeaMerged | Kind::MergePage))
            .filter(|e| !done.contains(&e.event_id))
            .collect();
        if pending.is_empty() {
            break;
        }
        for e in pending {
            let at = std::time::Instant::now();
            let res = community::queue::sqs(
                &consumer,
                community::testing::sqs_batch(std::slice::from_ref(&e)),
            )
            .await
            .expect("batch");
            assert!(res.batch_item_failures.is_empty(), "{res:?}");
            assert!(
                at.elapsed() < std::time::Duration::from_secs(10),
                "{} took {:?}",
                e.event_id,
                at.elapsed()
            );
            done.insert(e.event_id);
        }
    }
    let chain: BTreeSet<String> = done
        .iter()
        .filter(|id| id.contains(".v07."))
        .cloned()
        .collect();
    assert_eq!(chain.len(), 3, "pages of 200, 200 and 50: {chain:?}");
    let mut want = many.clone();
    want.sort();
    assert_eq!(voters(&app, &target).await, want);
}

/// Votes cast on the target while the merge runs, and the same merge
/// requested twice at once: the target ends with each member of either
/// idea once, exactly.
async fn concurrent<T: Table + Clone + 'static>(app: App<T>, dir: &std::path::Path) {
    let names: Vec<String> = (0..40).map(|i| format!("m{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    joined(&app, &refs).await;
    joined(&app, &["alice", "carla"]).await;
    let source = post_idea(&app, &member("alice")).await;
    let target = post_idea(&app, &member("carla")).await;
    // Source: m00..m19; target: m10..m24 (overlap m10..m19); cast on the
    // target during the merge: m15..m34 (some voted for both already).
    for m in &names[..20] {
        vote(&app, &source, m).await;
    }
    for m in &names[10..25] {
        vote(&app, &target, m).await;
    }
    let r = moderation::router(app.clone());
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let (r, source, target) = (r.clone(), source.clone(), target.clone());
        tasks.push(tokio::spawn(async move {
            let res = call(
                &r,
                "POST",
                &format!("/ideas/{source}/merge"),
                Some(&moderator()),
                Some(merge_body(&target)),
            )
            .await;
            assert_eq!(res.status, 200, "{}", res.body);
            assert_eq!(res.body["merged_into"], json!(target));
        }));
    }
    for m in &names[15..35] {
        let (app, target, m) = (app.clone(), target.clone(), m.clone());
        tasks.push(tokio::spawn(async move {
            vote(&app, &target, &m).await;
        }));
    }
    let pumping = {
        let consumer = consumer(&app, dir);
        tokio::spawn(async move {
            let mut done = HashSet::new();
            for _ in 0..20 {
                pump(&consumer, &mut done, 1).await;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        })
    };
    for t in tasks {
        t.await.expect("task");
    }
    pumping.await.expect("pump");
    let consumer = consumer(&app, dir);
    let mut done = HashSet::new();
    pump(&consumer, &mut done, 2).await;
    assert_eq!(count(&app, Kind::IdeaMerged).await, 1, "one merge");
    let want: Vec<String> = names[..35].to_vec();
    assert_eq!(
        voters(&app, &target).await,
        want,
        "distinct voters of both, exactly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_votes_and_merges_count_each_member_once_on_the_embedded_store() {
    let (app, dir) = embedded_app(|_| {});
    concurrent(app.clone(), dir.path()).await;
    community::thresholds::drain_feed(&app)
        .await
        .expect("aggregated");
    let page = community::ideas::list(&app, list_all())
        .await
        .expect("list");
    let votes: Vec<i64> = page.items.iter().map(|c| c.votes).collect();
    assert_eq!(
        votes,
        [35],
        "the target alone is listed, with every member once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_votes_and_merges_count_each_member_once_on_dynamodb() {
    let Some(table) = community::testing::moto_table("merge-race").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    concurrent(App::new(table, community::testing::settings()), dir.path()).await;
}

/// Moderation still applies to a merged idea, and restoring it does not
/// put it back in the lists.
#[tokio::test]
async fn a_merged_idea_hidden_then_restored_stays_out_of_the_lists() {
    let (app, _d) = embedded_app(|_| {});
    joined(&app, &["alice", "carla"]).await;
    let source = post_idea(&app, &member("alice")).await;
    let target = post_idea(&app, &member("carla")).await;
    let r = moderation::router(app.clone());
    let ideas_r = ideas::router(app.clone());
    let mo = moderator();
    let res = call(
        &r,
        "POST",
        &format!("/ideas/{source}/merge"),
        Some(&mo),
        Some(merge_body(&target)),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let path = format!("/moderation/idea/{source}");
    for action in ["hide", "restore"] {
        let body = json!({"action": action, "reason": "Vérification de la charte"});
        let res = call(&r, "POST", &path, Some(&mo), Some(body)).await;
        assert_eq!(res.status, 200, "{action}: {}", res.body);
    }
    for list in [
        "/ideas",
        "/ideas?sort=top",
        "/ideas?theme=eat-well&status=open",
    ] {
        let ids: Vec<Value> = call(&ideas_r, "GET", list, None, None).await.body["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        assert_eq!(ids, [json!(target)], "{list}");
    }
    let page = call(&ideas_r, "GET", &format!("/ideas/{source}"), None, None).await;
    assert_eq!(
        (page.status, &page.body["merged_into"]),
        (200, &json!(target))
    );
}
