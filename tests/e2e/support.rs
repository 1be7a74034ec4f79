#![allow(dead_code)]

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_community");

/// The workspace root, so the server finds infra/campaigns as it would for a newcomer.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub struct Server {
    child: Option<Child>,
    pub base: String,
    pub data: PathBuf,
}

impl Server {
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &[])
    }

    pub fn start_with(data: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.current_dir(root())
            .env("COMMUNITY_DATA_DIR", data)
            .env("COMMUNITY_ADDR", "127.0.0.1:0")
            .env("COMMUNITY_LOG", "warn")
            // Load-style tests (kill -9 under write load) would hit the
            // per-member limits; a test may turn them back on with `envs`.
            .env("COMMUNITY_RATE_LIMITS", "off")
            .env_remove("COMMUNITY_INVITE_ONLY")
            .env_remove("COMMUNITY_VOTE_THRESHOLD")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the local server");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let base = loop {
            assert!(
                Instant::now() < deadline,
                "the server did not print its URL"
            );
            let line = lines
                .next()
                .expect("the server exited before listening")
                .expect("read");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Server {
            child: Some(child),
            base,
            data: data.to_path_buf(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Graceful stop (SIGTERM), as an operator would.
    pub fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("the server did not stop on SIGTERM");
        }
    }

    /// kill -9: no chance to flush or clean up.
    pub fn kill9(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub fn token(sub: &str, groups: &[&str]) -> String {
    let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
    local::auth::sign(
        local::auth::DEFAULT_SECRET,
        sub,
        Some(&format!("{sub}@example.fr")),
        &groups,
        3600,
    )
    .expect("sign")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

pub fn sign_up_body(name: &str) -> Value {
    json!({"display_name": name, "email": format!("{name}@example.fr"),
           "accept_terms_version": "2026-11", "email_opt_in": true})
}

/// Signs `sub` up (a member with the default body) and checks the 201.
pub async fn join(c: &reqwest::Client, server: &Server, sub: &str) {
    let (st, body) = send(
        c,
        reqwest::Method::POST,
        &server.url("/members"),
        Some(sub),
        Some(&sign_up_body(sub)),
    )
    .await
    .expect("sign up");
    assert_eq!(st, 201, "sign-up of {sub}: {body}");
}

/// Sends a request; returns (status, JSON body or Null). The response is
/// checked against docs/openapi.json ([`fetch`]).
pub async fn send(
    c: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    sub: Option<&str>,
    body: Option<&Value>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut rb = c.request(method, url);
    if let Some(s) = sub {
        rb = rb.bearer_auth(token(s, &[]));
    }
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let res = fetch(rb).await?;
    Ok((res.status, res.json()))
}

/// Checks a response against docs/openapi.json (`community::testing::contract`):
/// a status the operation does not document, a body that does not match its
/// schema or a wrong media type panics, naming the operation and where.
pub fn documented(method: &str, url: &str, status: u16, content_type: Option<&str>, body: &[u8]) {
    let path = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest.find('/').map_or("/", |i| &rest[i..]));
    community::testing::contract::assert_documented(method, path, status, content_type, body);
}

/// A response read whole, checked against docs/openapi.json.
pub struct Fetched {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub bytes: Vec<u8>,
}

impl Fetched {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The JSON body, or `null`.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.bytes).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Sends a request built with the client's builder, reads the response and
/// checks it against docs/openapi.json ([`documented`]).
pub async fn fetch(rb: reqwest::RequestBuilder) -> Result<Fetched, reqwest::Error> {
    let (c, req) = rb.build_split();
    let req = req?;
    let (method, url) = (req.method().as_str().to_owned(), req.url().to_string());
    let res = c.execute(req).await?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.bytes().await?.to_vec();
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok());
    documented(&method, &url, status, ct, &bytes);
    Ok(Fetched {
        status,
        headers,
        bytes,
    })
}

/// Polls until `f` is true or the time is up.
pub async fn eventually<F, Fut>(secs: u64, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
