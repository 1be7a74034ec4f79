//! Test helpers (feature `testing`): an app over a temporary embedded store,
//! and requests built as API Gateway HTTP API events and parsed by
//! `lambda_http::request::from_str`, so handler tests take the Lambda path.
//! Every response is checked against docs/openapi.json ([`contract`]).

pub mod contract;

use crate::config::{Settings, BUILTIN_CAMPAIGN};
use crate::store::embedded::EmbeddedTable;
use crate::App;
use axum::body::Body;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

pub fn settings() -> Settings {
    let mut s = Settings::from_campaign(BUILTIN_CAMPAIGN, "builtin").expect("campaign");
    // Tests of other features post freely; rate-limit tests set their own
    // limits and turn them on (`rate_limits.enabled = true`).
    s.abuse.rate_limits.enabled = false;
    s
}

/// An app over a fresh embedded store; keep the TempDir alive.
pub fn embedded_app(tweak: impl FnOnce(&mut Settings)) -> (App<EmbeddedTable>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = EmbeddedTable::open(dir.path()).expect("open store");
    let mut s = settings();
    tweak(&mut s);
    (App::new(table, s), dir)
}

/// Who sends a request: claims as API Gateway's JWT authorizer passes them.
#[derive(Debug, Clone)]
pub struct As {
    pub sub: String,
    pub email: String,
    pub groups: Vec<String>,
}

pub fn member(sub: &str) -> As {
    As {
        sub: sub.into(),
        email: format!("{sub}@example.fr"),
        groups: vec![],
    }
}

impl As {
    pub fn in_groups(mut self, g: &[&str]) -> Self {
        self.groups = g.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// An API Gateway HTTP API (payload 2.0) event.
pub fn event(
    method: &str,
    path_and_query: &str,
    who: Option<&As>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut h = Map::new();
    h.insert("host".into(), json!("api.example.com"));
    if body.is_some() {
        h.insert("content-type".into(), json!("application/json"));
    }
    for (k, v) in headers {
        h.insert(k.to_ascii_lowercase(), json!(v));
    }
    let mut ctx = json!({
        "accountId": "123456789012", "apiId": "test", "domainName": "api.example.com",
        "domainPrefix": "api", "requestId": ulid::Ulid::new().to_string(),
        "routeKey": "$default", "stage": "$default", "time": "23/Nov/2026:09:00:00 +0000",
        "timeEpoch": 1795424400000i64,
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.7", "userAgent": "test"}
    });
    if let Some(w) = who {
        h.insert("authorization".into(), json!("Bearer test"));
        let mut claims = json!({"sub": w.sub, "email": w.email, "email_verified": "true"});
        if !w.groups.is_empty() {
            claims["cognito:groups"] = json!(format!("[{}]", w.groups.join(" ")));
        }
        ctx["authorizer"] = json!({"jwt": {"claims": claims, "scopes": null}});
    }
    json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": h, "requestContext": ctx, "body": body, "isBase64Encoded": false
    })
    .to_string()
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The field names a problem+json body's `errors` name.
    pub fn fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses an event the way the Lambda runtime does and sends it through the
/// router. The response must be what docs/openapi.json documents for the
/// operation (status, media type, body schema: [`contract::check`]); it
/// panics otherwise.
pub async fn call_event(router: &Router, event_json: &str) -> Reply {
    let req = lambda_http::request::from_str(event_json).expect("a valid API Gateway event");
    let (parts, body) = req.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_owned();
    let req = axum::http::Request::from_parts(parts, Body::from(body.to_vec()));
    let res = router.clone().oneshot(req).await.expect("infallible");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    contract::assert_documented(
        &method,
        &path,
        status,
        headers.get("content-type").and_then(|v| v.to_str().ok()),
        &bytes,
    );
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    if status >= 400 {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(
            ct, "application/problem+json",
            "an error must be problem+json: {body}"
        );
        assert_eq!(
            body["status"],
            json!(status),
            "problem status matches: {body}"
        );
        assert!(
            body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
            "{body}"
        );
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// Builds and sends a request.
pub async fn call(
    router: &Router,
    method: &str,
    path: &str,
    who: Option<&As>,
    body: Option<Value>,
) -> Reply {
    let b = body.map(|b| b.to_string());
    call_event(router, &event(method, path, who, b.as_deref(), &[])).await
}

/// A sign-up body that passes every rule.
pub fn sign_up_body(name: &str) -> Value {
    json!({"display_name": name, "email": format!("{}@example.fr", name.to_lowercase().replace(' ', ".")),
           "accept_terms_version": "2026-11", "email_opt_in": true})
}

pub fn idea_body() -> Value {
    json!({"theme": "eat-well", "title": "Des recettes du jour à petit prix",
           "body": "Afficher chaque jour une recette de saison avec le coût des ingrédients en rayon."})
}

/// The caller the claims of `who` make.
pub fn caller(who: &As) -> crate::auth::Caller {
    crate::auth::Caller {
        id: crate::domain::MemberId::parse(&who.sub).expect("sub"),
        email: Some(who.email.clone()),
        groups: who.groups.clone(),
        email_verified: Some(true),
    }
}

/// Signs `who` up through the domain (for tests of other routes).
pub async fn join<T: crate::store::Table>(app: &App<T>, who: &As) {
    let req: crate::members::SignUp = serde_json::from_value(sign_up_body(&who.sub)).expect("body");
    crate::members::sign_up(app, &caller(who), req, None)
        .await
        .expect("sign up");
}

/// The loyalty programme confirms the card `member` linked last (as its
/// answer on the inbound queue would); returns the link's id.
pub async fn confirm_card<T: crate::store::Table>(app: &App<T>, member: &str) -> String {
    let id = crate::domain::MemberId::parse(member).expect("member id");
    let row = crate::members::get(app, &id).await.expect("member");
    let link = row.loyalty_card_link.expect("a card linked");
    let answer = crate::cards::CardAnswer {
        card_link_id: link.clone(),
        status: crate::cards::CardStatus::Confirmed,
        reason: None,
    };
    crate::cards::apply_answer(app, &answer)
        .await
        .expect("card confirmed");
    link
}

/// Posts an idea by `who` through the domain; returns its id.
pub async fn post_idea<T: crate::store::Table>(app: &App<T>, who: &As) -> String {
    let req: crate::ideas::NewIdea = serde_json::from_value(idea_body()).expect("body");
    crate::ideas::create(app, &caller(who), req, None)
        .await
        .expect("idea")
        .id
}

/// A timestamp `secs` from now (negative: in the past).
pub fn at(secs: i64) -> String {
    crate::domain::format_ts(time::OffsetDateTime::now_utc() + time::Duration::seconds(secs))
}

/// A survey contest open between the two offsets (seconds from now).
pub fn contest(id: &str, opens: i64, closes: i64) -> crate::campaigns::ContestConfig {
    let text = format!(
        r#"
id = "{id}"
title = "Concours de test"
description = "Un concours pour les tests."
sponsor = "Marque Exemple"
kind = "survey"
opens_at = "{}"
closes_at = "{}"
entry_points = 10
[[questions]]
id = "frequence"
type = "single_choice"
label = "Fréquence ?"
options = ["souvent", "rarement"]
required = true
[[questions]]
id = "rayons"
type = "multiple_choice"
label = "Rayons ?"
options = ["bio", "local", "frais"]
required = false
[[questions]]
id = "note"
type = "rating"
label = "Note ?"
required = false
[[questions]]
id = "idee"
type = "free_text"
label = "Idée ?"
required = false
[[prizes]]
label = "Premier prix"
count = 1
[[prizes]]
label = "Panier"
count = 2
"#,
        at(opens),
        at(closes)
    );
    toml::from_str(&text).expect("contest")
}

/// A product test with its windows as offsets from now.
pub fn product_test(
    id: &str,
    ean: &str,
    apply: (i64, i64),
    review: (i64, i64),
    slots: u32,
    for_label: u32,
) -> crate::campaigns::ProductTestConfig {
    crate::campaigns::ProductTestConfig {
        id: id.into(),
        ean: ean.into(),
        product_name: "Yaourt de test".into(),
        brand: "Marque Exemple".into(),
        brand_slug: None,
        theme: None,
        slots,
        applications_open_at: at(apply.0),
        applications_close_at: at(apply.1),
        reviews_open_at: at(review.0),
        reviews_close_at: at(review.1),
        reviews_for_label: for_label,
    }
}

/// Applies campaigns to the app's table.
pub async fn apply_campaigns<T: crate::store::Table>(
    app: &App<T>,
    contests: Vec<crate::campaigns::ContestConfig>,
    tests: Vec<crate::campaigns::ProductTestConfig>,
) {
    let c = crate::campaigns::Campaigns {
        contests,
        product_tests: tests,
        challenges: vec![],
        files: None,
        ..Default::default()
    };
    crate::campaigns::apply(&app.table, &c)
        .await
        .expect("apply");
}

/// An event (round table) in store, its registration window and start as
/// offsets from now.
pub fn roundtable(
    id: &str,
    window: (i64, i64),
    starts: i64,
    capacity: u32,
) -> crate::roundtables::RoundtableConfig {
    crate::roundtables::RoundtableConfig {
        id: id.into(),
        title: "Table ronde : le magasin de demain".into(),
        description: "Imaginons ensemble le magasin de demain.".into(),
        kind: crate::roundtables::RoundtableKind::InStore,
        place: Some("Magasin de Montreuil, 2 rue de Paris".into()),
        link: None,
        starts_at: at(starts),
        duration_minutes: 90,
        capacity,
        registration_opens_at: at(window.0),
        registration_closes_at: at(window.1),
        theme: None,
    }
}

/// Applies events (round tables) to the app's table.
pub async fn apply_roundtables<T: crate::store::Table>(
    app: &App<T>,
    events: Vec<crate::roundtables::RoundtableConfig>,
) {
    let c = crate::campaigns::Campaigns {
        events,
        ..Default::default()
    };
    crate::campaigns::apply(&app.table, &c)
        .await
        .expect("apply");
}

/// A challenge (défi) open between the two offsets (seconds from now),
/// sponsored by `brand` when given.
pub fn challenge(
    id: &str,
    opens: i64,
    closes: i64,
    brand: Option<&str>,
) -> crate::campaigns::ChallengeConfig {
    crate::campaigns::ChallengeConfig {
        id: id.into(),
        title: "Le produit de demain".into(),
        question: "Quel produit anti-gaspi aimeriez-vous trouver en rayon ?".into(),
        brief: "Proposez vos idées : la marque étudiera les plus soutenues.".into(),
        theme: "environment".into(),
        sponsor: brand.map(|b| crate::campaigns::Sponsor {
            brand: b.into(),
            name: "Marque Exemple".into(),
        }),
        opens_at: at(opens),
        closes_at: at(closes),
        proposal_points: 15,
        winner_points: 300,
    }
}

/// Applies challenges to the app's table.
pub async fn apply_challenges<T: crate::store::Table>(
    app: &App<T>,
    challenges: Vec<crate::campaigns::ChallengeConfig>,
) {
    let c = crate::campaigns::Campaigns {
        challenges,
        ..Default::default()
    };
    crate::campaigns::apply(&app.table, &c)
        .await
        .expect("apply");
}

/// Applies surveys (`crate::surveys`) to the app's table.
pub async fn apply_surveys<T: crate::store::Table>(
    app: &App<T>,
    surveys: Vec<crate::surveys::SurveyConfig>,
) {
    let c = crate::campaigns::Campaigns {
        surveys,
        ..Default::default()
    };
    crate::campaigns::apply(&app.table, &c)
        .await
        .expect("apply");
}

/// A survey open between the two offsets (seconds from now), for every
/// member unless `audience` (TOML lines of `[audience]`) says otherwise,
/// with one question of each type (`frequence` single and required,
/// `rayons` multiple of 1 to 2, `note` scale 0 to 10, `idee` text of 200
/// characters at most) and 15 points.
pub fn survey(id: &str, opens: i64, closes: i64, audience: &str) -> crate::surveys::SurveyConfig {
    let text = format!(
        r#"
id = "{id}"
title = "Votre avis sur la V1"
description = "Une enquête pour les tests."
opens_at = "{}"
closes_at = "{}"
points = 15
[audience]
{audience}
[[questions]]
id = "frequence"
type = "single"
label = "À quelle fréquence venez-vous ?"
options = ["souvent", "parfois", "rarement"]
required = true
[[questions]]
id = "rayons"
type = "multiple"
label = "Vos rayons préférés ?"
options = ["bio", "local", "vrac"]
max_choices = 2
[[questions]]
id = "note"
type = "scale"
label = "Recommanderiez-vous la communauté ?"
min = 0
max = 10
[[questions]]
id = "idee"
type = "text"
label = "Une idée pour la V2 ?"
max_length = 200
"#,
        at(opens),
        at(closes)
    );
    toml::from_str(&text).expect("survey")
}

/// A sample SQS event of `events/sqs/{name}` (the repository's fixtures).
pub fn sqs_sample(name: &str) -> aws_lambda_events::event::sqs::SqsEvent {
    let path = format!("{}/../events/sqs/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("sample");
    serde_json::from_str(&text).expect("an SQS event")
}

/// An SQS event carrying `events`, message ids `m0`, `m1`, …
pub fn sqs_batch(events: &[crate::events::Event]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| json!({"messageId": format!("m{i}"), "body": serde_json::to_string(e).expect("json"), "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({"Records": records})).expect("event")
}

/// An SQS event carrying the raw message `bodies` (what an inbound
/// system sends, valid or not), message ids `m0`, `m1`, …
pub fn sqs_bodies<S: AsRef<str>>(bodies: &[S]) -> aws_lambda_events::event::sqs::SqsEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m{i}"), "body": b.as_ref(), "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({"Records": records})).expect("event")
}

/// Delivers `event` to `consumer` through its Lambda entry
/// ([`crate::queue::sqs`]) and returns the ids of the messages that
/// failed: those reported in the partial batch response, or every one
/// when the whole invocation failed.
pub async fn deliver<C: crate::queue::Consumer + ?Sized>(
    consumer: &C,
    event: aws_lambda_events::event::sqs::SqsEvent,
) -> Vec<String> {
    let ids: Vec<String> = event
        .records
        .iter()
        .map(|r| r.message_id.clone().unwrap_or_default())
        .collect();
    match crate::queue::sqs(consumer, event).await {
        Ok(r) => r
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect(),
        Err(crate::queue::WholeBatchFailed(n)) => {
            assert_eq!(n, ids.len(), "the whole batch failed");
            ids
        }
    }
}

/// Delivers every event in the outbox to the insights consumer, as the
/// relay and the insights queue would (each at most once here; the consumer
/// absorbs repeats): for tests of what it maintains, such as an idea's
/// `comment_count`.
pub async fn run_insights<T: crate::store::Table + Clone>(app: &App<T>) {
    use crate::events::{outbox_pk, Event, OUTBOX_BUCKETS};
    use crate::store::{Index, Query};
    let mut msgs = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let q = Query::new(Index::Primary, outbox_pk(b)).limit(1000);
        let items = crate::store::all_pages(&app.table, q)
            .await
            .expect("outbox");
        for e in items.iter().filter_map(Event::from_item) {
            msgs.push(crate::queue::Message {
                id: e.event_id.clone(),
                body: serde_json::to_string(&e).expect("event"),
            });
        }
    }
    let consumer = crate::insights::InsightsConsumer { app: app.clone() };
    for chunk in msgs.chunks(10) {
        // As the insights Lambda runs it (its calls recorded as the function's).
        let failed = crate::access::function(
            crate::queue::Consumer::function(&consumer),
            crate::queue::handle(&consumer, chunk),
        )
        .await;
        assert!(failed.is_empty(), "insights failed on {failed:?}");
    }
}

/// Delivers to the insights consumer the `vote.cast` events of the votes
/// of `members` on `idea`, as the relay makes them from the records'
/// inserts (`events::from_change`): on both adapters (moto has no stream).
pub async fn insights_votes<T: crate::store::Table + Clone>(
    app: &App<T>,
    idea: &str,
    members: &[&As],
) {
    use crate::store::feed::{Change, ChangeName};
    let id = crate::domain::IdeaId::parse(idea).expect("idea id");
    let mut msgs = Vec::new();
    for (i, who) in members.iter().enumerate() {
        let k = crate::votes::vote_key(&id, &who.sub);
        let Some(record) = app.table.get(&k, true).await.expect("vote") else {
            continue;
        };
        let change = Change {
            seq: format!("{i:020}"),
            name: ChangeName::Insert,
            pk: k.pk.clone(),
            sk: k.sk.clone(),
            new: Some(record),
            old: None,
            at: time::OffsetDateTime::now_utc().unix_timestamp(),
        };
        let e = crate::events::from_change(&change).expect("a vote event");
        msgs.push(crate::queue::Message {
            id: e.event_id.clone(),
            body: serde_json::to_string(&e).expect("event"),
        });
    }
    let consumer = crate::insights::InsightsConsumer { app: app.clone() };
    for _ in 0..2 {
        let failed = crate::access::function(
            crate::queue::Consumer::function(&consumer),
            crate::queue::handle(&consumer, &msgs),
        )
        .await;
        assert!(failed.is_empty(), "insights failed on {failed:?}");
    }
}

/// The moto server's endpoint for tests of the AWS adapters, or `None` to
/// skip (no endpoint, and `COMMUNITY_REQUIRE_MOTO` is not `1`; with it, a
/// missing endpoint fails the test instead of skipping it).
pub fn moto_endpoint() -> Option<String> {
    match std::env::var("COMMUNITY_TEST_DYNAMODB_ENDPOINT") {
        Ok(e) => Some(e),
        Err(_) => {
            assert!(
                std::env::var("COMMUNITY_REQUIRE_MOTO").map_or(true, |v| v != "1"),
                "COMMUNITY_REQUIRE_MOTO=1 but no endpoint"
            );
            eprintln!("skipping: COMMUNITY_TEST_DYNAMODB_ENDPOINT is not set (run ./scripts/test)");
            None
        }
    }
}

/// A fresh table on the moto server (`prefix-<ulid>`), or `None` to skip
/// as [`moto_endpoint`] says.
pub async fn moto_table(prefix: &str) -> Option<std::sync::Arc<crate::store::dynamo::DynamoTable>> {
    let endpoint = moto_endpoint()?;
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(conf);
    let name = format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase());
    crate::store::dynamo::create_table(&client, &name)
        .await
        .expect("table on moto");
    Some(std::sync::Arc::new(crate::store::dynamo::DynamoTable::new(
        client, name,
    )))
}

/// A stand-in for the user pool as a token issuer (tests of
/// `crate::tokens`): an RSA key (a fixed test key, never used elsewhere),
/// its JWKS served over HTTP on loopback, and tokens signed with it.
pub struct TestIssuer {
    pub issuer: String,
    pub jwks_url: String,
    pub client_id: String,
    /// How many times the JWKS was fetched.
    pub fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    key: jsonwebtoken::EncodingKey,
    pub kid: String,
}

impl TestIssuer {
    pub async fn start() -> TestIssuer {
        use jsonwebtoken::jwk::{Jwk, JwkSet};
        let key =
            jsonwebtoken::EncodingKey::from_rsa_der(include_bytes!("testing_data/issuer-rsa.der"));
        let kid = "test-key-1".to_owned();
        let mut jwk = Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some(kid.clone());
        let set = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("jwks");
        let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = fetches.clone();
        let app = Router::new().route(
            "/pool/.well-known/jwks.json",
            axum::routing::get(move || {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let set = set.clone();
                async move { ([("content-type", "application/json")], set) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let issuer = format!("http://{addr}/pool");
        TestIssuer {
            jwks_url: format!("{issuer}/.well-known/jwks.json"),
            issuer,
            client_id: "test-client".into(),
            fetches,
            key,
            kid,
        }
    }

    /// The verifier a function would build for this issuer.
    pub fn verifier(&self) -> crate::tokens::TokenVerifier {
        crate::tokens::TokenVerifier::jwks(
            &self.jwks_url,
            &self.issuer,
            vec![self.client_id.clone()],
        )
        .expect("verifier")
    }

    /// A valid ID token for `who` (RS256, this issuer, this client, an hour).
    pub fn token(&self, who: &As) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let mut claims = json!({
            "sub": who.sub, "email": who.email, "email_verified": true,
            "iss": self.issuer, "aud": self.client_id, "token_use": "id",
            "iat": now, "exp": now + 3600,
        });
        if !who.groups.is_empty() {
            claims["cognito:groups"] = json!(who.groups);
        }
        self.sign(&claims)
    }

    /// Signs any claims with this issuer's key (for tokens that must fail).
    pub fn sign(&self, claims: &Value) -> String {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        h.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&h, claims, &self.key).expect("sign")
    }
}

/// An SES bounce event (`Permanent`, `Transient`) about a community mail to
/// `who`, as the configuration set publishes it (tagged with the member).
pub fn ses_bounce(who: &As, bounce_type: &str) -> String {
    let message_id = format!("test-{}", ulid::Ulid::new());
    json!({
        "eventType": "Bounce",
        "bounce": {"bounceType": bounce_type, "bounceSubType": "General",
                   "bouncedRecipients": [{"emailAddress": who.email}],
                   "feedbackId": format!("{message_id}-feedback")},
        "mail": {"messageId": message_id, "destination": [who.email],
                 "tags": {"member": [who.sub], "mail": ["welcome"]}}
    })
    .to_string()
}

/// Suppresses `who`'s address as a permanent bounce does: through the
/// `mail_feedback` consumer.
pub async fn suppress<T: crate::store::Table + Clone>(app: &App<T>, who: &As) {
    let consumer = crate::mail::feedback::FeedbackConsumer { app: app.clone() };
    let m = crate::queue::Message {
        id: "bounce".into(),
        body: ses_bounce(who, "Permanent"),
    };
    let failed = crate::queue::handle(&consumer, &[m]).await;
    assert!(failed.is_empty(), "the bounce was not recorded");
    let row = crate::members::get(app, &caller(who).id)
        .await
        .expect("member");
    assert_eq!(row.email_suppressed.as_deref(), Some("bounce"));
}

/// A function's cold start reads the applied campaign from its table
/// (`crate::lambda::init`: `App::from_table`, then `App::refresh`), as the
/// code of function crate `krate` (recorded for the permissions proof):
/// marketing's applied threshold replaces the built-in one.
pub async fn cold_start(krate: &'static str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = EmbeddedTable::open(dir.path()).expect("open store");
    let mut files = crate::config::CampaignFiles::builtin();
    files.community = files
        .community
        .replace("vote_threshold = 10000", "vote_threshold = 1234");
    crate::store::Table::transact(
        &table,
        vec![crate::live::campaign_write(&files, &crate::domain::now())],
    )
    .await
    .expect("campaign applied");
    let app = App::from_table(
        table,
        settings(),
        crate::live::Overrides::default(),
        crate::live::TTL,
    );
    assert_eq!(app.settings().vote_threshold, 10_000, "built-in until read");
    crate::access::function(krate, app.refresh())
        .await
        .expect("settings read");
    assert_eq!(app.settings().vote_threshold, 1234, "the applied campaign");
}
