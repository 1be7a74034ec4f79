//! Fault tests of the event pipeline on the embedded store: duplicated and
//! reordered deliveries, failing consumers, poison messages, a threshold
//! crossed by concurrent voters.

use async_trait::async_trait;
use community::events::{outbox_pk, Event, Kind, Queue, OUTBOX_BUCKETS};
use community::mail::dir::DirMailbox;
use community::queue::{self, Consumer, Message};
use community::store::embedded::EmbeddedTable;
use community::store::feed::{Change, ChangeFeed};
use community::store::{Index, Item, Query, Table, Write};
use community::testing::{caller, embedded_app, join, member, post_idea};
use community::App;
use local::pipeline::Pipeline;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

async fn outbox(t: &EmbeddedTable) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let page = t
            .query(&Query::new(Index::Primary, outbox_pk(b)).limit(1000))
            .await
            .expect("query");
        out.extend(page.items.iter().filter_map(Event::from_item));
    }
    out
}

/// The balance the member sees: stored credits and their votes' points.
async fn balance(app: &App<EmbeddedTable>, sub: &str) -> i64 {
    let row = community::members::get(app, &caller(&member(sub)).id)
        .await
        .expect("member");
    community::members::view(app, row)
        .await
        .expect("view")
        .points_balance
}

async fn ledger_sum(app: &App<EmbeddedTable>, sub: &str) -> i64 {
    let l = community::points::ledger(app, &caller(&member(sub)), 100, None)
        .await
        .expect("ledger");
    assert!(l.next_cursor.is_none());
    l.items.iter().map(|e| e.delta).sum()
}

/// Some activity: members, ideas, votes (one withdrawn).
async fn activity(app: &App<EmbeddedTable>) -> (Vec<String>, String) {
    let subs: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    for s in &subs {
        join(app, &member(s)).await;
    }
    let idea = post_idea(app, &member("m0")).await;
    let id = community::domain::IdeaId::parse(&idea).expect("id");
    for s in &subs[1..] {
        community::votes::cast(app, &caller(&member(s)), &id)
            .await
            .expect("vote");
    }
    community::votes::withdraw(app, &caller(&member("m7")), &id)
        .await
        .expect("withdraw");
    (subs, idea)
}

fn expected_balance(sub: &str) -> i64 {
    // sign-up 50; m0 posted an idea (20); m1..m6 voted (2 each, read from
    // their vote records); m7 withdrew their vote, and its points with it.
    match sub {
        "m0" => 70,
        "m7" => 50,
        _ => 52,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_delivered_one_to_three_times_in_random_order_applies_once() {
    let (app, _d) = embedded_app(|s| s.vote_threshold = 100);
    let (subs, idea) = activity(&app).await;
    // Sign-ups and the idea wrote outbox items; the votes' events are their
    // records' own changes on the feed.
    let mut events = outbox(&app.table).await;
    assert_eq!(events.len(), 8 + 1, "one outbox event per sign-up and idea");
    let changes: Vec<Change> = app.table.changes("test", 10_000).await.expect("feed");
    let votes: Vec<Change> = changes
        .iter()
        .filter(|c| c.pk.starts_with("VOTERS#"))
        .cloned()
        .collect();
    events.extend(votes.iter().filter_map(community::events::from_change));
    assert_eq!(events.len(), 8 + 1 + 7 + 1, "one event per change");
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut deliveries: Vec<Event> = events
        .iter()
        .flat_map(|e| std::iter::repeat_n(e.clone(), rng.random_range(1..=3)))
        .collect();
    deliveries.shuffle(&mut rng);
    let points = community::points::PointsConsumer { app: app.clone() };
    // The aggregator gets the vote records' changes as a stream gives them:
    // in order per key, each batch possibly again, and retries that start
    // over from an earlier record.
    let mut at = 0;
    while at < votes.len() {
        let end = (at + rng.random_range(1..=3)).min(votes.len());
        for _ in 0..rng.random_range(1..=3) {
            let from = rng.random_range(0..=at);
            assert!(community::thresholds::apply(&app, &votes[from..end])
                .await
                .is_ok());
        }
        at = end;
    }
    for chunk in deliveries.chunks(7) {
        let msgs: Vec<Message> = chunk
            .iter()
            .enumerate()
            .map(|(i, e)| Message {
                id: format!("{i}"),
                body: serde_json::to_string(e).expect("json"),
            })
            .collect();
        assert!(queue::handle(&points, &msgs).await.is_empty());
    }
    for s in &subs {
        assert_eq!(balance(&app, s).await, expected_balance(s), "{s}");
        assert_eq!(
            ledger_sum(&app, s).await,
            expected_balance(s),
            "{s}: balance = ledger"
        );
    }
    let row = community::ideas::load(
        &app,
        &community::domain::IdeaId::parse(&idea).expect("id"),
        true,
    )
    .await
    .expect("idea");
    assert_eq!(row.votes, 6, "the roll-up is exact whatever the order");
}

/// Fails a random share of the events it is given — sometimes before
/// applying them, sometimes after (the effect is there, the ack is lost).
struct Flaky<C> {
    inner: C,
    rate: f64,
    rng: std::sync::Mutex<rand::rngs::StdRng>,
}

#[async_trait]
impl<C: Consumer> Consumer for Flaky<C> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn apply(&self, e: &Event) -> community::error::Result<()> {
        let (fail, after) = {
            let mut r = self.rng.lock().expect("lock");
            (r.random_bool(self.rate), r.random_bool(0.5))
        };
        if fail && !after {
            return Err(community::error::Error::Busy);
        }
        self.inner.apply(e).await?;
        if fail {
            return Err(community::error::Error::Busy);
        }
        Ok(())
    }
}

fn flaky<C: Consumer + 'static>(inner: C, seed: u64) -> Arc<dyn Consumer> {
    Arc::new(Flaky {
        inner,
        rate: 0.2,
        rng: std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_failing_a_fifth_of_records_are_retried_until_exact() {
    let (app, dir) = embedded_app(|s| s.vote_threshold = 100);
    let (subs, idea) = activity(&app).await;
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let mut consumers: HashMap<Queue, Arc<dyn Consumer>> = HashMap::new();
    consumers.insert(
        Queue::Points,
        flaky(community::points::PointsConsumer { app: app.clone() }, 1),
    );
    consumers.insert(
        Queue::Emails,
        flaky(
            community::mail::EmailsConsumer {
                app: app.clone(),
                mailer: mailbox.clone(),
            },
            3,
        ),
    );
    consumers.insert(
        Queue::Insights,
        flaky(
            community::insights::InsightsConsumer { app: app.clone() },
            4,
        ),
    );
    // Enough receives that a 20% failure rate never dead-letters here.
    let p = Pipeline {
        table: app.table.clone(),
        consumers,
        aggregator: Some(app.clone()),
        max_receives: 30,
        meter: None,
    };
    for _ in 0..200 {
        p.drain().await.expect("drain");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if outbox(&app.table).await.is_empty() && pending(&app.table).await == 0 {
            break;
        }
    }
    assert_eq!(
        pending(&app.table).await,
        0,
        "every message was eventually acknowledged"
    );
    assert!(p.dead_letters().await.expect("dlq").is_empty());
    for s in &subs {
        assert_eq!(balance(&app, s).await, expected_balance(s), "{s}");
        assert_eq!(ledger_sum(&app, s).await, expected_balance(s), "{s}");
    }
    let row = community::ideas::load(
        &app,
        &community::domain::IdeaId::parse(&idea).expect("id"),
        true,
    )
    .await
    .expect("idea");
    assert_eq!(row.votes, 6);
    // Marketing's aggregates are exact too, despite the failures.
    let mkt = caller(&member("mkt").in_groups(&["marketing"]));
    let figures = community::insights::read(&app, &mkt)
        .await
        .expect("insights");
    assert_eq!(figures["members"]["total"], json!(8));
    assert_eq!(
        figures["votes"],
        json!({"cast": 7, "withdrawn": 1, "net": 6})
    );
    assert_eq!(figures["ideas"]["by_theme"]["eat-well"]["open"], json!(1));
    let welcomes = mailbox
        .list()
        .expect("list")
        .iter()
        .filter(|m| m.subject.starts_with("Bienvenue"))
        .count();
    assert!(
        welcomes >= 8,
        "every member got the welcome mail ({welcomes})"
    );
}

async fn pending(t: &EmbeddedTable) -> usize {
    let mut n = 0;
    for q in Queue::ALL {
        n += pending_in(t, q).await;
    }
    n
}

async fn pending_in(t: &EmbeddedTable, q: Queue) -> usize {
    t.query(&Query::new(Index::Primary, format!("LQ#{}", q.name())).limit(1000))
        .await
        .expect("q")
        .items
        .len()
}

#[tokio::test]
async fn a_poison_message_reaches_the_dead_letters_and_its_batch_goes_on() {
    let (app, _d) = embedded_app(|_| {});
    join(&app, &member("m1")).await;
    // A poison message in the points queue, next to the real sign-up event.
    let poison: Item =
        serde_json::from_value(json!({"pk": "LQ#points", "sk": "000000000000000#poison",
        "msg_id": "poison", "body": "{\"kind\":\"nonsense\"}", "receive_count": 0}))
        .expect("item");
    app.table
        .transact(vec![Write::put(poison)])
        .await
        .expect("put");
    let mut consumers: HashMap<Queue, Arc<dyn Consumer>> = HashMap::new();
    consumers.insert(
        Queue::Points,
        Arc::new(community::points::PointsConsumer { app: app.clone() }),
    );
    let p = Pipeline {
        table: app.table.clone(),
        consumers,
        aggregator: None,
        max_receives: 3,
        meter: None,
    };
    for _ in 0..100 {
        p.drain().await.expect("drain");
        if pending_in(&app.table, Queue::Points).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        balance(&app, "m1").await,
        50,
        "the good message was applied"
    );
    let dead = p.dead_letters().await.expect("dlq");
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0]["msg_id"].clone(), dead[0]["receive_count"].clone()),
        (json!("poison"), json!(3))
    );
    // Redrive puts it back (it will fail again: it is poison).
    assert_eq!(p.redrive(Some(Queue::Points)).await.expect("redrive"), 1);
    assert!(p.dead_letters().await.expect("dlq").is_empty());
    assert_eq!(pending_in(&app.table, Queue::Points).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_voters_across_a_threshold_of_fifty_make_one_transition() {
    let (app, dir) = embedded_app(|s| s.vote_threshold = 50);
    let author = member("author");
    join(&app, &author).await;
    let idea = post_idea(&app, &author).await;
    let id = community::domain::IdeaId::parse(&idea).expect("id");
    let voters: Vec<String> = (0..200).map(|i| format!("v{i}")).collect();
    for v in &voters {
        join(&app, &member(v)).await;
    }
    let mailbox = DirMailbox::new(dir.path().join("mailbox")).expect("mailbox");
    let node = local::Local {
        app: app.clone(),
        pipeline: Arc::new(Pipeline {
            table: app.table.clone(),
            consumers: {
                let mut c: HashMap<Queue, Arc<dyn Consumer>> = HashMap::new();
                c.insert(
                    Queue::Points,
                    Arc::new(community::points::PointsConsumer { app: app.clone() }),
                );
                c.insert(
                    Queue::Emails,
                    Arc::new(community::mail::EmailsConsumer {
                        app: app.clone(),
                        mailer: mailbox.clone(),
                    }),
                );
                c.insert(
                    Queue::Insights,
                    Arc::new(community::insights::InsightsConsumer { app: app.clone() }),
                );
                c
            },
            aggregator: Some(app.clone()),
            max_receives: 5,
            meter: None,
        }),
        mailbox: mailbox.clone(),
        meter: None,
    };
    node.pipeline.clone().spawn();
    // Votes race extra aggregators reading the same feed with the same
    // cursor (each change is aggregated by several at once).
    let mut tasks = Vec::new();
    for v in voters.clone() {
        let (app, id) = (app.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let r = community::votes::cast(&app, &caller(&member(&v)), &id).await;
            let _ = community::thresholds::drain_feed(&app).await;
            r.is_ok()
        }));
    }
    let mut accepted = 0;
    for t in tasks {
        if t.await.expect("task") {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 200, "an idea under review still takes votes");
    let settled = async {
        for _ in 0..200 {
            let mails = mailbox.list().expect("list");
            let row = community::ideas::load(&app, &id, true).await.expect("idea");
            if mails.iter().any(|m| m.subject.contains("est à l'étude"))
                && pending(&app.table).await == 0
                && outbox(&app.table).await.is_empty()
                && row.votes == 200
            {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        false
    };
    assert!(settled.await, "the pipeline settles");
    let row = community::ideas::load(&app, &id, true).await.expect("idea");
    assert_eq!(row.status, community::domain::IdeaStatus::UnderReview);
    assert_eq!(row.votes, 200, "every acknowledged vote counted once");
    let tally = community::thresholds::tally(&app, &idea)
        .await
        .expect("tally");
    assert_eq!(tally.votes, 200);
    let mails = mailbox.list().expect("list");
    let author_mails = mails
        .iter()
        .filter(|m| m.to == "author@example.fr" && m.subject.contains("est à l'étude"))
        .count();
    assert_eq!(author_mails, 1, "one author email");
    let committee_mails = mails
        .iter()
        .filter(|m| m.subject.starts_with("Nouvelle idée à étudier"))
        .count();
    assert_eq!(committee_mails, 1, "one committee email");
    let ledger = community::points::ledger(&app, &caller(&author), 100, None)
        .await
        .expect("ledger");
    let credits = ledger
        .items
        .iter()
        .filter(|e| e.reason == "idea_reached_threshold")
        .count();
    assert_eq!(credits, 1, "one credit");
    // A late vote is counted; the idea does not go to the committee twice.
    join(&app, &member("late")).await;
    community::votes::cast(&app, &caller(&member("late")), &id)
        .await
        .expect("a vote under review");
    let mut counted = false;
    for _ in 0..100 {
        let row = community::ideas::load(&app, &id, true).await.expect("idea");
        if row.votes == 201 {
            counted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(counted, "the late vote is counted");
    node.pipeline
        .settle(std::time::Duration::from_secs(10))
        .await
        .expect("settle");
    let committee_mails = mailbox
        .list()
        .expect("list")
        .iter()
        .filter(|m| m.subject.starts_with("Nouvelle idée à étudier"))
        .count();
    assert_eq!(committee_mails, 1, "the committee is not told twice");
    let _ = Kind::VoteCast;
}

/// Counts the store requests a consumer makes, per delivery.
#[derive(Clone)]
struct Counting {
    inner: EmbeddedTable,
    calls: Arc<std::sync::atomic::AtomicU64>,
}

tokio::task_local! {
    /// The store requests and mails of the delivery running on this task.
    static WORK: (std::cell::Cell<u64>, std::cell::Cell<u64>);
}

impl Counting {
    fn tick(&self) {
        self.calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = WORK.try_with(|w| w.0.set(w.0.get() + 1));
    }
}

#[async_trait]
impl Table for Counting {
    async fn get(
        &self,
        key: &community::store::Key,
        consistent: bool,
    ) -> community::store::StoreResult<Option<Item>> {
        self.tick();
        self.inner.get(key, consistent).await
    }
    async fn get_many(
        &self,
        keys: &[community::store::Key],
        consistent: bool,
    ) -> community::store::StoreResult<Vec<Item>> {
        self.tick();
        self.inner.get_many(keys, consistent).await
    }
    async fn query(&self, q: &Query) -> community::store::StoreResult<community::store::Page> {
        self.tick();
        self.inner.query(q).await
    }
    async fn transact(&self, writes: Vec<Write>) -> community::store::StoreResult<()> {
        self.tick();
        self.inner.transact(writes).await
    }
}

/// Records every mail's recipient.
#[derive(Clone, Default)]
struct Recorder {
    to: Arc<std::sync::Mutex<HashMap<String, u32>>>,
    sends: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait]
impl community::mail::Mailer for Recorder {
    async fn send(&self, mail: &community::mail::Mail) -> Result<(), community::mail::MailError> {
        self.sends
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = WORK.try_with(|w| w.1.set(w.1.get() + 1));
        *self
            .to
            .lock()
            .expect("lock")
            .entry(mail.to.clone())
            .or_default() += 1;
        Ok(())
    }
}

/// Delivers every message twice (at-least-once delivery at its worst) and
/// measures each delivery: store requests, mails sent, wall time.
struct TwiceMeasured {
    inner: community::mail::EmailsConsumer<Counting, Recorder>,
    worst: std::sync::Mutex<(u64, u64, std::time::Duration)>,
    pages: std::sync::Mutex<std::collections::HashSet<String>>,
}

#[async_trait]
impl Consumer for TwiceMeasured {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    async fn apply(&self, e: &Event) -> community::error::Result<()> {
        self.inner.apply(e).await
    }
    async fn apply_batch(&self, batch: &[(String, Event)]) -> Vec<String> {
        let mut failed = Vec::new();
        for m in batch {
            if m.1.kind == Kind::MailPage {
                self.pages
                    .lock()
                    .expect("lock")
                    .insert(m.1.event_id.clone());
            }
            for _ in 0..2 {
                let t = std::time::Instant::now();
                let (f, calls, sends) = WORK
                    .scope(Default::default(), async {
                        let f = self.inner.apply_batch(std::slice::from_ref(m)).await;
                        let (calls, sends) = WORK.with(|w| (w.0.get(), w.1.get()));
                        (f, calls, sends)
                    })
                    .await;
                let spent = t.elapsed();
                let mut w = self.worst.lock().expect("lock");
                *w = (w.0.max(calls), w.1.max(sends), w.2.max(spent));
                failed.extend(f);
            }
        }
        failed.sort();
        failed.dedup();
        failed
    }
}

/// A decision on an idea with 20,000 voters goes out in pages: one queue
/// message per page of one voter bucket, each delivered twice here, each
/// opted-in voter mailed exactly once, and each message's work small
/// enough for a 30 s Lambda at DynamoDB's and SES's slow-request latencies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decision_reaches_twenty_thousand_voters_in_pages_each_once() {
    const VOTERS: usize = 20_000;
    let (app, _dir) = embedded_app(|s| s.vote_threshold = 100);
    join(&app, &member("author")).await;
    let idea = post_idea(&app, &member("author")).await;
    let id = community::domain::IdeaId::parse(&idea).expect("id");
    let author_id = caller(&member("author")).id.as_str().to_owned();
    // The voters and their profiles, written directly (100 items a
    // transaction); one in ten has not opted in to community mails.
    let now = community::domain::now();
    let mut writes = Vec::new();
    let mut per_bucket = [0u64; community::votes::VOTER_BUCKETS as usize];
    for i in 0..VOTERS {
        let sub = format!("voter-{i:05}");
        let mid = caller(&member(&sub)).id.as_str().to_owned();
        per_bucket[community::votes::bucket(&mid) as usize] += 1;
        let profile = json!({
            "pk": format!("MEMBER#{mid}"), "sk": "PROFILE",
            "id": mid, "display_name": format!("Votant {i}"),
            "email": format!("{sub}@example.com"), "email_opt_in": i % 10 != 0,
            "email_opt_in_at": now, "terms_version": "2026-11",
            "terms_accepted_at": now, "cohort": "public", "joined_at": now,
            "level": "bronze",
        });
        let k = community::votes::vote_key(&id, &mid);
        let record = json!({
            "pk": k.pk, "sk": k.sk, "vote_id": format!("v{i:05}"),
            "idea_id": idea, "member_id": mid, "author_id": author_id,
            "created_at": now,
            "gsi3pk": format!("MEMBER#{mid}"),
            "gsi3sk": format!("VOTE#{now}#{idea}"),
        });
        for v in [profile, record] {
            let serde_json::Value::Object(item) = v else {
                unreachable!()
            };
            writes.push(Write::put(item));
        }
        if writes.len() == 100 {
            app.table
                .transact(std::mem::take(&mut writes))
                .await
                .expect("write voters");
        }
    }
    assert!(writes.is_empty());
    // The votes' own events are not this test's subject: the relay starts
    // after them; the aggregator counts them and sends the idea to review.
    loop {
        let changes = app.table.changes("relay", 5000).await.expect("feed");
        let Some(last) = changes.last() else { break };
        app.table.ack("relay", &last.seq).await.expect("ack");
    }
    let recorder = Recorder::default();
    let counting = Counting {
        inner: app.table.clone(),
        calls: Arc::default(),
    };
    let emails = Arc::new(TwiceMeasured {
        inner: community::mail::EmailsConsumer {
            app: app.with_table(counting),
            mailer: recorder.clone(),
        },
        worst: Default::default(),
        pages: Default::default(),
    });
    let mut consumers: HashMap<Queue, Arc<dyn Consumer>> = HashMap::new();
    consumers.insert(Queue::Emails, emails.clone());
    let p = Pipeline {
        table: app.table.clone(),
        consumers,
        aggregator: Some(app.clone()),
        max_receives: 5,
        meter: None,
    };
    p.drain().await.expect("drain");
    let row = community::ideas::load(&app, &id, true).await.expect("idea");
    assert_eq!(row.votes, VOTERS as i64);
    assert_eq!(row.status, community::domain::IdeaStatus::UnderReview);
    let committee = caller(&member("comite").in_groups(&["committee"]));
    community::committee::decide(
        &app,
        &committee,
        &id,
        community::committee::DecisionRequest {
            outcome: Some("accepted".into()),
            reason: Some("Faisable dans nos magasins dès le printemps.".into()),
        },
    )
    .await
    .expect("decide");
    let started = std::time::Instant::now();
    for _ in 0..400 {
        p.drain().await.expect("drain");
        if outbox(&app.table).await.is_empty() && pending_in(&app.table, Queue::Emails).await == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    assert_eq!(
        pending_in(&app.table, Queue::Emails).await,
        0,
        "every page was acknowledged"
    );
    assert!(p.dead_letters().await.expect("dlq").is_empty());

    let to = recorder.to.lock().expect("lock").clone();
    for i in 0..VOTERS {
        let addr = format!("voter-{i:05}@example.com");
        let want = u32::from(i % 10 != 0);
        assert_eq!(to.get(&addr).copied().unwrap_or(0), want, "{addr}");
    }
    let mailed_voters = to.keys().filter(|a| a.starts_with("voter-")).count();
    assert_eq!(mailed_voters, VOTERS - VOTERS / 10);
    let pages = emails.pages.lock().expect("lock").len() as u64;
    let (calls, sends, spent) = *emails.worst.lock().expect("lock");
    // Pages of 50 voters of one bucket; a bucket holding a multiple of 50
    // may end with an empty page (a full page does not know it is the last).
    let page = u64::from(community::mail::FANOUT_PAGE);
    // And one (empty) page per follower bucket: nobody follows explicitly.
    let followers = u64::from(community::votes::VOTER_BUCKETS);
    let fewest: u64 = per_bucket
        .iter()
        .map(|n| n.div_ceil(page).max(1))
        .sum::<u64>()
        + followers;
    let most: u64 = per_bucket.iter().map(|n| n / page + 1).sum::<u64>() + followers;
    assert!(
        (fewest..=most).contains(&pages),
        "{pages} page messages, expected {fewest}..={most}"
    );
    assert!(
        sends <= u64::from(community::mail::FANOUT_PAGE),
        "a message sent {sends} mails"
    );
    // A message's worst case on AWS: each store request at 50 ms and each
    // SES send at 200 ms (slow requests, not averages), in sequence.
    let worst_secs = calls as f64 * 0.050 + sends as f64 * 0.200;
    assert!(
        worst_secs < 30.0,
        "{calls} store requests and {sends} sends in one message: {worst_secs:.1} s at slow-request latencies"
    );
    println!(
        "fan-out of one decision to {VOTERS} voters: {pages} page messages (each delivered twice), \
         {mailed_voters} voters mailed once, in {took:.1?}; worst message: {calls} store requests, \
         {sends} mails, {spent:.1?} here, {worst_secs:.1} s at 50 ms a request and 200 ms a send"
    );
}
