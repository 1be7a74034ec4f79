//! `GET /brands/me/report` through the function's Router, on both adapters:
//! a brand partner's token reads its own contests, challenges, product
//! tests and surveys with their figures (entries, unique participants,
//! mail unique-click rate, reviews, label), as the aggregates hold them
//! after entries, proposals, votes, responses, reviews and clicks; another
//! brand's campaigns and figures never appear; no member's personal data;
//! 403 for a token of no brand (marketing included) or of two.

use community::store::Table;
use community::testing::{
    apply_campaigns, apply_challenges, apply_surveys, call, caller, challenge, contest,
    embedded_app, insights_votes, join, member, product_test, run_insights, survey, As,
};
use community::App;
use serde_json::{json, Value};

const BM_EAN: &str = "3560070123452";
const LU_EAN: &str = "3017620422003";

fn contest_of(id: &str, brand: &str, window: (i64, i64)) -> community::campaigns::ContestConfig {
    let mut c = contest(id, window.0, window.1);
    c.brand = Some(brand.into());
    c
}

fn test_of(
    id: &str,
    ean: &str,
    brand: &str,
    apply: (i64, i64),
    review: (i64, i64),
) -> community::campaigns::ProductTestConfig {
    let mut t = product_test(id, ean, apply, review, 5, 2);
    t.brand_slug = Some(brand.into());
    t
}

fn survey_of(id: &str, brand: &str) -> community::surveys::SurveyConfig {
    let mut s = survey(id, -60, 3600, "");
    s.brand = Some(brand.into());
    s
}

fn req<R: serde::de::DeserializeOwned>(v: Value) -> R {
    serde_json::from_value(v).expect("request")
}

async fn enter<T: Table>(app: &App<T>, who: &As, contest: &str) {
    community::contests::enter(
        app,
        &caller(who),
        contest,
        req(json!({"answers": {"frequence": "souvent"}})),
        None,
    )
    .await
    .expect("entry");
}

async fn apply_to<T: Table>(app: &App<T>, who: &As, test: &str) {
    community::products::apply(app, &caller(who), test, req(json!({})), None)
        .await
        .expect("application");
}

async fn respond<T: Table>(app: &App<T>, who: &As, survey: &str) {
    community::surveys::respond(
        app,
        &caller(who),
        survey,
        req(json!({"answers": {"frequence": "souvent", "note": 8}})),
        None,
    )
    .await
    .expect("response");
}

async fn propose<T: Table>(app: &App<T>, who: &As, challenge: &str) -> String {
    community::challenges::propose(
        app,
        &caller(who),
        challenge,
        req(json!({"title": "Des bocaux consignés en rayon",
                   "body": "Rapporter ses bocaux vides en magasin contre un bon de réduction."})),
        None,
    )
    .await
    .expect("proposal")
    .id
    .to_string()
}

/// `sent` copies of mail `mail_id`, then a click of each of `clickers`
/// (twice: unique clicks count once).
async fn mail<T: Table>(app: &App<T>, mail_id: &str, sent: usize, clickers: &[&As]) {
    for _ in 0..sent {
        app.table
            .transact(vec![community::mail::count_sent(mail_id)])
            .await
            .expect("sent");
    }
    for who in clickers {
        let token = community::mail::token(
            &app.settings().link_secret,
            &json!({"m": mail_id, "u": who.sub, "l": "https://communaute.example.fr/"}),
        );
        for _ in 0..2 {
            community::mail::click(app, &token).await.expect("click");
        }
    }
}

fn ids(report: &Value, kind: &str) -> Vec<String> {
    report[kind]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

async fn scenario<T: Table + Clone>(app: App<T>) {
    let router = marketing::router(app.clone());
    let (amelie, benoit, chloe, damien) = (
        member("amelie"),
        member("benoit"),
        member("chloe"),
        member("damien"),
    );
    for m in [&amelie, &benoit, &chloe, &damien] {
        join(&app, m).await;
    }
    let bm = member("partenaire-bm").in_groups(&["brand:bonne-maman"]);
    let lu = member("partenaire-lu").in_groups(&["brand:lu"]);
    let mkt = member("mkt").in_groups(&["marketing"]);

    // Nothing yet: the brand sees empty lists.
    let empty = call(&router, "GET", "/brands/me/report", Some(&bm), None).await;
    assert_eq!(empty.status, 200, "{}", empty.body);
    assert_eq!(empty.body["brand"], "bonne-maman");
    for kind in ["contests", "challenges", "product_tests", "surveys"] {
        assert_eq!(empty.body[kind], json!([]), "{kind}");
    }

    let open = (-60, 3600);
    apply_campaigns(
        &app,
        vec![
            contest_of("bm-concours", "bonne-maman", open),
            contest_of("lu-concours", "lu", open),
            // A contest of no brand is nobody's.
            contest("sans-marque", -60, 3600),
        ],
        vec![
            test_of("bm-test", BM_EAN, "bonne-maman", open, (3600, 7200)),
            test_of("lu-test", LU_EAN, "lu", open, (3600, 7200)),
        ],
    )
    .await;
    apply_challenges(
        &app,
        vec![
            challenge("bm-defi", -60, 3600, Some("bonne-maman")),
            challenge("lu-defi", -60, 3600, Some("lu")),
        ],
    )
    .await;
    apply_surveys(
        &app,
        vec![
            survey_of("bm-avis", "bonne-maman"),
            survey_of("lu-avis", "lu"),
        ],
    )
    .await;

    // Members take part.
    enter(&app, &amelie, "bm-concours").await;
    enter(&app, &benoit, "bm-concours").await;
    enter(&app, &chloe, "lu-concours").await;
    enter(&app, &damien, "sans-marque").await;
    apply_to(&app, &amelie, "bm-test").await;
    apply_to(&app, &benoit, "bm-test").await;
    apply_to(&app, &chloe, "lu-test").await;
    respond(&app, &amelie, "bm-avis").await;
    respond(&app, &benoit, "bm-avis").await;
    respond(&app, &chloe, "bm-avis").await;
    respond(&app, &damien, "lu-avis").await;
    let winner = propose(&app, &amelie, "bm-defi").await;
    let _other = propose(&app, &benoit, "bm-defi").await;
    let _lu = propose(&app, &chloe, "lu-defi").await;
    let idea = community::domain::IdeaId::parse(&winner).expect("id");
    for who in [&benoit, &chloe] {
        community::votes::cast(&app, &caller(who), &idea)
            .await
            .expect("vote");
    }
    insights_votes(&app, &winner, &[&benoit, &chloe]).await;
    run_insights(&app).await;
    // The contests' announcements: 4 sent, 2 members clicked (twice each).
    mail(
        &app,
        "news-contest-bm-concours-news",
        4,
        &[&amelie, &benoit],
    )
    .await;
    mail(&app, "news-contest-lu-concours-news", 10, &[&chloe]).await;

    // The product test moves on: testers drawn, their reviews earn the label.
    apply_campaigns(
        &app,
        vec![],
        vec![test_of(
            "bm-test",
            BM_EAN,
            "bonne-maman",
            (-7200, -120),
            (-60, 3600),
        )],
    )
    .await;
    community::products::select(&app, &caller(&mkt), "bm-test")
        .await
        .expect("selection");
    for who in [&amelie, &benoit] {
        community::products::review(
            &app,
            &caller(who),
            BM_EAN,
            req(json!({"rating": 4, "title": "Très bon yaourt",
                       "body": "Onctueux et pas trop sucré, je rachèterai.",
                       "product_test_id": "bm-test"})),
            None,
        )
        .await
        .expect("review");
    }
    // The challenge closes; its brand publishes the results, mailed.
    apply_challenges(
        &app,
        vec![challenge("bm-defi", -7200, -60, Some("bonne-maman"))],
    )
    .await;
    community::challenges::publish(
        &app,
        &caller(&bm),
        "bm-defi",
        req(json!({"winners": [{"idea_id": winner}],
                   "answer": "Merci à tous : les bocaux consignés arrivent au printemps."})),
    )
    .await
    .expect("results");
    let item = app
        .table
        .get(&community::campaigns::challenge_key("bm-defi"), true)
        .await
        .expect("read")
        .expect("challenge");
    let results_mail = item["results_mail_id"]
        .as_str()
        .expect("the results mail is recorded")
        .to_owned();
    mail(&app, &results_mail, 3, &[&benoit]).await;

    // The report of Bonne Maman: its campaigns only, with their figures.
    let r = call(&router, "GET", "/brands/me/report", Some(&bm), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = &r.body;
    assert_eq!(b["brand"], "bonne-maman");
    assert_eq!(ids(b, "contests"), vec!["bm-concours"]);
    assert_eq!(ids(b, "challenges"), vec!["bm-defi"]);
    assert_eq!(ids(b, "product_tests"), vec!["bm-test"]);
    assert_eq!(ids(b, "surveys"), vec!["bm-avis"]);
    let c = &b["contests"][0];
    assert_eq!(
        (c["entries"].clone(), c["unique_participants"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(c["mail"]["sent"], 4);
    assert_eq!(c["mail"]["unique_clicks"], 2);
    assert_eq!(c["mail"]["unique_click_rate"], 0.5);
    let ch = &b["challenges"][0];
    assert_eq!(ch["proposals"], 2);
    assert_eq!(ch["entries"], 2);
    assert_eq!(ch["votes"], 2);
    assert_eq!(
        ch["unique_participants"], 3,
        "amelie and benoit proposed, benoit and chloe voted: three members"
    );
    assert_eq!(ch["results_published"], true);
    assert_eq!(ch["mail"]["mail_id"], results_mail.as_str());
    assert_eq!(ch["mail"]["unique_clicks"], 1);
    let t = &b["product_tests"][0];
    assert_eq!(
        (t["entries"].clone(), t["unique_participants"].clone()),
        (json!(2), json!(2))
    );
    assert_eq!(t["testers"], 2);
    assert_eq!(t["reviews"]["tester_reviews"], 2);
    assert_eq!(t["reviews"]["product_reviews"], 2);
    assert_eq!(t["reviews"]["average_rating"], 4.0);
    assert_eq!(t["label"]["status"], "earned");
    assert_eq!(t["label"]["reviews_for_label"], 2);
    assert_eq!(t["mail"]["sent"], 0);
    assert!(t["mail"]["unique_click_rate"].is_null());
    let s = &b["surveys"][0];
    assert_eq!(
        (s["entries"].clone(), s["unique_participants"].clone()),
        (json!(3), json!(3))
    );
    assert!(s["mail"].is_null());

    // No member's personal data: ids, names, addresses, pseudonyms.
    let text = b.to_string();
    for m in ["amelie", "benoit", "chloe", "damien", "@example.fr"] {
        assert!(!text.contains(m), "{m} in the report: {text}");
    }
    let selection = app
        .table
        .get(&community::campaigns::product_test_key("bm-test"), true)
        .await
        .expect("read")
        .expect("test");
    for p in selection["selection"]["testers"]
        .as_array()
        .expect("testers")
    {
        let p = p.as_str().expect("pseudonym");
        assert!(!text.contains(p), "a tester's pseudonym in the report");
    }

    // Lu's report: its own campaigns and figures, none of Bonne Maman's.
    let r = call(&router, "GET", "/brands/me/report", Some(&lu), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let l = &r.body;
    assert_eq!(l["brand"], "lu");
    assert_eq!(ids(l, "contests"), vec!["lu-concours"]);
    assert_eq!(ids(l, "challenges"), vec!["lu-defi"]);
    assert_eq!(ids(l, "product_tests"), vec!["lu-test"]);
    assert_eq!(ids(l, "surveys"), vec!["lu-avis"]);
    assert_eq!(l["contests"][0]["entries"], 1);
    assert_eq!(l["contests"][0]["mail"]["unique_click_rate"], 0.1);
    assert_eq!(l["challenges"][0]["proposals"], 1);
    assert_eq!(l["challenges"][0]["results_published"], false);

    // Marketing's insights: each sponsoring brand's reach, summed from the
    // same per-campaign figures; the contest of no brand is nobody's.
    let r = call(&router, "GET", "/insights", Some(&mkt), None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["brand_reach"],
        json!([
            {"brand": "bonne-maman", "campaigns": 4,
             "entries": 2 + 2 + 2 + 3, "participations": 2 + 3 + 2 + 3,
             "mails_sent": 4 + 3, "mail_unique_clicks": 2 + 1,
             "unique_click_rate": 3.0 / 7.0},
            {"brand": "lu", "campaigns": 4, "entries": 4, "participations": 4,
             "mails_sent": 10, "mail_unique_clicks": 1, "unique_click_rate": 0.1},
        ])
    );
    assert!(l["challenges"][0]["mail"].is_null());
    assert_eq!(l["product_tests"][0]["entries"], 1);
    assert_eq!(l["product_tests"][0]["label"]["status"], "not_earned");
    assert_eq!(l["surveys"][0]["entries"], 1);
    assert!(!l.to_string().contains("bm-"), "{l}");

    // No brand, or two: refused; no token: 401.
    assert_eq!(
        call(&router, "GET", "/brands/me/report", None, None)
            .await
            .status,
        401
    );
    let two = member("deux").in_groups(&["brand:bonne-maman", "brand:lu"]);
    for who in [
        &amelie,
        &mkt,
        &two,
        &member("claire").in_groups(&["committee"]),
    ] {
        let r = call(&router, "GET", "/brands/me/report", Some(who), None).await;
        assert_eq!(r.status, 403, "{}: {}", who.sub, r.body);
        assert_eq!(
            r.header("content-type"),
            Some("application/problem+json"),
            "{}",
            who.sub
        );
    }
}

#[tokio::test]
async fn brand_report_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brand_report_on_dynamodb() {
    let Some(table) = community::testing::moto_table("brand-report").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}
