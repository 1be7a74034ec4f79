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
}

impl SesMailer {
    pub fn new(client: aws_sdk_ses::Client, configuration_set: Option<String>) -> Self {
        SesMailer {
            client,
            configuration_set,
        }
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
