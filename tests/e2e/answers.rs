//! Every proposal answered, followed and findable (issue 14), on the binary:
//! a 3-vote idea is answered by a moderator, a member who follows it gets
//! the answer by mail, the idea is found by a word typed without accents,
//! and a duplicate whose voters overlap is merged into it.

use crate::support::{client, eventually, fetch, join, send, token, Server};
use reqwest::Method;
use serde_json::{json, Value};

async fn mailbox(c: &reqwest::Client, s: &Server) -> Vec<Value> {
    match fetch(c.get(s.url("/local/mailbox"))).await {
        Ok(r) => r.json()["items"].as_array().cloned().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

async fn post_idea(c: &reqwest::Client, s: &Server, who: &str, title: &str, body: &str) -> String {
    let idea = json!({"theme": "eat-well", "title": title, "body": body});
    let (st, created) = send(c, Method::POST, &s.url("/ideas"), Some(who), Some(&idea))
        .await
        .expect("idea");
    assert_eq!(st, 201, "{created}");
    created["id"].as_str().expect("id").to_owned()
}

async fn vote(c: &reqwest::Client, s: &Server, who: &str, id: &str) {
    let (st, body) = send(
        c,
        Method::PUT,
        &s.url(&format!("/ideas/{id}/vote")),
        Some(who),
        None,
    )
    .await
    .expect("vote");
    assert_eq!(st, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idea_is_answered_followed_found_and_merged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(dir.path());
    let c = client();
    for who in ["autrice", "suiveur", "v1", "v2", "v3", "doublon"] {
        join(&c, &server, who).await;
    }
    let id = post_idea(
        &c,
        &server,
        "autrice",
        "Un rayon végétarien plus grand",
        "Plus de plats végétariens préparés et de protéines végétales au rayon frais.",
    )
    .await;
    for v in ["v1", "v2", "v3"] {
        vote(&c, &server, v, &id).await;
    }
    // A second member follows it explicitly.
    let (st, body) = send(
        &c,
        Method::PUT,
        &server.url(&format!("/ideas/{id}/follow")),
        Some("suiveur"),
        None,
    )
    .await
    .expect("follow");
    assert_eq!((st, body["following"].clone()), (200, json!(true)));

    // It waits in the answer queue; a moderator answers it, 3 votes only.
    let mona = token("mona", &["moderator"]);
    let queue: Value = fetch(
        c.get(server.url("/review-queue?state=unanswered"))
            .bearer_auth(&mona),
    )
    .await
    .expect("queue")
    .json();
    assert!(
        queue["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["id"] == json!(id))),
        "{queue}"
    );
    let text = "Merci ! Un rayon végétarien agrandi sera testé dans dix magasins cet hiver.";
    let res = fetch(
        c.post(server.url(&format!("/ideas/{id}/answer")))
            .bearer_auth(&mona)
            .json(&json!({ "text": text })),
    )
    .await
    .expect("answer");
    assert_eq!(res.status, 200);
    let (_, shown) = send(
        &c,
        Method::GET,
        &server.url(&format!("/ideas/{id}")),
        None,
        None,
    )
    .await
    .expect("idea");
    assert_eq!(shown["official_answer"]["text"], text, "{shown}");
    assert_eq!(shown["official_answer"]["by"], "moderator");

    // The follower gets the answer by mail (and so do the author and voters).
    let mailed = eventually(20, || {
        let (c, s) = (c.clone(), &server);
        async move {
            let mails = mailbox(&c, s).await;
            ["suiveur", "autrice", "v1"].iter().all(|who| {
                mails.iter().any(|m| {
                    m["to"] == json!(format!("{who}@example.fr"))
                        && m["text"]
                            .as_str()
                            .is_some_and(|t| t.contains("dix magasins"))
                })
            })
        }
    })
    .await;
    assert!(mailed, "{:#?}", mailbox(&c, &server).await);
    let to_follower = mailbox(&c, &server)
        .await
        .into_iter()
        .filter(|m| {
            m["to"] == json!("suiveur@example.fr")
                && m["text"]
                    .as_str()
                    .is_some_and(|t| t.contains("dix magasins"))
        })
        .count();
    assert_eq!(to_follower, 1, "mailed once");

    // Found by a word typed without accents, in another form.
    let (st, found) = send(
        &c,
        Method::GET,
        &server.url("/ideas?q=VEGETARIENS"),
        None,
        None,
    )
    .await
    .expect("search");
    assert_eq!(st, 200);
    assert!(
        found["items"]
            .as_array()
            .is_some_and(|a| a.iter().any(|i| i["id"] == json!(id))),
        "{found}"
    );

    // A duplicate, voted by v3 (who voted for both: counted once) and the
    // follower, is merged into it: its votes join, its author is told.
    let dup = post_idea(
        &c,
        &server,
        "doublon",
        "Davantage de plats sans viande",
        "Proposer des lasagnes aux lentilles et des galettes de pois chiches.",
    )
    .await;
    for v in ["v3", "suiveur"] {
        vote(&c, &server, v, &dup).await;
    }
    let reason = "Même demande que « Un rayon végétarien plus grand » : les votes sont réunis.";
    let res = c
        .post(server.url(&format!("/ideas/{dup}/merge")))
        .bearer_auth(&mona)
        .json(&json!({"into": id, "reason": reason}))
        .send()
        .await
        .expect("merge");
    assert_eq!(res.status().as_u16(), 200);
    let merged: Value = res.json().await.expect("json");
    assert_eq!(merged["merged_into"], json!(id), "{merged}");
    let counted = eventually(20, || {
        let (c, s, id) = (c.clone(), &server, id.clone());
        async move {
            let (_, shown) = send(&c, Method::GET, &s.url(&format!("/ideas/{id}")), None, None)
                .await
                .unwrap_or((0, Value::Null));
            shown["votes"] == json!(4)
        }
    })
    .await;
    assert!(counted, "v1, v2, v3 and the follower, each once");
    let told = eventually(20, || {
        let (c, s) = (c.clone(), &server);
        async move {
            mailbox(&c, s).await.iter().any(|m| {
                m["to"] == json!("doublon@example.fr")
                    && m["text"].as_str().is_some_and(|t| t.contains(reason))
            })
        }
    })
    .await;
    assert!(told, "{:#?}", mailbox(&c, &server).await);
    let (st, found) = send(
        &c,
        Method::GET,
        &server.url("/ideas?q=lentilles"),
        None,
        None,
    )
    .await
    .expect("search");
    assert_eq!((st, &found["items"]), (200, &json!([])), "{found}");
    let (_, list) = send(&c, Method::GET, &server.url("/ideas"), None, None)
        .await
        .expect("list");
    let ids: Vec<Value> = list["items"]
        .as_array()
        .map(|a| a.iter().map(|i| i["id"].clone()).collect())
        .unwrap_or_default();
    assert_eq!(ids, [json!(id)], "the duplicate left the lists");
}
