//! The points consumer through its Lambda entry: an SQS event in, a partial
//! batch response out.

use aws_lambda_events::event::sqs::SqsEvent;
use community::events::{Event, Kind};
use community::testing::{caller, embedded_app, join, member};
use points::PointsConsumer;
use serde_json::json;

fn sample() -> SqsEvent {
    community::testing::sqs_sample("points.json")
}

fn batch(events: &[Event]) -> SqsEvent {
    community::testing::sqs_batch(events)
}

async fn balance<T: community::store::Table>(app: &community::App<T>, sub: &str) -> i64 {
    community::members::get(app, &caller(&member(sub)).id)
        .await
        .expect("member")
        .points_balance
}

#[tokio::test]
async fn sample_batch_credits_once_and_reports_only_the_poison_message() {
    let (app, _d) = embedded_app(|_| {});
    join(&app, &member("member-marie")).await;
    let consumer = PointsConsumer { app: app.clone() };
    for _ in 0..3 {
        let res = community::queue::sqs(&consumer, sample())
            .await
            .expect("partial");
        let failed: Vec<_> = res
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert_eq!(
            failed,
            vec!["6f1c3a2e-0003-4e5b-9a51-points000003".to_string()]
        );
        // Sign-up (50) and one idea (20), however often the batch is delivered.
        assert_eq!(balance(&app, "member-marie").await, 70);
    }
    let ledger = community::points::ledger(&app, &caller(&member("member-marie")), 100, None)
        .await
        .expect("ledger");
    assert_eq!(ledger.items.iter().map(|e| e.delta).sum::<i64>(), 70);
    assert_eq!(ledger.items.len(), 2);
    // A batch where every record fails fails as a whole.
    let poison: SqsEvent =
        serde_json::from_value(json!({"Records": [{"messageId": "p", "body": "{}"}]}))
            .expect("event");
    assert!(community::queue::sqs(&consumer, poison).await.is_err());
}

#[tokio::test]
async fn votes_earn_points_from_their_records_capped_per_day() {
    let (app, _d) = embedded_app(|_| {});
    let (author, mm) = (member("author"), member("mm"));
    join(&app, &author).await;
    join(&app, &mm).await;
    let consumer = PointsConsumer { app: app.clone() };
    let signed_up = Event::new(Kind::MemberSignedUp, "mm", None, json!(null));
    community::queue::sqs(&consumer, batch(&[signed_up]))
        .await
        .expect("ok");
    let voter = caller(&mm);
    let view = |app: community::App<_>| async move {
        let row = community::members::get(&app, &caller(&member("mm")).id)
            .await
            .expect("member");
        community::members::view(&app, row).await.expect("view")
    };
    // 25 votes on 25 ideas the same day: the cap (20 votes) stops at 40 points.
    let mut ideas = Vec::new();
    for _ in 0..25 {
        let id = community::testing::post_idea(&app, &author).await;
        let id = community::domain::IdeaId::parse(&id).expect("id");
        community::votes::cast(&app, &voter, &id)
            .await
            .expect("vote");
        ideas.push(id);
    }
    assert_eq!(view(app.clone()).await.points_balance, 50 + 40);
    // A `vote.cast` event on the points queue (an older relay's) credits
    // nothing: the records are the votes' points.
    let old = Event::new(Kind::VoteCast, "mm", Some(ideas[0].as_str()), json!(null));
    let res = community::queue::sqs(&consumer, batch(&[old]))
        .await
        .expect("ok");
    assert!(res.batch_item_failures.is_empty());
    assert_eq!(view(app.clone()).await.points_balance, 90);
    // Voting again for the same idea earns nothing more.
    community::votes::cast(&app, &voter, &ideas[0])
        .await
        .expect("vote");
    assert_eq!(view(app.clone()).await.points_balance, 90);
    // The ledger shows the day's votes as one entry, and sums to the balance.
    let ledger = community::points::ledger(&app, &voter, 100, None)
        .await
        .expect("ledger");
    let day: Vec<_> = ledger
        .items
        .iter()
        .filter(|e| e.reason == "vote_cast")
        .collect();
    assert_eq!(day.len(), 1, "{:?}", ledger.items);
    assert_eq!(day[0].delta, 40);
    assert_eq!(ledger.items.iter().map(|e| e.delta).sum::<i64>(), 90);
    // Withdrawing votes below the cap takes their points back: 19 votes left.
    for id in &ideas[..6] {
        community::votes::withdraw(&app, &voter, id)
            .await
            .expect("withdraw");
    }
    assert_eq!(view(app.clone()).await.points_balance, 50 + 38);
    // An event about a member who is gone is done, with no credit and no error.
    let ghost = Event::new(Kind::MemberSignedUp, "ghost", None, json!(null));
    let res = community::queue::sqs(&consumer, batch(&[ghost]))
        .await
        .expect("ok");
    assert!(res.batch_item_failures.is_empty());
}

#[tokio::test]
async fn redemptions_never_overdraw_even_concurrently() {
    let (app, _d) = embedded_app(|_| {});
    join(&app, &member("mm")).await;
    let c = caller(&member("mm"));
    community::members::update(
        &app,
        &c,
        community::members::Patch {
            loyalty_card: Some("9130012345678901".into()),
            ..Default::default()
        },
    )
    .await
    .expect("card");
    community::testing::confirm_card(&app, "mm").await;
    // 50 (sign-up) + 1000 (accepted idea) = 1050 points.
    let consumer = PointsConsumer { app: app.clone() };
    let events = vec![
        Event::new(Kind::MemberSignedUp, "mm", None, json!(null)),
        Event::new(
            Kind::IdeaDecided,
            "mm",
            Some("01JD0000000000000000000000"),
            json!({"outcome": "accepted"}),
        ),
    ];
    community::queue::sqs(&consumer, batch(&events))
        .await
        .expect("ok");
    assert_eq!(balance(&app, "mm").await, 1050);
    // Two concurrent redemptions of 600: together more than the balance.
    let tasks: Vec<_> = (0..2)
        .map(|_| {
            let (app, c) = (app.clone(), c.clone());
            tokio::spawn(async move {
                community::points::redeem(
                    &app,
                    &c,
                    community::points::RedemptionRequest { points: Some(600) },
                    None,
                )
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(r) => {
                assert_eq!(
                    (r.points, r.euros.as_str(), r.status.as_str()),
                    (600, "6.00", "pending")
                );
                ok += 1;
            }
            Err(community::error::Error::Conflict(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(balance(&app, "mm").await, 450);
    let ledger = community::points::ledger(&app, &c, 100, None)
        .await
        .expect("ledger");
    assert_eq!(
        ledger.items.iter().map(|e| e.delta).sum::<i64>(),
        450,
        "the balance is the ledger's sum"
    );
    // Rules: minimum, multiple of 1 €.
    for (points, field) in [(100, "points"), (550, "points")] {
        match community::points::redeem(
            &app,
            &c,
            community::points::RedemptionRequest {
                points: Some(points),
            },
            None,
        )
        .await
        {
            Err(community::error::Error::Invalid(e)) => assert_eq!(e[0].field, field),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_redelivered_comment_event_credits_once() {
    let (app, _d) = embedded_app(|_| {});
    join(&app, &member("cc")).await;
    let consumer = PointsConsumer { app: app.clone() };
    let e = Event::new(
        Kind::CommentPosted,
        "cc",
        Some("01JD0000000000000000000000"),
        json!({"comment_id": "01JD0000000000000000000001", "idea_author_id": "someone"}),
    );
    for _ in 0..3 {
        let res = community::queue::sqs(&consumer, batch(&[e.clone(), e.clone()]))
            .await
            .expect("partial");
        assert!(res.batch_item_failures.is_empty());
    }
    let rule = app
        .settings()
        .points
        .rule("comment_posted")
        .expect("rule")
        .points;
    assert_eq!(balance(&app, "cc").await, rule);
}

/// Moderation takes a contribution's points back and gives them again: once
/// per event however often it is delivered, not before the credit itself
/// (queues keep no order: the hide is retried), nothing for a confirmation,
/// and nothing when the credit was capped.
#[tokio::test]
async fn hidden_content_gives_its_points_back_once() {
    let (app, _d) = embedded_app(|_| {});
    join(&app, &member("troll")).await;
    let consumer = PointsConsumer { app: app.clone() };
    let rule = |name: &str| app.settings().points.rule(name).expect("rule").points;
    // (No sign-up credit here: this test feeds the consumer by hand.)
    let signed_up = balance(&app, "troll").await;
    let comment = |i: u32| {
        Event::new(
            Kind::CommentPosted,
            "troll",
            Some("01JD0000000000000000000000"),
            json!({"comment_id": format!("01JD00000000000000000001{i:02}")}),
        )
    };
    let moderation = |kind: Kind, i: u32, extra: serde_json::Value| {
        let mut data = json!({"target_type": "comment",
            "target_id": format!("01JD00000000000000000001{i:02}"), "by": "reports"});
        if let (Some(d), Some(x)) = (data.as_object_mut(), extra.as_object()) {
            d.extend(x.clone());
        }
        Event::new(kind, "troll", Some("01JD0000000000000000000000"), data)
    };
    let hide = moderation(Kind::ContentHidden, 0, json!({}));
    // The hide arrives before the comment's credit: it fails, to be retried.
    // (A batch where every message fails is reported as a failed batch.)
    let res = community::queue::sqs(&consumer, batch(std::slice::from_ref(&hide))).await;
    assert!(res.is_err(), "retried later");
    assert_eq!(balance(&app, "troll").await, signed_up);
    // The credit, then the hide (delivered three times), a moderator's
    // confirmation, a restore.
    let credit = community::queue::sqs(&consumer, batch(&[comment(0)])).await;
    assert!(credit.expect("partial").batch_item_failures.is_empty());
    let c = rule("comment_posted");
    assert_eq!(balance(&app, "troll").await, signed_up + c);
    for _ in 0..3 {
        let res = community::queue::sqs(&consumer, batch(std::slice::from_ref(&hide)))
            .await
            .expect("partial");
        assert!(res.batch_item_failures.is_empty());
    }
    assert_eq!(balance(&app, "troll").await, signed_up);
    let confirm = moderation(
        Kind::ContentHidden,
        0,
        json!({"by": "moderator", "confirmed": true}),
    );
    let res = community::queue::sqs(&consumer, batch(&[confirm]))
        .await
        .expect("partial");
    assert!(res.batch_item_failures.is_empty());
    assert_eq!(
        balance(&app, "troll").await,
        signed_up,
        "a confirmation takes nothing"
    );
    let restore = moderation(Kind::ContentRestored, 0, json!({"by": "moderator"}));
    for _ in 0..2 {
        let res = community::queue::sqs(&consumer, batch(std::slice::from_ref(&restore)))
            .await
            .expect("partial");
        assert!(res.batch_item_failures.is_empty());
    }
    assert_eq!(balance(&app, "troll").await, signed_up + c);
    let ledger = community::points::ledger(&app, &caller(&member("troll")), 100, None)
        .await
        .expect("ledger");
    let mut reasons: Vec<(String, i64)> = ledger
        .items
        .iter()
        .map(|e| (e.reason.clone(), e.delta))
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            ("comment_posted".to_owned(), c),
            ("content_hidden".to_owned(), -c),
            ("content_restored".to_owned(), c),
        ]
    );
    assert_eq!(
        ledger.items.iter().map(|e| e.delta).sum::<i64>(),
        balance(&app, "troll").await,
        "the ledger still sums to the balance"
    );

    // Past the daily cap a comment earns nothing, and its hide takes nothing.
    let cap = app
        .settings()
        .points
        .rule("comment_posted")
        .and_then(|r| r.daily_cap)
        .expect("a cap") as u32;
    let events: Vec<Event> = (1..=cap + 1).map(comment).collect();
    let res = community::queue::sqs(&consumer, batch(&events))
        .await
        .expect("partial");
    assert!(res.batch_item_failures.is_empty());
    let before = balance(&app, "troll").await;
    let over = moderation(Kind::ContentHidden, cap + 1, json!({}));
    let res = community::queue::sqs(&consumer, batch(&[over]))
        .await
        .expect("partial");
    assert!(res.batch_item_failures.is_empty());
    assert_eq!(
        balance(&app, "troll").await,
        before,
        "the capped comment had earned nothing"
    );
}

/// The ledger's pages merge the stored entries and the votes' day entries
/// by date: paged one entry at a time, every entry comes once, newest first,
/// and they sum to the balance the member sees.
#[tokio::test]
async fn the_ledger_pages_merge_stored_entries_and_vote_days() {
    let (app, _d) = embedded_app(|_| {});
    let (author, mm) = (member("author"), member("mm"));
    join(&app, &author).await;
    join(&app, &mm).await;
    let consumer = PointsConsumer { app: app.clone() };
    let voter = caller(&mm);
    // Credits on three days, votes today: stored entries on both sides of
    // the vote day.
    let mut events = vec![Event::new(Kind::MemberSignedUp, "mm", None, json!(null))];
    for (i, day) in ["2026-11-20", "2026-11-22"].iter().enumerate() {
        let mut e = Event::new(
            Kind::IdeaPosted,
            "mm",
            Some(&format!("01JD00000000000000000000I{i}")),
            json!(null),
        );
        e.at = format!("{day}T10:00:00.000Z");
        events.push(e);
    }
    community::queue::sqs(&consumer, batch(&events))
        .await
        .expect("ok");
    for _ in 0..3 {
        let id = community::testing::post_idea(&app, &author).await;
        let id = community::domain::IdeaId::parse(&id).expect("id");
        community::votes::cast(&app, &voter, &id)
            .await
            .expect("vote");
    }
    let whole = community::points::ledger(&app, &voter, 100, None)
        .await
        .expect("ledger");
    assert_eq!(whole.items.len(), 4, "{:?}", whole.items);
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = community::points::ledger(&app, &voter, 1, cursor)
            .await
            .expect("page");
        paged.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let ids =
        |v: &[community::points::LedgerEntry]| v.iter().map(|e| e.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&paged), ids(&whole.items), "each entry once, in order");
    let dates: Vec<&str> = paged.iter().map(|e| e.created_at.as_str()).collect();
    let mut sorted = dates.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(dates, sorted, "newest first");
    let row = community::members::get(&app, &voter.id)
        .await
        .expect("member");
    let shown = community::members::view(&app, row).await.expect("view");
    assert_eq!(
        paged.iter().map(|e| e.delta).sum::<i64>(),
        shown.points_balance
    );
    assert_eq!(shown.points_balance, 50 + 20 + 20 + 3 * 2);
}

/// Counts the transactions that write marketing's totals (`INSIGHTS#…`).
#[derive(Clone)]
struct CountingTotals {
    inner: std::sync::Arc<community::store::embedded::EmbeddedTable>,
    totals_writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    transactions: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Transactions of more writes than this are cancelled by a conflict,
    /// as a large one is on DynamoDB when its items are busy.
    conflict_above: usize,
}

impl CountingTotals {
    fn open(dir: &std::path::Path, conflict_above: usize) -> Self {
        CountingTotals {
            inner: std::sync::Arc::new(
                community::store::embedded::EmbeddedTable::open(dir).expect("store"),
            ),
            totals_writes: Default::default(),
            transactions: Default::default(),
            conflict_above,
        }
    }
}

#[async_trait::async_trait]
impl community::store::Table for CountingTotals {
    async fn get(
        &self,
        key: &community::store::Key,
        consistent: bool,
    ) -> community::store::StoreResult<Option<community::store::Item>> {
        self.inner.get(key, consistent).await
    }
    async fn get_many(
        &self,
        keys: &[community::store::Key],
        consistent: bool,
    ) -> community::store::StoreResult<Vec<community::store::Item>> {
        self.inner.get_many(keys, consistent).await
    }
    async fn query(
        &self,
        q: &community::store::Query,
    ) -> community::store::StoreResult<community::store::Page> {
        self.inner.query(q).await
    }
    async fn transact(
        &self,
        writes: Vec<community::store::Write>,
    ) -> community::store::StoreResult<()> {
        let totals = writes
            .iter()
            .filter_map(community::store::Write::key)
            .filter(|k| k.pk.starts_with("INSIGHTS#"))
            .count();
        self.transactions
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if writes.len() > self.conflict_above {
            return Err(community::store::StoreError::Conflict);
        }
        let r = self.inner.transact(writes).await;
        if r.is_ok() {
            self.totals_writes
                .fetch_add(totals, std::sync::atomic::Ordering::SeqCst);
        }
        r
    }
}

/// A batch's credits commit together: marketing's `points_credited` total
/// (a shared item) is written once per batch, not once per credit, and
/// still matches the ledgers exactly: with a redelivered event in the
/// batch, a member erased before the credit, a daily cap reached, and the
/// whole batch delivered again.
#[tokio::test]
async fn a_batch_of_credits_writes_the_shared_total_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = CountingTotals::open(dir.path(), usize::MAX);
    let app = community::App::new(table.clone(), community::testing::settings());
    let rule = |r: &str| app.settings().points.rule(r).expect("rule").clone();
    let comment = rule("comment_posted");
    let cap = comment.daily_cap.expect("comments are capped per day");
    let mut events = Vec::new();
    for i in 0..8 {
        let who = member(&format!("batch-{i}"));
        join(&app, &who).await;
        events.push(Event::new(
            Kind::MemberSignedUp,
            &format!("batch-{i}"),
            None,
            json!({}),
        ));
    }
    // The same event twice in one batch.
    events.push(events[0].clone());
    // An erased member's credit gives nothing.
    let gone = member("batch-gone");
    join(&app, &gone).await;
    community::gdpr::erase(&app, &caller(&gone))
        .await
        .expect("erase");
    events.push(Event::new(
        Kind::MemberSignedUp,
        "batch-gone",
        None,
        json!({}),
    ));
    // One member's comments beyond the day's cap give nothing.
    let busy = member("batch-busy");
    join(&app, &busy).await;
    for c in 0..cap + 2 {
        events.push(Event::new(
            Kind::CommentPosted,
            "batch-busy",
            Some("01JD0000000000000000000000"),
            json!({"comment_id": format!("01JD00000000000000000001{c:02}"), "idea_author_id": "someone"}),
        ));
    }
    let consumer = PointsConsumer { app: app.clone() };
    let signup = rule("member_signed_up").points;
    let expected = 8 * signup + cap * comment.points;
    for delivery in 0..2 {
        let before = table.transactions.load(std::sync::atomic::Ordering::SeqCst);
        let res = community::queue::sqs(&consumer, batch(&events))
            .await
            .expect("partial");
        if delivery == 1 {
            // Every credit's marker is read first: a redelivered batch
            // costs no transaction (a cancelled one is billed in full).
            assert_eq!(
                table.transactions.load(std::sync::atomic::Ordering::SeqCst),
                before,
                "a redelivery runs no transaction"
            );
        }
        assert!(
            res.batch_item_failures.is_empty(),
            "{:?}",
            res.batch_item_failures
        );
        let mut sum = 0;
        for i in 0..8 {
            let b = balance(&app, &format!("batch-{i}")).await;
            assert_eq!(b, signup, "batch-{i} after delivery {delivery}");
            sum += b;
        }
        assert_eq!(balance(&app, "batch-busy").await, cap * comment.points);
        sum += cap * comment.points;
        assert_eq!(sum, expected);
        let marketing = community::testing::member("marketing").in_groups(&["marketing"]);
        let insights = community::insights::read(&app, &caller(&marketing))
            .await
            .expect("insights");
        assert_eq!(insights["points"]["credited"], json!(expected));
    }
    // The first delivery committed its credits in a few transactions (one
    // per run of distinct items: the busy member's comments share items),
    // each writing the total once; the second found every marker and wrote
    // nothing.
    let writes = table
        .totals_writes
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=(cap as usize + 2)).contains(&writes),
        "the total was written {writes} times for {} credits",
        events.len()
    );
}

/// A batch whose large transaction keeps losing to conflicts is split into
/// smaller ones until they commit: no credit goes back to the queue (and on
/// to the dead-letter queue) because its neighbours' items were busy, and
/// the shared total still matches the ledgers.
#[tokio::test]
async fn credits_contended_as_a_group_commit_in_smaller_transactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Room for two sign-up credits (4 writes each) and the total, not more.
    let table = CountingTotals::open(dir.path(), 11);
    let app = community::App::new(table.clone(), community::testing::settings());
    let signup = app
        .settings()
        .points
        .rule("member_signed_up")
        .expect("rule")
        .points;
    let mut events = Vec::new();
    for i in 0..12 {
        let who = member(&format!("split-{i}"));
        join(&app, &who).await;
        events.push(Event::new(
            Kind::MemberSignedUp,
            &format!("split-{i}"),
            None,
            json!({}),
        ));
    }
    let consumer = PointsConsumer { app: app.clone() };
    let res = community::queue::sqs(&consumer, batch(&events))
        .await
        .expect("partial");
    assert!(
        res.batch_item_failures.is_empty(),
        "contended credits were given back: {:?}",
        res.batch_item_failures
    );
    for i in 0..12 {
        assert_eq!(
            balance(&app, &format!("split-{i}")).await,
            signup,
            "split-{i}"
        );
    }
    let marketing = community::testing::member("marketing").in_groups(&["marketing"]);
    let insights = community::insights::read(&app, &caller(&marketing))
        .await
        .expect("insights");
    assert_eq!(insights["points"]["credited"], json!(12 * signup));
}
