//! Reports and moderation through the moderation function's Lambda entry.

use community::events::{outbox_pk, Event, Kind, OUTBOX_BUCKETS};
use community::mail::dir::DirMailbox;
use community::mail::EmailsConsumer;
use community::queue::Consumer;
use community::store::{Index, Query, Table};
use community::testing::{call, caller, embedded_app, join, member, post_idea, As};
use community::App;
use serde_json::{json, Value};

async fn outbox<T: Table>(app: &App<T>) -> Vec<Event> {
    let mut out = Vec::new();
    for b in 0..OUTBOX_BUCKETS {
        let page = app
            .table
            .query(&Query::new(Index::Primary, outbox_pk(b)).limit(1000))
            .await
            .expect("outbox");
        out.extend(page.items.iter().filter_map(Event::from_item));
    }
    out
}

async fn hidden_events<T: Table>(app: &App<T>, target: &str) -> usize {
    outbox(app)
        .await
        .iter()
        .filter(|e| e.kind == Kind::ContentHidden && e.data["target_id"] == json!(target))
        .count()
}

fn report(ty: &str, id: &str) -> Value {
    json!({"target_type": ty, "target_id": id, "reason": "Propos insultants envers un autre membre"})
}

async fn members<T: Table>(app: &App<T>, n: usize, prefix: &str) -> Vec<As> {
    let mut out = Vec::new();
    for i in 0..n {
        let m = member(&format!("{prefix}{i:02}"));
        join(app, &m).await;
        out.push(m);
    }
    out
}

#[tokio::test]
async fn reports_validate_and_are_one_per_member_and_target() {
    let (app, _d) = embedded_app(|_| {});
    let author = member("author");
    join(&app, &author).await;
    let id = post_idea(&app, &author).await;
    let r = moderation::router(app.clone());
    let bea = member("bea");
    join(&app, &bea).await;

    assert_eq!(
        call(&r, "POST", "/reports", None, Some(report("idea", &id)))
            .await
            .status,
        401
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/reports",
            Some(&member("nobody")),
            Some(report("idea", &id))
        )
        .await
        .status,
        403
    );
    let res = call(
        &r,
        "POST",
        "/reports",
        Some(&bea),
        Some(json!({"target_type": "idea", "target_id": id})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["reason".to_string()])
    );
    let res = call(
        &r,
        "POST",
        "/reports",
        Some(&bea),
        Some(json!({"target_type": "idea", "target_id": id, "reason": "x".repeat(501)})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["reason".to_string()])
    );
    let res = call(
        &r,
        "POST",
        "/reports",
        Some(&bea),
        Some(json!({"target_type": "user", "reason": "spam"})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (
            422,
            vec!["target_type".to_string(), "target_id".to_string()]
        )
    );
    let res = call(
        &r,
        "POST",
        "/reports",
        Some(&bea),
        Some(json!({"target_type": 1})),
    )
    .await;
    assert_eq!(res.status, 400);
    for ty in ["idea", "comment", "review"] {
        assert_eq!(
            call(
                &r,
                "POST",
                "/reports",
                Some(&bea),
                Some(report(ty, "01JD0000000000000000000000"))
            )
            .await
            .status,
            404,
            "{ty}"
        );
    }
    assert_eq!(
        call(
            &r,
            "POST",
            "/reports",
            Some(&author),
            Some(report("idea", &id))
        )
        .await
        .status,
        403,
        "one's own content"
    );
    let res = call(
        &r,
        "POST",
        "/reports",
        Some(&bea),
        Some(report("idea", &id)),
    )
    .await;
    assert_eq!(res.status, 201, "{}", res.body);
    assert_eq!(res.body["target_id"], json!(id));
    assert_eq!(res.body["target_type"], "idea");
    let res = call(
        &r,
        "POST",
        "/reports",
        Some(&bea),
        Some(report("idea", &id)),
    )
    .await;
    assert_eq!(res.status, 409);
    // The reporter's contribution pointer.
    let mine =
        app.table
            .query(&Query::new(Index::Primary, "MEMBER#bea").sk(
                community::store::SortKey::BeginsWith("CONTRIB#report#".into()),
            ))
            .await
            .expect("pointers");
    assert_eq!(mine.items.len(), 1);
}

#[tokio::test]
async fn auto_hide_at_exactly_the_threshold_and_the_moderation_queue() {
    let (app, _d) = embedded_app(|s| s.moderation.auto_hide_reports = 3);
    let author = member("author");
    join(&app, &author).await;
    let id = post_idea(&app, &author).await;
    let r = moderation::router(app.clone());
    let ideas_r = ideas::router(app.clone());
    let reporters = members(&app, 3, "rep").await;
    let mo = member("mo").in_groups(&["moderator"]);

    for (i, m) in reporters.iter().take(2).enumerate() {
        let reason =
            json!({"target_type": "idea", "target_id": id, "reason": format!("raison {i}")});
        assert_eq!(
            call(&r, "POST", "/reports", Some(m), Some(reason))
                .await
                .status,
            201
        );
    }
    assert_eq!(
        call(&ideas_r, "GET", &format!("/ideas/{id}"), None, None)
            .await
            .status,
        200,
        "2 < 3: visible"
    );
    assert_eq!(hidden_events(&app, &id).await, 0);
    // Reported but visible: in the queue, awaiting a decision.
    assert_eq!(
        call(&r, "GET", "/moderation/queue", Some(&author), None)
            .await
            .status,
        403
    );
    assert_eq!(
        call(&r, "GET", "/moderation/queue", None, None)
            .await
            .status,
        401
    );
    let q = call(&r, "GET", "/moderation/queue", Some(&mo), None).await;
    assert_eq!(q.status, 200, "{}", q.body);
    assert_eq!(q.body["items"][0]["state"], "visible");
    assert_eq!(q.body["items"][0]["report_count"], 2);

    let third = json!({"target_type": "idea", "target_id": id, "reason": "raison 2"});
    assert_eq!(
        call(&r, "POST", "/reports", Some(&reporters[2]), Some(third))
            .await
            .status,
        201
    );
    assert_eq!(
        call(&ideas_r, "GET", &format!("/ideas/{id}"), None, None)
            .await
            .status,
        404,
        "3 = 3: hidden"
    );
    assert_eq!(hidden_events(&app, &id).await, 1);
    assert_eq!(
        call(&ideas_r, "GET", "/ideas", None, None).await.body["items"],
        json!([])
    );
    let q = call(&r, "GET", "/moderation/queue", Some(&mo), None).await;
    let item = &q.body["items"][0];
    assert_eq!(item["target_type"], "idea");
    assert_eq!(item["target_id"], json!(id));
    assert_eq!(item["state"], "hidden");
    assert_eq!(item["report_count"], 3);
    assert_eq!(item["author_id"], "author");
    let reasons: Vec<_> = item["reports"]
        .as_array()
        .expect("reports")
        .iter()
        .map(|x| x["reason"].clone())
        .collect();
    assert_eq!(
        reasons,
        vec![json!("raison 0"), json!("raison 1"), json!("raison 2")]
    );
    assert_eq!(
        item["content"]["title"],
        "Des recettes du jour à petit prix"
    );
    // Hidden content cannot be reported by others any more (it does not exist for them).
    let late = member("late");
    join(&app, &late).await;
    assert_eq!(
        call(
            &r,
            "POST",
            "/reports",
            Some(&late),
            Some(report("idea", &id))
        )
        .await
        .status,
        404
    );

    // Decisions: moderators only, with a reason.
    let path = format!("/moderation/idea/{id}");
    let restore = json!({"action": "restore", "reason": "Rien de contraire à la charte"});
    assert_eq!(
        call(&r, "POST", &path, None, Some(restore.clone()))
            .await
            .status,
        401
    );
    assert_eq!(
        call(&r, "POST", &path, Some(&author), Some(restore.clone()))
            .await
            .status,
        403
    );
    let res = call(
        &r,
        "POST",
        &path,
        Some(&mo),
        Some(json!({"action": "restore"})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["reason".to_string()])
    );
    let res = call(
        &r,
        "POST",
        &path,
        Some(&mo),
        Some(json!({"action": "delete", "reason": "x"})),
    )
    .await;
    assert_eq!(
        (res.status, res.fields()),
        (422, vec!["action".to_string()])
    );
    assert_eq!(
        call(
            &r,
            "POST",
            &format!("/moderation/user/{id}"),
            Some(&mo),
            Some(restore.clone())
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(
            &r,
            "POST",
            "/moderation/idea/01JD0000000000000000000000",
            Some(&mo),
            Some(restore.clone())
        )
        .await
        .status,
        404
    );
    let res = call(&r, "POST", &path, Some(&mo), Some(restore.clone())).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["state"], "visible");
    assert_eq!(
        res.body["decision"]["reason"],
        "Rien de contraire à la charte"
    );
    assert_eq!(
        call(&ideas_r, "GET", &format!("/ideas/{id}"), None, None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&r, "GET", "/moderation/queue", Some(&mo), None)
            .await
            .body["items"],
        json!([]),
        "restored content leaves the queue"
    );
    assert_eq!(
        call(&r, "POST", &path, Some(&mo), Some(restore))
            .await
            .status,
        409,
        "nothing to restore"
    );
    // After a moderator restored it, further reports queue it again but do not hide it.
    assert_eq!(
        call(
            &r,
            "POST",
            "/reports",
            Some(&late),
            Some(report("idea", &id))
        )
        .await
        .status,
        201
    );
    assert_eq!(
        call(&ideas_r, "GET", &format!("/ideas/{id}"), None, None)
            .await
            .status,
        200
    );
    let q = call(&r, "GET", "/moderation/queue", Some(&mo), None).await;
    assert_eq!(
        (
            q.body["items"][0]["state"].clone(),
            q.body["items"][0]["report_count"].clone()
        ),
        (json!("visible"), json!(4))
    );
    let hide = json!({"action": "hide", "reason": "Finalement contraire à la charte"});
    assert_eq!(
        call(&r, "POST", &path, Some(&mo), Some(hide.clone()))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&r, "POST", &path, Some(&mo), Some(hide)).await.status,
        409,
        "already hidden"
    );
    assert_eq!(
        call(&r, "GET", "/moderation/queue", Some(&mo), None)
            .await
            .body["items"],
        json!([])
    );

    // The author is told each time, in French, with the moderator's reason.
    let dir = tempfile::tempdir().expect("dir");
    let mailbox = DirMailbox::new(dir.path().to_path_buf()).expect("mailbox");
    let consumer = EmailsConsumer {
        app: app.clone(),
        mailer: mailbox.clone(),
    };
    for e in outbox(&app).await {
        consumer.apply(&e).await.expect("mail");
        consumer
            .apply(&e)
            .await
            .expect("redelivered: no second mail");
    }
    let mails = mailbox.list().expect("mails");
    let subjects: Vec<_> = mails
        .iter()
        .filter(|m| m.to == "author@example.fr" && m.subject.starts_with("Votre contribution"))
        .map(|m| m.subject.clone())
        .collect();
    assert!(
        subjects.contains(&"Votre contribution est masquée en attendant un modérateur".to_string()),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"Votre contribution est de nouveau visible".to_string()),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&"Votre contribution a été masquée par un modérateur".to_string()),
        "{subjects:?}"
    );
    assert_eq!(subjects.len(), 3, "{subjects:?}");
    assert!(mails
        .iter()
        .any(|m| m.text.contains("Motif : Finalement contraire à la charte")));
}

#[tokio::test]
async fn concurrent_reporters_hide_exactly_once() {
    for (threshold, reporters) in [(5usize, 5usize), (5, 12), (5, 4)] {
        let (app, _d) = embedded_app(|s| s.moderation.auto_hide_reports = threshold as i64);
        let author = member("author");
        join(&app, &author).await;
        let id = post_idea(&app, &author).await;
        let who = members(&app, reporters, "r").await;
        let tasks: Vec<_> = who
            .iter()
            .map(|m| {
                let (app, m, id) = (app.clone(), m.clone(), id.clone());
                tokio::spawn(async move {
                    let req = serde_json::from_value(report("idea", &id)).expect("req");
                    community::moderation::report(&app, &caller(&m), req, None).await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            match t.await.expect("task") {
                Ok(_) => ok += 1,
                Err(community::error::Error::NotFound(_)) => {}
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        let hidden = hidden_events(&app, &id).await;
        let row = community::ideas::load(
            &app,
            &community::domain::IdeaId::parse(&id).expect("id"),
            true,
        )
        .await
        .expect("row");
        if reporters >= threshold {
            assert_eq!(
                hidden, 1,
                "{threshold}/{reporters}: exactly one report hides"
            );
            assert!(row.is_hidden());
            assert_eq!(
                ok, threshold,
                "reports after the hide find nothing to report"
            );
        } else {
            assert_eq!(hidden, 0, "{threshold}/{reporters}: below the threshold");
            assert!(!row.is_hidden());
            assert_eq!(ok, reporters);
        }
        let st = app
            .table
            .get(
                &community::moderation::state_key(community::moderation::TargetType::Idea, &id),
                true,
            )
            .await
            .expect("state")
            .expect("exists");
        assert_eq!(st["report_count"], json!(ok));
    }
}

#[tokio::test]
async fn hidden_comments_and_reviews_leave_their_lists() {
    let (app, _d) = embedded_app(|s| s.moderation.auto_hide_reports = 1);
    let author = member("author");
    let bea = member("bea");
    let mo = member("mo").in_groups(&["moderator"]);
    join(&app, &author).await;
    join(&app, &bea).await;
    let id = post_idea(&app, &author).await;
    let ideas_r = ideas::router(app.clone());
    let r = moderation::router(app.clone());
    let reviews_r = reviews::router(app.clone());
    let c = call(
        &ideas_r,
        "POST",
        &format!("/ideas/{id}/comments"),
        Some(&bea),
        Some(json!({"body": "Achetez ma crème miracle"})),
    )
    .await;
    let cid = c.body["id"].as_str().expect("id").to_owned();
    call(
        &ideas_r,
        "POST",
        &format!("/ideas/{id}/comments"),
        Some(&author),
        Some(json!({"body": "Merci à tous"})),
    )
    .await;

    assert_eq!(
        call(
            &r,
            "POST",
            "/reports",
            Some(&author),
            Some(report("comment", &cid))
        )
        .await
        .status,
        201
    );
    let list = call(
        &ideas_r,
        "GET",
        &format!("/ideas/{id}/comments"),
        None,
        None,
    )
    .await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list.body["items"][0]["body"], "Merci à tous");
    // The posts' +1 come from the insights consumer (per batch), the hidden
    // comment's -1 from the moderation's own transaction.
    community::testing::run_insights(&app).await;
    assert_eq!(
        call(&ideas_r, "GET", &format!("/ideas/{id}"), None, None)
            .await
            .body["comment_count"],
        1
    );
    assert_eq!(
        call(&ideas_r, "GET", &format!("/comments/{cid}"), None, None)
            .await
            .status,
        404
    );
    let own = call(
        &ideas_r,
        "GET",
        &format!("/comments/{cid}"),
        Some(&bea),
        None,
    )
    .await;
    assert_eq!(
        (own.status, own.body["moderation"].clone()),
        (200, json!("hidden"))
    );
    let res = call(
        &r,
        "POST",
        &format!("/moderation/comment/{cid}"),
        Some(&mo),
        Some(json!({"action": "restore", "reason": "Faux positif"})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let list = call(
        &ideas_r,
        "GET",
        &format!("/ideas/{id}/comments"),
        None,
        None,
    )
    .await;
    assert_eq!(list.body["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        call(&ideas_r, "GET", &format!("/ideas/{id}"), None, None)
            .await
            .body["comment_count"],
        2
    );

    // Reviews: out of the product's list and figures while hidden.
    let ean = "3560070123452";
    let rv = call(
        &reviews_r,
        "POST",
        &format!("/products/{ean}/reviews"),
        Some(&bea),
        Some(json!({"rating": 1, "title": "Nul nul nul", "body": "Ne l'achetez pas, allez chez le concurrent."})),
    )
    .await;
    assert_eq!(rv.status, 201, "{}", rv.body);
    let rid = rv.body["id"].as_str().expect("id").to_owned();
    let res = call(
        &r,
        "POST",
        &format!("/moderation/review/{rid}"),
        Some(&mo),
        Some(json!({"action": "hide", "reason": "Dénigrement"})),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let page = call(
        &reviews_r,
        "GET",
        &format!("/products/{ean}/reviews"),
        None,
        None,
    )
    .await;
    assert_eq!(page.body["items"], json!([]));
    assert_eq!(page.body["review_count"], 0);
    let res = call(
        &r,
        "POST",
        &format!("/moderation/review/{rid}"),
        Some(&mo),
        Some(json!({"action": "restore", "reason": "Avis authentique"})),
    )
    .await;
    assert_eq!(res.status, 200);
    let page = call(
        &reviews_r,
        "GET",
        &format!("/products/{ean}/reviews"),
        None,
        None,
    )
    .await;
    assert_eq!(page.body["items"][0]["id"], json!(rid));
    assert_eq!(
        (
            page.body["review_count"].clone(),
            page.body["average_rating"].clone()
        ),
        (json!(1), json!(1.0))
    );
}

/// Reports are rate limited per member (trust.toml `[rate_limits] reports`):
/// over the limit a report is 429 with Retry-After, and nothing is recorded.
#[tokio::test]
async fn reports_over_the_rate_limit_are_429() {
    use community::ratelimit::{Action, Limit};
    let (app, _d) = community::testing::embedded_app(|s| {
        s.abuse.rate_limits.enabled = true;
        s.abuse.rate_limits.limits.insert(
            Action::Report.as_str(),
            Limit {
                max: 1,
                per_secs: 86_400,
            },
        );
    });
    let (alice, bob) = (
        community::testing::member("alice"),
        community::testing::member("bob"),
    );
    community::testing::join(&app, &alice).await;
    community::testing::join(&app, &bob).await;
    let ideas_r = ideas::router(app.clone());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let res = community::testing::call(
            &ideas_r,
            "POST",
            "/ideas",
            Some(&alice),
            Some(community::testing::idea_body()),
        )
        .await;
        assert_eq!(res.status, 201, "{}", res.body);
        ids.push(res.body["id"].as_str().expect("id").to_owned());
    }
    let r = moderation::router(app);
    let report = |id: &str| serde_json::json!({"target_type": "idea", "target_id": id, "reason": "Hors sujet"});
    let res =
        community::testing::call(&r, "POST", "/reports", Some(&bob), Some(report(&ids[0]))).await;
    assert_eq!(res.status, 201, "{}", res.body);
    let res =
        community::testing::call(&r, "POST", "/reports", Some(&bob), Some(report(&ids[1]))).await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert!(res.header("retry-after").is_some());
}

/// The same `Idempotency-Key` on a report of another target is a 422 naming
/// the header, and that target is not reported (the member may still report
/// it); while the first report with a key runs, another gets 409.
#[tokio::test]
async fn a_report_idempotency_key_reused_with_another_body_is_refused() {
    use community::receipt::{fingerprint, Receipt};
    let (app, _d) = embedded_app(|_| {});
    let (author, bea) = (member("author"), member("bea"));
    join(&app, &author).await;
    join(&app, &bea).await;
    let (a, b) = (
        post_idea(&app, &author).await,
        post_idea(&app, &author).await,
    );
    let r = moderation::router(app.clone());
    let send = |body: Value, key: &str| {
        let e = community::testing::event(
            "POST",
            "/reports",
            Some(&bea),
            Some(&body.to_string()),
            &[("idempotency-key", key)],
        );
        let r = r.clone();
        async move { community::testing::call_event(&r, &e).await }
    };
    let first = send(report("idea", &a), "k-1").await;
    assert_eq!(first.status, 201, "{}", first.body);
    let replay = send(report("idea", &a), "k-1").await;
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    let other = send(report("idea", &b), "k-1").await;
    assert_eq!(
        (other.status, other.fields()),
        (422, vec!["Idempotency-Key".to_string()]),
        "{}",
        other.body
    );
    let fresh = call(&r, "POST", "/reports", Some(&bea), Some(report("idea", &b))).await;
    assert_eq!(fresh.status, 201, "b was not reported: {}", fresh.body);
    // A running claim on the key: 409, with Retry-After.
    let body = report("idea", &a).to_string();
    let running = Receipt::new(&caller(&bea).id, "k-2", "POST /reports".into())
        .with_fingerprint(Some(fingerprint(body.as_bytes())));
    app.table
        .transact(vec![running.claim_write()])
        .await
        .expect("claim");
    let busy = send(report("idea", &a), "k-2").await;
    assert_eq!(
        (busy.status, busy.fields()),
        (409, vec!["Idempotency-Key".to_string()]),
        "{}",
        busy.body
    );
    assert_eq!(busy.header("retry-after"), Some("1"));
}

/// A report that fails after claiming its `Idempotency-Key` frees the key
/// (the claim's `DeleteItem`): the retry runs again and fails the same way,
/// it is not refused as still running.
#[tokio::test]
async fn a_failed_report_frees_its_idempotency_key() {
    let (app, _d) = embedded_app(|_| {});
    let bea = member("bea");
    join(&app, &bea).await;
    let r = moderation::router(app.clone());
    let body = report("idea", "01JD0000000000000000000000").to_string();
    for _ in 0..2 {
        let e = community::testing::event(
            "POST",
            "/reports",
            Some(&bea),
            Some(&body),
            &[("idempotency-key", "k-1")],
        );
        let res = community::testing::call_event(&r, &e).await;
        assert_eq!(res.status, 404, "{}", res.body);
    }
}
