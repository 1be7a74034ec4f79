//! An idea merged into another (`community::merge`) while under review
//! leaves the committee's queue and is not decided: its votes joined the
//! target's, which the committee decides on.

use community::domain::IdeaId;
use community::merge::MergeRequest;
use community::testing::{call, caller, embedded_app, join, member, post_idea};
use serde_json::json;

#[tokio::test]
async fn a_merged_idea_leaves_the_review_queue_and_is_not_decided() {
    let (app, _d) = embedded_app(|_| {});
    let (alice, bea) = (member("alice"), member("bea"));
    join(&app, &alice).await;
    join(&app, &bea).await;
    let source = post_idea(&app, &alice).await;
    let target = post_idea(&app, &bea).await;
    let sid = IdeaId::parse(&source).expect("id");
    community::thresholds::send_to_review(&app, &sid)
        .await
        .expect("under review");
    let r = committee::router(app.clone());
    let claire = member("claire").in_groups(&["committee"]);
    let queue = call(&r, "GET", "/review-queue", Some(&claire), None).await;
    assert_eq!(queue.body["items"][0]["id"], json!(source));

    let mo = member("mo").in_groups(&["moderator"]);
    let req = MergeRequest {
        into: Some(target.clone()),
        reason: Some("La même idée, proposée deux fois".into()),
    };
    community::merge::merge(&app, &caller(&mo), &sid, req)
        .await
        .expect("merged");
    let queue = call(&r, "GET", "/review-queue", Some(&claire), None).await;
    assert_eq!(queue.body["items"], json!([]), "{}", queue.body);
    let res = call(
        &r,
        "POST",
        &format!("/ideas/{source}/decision"),
        Some(&claire),
        Some(json!({"outcome": "accepted", "reason": "Faisable dans tous les magasins dès le printemps."})),
    )
    .await;
    assert_eq!(res.status, 409, "{}", res.body);
    assert!(
        res.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&target)),
        "{}",
        res.body
    );
}
