//! Vote benchmark: drives `PUT /ideas/{id}/vote` on the release local
//! server (the `community` binary; durable embedded store) with distinct voters, and, in the same
//! run and with the same load generator, a bare axum route in a separate
//! process. Prints throughput, latency percentiles and the ratio.
//!
//! Run with `./scripts/bench-votes` (or `cargo bench -p local --bench votes`).
//! Settings: BENCH_VOTERS (default 20000), BENCH_CONCURRENCY (64),
//! BENCH_SECONDS (10).

use axum::routing::put;
use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts a child process and waits for it to print "listening on http://…".
fn spawn(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines.next().expect("child exited").expect("read");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    (child, base)
}

/// The baseline: a bare axum route answering a vote-shaped body.
async fn baseline_server() {
    let app = axum::Router::new().route(
        "/ideas/{id}/vote",
        put(|| async {
            axum::Json(json!({"idea_id": "01JD0000000000000000000000", "voted": true, "votes": 1}))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!(
        "baseline listening on http://{}",
        listener.local_addr().expect("addr")
    );
    axum::serve(listener, app).await.expect("serve");
}

struct Run {
    ok: usize,
    errors: usize,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

/// Sends one PUT per token (distinct voters), `concurrency` at a time, for at
/// most `seconds`.
async fn drive(
    client: &reqwest::Client,
    url: &str,
    tokens: &[String],
    concurrency: usize,
    seconds: u64,
) -> Run {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let errors = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut latencies: Vec<Duration> = stream::iter(tokens.iter())
        .take_while(|_| futures::future::ready(Instant::now() < deadline))
        .map(|t| {
            let (client, errors) = (client.clone(), errors.clone());
            async move {
                let t0 = Instant::now();
                match client.put(url).bearer_auth(t).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        Some(t0.elapsed())
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            }
        })
        .buffer_unordered(concurrency)
        .filter_map(futures::future::ready)
        .collect()
        .await;
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort();
    Run {
        ok: latencies.len(),
        errors: errors.load(Ordering::Relaxed),
        seconds,
        latencies,
    }
}

#[tokio::main]
async fn main() {
    if std::env::var("BENCH_BASELINE_SERVER").is_ok() {
        return baseline_server().await;
    }
    let voters = env_num("BENCH_VOTERS", 20_000);
    let concurrency = env_num("BENCH_CONCURRENCY", 64);
    let seconds = env_num("BENCH_SECONDS", 10) as u64;
    let dir = tempfile::tempdir().expect("tempdir");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency * 2)
        .build()
        .expect("client");

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_community"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("COMMUNITY_DATA_DIR", dir.path())
        .env("COMMUNITY_ADDR", "127.0.0.1:0")
        .env("COMMUNITY_LOG", "error")
        .env("COMMUNITY_RATE_LIMITS", "off");
    let (mut server, base) = spawn(cmd);

    let tokens: Vec<String> = (0..voters)
        .map(|i| {
            local::auth::sign(
                local::auth::DEFAULT_SECRET,
                &format!("voter-{i}"),
                None,
                &[],
                3600,
            )
            .expect("sign")
        })
        .collect();
    eprintln!("signing up {voters} members…");
    let signup = |t: String, i: usize| {
        let (client, url) = (client.clone(), format!("{base}/members"));
        async move {
            let body = json!({"display_name": format!("Votant {i}"), "email": format!("v{i}@example.fr"),
                              "accept_terms_version": "2026-11", "email_opt_in": false});
            client
                .post(url)
                .bearer_auth(t)
                .json(&body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    let created: usize = stream::iter(tokens.iter().cloned().enumerate())
        .map(|(i, t)| signup(t, i))
        .buffer_unordered(concurrency)
        .filter(|s| futures::future::ready(*s == 201))
        .count()
        .await;
    assert_eq!(created, voters, "every benchmark member signed up");
    let idea: Value = client
        .post(format!("{base}/ideas"))
        .bearer_auth(&tokens[0])
        .json(
            &json!({"theme": "shopping", "title": "Idée de référence du banc d'essai",
                      "body": "Une idée qui reçoit beaucoup de votes en peu de temps."}),
        )
        .send()
        .await
        .expect("idea")
        .json()
        .await
        .expect("json");
    let id = idea["id"].as_str().expect("id").to_owned();

    let mut bcmd = Command::new(std::env::current_exe().expect("exe"));
    bcmd.env("BENCH_BASELINE_SERVER", "1");
    let (mut baseline, bbase) = spawn(bcmd);

    // Warm both up, then measure the baseline and the vote route back to back.
    let warm: Vec<String> = tokens.iter().take(200).cloned().collect();
    drive(
        &client,
        &format!("{bbase}/ideas/{id}/vote"),
        &warm,
        concurrency,
        5,
    )
    .await;
    let base_run = drive(
        &client,
        &format!("{bbase}/ideas/{id}/vote"),
        &tokens,
        concurrency,
        seconds,
    )
    .await;
    let vote_run = drive(
        &client,
        &format!("{base}/ideas/{id}/vote"),
        &tokens,
        concurrency,
        seconds,
    )
    .await;

    // The count is aggregated from the vote records' change feed in
    // batches (docs/architecture.md "Counting votes"): it trails the last
    // acknowledged vote by the aggregation delay. Read it until it has
    // caught up, at most 30 s.
    let ended = Instant::now();
    let counted = loop {
        let counted: Value = client
            .get(format!("{base}/ideas/{id}"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if counted["votes"].as_u64() == Some(vote_run.ok as u64)
            || ended.elapsed() > Duration::from_secs(30)
        {
            break counted;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let converged = ended.elapsed();
    let _ = baseline.kill();
    let _ = server.kill();

    println!("vote benchmark: {voters} members, {concurrency} concurrent requests, ≤{seconds}s per run, 2-core machine");
    println!(
        "{:<34} {:>10} {:>9} {:>9} {:>9} {:>7}",
        "route", "req/s", "p50 ms", "p99 ms", "max ms", "errors"
    );
    for (name, r) in [
        ("bare axum PUT (baseline)", &base_run),
        ("PUT /ideas/{id}/vote (local)", &vote_run),
    ] {
        println!(
            "{:<34} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            name,
            r.rate(),
            r.pct(0.50),
            r.pct(0.99),
            r.pct(1.0),
            r.errors
        );
    }
    println!(
        "ratio votes/s ÷ baseline req/s: {:.3}",
        vote_run.rate() / base_run.rate()
    );
    println!(
        "p99 ratio vote ÷ baseline: {:.1}x",
        vote_run.pct(0.99) / base_run.pct(0.99)
    );
    println!(
        "distinct votes acknowledged: {}, idea count after the run: {} (read {} ms after the last vote)",
        vote_run.ok,
        counted["votes"],
        converged.as_millis()
    );
    assert_eq!(
        counted["votes"].as_u64(),
        Some(vote_run.ok as u64),
        "the count is exact once aggregated (30 s at most)"
    );
}
