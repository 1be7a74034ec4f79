//! The storage conformance suite: the same cases on the embedded store and on
//! DynamoDB (moto's server, at COMMUNITY_TEST_DYNAMODB_ENDPOINT). The README's
//! test command starts moto and sets COMMUNITY_REQUIRE_MOTO=1, so there the
//! DynamoDB half fails rather than skips when moto is missing.

mod support;

use community::store::{Cond, Index, Item, Key, Query, SortKey, StoreError, Table, Update, Write};
use serde_json::{json, Value};
use std::sync::Arc;
use support::obj;

type T = Arc<dyn Table>;

use community::store::feed::{Change, ChangeName};

fn k(pk: &str, sk: &str) -> Key {
    Key::new(pk, sk)
}

async fn round_trips_every_json_type(t: T) {
    let item = obj(json!({
        "pk": "A", "sk": "1", "s": "texte accentué ✓", "n": 42, "neg": -7, "f": 1.5,
        "b": true, "z": null, "l": [1, "deux", false], "m": {"x": {"y": [1, 2]}}, "empty": ""
    }));
    t.transact(vec![Write::put(item.clone())])
        .await
        .expect("put");
    let got = t
        .get(&k("A", "1"), true)
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(got, item);
    assert_eq!(t.get(&k("A", "2"), true).await.expect("get"), None);
}

async fn put_new_refuses_existing_item(t: T) {
    let a = obj(json!({"pk": "A", "sk": "1", "v": 1}));
    t.transact(vec![Write::put_new(a.clone())])
        .await
        .expect("first");
    let b = obj(json!({"pk": "A", "sk": "1", "v": 2}));
    let e = t
        .transact(vec![Write::put_new(b)])
        .await
        .expect_err("second");
    assert!(
        matches!(e, StoreError::ConditionFailed { index: 0, .. }),
        "{e:?}"
    );
    // A lone write (sent as a plain conditional write) names its item too.
    assert!(e.failed_on(&k("A", "1")), "{e:?}");
    assert_eq!(t.get(&k("A", "1"), true).await.expect("get"), Some(a));
}

async fn groups_are_all_or_nothing(t: T) {
    t.transact(vec![Write::put(obj(json!({"pk": "C", "sk": "x", "n": 1})))])
        .await
        .expect("seed");
    let group = vec![
        Write::put_new(obj(json!({"pk": "A", "sk": "1"}))),
        Write::update(k("B", "1"), Update::default().add("n", 5)),
        Write::Check {
            key: k("C", "x"),
            cond: Cond::Eq("n".into(), json!(2)),
        },
    ];
    let e = t.transact(group).await.expect_err("check fails");
    assert!(
        matches!(e, StoreError::ConditionFailed { index: 2, .. }),
        "{e:?}"
    );
    // The failed condition names the item it guards, not another's.
    assert!(e.failed_on(&k("C", "x")), "{e:?}");
    assert!(!e.failed_on(&k("A", "1")), "{e:?}");
    assert_eq!(t.get(&k("A", "1"), true).await.expect("get"), None);
    assert_eq!(t.get(&k("B", "1"), true).await.expect("get"), None);
    let group = vec![
        Write::put_new(obj(json!({"pk": "A", "sk": "1"}))),
        Write::update(k("B", "1"), Update::default().add("n", 5)),
        Write::Check {
            key: k("C", "x"),
            cond: Cond::Eq("n".into(), json!(1)),
        },
        Write::Delete {
            key: k("C", "x"),
            cond: None,
        }
        .when(Cond::Exists),
    ];
    let e = t.transact(group).await.expect_err("two writes on C/x");
    assert!(
        matches!(
            e,
            StoreError::Limit(community::store::limits::Limit::TransactionDuplicateItem { .. })
        ),
        "{e:?}"
    );
    let group = vec![
        Write::put_new(obj(json!({"pk": "A", "sk": "1"}))),
        Write::update(k("B", "1"), Update::default().add("n", 5)),
        Write::Delete {
            key: k("C", "x"),
            cond: Some(Cond::Eq("n".into(), json!(1))),
        },
    ];
    t.transact(group).await.expect("all hold");
    assert!(t.get(&k("A", "1"), true).await.expect("get").is_some());
    assert_eq!(
        t.get(&k("B", "1"), true)
            .await
            .expect("get")
            .and_then(|i| i.get("n").cloned()),
        Some(json!(5))
    );
    assert_eq!(t.get(&k("C", "x"), true).await.expect("get"), None);
}

async fn updates_set_add_remove_and_create(t: T) {
    let key = k("U", "1");
    t.transact(vec![Write::update(
        key.clone(),
        Update::default().add("n", 2).set("s", "a"),
    )])
    .await
    .expect("creates");
    t.transact(vec![Write::update(
        key.clone(),
        Update::default()
            .add("n", -5)
            .set("s", "b")
            .set("t", json!({"x": 1})),
    )])
    .await
    .expect("updates");
    t.transact(vec![Write::update(
        key.clone(),
        Update::default().remove("t").add("m", 1),
    )])
    .await
    .expect("removes");
    let got = t.get(&key, true).await.expect("get").expect("exists");
    assert_eq!(
        got,
        obj(json!({"pk": "U", "sk": "1", "n": -3, "s": "b", "m": 1}))
    );
}

/// Every condition, on an absent item, an item without the attribute, and
/// items with values around the bound, must agree with `Cond::holds`.
async fn conditions_agree_with_the_model(t: T) {
    let states: Vec<Option<Item>> = vec![
        None,
        Some(obj(json!({"pk": "P", "sk": "s"}))),
        Some(obj(json!({"pk": "P", "sk": "s", "n": -1, "e": "x"}))),
        Some(obj(json!({"pk": "P", "sk": "s", "n": 0, "e": "y"}))),
        Some(obj(json!({"pk": "P", "sk": "s", "n": 3}))),
    ];
    let conds = vec![
        Cond::NotExists,
        Cond::Exists,
        Cond::Eq("e".into(), json!("x")),
        Cond::AttrAbsent("n".into()),
        Cond::LessThan("n".into(), 0),
        Cond::LessThan("n".into(), 3),
        Cond::AtLeast("n".into(), 0),
        Cond::AtLeast("n".into(), 3),
        Cond::Exists.and(Cond::AttrAbsent("e".into())),
        Cond::NotExists.or(Cond::LessThan("n".into(), 1)),
        Cond::Eq("e".into(), json!("y")).or(Cond::AttrAbsent("n".into())),
    ];
    for state in &states {
        for c in &conds {
            // Reset the item to the state.
            let _ = t
                .transact(vec![Write::Delete {
                    key: k("P", "s"),
                    cond: None,
                }])
                .await;
            if let Some(item) = state {
                t.transact(vec![Write::put(item.clone())])
                    .await
                    .expect("seed");
            }
            let r = t
                .transact(vec![Write::update(
                    k("P", "s"),
                    Update::default().set("w", 1),
                )
                .when(c.clone())])
                .await;
            let want = c.holds(state.as_ref());
            match r {
                Ok(()) => assert!(want, "{c:?} held on {state:?} but the model says no"),
                Err(StoreError::ConditionFailed { index: 0, .. }) => {
                    assert!(
                        !want,
                        "{c:?} failed on {state:?} but the model says it holds"
                    )
                }
                Err(e) => panic!("{c:?} on {state:?}: {e:?}"),
            }
        }
    }
}

async fn queries_order_filter_and_paginate(t: T) {
    for i in 0..25 {
        let item = obj(json!({"pk": "Q", "sk": format!("item#{i:03}"), "i": i}));
        t.transact(vec![Write::put(item)]).await.expect("put");
    }
    t.transact(vec![Write::put(obj(json!({"pk": "Q", "sk": "other"})))])
        .await
        .expect("put");
    t.transact(vec![Write::put(obj(json!({"pk": "Q2", "sk": "item#000"})))])
        .await
        .expect("put");
    for forward in [true, false] {
        let mut seen = Vec::new();
        let mut start = None;
        loop {
            let mut q = Query::new(Index::Primary, "Q")
                .sk(SortKey::BeginsWith("item#".into()))
                .limit(7)
                .start_after(start.take());
            q.forward = forward;
            let page = t.query(&q).await.expect("query");
            assert!(page.items.len() <= 7);
            seen.extend(page.items.iter().map(|i| i["i"].as_i64().unwrap_or(-1)));
            match page.last_key {
                Some(lk) => start = Some(lk),
                None => break,
            }
        }
        let mut want: Vec<i64> = (0..25).collect();
        if !forward {
            want.reverse();
        }
        assert_eq!(seen, want, "forward={forward}");
    }
    let page = t
        .query(
            &Query::new(Index::Primary, "Q")
                .sk(SortKey::Between("item#010".into(), "item#012".into())),
        )
        .await
        .expect("between");
    let got: Vec<_> = page.items.iter().map(|i| i["i"].clone()).collect();
    assert_eq!(got, vec![json!(10), json!(11), json!(12)]);
    let all = t
        .query(&Query::new(Index::Primary, "Q").limit(100))
        .await
        .expect("all");
    assert_eq!(all.items.len(), 26);
}

async fn secondary_indexes_are_sparse_and_follow_updates(t: T) {
    for i in 0..12 {
        let mut item = obj(json!({"pk": format!("E#{i}"), "sk": "E", "i": i}));
        if i % 3 != 0 {
            item.insert("gsi1pk".into(), json!("LIST#a"));
            item.insert("gsi1sk".into(), json!(format!("{:02}", i % 5)));
        }
        t.transact(vec![Write::put(item)]).await.expect("put");
    }
    // Ties on the index sort key are broken by the primary key, both ways.
    let collect = |forward: bool| {
        let t = t.clone();
        async move {
            let mut out = Vec::new();
            let mut start = None;
            loop {
                let mut q = Query::new(Index::Gsi1, "LIST#a")
                    .limit(3)
                    .start_after(start.take());
                q.forward = forward;
                let page = t.query(&q).await.expect("query");
                out.extend(page.items.iter().map(|i| i["i"].as_i64().unwrap_or(-1)));
                match page.last_key {
                    Some(lk) => start = Some(lk),
                    None => break,
                }
            }
            out
        }
    };
    let fwd = collect(true).await;
    let mut want: Vec<(String, String, i64)> = (0..12)
        .filter(|i| i % 3 != 0)
        .map(|i| (format!("{:02}", i % 5), format!("E#{i}"), i))
        .collect();
    want.sort();
    assert_eq!(fwd, want.iter().map(|w| w.2).collect::<Vec<_>>());
    let mut back = collect(false).await;
    back.reverse();
    assert_eq!(back, fwd);
    // Moving an item to another index partition removes it from the old one.
    t.transact(vec![Write::update(
        k("E#1", "E"),
        Update::default().set("gsi1pk", "LIST#b"),
    )])
    .await
    .expect("move");
    t.transact(vec![Write::update(
        k("E#2", "E"),
        Update::default().remove("gsi1pk"),
    )])
    .await
    .expect("drop from index");
    t.transact(vec![Write::Delete {
        key: k("E#4", "E"),
        cond: None,
    }])
    .await
    .expect("delete");
    let a = t
        .query(&Query::new(Index::Gsi1, "LIST#a").limit(100))
        .await
        .expect("a");
    let ids: Vec<i64> = a
        .items
        .iter()
        .map(|i| i["i"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert!(!ids.contains(&1) && !ids.contains(&2) && !ids.contains(&4));
    let b = t
        .query(&Query::new(Index::Gsi1, "LIST#b").limit(100))
        .await
        .expect("b");
    assert_eq!(b.items.len(), 1);
    assert_eq!(b.items[0]["i"], json!(1));
    let between = t
        .query(
            &Query::new(Index::Gsi1, "LIST#a")
                .sk(SortKey::Between("01".into(), "02".into()))
                .limit(100),
        )
        .await
        .expect("between");
    assert!(between
        .items
        .iter()
        .all(|i| matches!(i["gsi1sk"].as_str(), Some("01" | "02"))));
}

/// The home list is one Query of gsi4, which holds each idea's card and not
/// its body; the cards follow status changes and moderation.
async fn home_list_reads_cards_from_one_index(t: T) {
    use community::ideas::{self, ListRequest, Sort, EXCERPT_CHARS};
    let app = support::app(t.clone(), |_| {});
    let author = support::member(&app, "author").await;
    let long = "Des paniers de produits proches de leur date, à prix réduit. ".repeat(80);
    let mut ids = Vec::new();
    for i in 0..3 {
        let req = ideas::NewIdea {
            theme: Some(["environment", "children", "loyalty"][i].into()),
            title: Some(format!("Idée numéro {i}")),
            body: Some(long.clone()),
        };
        ids.push(
            ideas::create(&app, &author, req, None)
                .await
                .expect("idea")
                .id,
        );
    }
    // What the index holds: the card, never the body.
    let raw = t
        .query(&Query::new(Index::Gsi4, ideas::TOP_PK).backward().limit(10))
        .await
        .expect("gsi4");
    assert_eq!(raw.items.len(), 3);
    for i in &raw.items {
        assert!(
            i.get("body").is_none(),
            "gsi4 projects no body: {:?}",
            i.keys()
        );
        assert!(i.get("excerpt").and_then(Value::as_str).is_some());
    }
    let home = |limit: u32, cursor: Option<String>| {
        let app = app.clone();
        async move {
            ideas::list(
                &app,
                ListRequest {
                    sort: Sort::Top,
                    limit,
                    cursor,
                    ..ListRequest::default()
                },
            )
            .await
            .expect("home list")
        }
    };
    let page = home(2, None).await;
    assert_eq!(page.items.len(), 2);
    let first = &page.items[0];
    assert!(first.truncated);
    assert!(
        first.body.chars().count() <= EXCERPT_CHARS + 1,
        "an excerpt"
    );
    assert!(first.body.ends_with('…'));
    assert!(long.starts_with(first.body.trim_end_matches('…')));
    // Same votes: newest first; the cursor reaches the third.
    assert_eq!(first.id, ids[2]);
    let rest = home(2, page.next_cursor.clone()).await;
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, ids[0]);
    assert!(rest.next_cursor.is_none());
    // A status change shows on the card (the index follows the row).
    let under = community::domain::IdeaId::parse(&ids[1]).expect("id");
    community::thresholds::send_to_review(&app, &under)
        .await
        .expect("review");
    let all = home(10, None).await;
    let card = all.items.iter().find(|c| c.id == ids[1]).expect("listed");
    assert_eq!(card.status, community::domain::IdeaStatus::UnderReview);
    // A hidden idea leaves the home list.
    let mut moderator = support::caller("moderator");
    moderator.groups = vec!["moderator".into()];
    community::moderation::decide(
        &app,
        &moderator,
        "idea",
        &ids[0],
        community::moderation::DecisionRequest {
            action: Some("hide".into()),
            reason: Some("Hors charte".into()),
        },
    )
    .await
    .expect("hide");
    let after = home(10, None).await;
    assert_eq!(
        after.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>(),
        vec![ids[2].clone(), ids[1].clone()]
    );
}

async fn get_many_returns_what_exists(t: T) {
    for i in 0..130 {
        t.transact(vec![Write::put(obj(
            json!({"pk": format!("G#{i}"), "sk": "G", "i": i}),
        ))])
        .await
        .expect("put");
    }
    let keys: Vec<Key> = (0..140).map(|i| k(&format!("G#{i}"), "G")).collect();
    // More than 100 keys: read in BatchGetItem-sized batches.
    let mut got: Vec<i64> = community::store::get_all(&t, &keys, true)
        .await
        .expect("get_many")
        .iter()
        .map(|i| i["i"].as_i64().unwrap_or(-1))
        .collect();
    got.sort();
    assert_eq!(got, (0..130).collect::<Vec<_>>());
}

/// Concurrent guarded increments: exactly the allowed number succeed.
async fn concurrent_conditions_never_overshoot(t: T) {
    t.transact(vec![Write::put(obj(
        json!({"pk": "CNT", "sk": "c", "n": 0}),
    ))])
    .await
    .expect("seed");
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let t = t.clone();
            tokio::spawn(async move {
                loop {
                    let w = Write::update(k("CNT", "c"), Update::default().add("n", 1))
                        .when(Cond::LessThan("n".into(), 25));
                    match t.transact(vec![w]).await {
                        Ok(()) => return true,
                        Err(StoreError::ConditionFailed { .. }) => return false,
                        Err(StoreError::Conflict | StoreError::Throttled) => continue,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        if task.await.expect("task") {
            ok += 1;
        }
    }
    assert_eq!(ok, 25);
    let n = t
        .get(&k("CNT", "c"), true)
        .await
        .expect("get")
        .expect("exists")["n"]
        .clone();
    assert_eq!(n, json!(25));
}

/// The domain's vote path on this adapter: concurrent distinct voters with
/// repeats and withdrawals give an exact count.
async fn votes_are_exact_under_concurrency(t: T) {
    let app = support::app(t.clone(), |_| {});
    let author = support::member(&app, "author").await;
    let idea = support::idea(&app, &author).await;
    let voters: Vec<_> = futures::future::join_all((0..40).map(|i| {
        let app = app.clone();
        async move { support::member(&app, &format!("v{i}")).await }
    }))
    .await;
    let tasks: Vec<_> = voters
        .iter()
        .enumerate()
        .flat_map(|(i, c)| {
            let times = if i % 4 == 0 { 3 } else { 1 };
            (0..times).map(move |_| (i, c.clone()))
        })
        .map(|(_, c)| {
            let app = app.clone();
            let idea = idea.clone();
            tokio::spawn(async move { community::votes::cast(&app, &c, &idea).await })
        })
        .collect();
    for task in tasks {
        let v = task.await.expect("task").expect("vote");
        assert!(v.voted);
    }
    for c in voters.iter().take(5) {
        let v = community::votes::withdraw(&app, c, &idea)
            .await
            .expect("withdraw");
        assert!(!v.voted);
        community::votes::withdraw(&app, c, &idea)
            .await
            .expect("withdraw twice");
    }
    // The records are the truth: 35 distinct voters.
    let voters = community::votes::voters(&app, idea.as_str())
        .await
        .expect("voters");
    assert_eq!(voters.len(), 35);
    // The aggregator's writes on this adapter (its conditional tally and
    // roll-up), fed the records as inserts, each batch delivered twice.
    let changes: Vec<Change> = voters
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let key = community::votes::vote_key(&idea, m);
            Change {
                seq: format!("{:06}", i + 1),
                name: ChangeName::Insert,
                pk: key.pk,
                sk: key.sk,
                new: None,
                old: None,
                at: 0,
            }
        })
        .collect();
    for chunk in changes.chunks(10) {
        for _ in 0..2 {
            assert!(community::thresholds::apply(&app, chunk).await.is_ok());
        }
    }
    assert!(community::thresholds::apply(&app, &changes).await.is_ok());
    let row = community::ideas::load(&app, &idea, true)
        .await
        .expect("idea");
    assert_eq!(row.votes, 35);
    let got = community::ideas::get(&app, &idea).await.expect("get");
    assert_eq!(got.votes, 35);
}

/// Reports and moderation on this adapter: concurrent reporters hide an idea
/// exactly once at the threshold, hiding takes it out of both list orders and
/// its comments out of theirs, restoring brings everything back.
async fn reports_hide_once_and_lists_follow(t: T) {
    use community::moderation::{self, DecisionRequest, ReportRequest};
    let app = support::app(t.clone(), |s| s.moderation.auto_hide_reports = 3);
    let author = support::member(&app, "author").await;
    let idea = support::idea(&app, &author).await;
    let id = idea.as_str().to_owned();
    let bea = support::member(&app, "bea").await;
    let c = community::comments::post(
        &app,
        &bea,
        &idea,
        community::comments::NewComment {
            body: Some("Bonne idée".into()),
        },
        None,
    )
    .await
    .expect("comment");
    let reporters: Vec<_> = futures::future::join_all((0..6).map(|i| {
        let app = app.clone();
        async move { support::member(&app, &format!("r{i}")).await }
    }))
    .await;
    let tasks: Vec<_> = reporters
        .iter()
        .map(|r| {
            let (app, r, id) = (app.clone(), r.clone(), id.clone());
            tokio::spawn(async move {
                let req = ReportRequest {
                    target_type: Some("idea".into()),
                    target_id: Some(id),
                    reason: Some("Hors sujet".into()),
                };
                moderation::report(&app, &r, req, None).await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(_) => ok += 1,
            Err(community::error::Error::NotFound(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 3, "the reports after the hide find nothing to report");
    let row = community::ideas::load(&app, &idea, true)
        .await
        .expect("row");
    assert!(row.is_hidden());
    let st = t
        .get(
            &moderation::state_key(moderation::TargetType::Idea, &id),
            true,
        )
        .await
        .expect("state")
        .expect("exists");
    assert_eq!(
        (st["report_count"].clone(), st["state"].clone()),
        (json!(3), json!("hidden"))
    );
    for sort in [community::ideas::Sort::New, community::ideas::Sort::Top] {
        let req = community::ideas::ListRequest {
            sort,
            limit: 20,
            ..Default::default()
        };
        let page = community::ideas::list(&app, req).await.expect("list");
        assert!(page.items.is_empty(), "{sort:?}");
    }
    assert!(community::ideas::get(&app, &idea).await.is_err());
    let mo = community::auth::Caller {
        groups: vec!["moderator".into()],
        ..support::caller("mo")
    };
    let q = moderation::queue(&app, &mo, 20, None).await.expect("queue");
    assert_eq!(q.items.len(), 1);
    assert_eq!(q.items[0].report_count, 3);
    // Hide the comment too, then restore both.
    let hide = DecisionRequest {
        action: Some("hide".into()),
        reason: Some("Test".into()),
    };
    moderation::decide(&app, &mo, "comment", &c.id, hide)
        .await
        .expect("hide comment");
    let restore = || DecisionRequest {
        action: Some("restore".into()),
        reason: Some("Test".into()),
    };
    moderation::decide(&app, &mo, "idea", &id, restore())
        .await
        .expect("restore idea");
    let page = community::comments::list(&app, &idea, None, 20, None)
        .await
        .expect("comments");
    assert!(page.items.is_empty());
    moderation::decide(&app, &mo, "comment", &c.id, restore())
        .await
        .expect("restore comment");
    let page = community::comments::list(&app, &idea, None, 20, None)
        .await
        .expect("comments");
    assert_eq!(page.items.len(), 1);
    // The comment's +1 is the insights consumer's (comments.rs).
    community::testing::run_insights(&app).await;
    for sort in [community::ideas::Sort::New, community::ideas::Sort::Top] {
        let req = community::ideas::ListRequest {
            sort,
            limit: 20,
            ..Default::default()
        };
        let page = community::ideas::list(&app, req).await.expect("list");
        assert_eq!(page.items.len(), 1, "{sort:?}");
        assert_eq!(page.items[0].comment_count, 1);
    }
    assert!(moderation::queue(&app, &mo, 20, None)
        .await
        .expect("queue")
        .items
        .is_empty());
}

/// What an author sees of their own contributions on this adapter
/// (`GET /members/me/contributions`): hidden by reports and awaiting a
/// moderator, hidden by a moderator with the reason, visible again after a
/// restore; newest first, paginated, each list by its type only, nobody
/// else's items.
async fn authors_follow_their_hidden_contributions(t: T) {
    use community::error::Error;
    use community::mine;
    use community::moderation::{self, DecisionRequest, ReportRequest};
    let app = support::app(t.clone(), |s| {
        s.moderation.auto_hide_reports = 3;
        s.abuse.rate_limits.enabled = false;
    });
    let author = support::member(&app, "author").await;
    let other = support::member(&app, "other").await;
    // Apart by a few milliseconds: the list is ordered by creation time.
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(5));
    let first = support::idea(&app, &author).await;
    pause().await;
    let second = support::idea(&app, &author).await;
    pause().await;
    let third = support::idea(&app, &author).await;
    support::idea(&app, &other).await;
    let comment = community::comments::post(
        &app,
        &author,
        &first,
        community::comments::NewComment {
            body: Some("Et des sachets en papier pour le vrac ?".into()),
        },
        None,
    )
    .await
    .expect("comment");
    let report = |ty: &str, id: &str| ReportRequest {
        target_type: Some(ty.into()),
        target_id: Some(id.into()),
        reason: Some("Propos déplacés".into()),
    };
    for i in 0..3 {
        let r = support::member(&app, &format!("rep{i}")).await;
        moderation::report(&app, &r, report("comment", &comment.id), None)
            .await
            .expect("report");
    }
    let mo = community::auth::Caller {
        groups: vec!["moderator".into()],
        ..support::caller("mo")
    };
    let hide = DecisionRequest {
        action: Some("hide".into()),
        reason: Some("Publicité pour un autre magasin".into()),
    };
    moderation::decide(&app, &mo, "idea", second.as_str(), hide)
        .await
        .expect("hide idea");

    // Comments: hidden by the reports, a moderator still to decide.
    let page = mine::list(&app, &author, Some("comment"), 20, None)
        .await
        .expect("comments");
    assert_eq!(page.items.len(), 1);
    let c = &page.items[0];
    assert_eq!(
        (c.kind, c.id.as_str(), c.state),
        ("comment", comment.id.as_str(), "hidden")
    );
    let m = c.moderation.as_ref().expect("moderation");
    assert_eq!((m.hidden_by, m.awaiting_decision), ("reports", true));
    assert_eq!(m.reason, None);
    assert!(m.hidden_at.is_some());
    assert_eq!(
        c.content["body"],
        json!("Et des sachets en papier pour le vrac ?")
    );
    assert_eq!(c.content["moderation"], json!("hidden"));

    // Ideas: newest first, two per page, the hidden one with its reason.
    let p1 = mine::list(&app, &author, Some("idea"), 2, None)
        .await
        .expect("ideas");
    let ids: Vec<&str> = p1.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [third.as_str(), second.as_str()]);
    assert_eq!(p1.items[0].state, "visible");
    assert!(p1.items[0].moderation.is_none());
    let m = p1.items[1].moderation.as_ref().expect("hidden idea");
    assert_eq!(
        (p1.items[1].state, m.hidden_by, m.awaiting_decision),
        ("hidden", "moderator", false)
    );
    assert_eq!(m.reason.as_deref(), Some("Publicité pour un autre magasin"));
    let cursor = p1.next_cursor.clone().expect("a second page");
    let p2 = mine::list(&app, &author, Some("idea"), 2, Some(cursor.clone()))
        .await
        .expect("page 2");
    let ids: Vec<&str> = p2.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, [first.as_str()]);
    assert_eq!(p2.next_cursor, None);
    // A cursor of the ideas is not one of the comments' list.
    assert!(matches!(
        mine::list(&app, &author, Some("comment"), 2, Some(cursor)).await,
        Err(Error::Invalid(e)) if e[0].field == "cursor"
    ));
    // Reviews: none; the other member sees only their own idea.
    assert!(mine::list(&app, &author, Some("review"), 20, None)
        .await
        .expect("reviews")
        .items
        .is_empty());
    let theirs = mine::list(&app, &other, Some("idea"), 20, None)
        .await
        .expect("theirs");
    assert_eq!(theirs.items.len(), 1);
    assert_eq!(theirs.items[0].state, "visible");

    // A restore makes the comment visible again, without moderation details.
    let restore = DecisionRequest {
        action: Some("restore".into()),
        reason: Some("Signalements injustifiés".into()),
    };
    moderation::decide(&app, &mo, "comment", &comment.id, restore)
        .await
        .expect("restore");
    let page = mine::list(&app, &author, Some("comment"), 20, None)
        .await
        .expect("comments");
    assert_eq!(page.items[0].state, "visible");
    assert!(page.items[0].moderation.is_none());
    assert!(page.items[0].content.get("moderation").is_none());
}

/// DynamoDB's limits: both adapters refuse the same requests with the same
/// `StoreError::Limit` (the DynamoDB adapter checks them before sending, and
/// maps DynamoDB's own ValidationException for them to the same error).
async fn dynamodb_limits_hold(t: T) {
    use community::store::limits::{self, Limit};
    // Item size: names and values count; under 400 KB fits, one byte past
    // it does not. (moto caps items at 400,000 bytes, not 400 KB, so the
    // fitting item stays under that; the exact 409,600-byte boundary is the
    // unit test of `limits::check_item`.)
    let base = limits::item_size(&obj(json!({"pk": "L", "sk": "1", "body": ""})));
    let fits = "x".repeat(400_000 - base - 100);
    t.transact(vec![Write::put(obj(
        json!({"pk": "L", "sk": "1", "body": fits}),
    ))])
    .await
    .expect("an item of exactly 400 KB is stored");
    let over = "x".repeat(limits::MAX_ITEM_BYTES - base + 1);
    let e = t
        .transact(vec![Write::put(obj(
            json!({"pk": "L", "sk": "2", "body": over}),
        ))])
        .await
        .expect_err("401 KB");
    assert!(
        matches!(e, StoreError::Limit(Limit::ItemSize { .. })),
        "{e:?}"
    );
    assert_eq!(t.get(&k("L", "2"), true).await.expect("get"), None);
    // An update that grows an item past 400 KB fails and changes nothing
    // (DynamoDB checks the item it would write).
    let e = t
        .transact(vec![Write::update(
            k("L", "1"),
            Update::default().set("more", "y".repeat(12_000)),
        )])
        .await
        .expect_err("grown past 400 KB");
    assert!(
        matches!(
            e,
            StoreError::Limit(Limit::ItemSize { .. }) | StoreError::Invalid(_)
        ),
        "{e:?}"
    );
    let kept = t.get(&k("L", "1"), true).await.expect("get").expect("kept");
    assert!(!kept.contains_key("more"));
    // A transaction: at most 100 actions, one per item, at most 4 MB.
    let many: Vec<Write> = (0..101)
        .map(|i| Write::put(obj(json!({"pk": "T", "sk": format!("{i:03}")}))))
        .collect();
    let e = t.transact(many).await.expect_err("101 actions");
    assert!(
        matches!(e, StoreError::Limit(Limit::TransactionActions(101))),
        "{e:?}"
    );
    let hundred: Vec<Write> = (0..100)
        .map(|i| Write::put(obj(json!({"pk": "T", "sk": format!("{i:03}")}))))
        .collect();
    t.transact(hundred).await.expect("100 actions");
    let e = t
        .transact(vec![
            Write::put(obj(json!({"pk": "D", "sk": "1"}))),
            Write::update(k("D", "1"), Update::default().add("n", 1)),
        ])
        .await
        .expect_err("two actions on one item");
    assert!(
        matches!(e, StoreError::Limit(Limit::TransactionDuplicateItem { .. })),
        "{e:?}"
    );
    let big = "z".repeat(399 * 1024);
    let heavy: Vec<Write> = (0..11)
        .map(|i| {
            Write::put(obj(
                json!({"pk": "H", "sk": format!("{i}"), "b": big.clone()}),
            ))
        })
        .collect();
    let e = t.transact(heavy).await.expect_err("over 4 MB");
    assert!(
        matches!(e, StoreError::Limit(Limit::TransactionSize(_))),
        "{e:?}"
    );
    // Key attributes: present, non-empty strings (indexes' too).
    for bad in [
        json!({"pk": "", "sk": "1"}),
        json!({"pk": "K", "sk": ""}),
        json!({"pk": "K", "sk": "1", "gsi1pk": "", "gsi1sk": "x"}),
        json!({"pk": "K", "sk": "1", "gsi2pk": 5, "gsi2sk": "x"}),
    ] {
        let e = t
            .transact(vec![Write::put(obj(bad.clone()))])
            .await
            .expect_err("bad key");
        assert!(
            matches!(e, StoreError::Limit(Limit::KeyAttribute { .. })),
            "{bad}: {e:?}"
        );
    }
    // BatchGetItem: at most 100 distinct keys.
    let keys: Vec<Key> = (0..101).map(|i| k("T", &format!("{i:03}"))).collect();
    let e = t.get_many(&keys, true).await.expect_err("101 keys");
    assert!(
        matches!(e, StoreError::Limit(Limit::BatchGetKeys(101))),
        "{e:?}"
    );
    let e = t
        .get_many(&[k("T", "001"), k("T", "001")], true)
        .await
        .expect_err("duplicate keys");
    assert!(
        matches!(e, StoreError::Limit(Limit::BatchGetDuplicateKey { .. })),
        "{e:?}"
    );
    assert_eq!(
        t.get_many(&keys[..100], true)
            .await
            .expect("100 keys")
            .len(),
        100
    );
    assert_eq!(
        community::store::get_all(&t, &keys, true)
            .await
            .expect("in batches")
            .len(),
        100
    );
}

/// A Query page stops after 1 MB read and says where to resume. moto does
/// not stop at 1 MB (it returns up to `limit` items), so on moto this case
/// only checks that paging reaches every item; on the embedded store every
/// page is at most 1 MB.
async fn query_pages_stop_at_one_megabyte(t: T, strict: bool) {
    use community::store::limits;
    let body = "q".repeat(300 * 1024);
    for i in 0..7 {
        // 300 WCU each: one partition takes 1,000 WCU/s, so a writer paces
        // itself as the SDK's retries would.
        let w = Write::put(obj(
            json!({"pk": "Q", "sk": format!("{i}"), "b": body.clone()}),
        ));
        let mut tries = 0;
        loop {
            match t.transact(vec![w.clone()]).await {
                Ok(()) => break,
                Err(StoreError::Throttled) if tries < 20 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("put: {e:?}"),
            }
        }
    }
    let mut seen = 0;
    let mut start = None;
    let mut pages = 0;
    loop {
        let page = t
            .query(
                &Query::new(Index::Primary, "Q")
                    .limit(100)
                    .start_after(start),
            )
            .await
            .expect("query");
        pages += 1;
        let bytes: usize = page.items.iter().map(limits::item_size).sum();
        if strict {
            assert!(
                bytes <= limits::MAX_QUERY_PAGE_BYTES,
                "{bytes} bytes in a page"
            );
        }
        seen += page.items.len();
        match page.last_key {
            Some(k) => start = Some(k),
            None => break,
        }
    }
    assert_eq!(seen, 7);
    if strict {
        assert!(pages >= 3, "7 items of 300 KB take 3 pages, not {pages}");
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let (t, _dir) = super::support::embedded();
                    super::$case(t).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn query_pages_stop_at_one_megabyte() {
                let (t, _dir) = super::support::embedded();
                super::query_pages_stop_at_one_megabyte(t, true).await;
            }
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(t) = super::support::dynamodb().await else { return };
                    super::$case(t).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn query_pages_stop_at_one_megabyte() {
                let Some(t) = super::support::dynamodb().await else { return };
                super::query_pages_stop_at_one_megabyte(t, false).await;
            }
        }
    };
}

conformance!(
    round_trips_every_json_type,
    put_new_refuses_existing_item,
    groups_are_all_or_nothing,
    updates_set_add_remove_and_create,
    conditions_agree_with_the_model,
    queries_order_filter_and_paginate,
    secondary_indexes_are_sparse_and_follow_updates,
    get_many_returns_what_exists,
    concurrent_conditions_never_overshoot,
    votes_are_exact_under_concurrency,
    reports_hide_once_and_lists_follow,
    authors_follow_their_hidden_contributions,
    dynamodb_limits_hold,
    home_list_reads_cards_from_one_index,
);

#[test]
fn value_helper_is_an_object() {
    assert!(matches!(
        Value::Object(obj(json!({"a": 1}))),
        Value::Object(_)
    ));
}
