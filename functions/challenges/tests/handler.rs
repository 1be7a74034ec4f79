//! Co-creation challenges (défis) through the function's Lambda entry, on
//! both adapters: listing, proposals (posted while open, listed new and top,
//! voted like any idea), the results published once by their owner
//! (marketing, or the sponsoring brand only).

use community::domain::IdeaId;
use community::events::{Event, Kind};
use community::store::{Index, Query, Table};
use community::testing::{
    apply_challenges, at, call, call_event, caller, challenge, embedded_app, event, join, member,
    run_insights,
};
use community::App;
use serde_json::{json, Value};

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn proposal(n: usize) -> Value {
    json!({"title": format!("Des pots consignés n°{n}"),
           "body": "Des pots en verre rapportés vides en magasin et remplis de nouveau."})
}

/// The events waiting in the outbox.
async fn outbox<T: Table>(app: &App<T>) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..community::events::OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, community::events::outbox_pk(b)).limit(1000);
        for i in app.table.query(&q).await.expect("outbox").items {
            out.extend(Event::from_item(&i));
        }
    }
    out
}

async fn scenario<T: Table + Clone>(app: App<T>) {
    let brand = "bonne-maman";
    let sponsored = challenge("produit-de-demain", -60, 3600, Some(brand));
    let house = challenge("defi-maison", -60, 3600, None);
    apply_challenges(
        &app,
        vec![
            sponsored.clone(),
            house.clone(),
            challenge("bientot", 3600, 7200, Some(brand)),
            challenge("fini", -7200, -60, Some(brand)),
        ],
    )
    .await;
    let r = challenges::router(app.clone());
    let (ana, bob, cid) = (member("ana"), member("bob"), member("cid"));
    for m in [&ana, &bob, &cid] {
        join(&app, m).await;
    }
    let stranger = member("stranger");
    let mia = member("mia").in_groups(&["marketing"]);
    let partner = member("partner").in_groups(&["brand:bonne-maman"]);
    let other_brand = member("other").in_groups(&["brand:lu"]);

    // Reading: public.
    let list = call(&r, "GET", "/challenges", None, None).await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(ids(&list.body).len(), 4);
    let one = call(&r, "GET", "/challenges/produit-de-demain", None, None).await;
    assert_eq!(one.status, 200);
    assert_eq!(
        (
            one.body["status"].clone(),
            one.body["sponsor"]["brand"].clone(),
            one.body["proposal_count"].clone(),
            one.body["results"].clone()
        ),
        (json!("open"), json!(brand), json!(0), Value::Null)
    );
    for (id, status) in [("bientot", "upcoming"), ("fini", "closed")] {
        let res = call(&r, "GET", &format!("/challenges/{id}"), None, None).await;
        assert_eq!(res.body["status"], status);
    }
    for bad in [
        "/challenges/nope",
        "/challenges/..%2Fx",
        "/challenges/nope/proposals",
    ] {
        assert_eq!(call(&r, "GET", bad, None, None).await.status, 404, "{bad}");
    }

    // Posting: a member, while open, a valid proposal.
    let path = "/challenges/produit-de-demain/proposals";
    assert_eq!(
        call(&r, "POST", path, None, Some(proposal(0))).await.status,
        401
    );
    assert_eq!(
        call(&r, "POST", path, Some(&stranger), Some(proposal(0)))
            .await
            .status,
        403,
        "not signed up"
    );
    let res = call(&r, "POST", path, Some(&ana), Some(json!({"title": "x"}))).await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["title".to_string(), "body".to_string()])
    );
    let mut extra = proposal(0);
    extra["theme"] = json!("children");
    assert_eq!(
        call(&r, "POST", path, Some(&ana), Some(extra)).await.status,
        400,
        "the theme is the challenge's"
    );
    for id in ["bientot", "fini"] {
        let res = call(
            &r,
            "POST",
            &format!("/challenges/{id}/proposals"),
            Some(&ana),
            Some(proposal(0)),
        )
        .await;
        assert_eq!(res.status, 409, "{id}: {}", res.body);
    }
    assert_eq!(
        call(
            &r,
            "POST",
            "/challenges/nope/proposals",
            Some(&ana),
            Some(proposal(0))
        )
        .await
        .status,
        404
    );
    // A failed request with an Idempotency-Key frees its key.
    let failed = call_event(
        &r,
        &event(
            "POST",
            "/challenges/fini/proposals",
            Some(&ana),
            Some(&proposal(0).to_string()),
            &[("Idempotency-Key", "k-fini")],
        ),
    )
    .await;
    assert_eq!(failed.status, 409);

    let mut posted = Vec::new();
    for (i, who) in [&ana, &bob, &ana].into_iter().enumerate() {
        let res = call(&r, "POST", path, Some(who), Some(proposal(i))).await;
        assert_eq!(res.status, 201, "{}", res.body);
        assert_eq!(res.body["challenge_id"], "produit-de-demain");
        assert_eq!(res.body["theme"], "environment");
        assert_eq!(res.body["status"], "open");
        posted.push(res.body["id"].as_str().expect("id").to_owned());
    }
    let elsewhere = call(
        &r,
        "POST",
        "/challenges/defi-maison/proposals",
        Some(&cid),
        Some(proposal(9)),
    )
    .await;
    assert_eq!(elsewhere.status, 201);
    let elsewhere = elsewhere.body["id"].as_str().expect("id").to_owned();
    // The proposal's event names the challenge and its points.
    let posted_events: Vec<Event> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == Kind::IdeaPosted && e.idea_id.as_deref() == Some(&posted[0]))
        .collect();
    assert_eq!(posted_events.len(), 1);
    assert_eq!(posted_events[0].data["challenge_id"], "produit-de-demain");
    assert_eq!(posted_events[0].data["points"], 15);

    // Listing: newest first, or most voted; each names the challenge.
    let new = call(&r, "GET", &format!("{path}?sort=new"), None, None).await;
    assert_eq!(new.status, 200, "{}", new.body);
    let mut newest = posted.clone();
    newest.reverse();
    assert_eq!(ids(&new.body), newest);
    assert!(new.body["items"]
        .as_array()
        .is_some_and(|a| a.iter().all(|i| i["challenge_id"] == "produit-de-demain")));
    let page = call(&r, "GET", &format!("{path}?limit=2"), None, None).await;
    assert_eq!(ids(&page.body), newest[..2].to_vec());
    let cursor = page.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let next = call(
        &r,
        "GET",
        &format!("{path}?limit=2&cursor={cursor}"),
        None,
        None,
    )
    .await;
    assert_eq!(ids(&next.body), newest[2..].to_vec());
    let top = call(&r, "GET", &format!("{path}?sort=top"), None, None).await;
    assert_eq!(top.status, 200);
    let mut top_ids = ids(&top.body);
    top_ids.sort();
    let mut all = posted.clone();
    all.sort();
    assert_eq!(top_ids, all, "the challenge's own top list");
    let res = call(&r, "GET", &format!("{path}?sort=best"), None, None).await;
    assert_eq!((res.status, res.fields()), (422, vec!["sort".to_string()]));
    // Proposals stay out of the home list, in the theme's lists.
    let home = community::ideas::list(
        &app,
        community::ideas::ListRequest {
            sort: community::ideas::Sort::Top,
            limit: 100,
            ..Default::default()
        },
    )
    .await
    .expect("home");
    assert!(home.items.iter().all(|c| !posted.contains(&c.id)));

    // Proposals are voted like any idea; the vote names the challenge.
    let first = IdeaId::parse(&posted[0]).expect("id");
    for m in [&bob, &cid] {
        community::votes::cast(&app, &caller(m), &first)
            .await
            .expect("vote");
    }
    // Insights fold the participation: 3 proposals, 3 participants (ana,
    // bob, cid), 2 votes.
    run_insights(&app).await;
    run_insights(&app).await;
    community::testing::insights_votes(&app, &posted[0], &[&bob, &cid]).await;
    let p = community::challenges::participation(&app, "produit-de-demain")
        .await
        .expect("figures");
    assert_eq!((p.proposals, p.participants, p.votes), (3, 3, 2));
    let one = call(&r, "GET", "/challenges/produit-de-demain", None, None).await;
    assert_eq!(one.body["proposal_count"], 3);

    // Results: after close, by the owner, once.
    let results = json!({"winners": [{"idea_id": posted[0], "note": "Nous lançons une étude."},
                                     {"idea_id": posted[1]}],
                         "answer": "Merci pour vos propositions : les pots consignés arrivent au printemps."});
    let rpath = "/challenges/produit-de-demain/results";
    assert_eq!(
        call(&r, "POST", rpath, Some(&mia), Some(results.clone()))
            .await
            .status,
        409,
        "still open"
    );
    let mut closed = sponsored.clone();
    closed.opens_at = at(-7200);
    closed.closes_at = at(-60);
    let mut house_closed = house.clone();
    house_closed.opens_at = at(-7200);
    house_closed.closes_at = at(-60);
    apply_challenges(&app, vec![closed, house_closed]).await;
    assert_eq!(
        call(&r, "POST", path, Some(&cid), Some(proposal(5)))
            .await
            .status,
        409,
        "closed: no more proposals"
    );
    assert_eq!(
        call(&r, "POST", rpath, None, Some(results.clone()))
            .await
            .status,
        401
    );
    for who in [&ana, &other_brand] {
        let res = call(&r, "POST", rpath, Some(who), Some(results.clone())).await;
        assert_eq!(res.status, 403, "{}: {}", who.sub, res.body);
    }
    assert_eq!(
        call(
            &r,
            "POST",
            "/challenges/defi-maison/results",
            Some(&partner),
            Some(
                json!({"winners": [{"idea_id": elsewhere}], "answer": "Merci à toutes et à tous !"})
            )
        )
        .await
        .status,
        403,
        "a brand publishes only the challenges it sponsors"
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/challenges/nope/results",
            Some(&mia),
            Some(results.clone())
        )
        .await
        .status,
        404
    );
    for (bad, fields) in [
        (json!({"winners": [{"idea_id": posted[0]}]}), vec!["answer"]),
        (
            json!({"winners": [], "answer": "Merci à toutes et à tous !"}),
            vec!["winners"],
        ),
        (
            json!({"winners": [{"idea_id": elsewhere}], "answer": "Merci à toutes et à tous !"}),
            vec!["winners[0].idea_id"],
        ),
        (
            json!({"winners": [{"idea_id": posted[0]}, {"idea_id": posted[0]}], "answer": "Merci à toutes et à tous !"}),
            vec!["winners[1].idea_id"],
        ),
        (
            json!({"winners": [{"idea_id": "pas-un-id"}, {"idea_id": posted[2], "note": "x".repeat(501)}], "answer": "Court"}),
            vec!["answer", "winners[0].idea_id", "winners[1].note"],
        ),
    ] {
        let res = call(&r, "POST", rpath, Some(&partner), Some(bad.clone())).await;
        let mut got = res.fields();
        got.sort();
        assert_eq!(
            (res.status, got),
            (422, fields.iter().map(|f| f.to_string()).collect()),
            "{bad}"
        );
    }
    assert_eq!(
        call(
            &r,
            "POST",
            rpath,
            Some(&partner),
            Some(json!({"winners": [], "answer": "ok", "extra": 1}))
        )
        .await
        .status,
        400
    );
    let res = call(&r, "POST", rpath, Some(&partner), Some(results.clone())).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["status"], "decided");
    assert_eq!(
        res.body["results"]["winners"][0]["idea_id"],
        posted[0].as_str()
    );
    assert_eq!(res.body["results"]["winners"][0]["author"]["id"], "ana");
    for who in [&partner, &mia] {
        let again = call(&r, "POST", rpath, Some(who), Some(results.clone())).await;
        assert_eq!(again.status, 409, "published once");
    }
    let decided: Vec<Event> = outbox(&app)
        .await
        .into_iter()
        .filter(|e| e.kind == Kind::ChallengeDecided)
        .collect();
    assert_eq!(decided.len(), 1, "one event");
    assert_eq!(decided[0].data["by"], "brand:bonne-maman");
    assert_eq!(decided[0].data["points"], 300);
    // The winners are accepted: the committee follows them to the shelves.
    let won = community::ideas::get(&app, &first).await.expect("idea");
    assert_eq!(won.status, community::domain::IdeaStatus::Accepted);
    assert_eq!(
        won.decision.map(|d| d.reason),
        Some("Nous lançons une étude.".to_string())
    );
    let third = community::ideas::get(&app, &IdeaId::parse(&posted[2]).expect("id"))
        .await
        .expect("idea");
    assert_eq!(
        third.status,
        community::domain::IdeaStatus::Open,
        "not a winner"
    );
    // Marketing publishes the house challenge.
    let res = call(
        &r,
        "POST",
        "/challenges/defi-maison/results",
        Some(&mia),
        Some(json!({"winners": [{"idea_id": elsewhere}], "answer": "Merci à toutes et à tous !"})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
}

#[tokio::test]
async fn challenges_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_on_dynamodb() {
    let Some(table) = community::testing::moto_table("challenges").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}

/// The `top` list follows the votes as the aggregator rolls them up (in the
/// challenge's own gsi4 partition, never the home list's), and the vote
/// record names the challenge (for insights).
#[tokio::test]
async fn the_top_list_follows_the_aggregators_roll_up() {
    let (app, _d) = embedded_app(|_| {});
    apply_challenges(&app, vec![challenge("defi", -60, 3600, None)]).await;
    let r = challenges::router(app.clone());
    let (ana, bob, cid) = (member("ana"), member("bob"), member("cid"));
    for m in [&ana, &bob, &cid] {
        join(&app, m).await;
    }
    let path = "/challenges/defi/proposals";
    let mut posted = Vec::new();
    for (i, who) in [&ana, &bob].into_iter().enumerate() {
        let res = call(&r, "POST", path, Some(who), Some(proposal(i))).await;
        assert_eq!(res.status, 201, "{}", res.body);
        posted.push(res.body["id"].as_str().expect("id").to_owned());
    }
    let older = IdeaId::parse(&posted[0]).expect("id");
    for m in [&bob, &cid] {
        community::votes::cast(&app, &caller(m), &older)
            .await
            .expect("vote");
    }
    let record = app
        .table
        .get(&community::votes::vote_key(&older, "cid"), true)
        .await
        .expect("get")
        .expect("vote record");
    assert_eq!(record["challenge_id"], "defi");
    community::thresholds::drain_feed(&app)
        .await
        .expect("aggregated");
    let top = call(&r, "GET", &format!("{path}?sort=top"), None, None).await;
    assert_eq!(ids(&top.body), posted.clone(), "most voted first");
    assert_eq!(top.body["items"][0]["votes"], 2);
    let new = call(&r, "GET", path, None, None).await;
    assert_eq!(ids(&new.body), vec![posted[1].clone(), posted[0].clone()]);
    // A hidden proposal leaves both lists.
    let mona = member("mona").in_groups(&["moderator"]);
    community::moderation::decide(
        &app,
        &caller(&mona),
        "idea",
        &posted[0],
        serde_json::from_value(json!({"action": "hide", "reason": "Hors sujet pour ce défi."}))
            .expect("decision"),
    )
    .await
    .expect("hidden");
    let top = call(&r, "GET", &format!("{path}?sort=top"), None, None).await;
    assert_eq!(ids(&top.body), vec![posted[1].clone()]);
    let new = call(&r, "GET", path, None, None).await;
    assert_eq!(ids(&new.body), vec![posted[1].clone()]);
}
