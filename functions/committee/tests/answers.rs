//! Official answers on any idea (`POST /ideas/{id}/answer`) and the answer
//! queue (`GET /review-queue?state=unanswered`), through the committee
//! function's Router, on both adapters; and what insights make of them.

use community::domain::IdeaId;
use community::store::Table;
use community::testing::{call, caller, embedded_app, join, member, post_idea};
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

async fn scenario<T: Table + Clone>(app: App<T>) {
    let author = member("author");
    let other = member("other");
    join(&app, &author).await;
    join(&app, &other).await;
    let first = post_idea(&app, &author).await;
    let second = post_idea(&app, &other).await;
    let r = committee::router(app.clone());
    let claire = member("claire").in_groups(&["committee"]);
    let mona = member("mona").in_groups(&["moderator"]);
    let path = format!("/ideas/{first}/answer");
    let text = "Merci ! Nous étudions des paniers de saison dans trois magasins.";

    // Who may answer, and what an answer must be.
    let good = json!({ "text": text });
    assert_eq!(
        call(&r, "POST", &path, None, Some(good.clone()))
            .await
            .status,
        401
    );
    assert_eq!(
        call(&r, "POST", &path, Some(&author), Some(good.clone()))
            .await
            .status,
        403
    );
    for bad in [
        json!({}),
        json!({"text": "Trop bref"}),
        json!({"text": "          "}),
        json!({"text": "x".repeat(2001)}),
        json!({"text": "Une réponse\u{0007} avec une cloche"}),
    ] {
        let res = call(&r, "POST", &path, Some(&mona), Some(bad.clone())).await;
        assert_eq!(
            (res.status, res.fields()),
            (422, vec!["text".to_string()]),
            "{bad}"
        );
    }
    let res = call(
        &r,
        "POST",
        &path,
        Some(&mona),
        Some(json!({"text": text, "extra": 1})),
    )
    .await;
    assert_eq!(res.status, 400, "unknown field");
    assert_eq!(
        call(
            &r,
            "POST",
            "/ideas/01JD0000000000000000000000/answer",
            Some(&mona),
            Some(good.clone())
        )
        .await
        .status,
        404
    );

    // The answer queue: both ideas, oldest first; staff only.
    let queue = "/review-queue?state=unanswered";
    assert_eq!(
        call(&r, "GET", queue, Some(&author), None).await.status,
        403
    );
    let q = call(&r, "GET", queue, Some(&mona), None).await;
    assert_eq!(q.status, 200, "{}", q.body);
    assert_eq!(ids(&q.body), vec![first.clone(), second.clone()]);
    assert!(q.body["items"][0]["age_seconds"].as_i64().is_some());
    assert!(q.body["items"][0]["official_answer"].is_null());
    let old = call(
        &r,
        "GET",
        &format!("{queue}&older_than_days=1"),
        Some(&claire),
        None,
    )
    .await;
    assert_eq!((old.status, ids(&old.body)), (200, Vec::<String>::new()));
    let today = call(
        &r,
        "GET",
        &format!("{queue}&older_than_days=0&limit=1"),
        Some(&claire),
        None,
    )
    .await;
    assert_eq!(ids(&today.body), vec![first.clone()]);
    let next = today.body["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let page2 = call(
        &r,
        "GET",
        &format!("{queue}&limit=1&cursor={next}"),
        Some(&claire),
        None,
    )
    .await;
    assert_eq!(ids(&page2.body), vec![second.clone()]);
    for (bad, field) in [
        ("/review-queue?state=open", "state"),
        (
            "/review-queue?state=unanswered&older_than_days=-1",
            "older_than_days",
        ),
        ("/review-queue?older_than_days=3", "older_than_days"),
        ("/review-queue?state=unanswered&sort=top", "sort"),
    ] {
        let res = call(&r, "GET", bad, Some(&claire), None).await;
        assert_eq!(
            (res.status, res.fields()),
            (400, vec![field.to_string()]),
            "{bad}"
        );
    }

    // A moderator answers an idea far below the threshold.
    let res = call(&r, "POST", &path, Some(&mona), Some(good.clone())).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["status"], "open");
    assert_eq!(res.body["official_answer"]["text"], text);
    assert_eq!(res.body["official_answer"]["by"], "moderator");
    assert!(res.body["official_answer"]["at"].is_string());
    assert_eq!(res.body["answers"].as_array().map(Vec::len), Some(1));
    let q = call(&r, "GET", queue, Some(&mona), None).await;
    assert_eq!(
        ids(&q.body),
        vec![second.clone()],
        "answered: out of the queue"
    );

    // The committee's second answer replaces it; the history keeps both.
    let again = "Le comité a retenu l'idée pour un test en magasin cet été.";
    let res = call(
        &r,
        "POST",
        &path,
        Some(&claire),
        Some(json!({ "text": again })),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["official_answer"]["text"], again);
    assert_eq!(res.body["official_answer"]["by"], "committee");
    assert_eq!(res.body["answers"][0]["text"], text);
    assert_eq!(res.body["answers"][1]["text"], again);
    let id = IdeaId::parse(&first).expect("id");
    let shown = community::ideas::get(&app, &id).await.expect("idea");
    assert_eq!(
        shown.official_answer.as_ref().map(|a| a.text.as_str()),
        Some(again)
    );
    assert_eq!(shown.answers.len(), 2);
    // The row's guard and the body's history agree.
    let row = community::ideas::load(&app, &id, true).await.expect("row");
    assert_eq!(row.answer_count, 2);

    // A decision answers the other idea: it leaves the queue too.
    let second_id = IdeaId::parse(&second).expect("id");
    community::thresholds::send_to_review(&app, &second_id)
        .await
        .expect("to review");
    let res = call(
        &r,
        "POST",
        &format!("/ideas/{second}/decision"),
        Some(&claire),
        Some(json!({"outcome": "rejected", "reason": "Déjà proposé dans tous nos magasins."})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let q = call(&r, "GET", queue, Some(&mona), None).await;
    assert_eq!(ids(&q.body), Vec::<String>::new());

    // Insights: both ideas answered once each (the second answer is not a
    // first one), answered within the hour.
    community::testing::run_insights(&app).await;
    let marketing = member("marie").in_groups(&["marketing"]);
    let ins = community::insights::read(&app, &caller(&marketing))
        .await
        .expect("insights");
    let theme = community::testing::idea_body()["theme"]
        .as_str()
        .expect("theme")
        .to_owned();
    assert_eq!(ins["answers"]["total"]["ideas"], 2, "{}", ins["answers"]);
    assert_eq!(ins["answers"]["total"]["answered"], 2);
    assert_eq!(ins["answers"]["total"]["answered_share"], 1.0);
    assert_eq!(ins["answers"]["total"]["median_hours_to_first_answer"], 0);
    assert_eq!(ins["answers"]["by_theme"][&theme]["answered"], 2);
    let other_theme = ins["answers"]["by_theme"]
        .as_object()
        .and_then(|m| m.keys().find(|k| **k != theme).cloned())
        .expect("another theme");
    assert_eq!(ins["answers"]["by_theme"][&other_theme]["answered"], 0);
    assert!(ins["answers"]["by_theme"][&other_theme]["median_hours_to_first_answer"].is_null());

    // An idea keeps at most 20 answers.
    for n in 3..=community::answers::MAX_ANSWERS {
        let res = call(
            &r,
            "POST",
            &path,
            Some(&claire),
            Some(json!({ "text": format!("Point d'étape numéro {n} du comité.") })),
        )
        .await;
        assert_eq!(res.status, 200, "answer {n}: {}", res.body);
    }
    let res = call(&r, "POST", &path, Some(&claire), Some(good)).await;
    assert_eq!(res.status, 409, "{}", res.body);
}

#[tokio::test]
async fn answers_and_the_answer_queue_on_the_embedded_store() {
    let (app, _d) = embedded_app(|_| {});
    scenario(app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_and_the_answer_queue_on_dynamodb() {
    let Some(table) = community::testing::moto_table("answers").await else {
        return;
    };
    scenario(App::new(table, community::testing::settings())).await;
}

/// Two answers given at once: one wins, the other is told to read again,
/// and the history holds exactly the winner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_answers_never_both_win() {
    let (app, _d) = embedded_app(|_| {});
    let author = member("author");
    join(&app, &author).await;
    let idea = post_idea(&app, &author).await;
    let id = IdeaId::parse(&idea).expect("id");
    let claire = caller(&member("claire").in_groups(&["committee"]));
    let mona = caller(&member("mona").in_groups(&["moderator"]));
    let req = |t: &str| -> community::answers::AnswerRequest {
        serde_json::from_value(json!({ "text": t })).expect("req")
    };
    for _ in 0..10 {
        let before = community::ideas::load(&app, &id, true)
            .await
            .expect("row")
            .answer_count;
        let (a, b) = tokio::join!(
            community::answers::answer(&app, &claire, &id, req("Réponse du comité, première.")),
            community::answers::answer(&app, &mona, &id, req("Réponse de la modération, seconde.")),
        );
        let won = usize::from(a.is_ok()) + usize::from(b.is_ok());
        assert!(won >= 1, "{a:?} {b:?}");
        for r in [&a, &b] {
            if let Err(e) = r {
                assert!(matches!(e, community::error::Error::Conflict(_)), "{e:?}");
            }
        }
        let after = community::ideas::get(&app, &id).await.expect("idea");
        assert_eq!(after.answers.len() as i64, before + won as i64);
        if after.answers.len() as i64 >= community::answers::MAX_ANSWERS - 1 {
            break;
        }
    }
}
