//! The SQS and SES adapters against moto's server, with the table on moto's
//! DynamoDB: the relay into real queues, a Lambda-style poller honouring
//! partial batch responses, a poison message reaching the dead-letter queue
//! through the redrive policy, and mails sent through SES.

mod support;

use aws_lambda_events::event::sqs::SqsEvent;
use community::events::{Event, Kind, Queue};
use community::mail::{Mail, Mailer};
use community::relay::{Outbound, SqsOutbound};
use serde_json::{json, Value};
use std::collections::HashMap;

fn endpoint() -> Option<String> {
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

fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    let conf = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_sqs::config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    aws_sdk_sqs::Client::from_conf(conf)
}

fn ses_client(endpoint: &str) -> aws_sdk_ses::Client {
    let conf = aws_sdk_ses::Config::builder()
        .behavior_version(aws_sdk_ses::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_ses::config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_ses::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    aws_sdk_ses::Client::from_conf(conf)
}

async fn queue_url(
    c: &aws_sdk_sqs::Client,
    name: &str,
    attrs: HashMap<aws_sdk_sqs::types::QueueAttributeName, String>,
) -> String {
    c.create_queue()
        .queue_name(name)
        .set_attributes(Some(attrs))
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("url")
}

/// What Lambda's SQS event source mapping does: receive, invoke, delete the
/// messages the response does not name as failed.
async fn poll_once(
    c: &aws_sdk_sqs::Client,
    url: &str,
    consumer: &dyn community::queue::Consumer,
) -> usize {
    let got = c
        .receive_message()
        .queue_url(url)
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
        .map(|m| json!({"messageId": m.message_id, "body": m.body, "receiptHandle": m.receipt_handle}))
        .collect();
    let event: SqsEvent = serde_json::from_value(json!({"Records": records})).expect("event");
    let failed: Vec<String> = match community::queue::sqs(consumer, event).await {
        Ok(r) => r
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect(),
        Err(_) => msgs.iter().filter_map(|m| m.message_id.clone()).collect(),
    };
    for m in &msgs {
        if !failed.contains(&m.message_id.clone().unwrap_or_default()) {
            c.delete_message()
                .queue_url(url)
                .receipt_handle(m.receipt_handle.clone().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
    msgs.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_to_sqs_then_consume_with_partial_failures_and_a_dead_letter_queue() {
    let Some(ep) = endpoint() else { return };
    let Some(table) = support::dynamodb().await else {
        return;
    };
    let app = support::app(table, |_| {});
    let marie = support::member(&app, "marie").await;
    let c = sqs_client(&ep);
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let dlq = queue_url(&c, &format!("points-dlq-{suffix}"), HashMap::new()).await;
    let dlq_arn = c
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .expect("attrs")
        .attributes
        .and_then(|a| a.get(&A::QueueArn).cloned())
        .expect("arn");
    let mut urls = HashMap::new();
    for q in Queue::ALL {
        let mut attrs = HashMap::from([(A::VisibilityTimeout, "0".to_string())]);
        if q == Queue::Points {
            attrs.insert(
                A::RedrivePolicy,
                json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}).to_string(),
            );
        }
        urls.insert(
            q,
            queue_url(&c, &format!("{}-{suffix}", q.name()), attrs).await,
        );
    }
    let out = SqsOutbound {
        client: c.clone(),
        urls: urls.clone(),
    };
    // The sign-up event, relayed twice (at-least-once), and a poison message.
    let signed_up = Event::new(Kind::MemberSignedUp, marie.id.as_str(), None, json!(null));
    // Through SendMessageBatch, as the relay sends: twice in one request.
    let failed = out
        .send_batch(Queue::Points, &[signed_up.clone(), signed_up.clone()])
        .await
        .expect("send");
    assert!(failed.is_empty(), "{failed:?}");
    c.send_message()
        .queue_url(&urls[&Queue::Points])
        .message_body("poison")
        .send()
        .await
        .expect("poison");
    let consumer = community::points::PointsConsumer { app: app.clone() };
    for _ in 0..10 {
        if poll_once(&c, &urls[&Queue::Points], &consumer).await == 0 {
            break;
        }
    }
    let me = community::members::get(&app, &marie.id)
        .await
        .expect("member");
    assert_eq!(
        me.points_balance, 50,
        "credited once although delivered twice"
    );
    let dead = c
        .receive_message()
        .queue_url(&dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .expect("dlq");
    let bodies: Vec<String> = dead
        .messages
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| m.body)
        .collect();
    assert_eq!(
        bodies,
        vec!["poison".to_string()],
        "only the poison message is dead-lettered"
    );
}

#[tokio::test]
async fn ses_sends_the_mail_with_its_unsubscribe_headers() {
    let Some(ep) = endpoint() else { return };
    let ses = ses_client(&ep);
    ses.verify_email_identity()
        .email_address("communaute@example.fr")
        .send()
        .await
        .expect("verify");
    let mailer = community::mail::ses::SesMailer::new(ses, None);
    let marker = ulid::Ulid::new().to_string();
    let mail = Mail {
        mail_id: "welcome".into(),
        to: "marie@example.fr".into(),
        from: "La communauté <communaute@example.fr>".into(),
        subject: format!("Bienvenue dans la communauté ! {marker}"),
        text: "Bonjour Marie,".into(),
        html: "<p>Bonjour Marie,</p>".into(),
        headers: vec![
            (
                "List-Unsubscribe".into(),
                "<https://communaute.example.fr/unsubscribe/t>".into(),
            ),
            (
                "List-Unsubscribe-Post".into(),
                "List-Unsubscribe=One-Click".into(),
            ),
        ],
    };
    mailer.send(&mail).await.expect("sent");
    let data: Value = reqwest_get(&format!("{ep}/moto-api/data.json")).await;
    let sent = data.to_string();
    assert!(sent.contains("marie@example.fr"), "moto recorded the mail");
    assert!(
        sent.contains("List-Unsubscribe"),
        "the raw mail carries the unsubscribe header"
    );
    let mime = community::mail::ses::mime(&mail);
    assert!(
        mime.contains("multipart/alternative")
            && mime.contains("text/plain")
            && mime.contains("text/html")
    );
    assert!(
        mime.contains("Subject: =?UTF-8?B?"),
        "non-ASCII subject is encoded"
    );
}

async fn reqwest_get(url: &str) -> Value {
    let body = tokio::task::spawn_blocking({
        let url = url.to_owned();
        move || -> String {
            let out = std::process::Command::new("python3")
                .args(["-c", &format!("import urllib.request;print(urllib.request.urlopen('{url}').read().decode())")])
                .output()
                .expect("python3");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
    })
    .await
    .expect("join");
    serde_json::from_str(&body).unwrap_or(Value::Null)
}
