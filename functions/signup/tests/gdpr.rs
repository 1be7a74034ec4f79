//! GDPR export and erasure on BOTH adapters (embedded store and DynamoDB on
//! moto): a member with every kind of data (over a hundred contributions,
//! votes, a contest entry with answers and a draw naming them, a product-test
//! application with a motivation, a review, points, a redemption, mails,
//! idempotency receipts, the loyalty-card guards) exports it all, then is
//! erased; a dump of the whole table must hold none of their personal data.

use community::auth::Caller;
use community::domain::{IdeaId, MemberId};
use community::events::Event;
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::points::PointsConsumer;
use community::queue::Consumer;
use community::receipt::Receipt;
use community::store::dynamo::{create_table, DynamoTable};
use community::store::embedded::EmbeddedTable;
use community::store::{Index, Item, Key, Query, Table, Write};
use community::testing::{apply_campaigns, contest, product_test, settings};
use community::App;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const NAME: &str = "Zoé Quelconque";
const EMAIL: &str = "zoe.quelconque@example.fr";
const CARD: &str = "9130012345678901";
const ANSWER: &str = "Ma réponse très personnelle au concours";
const MOTIVATION: &str = "Ma motivation très personnelle pour tester";
const EAN: &str = "3017620422003";
const IDEAS: usize = 105;

fn caller(sub: &str, groups: &[&str]) -> Caller {
    Caller {
        id: MemberId::parse(sub).expect("sub"),
        email: Some(format!("{sub}@example.fr")),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        email_verified: Some(true),
    }
}

fn card_hash() -> String {
    Sha256::digest(CARD.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn tweak(s: &mut community::config::Settings) {
    s.abuse.rate_limits.enabled = false;
    s.points.conversion.minimum_redemption = 100;
}

/// What the pipeline does: every outbox event to the points and emails
/// consumers, then out of the outbox (as the local relay does).
async fn drain<T: Table + Clone>(app: &App<T>, mailbox: &DirMailbox) {
    let points = PointsConsumer { app: app.clone() };
    let emails = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    for b in 0..community::events::OUTBOX_BUCKETS {
        let page = app
            .table
            .query(&Query::new(Index::Primary, community::events::outbox_pk(b)).limit(1000))
            .await
            .expect("outbox");
        for item in page.items {
            let e = Event::from_item(&item).expect("event");
            points.apply(&e).await.expect("points");
            emails.apply(&e).await.expect("emails");
            let k = Key::of(&item).expect("key");
            app.table
                .transact(vec![Write::Delete { key: k, cond: None }])
                .await
                .expect("relayed");
        }
    }
}

async fn sign_up<T: Table + Clone>(
    app: &App<T>,
    c: &Caller,
    name: &str,
    email: &str,
    card: Option<&str>,
) -> community::error::Result<()> {
    let req = community::members::SignUp {
        display_name: Some(name.into()),
        email: Some(email.into()),
        accept_terms_version: Some(app.settings().terms_version.clone()),
        email_opt_in: Some(true),
        loyalty_card: card.map(str::to_owned),
        invite_code: None,
    };
    community::members::sign_up(app, c, req, None)
        .await
        .map(|_| ())
}

async fn scenario<T: Table + Clone>(
    app: App<T>,
    dump: impl Fn() -> futures::future::BoxFuture<'static, Vec<Item>>,
) {
    let mdir = tempfile::tempdir().expect("tmp");
    let mailbox = DirMailbox::new(mdir.path().to_path_buf()).expect("mailbox");
    apply_campaigns(
        &app,
        vec![contest("gdpr-contest", -10, 3)],
        vec![product_test(
            "gdpr-test",
            EAN,
            (-10, 3600),
            (7200, 9000),
            2,
            1,
        )],
    )
    .await;
    let zoe = caller("zoe", &[]);
    let bob = caller("bob", &[]);
    sign_up(&app, &zoe, NAME, EMAIL, Some(CARD))
        .await
        .expect("zoe");
    // The loyalty programme confirms her card (she redeems points below).
    community::testing::confirm_card(&app, "zoe").await;
    sign_up(&app, &bob, "Bob Martin", "bob@example.fr", None)
        .await
        .expect("bob");

    let contest_closes = std::time::Instant::now() + std::time::Duration::from_millis(3300);
    let answers = json!({"frequence": "souvent", "idee": ANSWER});
    community::contests::enter(
        &app,
        &zoe,
        "gdpr-contest",
        community::contests::EntryRequest {
            answers: answers.as_object().cloned(),
        },
        None,
    )
    .await
    .expect("entry");
    // Over a hundred contributions; the first with an idempotency receipt
    // (its stored response names the author).
    let mut ideas = Vec::new();
    for i in 0..IDEAS {
        let req = community::ideas::NewIdea {
            theme: Some("environment".into()),
            title: Some(format!("Idée numéro {i} de la communauté")),
            body: Some("Des paniers de produits proches de leur date, à prix réduit.".into()),
        };
        let receipt = (i == 0).then(|| Receipt::new(&zoe.id, "idem-1", "POST /ideas".into()));
        let v = community::ideas::create(&app, &zoe, req, receipt.as_ref())
            .await
            .expect("idea");
        ideas.push(v.id);
    }
    let bobs = community::ideas::create(
        &app,
        &bob,
        community::ideas::NewIdea {
            theme: Some("children".into()),
            title: Some("Un coin lecture pour les enfants".into()),
            body: Some("Un petit coin lecture près des caisses pour patienter.".into()),
        },
        None,
    )
    .await
    .expect("bob's idea");
    let bobs_id = IdeaId::parse(&bobs.id).expect("id");
    community::votes::cast(&app, &zoe, &bobs_id)
        .await
        .expect("vote");
    community::votes::cast(&app, &bob, &IdeaId::parse(&ideas[0]).expect("id"))
        .await
        .expect("bob votes");
    community::products::apply(
        &app,
        &zoe,
        "gdpr-test",
        community::products::ApplicationRequest {
            motivation: Some(MOTIVATION.into()),
        },
        None,
    )
    .await
    .expect("application");
    community::products::review(
        &app,
        &zoe,
        EAN,
        community::products::ReviewRequest {
            rating: Some(4),
            title: Some("Très bon".into()),
            body: Some("Un produit que je rachèterai sans hésiter.".into()),
            product_test_id: None,
        },
        None,
    )
    .await
    .expect("review");
    // A comment and a report on Bob's idea.
    let bobs_id = IdeaId::parse(&bobs.id).expect("id");
    let comment = community::comments::post(
        &app,
        &zoe,
        &bobs_id,
        community::comments::NewComment {
            body: Some("Je pourrais aider à le mettre en place.".into()),
        },
        None,
    )
    .await
    .expect("comment");
    community::moderation::report(
        &app,
        &zoe,
        community::moderation::ReportRequest {
            target_type: Some("idea".into()),
            target_id: Some(bobs.id.clone()),
            reason: Some("Doublon d'une autre idée".into()),
        },
        None,
    )
    .await
    .expect("report");
    drain(&app, &mailbox).await;
    let redemption = community::points::redeem(
        &app,
        &zoe,
        community::points::RedemptionRequest { points: Some(100) },
        None,
    )
    .await
    .expect("redemption");
    // The draw names the winners (every entrant wins here).
    tokio::time::sleep(contest_closes.saturating_duration_since(std::time::Instant::now())).await;
    let draw = community::contests::run_draw(&app, &caller("mkt", &["marketing"]), "gdpr-contest")
        .await
        .expect("draw");
    assert!(
        draw.to_string().contains(NAME),
        "the draw names Zoé: {draw}"
    );
    drain(&app, &mailbox).await;

    // Export: every section.
    let x = community::gdpr::export(&app, &zoe).await.expect("export");
    assert_eq!(x["profile"]["email"], EMAIL);
    assert_eq!(x["profile"]["display_name"], NAME);
    assert_eq!(x["profile"]["loyalty_card"], CARD);
    assert_eq!(x["consents"]["terms"]["version"], "2026-11");
    assert!(x["consents"]["terms"]["accepted_at"].is_string());
    assert_eq!(x["consents"]["email_opt_in"]["value"], true);
    assert!(x["consents"]["email_opt_in"]["at"].is_string());
    assert_eq!(x["invite"]["cohort"], "public");
    assert_eq!(x["ideas"].as_array().map(Vec::len), Some(IDEAS));
    assert_eq!(x["votes"].as_array().map(Vec::len), Some(1));
    assert_eq!(x["votes"][0]["idea_id"], bobs.id);
    assert_eq!(x["contest_entries"][0]["answers"]["idee"], ANSWER);
    assert_eq!(x["product_test_applications"][0]["motivation"], MOTIVATION);
    assert_eq!(x["reviews"][0]["rating"], 4);
    assert_eq!(x["comments"].as_array().map(Vec::len), Some(1), "{x}");
    assert_eq!(x["comments"][0]["id"], comment.id);
    assert_eq!(x["reports"].as_array().map(Vec::len), Some(1), "{x}");
    let ledger = x["points_ledger"].as_array().expect("ledger");
    let sum: i64 = ledger.iter().filter_map(|e| e["delta"].as_i64()).sum();
    assert!(ledger.len() >= 5, "{ledger:?}");
    assert_eq!(
        sum,
        x["profile"]["points_balance"].as_i64().expect("balance")
    );
    assert!(sum > 0, "a balance left to forfeit");
    assert_eq!(x["redemptions"][0]["id"], redemption.id);
    let mails = x["emails_sent"].as_array().expect("mails");
    assert!(
        mails
            .iter()
            .any(|m| m["mail_id"] == "welcome" && m["to"] == EMAIL),
        "{mails:?}"
    );
    // Only the caller's own data: Bob's idea and address are not in it.
    assert!(!x.to_string().contains("bob@example.fr"));
    assert!(!x.to_string().contains("Un coin lecture"));

    // Before erasure the personal data is in the table.
    let before = serde_json::to_string(&dump().await).expect("json");
    for needle in [NAME, EMAIL, CARD, &card_hash(), ANSWER, MOTIVATION] {
        assert!(before.contains(needle), "{needle} is stored before erasure");
    }

    // Erasure, twice (idempotent).
    let first = community::gdpr::erase(&app, &zoe).await.expect("erase");
    assert_eq!(first["status"], "erased");
    let second = community::gdpr::erase(&app, &zoe)
        .await
        .expect("erase again");
    assert_eq!(second["erased_at"], first["erased_at"]);
    drain(&app, &mailbox).await;

    let items = dump().await;
    let after = serde_json::to_string(&items).expect("json");
    for needle in [NAME, EMAIL, CARD, &card_hash(), ANSWER, MOTIVATION] {
        let holders: Vec<&Item> = items
            .iter()
            .filter(|i| Value::Object((*i).clone()).to_string().contains(needle))
            .collect();
        assert!(
            holders.is_empty(),
            "{needle} survives erasure in {holders:?}"
        );
    }
    assert!(after.contains("Ancien membre"));
    // Contributions stay, anonymised.
    let idea = community::ideas::get(&app, &IdeaId::parse(&ideas[IDEAS - 1]).expect("id"))
        .await
        .expect("idea stays");
    assert_eq!(idea.author.display_name, "Ancien membre");
    let reviews = community::products::reviews(&app, EAN, 10, None)
        .await
        .expect("reviews");
    assert_eq!(reviews.items[0].author.display_name, "Ancien membre");
    let comments = community::comments::list(&app, &bobs_id, None, 10, None)
        .await
        .expect("comments");
    assert_eq!(comments.items.len(), 1, "the comment stays");
    assert_eq!(comments.items[0].author.display_name, "Ancien membre");
    // The ledger still sums to the balance, now 0; the redemption is kept.
    let profile = app
        .table
        .get(&community::members::key(&zoe.id), true)
        .await
        .expect("get")
        .expect("tombstone");
    assert_eq!(profile["points_balance"], 0);
    assert_eq!(profile["email_opt_in"], false);
    let ledger = app
        .table
        .query(
            &Query::new(Index::Primary, "MEMBER#zoe")
                .sk(community::store::SortKey::BeginsWith("LEDGER#".into()))
                .limit(1000),
        )
        .await
        .expect("ledger");
    let sum: i64 = ledger
        .items
        .iter()
        .filter_map(|e| e["delta"].as_i64())
        .sum();
    assert_eq!(sum, 0, "{:?}", ledger.items);
    assert!(ledger.items.iter().any(|e| e["reason"] == "erasure"));
    assert!(app
        .table
        .get(
            &Key::new("MEMBER#zoe", format!("REDEMPTION#{}", redemption.id)),
            true
        )
        .await
        .expect("get")
        .is_some());
    // Late credits do not reach the erased member's ledger.
    community::votes::cast(&app, &bob, &IdeaId::parse(&ideas[1]).expect("id"))
        .await
        .expect("a vote on an anonymised idea");
    drain(&app, &mailbox).await;
    // The erased member is gone for every route; the account cannot come back,
    // and the card is free for another account.
    assert!(matches!(
        community::members::get(&app, &zoe.id).await,
        Err(community::error::Error::NotFound(_))
    ));
    assert!(matches!(
        community::gdpr::export(&app, &zoe).await,
        Err(community::error::Error::NotFound(_))
    ));
    assert!(matches!(
        sign_up(&app, &zoe, NAME, EMAIL, None).await,
        Err(community::error::Error::Conflict(_))
    ));
    sign_up(
        &app,
        &caller("zoe2", &[]),
        "Zoé Nouvelle",
        "zoe2@example.fr",
        Some(CARD),
    )
    .await
    .expect("the card is free again");
    // Bob is untouched.
    let b = community::gdpr::export(&app, &bob).await.expect("bob");
    assert_eq!(b["profile"]["email"], "bob@example.fr");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_personal_data_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let table = EmbeddedTable::open(dir.path()).expect("open");
    let mut s = settings();
    tweak(&mut s);
    let app = App::new(table.clone(), s);
    scenario(app, move || {
        let t = table.clone();
        Box::pin(async move { t.dump().await.expect("dump") })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_personal_data_on_dynamodb() {
    let Ok(endpoint) = std::env::var("COMMUNITY_TEST_DYNAMODB_ENDPOINT") else {
        assert!(
            std::env::var("COMMUNITY_REQUIRE_MOTO").map_or(true, |v| v != "1"),
            "COMMUNITY_REQUIRE_MOTO=1 but COMMUNITY_TEST_DYNAMODB_ENDPOINT is not set"
        );
        eprintln!("skipping: COMMUNITY_TEST_DYNAMODB_ENDPOINT is not set (run ./scripts/test)");
        return;
    };
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    let name = format!("gdpr-{}", ulid::Ulid::new().to_string().to_lowercase());
    create_table(&client, &name).await.expect("table on moto");
    let table = std::sync::Arc::new(DynamoTable::new(client, name));
    let mut s = settings();
    tweak(&mut s);
    let app = App::new(table.clone(), s);
    scenario(app, move || {
        let t = table.clone();
        Box::pin(async move { t.dump().await.expect("dump") })
    })
    .await;
}
