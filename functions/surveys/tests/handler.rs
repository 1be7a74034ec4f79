//! Surveys and panels through the function's Router, on both adapters:
//! the audience (cohorts of the soft-launch invites, levels, ambassadors,
//! an invited panel), one response per member validated per question,
//! results aggregated by the insights consumer, the pseudonymised CSV
//! export, brand partners, completion points credited once; and a survey
//! contest's results through the contests function.

use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::store::{Index, Key, Query, Table, Update, Write};
use community::testing::{
    apply_campaigns, apply_surveys, call, call_event, caller, contest, embedded_app, event, join,
    member, run_insights, survey, As,
};
use community::App;
use serde_json::{json, Value};

/// Signs `who` up with an invite code of `cohort` (the soft launch's).
async fn join_cohort<T: Table>(app: &App<T>, who: &As, cohort: &str) {
    let code = community::members::create_invites(&app.table, cohort, 1, 1)
        .await
        .expect("invite")
        .remove(0);
    let mut body = community::testing::sign_up_body(&who.sub);
    body["invite_code"] = json!(code);
    let req: community::members::SignUp = serde_json::from_value(body).expect("body");
    community::members::sign_up(app, &caller(who), req, None)
        .await
        .expect("sign up");
}

/// What the ambassadors' daily run sets on a profile.
async fn promote<T: Table>(app: &App<T>, sub: &str, level: &str, ambassador: bool) {
    app.table
        .transact(vec![Write::update(
            Key::new(format!("MEMBER#{sub}"), "PROFILE"),
            Update::default()
                .set("level", level)
                .set("ambassador", ambassador),
        )])
        .await
        .expect("promote");
}

fn ids(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The events of `kind` in the outbox.
async fn outbox<T: Table>(app: &App<T>, kind: Kind) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, outbox_pk(b)).limit(1000);
        let items = community::store::all_pages(&app.table, q)
            .await
            .expect("outbox");
        out.extend(
            items
                .iter()
                .filter_map(Event::from_item)
                .filter(|e| e.kind == kind),
        );
    }
    out
}

fn good() -> Value {
    json!({"answers": {"frequence": "souvent", "rayons": ["bio", "vrac"], "note": 9,
                       "idee": "Plus de vrac, \"vraiment\"\net des producteurs locaux"}})
}

async fn csv<T: Table + Clone>(
    app: &App<T>,
    r: &axum::Router,
    path: &str,
    who: &As,
) -> (u16, String) {
    let _ = app;
    let res = call_event(
        r,
        &event("GET", path, Some(who), None, &[("accept", "text/csv")]),
    )
    .await;
    let text = match &res.body {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    (res.status, text)
}

async fn scenario<T: Table + Clone>(app: App<T>) {
    let paul = member("paul");
    let ambre = member("ambre");
    let zoe = member("zoe");
    let lea = member("lea");
    join_cohort(&app, &paul, "panel").await;
    join_cohort(&app, &ambre, "staff").await;
    join(&app, &zoe).await;
    join(&app, &lea).await;
    promote(&app, "ambre", "gold", true).await;
    let mut brand_survey = survey("marque", -60, 3600, "");
    brand_survey.brand = Some("bonne-maman".into());
    apply_surveys(
        &app,
        vec![
            survey("panel-v1", -60, 3600, r#"cohorts = ["panel"]"#),
            survey("ambassadeurs", -60, 3600, "ambassadors = true"),
            survey("or", -60, 3600, r#"levels = ["gold"]"#),
            survey("invites", -60, 3600, r#"members = ["zoe"]"#),
            survey("passee", -7200, -60, ""),
            survey("bientot", 3600, 7200, ""),
            brand_survey,
        ],
    )
    .await;
    let r = surveys::router(app.clone());
    let marketing = member("mkt").in_groups(&["marketing"]);
    let bonne_maman = member("bm").in_groups(&["brand:bonne-maman"]);
    let lu = member("lu").in_groups(&["brand:lu"]);

    // Each member sees the open surveys of their audience only.
    assert_eq!(call(&r, "GET", "/surveys", None, None).await.status, 401);
    assert_eq!(
        call(&r, "GET", "/surveys", Some(&member("stranger")), None)
            .await
            .status,
        403
    );
    for (who, want) in [
        (&paul, vec!["marque", "panel-v1"]),
        (&ambre, vec!["ambassadeurs", "marque", "or"]),
        (&zoe, vec!["invites", "marque"]),
        (&lea, vec!["marque"]),
    ] {
        let res = call(&r, "GET", "/surveys", Some(who), None).await;
        assert_eq!(res.status, 200, "{}", res.body);
        assert_eq!(ids(&res.body), want, "{}", who.sub);
        assert!(res.body["items"][0]["responded"] == json!(false));
        assert!(res.body["items"][0].get("audience").is_none());
    }
    // Pages of the filtered list.
    let first = call(&r, "GET", "/surveys?limit=1", Some(&ambre), None).await;
    assert_eq!(first.body["items"].as_array().map(Vec::len), Some(1));
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let second = call(
        &r,
        "GET",
        &format!("/surveys?limit=2&cursor={cursor}"),
        Some(&ambre),
        None,
    )
    .await;
    assert_eq!(second.body["items"].as_array().map(Vec::len), Some(2));
    assert!(second.body["next_cursor"].is_null());

    let one = call(&r, "GET", "/surveys/panel-v1", Some(&paul), None).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body["status"], "open");
    assert_eq!(one.body["questions"][2]["type"], "scale");
    assert_eq!(
        call(&r, "GET", "/surveys/panel-v1", Some(&lea), None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(&r, "GET", "/surveys/nope", Some(&lea), None)
            .await
            .status,
        404
    );
    assert_eq!(
        call(&r, "GET", "/surveys/panel-v1", Some(&marketing), None)
            .await
            .status,
        200
    );

    // Responses: outside the audience, closed, each question type checked.
    let respond = |who: &As, id: &str, body: Value| {
        let r = r.clone();
        let who = who.clone();
        let path = format!("/surveys/{id}/responses");
        async move { call(&r, "POST", &path, Some(&who), Some(body)).await }
    };
    assert_eq!(respond(&lea, "panel-v1", good()).await.status, 403);
    assert_eq!(respond(&lea, "passee", good()).await.status, 409);
    assert_eq!(respond(&lea, "bientot", good()).await.status, 409);
    assert_eq!(respond(&lea, "nope", good()).await.status, 404);
    let too_long = "x".repeat(201);
    for (bad, field) in [
        (json!({"answers": {}}), "answers.frequence"),
        (
            json!({"answers": {"frequence": "jamais"}}),
            "answers.frequence",
        ),
        (json!({"answers": {"frequence": 3}}), "answers.frequence"),
        (
            json!({"answers": {"frequence": "souvent", "rayons": ["bio", "local", "vrac"]}}),
            "answers.rayons",
        ),
        (
            json!({"answers": {"frequence": "souvent", "rayons": ["bio", "bio"]}}),
            "answers.rayons",
        ),
        (
            json!({"answers": {"frequence": "souvent", "rayons": []}}),
            "answers.rayons",
        ),
        (
            json!({"answers": {"frequence": "souvent", "note": 11}}),
            "answers.note",
        ),
        (
            json!({"answers": {"frequence": "souvent", "note": 4.5}}),
            "answers.note",
        ),
        (
            json!({"answers": {"frequence": "souvent", "idee": too_long}}),
            "answers.idee",
        ),
        (
            json!({"answers": {"frequence": "souvent", "idee": "   "}}),
            "answers.idee",
        ),
        (
            json!({"answers": {"frequence": "souvent", "age": 40}}),
            "answers.age",
        ),
    ] {
        let res = respond(&paul, "panel-v1", bad.clone()).await;
        assert_eq!(
            (res.status, res.fields()),
            (422, vec![field.to_string()]),
            "{bad}"
        );
    }
    assert_eq!(
        respond(&paul, "panel-v1", json!({"answers": {}, "x": 1}))
            .await
            .status,
        400
    );
    let ok = respond(&paul, "panel-v1", good()).await;
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(ok.body["points"], 15);
    let again = respond(&paul, "panel-v1", good()).await;
    assert_eq!(again.status, 409, "{}", again.body);
    let seen = call(&r, "GET", "/surveys/panel-v1", Some(&paul), None).await;
    assert_eq!(seen.body["responded"], true);
    // The brand's survey: three members, the optional questions left out.
    for (who, f, n) in [
        (&paul, "parfois", 2),
        (&lea, "souvent", 7),
        (&zoe, "souvent", 10),
    ] {
        let res = respond(
            who,
            "marque",
            json!({"answers": {"frequence": f, "note": n, "rayons": ["local"]}}),
        )
        .await;
        assert_eq!(res.status, 201, "{}", res.body);
    }

    // Results: read from the aggregates the insights consumer keeps.
    let res = call(&r, "GET", "/surveys/marque/results", Some(&marketing), None).await;
    assert_eq!((res.status, res.body["responses"].clone()), (200, json!(0)));
    run_insights(&app).await;
    run_insights(&app).await; // a redelivery changes nothing
    let res = call(&r, "GET", "/surveys/marque/results", Some(&marketing), None).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["responses"], 3);
    let q = &res.body["questions"];
    assert_eq!(
        q[0]["options"],
        json!([{"option": "souvent", "count": 2}, {"option": "parfois", "count": 1},
               {"option": "rarement", "count": 0}])
    );
    assert_eq!(q[1]["options"][1], json!({"option": "local", "count": 3}));
    assert_eq!(
        (q[2]["answered"].clone(), q[2]["mean"].clone()),
        (json!(3), json!(19.0 / 3.0))
    );
    assert_eq!(q[2]["values"][7], json!({"value": 7, "count": 1}));
    assert_eq!(q[3]["answered"], 0);
    let panel = call(
        &r,
        "GET",
        "/surveys/panel-v1/results",
        Some(&marketing),
        None,
    )
    .await;
    assert_eq!(panel.body["responses"], 1);
    assert_eq!(panel.body["questions"][2]["mean"], json!(9.0));

    // Brand partners: their own survey's results, no one else's, and no
    // personal data.
    let own = call(
        &r,
        "GET",
        "/surveys/marque/results",
        Some(&bonne_maman),
        None,
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(own.body["responses"], 3);
    let text = own.body.to_string();
    for secret in ["paul", "lea", "zoe", "@example.fr", "member_id"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(
        call(&r, "GET", "/surveys/marque/results", Some(&lu), None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(
            &r,
            "GET",
            "/surveys/panel-v1/results",
            Some(&bonne_maman),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(&r, "GET", "/surveys/marque/results", Some(&paul), None)
            .await
            .status,
        403
    );
    assert_eq!(
        csv(&app, &r, "/surveys/marque/results", &bonne_maman)
            .await
            .0,
        403,
        "a brand never reads the responses"
    );
    assert_eq!(
        call(&r, "GET", "/surveys/marque", Some(&bonne_maman), None)
            .await
            .status,
        200
    );

    // The CSV export: one row per response, pseudonymised, quoted.
    let (status, text) = csv(&app, &r, "/surveys/panel-v1/results", &marketing).await;
    assert_eq!(status, 200, "{text}");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("respondent,responded_at,cohort,frequence,rayons,note,idee")
    );
    assert!(
        text.contains(",panel,souvent,bio | vrac,9,\"Plus de vrac, \"\"vraiment\"\"\net des producteurs locaux\""),
        "{text}"
    );
    let (_, all) = csv(&app, &r, "/surveys/marque/results", &marketing).await;
    assert_eq!(all.lines().count(), 4, "{all}");
    for secret in ["paul", "lea", "zoe", "@example.fr"] {
        assert!(!all.contains(secret), "{secret} in {all}");
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    // Stable per survey, different across surveys.
    let pseudo = |t: &str| -> Vec<String> {
        t.lines()
            .skip(1)
            .filter_map(|l| l.split(',').next())
            .filter(|p| p.len() == 32)
            .map(str::to_owned)
            .collect()
    };
    let paul_panel = pseudo(&text);
    assert_eq!(paul_panel.len(), 1);
    assert!(!pseudo(&all).contains(&paul_panel[0]));
    assert_eq!(
        pseudo(
            &csv(&app, &r, "/surveys/panel-v1/results", &marketing)
                .await
                .1
        ),
        paul_panel
    );

    // Completion points: credited once, however often the event arrives.
    let consumer = community::points::PointsConsumer { app: app.clone() };
    let responded = outbox(&app, Kind::SurveyResponded).await;
    assert_eq!(responded.len(), 4);
    let before = community::members::get(&app, &caller(&paul).id)
        .await
        .expect("paul")
        .points_balance;
    for _ in 0..2 {
        community::queue::sqs(&consumer, community::testing::sqs_batch(&responded))
            .await
            .expect("points");
    }
    let after = community::members::get(&app, &caller(&paul).id)
        .await
        .expect("paul")
        .points_balance;
    assert_eq!(after - before, 30, "15 per survey, once each");

    // Insights: response rates by cohort.
    let insights = community::insights::read(&app, &caller(&marketing))
        .await
        .expect("insights");
    assert_eq!(
        insights["surveys"]["panel-v1"]["by_cohort"]["panel"],
        json!({"responses": 1, "members": 1, "response_rate": 1.0})
    );
    assert_eq!(insights["surveys"]["marque"]["responses"], 3);
    assert_eq!(
        insights["surveys"]["marque"]["by_cohort"]["public"]["members"],
        2
    );
}

/// The launch contest's survey answers: the same results route shape.
async fn contest_results<T: Table + Clone>(app: App<T>) {
    let mut c = contest("grand-jeu", -60, 3600);
    c.brand = Some("bonne-maman".into());
    apply_campaigns(&app, vec![c, contest("autre", -60, 3600)], vec![]).await;
    let r = contests::router(app.clone());
    for (name, f) in [("anna", "souvent"), ("bea", "rarement")] {
        let who = member(name);
        join(&app, &who).await;
        let res = call(
            &r,
            "POST",
            "/contests/grand-jeu/entries",
            Some(&who),
            Some(json!({"answers": {"frequence": f, "note": 4}})),
        )
        .await;
        assert_eq!(res.status, 201, "{}", res.body);
    }
    run_insights(&app).await;
    let marketing = member("mkt").in_groups(&["marketing"]);
    let res = call(
        &r,
        "GET",
        "/contests/grand-jeu/results",
        Some(&marketing),
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["responses"], 2);
    assert_eq!(res.body["kind"], "contest");
    assert_eq!(res.body["questions"][0]["type"], "single");
    assert_eq!(res.body["questions"][0]["options"][0]["count"], 1);
    let brand = member("bm").in_groups(&["brand:bonne-maman"]);
    let own = call(&r, "GET", "/contests/grand-jeu/results", Some(&brand), None).await;
    assert_eq!(own.status, 200);
    assert!(!own.body.to_string().contains("anna"));
    assert_eq!(
        call(&r, "GET", "/contests/autre/results", Some(&brand), None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(
            &r,
            "GET",
            "/contests/grand-jeu/results",
            Some(&member("anna")),
            None
        )
        .await
        .status,
        403
    );
    assert_eq!(
        call(&r, "GET", "/contests/nope/results", Some(&marketing), None)
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn surveys_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surveys_on_dynamodb() {
    let Some(table) = community::testing::moto_table("surveys").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}

#[tokio::test]
async fn contest_results_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    contest_results(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contest_results_on_dynamodb() {
    let Some(table) = community::testing::moto_table("contest-results").await else {
        return;
    };
    contest_results(App::new(table, community::testing::settings())).await;
}
