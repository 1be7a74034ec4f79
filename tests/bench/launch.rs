//! The launch-night benchmark (`scripts/bench-launch`): the prime-time TV
//! advertisement on the release local server, with the store as strict as
//! DynamoDB (transaction conflicts, per-partition throughput and, for a new
//! on-demand table, the table-level limit) and its capacity meter.
//!
//! Phases, each measured on its own (the meter is reset before and read
//! after the queues have drained, so every consumer a user action triggers
//! is counted with it):
//! 1. sign-ups, a ramp (concurrency 16 → 32 → 64 → 128), with welcome mails;
//! 2. the first wave of ideas;
//! 3. the spike: votes concentrated on a few hot ideas (Zipf, s = 1), the
//!    hottest crossing the committee threshold, mixed with public reads of
//!    the hot idea and of the home list (`GET /ideas?sort=top`);
//! 4. comments on the hot ideas;
//! 5. every member enters the launch contest (≥ 50,000 entries by default);
//! 6. marketing closes the contest (its file, re-applied at a restart),
//!    draws, and `community verify-draw` recomputes the draw.
//!
//! Per user action it prints write and read units, queue messages, function
//! invocations and $ per million actions at the prices of
//! tests/bench/prices.toml; conflicts and throttles per cause and per key;
//! p50/p99 per route; the age of each queue's oldest message during and
//! after each phase; the hot idea's count against its acknowledged voters;
//! how many times the threshold event fired; welcome mails sent once.
//!
//! Settings: BENCH_MEMBERS (50000), BENCH_IDEAS (700), BENCH_VOTES (100000),
//! BENCH_COMMENTS (5000), BENCH_CONCURRENCY (64), BENCH_PHASE_SECS (420: a
//! phase stops starting actions after it), BENCH_DRAIN_SECS (300: the
//! longest wait for the queues after a phase). A client retries 429 and 503
//! after Retry-After, at most 4 times, as the frontend does.

use futures::stream::{self, StreamExt};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CONTEST: &str = "grand-jeu-lancement";
const COMMITTEE: &str = "comite-bench@example.fr";
const THEMES: [&str; 5] = ["eat-well", "children", "loyalty", "environment", "shopping"];
const RELAY: &str = "relay (local stand-in for the stream)";

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------- prices

#[derive(serde::Deserialize)]
struct Prices {
    api_gateway: ApiPrices,
    lambda: LambdaPrices,
    dynamodb: DynamoPrices,
    sqs: SqsPrices,
    ses: SesPrices,
}
#[derive(serde::Deserialize)]
struct ApiPrices {
    http_per_million_requests: f64,
}
#[derive(serde::Deserialize)]
struct LambdaPrices {
    per_million_requests: f64,
    per_gb_second_arm64: f64,
    memory_mb: f64,
    relay_records_per_invocation: f64,
}
#[derive(serde::Deserialize)]
struct DynamoPrices {
    per_million_write_request_units: f64,
    per_million_read_request_units: f64,
}
#[derive(serde::Deserialize)]
struct SqsPrices {
    per_million_requests: f64,
}
#[derive(serde::Deserialize)]
struct SesPrices {
    per_thousand_emails: f64,
}

// ---------------------------------------------------------------- server

struct Server {
    child: Child,
    base: String,
}

fn start_server(data: &Path, campaigns: &Path) -> Server {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_community"));
    cmd.current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .env("COMMUNITY_DATA_DIR", data)
        .env("COMMUNITY_CAMPAIGNS_DIR", campaigns)
        .env("COMMUNITY_ADDR", "127.0.0.1:0")
        .env("COMMUNITY_LOG", "error")
        .env("COMMUNITY_COMMITTEE_EMAIL", COMMITTEE)
        .env("COMMUNITY_SCHEDULE_EVERY_SECS", "86400")
        // A new on-demand table at launch: DynamoDB's table-level limit too.
        .env("COMMUNITY_TABLE_LIMITS", "on")
        .env_remove("COMMUNITY_RATE_LIMITS")
        .env_remove("COMMUNITY_TXN_WINDOW_MS")
        .env_remove("COMMUNITY_PARTITION_LIMITS")
        .env_remove("COMMUNITY_VOTE_THRESHOLD")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = cmd.spawn().expect("spawn the community binary");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .expect("read");
        if let Some(rest) = line.split("listening on ").nth(1) {
            break rest.trim().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines.by_ref() {});
    Server { child, base }
}

fn ts(secs: i64) -> String {
    community::domain::format_ts(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

/// infra/campaigns with the launch contest open now (closing in
/// `closes_in` seconds). The files are copied on the first call only: the
/// server restarted at the end of the run reads the same files as at its
/// start, whatever was edited in infra/campaigns meanwhile (a run takes an
/// hour, and a binary built before an edit may not read the edited files).
fn write_campaigns(dir: &Path, root: &Path, closes_in: i64) {
    let src = root.join("infra/campaigns");
    let contest_src = dir.join(format!("{CONTEST}.toml.orig"));
    if !contest_src.exists() {
        for sub in ["contests", "product-tests"] {
            std::fs::create_dir_all(dir.join(sub)).expect("mkdir");
        }
        for f in ["community.toml", "points.toml", "trust.toml"] {
            std::fs::copy(src.join(f), dir.join(f)).expect("copy");
        }
        std::fs::copy(src.join(format!("contests/{CONTEST}.toml")), &contest_src).expect("copy");
    }
    let text = std::fs::read_to_string(&contest_src).expect("read");
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("opens_at") {
            out.push_str(&format!("opens_at = \"{}\"\n", ts(-3600)));
        } else if line.starts_with("closes_at") {
            out.push_str(&format!("closes_at = \"{}\"\n", ts(closes_in)));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(dir.join(format!("contests/{CONTEST}.toml")), out).expect("write");
}

// ---------------------------------------------------------------- load

#[derive(Default)]
struct RouteStats {
    /// User actions started (first attempts).
    issued: usize,
    /// Attempts answered 429 or 503 and sent again after Retry-After.
    retried: usize,
    latencies: Vec<Duration>,
    ok: usize,
    client_errors: usize,
    too_many: usize,
    server_errors: usize,
}

impl RouteStats {
    fn pct(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort();
        let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1000.0
    }
}

type Stats = Arc<Mutex<BTreeMap<&'static str, RouteStats>>>;

#[derive(Clone, Copy)]
enum Req {
    SignUp(usize),
    Idea(usize),
    Vote(usize, usize),
    ReadIdea(usize),
    ReadList,
    Comment(usize, usize),
    Enter(usize),
}

impl Req {
    fn route(self) -> &'static str {
        match self {
            Req::SignUp(_) => "POST /members",
            Req::Idea(_) => "POST /ideas",
            Req::Vote(..) => "PUT /ideas/{id}/vote",
            Req::ReadIdea(_) => "GET /ideas/{id}",
            Req::ReadList => "GET /ideas",
            Req::Comment(..) => "POST /ideas/{id}/comments",
            Req::Enter(_) => "POST /contests/{id}/entries",
        }
    }
}

struct World {
    client: reqwest::Client,
    base: String,
    tokens: Vec<String>,
    ideas: Mutex<Vec<String>>,
    stats: Stats,
    /// Members whose vote on the hot idea was acknowledged.
    hot_acked: Mutex<HashSet<usize>>,
}

impl World {
    /// User actions started on `route` so far.
    fn issued(&self, route: &str) -> usize {
        self.stats
            .lock()
            .expect("stats")
            .get(route)
            .map(|s| s.issued)
            .unwrap_or(0)
    }

    fn idea(&self, i: usize) -> String {
        self.ideas.lock().expect("ideas")[i].clone()
    }

    async fn send(&self, r: Req) {
        let b = &self.base;
        let c = &self.client;
        let req = match r {
            Req::SignUp(i) => c.post(format!("{b}/members")).bearer_auth(&self.tokens[i]).json(
                &json!({"display_name": format!("Membre {i}"), "email": format!("membre{i}@example.fr"),
                        "accept_terms_version": "2026-11", "email_opt_in": true}),
            ),
            Req::Idea(i) => c.post(format!("{b}/ideas")).bearer_auth(&self.tokens[i]).json(&json!({
                "theme": THEMES[i % THEMES.len()],
                "title": format!("Si j'étais le magasin, idée n°{i}"),
                "body": "Des paniers anti-gaspi à prix réduit en fin de journée, réservables depuis l'application."})),
            Req::Vote(m, idea) => c
                .put(format!("{b}/ideas/{}/vote", self.idea(idea)))
                .bearer_auth(&self.tokens[m]),
            Req::ReadIdea(idea) => c.get(format!("{b}/ideas/{}", self.idea(idea))),
            Req::ReadList => c.get(format!("{b}/ideas?sort=top")),
            Req::Comment(m, idea) => c
                .post(format!("{b}/ideas/{}/comments", self.idea(idea)))
                .bearer_auth(&self.tokens[m])
                .json(&json!({"body": format!("Très bonne idée, je signe ! ({m})")})),
            Req::Enter(m) => c
                .post(format!("{b}/contests/{CONTEST}/entries"))
                .bearer_auth(&self.tokens[m])
                .json(&json!({"answers": {"frequence": "Une fois par semaine",
                    "rayons": ["Bio", "Produits locaux"], "note-magasin": 4}})),
        };
        // A client retries 429 and 503 after Retry-After (at most 4 times):
        // the latency is the user's, first attempt to final answer.
        let t0 = Instant::now();
        let mut retried = 0;
        let (status, body) = loop {
            let Some(attempt) = req.try_clone() else {
                break (0, None);
            };
            match attempt.send().await {
                Ok(res) => {
                    let s = res.status().as_u16();
                    if (s == 429 || s == 503) && retried < 4 {
                        let wait = res
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<f64>().ok())
                            .unwrap_or(1.0)
                            .clamp(0.1, 2.0);
                        retried += 1;
                        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
                        continue;
                    }
                    break (s, res.bytes().await.ok());
                }
                Err(_) => break (0, None),
            }
        };
        let spent = t0.elapsed();
        if let (Req::Idea(_), 201, Some(body)) = (r, status, &body) {
            if let Some(id) = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
            {
                self.ideas.lock().expect("ideas").push(id);
            }
        }
        if let (Req::Vote(m, 0), 200) = (r, status) {
            self.hot_acked.lock().expect("acked").insert(m);
        }
        let mut stats = self.stats.lock().expect("stats");
        let s = stats.entry(r.route()).or_default();
        s.issued += 1;
        s.retried += retried;
        match status {
            200..=299 => {
                s.ok += 1;
                s.latencies.push(spent);
            }
            429 => s.too_many += 1,
            400..=499 => s.client_errors += 1,
            _ => s.server_errors += 1,
        }
    }

    async fn drive(self: &Arc<Self>, reqs: Vec<Req>, concurrency: usize, deadline: Instant) {
        stream::iter(reqs)
            .take_while(|_| futures::future::ready(Instant::now() < deadline))
            .map(|r| {
                let w = self.clone();
                async move { w.send(r).await }
            })
            .buffer_unordered(concurrency)
            .collect::<Vec<()>>()
            .await;
    }

    async fn get(&self, path: &str) -> Value {
        match self.client.get(format!("{}{path}", self.base)).send().await {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    }
}

// ---------------------------------------------------------------- queues

#[derive(Default, Clone)]
struct QueueAges {
    /// Per queue, the largest age of the oldest message seen (seconds) and
    /// the largest depth.
    during: BTreeMap<String, (f64, u64)>,
    after: BTreeMap<String, (f64, u64, u64)>,
    drained_in: f64,
    drained: bool,
}

fn sample_queues(q: &Value, into: &mut BTreeMap<String, (f64, u64)>) -> bool {
    let mut empty = true;
    for e in q["queues"].as_array().into_iter().flatten() {
        let name = e["queue"].as_str().unwrap_or("?").to_owned();
        let age = e["oldest_age_secs"].as_f64().unwrap_or(0.0);
        let n = e["messages"].as_u64().unwrap_or(0);
        empty &= n == 0;
        let slot = into.entry(name).or_default();
        slot.0 = slot.0.max(age);
        slot.1 = slot.1.max(n);
    }
    empty
}

/// Samples the queues every second while `running`.
fn watch_queues(w: Arc<World>, running: Arc<AtomicBool>) -> tokio::task::JoinHandle<QueueAges> {
    tokio::spawn(async move {
        let mut ages = QueueAges::default();
        while running.load(Ordering::Relaxed) {
            let q = w.get("/local/queues").await;
            sample_queues(&q, &mut ages.during);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        ages
    })
}

/// Waits until every queue is empty three polls in a row (the relay runs
/// every 20 ms), or `limit` passes.
async fn drain(w: &World, limit: Duration, ages: &mut QueueAges) {
    let t0 = Instant::now();
    let mut quiet = 0;
    while t0.elapsed() < limit {
        let q = w.get("/local/queues").await;
        if sample_queues(&q, &mut ages.during) {
            quiet += 1;
            if quiet >= 3 {
                ages.drained = true;
                break;
            }
        } else {
            quiet = 0;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    ages.drained_in = t0.elapsed().as_secs_f64();
    let q = w.get("/local/queues").await;
    for e in q["queues"].as_array().into_iter().flatten() {
        ages.after.insert(
            e["queue"].as_str().unwrap_or("?").to_owned(),
            (
                e["oldest_age_secs"].as_f64().unwrap_or(0.0),
                e["messages"].as_u64().unwrap_or(0),
                e["dead_letters"].as_u64().unwrap_or(0),
            ),
        );
    }
}

// ---------------------------------------------------------------- mailbox

struct Mails {
    total: usize,
    by_mail: HashMap<String, Vec<String>>,
}

fn mails(dir: &Path) -> Mails {
    let mut m = Mails {
        total: 0,
        by_mail: HashMap::new(),
    };
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let Ok(v) =
            std::fs::read(&p).map(|b| serde_json::from_slice::<Value>(&b).unwrap_or_default())
        else {
            continue;
        };
        m.total += 1;
        m.by_mail
            .entry(v["mail_id"].as_str().unwrap_or("?").to_owned())
            .or_default()
            .push(v["to"].as_str().unwrap_or("?").to_owned());
    }
    m
}

// ---------------------------------------------------------------- costs

/// One user action's figures, all-in.
struct Cost {
    action: &'static str,
    count: usize,
    wcu: f64,
    rcu: f64,
    messages: f64,
    invocations: f64,
    gb_seconds: f64,
    sqs_requests: f64,
    emails: f64,
    dollars: [f64; 5],
    /// Per consumer and kind: events applied in the phase of those relayed
    /// (the work is read per applied event and counted for every relayed
    /// one, so a backlog left for later does not make an action look cheap).
    coverage: Vec<String>,
}

impl Cost {
    fn total(&self) -> f64 {
        self.dollars.iter().sum()
    }
}

/// The figures of `route` from a phase's meter report: its own calls, plus
/// the relay's messages and every consumer's work on the event kinds the
/// action causes (the local pipeline runs one kind per batch, and the meter
/// attributes a batch to `consumer:{name}/{kind}` and a relayed event to
/// `{RELAY}: {kind}`), so a backlog of other kinds does not pollute it.
fn cost(
    p: &Prices,
    action: &'static str,
    report: &Value,
    route: &str,
    count: usize,
    kinds: &[&str],
    emails: usize,
) -> Cost {
    let background = !kinds.is_empty();
    let kind_of = |cause: &str| -> Option<String> {
        if let Some(rest) = cause.strip_prefix("consumer:") {
            return rest.split_once('/').map(|(_, k)| k.to_owned());
        }
        cause
            .strip_prefix(RELAY)
            .and_then(|r| r.strip_prefix(": "))
            .map(str::to_owned)
    };
    let n = count.max(1) as f64;
    let by = report["by_cause"].as_object().cloned().unwrap_or_default();
    let f = |v: &Value, k: &str| v[k].as_f64().unwrap_or(0.0);
    let own = by.get(route).cloned().unwrap_or(Value::Null);
    let (mut wcu, mut rcu, mut busy_ms) = (f(&own, "wcu"), f(&own, "rcu"), f(&own, "busy_ms"));
    let http = f(&own, "calls");
    let (mut batches, mut messages, mut events) = (0.0, 0.0, 0.0);
    let mut coverage = Vec::new();
    // Events of `kind` the relay sent to `queue` in the phase.
    let relayed = |kind: &str, queue: &str| -> f64 {
        by.get(&format!("{RELAY}: {kind}"))
            .map(|u| u["messages"][queue].as_f64().unwrap_or(0.0))
            .unwrap_or(0.0)
    };
    if background {
        for (cause, u) in &by {
            if !kind_of(cause).is_some_and(|k| kinds.contains(&k.as_str())) {
                continue;
            }
            if let Some((name, kind)) = cause
                .strip_prefix("consumer:")
                .and_then(|r| r.split_once('/'))
            {
                // The aggregator reads the feed itself: all it read is its
                // work. A queue consumer's work is scaled from the events it
                // applied to the events relayed to its queue.
                let queue = match name {
                    "thresholds" => None,
                    "email" => Some("emails"),
                    other => Some(other),
                };
                let applied = f(u, "events");
                let scale = match queue {
                    None => 1.0,
                    Some(q) => {
                        let sent = relayed(kind, q);
                        coverage.push(format!("{name}/{kind} {applied:.0} of {sent:.0}"));
                        if applied > 0.0 {
                            sent / applied
                        } else {
                            0.0
                        }
                    }
                };
                wcu += f(u, "wcu") * scale;
                rcu += f(u, "rcu") * scale;
                busy_ms += f(u, "busy_ms") * scale;
                batches += f(u, "calls") * scale;
            }
            if cause.starts_with(RELAY) {
                // The relay's own reads and outbox deletes are the local
                // stand-in for the stream (free on AWS); its messages count.
                events += f(u, "calls");
                messages += u["messages"]
                    .as_object()
                    .map(|m| m.values().filter_map(Value::as_f64).sum::<f64>())
                    .unwrap_or(0.0);
            }
        }
    }
    let invocations = http + batches + events / p.lambda.relay_records_per_invocation;
    let gb_seconds = busy_ms / 1000.0 * p.lambda.memory_mb / 1024.0;
    // The relay sends ten messages per SendMessageBatch request; each
    // consumer batch costs a receive and a delete.
    let sqs_requests = messages / 10.0 + 2.0 * batches;
    let emails = if background { emails as f64 } else { 0.0 };
    let per = 1e6 / n;
    let dollars = [
        http / 1e6 * p.api_gateway.http_per_million_requests * per,
        (invocations / 1e6 * p.lambda.per_million_requests
            + gb_seconds * p.lambda.per_gb_second_arm64)
            * per,
        (wcu / 1e6 * p.dynamodb.per_million_write_request_units
            + rcu / 1e6 * p.dynamodb.per_million_read_request_units)
            * per,
        sqs_requests / 1e6 * p.sqs.per_million_requests * per,
        emails / 1000.0 * p.ses.per_thousand_emails * per,
    ];
    Cost {
        action,
        count,
        wcu: wcu / n,
        rcu: rcu / n,
        messages: messages / n,
        invocations: invocations / n,
        gb_seconds: gb_seconds / n,
        sqs_requests: sqs_requests / n,
        emails: emails / n,
        dollars,
        coverage,
    }
}

struct Phase {
    name: &'static str,
    seconds: f64,
    report: Value,
    ages: QueueAges,
}

async fn phase(
    w: &Arc<World>,
    name: &'static str,
    reqs: Vec<Req>,
    steps: &[usize],
    drain_limit: Duration,
    phase_limit: Duration,
) -> Phase {
    eprintln!("phase {name}: {} requests…", reqs.len());
    let running = Arc::new(AtomicBool::new(true));
    let watcher = watch_queues(w.clone(), running.clone());
    let t0 = Instant::now();
    let deadline = t0 + phase_limit;
    let per = reqs.len().div_ceil(steps.len().max(1)).max(1);
    let mut rest = reqs;
    for &c in steps {
        let tail = rest.split_off(per.min(rest.len()));
        w.drive(rest, c, deadline).await;
        rest = tail;
    }
    let seconds = t0.elapsed().as_secs_f64();
    running.store(false, Ordering::Relaxed);
    let mut ages = watcher.await.unwrap_or_default();
    drain(w, drain_limit, &mut ages).await;
    let report = w.get("/local/capacity").await;
    let _ = w
        .client
        .post(format!("{}/local/capacity/reset", w.base))
        .send()
        .await;
    eprintln!(
        "phase {name}: {seconds:.1}s, queues drained in {:.1}s",
        ages.drained_in
    );
    Phase {
        name,
        seconds,
        report,
        ages,
    }
}

// ---------------------------------------------------------------- random

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// The Zipf exponent of the votes and reads over the ideas: with 700 ideas
/// the hottest takes ~24 % of them (the idea the advertisement shows).
const ZIPF_S: f64 = 1.2;

/// Zipf (s = [`ZIPF_S`]) over `n` ranks: rank 0 is the hottest.
struct Zipf(Vec<f64>);
impl Zipf {
    fn new(n: usize) -> Self {
        let mut acc = 0.0;
        let mut c: Vec<f64> = (1..=n)
            .map(|k| {
                acc += (k as f64).powf(-ZIPF_S);
                acc
            })
            .collect();
        for x in &mut c {
            *x /= acc;
        }
        Zipf(c)
    }
    fn sample(&self, r: &mut Rng) -> usize {
        let u = r.unit();
        self.0.partition_point(|&c| c < u).min(self.0.len() - 1)
    }
}

// ---------------------------------------------------------------- main

#[tokio::main]
async fn main() {
    let members = env_num("BENCH_MEMBERS", 50_000);
    let n_ideas = env_num("BENCH_IDEAS", 700).clamp(1, members);
    let n_votes = env_num("BENCH_VOTES", 100_000);
    let n_comments = env_num("BENCH_COMMENTS", 5_000);
    let concurrency = env_num("BENCH_CONCURRENCY", 64);
    let drain_limit = Duration::from_secs(env_num("BENCH_DRAIN_SECS", 300) as u64);
    let phase_limit = Duration::from_secs(env_num("BENCH_PHASE_SECS", 420) as u64);
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let prices: Prices = toml::from_str(
        &std::fs::read_to_string(root.join("tests/bench/prices.toml")).expect("prices.toml"),
    )
    .expect("prices.toml");
    let threshold: usize = std::fs::read_to_string(root.join("infra/campaigns/community.toml"))
        .ok()
        .and_then(|t| toml::from_str::<Value>(&t).ok())
        .and_then(|v| v["ideas"]["vote_threshold"].as_u64())
        .unwrap_or(10_000) as usize;

    let data = tempfile::tempdir().expect("tempdir");
    let campaigns = tempfile::tempdir().expect("tempdir");
    write_campaigns(campaigns.path(), &root, 86_400);
    let mut server = start_server(data.path(), campaigns.path());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let tokens: Vec<String> = (0..members)
        .map(|i| {
            local::auth::sign(
                local::auth::DEFAULT_SECRET,
                &format!("membre-{i}"),
                Some(&format!("membre{i}@example.fr")),
                &[],
                24 * 3600,
            )
            .expect("sign")
        })
        .collect();
    let w = Arc::new(World {
        client,
        base: server.base.clone(),
        tokens,
        ideas: Mutex::new(Vec::new()),
        stats: Arc::new(Mutex::new(BTreeMap::new())),
        hot_acked: Mutex::new(HashSet::new()),
    });
    let mailbox = data.path().join("mailbox");
    let mut rng = Rng(20261203);
    let started = Instant::now();
    let mut phases = Vec::new();
    let mut costs = Vec::new();

    // 1. Sign-ups: the ramp after the advertisement.
    let m0 = mails(&mailbox).total;
    let p = phase(
        &w,
        "sign-ups",
        (0..members).map(Req::SignUp).collect(),
        &[16, 32, 64, 128],
        drain_limit,
        phase_limit,
    )
    .await;
    let mail_signup = mails(&mailbox);
    costs.push(cost(
        &prices,
        "sign-up",
        &p.report,
        "POST /members",
        w.issued("POST /members"),
        &["member.signed_up"],
        mail_signup.total - m0,
    ));
    phases.push(p);

    // 2. The first wave of ideas (created in order: rank 0 is the first).
    let m0 = mails(&mailbox).total;
    for i in 0..n_ideas {
        w.send(Req::Idea(i)).await;
    }
    let p = phase(&w, "ideas", Vec::new(), &[1], drain_limit, phase_limit).await;
    costs.push(cost(
        &prices,
        "idea",
        &p.report,
        "POST /ideas",
        w.issued("POST /ideas"),
        &["idea.posted"],
        mails(&mailbox).total - m0,
    ));
    phases.push(p);
    let n_ideas = w.ideas.lock().expect("ideas").len();
    assert!(n_ideas > 0, "no idea was created");

    // 3. The spike: Zipf votes mixed with public reads.
    let zipf = Zipf::new(n_ideas);
    let mut voted: HashSet<(usize, usize)> = HashSet::new();
    let mut reqs = Vec::new();
    let mut tries = 0;
    while reqs.len() < n_votes && tries < n_votes * 4 {
        tries += 1;
        let m = (rng.next() % members as u64) as usize;
        let i = zipf.sample(&mut rng);
        if voted.insert((m, i)) {
            reqs.push(Req::Vote(m, i));
        }
    }
    let votes = reqs.len();
    let hot_offered = reqs.iter().filter(|r| matches!(r, Req::Vote(_, 0))).count();
    let (n_idea_reads, n_list_reads) = (votes / 4, votes / 10);
    for _ in 0..n_idea_reads {
        reqs.push(Req::ReadIdea(zipf.sample(&mut rng)));
    }
    for _ in 0..n_list_reads {
        reqs.push(Req::ReadList);
    }
    rng.shuffle(&mut reqs);
    let m0 = mails(&mailbox).total;
    let p = phase(&w, "spike", reqs, &[concurrency], drain_limit, phase_limit).await;
    let spike_mails = mails(&mailbox).total - m0;
    costs.push(cost(
        &prices,
        "vote",
        &p.report,
        "PUT /ideas/{id}/vote",
        w.issued("PUT /ideas/{id}/vote"),
        &["vote.cast", "idea.reached_threshold"],
        spike_mails,
    ));
    costs.push(cost(
        &prices,
        "idea read",
        &p.report,
        "GET /ideas/{id}",
        w.issued("GET /ideas/{id}"),
        &[],
        0,
    ));
    costs.push(cost(
        &prices,
        "list read",
        &p.report,
        "GET /ideas",
        w.issued("GET /ideas"),
        &[],
        0,
    ));
    phases.push(p);

    // 4. Comments on the hot ideas.
    let reqs: Vec<Req> = (0..n_comments)
        .map(|_| {
            let m = (rng.next() % members as u64) as usize;
            Req::Comment(m, zipf.sample(&mut rng))
        })
        .collect();
    let m0 = mails(&mailbox).total;
    let p = phase(
        &w,
        "comments",
        reqs,
        &[concurrency],
        drain_limit,
        phase_limit,
    )
    .await;
    costs.push(cost(
        &prices,
        "comment",
        &p.report,
        "POST /ideas/{id}/comments",
        w.issued("POST /ideas/{id}/comments"),
        &["comment.posted"],
        mails(&mailbox).total - m0,
    ));
    phases.push(p);

    // 5. Every member enters the launch contest.
    let mut reqs: Vec<Req> = (0..members).map(Req::Enter).collect();
    rng.shuffle(&mut reqs);
    let m0 = mails(&mailbox).total;
    let p = phase(
        &w,
        "contest entries",
        reqs,
        &[concurrency],
        drain_limit,
        phase_limit,
    )
    .await;
    costs.push(cost(
        &prices,
        "contest entry",
        &p.report,
        "POST /contests/{id}/entries",
        w.issued("POST /contests/{id}/entries"),
        &["contest.entered"],
        mails(&mailbox).total - m0,
    ));
    phases.push(p);

    // The hot idea against its acknowledged voters.
    let hot = w.idea(0);
    let hot_view = w.get(&format!("/ideas/{hot}")).await;
    let hot_acked = w.hot_acked.lock().expect("acked").len();
    let all_mails = mails(&mailbox);
    let threshold_events = all_mails
        .by_mail
        .values()
        .flatten()
        .filter(|to| to.as_str() == COMMITTEE)
        .count();
    let welcome = all_mails
        .by_mail
        .get("welcome")
        .cloned()
        .unwrap_or_default();
    let welcome_distinct: HashSet<&String> = welcome.iter().collect();
    let entries_ok = w
        .stats
        .lock()
        .expect("stats")
        .get("POST /contests/{id}/entries")
        .map(|s| s.ok)
        .unwrap_or(0);

    // 6. Close the contest (its file, applied at start), draw, verify.
    let _ = server.child.kill();
    let _ = server.child.wait();
    write_campaigns(campaigns.path(), &root, -1);
    server = start_server(data.path(), campaigns.path());
    let marketing = local::auth::sign(
        local::auth::DEFAULT_SECRET,
        "ana-marketing",
        Some("ana@example.fr"),
        &["marketing".to_owned()],
        3600,
    )
    .expect("sign");
    let t0 = Instant::now();
    let draw = w
        .client
        .post(format!("{}/contests/{CONTEST}/draw", server.base))
        .bearer_auth(&marketing)
        .timeout(Duration::from_secs(600))
        .send()
        .await;
    let draw_secs = t0.elapsed().as_secs_f64();
    let (draw_status, draw_body) = match draw {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    };
    let draw_file = data.path().join("draw.json");
    std::fs::write(&draw_file, &draw_body).expect("write draw");
    let draw_report = {
        let c = &w.client;
        let r = c
            .get(format!("{}/local/capacity", server.base))
            .send()
            .await;
        match r {
            Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        }
    };
    let verify = Command::new(env!("CARGO_BIN_EXE_community"))
        .arg("verify-draw")
        .arg(&draw_file)
        .arg("--server")
        .arg(&server.base)
        .output()
        .expect("verify-draw");
    let verified = verify.status.success();
    let verify_line = String::from_utf8_lossy(&verify.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let _ = server.child.kill();
    let total_secs = started.elapsed().as_secs_f64();

    // ------------------------------------------------------------ report
    let (signed, voted, commented) = (
        w.issued("POST /members"),
        w.issued("PUT /ideas/{id}/vote"),
        w.issued("POST /ideas/{id}/comments"),
    );
    println!("launch-night benchmark: {signed} sign-ups, {n_ideas} ideas, {voted} votes (of {votes} planned), {commented} comments, {entries_ok} contest entries accepted; 2-core machine, release local server, strict store (10 ms transaction window, partition and new-table limits), {total_secs:.0} s in all");
    println!();
    println!("## Per user action, all-in (request + relay + every consumer it triggers)");
    println!("| action | count | WCU | RCU | queue msgs | invocations | SQS requests | emails | $ / 1M actions (API GW + Lambda + DynamoDB + SQS + SES) |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for c in &costs {
        println!(
            "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.3} | **{:.2}** = {:.2} + {:.2} + {:.2} + {:.2} + {:.2} |",
            c.action,
            c.count,
            c.wcu,
            c.rcu,
            c.messages,
            c.invocations,
            c.sqs_requests,
            c.emails,
            c.total(),
            c.dollars[0],
            c.dollars[1],
            c.dollars[2],
            c.dollars[3],
            c.dollars[4]
        );
    }
    println!(
        "(Lambda GB-s per action from the local handler time at {} MB: {})",
        prices.lambda.memory_mb,
        costs
            .iter()
            .map(|c| format!("{} {:.5}", c.action, c.gb_seconds))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("(Consumer work is read per event applied in the phase and counted for every event relayed in it; events applied of relayed, per consumer and kind: {})",
        costs
            .iter()
            .filter(|c| !c.coverage.is_empty())
            .map(|c| format!("{}: {}", c.action, c.coverage.join(", ")))
            .collect::<Vec<_>>()
            .join("; ")
    );
    println!();
    println!("## Routes (client side)");
    println!(
        "| route | actions | ok | p50 ms | p99 ms | 4xx | 429 | 5xx/errors | retried 429/503 |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (route, s) in w.stats.lock().expect("stats").iter_mut() {
        let (p50, p99) = (s.pct(0.5), s.pct(0.99));
        println!(
            "| {route} | {} | {} | {p50:.1} | {p99:.1} | {} | {} | {} | {} |",
            s.issued, s.ok, s.client_errors, s.too_many, s.server_errors, s.retried
        );
    }
    println!(
        "| POST /contests/{{id}}/draw | 1 | HTTP {} | {:.0} (one call) | | | | | |",
        draw_status,
        draw_secs * 1000.0
    );
    println!();
    println!("## Phases: conflicts, throttles, queues");
    println!("| phase | seconds | conflicts | throttles | oldest message during (s), per queue | after drain: left / dead letters | drained in (s) |");
    println!("|---|---:|---:|---:|---|---|---:|");
    for p in &phases {
        let during = p
            .ages
            .during
            .iter()
            .filter(|(_, (a, n))| *a > 0.0 || *n > 0)
            .map(|(q, (a, n))| format!("{q} {a:.1} (≤{n} msgs)"))
            .collect::<Vec<_>>()
            .join(", ");
        let after = p
            .ages
            .after
            .iter()
            .filter(|(_, (_, n, d))| *n > 0 || *d > 0)
            .map(|(q, (_, n, d))| format!("{q} {n}/{d}"))
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {} | {:.1} | {} | {} | {} | {} | {:.1}{} |",
            p.name,
            p.seconds,
            p.report["total"]["conflicts"],
            p.report["total"]["throttles"],
            if during.is_empty() {
                "-".into()
            } else {
                during
            },
            if after.is_empty() {
                "none".into()
            } else {
                after
            },
            p.ages.drained_in,
            if p.ages.drained { "" } else { " (not drained)" }
        );
    }
    println!();
    println!("## Conflicts and throttles by cause");
    for p in &phases {
        for (cause, u) in p.report["by_cause"].as_object().into_iter().flatten() {
            let (c, t) = (
                u["conflicts"].as_u64().unwrap_or(0),
                u["throttles"].as_u64().unwrap_or(0),
            );
            if c + t > 0 {
                println!("- {}: {cause}: {c} conflicts, {t} throttles", p.name);
            }
        }
    }
    println!();
    println!("## Contended keys (conflicts / throttles) and hottest keys (peak units per second)");
    for p in &phases {
        let keys = |k: &str, f: &dyn Fn(&Value) -> String| {
            p.report[k]
                .as_array()
                .into_iter()
                .flatten()
                .take(5)
                .map(f)
                .collect::<Vec<_>>()
                .join("; ")
        };
        println!(
            "- {} contended: {}",
            p.name,
            keys("contended_partitions", &|k| format!(
                "{} {}c/{}t",
                k["partition"].as_str().unwrap_or("?"),
                k["conflicts"],
                k["throttles"]
            ))
        );
        println!(
            "- {} peak WCU/s: {}",
            p.name,
            keys("hot_write_partitions", &|k| format!(
                "{} {:.0}",
                k["partition"].as_str().unwrap_or("?"),
                k["peak_wcu_per_sec"].as_f64().unwrap_or(0.0)
            ))
        );
        println!(
            "- {} peak RCU/s: {}",
            p.name,
            keys("hot_read_partitions", &|k| format!(
                "{} {:.0}",
                k["partition"].as_str().unwrap_or("?"),
                k["peak_rcu_per_sec"].as_f64().unwrap_or(0.0)
            ))
        );
    }
    println!();
    println!("## Outcomes");
    println!(
        "- hot idea {hot}: count {} after the run, {hot_acked} distinct voters acknowledged ({hot_offered} sent), status {}, threshold {threshold}",
        hot_view["votes"], hot_view["status"]
    );
    println!("- threshold events (committee mails): {threshold_events}");
    println!(
        "- welcome mails: {} sent to {} distinct members ({} sign-ups acknowledged)",
        welcome.len(),
        welcome_distinct.len(),
        w.stats
            .lock()
            .expect("stats")
            .get("POST /members")
            .map(|s| s.ok)
            .unwrap_or(0)
    );
    println!(
        "- mails in the sign-up phase: {}; in the spike: {spike_mails}",
        mail_signup.total
    );
    println!(
        "- draw: HTTP {draw_status} in {draw_secs:.1} s over {entries_ok} entries, {:.0} WCU, {:.0} RCU; verify-draw: {} ({verify_line})",
        draw_report["total"]["wcu"].as_f64().unwrap_or(0.0),
        draw_report["total"]["rcu"].as_f64().unwrap_or(0.0),
        if verified { "ok" } else { "FAILED" }
    );
    if !verified {
        eprintln!("{}", String::from_utf8_lossy(&verify.stderr));
    }
}
