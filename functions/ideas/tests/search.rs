//! Search (`GET /ideas?q=`) and suggestions (`GET /ideas/similar?title=`),
//! through the function's Lambda entry.

use community::domain::IdeaId;
use community::moderation::{self, DecisionRequest};
use community::testing::{call, caller, embedded_app, join, member, As};
use serde_json::{json, Value};

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn post(r: &axum::Router, who: &As, theme: &str, title: &str, body: &str) -> String {
    let res = call(
        r,
        "POST",
        "/ideas",
        Some(who),
        Some(json!({"theme": theme, "title": title, "body": body})),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    res.body["id"].as_str().unwrap_or_default().to_owned()
}

fn titles(body: &Value) -> Vec<String> {
    body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["title"].as_str().map(str::to_owned))
        .collect()
}

async fn search(r: &axum::Router, q: &str, rest: &str) -> (Vec<String>, Option<String>) {
    let res = call(r, "GET", &format!("/ideas?q={}{rest}", enc(q)), None, None).await;
    assert_eq!(res.status, 200, "{q}{rest}: {}", res.body);
    (
        titles(&res.body),
        res.body["next_cursor"].as_str().map(str::to_owned),
    )
}

async fn moderate(
    app: &community::App<community::store::embedded::EmbeddedTable>,
    id: &str,
    action: &str,
) {
    let m = caller(&member("modo").in_groups(&["moderator"]));
    moderation::decide(
        app,
        &m,
        "idea",
        id,
        DecisionRequest {
            action: Some(action.into()),
            reason: Some("Test de modération".into()),
        },
    )
    .await
    .expect("decision");
}

#[tokio::test]
async fn finds_words_whatever_their_accents_case_and_number() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    post(
        &r,
        &marie,
        "eat-well",
        "Un rayon végétarien",
        "Des plats sans viande, bien rangés au même endroit.",
    )
    .await;
    post(
        &r,
        &marie,
        "children",
        "Des menus pour enfants",
        "Des menus végétariens à la cafétéria, une fois par semaine.",
    )
    .await;
    post(
        &r,
        &marie,
        "environment",
        "Moins d'emballages",
        "Du vrac pour les céréales et les légumes secs.",
    )
    .await;
    for q in ["vegetarien", "Végétarien", "végétariens", "VÉGÉTARIENNES"] {
        let (t, next) = search(&r, q, "").await;
        assert_eq!(t, ["Des menus pour enfants", "Un rayon végétarien"], "{q}");
        assert_eq!(next, None);
    }
    // Several words: every one must be there (AND), in title or body.
    let (t, _) = search(&r, "rayon végétarien", "").await;
    assert_eq!(t, ["Un rayon végétarien"]);
    let (t, _) = search(&r, "menus cafétéria", "").await;
    assert_eq!(t, ["Des menus pour enfants"]);
    let (t, _) = search(&r, "rayon emballage", "").await;
    assert!(t.is_empty());
    let (t, _) = search(&r, "cereale", "").await;
    assert_eq!(t, ["Moins d'emballages"]);
    // Combined with theme and status.
    let (t, _) = search(&r, "vegetarien", "&theme=eat-well").await;
    assert_eq!(t, ["Un rayon végétarien"]);
    let (t, _) = search(&r, "vegetarien", "&status=open&theme=children").await;
    assert_eq!(t, ["Des menus pour enfants"]);
    let (t, _) = search(&r, "vegetarien", "&status=accepted").await;
    assert!(t.is_empty());
    // Every result is a card (the excerpt, not the body).
    let res = call(&r, "GET", "/ideas?q=rayon", None, None).await;
    assert_eq!(res.body["items"][0]["author"]["display_name"], "marie");
    assert!(res
        .header("cache-control")
        .is_some_and(|c| c.contains("max-age")));
}

#[tokio::test]
async fn sorts_by_votes_filters_on_status_and_pages() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            post(
                &r,
                &marie,
                ["eat-well", "loyalty"][i % 2],
                &format!("Fromages locaux {i}"),
                "Des fromages de la région au rayon frais.",
            )
            .await,
        );
    }
    post(
        &r,
        &marie,
        "eat-well",
        "Autre chose",
        "Rien à voir avec le reste.",
    )
    .await;
    // Newest first, page by page.
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let rest = match &cursor {
            Some(c) => format!("&limit=3&cursor={c}"),
            None => "&limit=3".into(),
        };
        let (page, next) = search(&r, "fromage", &rest).await;
        assert!(page.len() <= 3);
        all.extend(page);
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let want: Vec<String> = (0..7)
        .rev()
        .map(|i| format!("Fromages locaux {i}"))
        .collect();
    assert_eq!(all, want);
    // Most voted first (the rolled-up count), then newest.
    let idea2 = IdeaId::parse(&ids[2]).expect("id");
    let idea5 = IdeaId::parse(&ids[5]).expect("id");
    for (sub, idea) in [("v1", &idea2), ("v2", &idea2), ("v3", &idea5)] {
        let v = member(sub);
        join(&app, &v).await;
        community::votes::cast(&app, &caller(&v), idea)
            .await
            .expect("vote");
    }
    community::thresholds::drain_feed(&app)
        .await
        .expect("aggregate");
    let (top, next) = search(&r, "fromages", "&sort=top&limit=3").await;
    assert_eq!(
        top,
        [
            "Fromages locaux 2",
            "Fromages locaux 5",
            "Fromages locaux 6"
        ]
    );
    let (rest, end) = search(
        &r,
        "fromages",
        &format!("&sort=top&limit=10&cursor={}", next.unwrap_or_default()),
    )
    .await;
    assert_eq!(
        rest,
        [
            "Fromages locaux 4",
            "Fromages locaux 3",
            "Fromages locaux 1",
            "Fromages locaux 0"
        ]
    );
    assert_eq!(end, None);
    let (t, _) = search(&r, "fromages", "&sort=top&theme=loyalty").await;
    assert_eq!(
        t,
        [
            "Fromages locaux 5",
            "Fromages locaux 3",
            "Fromages locaux 1"
        ]
    );
    // Status: one goes to the committee.
    community::thresholds::send_to_review(&app, &idea5)
        .await
        .expect("to review");
    let (t, _) = search(&r, "fromages", "&status=under_review").await;
    assert_eq!(t, ["Fromages locaux 5"]);
    let (t, _) = search(&r, "fromages", "&status=open&sort=top&limit=2").await;
    assert_eq!(t, ["Fromages locaux 2", "Fromages locaux 6"]);
    // A cursor of one sort is refused by the other, and by the plain list.
    let (_, c) = search(&r, "fromages", "&limit=1").await;
    let c = c.unwrap_or_default();
    let res = call(
        &r,
        "GET",
        &format!("/ideas?q=fromages&sort=top&cursor={c}"),
        None,
        None,
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["cursor".to_string()])
    );
    let res = call(&r, "GET", &format!("/ideas?cursor={c}"), None, None).await;
    assert_eq!(res.status, 422);
}

#[tokio::test]
async fn hidden_ideas_leave_the_results_and_come_back_on_restore() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    let a = post(
        &r,
        &marie,
        "shopping",
        "Caisses rapides le soir",
        "Plus de caisses ouvertes après 18 h.",
    )
    .await;
    post(
        &r,
        &marie,
        "shopping",
        "Caisses en libre service",
        "Des caisses automatiques en plus.",
    )
    .await;
    let (t, _) = search(&r, "caisse", "").await;
    assert_eq!(t.len(), 2);
    moderate(&app, &a, "hide").await;
    let (t, _) = search(&r, "caisses", "").await;
    assert_eq!(t, ["Caisses en libre service"]);
    let s = call(
        &r,
        "GET",
        "/ideas/similar?title=Des%20caisses%20rapides",
        None,
        None,
    )
    .await;
    assert_eq!(titles(&s.body), ["Caisses en libre service"]);
    moderate(&app, &a, "restore").await;
    let (t, _) = search(&r, "caisses", "").await;
    assert_eq!(t, ["Caisses en libre service", "Caisses rapides le soir"]);
}

#[tokio::test]
async fn an_erased_authors_ideas_stay_searchable_anonymised() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    post(
        &r,
        &marie,
        "environment",
        "Bornes de recharge",
        "Des bornes pour vélos électriques au parking.",
    )
    .await;
    community::gdpr::erase(&app, &caller(&marie))
        .await
        .expect("erased");
    let res = call(&r, "GET", "/ideas?q=velo", None, None).await;
    assert_eq!(titles(&res.body), ["Bornes de recharge"]);
    assert_eq!(
        res.body["items"][0]["author"]["display_name"],
        "Ancien membre"
    );
}

#[tokio::test]
async fn similar_titles_suggest_up_to_five_ideas() {
    let (app, _d) = embedded_app(|_| {});
    let marie = member("marie");
    join(&app, &marie).await;
    let r = ideas::router(app.clone());
    for i in 0..7 {
        post(
            &r,
            &marie,
            "eat-well",
            &format!("Pain complet numéro {i}"),
            "Du pain au levain chaque matin.",
        )
        .await;
    }
    post(
        &r,
        &marie,
        "eat-well",
        "Des fruits de saison",
        "Avec du pain aussi, au petit déjeuner.",
    )
    .await;
    let res = call(
        &r,
        "GET",
        "/ideas/similar?title=Du%20pain%20complet",
        None,
        None,
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let t = titles(&res.body);
    assert_eq!(t.len(), 5, "{t:?}");
    // Two shared title words rank first; newest among equals.
    assert_eq!(t[0], "Pain complet numéro 6");
    assert!(!t.contains(&"Des fruits de saison".to_string()));
    let res = call(&r, "GET", "/ideas/similar?title=Fruits", None, None).await;
    assert_eq!(titles(&res.body), ["Des fruits de saison"]);
    let res = call(&r, "GET", "/ideas/similar?title=Chaussures", None, None).await;
    assert_eq!(res.body, json!({"items": []}));
}

#[tokio::test]
async fn search_parameters_are_checked() {
    let (app, _d) = embedded_app(|_| {});
    let r = ideas::router(app);
    let long = "a".repeat(201);
    for (path, field) in [
        ("/ideas?q=".to_string(), "q"),
        (format!("/ideas?q={long}"), "q"),
        ("/ideas?q=le%20la%20les".to_string(), "q"),
        ("/ideas?q=%21%3F".to_string(), "q"),
        ("/ideas?q=pain&theme=politics".to_string(), "theme"),
        ("/ideas?q=pain&cursor=garbage".to_string(), "cursor"),
        ("/ideas/similar".to_string(), "title"),
        ("/ideas/similar?title=".to_string(), "title"),
        ("/ideas/similar?title=de%20la".to_string(), "title"),
        (format!("/ideas/similar?title={long}"), "title"),
    ] {
        let res = call(&r, "GET", &path, None, None).await;
        assert_eq!(
            (res.status, res.fields()),
            (422, vec![field.to_string()]),
            "{path}"
        );
        assert!(res
            .header("content-type")
            .is_some_and(|c| c == "application/problem+json"));
    }
    let res = call(&r, "GET", "/ideas?q=pain&sort=random", None, None).await;
    assert_eq!((res.status, res.fields()), (422, vec!["sort".to_string()]));
    let res = call(&r, "GET", "/ideas?q=pain", None, None).await;
    assert_eq!(res.body, json!({"items": [], "next_cursor": null}));
}
