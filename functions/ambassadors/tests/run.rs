//! The ambassadors' scheduled run on a generated population: 3,000 members
//! with random activity counters, ranked by the test itself; a second run
//! writes nothing; a member whose activity changes moves alone; an erased
//! member drops out.

use async_trait::async_trait;
use community::ambassadors::{self, AmbassadorsConfig, Level, Top};
use community::events::{Event, Kind};
use community::queue::Consumer;
use community::store::embedded::EmbeddedTable;
use community::store::{Item, Key, Page, Query, StoreResult, Table, Write};
use community::testing::{caller, embedded_app, member};
use community::App;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The table, counting the items written.
#[derive(Clone)]
struct Counting {
    inner: EmbeddedTable,
    writes: Arc<AtomicUsize>,
}

#[async_trait]
impl Table for Counting {
    async fn get(&self, key: &Key, consistent: bool) -> StoreResult<Option<Item>> {
        self.inner.get(key, consistent).await
    }
    async fn get_many(&self, keys: &[Key], consistent: bool) -> StoreResult<Vec<Item>> {
        self.inner.get_many(keys, consistent).await
    }
    async fn query(&self, q: &Query) -> StoreResult<Page> {
        self.inner.query(q).await
    }
    async fn transact(&self, writes: Vec<Write>) -> StoreResult<()> {
        let n = writes.len();
        self.inner.transact(writes).await?;
        self.writes.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }
}

const N: usize = 3000;
const WEIGHTS: [(&str, i64); 7] = [
    ("points", 1),
    ("ideas", 20),
    ("votes_drawn", 2),
    ("comments", 5),
    ("reviews", 15),
    ("entries", 3),
    ("clicks", 2),
];

fn config() -> AmbassadorsConfig {
    AmbassadorsConfig {
        top: Top::Count(100),
        min_score: 300,
        weights: WEIGHTS.iter().map(|(c, w)| (c.to_string(), *w)).collect(),
        levels: vec![
            Level {
                name: "bronze".into(),
                min_score: 300,
            },
            Level {
                name: "silver".into(),
                min_score: 1500,
            },
            Level {
                name: "gold".into(),
                min_score: 2000,
            },
        ],
    }
}

fn sub(i: usize) -> String {
    format!("gen{i:05}")
}

/// The test's own ranking: score descending, then member id.
fn expected(counts: &BTreeMap<String, BTreeMap<&'static str, i64>>) -> Vec<(String, i64, String)> {
    let mut scored: Vec<(String, i64)> = counts
        .iter()
        .map(|(m, c)| {
            (
                m.clone(),
                WEIGHTS
                    .iter()
                    .map(|(k, w)| w * c.get(k).copied().unwrap_or(0))
                    .sum(),
            )
        })
        .collect();
    scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
        .into_iter()
        .take(100)
        .filter(|(_, s)| *s >= 300)
        .map(|(m, s)| {
            let level = if s >= 2000 {
                "gold"
            } else if s >= 1500 {
                "silver"
            } else {
                "bronze"
            };
            (m, s, level.to_string())
        })
        .collect()
}

async fn flagged(app: &App<Counting>) -> BTreeMap<String, String> {
    let keys: Vec<Key> = (0..N)
        .map(|i| Key::new(format!("MEMBER#{}", sub(i)), "PROFILE"))
        .collect();
    let mut out = BTreeMap::new();
    for chunk in keys.chunks(100) {
        for p in app.table.get_many(chunk, true).await.expect("profiles") {
            if p["ambassador"] == json!(true) {
                out.insert(
                    p["id"].as_str().expect("id").to_owned(),
                    p["level"].as_str().expect("level").to_owned(),
                );
            }
        }
    }
    out
}

async fn listed(app: &App<Counting>) -> Vec<ambassadors::AmbassadorView> {
    let mkt = caller(&member("mkt").in_groups(&["marketing"]));
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = ambassadors::list(app, &mkt, 30, cursor)
            .await
            .expect("list");
        out.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return out,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoring_a_generated_population() {
    let (base, _d) = embedded_app(|s| s.ambassadors = config());
    let writes = Arc::new(AtomicUsize::new(0));
    let app = base.with_table(Counting {
        inner: base.table.clone(),
        writes: writes.clone(),
    });
    // The population: profiles and activity counters, written directly.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut counts: BTreeMap<String, BTreeMap<&'static str, i64>> = BTreeMap::new();
    let mut batch = Vec::new();
    for i in 0..N {
        let m = sub(i);
        // Most members do little; a few do a lot.
        let heavy = rng.random_range(0..100) < 8;
        let scale = if heavy { rng.random_range(1..=60) } else { 3 };
        let c: BTreeMap<&'static str, i64> = WEIGHTS
            .iter()
            .map(|(k, _)| {
                (
                    *k,
                    rng.random_range(0..=scale) * if *k == "points" { 25 } else { 1 },
                )
            })
            .collect();
        let profile = json!({"pk": format!("MEMBER#{m}"), "sk": "PROFILE", "id": m, "display_name": format!("Membre {i}"),
            "email": format!("{m}@example.fr"), "email_opt_in": false, "email_opt_in_at": "2026-11-01T00:00:00.000Z",
            "terms_version": "2026-11", "terms_accepted_at": "2026-11-01T00:00:00.000Z", "cohort": "public",
            "joined_at": "2026-11-01T00:00:00.000Z", "points_balance": 0, "level": "member", "ambassador": false});
        let Value::Object(profile) = profile else {
            panic!("object")
        };
        batch.push(Write::put(profile));
        // `votes_drawn` is read from the vote aggregator's tallies of the
        // member's ideas: one idea each here.
        let adds: Vec<(&str, i64)> = c
            .iter()
            .filter(|(k, _)| **k != "votes_drawn")
            .map(|(k, v)| (*k, *v))
            .collect();
        batch.push(ambassadors::counter_write(&m, &adds));
        let drawn = c["votes_drawn"];
        let tally = community::thresholds::Tally {
            votes: drawn,
            cast: drawn,
            author_id: Some(m.clone()),
            ..Default::default()
        };
        batch.push(Write::put(
            community::thresholds::tally_item(&format!("IDEAOF{m}"), &tally).expect("tally"),
        ));
        counts.insert(m, c);
        if batch.len() >= 99 {
            base.table
                .transact(std::mem::take(&mut batch))
                .await
                .expect("seed");
        }
    }
    if !batch.is_empty() {
        base.table.transact(batch).await.expect("seed");
    }

    // First run: the test's own ranking, on profiles and in the list.
    let want = expected(&counts);
    assert!(want.len() >= 50, "a meaningful top ({})", want.len());
    let levels: std::collections::BTreeSet<&str> = want.iter().map(|w| w.2.as_str()).collect();
    assert!(levels.len() >= 2, "several levels: {levels:?}");
    let report = ambassadors::run(&app).await.expect("run");
    assert_eq!(report.scored, N);
    assert_eq!(report.ambassadors, want.len());
    assert_eq!(report.flagged, want.len());
    let got = flagged(&app).await;
    let want_map: BTreeMap<String, String> = want
        .iter()
        .map(|(m, _, l)| (m.clone(), l.clone()))
        .collect();
    assert_eq!(got, want_map);
    let list = listed(&app).await;
    assert_eq!(
        list.iter()
            .map(|a| (a.member_id.clone(), a.score, a.level.clone()))
            .collect::<Vec<_>>(),
        want
    );
    for a in &list {
        assert_eq!(a.breakdown.iter().map(|l| l.points).sum::<i64>(), a.score);
        let c = &counts[&a.member_id];
        for l in &a.breakdown {
            assert_eq!(
                l.count,
                c[l.counter.as_str()],
                "{} {}",
                a.member_id,
                l.counter
            );
            assert_eq!(l.points, l.count * l.weight);
        }
        assert_eq!(
            a.display_name.as_deref().map(|n| n.starts_with("Membre ")),
            Some(true)
        );
    }

    // Second run: nothing changed, nothing written.
    let before = writes.load(Ordering::SeqCst);
    let report = ambassadors::run(&app).await.expect("run");
    assert_eq!(writes.load(Ordering::SeqCst), before, "{report:?}");
    assert_eq!(
        (report.flagged, report.unflagged, report.level_changed),
        (0, 0, 0)
    );

    // An ambassador's activity grows to the next level: only they move.
    let (m, score, level) = want
        .iter()
        .rev()
        .find(|w| w.2 != "gold")
        .cloned()
        .expect("an ambassador below gold");
    let (next, at) = if level == "bronze" {
        ("silver", 1500)
    } else {
        ("gold", 2000)
    };
    let reviews = (at - score) / 15 + 1;
    base.table
        .transact(vec![ambassadors::counter_write(
            &m,
            &[("reviews", reviews)],
        )])
        .await
        .expect("activity");
    let before = writes.load(Ordering::SeqCst);
    let report = ambassadors::run(&app).await.expect("run");
    assert_eq!(report.level_changed, 1, "{report:?}");
    assert_eq!((report.flagged, report.unflagged), (0, 0));
    assert_eq!(
        writes.load(Ordering::SeqCst) - before,
        2,
        "their score snapshot and their profile"
    );
    let mut want_map2 = want_map.clone();
    want_map2.insert(m.clone(), next.into());
    assert_eq!(flagged(&app).await, want_map2);

    // The erasure of an ambassador: the insights consumer tombstones their
    // counters and resets their profile; the next run un-flags them.
    let top = list[0].member_id.clone();
    let consumer = community::insights::InsightsConsumer { app: base.clone() };
    consumer
        .apply(&Event::new(Kind::MemberErased, &top, None, json!(null)))
        .await
        .expect("erased");
    // Counters can no longer grow for them.
    assert!(base
        .table
        .transact(vec![ambassadors::counter_write(&top, &[("clicks", 1)])])
        .await
        .is_err());
    let report = ambassadors::run(&app).await.expect("run");
    assert_eq!(report.scored, N - 1);
    let now = flagged(&app).await;
    assert!(!now.contains_key(&top));
    assert!(listed(&app).await.iter().all(|a| a.member_id != top));
    // The next best member takes the freed place.
    let mut all = counts.clone();
    all.remove(&top);
    all.get_mut(&m)
        .expect("m")
        .insert("reviews", counts[&m]["reviews"] + reviews);
    let want3: BTreeMap<String, String> =
        expected(&all).into_iter().map(|(m, _, l)| (m, l)).collect();
    assert_eq!(now, want3);

    // Through the function's entry: the report.
    let v = ambassadors_fn::handle(&app, json!({"source": "aws.scheduler"}))
        .await
        .expect("handled");
    assert_eq!(v["scored"], json!(N - 1));
    assert_eq!(v["writes"], json!(0));
}

mod ambassadors_fn {
    pub use ::ambassadors::handle;
}
