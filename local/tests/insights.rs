//! Insights through the whole pipeline: a small community is driven through
//! the domain services, the relay and every consumer; `GET /insights` must
//! equal counts the test computes on its own from the primary records, and
//! redelivering every event must move nothing.

use async_trait::async_trait;
use community::auth::Caller;
use community::domain::{IdeaId, IdeaStatus};
use community::events::{Event, Queue};
use community::insights::InsightsConsumer;
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::points::PointsConsumer;
use community::queue::Consumer;
use community::store::embedded::EmbeddedTable;
use community::store::Table;
use community::testing::{
    apply_campaigns, caller, contest, embedded_app, member, product_test, As,
};
use community::App;
use local::pipeline::Pipeline;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Long enough for a message retried with backoff (the points of a hidden
/// comment wait for the comment's own credit) to be applied.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(30);

/// The insights consumer, recording every event it is given.
struct Recording {
    inner: InsightsConsumer<EmbeddedTable>,
    seen: Arc<Mutex<Vec<Event>>>,
}

#[async_trait]
impl Consumer for Recording {
    fn name(&self) -> &'static str {
        "insights"
    }
    async fn apply(&self, e: &Event) -> community::error::Result<()> {
        self.inner.apply(e).await
    }
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        if let Ok(mut s) = self.seen.lock() {
            s.extend(batch.iter().map(|(_, e)| e.clone()));
        }
        self.inner.apply_batch(batch).await
    }
}

fn marketing() -> Caller {
    caller(&member("mkt").in_groups(&["marketing"]))
}

async fn sign_up(app: &App<EmbeddedTable>, who: &As, invite: Option<&str>) {
    let mut body = community::testing::sign_up_body(&who.sub);
    if let Some(code) = invite {
        body["invite_code"] = json!(code);
    }
    let req: community::members::SignUp = serde_json::from_value(body).expect("body");
    community::members::sign_up(app, &caller(who), req, None)
        .await
        .expect("sign up");
}

async fn post(app: &App<EmbeddedTable>, who: &str, theme: &str) -> IdeaId {
    let req: community::ideas::NewIdea = serde_json::from_value(json!({
        "theme": theme, "title": format!("Une idée sur {theme}"),
        "body": "Une idée assez longue pour passer les règles de validation."}))
    .expect("body");
    let id = community::ideas::create(app, &caller(&member(who)), req, None)
        .await
        .expect("idea")
        .id;
    IdeaId::parse(&id).expect("id")
}

/// `GET /insights` without the parts that move with the clock.
async fn insights(app: &App<EmbeddedTable>) -> Value {
    let mut v = community::insights::read(app, &marketing())
        .await
        .expect("insights");
    v["generated_at"] = Value::Null;
    if let Some(ideas) = v["review"]["ideas"].as_array_mut() {
        for i in ideas {
            i["age_seconds"] = Value::Null;
        }
    }
    v["review"]["oldest_age_seconds"] = Value::Null;
    v["review"]["average_age_seconds"] = Value::Null;
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_equal_independent_counts_and_redelivery_moves_nothing() {
    let (app, dir) = embedded_app(|s| {
        s.vote_threshold = 3;
        s.moderation.auto_hide_reports = 3;
    });
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut consumers: HashMap<Queue, Arc<dyn Consumer>> = HashMap::new();
    consumers.insert(Queue::Points, Arc::new(PointsConsumer { app: app.clone() }));
    consumers.insert(
        Queue::Emails,
        Arc::new(EmailsConsumer {
            app: app.clone(),
            mailer: mailbox.clone(),
        }),
    );
    consumers.insert(
        Queue::Insights,
        Arc::new(Recording {
            inner: InsightsConsumer { app: app.clone() },
            seen: seen.clone(),
        }),
    );
    let p = Pipeline {
        table: app.table.clone(),
        consumers,
        aggregator: Some(app.clone()),
        max_receives: 5,
        meter: None,
    };
    apply_campaigns(&app, vec![contest("ete", -60, 3600)], vec![]).await;

    // Two cohorts: 6 staff members with an invite, 8 public members.
    let codes = community::members::create_invites(&app.table, "staff", 1, 10)
        .await
        .expect("invites");
    let staff: Vec<String> = (0..6).map(|i| format!("s{i}")).collect();
    let public: Vec<String> = (0..8).map(|i| format!("p{i}")).collect();
    for s in &staff {
        sign_up(&app, &member(s), Some(&codes[0])).await;
    }
    for s in &public {
        sign_up(&app, &member(s), None).await;
    }
    // Ideas on several themes.
    let a = post(&app, "s0", "eat-well").await;
    let b = post(&app, "s1", "environment").await;
    let c = post(&app, "p0", "children").await;
    let d = post(&app, "p1", "environment").await;
    let mut cast = 0;
    let mut withdrawn = 0;
    // Idea a reaches the threshold (3); b gets votes and a withdrawal.
    for v in ["p2", "p3", "p4"] {
        community::votes::cast(&app, &caller(&member(v)), &a)
            .await
            .expect("vote");
        cast += 1;
    }
    for v in ["p2", "p3", "s3"] {
        community::votes::cast(&app, &caller(&member(v)), &b)
            .await
            .expect("vote");
        cast += 1;
    }
    community::votes::withdraw(&app, &caller(&member("p3")), &b)
        .await
        .expect("withdraw");
    withdrawn += 1;
    community::votes::cast(&app, &caller(&member("p5")), &c)
        .await
        .expect("vote");
    cast += 1;
    assert!(p.settle(SETTLE).await.expect("settle"), "queues settled");
    // The committee accepts a, then starts on it.
    let committee = caller(&member("comite").in_groups(&["committee"]));
    community::committee::decide(
        &app,
        &committee,
        &a,
        serde_json::from_value(
            json!({"outcome": "accepted", "reason": "Une très bonne idée, faisable."}),
        )
        .expect("decision"),
    )
    .await
    .expect("decided");
    community::committee::progress(
        &app,
        &committee,
        &a,
        serde_json::from_value(
            json!({"status": "in_progress", "note": "Les équipes s'y mettent."}),
        )
        .expect("progress"),
    )
    .await
    .expect("progress");
    // Contest entries and reviews.
    for m in ["p5", "p6"] {
        community::contests::enter(
            &app,
            &caller(&member(m)),
            "ete",
            serde_json::from_value(json!({"answers": {"frequence": "souvent"}})).expect("entry"),
            None,
        )
        .await
        .expect("entry");
    }
    for m in ["p7", "s2"] {
        community::products::review(
            &app,
            &caller(&member(m)),
            "3017620422003",
            serde_json::from_value(
                json!({"rating": 4, "title": "Très bon", "body": "Je le rachèterai sans hésiter."}),
            )
            .expect("review"),
            None,
        )
        .await
        .expect("review");
    }
    // A product test earns its label: two testers selected out of two
    // applicants, both review (reviews_for_label = 2).
    const TESTED: &str = "3560070123452";
    let window = |apply: (i64, i64), review: (i64, i64)| {
        vec![product_test("yaourt", TESTED, apply, review, 2, 2)]
    };
    let ete = || vec![contest("ete", -60, 3600)];
    apply_campaigns(&app, ete(), window((-60, 3600), (3600, 7200))).await;
    for m in ["p0", "p1"] {
        community::products::apply(
            &app,
            &caller(&member(m)),
            "yaourt",
            community::products::ApplicationRequest { motivation: None },
            None,
        )
        .await
        .expect("application");
    }
    apply_campaigns(&app, ete(), window((-7200, -3600), (-60, 3600))).await;
    community::products::select(&app, &marketing(), "yaourt")
        .await
        .expect("selection");
    for m in ["p0", "p1"] {
        community::products::review(
            &app,
            &caller(&member(m)),
            TESTED,
            serde_json::from_value(json!({"rating": 5, "title": "Excellent",
                "body": "Onctueux, je le recommande.", "product_test_id": "yaourt"}))
            .expect("review"),
            None,
        )
        .await
        .expect("tester review");
    }
    // Moderation: p6's comment is hidden by three reports, then a moderator
    // confirms it (no second count); p1's idea d is hidden by a moderator,
    // then restored.
    let comment = community::comments::post(
        &app,
        &caller(&member("p6")),
        &a,
        community::comments::NewComment {
            body: Some("Allez plutôt chez le concurrent, c'est moins cher.".into()),
        },
        None,
    )
    .await
    .expect("comment");
    for r in ["s3", "s4", "s5"] {
        community::moderation::report(
            &app,
            &caller(&member(r)),
            community::moderation::ReportRequest {
                target_type: Some("comment".into()),
                target_id: Some(comment.id.clone()),
                reason: Some("Publicité".into()),
            },
            None,
        )
        .await
        .expect("report");
    }
    let moderator = caller(&member("modo").in_groups(&["moderator"]));
    let decide = |ty: &'static str, id: String, action: &'static str| {
        let (app, moderator) = (app.clone(), moderator.clone());
        async move {
            community::moderation::decide(
                &app,
                &moderator,
                ty,
                &id,
                community::moderation::DecisionRequest {
                    action: Some(action.into()),
                    reason: Some("Charte de la communauté".into()),
                },
            )
            .await
            .expect("decision");
        }
    };
    decide("comment", comment.id.clone(), "hide").await;
    decide("idea", d.as_str().to_owned(), "hide").await;
    decide("idea", d.as_str().to_owned(), "restore").await;
    assert!(p.settle(SETTLE).await.expect("settle"), "queues settled");
    // A redemption by s0 (sign-up, idea, threshold and acceptance credits).
    let s0 = caller(&member("s0"));
    community::members::update(
        &app,
        &s0,
        community::members::Patch {
            loyalty_card: Some("9130012345678901".into()),
            ..Default::default()
        },
    )
    .await
    .expect("card");
    community::testing::confirm_card(&app, "s0").await;
    community::points::redeem(
        &app,
        &s0,
        community::points::RedemptionRequest { points: Some(500) },
        None,
    )
    .await
    .expect("redeem");
    // Two members click their welcome mail's link.
    let mails = mailbox.list().expect("mails");
    let mut clicked = 0;
    for m in mails.iter().filter(|m| m.mail_id == "welcome").take(2) {
        let token = m
            .text
            .split("/r/")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .expect("a tracked link");
        community::mail::click(&app, token).await.expect("click");
        clicked += 1;
    }
    assert!(p.settle(SETTLE).await.expect("settle"), "queues settled");

    assert!(
        p.dead_letters().await.expect("dead letters").is_empty(),
        "no message was dead-lettered"
    );

    // --- The counts, computed independently from the records.
    let everyone: Vec<String> = staff.iter().chain(public.iter()).cloned().collect();
    let mut by_theme: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    let mut in_review = 0;
    for id in [&a, &b, &c, &d] {
        let row = community::ideas::load(&app, id, true).await.expect("idea");
        *by_theme
            .entry(row.theme.clone())
            .or_default()
            .entry(row.status.as_str().to_owned())
            .or_default() += 1;
        if row.status == IdeaStatus::UnderReview {
            in_review += 1;
        }
    }
    let (mut credited, mut redeemed, mut taken_back) = (0, 0, 0);
    let mut moderated: BTreeMap<String, Vec<(String, i64)>> = BTreeMap::new();
    for m in &everyone {
        let l = community::points::ledger(&app, &caller(&member(m)), 100, None)
            .await
            .expect("ledger");
        for e in l.items {
            match e.reason.as_str() {
                "redemption" => redeemed -= e.delta,
                "content_hidden" | "content_restored" => {
                    taken_back -= e.delta;
                    moderated
                        .entry(m.clone())
                        .or_default()
                        .push((e.reason.clone(), e.delta));
                }
                // A vote's points are read from the vote records, not
                // credited (points.rs): not in marketing's credited total.
                "vote_cast" => {}
                _ => credited += e.delta,
            }
        }
    }
    // p6's hidden comment gave back its 2 points once (the moderator's
    // confirmation took nothing more); p1's idea gave back its 20, then got
    // them again when restored.
    let mut p1 = moderated.remove("p1").unwrap_or_default();
    p1.sort();
    assert_eq!(
        p1,
        [
            ("content_hidden".to_owned(), -20),
            ("content_restored".to_owned(), 20)
        ]
    );
    assert_eq!(
        moderated.remove("p6").unwrap_or_default(),
        [("content_hidden".to_owned(), -2)]
    );
    assert!(moderated.is_empty(), "{moderated:?}");
    assert_eq!(taken_back, 2);
    let welcome_sent = mails.iter().filter(|m| m.mail_id == "welcome").count() as i64;
    assert_eq!(welcome_sent, 14, "every member opted in to mails");

    let got = insights(&app).await;
    assert_eq!(got["members"]["total"], json!(14), "{got:#}");
    assert_eq!(
        got["members"]["by_cohort"],
        json!({"staff": 6, "public": 8})
    );
    let today = community::domain::now()[..10].to_owned();
    let per_day = got["members"]["new_per_day"].as_array().expect("days");
    assert_eq!(per_day.len(), 30);
    assert_eq!(per_day[29], json!({"day": today, "count": 14}));
    assert_eq!(
        per_day
            .iter()
            .filter_map(|d| d["count"].as_i64())
            .sum::<i64>(),
        14
    );
    assert_eq!(got["active_members"]["last_30_days"], json!(14));
    for (theme, statuses) in &by_theme {
        for (status, n) in statuses {
            assert_eq!(
                got["ideas"]["by_theme"][theme][status],
                json!(n),
                "{theme}/{status}: {got:#}"
            );
        }
    }
    assert_eq!(got["ideas"]["total"], json!(4));
    assert_eq!(got["ideas"]["by_status"]["in_progress"], json!(1));
    assert_eq!(got["ideas"]["by_status"]["open"], json!(3));
    assert_eq!(got["ideas"]["by_status"]["under_review"], json!(0));
    assert_eq!(
        got["votes"],
        json!({"cast": cast, "withdrawn": withdrawn, "net": cast - withdrawn})
    );
    assert_eq!(got["review"]["in_review"], json!(in_review));
    assert_eq!(got["contests"]["entries"], json!(2));
    // Hidden now, read from the content itself.
    let hidden_ideas = {
        let mut n = 0;
        for id in [&a, &b, &c, &d] {
            let row = community::ideas::load(&app, id, true).await.expect("idea");
            n += i64::from(row.is_hidden());
        }
        n
    };
    let hidden_comments = i64::from(
        community::comments::get(&app, &comment.id, Some(&caller(&member("p6"))))
            .await
            .expect("the author sees their comment")
            .moderation
            .is_some(),
    );
    assert_eq!((hidden_ideas, hidden_comments), (0, 1));
    assert_eq!(
        got["moderation"]["hidden"],
        json!({"idea": hidden_ideas, "comment": hidden_comments, "review": 0})
    );
    let mut labels = 0;
    let mut reviews_posted = 0;
    for ean in ["3017620422003", TESTED] {
        let l = community::products::label(&app, ean).await.expect("label");
        labels += i64::from(l["tested_by_community"] == json!(true));
        reviews_posted += l["review_count"].as_i64().expect("count");
    }
    assert_eq!((labels, reviews_posted), (1, 4));
    assert_eq!(
        got["reviews"],
        json!({"posted": reviews_posted, "labels_earned": labels})
    );
    assert_eq!(got["points"]["credited"], json!(credited), "{got:#}");
    assert_eq!(got["points"]["redeemed"], json!(redeemed));
    assert_eq!(got["points"]["withdrawn_by_moderation"], json!(taken_back));
    assert_eq!(redeemed, 500);
    let welcome = got["mails"]
        .as_array()
        .expect("mails")
        .iter()
        .find(|m| m["mail_id"] == "welcome")
        .cloned()
        .expect("the welcome mail is listed");
    assert_eq!(welcome["sent"], json!(welcome_sent));
    assert_eq!(welcome["unique_clicks"], json!(clicked));
    assert_eq!(
        welcome["unique_click_rate"].as_f64(),
        Some(clicked as f64 / welcome_sent as f64)
    );
    assert!(
        got["mails"]
            .as_array()
            .expect("mails")
            .iter()
            .all(|m| !m["mail_id"].as_str().unwrap_or("").ends_with("-author")),
        "personal notices are not community mails"
    );

    // The members' activity counters the ambassadors are scored on.
    let score = |m: &str| {
        let app = app.clone();
        let m = m.to_owned();
        async move {
            app.table
                .get(&community::ambassadors::score_key(&m), true)
                .await
                .expect("get")
                .map(|i| community::ambassadors::counts_of(&i))
                .unwrap_or_default()
        }
    };
    let s0_counts = score("s0").await;
    assert_eq!(s0_counts["ideas"], 1);
    assert_eq!(s0_counts["points"], 50 + 20 + 500 + 1000);
    // The votes an author's ideas drew: the aggregator's tallies.
    let drawn = |m: &str| {
        let app = app.clone();
        let m = m.to_owned();
        async move {
            community::thresholds::all_tallies(&app)
                .await
                .expect("tallies")
                .iter()
                .filter(|t| t.author_id.as_deref() == Some(m.as_str()))
                .map(|t| t.votes)
                .sum::<i64>()
        }
    };
    assert_eq!(drawn("s0").await, 3);
    assert_eq!(drawn("s1").await, 2, "three votes, one withdrawn");
    assert_eq!(score("p5").await["entries"], 1);
    assert_eq!(score("p7").await["reviews"], 1);
    assert_eq!(score("p0").await["reviews"], 1, "a tester's review");
    assert_eq!(
        score("p6").await["comments"],
        0,
        "a hidden comment leaves its author's counter"
    );
    assert_eq!(score("p1").await["ideas"], 1, "hidden, then restored");

    // --- Every event again, in batches and one by one: nothing moves.
    let events: Vec<Event> = seen.lock().expect("lock").clone();
    // 14 sign-ups, 4 ideas, 7 votes (a withdrawal goes to no queue), the
    // threshold, the decision, the progress, 2 entries, 4 reviews (2 by
    // testers: the label is counted in the review's own write), 1 comment,
    // 3 hides (by reports, the moderator's confirmation, the idea's) and 1
    // restore, 1 redemption, 2 product test applications (counted for the
    // test's brand report).
    assert_eq!(events.len(), 42);
    let again = InsightsConsumer { app: app.clone() };
    let batch: Vec<(String, Event)> = events
        .iter()
        .enumerate()
        .map(|(i, e)| (format!("m{i}"), e.clone()))
        .collect();
    for chunk in batch.chunks(10) {
        assert!(again.apply_batch(chunk).await.is_empty());
    }
    for e in events.iter().rev() {
        again.apply(e).await.expect("redelivery");
    }
    assert_eq!(insights(&app).await, got);
    assert_eq!(score("s0").await, s0_counts);
    assert_eq!(
        community::products::applications(&app, "yaourt")
            .await
            .expect("applications"),
        2,
        "each application counted once, redelivered or not"
    );

    // 403 for others.
    match community::insights::read(&app, &caller(&member("p0"))).await {
        Err(community::error::Error::Forbidden(_)) => {}
        other => panic!("{other:?}"),
    }
}
