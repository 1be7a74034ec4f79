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
    let res = fetch(
        c.post(server.url("/contests/grand-jeu-lancement/draw"))
            .bearer_auth(&marketing),
    )
    .await
    .expect("draw");
    assert_eq!(res.status, 409, "not before close");

    let wait =
        std::time::Duration::from_secs(closes_in as u64 + 1).saturating_sub(started.elapsed());
    tokio::time::sleep(wait).await;
    let res = fetch(
        c.post(server.url("/contests/grand-jeu-lancement/draw"))
            .bearer_auth(&marketing),
    )
    .await
    .expect("draw");
    assert_eq!(res.status, 200);
    let drawn: Value = res.json();
    assert_eq!(drawn["proof"]["entry_count"], json!(4));
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
        .arg("--server")
        .arg(server.url(""))
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
        .arg("--server")
        .arg(server.url(""))
        .output()
        .expect("verify");
    assert!(!out.status.success());
    // Winners are emailed.
    let mailed = eventually(10, || {
        let (c, url) = (c.clone(), server.url("/local/mailbox"));
        async move {
            let v: Value = match fetch(c.get(url)).await {
                Ok(r) => r.json(),
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
    let res = fetch(
        c.post(server.url("/product-tests/test-yaourt-brebis/selection"))
            .bearer_auth(&marketing),
    )
    .await
    .expect("select");
    assert_eq!(res.status, 200);
    let sel: Value = res.json();
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

// The `community` CLI for marketing and operations: validate, apply (local
// store and DynamoDB on moto), invites.

/// Runs the CLI from the workspace root with extra environment.
fn cli(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(root())
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .env_remove("TABLE_NAME")
        .env_remove("COMMUNITY_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run the community CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A campaigns directory: the shipped files plus a contest `spring-2027`
/// open now.
fn spring_dir() -> tempfile::TempDir {
    let dir = campaigns_dir(3600);
    let contest =
        std::fs::read_to_string(root().join("infra/campaigns/contests/grand-jeu-lancement.toml"))
            .expect("read")
            .replace("id = \"grand-jeu-lancement\"", "id = \"spring-2027\"")
            .replace(
                "title = \"Le grand jeu de lancement de la communauté\"",
                "title = \"Le jeu du printemps\"",
            )
            .replace("2026-11-23T00:00:00Z", &ts(-60))
            .replace("2027-01-31T23:59:59Z", &ts(7200));
    std::fs::write(dir.path().join("contests/spring-2027.toml"), contest).expect("write");
    dir
}

#[test]
fn validate_passes_on_the_shipped_files_and_names_file_and_field_on_broken_ones() {
    let (ok, out, err) = cli(&["campaigns", "validate", "infra/campaigns"], &[]);
    assert!(ok, "{err}");
    assert!(out.contains("all valid"), "{out}");
    // Default directory: infra/campaigns.
    assert!(cli(&["campaigns", "validate"], &[]).0);

    let dir = spring_dir();
    let path = dir.path().join("contests/spring-2027.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    let text: Vec<&str> = text.lines().filter(|l| !l.starts_with("title =")).collect();
    std::fs::write(&path, text.join("\n")).expect("write");
    let pt = dir.path().join("product-tests/test-yaourt-brebis.toml");
    let text = std::fs::read_to_string(&pt).expect("read");
    std::fs::write(&pt, text.replace("3560070123452", "3560070123457")).expect("write");
    let d = dir.path().display().to_string();
    let (ok, out, err) = cli(&["campaigns", "validate", &d], &[]);
    assert!(!ok, "{out}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.contains(&format!("{}: title: is required", path.display()).as_str()),
        "{err}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{}: ean: ", pt.display()))),
        "{err}"
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("error: 2 problem(s)")),
        "{err}"
    );
    assert!(
        !err.contains("panicked") && !err.contains("stack backtrace") && !err.contains("{ "),
        "plain words only: {err}"
    );
    // Applying a broken directory writes nothing.
    let data = tempfile::tempdir().expect("tempdir");
    let dd = data.path().display().to_string();
    let (ok, _, err) = cli(&["campaigns", "apply", &d, "--data-dir", &dd], &[]);
    assert!(!ok && err.contains("title: is required"), "{err}");
    assert!(!data.path().join("community.redb").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_dry_run_then_local_then_the_server_serves_the_contest() {
    let dir = spring_dir();
    let d = dir.path().display().to_string();
    let data = tempfile::tempdir().expect("tempdir");
    let dd = data.path().join("store");
    let dd_s = dd.display().to_string();

    let (ok, out, err) = cli(
        &[
            "campaigns",
            "apply",
            &d,
            "--target",
            "local",
            "--data-dir",
            &dd_s,
            "--dry-run",
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "+ contest spring-2027"), "{out}");
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert!(!dd.exists(), "a dry run creates no store");

    let (ok, out, err) = cli(
        &[
            "campaigns",
            "apply",
            &d,
            "--target",
            "local",
            "--data-dir",
            &dd_s,
        ],
        &[],
    );
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "+ contest spring-2027"), "{out}");
    let progress: Vec<&str> = out.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(progress.len(), 4, "{out}");
    assert!(
        progress[0].starts_with("[1/4] settings "),
        "the settings files are applied first: {out}"
    );
    assert!(progress[3].starts_with("[4/4] "), "{out}");

    // Changed title: shown old → new; nothing else changes.
    let path = dir.path().join("contests/spring-2027.toml");
    let text = std::fs::read_to_string(&path).expect("read");
    std::fs::write(
        &path,
        text.replace("Le jeu du printemps", "Le grand jeu du printemps"),
    )
    .expect("write");
    let (ok, out, err) = cli(
        &["campaigns", "apply", &d, "--data-dir", &dd_s, "--dry-run"],
        &[],
    );
    assert!(ok, "{err}");
    assert!(
        out.lines().any(|l| l
            == "~ contest spring-2027: title \"Le jeu du printemps\" → \"Le grand jeu du printemps\""),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l == "= contest grand-jeu-lancement"),
        "{out}"
    );
    assert!(
        out.contains("1 to apply (0 new, 1 changed), 3 unchanged"),
        "{out}"
    );

    // The server (started on the same data) serves the applied contest; the
    // CLI cannot open its store meanwhile and says why.
    let server = Server::start(&dd);
    let (ok, _, err) = cli(&["campaigns", "apply", &d, "--data-dir", &dd_s], &[]);
    assert!(!ok);
    assert!(
        err.contains("locked by a running local server: stop the server"),
        "{err}"
    );
    let c = client();
    let (st, body) = send(
        &c,
        Method::GET,
        &server.url("/contests/spring-2027"),
        None,
        None,
    )
    .await
    .expect("get");
    assert_eq!(st, 200, "{body}");
    assert_eq!(body["title"], "Le jeu du printemps");
    assert_eq!(body["status"], "open");
    server.stop();
}

fn moto_endpoint() -> Option<String> {
    match std::env::var("COMMUNITY_TEST_DYNAMODB_ENDPOINT") {
        Ok(e) => Some(e),
        Err(_) => {
            assert!(
                std::env::var("COMMUNITY_REQUIRE_MOTO").map_or(true, |v| v != "1"),
                "COMMUNITY_REQUIRE_MOTO=1 but COMMUNITY_TEST_DYNAMODB_ENDPOINT is not set"
            );
            eprintln!("skipping: COMMUNITY_TEST_DYNAMODB_ENDPOINT is not set (run ./scripts/test)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_and_invites_on_aws_against_moto() {
    use community::store::Table;
    let Some(endpoint) = moto_endpoint() else {
        return;
    };
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    let name = format!("cli-{}", ulid::Ulid::new().to_string().to_lowercase());
    community::store::dynamo::create_table(&client, &name)
        .await
        .expect("create table on moto");
    let table = community::store::dynamo::DynamoTable::new(client, name.clone());
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "eu-west-3"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let dir = spring_dir();
    let d = dir.path().display().to_string();

    let (ok, out, err) = cli(
        &[
            "campaigns",
            "apply",
            &d,
            "--target",
            "aws",
            "--table",
            &name,
            "--dry-run",
        ],
        &env,
    );
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l == "+ contest spring-2027"), "{out}");
    assert!(table
        .get(&community::campaigns::contest_key("spring-2027"), true)
        .await
        .expect("get")
        .is_none());

    // The table from TABLE_NAME, as the functions read it.
    let mut env_t = env.to_vec();
    env_t.push(("TABLE_NAME", name.as_str()));
    let (ok, out, err) = cli(&["campaigns", "apply", &d, "--target", "aws"], &env_t);
    assert!(ok, "{err}");
    assert!(out.contains("[4/4] "), "{out}");
    let item = table
        .get(&community::campaigns::contest_key("spring-2027"), true)
        .await
        .expect("get")
        .expect("applied");
    assert_eq!(item["config"]["title"], "Le jeu du printemps");
    assert!(item["seed_hash"].as_str().is_some_and(|h| h.len() == 64));
    // The settings files too, where the functions read them at run time.
    let applied = community::live::read(&table).await.expect("read");
    assert!(applied
        .files
        .is_some_and(|f| f.community.contains("vote_threshold")));
    assert_eq!(
        applied.launch.map(|l| l.mode),
        Some(community::live::LaunchMode::Public)
    );
    // And the launch command on the same table.
    let (ok, out, err) = cli(&["launch", "soft", "--target", "aws"], &env_t);
    assert!(ok && out.contains("done:"), "{out}{err}");
    let applied = community::live::read(&table).await.expect("read");
    assert_eq!(
        applied.launch.map(|l| l.mode),
        Some(community::live::LaunchMode::Soft)
    );
    let (ok, out, _) = cli(
        &["campaigns", "apply", &d, "--target", "aws", "--dry-run"],
        &env_t,
    );
    assert!(
        ok && out.contains("0 to apply (0 new, 0 changed), 4 unchanged"),
        "{out}"
    );

    // Invites on the table; a bad cohort is refused in words.
    let (ok, out, err) = cli(
        &[
            "invites",
            "create",
            "--cohort",
            "panel",
            "--count",
            "3",
            "--max-uses",
            "2",
            "--target",
            "aws",
            "--table",
            &name,
        ],
        &env,
    );
    assert!(ok, "{err}");
    let codes: Vec<&str> = out.lines().collect();
    assert_eq!(codes.len(), 3, "{out}");
    for code in &codes {
        let inv = table
            .get(&community::members::invite_key(code), true)
            .await
            .expect("get")
            .expect("invite stored");
        assert_eq!(inv["cohort"], "panel");
        assert_eq!(inv["max_uses"], 2);
    }
    let (ok, _, err) = cli(
        &[
            "invites", "create", "--cohort", "Panel!", "--target", "aws", "--table", &name,
        ],
        &env,
    );
    assert!(!ok && err.contains("--cohort:"), "{err}");
    // A table that does not exist.
    let (ok, _, err) = cli(
        &[
            "campaigns",
            "apply",
            &d,
            "--target",
            "aws",
            "--table",
            "no-such-table",
        ],
        &env,
    );
    assert!(!ok && err.contains("no-such-table does not exist"), "{err}");
}

/// `community ambassadors run --target local` scores the members from the
/// activity the server's pipeline recorded, flags the top ones on their
/// profiles (seen by the server after restart), and a second run writes
/// nothing.
#[tokio::test]
async fn the_cli_runs_the_ambassadors_scoring_on_the_local_store() {
    let data = tempfile::tempdir().expect("tempdir");
    let server = Server::start(data.path());
    let c = client();
    for who in ["alice", "bob"] {
        join(&c, &server, who).await;
    }
    // Ten ideas weigh 10 × 20 = 200 (the shipped min_score): Alice qualifies.
    for i in 0..10 {
        let body = json!({"theme": "environment", "title": format!("Idée numéro {i}"),
                          "body": "Des sacs réutilisables consignés dans tous les magasins."});
        let (s, b) = send(
            &c,
            Method::POST,
            &server.url("/ideas"),
            Some("alice"),
            Some(&body),
        )
        .await
        .expect("idea");
        assert_eq!(s, 201, "{b}");
    }
    let marketing = token("mkt", &["marketing"]);
    let counted = eventually(20, || {
        let (c, url, t) = (c.clone(), server.url("/insights"), marketing.clone());
        async move {
            let Ok(r) = fetch(c.get(url).bearer_auth(t)).await else {
                return false;
            };
            let v: Value = r.json();
            v["ideas"]["total"] == json!(10)
        }
    })
    .await;
    assert!(counted, "the insights consumer counted the ideas");
    server.stop();

    let run = || {
        std::process::Command::new(BIN)
            .current_dir(root())
            .args(["ambassadors", "run", "--target", "local", "--data-dir"])
            .arg(data.path())
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run the CLI")
    };
    let out = run();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 ambassador(s): 1 newly flagged"),
        "{stdout}"
    );
    let again = run();
    let stdout = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.status.success());
    assert!(stdout.contains("0 item(s) written"), "{stdout}");

    let server = Server::start(data.path());
    let (s, alice) = send(
        &c,
        Method::GET,
        &server.url("/members/me"),
        Some("alice"),
        None,
    )
    .await
    .expect("me");
    assert_eq!(s, 200);
    assert_eq!(alice["ambassador"], true, "{alice}");
    assert_eq!(alice["level"], "bronze", "{alice}");
    let (_, bob) = send(
        &c,
        Method::GET,
        &server.url("/members/me"),
        Some("bob"),
        None,
    )
    .await
    .expect("me");
    assert_eq!(bob["ambassador"], false, "{bob}");
    server.stop();
}
