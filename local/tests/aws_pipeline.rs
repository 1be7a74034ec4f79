//! The AWS path end to end, on moto, as AWS would run it: the HTTP
//! functions' own routers fed API Gateway events, the table on moto's
//! DynamoDB, its stream read through moto's DynamoDB Streams API and
//! filtered by the event source mappings' `FilterCriteria` read from
//! infra/template.yaml, the relay's and the aggregator's Lambda entries fed
//! those records as Lambda delivers them, the consumers' entries fed the
//! messages received from moto's SQS queues, and mails sent through moto's
//! SES. Every stream batch and every queue batch is delivered twice.
//!
//! Sign-ups → an idea → votes past the threshold → the committee and the
//! author mailed → the committee's decision → the voters mailed in pages;
//! the outcome (counts, status, balances, every mail by recipient and
//! subject) must be exactly the one the same scenario gives on the embedded
//! store with the local pipeline.

use aws_lambda_events::event::sqs::SqsEvent;
use base64::Engine as _;
use community::events::Queue;
use community::queue::Consumer;
use community::store::Table;
use community::testing::{call, idea_body, member, sign_up_body, As};
use community::App;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

const THRESHOLD: u64 = 3;

// ------------------------------------------------ the template's stream sources

/// A stream function's event source mapping, as the template declares it.
struct StreamSource {
    /// `FilterCriteria` patterns (a record passes if one matches).
    patterns: Vec<Value>,
    batch_size: usize,
}

fn stream_source(function: &str) -> StreamSource {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../infra/template.yaml"
    ))
    .expect("infra/template.yaml");
    let header = format!("  {function}:");
    let mut lines = template.lines().skip_while(|l| *l != header);
    assert!(lines.next().is_some(), "{function} is in the template");
    let mut patterns = Vec::new();
    let mut batch_size = None;
    for l in lines {
        // The next resource: two spaces of indentation, then a name.
        if l.starts_with("  ") && !l.starts_with("   ") {
            break;
        }
        let t = l.trim();
        if let Some(p) = t.strip_prefix("- Pattern: '") {
            let p = p.strip_suffix('\'').expect("a quoted pattern");
            patterns.push(serde_json::from_str(p).expect("a pattern is JSON"));
        } else if let Some(n) = t.strip_prefix("BatchSize: ") {
            batch_size = n.parse().ok();
        }
    }
    assert!(!patterns.is_empty(), "{function} filters its stream");
    StreamSource {
        patterns,
        batch_size: batch_size.expect("a BatchSize"),
    }
}

/// Lambda's event filtering, for what the template's patterns use: arrays
/// of literal values or `{"prefix": …}`, nested objects.
fn matches(pattern: &Value, record: &Value) -> bool {
    let Value::Object(fields) = pattern else {
        return false;
    };
    fields.iter().all(|(k, p)| {
        let v = &record[k];
        match p {
            Value::Array(alternatives) => alternatives.iter().any(|a| match a {
                Value::Object(o) => match o.get("prefix").and_then(Value::as_str) {
                    Some(prefix) => v.as_str().is_some_and(|s| s.starts_with(prefix)),
                    None => false,
                },
                literal => v == literal,
            }),
            Value::Object(_) => matches(p, v),
            _ => false,
        }
    })
}

impl StreamSource {
    fn batches(&self, records: &[Value]) -> Vec<Value> {
        let passed: Vec<Value> = records
            .iter()
            .filter(|r| self.patterns.iter().any(|p| matches(p, r)))
            .cloned()
            .collect();
        passed
            .chunks(self.batch_size)
            .map(|c| json!({"Records": c}))
            .collect()
    }
}

// ------------------------------------------------------------ the scenario

/// What the scenario ends with, on either store.
#[derive(Debug, PartialEq)]
struct Outcome {
    votes: Value,
    status: Value,
    /// member → points balance shown by `GET /members/me`.
    balances: BTreeMap<String, Value>,
    /// (recipient, subject) → mails.
    mails: BTreeMap<(String, String), usize>,
}

/// How the scenario's events reach their consumers.
#[async_trait::async_trait]
trait Pipeline {
    /// Delivers everything pending until nothing moves.
    async fn pump(&self);
    /// Every mail sent, as (recipient, subject).
    async fn mails(&self) -> Vec<(String, String)>;
}

/// The members are `{role}-{suffix}` (moto is shared by the test binaries:
/// the suffix keeps this run's mails apart); outcomes name them by role.
/// Returns the idea's id.
async fn scenario<T: Table + Clone>(app: &App<T>, pipeline: &dyn Pipeline, suffix: &str) -> String {
    let signup = signup::router(app.clone());
    let ideas = ideas::router(app.clone());
    let votes = votes::router(app.clone());
    let committee = committee::router(app.clone());
    let who = |role: &str| member(&format!("{role}-{suffix}"));
    let author = who("author");
    let voters: Vec<As> = (0..THRESHOLD).map(|i| who(&format!("voter{i}"))).collect();
    for m in std::iter::once(&author).chain(&voters) {
        let r = call(
            &signup,
            "POST",
            "/members",
            Some(m),
            Some(sign_up_body(&m.sub)),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    pipeline.pump().await;
    let r = call(&ideas, "POST", "/ideas", Some(&author), Some(idea_body())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().expect("id").to_owned();
    pipeline.pump().await;
    for v in &voters {
        let r = call(&votes, "PUT", &format!("/ideas/{id}/vote"), Some(v), None).await;
        assert!(r.status == 200 || r.status == 201, "{}", r.body);
    }
    pipeline.pump().await;
    let idea = call(&ideas, "GET", &format!("/ideas/{id}"), None, None).await;
    assert_eq!(idea.body["status"], "under_review", "{}", idea.body);
    let board = who("board").in_groups(&["committee"]);
    let r = call(
        &committee,
        "POST",
        &format!("/ideas/{id}/decision"),
        Some(&board),
        Some(json!({"outcome": "accepted", "reason": "Testé en magasin dès le printemps."})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    pipeline.pump().await;
    id
}

/// What the scenario left, read through the routes and the mailbox.
async fn observe<T: Table + Clone>(
    app: &App<T>,
    pipeline: &dyn Pipeline,
    suffix: &str,
    id: &str,
) -> Outcome {
    let signup = signup::router(app.clone());
    let ideas = ideas::router(app.clone());
    let who = |role: &str| member(&format!("{role}-{suffix}"));
    let author = who("author");
    let voters: Vec<As> = (0..THRESHOLD).map(|i| who(&format!("voter{i}"))).collect();
    let idea = call(&ideas, "GET", &format!("/ideas/{id}"), None, None).await;
    let mut balances = BTreeMap::new();
    for m in std::iter::once(&author).chain(&voters) {
        let me = call(&signup, "GET", "/members/me", Some(m), None).await;
        assert_eq!(me.status, 200, "{}", me.body);
        balances.insert(m.sub.replace(suffix, ""), me.body["points_balance"].clone());
    }
    let mut mails = BTreeMap::new();
    for (to, subject) in pipeline.mails().await {
        if to.contains(suffix) {
            *mails
                .entry((to.replace(suffix, ""), subject.replace(suffix, "")))
                .or_default() += 1;
        }
    }
    Outcome {
        votes: idea.body["votes"].clone(),
        status: idea.body["status"].clone(),
        balances,
        mails,
    }
}

fn settings(suffix: &str) -> community::config::Settings {
    let mut s = community::testing::settings();
    s.vote_threshold = THRESHOLD;
    s.committee_email = format!("comite-{suffix}@example.fr");
    s
}

// ------------------------------------------------------ the embedded store

struct Embedded {
    node: local::Local<community::store::embedded::EmbeddedTable>,
}

#[async_trait::async_trait]
impl Pipeline for Embedded {
    async fn pump(&self) {
        self.node.pipeline.drain().await.expect("drain");
    }
    async fn mails(&self) -> Vec<(String, String)> {
        self.node
            .mailbox
            .list()
            .expect("mailbox")
            .into_iter()
            .map(|m| (m.to, m.subject))
            .collect()
    }
}

// ------------------------------------------------------------- AWS on moto

struct Aws {
    app: App<Arc<dyn Table>>,
    endpoint: String,
    http: reqwest::Client,
    sqs: aws_sdk_sqs::Client,
    urls: HashMap<Queue, String>,
    out: community::relay::SqsOutbound,
    relay: StreamSource,
    aggregator: StreamSource,
    consumers: Vec<(Queue, Box<dyn Consumer>)>,
    stream_arn: String,
    /// The last sequence number read.
    last_seq: tokio::sync::Mutex<Option<String>>,
}

impl Aws {
    /// A DynamoDB Streams call, as the SDK signs it (moto routes by the
    /// target and the credential scope; it does not check signatures).
    async fn streams(&self, action: &str, body: Value) -> Value {
        let res = self
            .http
            .post(&self.endpoint)
            .header("X-Amz-Target", format!("DynamoDBStreams_20120810.{action}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20261204/eu-west-3/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .expect("streams call");
        assert!(res.status().is_success(), "{action}: {}", res.status());
        res.json().await.expect("streams JSON")
    }

    /// The stream's new records, in order (moto has one shard): from a
    /// fresh iterator after the last sequence number read, as a Lambda
    /// event source mapping keeps its position. (moto also needs it: a
    /// cancelled transaction restores a copy of its tables, and the old
    /// iterators keep reading the stream of the replaced copy.)
    async fn new_records(&self) -> Vec<Value> {
        let mut last = self.last_seq.lock().await;
        let d = self
            .streams("DescribeStream", json!({"StreamArn": self.stream_arn}))
            .await;
        let shards = d["StreamDescription"]["Shards"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(shards.len(), 1, "moto's stream has one shard: {d}");
        let mut req = json!({"StreamArn": self.stream_arn, "ShardId": shards[0]["ShardId"],
                             "ShardIteratorType": "TRIM_HORIZON"});
        if let Some(seq) = last.as_ref() {
            req["ShardIteratorType"] = json!("AFTER_SEQUENCE_NUMBER");
            req["SequenceNumber"] = json!(seq);
        }
        let mut it = self.streams("GetShardIterator", req).await["ShardIterator"].clone();
        let mut all = Vec::new();
        loop {
            let page = self
                .streams("GetRecords", json!({"ShardIterator": it, "Limit": 1000}))
                .await;
            it = page["NextShardIterator"].clone();
            let records = page["Records"].as_array().cloned().unwrap_or_default();
            if records.is_empty() {
                return all;
            }
            if let Some(seq) = records
                .last()
                .and_then(|r| r["dynamodb"]["SequenceNumber"].as_str())
            {
                *last = Some(seq.to_owned());
            }
            // What Lambda adds to each record of the event it invokes with.
            all.extend(records.into_iter().map(|mut r| {
                r["eventSourceARN"] = json!(self.stream_arn);
                r
            }));
        }
    }

    /// Lambda's SQS event source: receive, invoke (twice here: at least
    /// once), delete what the partial batch response does not name.
    async fn poll(&self, q: Queue, consumer: &dyn Consumer) -> usize {
        let got = self
            .sqs
            .receive_message()
            .queue_url(&self.urls[&q])
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        let msgs = got.messages.unwrap_or_default();
        if msgs.is_empty() {
            return 0;
        }
        let records: Vec<Value> = msgs
            .iter()
            .map(|m| {
                json!({"messageId": m.message_id, "body": m.body, "receiptHandle": m.receipt_handle,
                "eventSource": "aws:sqs", "attributes": {"ApproximateReceiveCount": "1"}})
            })
            .collect();
        let event: SqsEvent = serde_json::from_value(json!({"Records": records})).expect("event");
        let mut failed = Vec::new();
        for _ in 0..2 {
            match community::queue::sqs(consumer, event.clone()).await {
                Ok(r) => {
                    failed.extend(r.batch_item_failures.into_iter().map(|f| f.item_identifier))
                }
                Err(e) => panic!("{} failed a whole batch: {e}", q.name()),
            }
        }
        assert!(
            failed.is_empty(),
            "{} gave messages back: {failed:?}",
            q.name()
        );
        for m in &msgs {
            self.sqs
                .delete_message()
                .queue_url(&self.urls[&q])
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
        msgs.len()
    }
}

#[async_trait::async_trait]
impl Pipeline for Aws {
    async fn pump(&self) {
        for _ in 0..100 {
            let mut moved = 0;
            let records = self.new_records().await;
            moved += records.len();

            // Two event source mappings on the one stream, each with its
            // filter; every batch delivered twice.
            for batch in self.relay.batches(&records) {
                for _ in 0..2 {
                    let r = community::relay::relay(&self.out, &batch).await;
                    assert_eq!(r["batchItemFailures"], json!([]), "relay: {r}");
                }
            }
            for batch in self.aggregator.batches(&records) {
                for _ in 0..2 {
                    let r = community::thresholds::stream_batch(&self.app, &batch).await;
                    assert_eq!(r["batchItemFailures"], json!([]), "aggregator: {r}");
                }
            }
            for (q, c) in &self.consumers {
                moved += self.poll(*q, c.as_ref()).await;
            }
            // The loyalty queue is the loyalty programme's: drain it.
            moved += self.poll(Queue::Loyalty, &Acknowledge).await;
            if moved == 0 {
                return;
            }
        }
        panic!("the pipeline did not settle");
    }

    async fn mails(&self) -> Vec<(String, String)> {
        let data: Value = self
            .http
            .get(format!("{}/moto-api/data.json", self.endpoint))
            .send()
            .await
            .expect("moto data")
            .json()
            .await
            .expect("moto JSON");
        data["ses"]["RawMessage"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|m| m["raw_data"].as_str().map(parse_raw))
            .collect()
    }
}

/// The loyalty programme's side of its queue, for the test.
struct Acknowledge;

#[async_trait::async_trait]
impl Consumer for Acknowledge {
    fn name(&self) -> &'static str {
        "loyalty"
    }
    async fn apply(&self, _: &community::events::Event) -> community::error::Result<()> {
        Ok(())
    }
}

/// The recipient and the decoded subject of a raw mail.
fn parse_raw(raw: &str) -> (String, String) {
    let header = |name: &str| {
        raw.split("\r\n")
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_default()
            .to_owned()
    };
    let subject = header("Subject: ");
    let subject = match subject
        .strip_prefix("=?UTF-8?B?")
        .and_then(|s| s.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .expect("base64 subject"),
        )
        .expect("UTF-8 subject"),
        None => subject,
    };
    (header("To: "), subject)
}

async fn aws(endpoint: &str, suffix: &str) -> Aws {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    let name = format!("e2e-{suffix}");
    community::store::dynamo::create_table(&ddb, &name)
        .await
        .expect("table on moto");
    let stream_arn = ddb
        .describe_table()
        .table_name(&name)
        .send()
        .await
        .expect("describe")
        .table
        .and_then(|t| t.latest_stream_arn)
        .expect("the table has a stream");
    let table: Arc<dyn Table> = Arc::new(community::store::dynamo::DynamoTable::new(ddb, name));
    let app = App::new(table, settings(suffix));
    let sqs = aws_sdk_sqs::Client::new(&conf);
    let mut urls = HashMap::new();
    for q in Queue::ALL {
        let url = sqs
            .create_queue()
            .queue_name(format!("{}-{suffix}", q.name()))
            .attributes(
                aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
                "30",
            )
            .send()
            .await
            .expect("queue")
            .queue_url
            .expect("url");
        urls.insert(q, url);
    }
    let ses = aws_sdk_ses::Client::new(&conf);
    ses.verify_email_identity()
        .email_address(community::mail::ses::address(&app.settings().mail_from))
        .send()
        .await
        .expect("verify the sender");
    let mailer = community::mail::ses::SesMailer::new(ses, None);
    let consumers: Vec<(Queue, Box<dyn Consumer>)> = vec![
        (
            Queue::Points,
            Box::new(community::points::PointsConsumer { app: app.clone() }),
        ),
        (
            Queue::Emails,
            Box::new(community::mail::EmailsConsumer {
                app: app.clone(),
                mailer,
            }),
        ),
        (
            Queue::Insights,
            Box::new(community::insights::InsightsConsumer { app: app.clone() }),
        ),
    ];
    Aws {
        app,
        endpoint: endpoint.to_owned(),
        http: reqwest::Client::new(),
        out: community::relay::SqsOutbound {
            client: sqs.clone(),
            urls: urls.clone(),
        },
        sqs,
        urls,
        relay: stream_source("RelayFunction"),
        aggregator: stream_source("ThresholdsFunction"),
        consumers,
        stream_arn,
        last_seq: tokio::sync::Mutex::new(None),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_pipeline_on_moto_gives_what_the_embedded_store_gives() {
    let Some(ep) = community::testing::moto_endpoint() else {
        return;
    };
    let suffix = ulid::Ulid::new().to_string().to_lowercase();

    let dir = tempfile::tempdir().expect("dir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let node = local::Local::new(App::new(table, settings(&suffix)), dir.path()).expect("local");
    let embedded = Embedded { node };
    let app = embedded.node.app.clone();
    let id = scenario(&app, &embedded, &suffix).await;
    let local = observe(&app, &embedded, &suffix, &id).await;

    let aws = aws(&ep, &suffix).await;
    let started = now_ms();
    let id = scenario(&aws.app, &aws, &suffix).await;
    let on_aws = observe(&aws.app, &aws, &suffix, &id).await;

    // The figures themselves, not only their agreement.
    let n = THRESHOLD as usize;
    assert_eq!(on_aws.votes, json!(THRESHOLD), "{on_aws:?}");
    assert_eq!(on_aws.status, json!("accepted"), "{on_aws:?}");
    let to = |role: &str| format!("{role}-@example.fr");
    let count = |o: &Outcome, who: &str| -> usize {
        o.mails
            .iter()
            .filter(|((t, _), _)| *t == who)
            .map(|(_, n)| *n)
            .sum()
    };
    assert!(
        on_aws.mails.values().all(|n| *n == 1),
        "every mail once: {:#?}",
        on_aws.mails
    );
    // The author: welcome, the threshold, the decision.
    assert_eq!(count(&on_aws, &to("author")), 3, "{:#?}", on_aws.mails);
    // Each voter: welcome and the decision (in a fan-out page).
    for i in 0..n {
        assert_eq!(
            count(&on_aws, &to(&format!("voter{i}"))),
            2,
            "{:#?}",
            on_aws.mails
        );
    }
    // The committee: the idea to study.
    assert_eq!(
        count(&on_aws, "comite-@example.fr"),
        1,
        "{:#?}",
        on_aws.mails
    );
    assert_eq!(on_aws.mails.len(), 3 + 2 * n + 1);
    let rule = |r: &str| {
        json!(
            embedded
                .node
                .app
                .settings()
                .points
                .rule(r)
                .expect("rule")
                .points
        )
    };
    assert_eq!(
        on_aws.balances["author-"],
        json!(
            rule("member_signed_up").as_i64().unwrap_or(0)
                + rule("idea_posted").as_i64().unwrap_or(0)
                + rule("idea_reached_threshold").as_i64().unwrap_or(0)
                + rule("idea_accepted").as_i64().unwrap_or(0)
        )
    );
    assert_eq!(
        on_aws.balances["voter0-"],
        json!(
            rule("member_signed_up").as_i64().unwrap_or(0)
                + rule("vote_cast").as_i64().unwrap_or(0)
        )
    );

    assert_eq!(on_aws, local, "AWS on moto and the embedded store agree");

    // Operations replay the run's events (as after a relay failure): every
    // consumer has applied them already, so nothing changes, no mail twice.
    let replayed = community::relay::replay(
        aws.app.table.as_ref(),
        &aws.out,
        started.saturating_sub(1_000),
        now_ms() + 1_000,
        None,
    )
    .await
    .expect("replay");
    assert!(
        replayed.events >= 8,
        "the run's outbox events: {replayed:?}"
    );
    assert!(replayed.sent["emails"] >= 4, "{replayed:?}");
    aws.pump().await;
    let after = observe(&aws.app, &aws, &suffix, &id).await;
    assert_eq!(after, on_aws, "a replay changes nothing");
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
