//! Logs and spans, the same on Lambda and locally.
//!
//! - Logs: JSON lines in the Lambda log format when `AWS_LAMBDA_LOG_FORMAT`
//!   is `JSON` (text otherwise); the level comes from `AWS_LAMBDA_LOG_LEVEL`
//!   (the function's `ApplicationLogLevel`), else `RUST_LOG`, else `info`.
//!   Each JSON line carries `timestamp`, `level`, `message`, the event's
//!   fields and the fields of every enclosing span, flattened (so Logs
//!   Insights filters on `request_id`, `member`, `idea`, `event_id`).
//! - Spans: `request` per HTTP request and `batch` per queue batch, with
//!   `request_id` (the Lambda request id; generated locally), `function`
//!   and `cold_start` (true for the first invocation of the process only);
//!   `message` per queue message (`crate::queue`).
//! - Never in logs: email addresses, loyalty card numbers, display names.
//!   Spans name members by id; error texts from outside (AWS, SES) pass
//!   through [`redact`].

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::field::{Field, Visit};
use tracing::{Event, Instrument, Level, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

static COLD: AtomicBool = AtomicBool::new(true);

/// True for the first invocation of this process only.
pub fn cold_start() -> bool {
    COLD.swap(false, Ordering::Relaxed)
}

/// The function's name: `AWS_LAMBDA_FUNCTION_NAME` on Lambda, `local` elsewhere.
pub fn function_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|_| "local".into())
    })
}

/// A request id for invocations that have none (local server, local queues).
pub fn new_request_id() -> String {
    ulid::Ulid::new().to_string().to_ascii_lowercase()
}

/// The span of one HTTP request.
pub fn request_span(request_id: &str, method: &str, route: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %request_id,
        function = function_name(),
        cold_start = cold_start(),
        method = %method,
        route = %route,
        status = tracing::field::Empty,
    )
}

/// The span of one queue (or stream) batch.
pub fn batch_span(request_id: &str, consumer: &str, size: usize) -> tracing::Span {
    tracing::info_span!(
        "batch",
        request_id = %request_id,
        function = function_name(),
        cold_start = cold_start(),
        consumer = %consumer,
        size,
    )
}

/// Middleware of every Router (`crate::http::finish`): the request span,
/// then the invocation's metrics flushed (Lambda).
pub async fn http_request(req: Request, next: Next) -> Response {
    let request_id = req
        .extensions()
        .get::<lambda_http::Context>()
        .map(|c| c.request_id.clone())
        .unwrap_or_else(new_request_id);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "-".into());
    let span = request_span(&request_id, req.method().as_str(), &route);
    // The route's AWS calls, for the least-privilege proof (crate::access).
    let method = req.method().clone();
    let res = crate::access::entry(|| format!("http:{method} {route}"), next.run(req))
        .instrument(span.clone())
        .await;
    span.record("status", res.status().as_u16());
    span.in_scope(|| tracing::debug!(status = res.status().as_u16(), "request done"));
    crate::metrics::flush(&request_id);
    res
}

/// Masks what looks like an email address or a card number (8+ digits in a
/// row) in a text that comes from outside the code (an AWS error message).
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let digits = word
            .split(|c: char| !c.is_ascii_digit())
            .map(str::len)
            .max()
            .unwrap_or(0);
        if word.contains('@') || digits >= 8 {
            out.push_str("[redacted]");
        } else {
            out.push_str(word);
        }
    }
    out
}

/// The filter: `AWS_LAMBDA_LOG_LEVEL` (TRACE … FATAL), else `RUST_LOG`
/// (directives), else `info`. Libraries are capped at `info` whatever the
/// level: the runtime logs raw events (bodies with emails) at TRACE.
pub fn filter_from_env() -> EnvFilter {
    let lambda_level = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
    let directives = match lambda_level.as_deref().map(str::to_ascii_lowercase) {
        Some(l) => {
            let level: LevelFilter = match l.as_str() {
                "fatal" => LevelFilter::ERROR,
                other => other.parse().unwrap_or(LevelFilter::INFO),
            };
            with_library_caps(level)
        }
        None => match std::env::var("RUST_LOG") {
            Ok(d) if !d.trim().is_empty() => d,
            _ => with_library_caps(LevelFilter::INFO),
        },
    };
    EnvFilter::builder().parse_lossy(directives)
}

fn with_library_caps(level: LevelFilter) -> String {
    let cap = level.min(LevelFilter::INFO);
    let mut d = level.to_string().to_ascii_lowercase();
    for lib in [
        "lambda_runtime",
        "lambda_http",
        "aws",
        "hyper",
        "h2",
        "rustls",
        "tower",
        "axum",
        "redb",
    ] {
        d.push_str(&format!(",{lib}={}", cap.to_string().to_ascii_lowercase()));
    }
    d
}

/// Installs the process's subscriber (Lambda init): JSON when
/// `AWS_LAMBDA_LOG_FORMAT=JSON`, text otherwise, to stdout.
pub fn init_logging() {
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter_from_env())
        .with_writer(std::io::stdout);
    let result = if json {
        builder
            .fmt_fields(JsonFields::new())
            .event_format(LambdaJson)
            .try_init()
    } else {
        builder.with_target(false).without_time().try_init()
    };
    if let Err(e) = result {
        eprintln!("logging was already set up: {e}");
    }
}

/// A formatting layer writing the JSON lines (for tests and custom stacks).
pub fn json_layer<S, W>(writer: W) -> tracing_subscriber::fmt::Layer<S, JsonFields, LambdaJson, W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    tracing_subscriber::fmt::layer()
        .fmt_fields(JsonFields::new())
        .event_format(LambdaJson)
        .with_writer(writer)
}

/// One JSON object per event: `timestamp`, `level`, `message`, then the
/// fields of the enclosing spans (outermost first) and of the event.
pub struct LambdaJson;

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut obj = Map::new();
        let ts = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        obj.insert("timestamp".into(), Value::String(ts));
        obj.insert("level".into(), Value::String(level(meta.level()).into()));
        if let Some(scope) = ctx.event_scope() {
            let mut names = Vec::new();
            for span in scope.from_root() {
                names.push(span.name());
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<N>>() {
                    if let Ok(Value::Object(fields)) =
                        serde_json::from_str::<Value>(f.fields.as_str())
                    {
                        obj.extend(fields);
                    }
                }
            }
            obj.insert("span".into(), Value::String(names.join(":")));
        }
        let mut visitor = Fields(&mut obj);
        event.record(&mut visitor);
        obj.insert("target".into(), Value::String(meta.target().into()));
        let line = serde_json::to_string(&Value::Object(obj)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{line}")
    }
}

fn level(l: &Level) -> &'static str {
    match *l {
        Level::TRACE => "TRACE",
        Level::DEBUG => "DEBUG",
        Level::INFO => "INFO",
        Level::WARN => "WARN",
        Level::ERROR => "ERROR",
    }
}

struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::String(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_masks_addresses_and_card_numbers_only() {
        assert_eq!(
            redact("Email address is not verified: alice@example.fr (card 9130012345678901)"),
            "Email address is not verified: [redacted] (card [redacted]"
        );
        assert_eq!(
            redact("throttled after 3 attempts"),
            "throttled after 3 attempts"
        );
    }

    #[test]
    fn library_levels_are_capped_at_info() {
        let d = with_library_caps(LevelFilter::TRACE);
        assert!(d.starts_with("trace,"));
        assert!(d.contains("lambda_runtime=info"));
        let d = with_library_caps(LevelFilter::WARN);
        assert!(d.contains("aws=warn"), "{d}");
    }
}
