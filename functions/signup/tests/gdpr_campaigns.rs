//! GDPR export and erasure of a member's challenges, surveys and events, on
//! BOTH adapters (embedded store and DynamoDB on moto; few items, so moto
//! stays small), through the signup function's routes (so the responses
//! are checked against docs/openapi.json and the calls recorded as the
//! function's):
//! - a proposal (an idea with `challenge_id`) that wins the challenge's
//!   results, a vote on another member's proposal: exported as
//!   participations; erasure deletes the participant records and renames
//!   the winner in the published results;
//! - a survey response with a text answer: exported with its answers;
//!   erasure deletes it (the CSV loses the row) and the results keep their
//!   counts;
//! - a seat at a full event not started yet, with another member waiting:
//!   erasure frees it as a cancellation does, and the waiting member is
//!   promoted exactly once, even when erasure runs twice;
//! - a registration to an event already held, attendance recorded:
//!   exported, then deleted (the event's counters kept).

use community::auth::Caller;
use community::domain::IdeaId;
use community::events::{outbox_pk, Event, OUTBOX_BUCKETS};
use community::store::{Index, Item, Query, Table};
use community::testing::{
    apply_challenges, apply_roundtables, apply_surveys, call, caller, challenge, join, member,
    roundtable, run_insights, settings, survey,
};
use community::App;
use serde_json::{json, Value};

const SURVEY_TEXT: &str = "Plus de vrac au rayon épicerie, merci Zoé";

fn mkt() -> Caller {
    caller(&member("mkt").in_groups(&["marketing"]))
}

/// The outbox's `roundtable.promoted` events of event `id`.
async fn promotions<T: Table>(app: &App<T>, id: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, outbox_pk(b)).limit(1000);
        for e in community::store::all_pages(&app.table, q)
            .await
            .expect("outbox")
            .iter()
            .filter_map(Event::from_item)
        {
            if e.kind.as_str() == "roundtable.promoted" && e.data["roundtable_id"] == id {
                out.push(e);
            }
        }
    }
    out
}

async fn propose<T: Table>(app: &App<T>, who: &Caller, title: &str) -> community::ideas::IdeaView {
    community::challenges::propose(
        app,
        who,
        "gdpr-defi",
        community::challenges::NewProposal {
            title: Some(title.into()),
            body: Some(
                "Des bocaux consignés à rapporter en magasin, remplis au rayon vrac.".into(),
            ),
        },
        None,
    )
    .await
    .expect("proposal")
}

async fn scenario<T: Table + Clone>(
    app: App<T>,
    dump: impl Fn() -> futures::future::BoxFuture<'static, Vec<Item>>,
) {
    let r = signup::router(app.clone());
    let zoe_as = member("zoe");
    let bob_as = member("bob");
    join(&app, &zoe_as).await;
    join(&app, &bob_as).await;
    let (zoe, bob) = (caller(&zoe_as), caller(&bob_as));

    // A challenge: Zoé and Bob propose, Zoé votes on Bob's proposal; once
    // closed, Zoé's proposal wins.
    let mut defi = challenge("gdpr-defi", -10, 3600, None);
    apply_challenges(&app, vec![defi.clone()]).await;
    let zoes = propose(&app, &zoe, "Des bocaux consignés au rayon vrac").await;
    let bobs = propose(&app, &bob, "Des sachets compostables pour les fruits").await;
    community::votes::cast(&app, &zoe, &IdeaId::parse(&bobs.id).expect("id"))
        .await
        .expect("vote");
    defi.closes_at = community::testing::at(-1);
    apply_challenges(&app, vec![defi]).await;
    let results = community::challenges::publish(
        &app,
        &mkt(),
        "gdpr-defi",
        community::challenges::ResultsRequest {
            winners: Some(vec![community::challenges::WinnerRequest {
                idea_id: Some(zoes.id.clone()),
                note: None,
            }]),
            answer: Some("Merci à tous : les bocaux consignés arrivent en magasin.".into()),
        },
    )
    .await
    .expect("results");
    assert_eq!(
        results.results.as_ref().expect("results")["winners"][0]["author"]["display_name"],
        "zoe"
    );

    // A survey: both respond.
    apply_surveys(&app, vec![survey("gdpr-enquete", -10, 3600, "")]).await;
    for (who, text) in [(&zoe, SURVEY_TEXT), (&bob, "Des produits locaux")] {
        let answers = json!({"frequence": "souvent", "idee": text});
        community::surveys::respond(
            &app,
            who,
            "gdpr-enquete",
            community::surveys::ResponseRequest {
                answers: answers.as_object().cloned().expect("answers"),
            },
            None,
        )
        .await
        .expect("response");
    }

    // Events: a full one ahead (Zoé seated, Bob waiting), one already held
    // (Zoé attended).
    apply_roundtables(
        &app,
        vec![
            roundtable("gdpr-futur", (-10, 3600), 7200, 1),
            roundtable("gdpr-passe", (-10, 3600), 7200, 5),
        ],
    )
    .await;
    for (who, id) in [
        (&zoe, "gdpr-futur"),
        (&bob, "gdpr-futur"),
        (&zoe, "gdpr-passe"),
    ] {
        community::roundtables::register(&app, who, id, None)
            .await
            .expect("registration");
    }
    apply_roundtables(&app, vec![roundtable("gdpr-passe", (-300, -200), -100, 5)]).await;
    let att = community::roundtables::attendance(
        &app,
        &mkt(),
        "gdpr-passe",
        community::roundtables::AttendanceRequest {
            member_ids: Some(vec!["zoe".into()]),
        },
    )
    .await
    .expect("attendance");
    assert_eq!(att.recorded, vec!["zoe".to_string()]);
    run_insights(&app).await;

    // The export lists them all.
    let x = call(&r, "GET", "/members/me/export", Some(&zoe_as), None).await;
    assert_eq!(x.status, 200, "{}", x.body);
    let x = x.body;
    let idea = x["ideas"]
        .as_array()
        .expect("ideas")
        .iter()
        .find(|i| i["id"] == zoes.id)
        .expect("the proposal is an idea of the export");
    assert_eq!(idea["challenge_id"], "gdpr-defi");
    let parts = x["challenge_participations"]
        .as_array()
        .expect("participations");
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert_eq!(parts[0]["challenge_id"], "gdpr-defi");
    assert_eq!(parts[0]["proposals"], json!([zoes.id]));
    assert_eq!(parts[0]["voted_on"], json!([bobs.id]));
    let resp = x["survey_responses"].as_array().expect("responses");
    assert_eq!(resp.len(), 1, "{resp:?}");
    assert_eq!(resp[0]["survey_id"], "gdpr-enquete");
    assert_eq!(resp[0]["answers"]["idee"], SURVEY_TEXT);
    let regs = x["event_registrations"].as_array().expect("registrations");
    assert_eq!(regs.len(), 2, "{regs:?}");
    let reg = |id: &str| {
        regs.iter()
            .find(|g| g["event_id"] == id)
            .expect("registration")
            .clone()
    };
    assert_eq!(reg("gdpr-futur")["status"], "registered");
    assert_eq!(reg("gdpr-passe")["status"], "registered");
    assert!(reg("gdpr-passe")["attended_at"].is_string());
    assert!(reg("gdpr-futur")["attended_at"].is_null());
    // Bob's side is not in it.
    assert!(!x.to_string().contains("Des produits locaux"));
    let b = call(&r, "GET", "/members/me/export", Some(&bob_as), None).await;
    assert_eq!(
        b.body["event_registrations"][0]["status"], "waitlisted",
        "{}",
        b.body
    );
    assert_eq!(b.body["challenge_participations"][0]["voted_on"], json!([]));

    let csv = community::surveys::export_csv(&app, &mkt(), "gdpr-enquete")
        .await
        .expect("csv");
    assert!(csv.contains(SURVEY_TEXT));
    assert!(promotions(&app, "gdpr-futur").await.is_empty());

    // Erasure, twice.
    for _ in 0..2 {
        let d = call(&r, "DELETE", "/members/me", Some(&zoe_as), None).await;
        assert_eq!(d.status, 202, "{}", d.body);
    }

    // The seat went to Bob, once.
    let promoted = promotions(&app, "gdpr-futur").await;
    assert_eq!(promoted.len(), 1, "{promoted:?}");
    assert_eq!(promoted[0].member_id, "bob");
    let b = call(&r, "GET", "/members/me/export", Some(&bob_as), None).await;
    assert_eq!(
        b.body["event_registrations"][0]["status"], "registered",
        "{}",
        b.body
    );
    let futur = community::roundtables::get(&app, "gdpr-futur")
        .await
        .expect("event");
    assert_eq!((futur.registered, futur.waitlisted), (1, 0));
    // The event held keeps its counters.
    let passe = community::roundtables::get(&app, "gdpr-passe")
        .await
        .expect("event");
    assert_eq!(passe.registered, 1);

    // The survey: results keep both responses, the CSV only Bob's row.
    let res = community::surveys::results(&app, &mkt(), "gdpr-enquete")
        .await
        .expect("results");
    assert_eq!(res["responses"], 2, "{res}");
    let csv = community::surveys::export_csv(&app, &mkt(), "gdpr-enquete")
        .await
        .expect("csv");
    assert!(!csv.contains(SURVEY_TEXT), "{csv}");
    assert_eq!(
        csv.trim_end().lines().count(),
        2,
        "header and Bob's row: {csv}"
    );

    // The challenge: the results name a former member, the proposal stays.
    let c = community::challenges::get(&app, "gdpr-defi")
        .await
        .expect("challenge");
    let winner = &c.results.as_ref().expect("results")["winners"][0];
    assert_eq!(winner["idea_id"], zoes.id);
    assert_eq!(winner["author"]["display_name"], "Ancien membre");
    let p = community::ideas::get(&app, &IdeaId::parse(&zoes.id).expect("id"))
        .await
        .expect("the proposal stays");
    assert_eq!(p.author.display_name, "Ancien membre");

    // Nothing left that is Zoé's own record in those campaigns.
    for i in dump().await {
        let pk = i.get("pk").and_then(Value::as_str).unwrap_or_default();
        let sk = i.get("sk").and_then(Value::as_str).unwrap_or_default();
        let text = Value::Object(i.clone()).to_string();
        assert!(!text.contains(SURVEY_TEXT), "the answer survives in {i:?}");
        assert!(
            sk != "REG#zoe" && !(sk.starts_with("WAIT#") && sk.ends_with("#zoe")),
            "{i:?}"
        );
        assert!(!(pk.starts_with("CHPART#") && sk == "zoe"), "{i:?}");
        assert!(
            !(pk.starts_with("SURVEY#") && i.get("member_id") == Some(&json!("zoe"))),
            "{i:?}"
        );
    }
    // Bob's records are untouched.
    let b = call(&r, "GET", "/members/me/export", Some(&bob_as), None).await;
    assert_eq!(
        b.body["survey_responses"][0]["answers"]["idee"],
        "Des produits locaux"
    );
    assert_eq!(
        b.body["challenge_participations"].as_array().map(Vec::len),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_surveys_and_events_are_exported_and_erased_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("open");
    let app = App::new(table.clone(), settings());
    scenario(app, move || {
        let t = table.clone();
        Box::pin(async move { t.dump().await.expect("dump") })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_surveys_and_events_are_exported_and_erased_on_dynamodb() {
    let Some(table) = community::testing::moto_table("gdpr-campaigns").await else {
        return;
    };
    let app = App::new(table.clone(), settings());
    scenario(app, move || {
        let t = table.clone();
        Box::pin(async move { t.dump().await.expect("dump") })
    })
    .await;
}
