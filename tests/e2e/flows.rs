//! Sign-up → idea → 300 concurrent voters, restart, docs and tokens.

use crate::support::*;
use futures::stream::{self, StreamExt};
use rand::seq::SliceRandom;
use reqwest::Method;
use serde_json::{json, Value};

/// The idea page's count once the aggregator caught up with `want`, or
/// the count it shows after 10 s.
async fn idea_votes_reach(c: &reqwest::Client, s: &Server, id: &str, want: i64) -> i64 {
    let mut got = -1;
    for _ in 0..200 {
        let (st, v) = send(c, Method::GET, &s.url(&format!("/ideas/{id}")), None, None)
            .await
            .expect("get idea");
        assert_eq!(st, 200);
        got = v["votes"].as_i64().unwrap_or(-1);
        if got == want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    got
}

async fn listed_votes(c: &reqwest::Client, s: &Server, id: &str) -> Option<i64> {
    let (_, v) = send(
        c,
        Method::GET,
        &s.url("/ideas?sort=top&limit=5"),
        None,
        None,
    )
    .await
    .ok()?;
    v["items"]
        .as_array()?
        .iter()
        .find(|i| i["id"] == json!(id))
        .and_then(|i| i["votes"].as_i64())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_hundred_voters_converge_exactly_and_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = client();

    join(&c, &server, "author").await;
    let idea = json!({"theme": "shopping", "title": "Des caisses sans attente le samedi",
                      "body": "Ouvrir plus de caisses automatiques le samedi matin, quand les files sont longues."});
    let (st, created) = send(
        &c,
        Method::POST,
        &server.url("/ideas"),
        Some("author"),
        Some(&idea),
    )
    .await
    .expect("post idea");
    assert_eq!(st, 201, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();

    let members: Vec<String> = (0..300).map(|i| format!("voter-{i:03}")).collect();
    let statuses: Vec<u16> = stream::iter(members.clone())
        .map(|m| {
            let (c, url) = (c.clone(), server.url("/members"));
            async move {
                send(&c, Method::POST, &url, Some(&m), Some(&sign_up_body(&m)))
                    .await
                    .expect("sign up")
                    .0
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 201), "sign-ups: {statuses:?}");

    // Every member votes once, 10% of them a second time, all at once, in random order.
    let mut requests: Vec<String> = members.clone();
    requests.extend(members.iter().step_by(10).cloned());
    requests.shuffle(&mut rand::rng());
    let vote_url = server.url(&format!("/ideas/{id}/vote"));
    let results: Vec<(u16, Value)> = stream::iter(requests)
        .map(|m| {
            let (c, url) = (c.clone(), vote_url.clone());
            async move {
                send(&c, Method::PUT, &url, Some(&m), None)
                    .await
                    .expect("vote")
            }
        })
        .buffer_unordered(300)
        .collect()
        .await;
    for (st, body) in &results {
        assert_eq!(*st, 200, "{body}");
        assert_eq!(body["voted"], true);
    }
    // A response counts the vote it recorded (a repeat may come before the
    // aggregator counted the first); the idea's page converges to the
    // number of distinct voters once the aggregator has read them.
    assert!(results.iter().all(|(_, b)| b["votes"].as_i64().is_some()));
    assert_eq!(idea_votes_reach(&c, &server, &id, 300).await, 300);
    assert!(
        wait_listed(&c, &server, &id, 300).await,
        "the list's roll-up converges to 300"
    );

    // 25 members withdraw (one of them twice).
    let mut leaving: Vec<String> = members.iter().take(25).cloned().collect();
    leaving.push(members[0].clone());
    for m in &leaving {
        let (st, body) = send(&c, Method::DELETE, &vote_url, Some(m), None)
            .await
            .expect("withdraw");
        assert_eq!(st, 200, "{body}");
        assert_eq!(body["voted"], false);
    }
    assert_eq!(idea_votes_reach(&c, &server, &id, 275).await, 275);
    assert!(
        wait_listed(&c, &server, &id, 275).await,
        "the list's roll-up follows withdrawals"
    );

    // Restart on the same data directory: everything is still there.
    server.stop();
    let server = Server::start(dir.path());
    assert_eq!(idea_votes_reach(&c, &server, &id, 275).await, 275);
    assert_eq!(listed_votes(&c, &server, &id).await, Some(275));
    for m in members.iter().step_by(37) {
        let (st, me) = send(&c, Method::GET, &server.url("/members/me"), Some(m), None)
            .await
            .expect("me");
        assert_eq!((st, me["id"].clone()), (200, json!(m)));
    }
    let vote_url = server.url(&format!("/ideas/{id}/vote"));
    let (st, _) = send(&c, Method::PUT, &vote_url, Some(&members[0]), None)
        .await
        .expect("vote again");
    assert_eq!(st, 200);
    assert_eq!(idea_votes_reach(&c, &server, &id, 276).await, 276);
}

/// Polls the top list until it shows the idea with `want` votes.
async fn wait_listed(c: &reqwest::Client, s: &Server, id: &str, want: i64) -> bool {
    eventually(
        10,
        || async move { listed_votes(c, s, id).await == Some(want) },
    )
    .await
}

#[tokio::test]
async fn docs_openapi_and_every_documented_route_is_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = client();
    let spec: Value = fetch(c.get(server.url("/openapi.json")))
        .await
        .expect("get")
        .json();
    assert_eq!(
        spec["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    let page = fetch(c.get(server.url("/docs")))
        .await
        .expect("docs")
        .text();
    assert!(
        page.contains("/openapi.json"),
        "the docs page renders the spec"
    );
    let paths = spec["paths"].as_object().expect("paths");
    assert!(paths.len() >= 9);
    let t = token("prober", &[]);
    for (path, ops) in paths {
        let concrete = path.replace("{id}", "01JD0000000000000000000000");
        for method in ops.as_object().expect("ops").keys() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let res = fetch(
                c.request(m.clone(), server.url(&concrete))
                    .bearer_auth(&t)
                    .json(&json!({})),
            )
            .await
            .expect("send");
            let status = res.status;
            let body: Value = res.json();
            assert_ne!(
                body["type"],
                json!("/problems/no-route"),
                "{method} {path} is documented but not served"
            );
            assert_ne!(status, 405, "{method} {path}");
            assert!(status < 500, "{method} {path} answered {status}: {body}");
        }
    }
    // And an undocumented route is a problem+json 404.
    let res = fetch(c.get(server.url("/nowhere"))).await.expect("send");
    assert_eq!(res.status, 404);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
}

#[tokio::test]
async fn the_token_command_prints_a_token_the_server_accepts() {
    let out = std::process::Command::new(BIN)
        .args([
            "token",
            "--sub",
            "alice",
            "--email",
            "alice@example.com",
            "--groups",
            "committee,marketing",
        ])
        .output()
        .expect("run token");
    assert!(out.status.success());
    let t = String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned();
    assert_eq!(t.split('.').count(), 3, "a JWT");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = client();
    let res = fetch(
        c.post(server.url("/members"))
            .bearer_auth(&t)
            .json(&sign_up_body("alice")),
    )
    .await
    .expect("send");
    assert_eq!(res.status, 201);
    // A token signed with another secret is refused, with the reason.
    let forged = local::auth::sign("not-the-secret", "alice", None, &[], 3600).expect("sign");
    let res = fetch(c.get(server.url("/members/me")).bearer_auth(&forged))
        .await
        .expect("send");
    assert_eq!(res.status, 401);
    let body: Value = res.json();
    assert!(body["detail"]
        .as_str()
        .unwrap_or_default()
        .contains("not valid"));
}

#[tokio::test]
async fn soft_launch_with_invites_created_by_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = std::process::Command::new(BIN)
        .current_dir(root())
        .env("COMMUNITY_DATA_DIR", dir.path())
        .args(["invites", "create", "--cohort", "panel", "--count", "2"])
        .output()
        .expect("invites");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codes: Vec<String> = String::from_utf8(out.stdout)
        .expect("utf8")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 2);
    let server = Server::start_with(dir.path(), &[("COMMUNITY_INVITE_ONLY", "true")]);
    let c = client();
    let (st, _) = send(
        &c,
        Method::POST,
        &server.url("/members"),
        Some("zoe"),
        Some(&sign_up_body("zoe")),
    )
    .await
    .expect("send");
    assert_eq!(st, 403);
    let mut body = sign_up_body("zoe");
    body["invite_code"] = json!(codes[1]);
    let (st, me) = send(
        &c,
        Method::POST,
        &server.url("/members"),
        Some("zoe"),
        Some(&body),
    )
    .await
    .expect("send");
    assert_eq!((st, me["cohort"].clone()), (201, json!("panel")));
}

/// Issue 3's acceptance: with a threshold of 5, five votes put the idea in
/// the review queue within seconds, a committee token rejects it with a
/// reason, and the author's rejection mail with that reason is in the mailbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_votes_reach_the_committee_and_the_author_is_told_why() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_with(dir.path(), &[("COMMUNITY_VOTE_THRESHOLD", "5")]);
    let c = client();
    join(&c, &server, "autrice").await;
    let idea = json!({"theme": "children", "title": "Un coin lecture pour les enfants",
                      "body": "Un petit coin lecture près des caisses pour patienter."});
    let (_, created) = send(
        &c,
        Method::POST,
        &server.url("/ideas"),
        Some("autrice"),
        Some(&idea),
    )
    .await
    .expect("idea");
    let id = created["id"].as_str().expect("id").to_owned();
    for i in 0..5 {
        let v = format!("votant-{i}");
        send(
            &c,
            Method::POST,
            &server.url("/members"),
            Some(&v),
            Some(&sign_up_body(&v)),
        )
        .await
        .expect("join");
        let (st, _) = send(
            &c,
            Method::PUT,
            &server.url(&format!("/ideas/{id}/vote")),
            Some(&v),
            None,
        )
        .await
        .expect("vote");
        assert_eq!(st, 200);
    }
    let committee = token("claire", &["committee"]);
    let in_queue = eventually(10, || {
        let (c, url, t, id) = (
            c.clone(),
            server.url("/review-queue"),
            committee.clone(),
            id.clone(),
        );
        async move {
            let v: Value = match fetch(c.get(url).bearer_auth(t)).await {
                Ok(r) => r.json(),
                Err(_) => return false,
            };
            v["items"]
                .as_array()
                .is_some_and(|a| a.iter().any(|i| i["id"] == json!(id)))
        }
    })
    .await;
    assert!(in_queue, "the idea reached the review queue");
    // A member without the committee group may not decide.
    let (st, _) = send(
        &c,
        Method::POST,
        &server.url(&format!("/ideas/{id}/decision")),
        Some("autrice"),
        Some(&json!({"outcome": "rejected", "reason": "Je décide moi-même."})),
    )
    .await
    .expect("send");
    assert_eq!(st, 403);
    let reason = "Un coin lecture gêne la circulation près des caisses aux heures d'affluence.";
    let res = fetch(
        c.post(server.url(&format!("/ideas/{id}/decision")))
            .bearer_auth(&committee)
            .json(&json!({"outcome": "rejected"})),
    )
    .await
    .expect("send");
    assert_eq!(res.status, 422, "a decision needs its reason");
    let res = fetch(
        c.post(server.url(&format!("/ideas/{id}/decision")))
            .bearer_auth(&committee)
            .json(&json!({"outcome": "rejected", "reason": reason})),
    )
    .await
    .expect("send");
    assert_eq!(res.status, 200);
    let told = eventually(10, || {
        let (c, url) = (c.clone(), server.url("/local/mailbox"));
        async move {
            let v: Value = match fetch(c.get(url)).await {
                Ok(r) => r.json(),
                Err(_) => return false,
            };
            v["items"].as_array().is_some_and(|a| {
                a.iter().any(|m| {
                    m["to"] == json!("autrice@example.fr")
                        && m["subject"]
                            .as_str()
                            .is_some_and(|s| s.contains("n'a pas été retenue"))
                        && m["text"].as_str().is_some_and(|t| t.contains(reason))
                })
            })
        }
    })
    .await;
    assert!(
        told,
        "the author's rejection mail, with the reason, is in the mailbox"
    );
}

/// The hard launch in one command, on the binary: a soft launch is private
/// (anonymous reads 401, `/community` open), `launch public --dry-run`
/// writes nothing, `launch public` opens every read.
#[tokio::test]
async fn launch_public_opens_a_private_soft_launch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .current_dir(root())
            .env("COMMUNITY_DATA_DIR", dir.path())
            .env_remove("COMMUNITY_INVITE_ONLY")
            .args(args)
            .output()
            .expect("run the CLI");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf8")
    };
    let out = cli(&["launch", "soft"]);
    assert!(out.contains("done:") && out.contains("soft"), "{out}");
    let c = client();
    let server = Server::start(dir.path());
    let (st, _) = send(&c, Method::GET, &server.url("/ideas"), None, None)
        .await
        .expect("send");
    assert_eq!(st, 401, "a soft launch is private");
    let (st, community) = send(&c, Method::GET, &server.url("/community"), None, None)
        .await
        .expect("send");
    assert_eq!((st, community["launch"].clone()), (200, json!("soft")));
    server.stop();

    let out = cli(&["launch", "public", "--dry-run"]);
    assert!(
        out.contains("→ public") && out.contains("dry run: nothing written"),
        "{out}"
    );
    let out = cli(&["launch", "public", "--dry-run"]);
    assert!(out.contains(": soft ("), "the dry run wrote nothing: {out}");
    let out = cli(&["launch", "public"]);
    assert!(out.contains("done:"), "{out}");
    assert!(cli(&["launch", "public"]).contains("already public"));

    let server = Server::start(dir.path());
    let (st, _) = send(&c, Method::GET, &server.url("/ideas"), None, None)
        .await
        .expect("send");
    assert_eq!(st, 200, "open after launch public");
    let (_, community) = send(&c, Method::GET, &server.url("/community"), None, None)
        .await
        .expect("send");
    assert_eq!(community["launch"], "public");
    server.stop();
}
