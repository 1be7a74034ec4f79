//! Votes need a verified address when the issuer says it is not, and are
//! rate limited per member; through the Lambda entry.

use community::ratelimit::{Action, Limit};
use community::testing::{call_event, embedded_app, event, join, member, post_idea};
use serde_json::Value;

/// An event whose token carries `email_verified` as given (None: no claim).
fn with_verified(method: &str, path: &str, sub: &str, verified: Option<&str>) -> String {
    let who = member(sub);
    let mut e: Value =
        serde_json::from_str(&event(method, path, Some(&who), None, &[])).expect("json");
    let claims = &mut e["requestContext"]["authorizer"]["jwt"]["claims"];
    match verified {
        Some(v) => claims["email_verified"] = Value::String(v.into()),
        None => {
            if let Some(o) = claims.as_object_mut() {
                o.remove("email_verified");
            }
        }
    }
    e.to_string()
}

#[tokio::test]
async fn an_unverified_address_cannot_vote_an_absent_claim_can() {
    let (app, _d) = embedded_app(|_| {});
    let (alice, bob, carl) = (member("alice"), member("bob"), member("carl"));
    for m in [&alice, &bob, &carl] {
        join(&app, m).await;
    }
    let idea = post_idea(&app, &alice).await;
    let r = votes::router(app.clone());
    let path = format!("/ideas/{idea}/vote");
    let res = call_event(&r, &with_verified("PUT", &path, "bob", Some("false"))).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(
        res.body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("verified")),
        "{}",
        res.body
    );
    let res = call_event(&r, &with_verified("PUT", &path, "carl", None)).await;
    assert_eq!(res.status, 200, "no claim: allowed: {}", res.body);
    community::thresholds::drain_feed(&app)
        .await
        .expect("aggregate");
    let res = call_event(&r, &with_verified("PUT", &path, "bob", Some("true"))).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["votes"], 2, "carl's vote, counted, and bob's own");
}

#[tokio::test]
async fn votes_over_the_limit_are_429() {
    let (app, _d) = embedded_app(|s| {
        s.abuse.rate_limits.enabled = true;
        s.abuse.rate_limits.limits.insert(
            Action::Vote.as_str(),
            Limit {
                max: 1,
                per_secs: 86_400,
            },
        );
    });
    let (alice, bob) = (member("alice"), member("bob"));
    join(&app, &alice).await;
    join(&app, &bob).await;
    let a = post_idea(&app, &alice).await;
    let b = post_idea(&app, &alice).await;
    let r = votes::router(app);
    let res = call_event(
        &r,
        &with_verified("PUT", &format!("/ideas/{a}/vote"), "bob", Some("true")),
    )
    .await;
    assert_eq!(res.status, 200, "{}", res.body);
    let res = call_event(
        &r,
        &with_verified("PUT", &format!("/ideas/{b}/vote"), "bob", Some("true")),
    )
    .await;
    assert_eq!(res.status, 429, "{}", res.body);
    assert!(res
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some());
    // A withdrawal counts in the window's counter (so a cast-and-withdraw
    // loop is limited too): the first passes, the next is over the limit.
    let withdraw = || with_verified("DELETE", &format!("/ideas/{a}/vote"), "bob", Some("true"));
    let res = call_event(&r, &withdraw()).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body["voted"], false);
    let res = call_event(&r, &withdraw()).await;
    assert_eq!(res.status, 429, "{}", res.body);
}
