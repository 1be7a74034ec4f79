//! Business metrics: every name, its dimensions and the one function that
//! records it, in one place (infra/tests/drift.py checks the dashboard in
//! infra/template.yaml against the `Metric` constants below).
//!
//! Services call a `record_*` function once per COMMITTED effect: after the
//! transaction succeeded, never for a replay, a duplicate or a refused write.
//! The calls go through the `metrics` facade: on Lambda the recorder is the
//! CloudWatch Embedded Metric Format collector installed by
//! `crate::lambda::init` (namespace [`NAMESPACE`], dimension `function`,
//! flushed to stdout after each invocation); elsewhere (local server, tests)
//! no recorder is installed and the calls cost nothing beyond a debug log.

use std::sync::OnceLock;

/// The CloudWatch namespace of every business metric.
pub const NAMESPACE: &str = "Community";
/// The dimension every metric carries: the Lambda function's name.
pub const FUNCTION_DIMENSION: &str = "function";

/// A metric: its CloudWatch name, its dimensions besides `function`, and
/// the function crate that records it (the dashboard charts it there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub labels: &'static [&'static str],
    pub function: &'static str,
}

pub const SIGN_UPS: Metric = Metric {
    name: "SignUps",
    labels: &["cohort"],
    function: "signup",
};
pub const IDEAS_POSTED: Metric = Metric {
    name: "IdeasPosted",
    labels: &["theme"],
    function: "ideas",
};
pub const VOTES_CAST: Metric = Metric {
    name: "VotesCast",
    labels: &[],
    function: "votes",
};
pub const THRESHOLDS_REACHED: Metric = Metric {
    name: "ThresholdsReached",
    labels: &[],
    function: "thresholds",
};
pub const DECISIONS: Metric = Metric {
    name: "Decisions",
    labels: &["outcome"],
    function: "committee",
};
/// A sum: the points credited, by rule.
pub const POINTS_CREDITED: Metric = Metric {
    name: "PointsCredited",
    labels: &["rule"],
    function: "points",
};
pub const REDEMPTIONS: Metric = Metric {
    name: "Redemptions",
    labels: &[],
    function: "signup",
};
/// A sum: the points converted into euros.
pub const POINTS_REDEEMED: Metric = Metric {
    name: "PointsRedeemed",
    labels: &[],
    function: "signup",
};
/// The loyalty programme's answers to redemptions, by status.
pub const REDEMPTIONS_ANSWERED: Metric = Metric {
    name: "RedemptionsAnswered",
    labels: &["status"],
    function: "loyalty",
};
/// A gauge sent as a sum each hour: redemptions left unanswered longer than
/// `answer_within_hours` (its alarm pages when it is above 0).
pub const REDEMPTIONS_OVERDUE: Metric = Metric {
    name: "RedemptionsOverdue",
    labels: &[],
    function: "loyalty",
};
pub const EMAILS_SENT: Metric = Metric {
    name: "EmailsSent",
    labels: &["template"],
    function: "emails",
};
pub const CONTEST_ENTRIES: Metric = Metric {
    name: "ContestEntries",
    labels: &["contest"],
    function: "contests",
};
pub const REVIEWS: Metric = Metric {
    name: "Reviews",
    labels: &[],
    function: "reviews",
};
/// SES's feedback recorded by the `mail_feedback` consumer, by `type`:
/// `bounce`, `complaint`, and `suppressed` (addresses suppressed).
pub const MAIL_FEEDBACK: Metric = Metric {
    name: "MailFeedback",
    labels: &["type"],
    function: "mailfeedback",
};

/// Every business metric (the dashboard charts each one).
pub const ALL: &[Metric] = &[
    SIGN_UPS,
    IDEAS_POSTED,
    VOTES_CAST,
    THRESHOLDS_REACHED,
    DECISIONS,
    POINTS_CREDITED,
    REDEMPTIONS,
    POINTS_REDEEMED,
    REDEMPTIONS_ANSWERED,
    REDEMPTIONS_OVERDUE,
    EMAILS_SENT,
    CONTEST_ENTRIES,
    REVIEWS,
    MAIL_FEEDBACK,
];

fn add(m: Metric, value: u64, labels: &[(&'static str, String)]) {
    debug_assert_eq!(
        m.labels,
        labels
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .as_slice(),
        "{} is recorded with its declared labels",
        m.name
    );
    tracing::debug!(metric = m.name, value, labels = ?labels, "metric");
    let labels: Vec<metrics::Label> = labels
        .iter()
        .map(|(k, v)| metrics::Label::new(*k, v.clone()))
        .collect();
    metrics::counter!(m.name, labels).increment(value);
}

/// A member signed up, in their cohort (`public` without an invite).
pub fn record_sign_up(cohort: &str) {
    add(SIGN_UPS, 1, &[("cohort", cohort.to_owned())]);
}

pub fn record_idea_posted(theme: &str) {
    add(IDEAS_POSTED, 1, &[("theme", theme.to_owned())]);
}

/// A new vote (a repeated vote changes nothing and records nothing).
pub fn record_vote_cast() {
    add(VOTES_CAST, 1, &[]);
}

pub fn record_threshold_reached() {
    add(THRESHOLDS_REACHED, 1, &[]);
}

/// A committee decision: `accepted` or `rejected`.
pub fn record_decision(outcome: &str) {
    add(DECISIONS, 1, &[("outcome", outcome.to_owned())]);
}

/// Points credited to a member by a rule of infra/campaigns/points.toml.
pub fn record_points_credited(rule: &str, points: i64) {
    add(
        POINTS_CREDITED,
        points.max(0).unsigned_abs(),
        &[("rule", rule.to_owned())],
    );
}

/// A redemption (points converted into euros on the loyalty card).
pub fn record_redemption(points: i64) {
    add(REDEMPTIONS, 1, &[]);
    add(POINTS_REDEEMED, points.max(0).unsigned_abs(), &[]);
}

/// The loyalty programme answered a redemption (`credited`, `rejected`).
pub fn record_redemption_answered(status: &str) {
    add(REDEMPTIONS_ANSWERED, 1, &[("status", status.to_owned())]);
}

/// The hourly count of overdue redemptions (0 included, so the alarm's
/// metric has data points while all is well).
pub fn record_redemptions_overdue(n: u64) {
    add(REDEMPTIONS_OVERDUE, n, &[]);
}

/// A mail sent; `mail_id` is the template's id (`welcome`) or
/// `{event_id}-{template}` (`…-author`, `…-voters`): the template is the
/// part after the last `-`, so the dimension stays a short fixed list.
pub fn record_email_sent(mail_id: &str) {
    let template = mail_id.rsplit('-').next().unwrap_or(mail_id);
    add(EMAILS_SENT, 1, &[("template", template.to_owned())]);
}

/// An entry in a contest (contest ids come from the campaign files).
pub fn record_contest_entry(contest: &str) {
    add(CONTEST_ENTRIES, 1, &[("contest", contest.to_owned())]);
}

pub fn record_review() {
    add(REVIEWS, 1, &[]);
}

/// A batch of SES feedback recorded: its bounces, complaints and the
/// addresses it suppressed (zeros are not sent).
pub fn record_mail_feedback(bounces: u64, complaints: u64, suppressed: u64) {
    for (t, n) in [
        ("bounce", bounces),
        ("complaint", complaints),
        ("suppressed", suppressed),
    ] {
        if n > 0 {
            add(MAIL_FEEDBACK, n, &[("type", t.to_owned())]);
        }
    }
}

static COLLECTOR: OnceLock<&'static metrics_cloudwatch_embedded::Collector> = OnceLock::new();

/// Installs the Embedded Metric Format collector as the global recorder
/// (Lambda init); `function` is the dimension every metric carries.
pub fn install_emf(function: &str) -> Result<(), String> {
    let collector = metrics_cloudwatch_embedded::Builder::new()
        .cloudwatch_namespace(NAMESPACE)
        .with_dimension(FUNCTION_DIMENSION, function.to_owned())
        .init()
        .map_err(|e| e.to_string())?;
    for m in ALL {
        metrics::describe_counter!(m.name, metrics::Unit::Count, m.name);
    }
    let _ = COLLECTOR.set(collector);
    Ok(())
}

/// Writes what was recorded since the last flush as EMF lines on stdout,
/// tagged with the invocation's request id (Lambda: after each invocation;
/// without the collector, nothing).
pub fn flush(request_id: &str) {
    let out = std::io::stdout();
    let mut lock = out.lock();
    if let Err(e) = flush_to(request_id, &mut lock) {
        tracing::warn!(error = %e, "metrics flush failed");
    }
}

/// [`flush`] into any writer.
pub fn flush_to(request_id: &str, writer: impl std::io::Write) -> std::io::Result<()> {
    match COLLECTOR.get() {
        Some(c) => c
            .set_property("request_id", request_id)
            .set_property(
                "level",
                emf_level(std::env::var("AWS_LAMBDA_LOG_LEVEL").ok()),
            )
            .flush(writer),
        None => Ok(()),
    }
}

/// The `level` of the metric documents. Lambda's log-level filtering reads
/// a JSON line's `level` and takes a line without one as INFO, so with the
/// function's `LogLevel` at WARN or above it would drop every metric. The
/// documents carry the configured level itself (`AWS_LAMBDA_LOG_LEVEL`, set
/// by Lambda from `ApplicationLogLevel`): they pass at every setting.
pub fn emf_level(configured: Option<String>) -> String {
    match configured.map(|l| l.trim().to_ascii_uppercase()) {
        Some(l) if ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].contains(&l.as_str()) => l,
        _ => "INFO".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_util::debugging::DebuggingRecorder;

    #[test]
    fn names_are_unique_and_cloudwatch_safe() {
        let mut names: Vec<_> = ALL.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        for m in ALL {
            assert!(
                m.name.bytes().all(|b| b.is_ascii_alphanumeric()),
                "{}",
                m.name
            );
            assert!(!m.labels.contains(&FUNCTION_DIMENSION));
        }
    }

    type Labels = Vec<(String, String)>;

    /// (name, labels, value) of every counter recorded by `f`.
    fn recorded(f: impl FnOnce()) -> Vec<(String, Labels, u64)> {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, f);
        let mut out: Vec<_> = snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .filter_map(|(key, _, _, value)| match value {
                metrics_util::debugging::DebugValue::Counter(n) => {
                    let (_, k) = key.into_parts();
                    let labels = k
                        .labels()
                        .map(|l| (l.key().to_owned(), l.value().to_owned()))
                        .collect();
                    Some((k.name().to_owned(), labels, n))
                }
                _ => None,
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn metric_documents_pass_every_log_level() {
        for l in ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] {
            assert_eq!(emf_level(Some(l.into())), l);
            assert_eq!(emf_level(Some(l.to_lowercase())), l);
        }
        assert_eq!(emf_level(None), "INFO");
        assert_eq!(emf_level(Some("loud".into())), "INFO");
    }

    /// The Lambda path: the EMF collector as the global recorder, one
    /// document per label set on flush, then nothing until new records.
    #[test]
    fn the_emf_collector_writes_cloudwatch_documents_per_invocation() {
        install_emf("stack-signup").expect("install");
        record_sign_up("staff");
        record_sign_up("staff");
        record_redemption(500);
        let mut out = Vec::new();
        flush_to("req-1", &mut out).expect("flush");
        let docs: Vec<serde_json::Value> = String::from_utf8(out)
            .expect("utf-8")
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
            .collect();
        let signups = docs
            .iter()
            .find(|d| d.get("SignUps").is_some())
            .expect("a SignUps document");
        assert_eq!(signups["SignUps"], 2);
        assert_eq!(signups["cohort"], "staff");
        assert_eq!(signups["function"], "stack-signup");
        assert_eq!(signups["request_id"], "req-1");
        // Lambda's log-level filter passes it at the function's own level.
        assert!(signups["level"].is_string(), "{signups}");
        let aws = &signups["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(aws["Namespace"], NAMESPACE);
        assert_eq!(
            aws["Dimensions"],
            serde_json::json!([["function", "cohort"]])
        );
        assert_eq!(aws["Metrics"][0]["Name"], "SignUps");
        assert_eq!(aws["Metrics"][0]["Unit"], "Count");
        let redeemed = docs
            .iter()
            .find(|d| d.get("PointsRedeemed").is_some())
            .expect("a redemption document");
        assert_eq!(redeemed["PointsRedeemed"], 500);
        assert_eq!(redeemed["Redemptions"], 1);
        let mut again = Vec::new();
        flush_to("req-2", &mut again).expect("flush");
        assert!(again.is_empty(), "counts are per invocation");
    }

    fn l(k: &str, v: &str) -> Labels {
        vec![(k.to_owned(), v.to_owned())]
    }

    #[test]
    fn each_record_function_uses_its_metric_and_labels() {
        assert_eq!(
            recorded(|| record_sign_up("staff")),
            vec![("SignUps".into(), l("cohort", "staff"), 1)]
        );
        assert_eq!(
            recorded(|| record_points_credited("vote_cast", 2)),
            vec![("PointsCredited".into(), l("rule", "vote_cast"), 2)]
        );
        assert_eq!(
            recorded(|| record_redemption(500)),
            vec![
                ("PointsRedeemed".into(), vec![], 500),
                ("Redemptions".into(), vec![], 1)
            ]
        );
        assert_eq!(
            recorded(|| {
                record_email_sent("welcome");
                record_email_sent("01JD0000000000000000000000-author");
            }),
            vec![
                ("EmailsSent".into(), l("template", "author"), 1),
                ("EmailsSent".into(), l("template", "welcome"), 1)
            ]
        );
        // Every metric of ALL is reachable through a record function.
        let all = recorded(|| {
            record_sign_up("public");
            record_idea_posted("eat-well");
            record_vote_cast();
            record_threshold_reached();
            record_decision("accepted");
            record_points_credited("member_signed_up", 50);
            record_redemption(500);
            record_redemption_answered("rejected");
            record_redemptions_overdue(1);
            record_email_sent("welcome");
            record_contest_entry("c1");
            record_review();
            record_mail_feedback(1, 0, 1);
        });
        for m in ALL {
            let hit = all.iter().find(|(n, _, _)| n == m.name);
            let Some((_, labels, _)) = hit else {
                panic!("{} is never recorded", m.name)
            };
            let keys: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(keys, m.labels, "{}", m.name);
        }
    }
}
