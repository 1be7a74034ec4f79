//! kill -9 under write load: every write that was answered 2xx is there
//! after a restart.

use crate::support::*;
use reqwest::Method;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_under_write_load_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = client();
    join(&c, &server, "author").await;

    let stop = Arc::new(AtomicBool::new(false));
    let acked_members: Arc<Mutex<Vec<String>>> = Arc::default();
    let acked_ideas: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (c, base, stop) = (c.clone(), server.base.clone(), stop.clone());
            let (members, ideas) = (acked_members.clone(), acked_ideas.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    if w % 2 == 0 {
                        let sub = format!("w{w}-m{n}");
                        if let Ok((201, _)) = send(
                            &c,
                            Method::POST,
                            &format!("{base}/members"),
                            Some(&sub),
                            Some(&sign_up_body(&sub)),
                        )
                        .await
                        {
                            members.lock().expect("lock").push(sub);
                        }
                    } else {
                        let title = format!("Idée {w}-{n} pour le magasin");
                        let body = json!({"theme": "environment", "title": title,
                                          "body": "Une idée écrite pendant un test de panne."});
                        if let Ok((201, v)) = send(
                            &c,
                            Method::POST,
                            &format!("{base}/ideas"),
                            Some("author"),
                            Some(&body),
                        )
                        .await
                        {
                            let id = v["id"].as_str().unwrap_or_default().to_owned();
                            ideas.lock().expect("lock").push((id, title));
                        }
                    }
                }
            })
        })
        .collect();

    // Let writes flow, then kill the server in the middle of them.
    let enough = eventually(20, || {
        let (m, i) = (acked_members.clone(), acked_ideas.clone());
        async move { m.lock().expect("lock").len() >= 60 && i.lock().expect("lock").len() >= 60 }
    })
    .await;
    assert!(
        enough,
        "the server acknowledged too few writes to make the test meaningful"
    );
    server.kill9();
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("writer");
    }

    let server = Server::start(dir.path());
    let members = acked_members.lock().expect("lock").clone();
    let ideas = acked_ideas.lock().expect("lock").clone();
    for m in &members {
        let (st, me) = send(&c, Method::GET, &server.url("/members/me"), Some(m), None)
            .await
            .expect("me");
        assert_eq!(
            (st, me["id"].clone()),
            (200, json!(m)),
            "acknowledged member {m} lost"
        );
    }
    for (id, title) in &ideas {
        let (st, idea) = send(
            &c,
            Method::GET,
            &server.url(&format!("/ideas/{id}")),
            None,
            None,
        )
        .await
        .expect("idea");
        assert_eq!(
            (st, idea["title"].clone()),
            (200, json!(title)),
            "acknowledged idea {id} lost"
        );
    }
    // The store is usable after the crash.
    join(&c, &server, "after").await;
    eprintln!(
        "after kill -9: {} members and {} ideas acknowledged, all found",
        members.len(),
        ideas.len()
    );
}
