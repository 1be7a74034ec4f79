//! The relay through its Lambda entry: a DynamoDB stream batch in.

use async_trait::async_trait;
use community::events::{Event, Queue};
use community::relay::{Outbound, SendError};
use std::sync::Mutex;

fn sample() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../events/dynamodb/outbox-stream.json"
    ))
    .expect("sample");
    serde_json::from_str(&text).expect("json")
}

#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<(Queue, String)>>,
    fail: bool,
}

#[async_trait]
impl Outbound for Recorder {
    async fn send(&self, queue: Queue, event: &Event) -> Result<(), SendError> {
        if self.fail {
            return Err(SendError {
                queue: queue.name(),
                message: "down".into(),
            });
        }
        self.sent
            .lock()
            .expect("lock")
            .push((queue, event.event_id.clone()));
        Ok(())
    }
}

#[tokio::test]
async fn outbox_inserts_go_to_their_queues_and_the_rest_is_ignored() {
    let out = Recorder::default();
    let res = relay::relay(&out, &sample()).await;
    assert_eq!(res["batchItemFailures"], serde_json::json!([]));
    let sent = out.sent.lock().expect("lock").clone();
    let id = "01JD00000000000000000000E6".to_string();
    assert_eq!(
        sent,
        vec![
            (Queue::Points, id.clone()),
            (Queue::Thresholds, id.clone()),
            (Queue::Insights, id)
        ]
    );
}

#[tokio::test]
async fn a_failed_send_reports_the_record_so_the_stream_retries_it() {
    let out = Recorder {
        fail: true,
        ..Default::default()
    };
    let res = relay::relay(&out, &sample()).await;
    assert_eq!(
        res["batchItemFailures"][0]["itemIdentifier"],
        "111100000000000000001"
    );
}
