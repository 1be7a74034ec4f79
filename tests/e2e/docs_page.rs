//! The `/docs` page as a browser shows it: headless Chromium loads it from
//! the local server, runs its script (which reads `/openapi.json`) and
//! dumps the DOM. Every route of the description is listed with its "Try
//! it" box, and the descriptions' Markdown is rendered (no backtick left,
//! `<code>` instead).
//!
//! Skipped, saying so, when no Chromium is installed, unless
//! `COMMUNITY_REQUIRE_CHROMIUM=1` (`./scripts/test` installs it and sets it).

use crate::support::*;
use serde_json::Value;
use std::time::Duration;

/// The Chromium binary: `COMMUNITY_CHROMIUM`, else the first of Debian's,
/// Ubuntu's and Google's names found on `PATH`.
fn chromium() -> Option<String> {
    if let Ok(c) = std::env::var("COMMUNITY_CHROMIUM") {
        return Some(c);
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
        .map(str::to_owned)
}

/// The page's DOM once its script ran (`--virtual-time-budget`: the dump
/// waits for the page's fetches and timers, up to 10 s of page time).
async fn rendered_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let run = tokio::process::Command::new(browser)
        .args([
            "--headless",
            // Root in CI and containers: no user namespace for the sandbox.
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(url)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("chromium answers within 2 minutes")
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 DOM")
}

/// `html` without the contents of its `<script>` elements (the page's
/// code and its JSON data are not what a reader sees).
fn without_scripts(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</script>") {
            Some(end) => rest = &rest[start + end + "</script>".len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn the_docs_page_lists_every_route_and_renders_markdown_in_a_browser() {
    let Some(browser) = chromium() else {
        assert!(
            std::env::var("COMMUNITY_REQUIRE_CHROMIUM").map_or(true, |v| v != "1"),
            "COMMUNITY_REQUIRE_CHROMIUM=1 but no chromium on PATH"
        );
        eprintln!(
            "skipping the /docs browser test: no chromium on PATH \
             (apt-get install -y chromium, or ./scripts/test which installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let spec: Value = fetch(client().get(server.url("/openapi.json")))
        .await
        .expect("get")
        .json();
    let dom = rendered_dom(&browser, &server.url("/docs")).await;
    let shown = without_scripts(&dom);
    assert!(
        !shown.contains("Could not load the API description"),
        "{shown}"
    );

    // Every route, as `METHOD path` on its entry, each with a Send button.
    let mut routes = Vec::new();
    for (path, ops) in spec["paths"].as_object().expect("paths") {
        for method in ops.as_object().expect("operations").keys() {
            if ["get", "put", "post", "delete", "patch", "head"].contains(&method.as_str()) {
                routes.push(format!("{} {path}", method.to_uppercase()));
            }
        }
    }
    assert!(routes.len() > 40, "{routes:?}");
    let missing: Vec<&String> = routes
        .iter()
        .filter(|r| !shown.contains(&format!(r#"data-route="{r}""#)))
        .collect();
    assert!(missing.is_empty(), "routes not on the page: {missing:?}");
    assert_eq!(
        shown.matches(r#"data-route=""#).count(),
        routes.len(),
        "one entry per route"
    );
    assert_eq!(
        shown.matches(">Send</button>").count(),
        routes.len(),
        "a Send button per route"
    );
    assert!(shown.contains(r#"id="token""#), "the bearer token input");
    assert!(shown.contains("<textarea"), "a JSON body field");

    // Markdown rendered: the backticks of the descriptions became <code>,
    // their lists <ul>, and none is left for the reader to see.
    for code in [
        "<code>Idempotency-Key</code>",
        "<code>POST /members</code>",
        "<code>application/problem+json</code>",
    ] {
        assert!(shown.contains(code), "{code} not rendered");
    }
    assert!(shown.contains("<strong>Scope:</strong>"));
    assert!(shown.contains("<ul>"));
    let chars: Vec<char> = shown.chars().collect();
    let ticks: Vec<String> = (0..chars.len())
        .filter(|&i| chars[i] == '`')
        .take(3)
        .map(|i| {
            chars[i.saturating_sub(60)..(i + 60).min(chars.len())]
                .iter()
                .collect()
        })
        .collect();
    assert!(ticks.is_empty(), "raw Markdown on the page: {ticks:?}");
}
