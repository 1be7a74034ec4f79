//! The capacity meter through the local server: each request's write and
//! read units are attributed to its route, each consumer batch to its
//! consumer, and `POST /local/capacity/reset` zeroes it.

use axum::body::Body;
use axum::http::Request;
use community::testing::settings;
use community::App;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

mod support;
use support::send;

const SECRET: &str = "test-secret";

fn token(sub: &str) -> String {
    local::auth::sign(SECRET, sub, Some(&format!("{sub}@example.fr")), &[], 600).expect("token")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_meter_attributes_units_to_routes_and_consumers() {
    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let meter = table.meter();
    let node = local::Local::new(App::new(table, settings()), dir.path())
        .expect("local")
        .metered(meter);
    let r = node.router(local::auth::Verifier::new(SECRET));
    let (alice, bob) = (token("alice"), token("bob"));
    for (name, t) in [("alice", &alice), ("bob", &bob)] {
        let body = json!({"display_name": name, "email": format!("{name}@example.fr"),
                          "accept_terms_version": "2026-11", "email_opt_in": true});
        assert_eq!(
            send(&r, "POST", "/members", Some(t), Some(body)).await.0,
            201
        );
    }
    let (st, idea) = send(
        &r,
        "POST",
        "/ideas",
        Some(&alice),
        Some(
            json!({"theme": "environment", "title": "Des paniers anti-gaspi",
                    "body": "Des paniers de produits à date courte, à prix réduit."}),
        ),
    )
    .await;
    assert_eq!(st, 201);
    let id = idea["id"].as_str().expect("id").to_owned();
    // The sign-ups' events first, so the vote's batch holds only the vote.
    node.pipeline.drain().await.expect("drain");
    assert_eq!(
        send(&r, "PUT", &format!("/ideas/{id}/vote"), Some(&bob), None)
            .await
            .0,
        200
    );
    node.pipeline.drain().await.expect("drain");

    let (st, rep) = send(&r, "GET", "/local/capacity", None, None).await;
    assert_eq!(st, 200);
    let by = &rep["by_cause"];
    assert_eq!(by["POST /members"]["calls"], json!(2));
    let vote = &by["PUT /ideas/{id}/vote"];
    assert_eq!(vote["calls"], json!(1));
    assert!(vote["wcu"].as_f64().unwrap_or(0.0) >= 2.0, "{vote}");
    assert!(vote["rcu"].as_f64().unwrap_or(0.0) > 0.0, "{vote}");
    assert!(vote["busy_ms"].as_f64().unwrap_or(0.0) > 0.0, "{vote}");
    // The vote's event reached the insights queue through the relay (and
    // not the points queue: a vote's points are read from its record), and
    // the consumer's work on it is attributed to its kind: a read of the
    // voter's last active day, and no write (bob was active today).
    assert!(by.get("consumer:points/vote.cast").is_none(), "{by}");
    let insights = &by["consumer:insights/vote.cast"];
    assert_eq!(insights["calls"].as_u64(), Some(1), "{insights}");
    assert_eq!(insights["wcu"].as_f64(), Some(0.0), "{insights}");
    assert!(insights["rcu"].as_f64().unwrap_or(0.0) > 0.0, "{insights}");
    assert!(
        by["consumer:points/member.signed_up"]["wcu"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    // The aggregator counted it from the feed.
    let tally = &by["consumer:thresholds/vote.cast"];
    assert!(tally["wcu"].as_f64().unwrap_or(0.0) > 0.0, "{tally}");
    let relay = &by[format!("{}: vote.cast", local::pipeline::RELAY_CAUSE).as_str()];
    assert_eq!(relay["messages"]["insights"].as_u64(), Some(1), "{relay}");
    assert!(relay["messages"].get("points").is_none(), "{relay}");
    // Its calls count the events relayed: one vote; two sign-ups.
    assert_eq!(relay["calls"].as_u64(), Some(1), "{relay}");
    let signups = &by[format!("{}: member.signed_up", local::pipeline::RELAY_CAUSE).as_str()];
    assert_eq!(signups["calls"].as_u64(), Some(2), "{signups}");
    assert!(rep["hot_write_partitions"]
        .as_array()
        .is_some_and(|a| !a.is_empty()));
    // No request met a conflict (the points and insights consumers may:
    // both write a member's SCORE item, and retry in process).
    for (cause, u) in by.as_object().into_iter().flatten() {
        if !cause.starts_with("consumer:") {
            assert_eq!(u["conflicts"], json!(0), "{cause}: {u}");
        }
    }

    assert_eq!(
        send(&r, "POST", "/local/capacity/reset", None, None)
            .await
            .0,
        204
    );
    let (_, rep) = send(&r, "GET", "/local/capacity", None, None).await;
    assert_eq!(rep["by_cause"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_queues_report_depth_and_the_age_of_the_oldest_message() {
    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let node = local::Local::new(App::new(table, settings()), dir.path()).expect("local");
    let r = node.router(local::auth::Verifier::new(SECRET));
    let body = json!({"display_name": "alice", "email": "alice@example.fr",
                      "accept_terms_version": "2026-11", "email_opt_in": true});
    assert_eq!(
        send(&r, "POST", "/members", Some(&token("alice")), Some(body))
            .await
            .0,
        201
    );
    // Relayed but not consumed yet: the sign-up waits on the emails queue.
    node.pipeline.relay_once().await.expect("relay");
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let (st, q) = send(&r, "GET", "/local/queues", None, None).await;
    assert_eq!(st, 200, "{q}");
    let emails = q["queues"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["queue"] == "emails"))
        .cloned()
        .expect("emails queue");
    assert_eq!(emails["messages"], json!(1), "{q}");
    assert!(
        emails["oldest_age_secs"].as_f64().unwrap_or(0.0) >= 0.02,
        "{q}"
    );
    node.pipeline.drain().await.expect("drain");
    let (_, q) = send(&r, "GET", "/local/queues", None, None).await;
    for e in q["queues"].as_array().expect("queues") {
        assert_eq!(e["messages"], json!(0), "{q}");
        assert_eq!(e["oldest_age_secs"], Value::Null, "{q}");
    }
}

/// The home list as the TV spike reads it: one Query of cards (not bodies),
/// an `ETag` and `304` on `If-None-Match`, public caching for anonymous
/// reads and none for a token's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_list_is_one_small_query_with_conditional_gets() {
    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let meter = table.meter();
    let node = local::Local::new(App::new(table, settings()), dir.path())
        .expect("local")
        .metered(meter);
    let r = node.router(local::auth::Verifier::new(SECRET));
    let alice = token("alice");
    let body = json!({"display_name": "alice", "email": "alice@example.fr",
                      "accept_terms_version": "2026-11", "email_opt_in": true});
    assert_eq!(
        send(&r, "POST", "/members", Some(&alice), Some(body))
            .await
            .0,
        201
    );
    // 30 ideas of nearly 5,000 characters each (the rate limit allows a
    // few ideas per member, so they are written directly).
    let long = "Des paniers de produits proches de leur date, à prix réduit. ".repeat(80);
    let author = community::auth::Caller {
        id: community::domain::MemberId::parse("alice").expect("id"),
        email: Some("alice@example.fr".into()),
        groups: vec![],
        email_verified: Some(true),
    };
    for i in 0..30 {
        let req = community::ideas::NewIdea {
            theme: Some("environment".into()),
            title: Some(format!("Idée {i}")),
            body: Some(long.clone()),
        };
        community::ideas::create(&node.app, &author, req, None)
            .await
            .expect("idea");
    }
    assert_eq!(
        send(&r, "POST", "/local/capacity/reset", None, None)
            .await
            .0,
        204
    );
    let get = |tok: Option<&str>, inm: Option<&str>| {
        let mut req = Request::builder().method("GET").uri("/ideas?sort=top");
        if let Some(t) = tok {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(v) = inm {
            req = req.header("if-none-match", v);
        }
        let req = req.body(Body::empty()).expect("request");
        let r = r.clone();
        async move { r.oneshot(req).await.expect("infallible") }
    };
    let res = get(None, None).await;
    assert_eq!(res.status().as_u16(), 200);
    let etag = res
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("etag");
    let cc = res
        .headers()
        .get("cache-control")
        .cloned()
        .expect("cache-control");
    assert!(
        cc.to_str().unwrap_or_default().starts_with("public"),
        "{cc:?}"
    );
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    let page: Value = serde_json::from_slice(&bytes).expect("json");
    let items = page["items"].as_array().expect("items");
    assert_eq!(items.len(), 20);
    assert!(items.iter().all(|i| i["truncated"] == json!(true)
        && i["body"].as_str().is_some_and(|b| b.chars().count() <= 281)));
    assert!(
        bytes.len() < 20 * 1024,
        "{} bytes for 20 cards",
        bytes.len()
    );
    // The same content again: 304, no body.
    let res = get(None, Some(&etag)).await;
    assert_eq!(res.status().as_u16(), 304);
    assert_eq!(
        res.headers().get("etag").and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    let empty = res.into_body().collect().await.expect("body").to_bytes();
    assert!(empty.is_empty());
    // With a token: the same tag, but no shared cache may keep it.
    let res = get(Some(&alice), Some("\"other\"")).await;
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("private, no-cache")
    );
    // What the two full reads cost: one Query each, of cards (30 ideas of
    // ~5 KB would be ~150 KB = 19 read units if bodies were read).
    let (_, rep) = send(&r, "GET", "/local/capacity", None, None).await;
    let list = &rep["by_cause"]["GET /ideas"];
    assert_eq!(list["calls"], json!(3), "{list}");
    let rcu = list["rcu"].as_f64().unwrap_or(99.0);
    assert!(rcu <= 3.0 * 1.5, "three home lists cost {rcu} RCU: {list}");
}

/// What a vote costs all-in, read from the meter: the request, the relay,
/// every consumer its events reach and the aggregator, for 400 votes by
/// distinct members on 10 ideas, delivered in waves of 50 (so the
/// aggregator's per-idea writes are shared by about five votes, not by the
/// whole run). docs/architecture.md ("Counting votes") states the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vote_costs_its_record_and_a_share_of_the_aggregators_writes() {
    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let meter = table.meter();
    let node = local::Local::new(App::new(table, settings()), dir.path())
        .expect("local")
        .metered(meter);
    let r = node.router(local::auth::Verifier::new(SECRET));
    let voters: Vec<String> = (0..400).map(|i| format!("voter{i}")).collect();
    for v in voters.iter().chain(std::iter::once(&"author".to_owned())) {
        let body = json!({"display_name": v, "email": format!("{v}@example.fr"),
                          "accept_terms_version": "2026-11", "email_opt_in": true});
        assert_eq!(
            send(&r, "POST", "/members", Some(&token(v)), Some(body))
                .await
                .0,
            201
        );
    }
    let author = community::auth::Caller {
        id: community::domain::MemberId::parse("author").expect("id"),
        email: Some("author@example.fr".into()),
        groups: vec![],
        email_verified: Some(true),
    };
    let mut ideas = Vec::new();
    for i in 0..10 {
        let req = community::ideas::NewIdea {
            theme: Some("environment".into()),
            title: Some(format!("Idée {i}")),
            body: Some("Des paniers de produits proches de leur date. ".repeat(40)),
        };
        let idea = community::ideas::create(&node.app, &author, req, None)
            .await
            .expect("idea");
        ideas.push(idea.id);
    }
    node.pipeline.drain().await.expect("drain");
    assert_eq!(
        send(&r, "POST", "/local/capacity/reset", None, None)
            .await
            .0,
        204
    );
    for (wave, chunk) in voters.chunks(50).enumerate() {
        for (i, v) in chunk.iter().enumerate() {
            let idea = &ideas[(i + wave) % ideas.len()];
            let (st, _) = send(
                &r,
                "PUT",
                &format!("/ideas/{idea}/vote"),
                Some(&token(v)),
                None,
            )
            .await;
            assert_eq!(st, 200);
        }
        node.pipeline.drain().await.expect("drain");
    }
    let (_, rep) = send(&r, "GET", "/local/capacity", None, None).await;
    let by = rep["by_cause"].as_object().expect("by_cause");
    let n = voters.len() as f64;
    let (mut wcu, mut rcu) = (0.0, 0.0);
    println!("cost of {n} votes, all-in, per vote:");
    for (cause, u) in by {
        let (w, r) = (
            u["wcu"].as_f64().unwrap_or(0.0),
            u["rcu"].as_f64().unwrap_or(0.0),
        );
        println!("  {cause:<40} {:>6.2} WCU {:>6.2} RCU", w / n, r / n);
        wcu += w;
        rcu += r;
    }
    println!(
        "  {:<40} {:>6.2} WCU {:>6.2} RCU",
        "all-in",
        wcu / n,
        rcu / n
    );
    for idea in &ideas {
        let id = community::domain::IdeaId::parse(idea).expect("id");
        let row = community::ideas::load(&node.app, &id, true)
            .await
            .expect("idea");
        assert_eq!(row.votes, 40, "every vote counted once");
    }
    // The request writes the record and its gsi3 entry (2 WCU); the
    // aggregator's ~8 WCU per idea and batch are shared by the five votes
    // each idea takes per wave here (more in a launch's larger batches).
    let vote = &by["PUT /ideas/{id}/vote"];
    assert_eq!(vote["wcu"].as_f64(), Some(2.0 * n), "{vote}");
    assert!(
        by.get("consumer:points/vote.cast").is_none(),
        "no credit write"
    );
    assert!(wcu / n <= 3.8, "{:.2} WCU per vote", wcu / n);
    assert!(rcu / n <= 2.0, "{:.2} RCU per vote", rcu / n);
}
