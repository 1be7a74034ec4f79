//! Per-member rate limits on idea posting (and the limiter's other actions),
//! through the Lambda entry.

use community::error::Error;
use community::ratelimit::{self, Action, Limit};
use community::testing::{call, embedded_app, idea_body, join, member};

fn limit(s: &mut community::config::Settings, a: Action, max: i64, per_secs: i64) {
    s.abuse.rate_limits.enabled = true;
    s.abuse
        .rate_limits
        .limits
        .insert(a.as_str(), Limit { max, per_secs });
}

/// Sleeps until a fresh window of `per_secs` seconds starts (plus a margin),
/// so a test's requests fall in one window.
async fn window_start(per_secs: i64) {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let left = per_secs * 1000 - now_ms.rem_euclid(per_secs * 1000);
    tokio::time::sleep(std::time::Duration::from_millis(left as u64 + 50)).await;
}

#[tokio::test]
async fn over_the_limit_is_429_with_retry_after_then_it_recovers() {
    let (app, _d) = embedded_app(|s| limit(s, Action::Idea, 2, 3));
    let alice = member("alice");
    join(&app, &alice).await;
    let r = ideas::router(app);
    window_start(3).await;
    for _ in 0..2 {
        let res = call(&r, "POST", "/ideas", Some(&alice), Some(idea_body())).await;
        assert_eq!(res.status, 201, "{}", res.body);
    }
    let res = call(&r, "POST", "/ideas", Some(&alice), Some(idea_body())).await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert_eq!(res.body["type"], "/problems/rate-limited");
    let wait: u64 = res
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=3).contains(&wait), "{wait}");
    // After the window, Alice may post again.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let res = call(&r, "POST", "/ideas", Some(&alice), Some(idea_body())).await;
    assert_eq!(res.status, 201, "recovered: {}", res.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twelve_concurrent_posts_against_a_limit_of_five_create_exactly_five() {
    let (app, _d) = embedded_app(|s| limit(s, Action::Idea, 5, 86_400));
    let alice = member("alice");
    join(&app, &alice).await;
    let r = ideas::router(app.clone());
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let r = r.clone();
            let alice = alice.clone();
            tokio::spawn(async move {
                call(&r, "POST", "/ideas", Some(&alice), Some(idea_body()))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        7,
        "{statuses:?}"
    );
    let list = call(&r, "GET", "/ideas?limit=100", None, None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(5));
}

#[tokio::test]
async fn comments_and_reports_are_limited_per_member_and_the_switch_turns_limits_off() {
    let (app, _d) = embedded_app(|s| {
        limit(s, Action::Comment, 2, 3600);
        limit(s, Action::Report, 1, 3600);
    });
    ratelimit::check(&app, "alice", Action::Comment)
        .await
        .expect("1");
    ratelimit::check(&app, "alice", Action::Comment)
        .await
        .expect("2");
    match ratelimit::check(&app, "alice", Action::Comment).await {
        Err(Error::RateLimited { retry_after }) => assert!((1..=3600).contains(&retry_after)),
        other => panic!("limited: {other:?}"),
    }
    ratelimit::check(&app, "bob", Action::Comment)
        .await
        .expect("bob's own window");
    ratelimit::check(&app, "alice", Action::Report)
        .await
        .expect("reports counted apart");
    assert!(matches!(
        ratelimit::check(&app, "alice", Action::Report).await,
        Err(Error::RateLimited { .. })
    ));
    // COMMUNITY_RATE_LIMITS=off (load tests) disables every limit.
    let (app, _d2) = embedded_app(|s| {
        limit(s, Action::Comment, 1, 3600);
        s.apply_env(|k| (k == "COMMUNITY_RATE_LIMITS").then(|| "off".into()))
            .expect("switch");
    });
    for _ in 0..5 {
        ratelimit::check(&app, "alice", Action::Comment)
            .await
            .expect("off");
    }
}

/// Comments go through the same limiter (trust.toml `[rate_limits] comments`).
#[tokio::test]
async fn comments_over_the_rate_limit_are_429() {
    let (app, _d) = embedded_app(|s| limit(s, Action::Comment, 2, 86_400));
    let alice = member("alice");
    join(&app, &alice).await;
    let r = ideas::router(app);
    let res = call(&r, "POST", "/ideas", Some(&alice), Some(idea_body())).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let path = format!("/ideas/{}/comments", res.body["id"].as_str().expect("id"));
    let body = || serde_json::json!({"body": "Bonne idée, je valide !"});
    for _ in 0..2 {
        let res = call(&r, "POST", &path, Some(&alice), Some(body())).await;
        assert_eq!(res.status, 201, "{}", res.body);
    }
    let res = call(&r, "POST", &path, Some(&alice), Some(body())).await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert!(res.header("retry-after").is_some());
    let list = call(&r, "GET", &path, None, None).await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(2));
}
