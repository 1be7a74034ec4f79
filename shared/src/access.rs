//! What a function's code asks of AWS, as IAM authorises it, recorded while
//! the tests run: the proof of least privilege (`infra/tests/permissions.py`
//! reads the records and fails when a function's policy in the template
//! lacks an action its tests used, or grants one no test used).
//!
//! Off (nothing recorded, nothing allocated) unless
//! `COMMUNITY_RECORD_ACTIONS=<dir>` is set, as `./scripts/test` does for its
//! `cargo test` run. Then every AWS call a port makes inside a function's
//! entry appends one JSON line, once per distinct record and process, to
//! `<dir>/<package>-<pid>.jsonl` (`package` is `CARGO_PKG_NAME`, which cargo
//! sets for each test process):
//! `{"package", "entry", "action", "resource", "index", "key"}`.
//!
//! - `entry` says whose code runs: `http:GET /members/me` (the request's
//!   route, so a test may drive another function's router), `fn:points`
//!   (a Lambda entry of the function crate `functions/points`: a queue
//!   consumer, a stream reader, a scheduled run). Calls outside an entry (a
//!   test's own setup) are not any function's and are not recorded.
//! - `action` and `resource` are IAM's: `dynamodb:Query` on `table` with
//!   `index` `gsi3` (from [`crate::store::iam_actions`], the function the
//!   DynamoDB adapter's own choice of request shares), `sqs:SendMessage` on
//!   `queue:points`, `ses:SendRawEmail` on `ses:identity`,
//!   `cognito-idp:AdminDeleteUser` on `userpool`.
//! - `key` is the shape of the partition key a DynamoDB item action names
//!   (`MEMBER#*`: each segment with a digit or other character becomes `*`),
//!   which a policy's `dynamodb:LeadingKeys` condition is checked against.

use std::collections::HashSet;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// The variable that turns recording on: the directory of the records.
pub const ENV: &str = "COMMUNITY_RECORD_ACTIONS";

tokio::task_local! {
    static ENTRY: Arc<str>;
}

struct Recorder {
    file: PathBuf,
    package: String,
    seen: Mutex<HashSet<String>>,
}

fn recorder() -> Option<&'static Recorder> {
    static RECORDER: OnceLock<Option<Recorder>> = OnceLock::new();
    RECORDER
        .get_or_init(|| {
            let dir = PathBuf::from(std::env::var_os(ENV).filter(|d| !d.is_empty())?);
            if let Err(e) = std::fs::create_dir_all(&dir) {
                eprintln!("{ENV}: cannot create {}: {e}", dir.display());
                return None;
            }
            let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "unknown".into());
            let file = dir.join(format!("{package}-{}.jsonl", std::process::id()));
            Some(Recorder {
                file,
                package,
                seen: Mutex::new(HashSet::new()),
            })
        })
        .as_ref()
}

/// Whether this process records.
pub fn recording() -> bool {
    recorder().is_some()
}

/// Runs `f` as the code of a function's entry named by `name` (called only
/// when recording: no cost otherwise).
pub async fn entry<F: Future>(name: impl FnOnce() -> String, f: F) -> F::Output {
    if !recording() {
        return f.await;
    }
    ENTRY.scope(Arc::from(name()), f).await
}

/// The entry of a Lambda function that is not an HTTP route: `fn:<crate>`.
pub async fn function<F: Future>(krate: &'static str, f: F) -> F::Output {
    entry(|| format!("fn:{krate}"), f).await
}

/// The shape of a partition key for a `dynamodb:LeadingKeys` condition:
/// segments (between `#`) made only of letters, `_` and `-` are kept, any
/// other becomes `*`.
pub fn key_shape(pk: &str) -> String {
    pk.split('#')
        .map(|s| {
            if s.chars()
                .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
            {
                s
            } else {
                "*"
            }
        })
        .collect::<Vec<_>>()
        .join("#")
}

/// Records one use of `action` on `resource` (an `index` of the table, the
/// partition key `pk` an item action names), when recording and inside an
/// entry.
pub fn record(action: &str, resource: &str, index: Option<&str>, pk: Option<&str>) {
    let Some(r) = recorder() else {
        return;
    };
    let Ok(entry) = ENTRY.try_with(Arc::clone) else {
        return;
    };
    let line = serde_json::json!({
        "package": r.package,
        "entry": &*entry,
        "action": action,
        "resource": resource,
        "index": index,
        "key": pk.map(key_shape),
    })
    .to_string();
    let mut seen = r.seen.lock().unwrap_or_else(|p| p.into_inner());
    if seen.contains(&line) {
        return;
    }
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&r.file)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    match written {
        Ok(()) => {
            seen.insert(line);
        }
        Err(e) => eprintln!("{ENV}: cannot write {}: {e}", r.file.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::key_shape;

    #[test]
    fn key_shapes_keep_words_and_hide_ids() {
        assert_eq!(key_shape("MEMBER#01JD0000000000000000000000"), "MEMBER#*");
        assert_eq!(key_shape("DONE#insights#ev-1"), "DONE#insights#*");
        assert_eq!(key_shape("MEMBER#marie"), "MEMBER#marie");
        assert_eq!(key_shape("IDEA#01J#VOTES"), "IDEA#*#VOTES");
        assert_eq!(key_shape("TOP"), "TOP");
    }
}
