//! The local server: every function's routes on one address, over the
//! durable embedded store, with the same request context API Gateway gives,
//! and the event pipeline (relay, queues, consumers) running in-process.

pub mod auth;
pub mod docs;
pub mod pipeline;
pub mod schedule;

use async_trait::async_trait;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use community::events::{Event, Queue};
use community::insights::InsightsConsumer;
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::points::PointsConsumer;
use community::queue::Consumer;
use community::store::capacity::{self, Meter};
use community::store::feed::ChangeFeed;
use community::store::{Index, Item, Query as StoreQuery, StoreError, Table, Write};
use community::App;
use pipeline::Pipeline;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// Every HTTP route of every function, plus the docs pages.
pub fn app<T: Table + Clone>(app: App<T>, verifier: auth::Verifier) -> Router {
    with_auth(routes(app.clone()), &app, verifier)
}

fn routes<T: Table + Clone>(app: App<T>) -> Router {
    Router::new()
        .merge(ideas::routes(app.clone()))
        .merge(signup::routes(app.clone()))
        .merge(votes::routes(app.clone()))
        .merge(committee::routes(app.clone()))
        .merge(contests::routes(app.clone()))
        .merge(challenges::routes(app.clone()))
        .merge(surveys::routes(app.clone()))
        .merge(reviews::routes(app.clone()))
        .merge(moderation::routes(app.clone()))
        .merge(links::routes(app.clone()))
        .merge(roundtables::routes(app.clone()))
        .merge(marketing::routes(app))
        .route(
            "/openapi.json",
            get(|| async {
                ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
            }),
        )
        .route("/docs", get(|| async { Html(docs::page()) }))
}

fn with_auth<T: Table + Clone>(routes: Router, app: &App<T>, verifier: auth::Verifier) -> Router {
    community::http::finish(routes, app).layer(axum::middleware::from_fn_with_state(
        verifier,
        auth::authorize,
    ))
}

/// The outbound loyalty queue, locally: each message is recorded and listed
/// at `GET /local/loyalty` (on AWS the loyalty programme consumes the queue).
pub struct LoyaltyRecorder<T> {
    pub table: T,
}

#[async_trait]
impl<T: Table + Clone> Consumer for LoyaltyRecorder<T> {
    fn name(&self) -> &'static str {
        "loyalty"
    }
    async fn apply(&self, e: &Event) -> community::error::Result<()> {
        let item = json!({"pk": "LLOYALTY", "sk": format!("{}#{}", e.at, e.event_id),
                          "message": serde_json::to_value(e).unwrap_or(Value::Null)});
        let Value::Object(item) = item else {
            return Ok(());
        };
        match self.table.transact(vec![Write::put_new(item)]).await {
            Ok(()) | Err(StoreError::ConditionFailed { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The local server: the routes and the pipeline over one store.
pub struct Local<T> {
    pub app: App<T>,
    pub pipeline: Arc<Pipeline<T>>,
    pub mailbox: DirMailbox,
    /// The store's capacity meter, when it has one (the embedded store):
    /// requests are attributed to their route and `GET /local/capacity`
    /// reports them.
    pub meter: Option<Arc<Meter>>,
}

impl<T: Table + ChangeFeed + Clone> Local<T> {
    pub fn new(app: App<T>, data_dir: &Path) -> std::io::Result<Self> {
        let mailbox = DirMailbox::new(data_dir.join("mailbox"))?;
        let mut consumers: HashMap<Queue, Arc<dyn Consumer>> = HashMap::new();
        consumers.insert(Queue::Points, Arc::new(PointsConsumer { app: app.clone() }));
        consumers.insert(
            Queue::Emails,
            Arc::new(EmailsConsumer {
                app: app.clone(),
                mailer: mailbox.clone(),
            }),
        );
        consumers.insert(
            Queue::Insights,
            Arc::new(InsightsConsumer { app: app.clone() }),
        );
        consumers.insert(
            Queue::Loyalty,
            Arc::new(LoyaltyRecorder {
                table: app.table.clone(),
            }),
        );
        // The loyalty programme's answers (sent locally with
        // `POST /local/loyalty/answers`).
        consumers.insert(
            Queue::LoyaltyAnswers,
            Arc::new(community::loyalty::AnswersConsumer { app: app.clone() }),
        );
        // SES's bounces and complaints (simulated locally with
        // `POST /local/ses-events`).
        consumers.insert(
            Queue::MailFeedback,
            Arc::new(community::mail::feedback::FeedbackConsumer { app: app.clone() }),
        );
        // The loyalty programme's weekly basket summaries (sent locally with
        // `POST /local/baskets`).
        consumers.insert(
            Queue::Baskets,
            Arc::new(community::baskets::BasketsConsumer { app: app.clone() }),
        );
        let pipeline = Arc::new(Pipeline {
            table: app.table.clone(),
            consumers,
            aggregator: Some(app.clone()),
            max_receives: pipeline::MAX_RECEIVES,
            meter: None,
        });
        Ok(Local {
            app,
            pipeline,
            mailbox,
            meter: None,
        })
    }

    /// Attributes every request and consumer batch to its cause on `meter`
    /// and serves `GET /local/capacity`. Call before the pipeline starts.
    pub fn metered(mut self, meter: Arc<Meter>) -> Self {
        if let Some(p) = Arc::get_mut(&mut self.pipeline) {
            p.meter = Some(meter.clone());
        }
        self.meter = Some(meter);
        self
    }

    /// Every route, the local-only routes included.
    pub fn router(&self, verifier: auth::Verifier) -> Router {
        let local = Router::new()
            .route("/local/mailbox", get(mailbox))
            .with_state(self.mailbox.clone())
            .merge(
                Router::new()
                    .route("/local/dead-letters", get(dead_letters::<T>))
                    .route("/local/dead-letters/redrive", post(redrive::<T>))
                    .route("/local/loyalty", get(loyalty::<T>))
                    .route("/local/loyalty/answers", post(loyalty_answers::<T>))
                    .route("/local/ses-events", post(ses_events::<T>))
                    .route("/local/baskets", post(baskets::<T>))
                    .route("/local/queues", get(queues::<T>))
                    .with_state(self.pipeline.clone()),
            )
            .merge(
                Router::new()
                    .route("/local/ambassadors/run", post(run_ambassadors::<T>))
                    .with_state(self.app.clone()),
            )
            .merge(
                Router::new()
                    .route("/local/digests/run", post(run_digests::<T>))
                    .with_state((self.app.clone(), self.mailbox.clone())),
            );
        let mut all = routes(self.app.clone()).merge(local);
        if let Some(meter) = &self.meter {
            all = all
                .merge(
                    Router::new()
                        .route("/local/capacity", get(capacity_report))
                        .route("/local/capacity/reset", post(capacity_reset))
                        .with_state(meter.clone()),
                )
                .route_layer(axum::middleware::from_fn_with_state(
                    meter.clone(),
                    attribute,
                ));
        }
        with_auth(all, &self.app, verifier)
    }
}

/// Attributes a request's store calls and messages to its route
/// (`METHOD /path/{param}`), and counts it.
async fn attribute(
    State(meter): State<Arc<Meter>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".into());
    if path.starts_with("/local/capacity") {
        return next.run(req).await;
    }
    let cause = format!("{} {path}", req.method());
    meter.call(&cause);
    let started = std::time::Instant::now();
    let res = capacity::attributed(cause.clone(), next.run(req)).await;
    meter.busy(&cause, started.elapsed());
    res
}

/// `GET /local/capacity`: per route and consumer, calls, write and read
/// units, conflicts, throttles and messages per queue, and the hottest
/// partitions (see `community::store::capacity`).
async fn capacity_report(State(meter): State<Arc<Meter>>) -> Json<capacity::Report> {
    Json(meter.report())
}

/// `POST /local/capacity/reset`: zeroes the meter.
async fn capacity_reset(State(meter): State<Arc<Meter>>) -> axum::http::StatusCode {
    meter.reset();
    axum::http::StatusCode::NO_CONTENT
}

impl<T: Table + ChangeFeed + Clone> Local<T> {
    /// The scheduled jobs (EventBridge on AWS), every `period`
    /// (`COMMUNITY_SCHEDULE_EVERY_SECS`): the ambassadors' scoring and the
    /// comment digests.
    pub fn spawn_scheduled(&self, period: std::time::Duration) {
        let app = self.app.clone();
        schedule::spawn_every("ambassadors", period, move || {
            let app = app.clone();
            async move { community::ambassadors::run(&app).await.map(|_| ()) }
        });
        let app = self.app.clone();
        schedule::spawn_every("loyalty-overdue", period, move || {
            let app = app.clone();
            async move { community::loyalty::check_overdue(&app).await.map(|_| ()) }
        });
        // Events and round tables: the reminder the day before (in the
        // `digests` function's hourly run on AWS).
        let app = self.app.clone();
        schedule::spawn_every("roundtable-reminders", period, move || {
            let app = app.clone();
            async move {
                community::roundtables::remind(&app).await.map(|r| {
                    tracing::info!(events = r.events, started = r.started, "event reminders")
                })
            }
        });
        let (app, mailbox) = (self.app.clone(), self.mailbox.clone());
        schedule::spawn_every("digests", period, move || {
            let (app, mailbox) = (app.clone(), mailbox.clone());
            async move {
                community::digests::run(&app, &mailbox).await.map(|r| {
                    tracing::info!(
                        mails = r.mails,
                        comments = r.comments,
                        "comment digests sent"
                    )
                })
            }
        });
    }
}

/// `POST /local/ambassadors/run`: the ambassadors' scheduled run, now.
async fn run_ambassadors<T: Table + Clone>(
    State(app): State<App<T>>,
) -> Result<Json<community::ambassadors::RunReport>, community::http::ApiError> {
    Ok(Json(community::ambassadors::run(&app).await?))
}

/// `POST /local/digests/run`: runs the comment digests now.
async fn run_digests<T: Table + Clone>(
    State((app, mailbox)): State<(App<T>, DirMailbox)>,
) -> Result<Json<Value>, community::http::ApiError> {
    let r = community::digests::run(&app, &mailbox).await?;
    Ok(Json(json!(r)))
}

/// `GET /local/queues`: per local queue, the messages waiting and the age of
/// the oldest (SQS's ApproximateNumberOfMessages and
/// ApproximateAgeOfOldestMessage), and the dead letters.
async fn queues<T: Table + ChangeFeed + Clone>(
    State(p): State<Arc<Pipeline<T>>>,
) -> Result<Json<Value>, community::http::ApiError> {
    Ok(Json(json!({"queues": p.queue_stats().await?})))
}

async fn mailbox(State(m): State<DirMailbox>) -> Json<Value> {
    let mails = m.list().unwrap_or_default();
    Json(
        json!({"items": mails.iter().map(|m| json!({"to": m.to, "subject": m.subject, "text": m.text,
        "mail_id": m.mail_id, "headers": m.headers})).collect::<Vec<_>>()}),
    )
}

async fn dead_letters<T: Table + ChangeFeed + Clone>(
    State(p): State<Arc<Pipeline<T>>>,
) -> Result<Json<Value>, community::http::ApiError> {
    Ok(Json(json!({"items": p.dead_letters().await?})))
}

async fn redrive<T: Table + ChangeFeed + Clone>(
    State(p): State<Arc<Pipeline<T>>>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<Value>, community::http::ApiError> {
    let only = match q.get("queue") {
        Some(name) => Some(Queue::parse(name).ok_or_else(|| {
            community::http::ApiError::bad_request(
                "queue",
                "must be points, emails, loyalty, insights, loyalty_answers, mail_feedback or baskets",
            )
        })?),
        None => None,
    };
    Ok(Json(json!({"redriven": p.redrive(only).await?})))
}

async fn loyalty<T: Table + Clone>(
    State(p): State<Arc<Pipeline<T>>>,
) -> Result<Json<Value>, community::http::ApiError> {
    let page = p
        .table
        .query(&StoreQuery::new(Index::Primary, "LLOYALTY").limit(1000))
        .await?;
    let items: Vec<Value> = page
        .items
        .into_iter()
        .map(|i: Item| i.get("message").cloned().unwrap_or(Value::Null))
        .collect();
    Ok(Json(json!({"items": items})))
}

/// What an inbound system does on AWS, locally: sends `body` (one JSON
/// message or an array of them) to inbound queue `queue`, each message
/// unchecked, as SQS takes any message; the queue's consumer applies it or
/// dead-letters it (`GET /local/dead-letters`). 202 `{"sent":[ids]}`; 400
/// naming `body` (`expected` says what it must be) when it is not JSON.
async fn inbound<T: Table + ChangeFeed + Clone>(
    p: &Pipeline<T>,
    queue: Queue,
    body: &[u8],
    expected: &str,
) -> Result<(axum::http::StatusCode, Json<Value>), community::http::ApiError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|_| community::http::ApiError::bad_request("body", expected))?;
    let messages = match v {
        Value::Array(a) => a,
        one => vec![one],
    };
    let mut sent = Vec::new();
    for m in messages {
        sent.push(p.send(queue, &m.to_string()).await?);
    }
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(json!({"sent": sent})),
    ))
}

/// `POST /local/loyalty/answers`: what the loyalty programme does on AWS,
/// locally: sends its answers (`{"redemption_id","status","reason"?}` or
/// `{"card_link_id","status","reason"?}`, one or an array) to the inbound
/// `loyalty_answers` queue, unchecked, as SQS
/// takes any message; the loyalty consumer applies them (an answer it
/// cannot apply reaches `GET /local/dead-letters`). 202 `{"sent":[ids]}`.
async fn loyalty_answers<T: Table + ChangeFeed + Clone>(
    State(p): State<Arc<Pipeline<T>>>,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), community::http::ApiError> {
    inbound(
        &p,
        Queue::LoyaltyAnswers,
        &body,
        "must be a JSON answer or an array of them",
    )
    .await
}

/// `POST /local/baskets`: what the loyalty programme does on AWS, locally:
/// sends its weekly basket summaries (`{"kind":"member_week",…}` or
/// `{"kind":"baseline_week",…}`, one or an array; `events/loyalty/` has
/// samples) to the inbound `baskets` queue, unchecked, as SQS takes any
/// message; the baskets consumer applies them (one it cannot apply reaches
/// `GET /local/dead-letters`). 202 `{"sent":[ids]}`.
async fn baskets<T: Table + ChangeFeed + Clone>(
    State(p): State<Arc<Pipeline<T>>>,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), community::http::ApiError> {
    inbound(
        &p,
        Queue::Baskets,
        &body,
        "must be a JSON basket summary or an array of them",
    )
    .await
}

/// `POST /local/ses-events`: what SES does on AWS through the configuration
/// set's SNS topic, locally: sends its bounce or complaint events (SES's
/// event JSON, one or an array; `events/ses/` has samples) to the inbound
/// `mail_feedback` queue, unchecked, as SNS delivers whatever SES publishes;
/// the feedback consumer applies them (one it cannot read reaches
/// `GET /local/dead-letters`). Tag the mail with the member
/// (`mail.tags.member`) to suppress their address. 202 `{"sent":[ids]}`.
async fn ses_events<T: Table + ChangeFeed + Clone>(
    State(p): State<Arc<Pipeline<T>>>,
    body: axum::body::Bytes,
) -> Result<(axum::http::StatusCode, Json<Value>), community::http::ApiError> {
    inbound(
        &p,
        Queue::MailFeedback,
        &body,
        "must be an SES event (JSON) or an array of them",
    )
    .await
}
