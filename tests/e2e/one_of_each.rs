//! Issue 13's "one of each" on the local binary, from campaign files: a
//! sponsored challenge through proposals, votes and results published by
//! the sponsoring brand's token; a panel survey through responses and
//! results, with marketing's CSV export; an event filled past capacity,
//! whose cancellation promotes the waitlist; the brand's report showing its
//! figures, and another brand's token seeing none of them.

use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};

fn ts(secs: i64) -> String {
    community::domain::format_ts(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

fn write(dir: &std::path::Path, file: &str, text: &str) {
    let path = dir.join(file);
    std::fs::create_dir_all(path.parent().expect("dir")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A campaigns directory: the shipped settings, a challenge sponsored by
/// Bonne Maman closing in `closes_in` seconds, its panel survey, an event
/// of two seats, and a contest of another brand (LU).
fn campaigns_dir(closes_in: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = root().join("infra/campaigns");
    for f in ["community.toml", "points.toml"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    write(
        dir.path(),
        "challenges/defi-e2e.toml",
        &format!(
            r#"id = "defi-e2e"
title = "Défi : la confiture de demain"
question = "Quelle confiture aimeriez-vous trouver en rayon ?"
brief = "Proposez vos recettes et votez pour celles des autres ; la marque choisit à la clôture."
theme = "environment"
opens_at = "{}"
closes_at = "{}"
proposal_points = 20
winner_points = 500

[sponsor]
brand = "bonne-maman"
name = "Bonne Maman"
"#,
            ts(-60),
            ts(closes_in)
        ),
    );
    write(
        dir.path(),
        "surveys/panel-e2e.toml",
        &format!(
            r#"id = "panel-e2e"
title = "Panel : vos confitures"
description = "Trois questions au panel de la marque."
opens_at = "{}"
closes_at = "{}"
brand = "bonne-maman"

[audience]
members = ["panel-1", "panel-2", "panel-3"]

[[questions]]
id = "parfum"
type = "single"
label = "Votre parfum préféré ?"
options = ["fraise", "abricot", "figue"]
required = true

[[questions]]
id = "note"
type = "scale"
label = "Recommanderiez-vous nos confitures ?"
min = 0
max = 10
required = true
"#,
            ts(-60),
            ts(3600)
        ),
    );
    write(
        dir.path(),
        "events/table-e2e.toml",
        &format!(
            r#"id = "table-e2e"
title = "Table ronde : le rayon confitures"
description = "Deux places autour de l'équipe du magasin."
kind = "in_store"
place = "Magasin de Montreuil, 2 rue de Paris"
starts_at = "{}"
duration_minutes = 60
capacity = 2
registration_opens_at = "{}"
registration_closes_at = "{}"
"#,
            ts(7200),
            ts(-60),
            ts(3600)
        ),
    );
    write(
        dir.path(),
        "contests/lu-concours.toml",
        &format!(
            r#"id = "lu-concours"
title = "Le grand jeu LU"
description = "Tentez de gagner un an de biscuits."
sponsor = "LU"
brand = "lu"
kind = "sweepstake"
opens_at = "{}"
closes_at = "{}"

[[prizes]]
label = "Un an de biscuits"
count = 1
"#,
            ts(-60),
            ts(3600)
        ),
    );
    dir
}

async fn as_token(
    c: &reqwest::Client,
    method: Method,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut rb = c.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let res = fetch(rb).await.expect("request");
    (res.status, res.json())
}

async fn mailbox(c: &reqwest::Client, s: &Server) -> Vec<Value> {
    match fetch(c.get(s.url("/local/mailbox"))).await {
        Ok(r) => r.json()["items"].as_array().cloned().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_each_challenge_panel_event_and_brand_report() {
    let closes_in = 12;
    let campaigns = campaigns_dir(closes_in);
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaigns_path = campaigns.path().display().to_string();
    let server = Server::start_with(
        dir.path(),
        &[("COMMUNITY_CAMPAIGNS_DIR", campaigns_path.as_str())],
    );
    let c = client();
    let members = ["membre-1", "membre-2", "membre-3", "membre-4"];
    let panel = ["panel-1", "panel-2", "panel-3"];
    for m in members.iter().chain(panel.iter()) {
        join(&c, &server, m).await;
    }
    let bonne_maman = token("partenaire-bm", &["brand:bonne-maman"]);
    let lu = token("partenaire-lu", &["brand:lu"]);
    let marketing = token("ana", &["marketing"]);

    // The sponsored challenge: two proposals, two votes on the first.
    let mut proposals = Vec::new();
    for (m, title) in [
        ("membre-1", "Une confiture de fruits moches"),
        ("membre-2", "Des pots consignés en magasin"),
    ] {
        let (st, body) = send(
            &c,
            Method::POST,
            &server.url("/challenges/defi-e2e/proposals"),
            Some(m),
            Some(&json!({"title": title,
                         "body": "Une recette anti-gaspi avec les fruits invendus du rayon."})),
        )
        .await
        .expect("proposal");
        assert_eq!(st, 201, "{body}");
        proposals.push(body["id"].as_str().expect("id").to_owned());
    }
    for m in ["membre-3", "membre-4"] {
        let (st, body) = send(
            &c,
            Method::PUT,
            &server.url(&format!("/ideas/{}/vote", proposals[0])),
            Some(m),
            None,
        )
        .await
        .expect("vote");
        assert_eq!(st, 200, "{body}");
    }

    // The panel survey: its three members answer; others may not.
    for (m, parfum) in panel.iter().zip(["fraise", "abricot", "figue"]) {
        let (st, body) = send(
            &c,
            Method::POST,
            &server.url("/surveys/panel-e2e/responses"),
            Some(m),
            Some(&json!({"answers": {"parfum": parfum, "note": 8}})),
        )
        .await
        .expect("response");
        assert_eq!(st, 201, "{body}");
    }
    let (st, _) = send(
        &c,
        Method::POST,
        &server.url("/surveys/panel-e2e/responses"),
        Some("membre-1"),
        Some(&json!({"answers": {"parfum": "fraise", "note": 3}})),
    )
    .await
    .expect("response");
    assert_eq!(st, 403, "not in the panel");
    let results_url = server.url("/surveys/panel-e2e/results");
    let counted = eventually(20, || {
        let (c, url, t) = (c.clone(), results_url.clone(), bonne_maman.clone());
        async move {
            let (st, body) = as_token(&c, Method::GET, &url, &t, None).await;
            st == 200 && body["responses"] == 3
        }
    })
    .await;
    assert!(counted, "the brand reads its panel's results");
    let (_, results) = as_token(&c, Method::GET, &results_url, &bonne_maman, None).await;
    assert_eq!(results["questions"][0]["options"][0]["count"], 1);
    assert_eq!(results["questions"][1]["mean"], 8.0);
    let (st, _) = as_token(&c, Method::GET, &results_url, &lu, None).await;
    assert_eq!(st, 403, "another brand reads none of it");
    let csv = fetch(
        c.get(&results_url)
            .bearer_auth(&marketing)
            .header("accept", "text/csv"),
    )
    .await
    .expect("csv");
    assert_eq!(csv.status, 200);
    let text = csv.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "a header and three responses: {text}");
    assert!(lines[0].starts_with("respondent,responded_at,cohort,parfum,note"));
    assert!(!text.contains("panel-1"), "pseudonyms, no member ids");
    let csv = fetch(
        c.get(&results_url)
            .bearer_auth(&bonne_maman)
            .header("accept", "text/csv"),
    )
    .await
    .expect("csv");
    assert_eq!(csv.status, 403, "a brand reads aggregates only");

    // The event: two seats, four members; a cancellation promotes the first waiting.
    let mut statuses = Vec::new();
    for m in members {
        let (st, body) = send(
            &c,
            Method::POST,
            &server.url("/events/table-e2e/registrations"),
            Some(m),
            None,
        )
        .await
        .expect("register");
        assert_eq!(st, 201, "{body}");
        statuses.push(body["status"].as_str().expect("status").to_owned());
    }
    assert_eq!(
        statuses,
        vec!["registered", "registered", "waitlisted", "waitlisted"]
    );
    let (st, body) = send(
        &c,
        Method::DELETE,
        &server.url("/events/table-e2e/registrations/me"),
        Some("membre-1"),
        None,
    )
    .await
    .expect("cancel");
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["seat_taken_by_waitlist"], true);
    let (_, event) = send(
        &c,
        Method::GET,
        &server.url("/events/table-e2e"),
        Some("membre-2"),
        None,
    )
    .await
    .expect("event");
    assert_eq!(
        (event["registered"].clone(), event["waitlisted"].clone()),
        (json!(2), json!(1))
    );
    let promoted = eventually(20, || {
        let (c, s) = (c.clone(), &server);
        async move {
            mailbox(&c, s).await.iter().any(|m| {
                m["to"] == "membre-3@example.fr"
                    && m["mail_id"]
                        .as_str()
                        .is_some_and(|id| id.ends_with("-promoted"))
            })
        }
    })
    .await;
    assert!(
        promoted,
        "the promoted member is mailed: {:#?}",
        mailbox(&c, &server).await
    );

    // After the close, the sponsoring brand publishes the results (LU may not).
    let wait =
        std::time::Duration::from_secs(closes_in as u64 + 1).saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    let results = json!({"winners": [{"idea_id": proposals[0], "note": "La recette retenue."}],
                         "answer": "Merci à tous : la confiture de fruits moches arrive au printemps."});
    let publish = server.url("/challenges/defi-e2e/results");
    let (st, _) = as_token(&c, Method::POST, &publish, &lu, Some(&results)).await;
    assert_eq!(st, 403, "another brand's token");
    let (st, body) = as_token(&c, Method::POST, &publish, &bonne_maman, Some(&results)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["status"], "decided");
    // The participants are mailed the results; one clicks its link.
    let mut results_mail = None;
    let mailed = eventually(20, || {
        let (c, s) = (c.clone(), &server);
        async move {
            mailbox(&c, s)
                .await
                .iter()
                .filter(|m| {
                    m["mail_id"]
                        .as_str()
                        .is_some_and(|i| i.ends_with("-challenge"))
                })
                .count()
                == 4
        }
    })
    .await;
    assert!(mailed, "{:#?}", mailbox(&c, &server).await);
    for m in mailbox(&c, &server).await {
        if m["to"] == "membre-3@example.fr"
            && m["mail_id"]
                .as_str()
                .is_some_and(|i| i.ends_with("-challenge"))
        {
            let text = m["text"].as_str().expect("text");
            let token = text
                .split("/r/")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .expect("a tracked link");
            results_mail = m["mail_id"].as_str().map(str::to_owned);
            let no_redirect = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client");
            for _ in 0..2 {
                let r = fetch(no_redirect.get(server.url(&format!("/r/{token}"))))
                    .await
                    .expect("click");
                assert_eq!(r.status, 302);
            }
        }
    }
    let results_mail = results_mail.expect("membre-3 got the results");

    // The brand's report: its challenge and survey with their figures.
    let report_url = server.url("/brands/me/report");
    let ready = eventually(20, || {
        let (c, url, t) = (c.clone(), report_url.clone(), bonne_maman.clone());
        async move {
            let (st, body) = as_token(&c, Method::GET, &url, &t, None).await;
            st == 200
                && body["challenges"][0]["unique_participants"] == 4
                && body["challenges"][0]["votes"] == 2
                && body["challenges"][0]["mail"]["unique_clicks"] == 1
                && body["surveys"][0]["entries"] == 3
        }
    })
    .await;
    let (_, report) = as_token(&c, Method::GET, &report_url, &bonne_maman, None).await;
    assert!(ready, "{report:#}");
    assert_eq!(report["brand"], "bonne-maman");
    let ch = &report["challenges"][0];
    assert_eq!(ch["id"], "defi-e2e");
    assert_eq!(ch["proposals"], 2);
    assert_eq!(ch["results_published"], true);
    assert_eq!(ch["mail"]["mail_id"], results_mail.as_str());
    assert_eq!(ch["mail"]["sent"], 4);
    assert_eq!(ch["mail"]["unique_click_rate"], 0.25);
    assert_eq!(report["surveys"][0]["id"], "panel-e2e");
    assert_eq!(report["surveys"][0]["unique_participants"], 3);
    assert_eq!(
        report["contests"],
        json!([]),
        "LU's contest is not Bonne Maman's"
    );
    assert_eq!(report["product_tests"], json!([]));
    let text = report.to_string();
    for who in members.iter().chain(panel.iter()) {
        assert!(!text.contains(who), "{who} in the report");
    }
    assert!(!text.contains("@example.fr"));

    // LU's report: its contest only, none of Bonne Maman's campaigns or figures.
    let (st, other) = as_token(&c, Method::GET, &report_url, &lu, None).await;
    assert_eq!(st, 200, "{other}");
    assert_eq!(other["brand"], "lu");
    assert_eq!(other["contests"][0]["id"], "lu-concours");
    assert_eq!(other["contests"][0]["entries"], 0);
    assert_eq!(other["challenges"], json!([]));
    assert_eq!(other["surveys"], json!([]));
    let other_text = other.to_string();
    assert!(!other_text.contains("defi-e2e") && !other_text.contains("panel-e2e"));
    // Marketing (no brand) and a member are refused.
    let (st, body) = as_token(&c, Method::GET, &report_url, &marketing, None).await;
    assert_eq!(st, 403, "{body}");
    let (st, _) = send(&c, Method::GET, &report_url, Some("membre-1"), None)
        .await
        .expect("report");
    assert_eq!(st, 403);
    server.stop();
}
