//! An idea merged into another (`community::merge`) takes no votes,
//! withdrawals or follows any more (409 naming the target), through the
//! votes function's Lambda entry; an unfollow is still recorded.

use community::domain::IdeaId;
use community::merge::MergeRequest;
use community::testing::{call, caller, embedded_app, join, member, post_idea};
use serde_json::json;

#[tokio::test]
async fn a_merged_idea_takes_no_votes_withdrawals_or_follows() {
    let (app, _d) = embedded_app(|_| {});
    let (alice, bea, carl) = (member("alice"), member("bea"), member("carl"));
    for m in [&alice, &bea, &carl] {
        join(&app, m).await;
    }
    let source = post_idea(&app, &alice).await;
    let target = post_idea(&app, &bea).await;
    let r = votes::router(app.clone());
    let vote = format!("/ideas/{source}/vote");
    let follow = format!("/ideas/{source}/follow");
    assert_eq!(call(&r, "PUT", &vote, Some(&carl), None).await.status, 200);
    assert_eq!(
        call(&r, "PUT", &follow, Some(&carl), None).await.status,
        200
    );

    let mo = member("mo").in_groups(&["moderator"]);
    let req = MergeRequest {
        into: Some(target.clone()),
        reason: Some("La même idée, proposée deux fois".into()),
    };
    let sid = IdeaId::parse(&source).expect("id");
    community::merge::merge(&app, &caller(&mo), &sid, req)
        .await
        .expect("merged");

    for (method, path, who) in [
        ("PUT", &vote, &bea),
        ("DELETE", &vote, &carl),
        ("PUT", &follow, &bea),
    ] {
        let res = call(&r, method, path, Some(who), None).await;
        assert_eq!(res.status, 409, "{method} {path}: {}", res.body);
        assert!(
            res.body["detail"]
                .as_str()
                .is_some_and(|d| d.contains(&target)),
            "{}",
            res.body
        );
    }
    let res = call(&r, "DELETE", &follow, Some(&carl), None).await;
    assert_eq!(
        (res.status, res.body),
        (200, json!({"idea_id": source, "following": false}))
    );
}
