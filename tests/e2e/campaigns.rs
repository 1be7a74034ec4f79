//! Issue 4's acceptance on the local binary: a contest is listed, members
//! enter, marketing draws after close, the verifier reproduces the winners;
//! a product test goes from applications to selection to tester reviews to
//! the "Tested by the Community" label.

use crate::support::*;
use reqwest::Method;
use serde_json::{json, Value};

fn ts(secs: i64) -> String {
    community::domain::format_ts(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

fn campaigns_dir(closes_in: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = root().join("infra/campaigns");
    for f in ["community.toml", "points.toml"] {
        std::fs::copy(src.join(f), dir.path().join(f)).expect("copy");
    }
    std::fs::create_dir_all(dir.path().join("contests")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("product-tests")).expect("mkdir");
    let contest = std::fs::read_to_string(src.join("contests/grand-jeu-lancement.toml"))
        .expect("read")
        .replace("2026-11-23T00:00:00Z", &ts(-60))
        .replace("2027-01-31T23:59:59Z", &ts(closes_in));
    std::fs::write(
        dir.path().join("contests/grand-jeu-lancement.toml"),
        contest,
    )
    .expect("write");
    let test = std::fs::read_to_string(src.join("product-tests/test-yaourt-brebis.toml"))
        .expect("read")
        .replace("2026-11-23T00:00:00Z", &ts(-60))
        .replace("2026-12-07T23:59:59Z", &ts(closes_in))
        .replace("2026-12-08T00:00:00Z", &ts(closes_in))
        .replace("2027-01-15T23:59:59Z", &ts(3600))
        .replace("slots = 50", "slots = 2")
        .replace("reviews_for_label = 30", "reviews_for_label = 2");
    std::fs::write(
        dir.path().join("product-tests/test-yaourt-brebis.toml"),
        test,
    )
    .expect("write");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contest_draw_verifier_and_product_test_label() {
    let closes_in = 5;
    let campaigns = campaigns_dir(closes_in);
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let campaigns_path = campaigns.path().display().to_string();
    let server = Server::start_with(
        dir.path(),
        &[("COMMUNITY_CAMPAIGNS_DIR", campaigns_path.as_str())],
    );
    let c = client();
    let (_, list) = send(&c, Method::GET, &server.url("/contests"), None, None)
        .await
        .expect("list");
    assert_eq!(list["items"][0]["id"], "grand-jeu-lancement", "{list}");
    assert_eq!(list["items"][0]["sponsor"], "Les Vergers de Provence");

    let answers = json!({"answers": {"frequence": "Une fois par semaine", "rayons": ["Bio", "Produits locaux"], "note-magasin": 5}});
    let players: Vec<String> = (0..4).map(|i| format!("joueur-{i}")).collect();
    for p in &players {
        send(
            &c,
            Method::POST,
            &server.url("/members"),
            Some(p),
            Some(&sign_up_body(p)),
        )
        .await
        .expect("join");
        let (st, body) = send(
            &c,
            Method::POST,
            &server.url("/contests/grand-jeu-lancement/entries"),
            Some(p),
            Some(&answers),
        )
        .await
        .expect("enter");
        assert_eq!(st, 201, "{body}");
        let (st, _) = send(
            &c,
            Method::POST,
            &server.url("/product-tests/test-yaourt-brebis/applications"),
            Some(p),
            Some(&json!({"motivation": "Je mange un yaourt chaque matin."})),
        )
        .await
        .expect("apply");
        assert_eq!(st, 201);
    }
    let marketing = token("ana", &["marketing"]);
    let res = c
        .post(server.url("/contests/grand-jeu-lancement/draw"))
        .bearer_auth(&marketing)
        .send()
        .await
        .expect("draw");
    assert_eq!(res.status().as_u16(), 409, "not before close");

    let wait =
        std::time::Duration::from_secs(closes_in as u64 + 1).saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    let res = c
        .post(server.url("/contests/grand-jeu-lancement/draw"))
        .bearer_auth(&marketing)
        .send()
        .await
        .expect("draw");
    assert_eq!(res.status().as_u16(), 200);
    let drawn: Value = res.json().await.expect("json");
    assert_eq!(drawn["proof"]["entries"].as_array().map(Vec::len), Some(4));
    assert_eq!(
        drawn["winners"].as_array().map(Vec::len),
        Some(4),
        "21 prizes, 4 entries: everyone wins"
    );
    let file = dir.path().join("draw.json");
    std::fs::write(&file, drawn.to_string()).expect("write");
    let out = std::process::Command::new(BIN)
        .arg("verify-draw")
        .arg(&file)
        .output()
        .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("checks out"));
    // A tampered response does not verify.
    let mut forged = drawn.clone();
    forged["proof"]["seed"] = json!("0000");
    std::fs::write(&file, forged.to_string()).expect("write");
    let out = std::process::Command::new(BIN)
        .arg("verify-draw")
        .arg(&file)
        .output()
        .expect("verify");
    assert!(!out.status.success());
    // Winners are emailed.
    let mailed = eventually(10, || {
        let (c, url) = (c.clone(), server.url("/local/mailbox"));
        async move {
            let v: Value = match c.get(url).send().await {
                Ok(r) => r.json().await.unwrap_or(Value::Null),
                Err(_) => return false,
            };
            v["items"].as_array().is_some_and(|a| {
                a.iter()
                    .filter(|m| {
                        m["subject"]
                            .as_str()
                            .is_some_and(|s| s.contains("vous avez gagné"))
                    })
                    .count()
                    == 4
            })
        }
    })
    .await;
    assert!(mailed, "each winner got a mail");

    // Product test: selection, tester reviews, label.
    let res = c
        .post(server.url("/product-tests/test-yaourt-brebis/selection"))
        .bearer_auth(&marketing)
        .send()
        .await
        .expect("select");
    assert_eq!(res.status().as_u16(), 200);
    let sel: Value = res.json().await.expect("json");
    let testers: Vec<&String> = players
        .iter()
        .filter(|p| {
            sel["testers"].as_array().is_some_and(|a| {
                a.contains(&json!(community::draw::pseudonym("test-yaourt-brebis", p)))
            })
        })
        .collect();
    assert_eq!(testers.len(), 2);
    let label_url = server.url("/products/3560070123452/label");
    let (_, label) = send(&c, Method::GET, &label_url, None, None)
        .await
        .expect("label");
    assert_eq!(label["tested_by_community"], false);
    for t in &testers {
        let review = json!({"rating": 5, "title": "Délicieux", "body": "Texture crémeuse, goût doux : adopté par toute la famille.",
                            "product_test_id": "test-yaourt-brebis"});
        let (st, body) = send(
            &c,
            Method::POST,
            &server.url("/products/3560070123452/reviews"),
            Some(t),
            Some(&review),
        )
        .await
        .expect("review");
        assert_eq!(st, 201, "{body}");
    }
    let (_, label) = send(&c, Method::GET, &label_url, None, None)
        .await
        .expect("label");
    assert_eq!(
        label,
        json!({"ean": "3560070123452", "tested_by_community": true, "review_count": 2, "average_rating": 5.0})
    );
}
