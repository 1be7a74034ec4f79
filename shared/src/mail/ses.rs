//! SES mailer (aws-sdk-ses `SendRawEmail`, so the List-Unsubscribe headers
//! travel with the mail): a multipart/alternative MIME message with the
//! plain-text and HTML parts, UTF-8, quoted-printable-free base64 bodies.

use super::{Mail, MailError, Mailer};
use async_trait::async_trait;
use aws_sdk_ses::primitives::Blob;
use aws_sdk_ses::types::RawMessage;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

#[derive(Clone)]
pub struct SesMailer {
    client: aws_sdk_ses::Client,
    configuration_set: Option<String>,
    pacer: Option<std::sync::Arc<Pacer>>,
}

impl SesMailer {
    pub fn new(client: aws_sdk_ses::Client, configuration_set: Option<String>) -> Self {
        SesMailer {
            client,
            configuration_set,
            pacer: None,
        }
    }

    /// Sends at most `per_second` mails a second from this instance.
    pub fn paced(mut self, per_second: Option<f64>) -> Self {
        self.pacer = per_second.map(|r| std::sync::Arc::new(Pacer::new(r)));
        self
    }
}

/// This instance's share of the account's SES maximum send rate
/// (`SES_MAX_SEND_RATE`, mails a second): the emails function runs up to
/// `EMAILS_MAX_CONCURRENCY` instances at once (its SQS source's
/// MaximumConcurrency, at least 2) and the digests function one more, so
/// each paces itself at rate / (concurrency + 1) and together they stay
/// under the rate instead of meeting SES's throttling (whose retries end in
/// the dead-letter queue). None (no pacing) when the rate is not set.
pub fn instance_rate(account_rate: Option<&str>, concurrency: Option<&str>) -> Option<f64> {
    let rate: f64 = account_rate?
        .trim()
        .parse()
        .ok()
        .filter(|r: &f64| *r > 0.0)?;
    let instances = concurrency
        .and_then(|c| c.trim().parse::<u32>().ok())
        .unwrap_or(2)
        .max(1);
    Some(rate / f64::from(instances + 1))
}

/// Spaces calls evenly: each [`Pacer::wait`] returns at the next free slot,
/// `1 / per_second` after the previous one.
pub struct Pacer {
    interval: std::time::Duration,
    next: tokio::sync::Mutex<tokio::time::Instant>,
}

impl Pacer {
    pub fn new(per_second: f64) -> Pacer {
        let per_second = if per_second.is_finite() && per_second > 0.0 {
            per_second
        } else {
            1.0
        };
        Pacer {
            interval: std::time::Duration::from_secs_f64(1.0 / per_second),
            next: tokio::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    pub async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(tokio::time::Instant::now());
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

/// RFC 2047 encoded-word for a header holding non-ASCII text.
fn header_text(s: &str) -> String {
    if s.is_ascii() {
        s.to_owned()
    } else {
        format!("=?UTF-8?B?{}?=", STANDARD.encode(s))
    }
}

/// A mailbox header (`Name <addr>`): only the display name is encoded.
fn mailbox_header(s: &str) -> String {
    match (s.rfind('<'), s.ends_with('>')) {
        (Some(i), true) => {
            let name = s[..i].trim();
            let addr = &s[i..];
            if name.is_empty() {
                addr.to_owned()
            } else {
                format!("{} {addr}", header_text(name))
            }
        }
        _ => s.to_owned(),
    }
}

/// The bare address of a mailbox (`Name <addr>` → `addr`).
pub fn address(s: &str) -> &str {
    match (s.rfind('<'), s.strip_suffix('>')) {
        (Some(i), Some(rest)) => rest.get(i + 1..).unwrap_or(s),
        _ => s,
    }
}

fn wrap76(b64: &str) -> String {
    b64.as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join("\r\n")
}

pub fn mime(mail: &Mail) -> String {
    let boundary = format!("=_community_{}", ulid::Ulid::new());
    let mut m = String::new();
    m.push_str(&format!("From: {}\r\n", mailbox_header(&mail.from)));
    m.push_str(&format!("To: {}\r\n", mail.to));
    m.push_str(&format!("Subject: {}\r\n", header_text(&mail.subject)));
    m.push_str("MIME-Version: 1.0\r\n");
    for (k, v) in &mail.headers {
        m.push_str(&format!("{k}: {v}\r\n"));
    }
    m.push_str(&format!(
        "Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"
    ));
    for (ct, body) in [("text/plain", &mail.text), ("text/html", &mail.html)] {
        m.push_str(&format!("--{boundary}\r\nContent-Type: {ct}; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"));
        m.push_str(&wrap76(&STANDARD.encode(body)));
        m.push_str("\r\n");
    }
    m.push_str(&format!("--{boundary}--\r\n"));
    m
}

#[async_trait]
impl Mailer for SesMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        if let Some(p) = &self.pacer {
            p.wait().await;
        }
        let raw = RawMessage::builder()
            .data(Blob::new(mime(mail).into_bytes()))
            .build()
            .map_err(|e| MailError(e.to_string()))?;
        self.client
            .send_raw_email()
            .raw_message(raw)
            .source(address(&mail.from))
            .set_configuration_set_name(self.configuration_set.clone())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| MailError(format!("{}", aws_sdk_ses::error::DisplayErrorContext(e))))
    }
}

#[cfg(test)]
mod pacing_tests {
    use super::*;

    #[test]
    fn each_instance_takes_its_share_of_the_send_rate() {
        // 14 mails/s shared by 2 emails instances and the digests: 14/3 each.
        let r = instance_rate(Some("14"), Some("2")).expect("rate");
        assert!((r - 14.0 / 3.0).abs() < 1e-9);
        assert_eq!(instance_rate(None, Some("2")), None);
        assert_eq!(instance_rate(Some("zero"), None), None);
        assert_eq!(instance_rate(Some("0"), None), None);
        assert!(instance_rate(Some("50"), None).is_some_and(|r| (r - 50.0 / 3.0).abs() < 1e-9));
    }

    #[tokio::test]
    async fn the_pacer_spaces_sends_by_its_interval() {
        let p = Pacer::new(100.0);
        let start = std::time::Instant::now();
        for _ in 0..6 {
            p.wait().await;
        }
        // Five intervals of 10 ms at least between the first and the sixth.
        assert!(
            start.elapsed() >= std::time::Duration::from_millis(50),
            "{:?}",
            start.elapsed()
        );
    }
}
