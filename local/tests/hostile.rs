//! Malformed, oversized and hostile requests on every route of the local
//! server (all functions mounted): never a 5xx, always problem+json on errors.

use axum::body::Body;
use axum::http::Request;
use community::store::embedded::EmbeddedTable;
use community::App;
use http_body_util::BodyExt;
use rand::{Rng, SeedableRng};
use tower::ServiceExt;

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("GET", "/themes"),
    ("GET", "/ideas"),
    ("GET", "/ideas/similar"),
    ("POST", "/ideas"),
    ("GET", "/ideas/{id}"),
    ("PUT", "/ideas/{id}/vote"),
    ("DELETE", "/ideas/{id}/vote"),
    ("POST", "/members"),
    ("GET", "/members/me"),
    ("PATCH", "/members/me"),
    ("GET", "/members/me/points"),
    ("POST", "/members/me/redemptions"),
    ("GET", "/members/me/export"),
    ("DELETE", "/members/me"),
    ("GET", "/review-queue"),
    ("POST", "/ideas/{id}/decision"),
    ("POST", "/ideas/{id}/progress"),
    ("GET", "/r/{token}"),
    ("GET", "/unsubscribe/{token}"),
    ("POST", "/unsubscribe/{token}"),
    ("GET", "/mails/{id}/stats"),
    ("GET", "/contests"),
    ("GET", "/contests/{id}"),
    ("POST", "/contests/{id}/entries"),
    ("POST", "/contests/{id}/draw"),
    ("GET", "/product-tests"),
    ("GET", "/product-tests/{id}"),
    ("POST", "/product-tests/{id}/applications"),
    ("POST", "/product-tests/{id}/selection"),
    ("GET", "/contests/{id}/draw/entries"),
    ("GET", "/contests/{id}/results"),
    ("GET", "/surveys"),
    ("GET", "/surveys/{id}"),
    ("POST", "/surveys/{id}/responses"),
    ("GET", "/surveys/{id}/results"),
    ("GET", "/product-tests/{id}/selection/entries"),
    ("POST", "/products/{ean}/reviews"),
    ("GET", "/products/{ean}/reviews"),
    ("GET", "/products/{ean}/label"),
    ("GET", "/insights"),
    ("GET", "/ambassadors"),
    ("GET", "/ideas/{id}/comments"),
    ("POST", "/ideas/{id}/comments"),
    ("GET", "/comments/{id}"),
    ("POST", "/reports"),
    ("GET", "/moderation/queue"),
    ("POST", "/moderation/{target_type}/{id}"),
    ("POST", "/ideas/{id}/merge"),
    ("PUT", "/ideas/{id}/follow"),
    ("DELETE", "/ideas/{id}/follow"),
    ("GET", "/members/me/following"),
    ("GET", "/members/me/votes"),
];

fn bodies(rng: &mut impl Rng) -> Vec<Vec<u8>> {
    let mut nested = "[".repeat(20_000);
    nested.push_str(&"]".repeat(20_000));
    let mut out: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"1e999999".to_vec(),
        nested.into_bytes(),
        br#"{"theme":null,"title":123,"body":[1]}"#.to_vec(),
        br#"{"display_name":"\u0000\u0000","email":"a@b.c","accept_terms_version":"2026-11","email_opt_in":true}"#.to_vec(),
        br#"{"display_name":"Zoe","email":"zoe@example.fr","accept_terms_version":"2026-11","email_opt_in":true,"loyalty_card":"99999999999999999999999999"}"#.to_vec(),
        br#"{"theme":"eat-well","title":"ok title","body":"ok body long enough","extra":{"$where":"1"}}"#.to_vec(),
        format!(r#"{{"title":"{}"}}"#, "x".repeat(70_000)).into_bytes(),
        vec![0xff, 0xfe, 0x00, 0x80],
    ];
    for _ in 0..20 {
        let n = rng.random_range(0..3000);
        out.push((0..n).map(|_| rng.random()).collect());
    }
    out
}

fn ids(rng: &mut impl Rng) -> Vec<String> {
    let mut v = vec![
        "01JD0000000000000000000000".to_string(),
        "not-an-id".into(),
        "%00".into(),
        "..%2F..%2Fmembers".into(),
        "x".repeat(5000),
        "%F0%9F%92%A9".into(),
        "ZZZZZZZZZZZZZZZZZZZZZZZZZZ".into(),
    ];
    v.push(
        (0..26)
            .map(|_| rng.random_range(b'0'..=b'Z') as char)
            .filter(|c| c.is_ascii_alphanumeric())
            .collect(),
    );
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_hostile_request_gets_a_5xx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = EmbeddedTable::open(dir.path()).expect("store");
    let app = App::new(table, community::testing::settings());
    community::testing::join(&app, &community::testing::member("fuzzer")).await;
    let router = local::app(app, local::auth::Verifier::new(local::auth::DEFAULT_SECRET));
    let sign = |sub: &str, groups: &[String]| {
        local::auth::sign(
            local::auth::DEFAULT_SECRET,
            sub,
            Some("f@example.fr"),
            groups,
            3600,
        )
        .expect("sign")
    };
    let auths = [
        None,
        Some(format!("Bearer {}", sign("fuzzer", &[]))),
        Some(format!(
            "Bearer {}",
            sign("stranger", &["committee".into()])
        )),
        Some(format!("Bearer {}", sign("a#b", &[]))),
        Some("Bearer ".into()),
        Some("Bearer a.b.c".into()),
        Some("Basic dXNlcjpwYXNz".into()),
        Some(format!("Bearer {}", "A".repeat(8000))),
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let bodies = bodies(&mut rng);
    let ids = ids(&mut rng);
    let queries = [
        "",
        "?limit=-1",
        "?limit=99999999999999999999",
        "?cursor=%FF%FE",
        "?theme=%00&sort=top&status=open",
        "?cursor=eyJwayI6MX0",
        "?q=%00%F0%9F%92%A9%CC%81&title=le%20la&sort=top&cursor=dDo5OQ",
    ];
    let mut sent = 0;
    for (method, route) in ROUTES {
        for (i, body) in bodies.iter().enumerate() {
            let id = &ids[i % ids.len()];
            let auth = &auths[i % auths.len()];
            let query = queries[i % queries.len()];
            let path = format!(
                "{}{}",
                route
                    .replace("{id}", id)
                    .replace("{token}", id)
                    .replace("{ean}", id)
                    .replace(
                        "{target_type}",
                        ["idea", "comment", "review", "x%00"][i % 4]
                    ),
                query
            );
            let mut req = Request::builder().method(*method).uri(&path);
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            if i % 3 == 0 {
                req = req.header(
                    "idempotency-key",
                    if i % 2 == 0 { "k-1" } else { "bad key!" },
                );
            }
            if i % 4 == 0 {
                req = req.header("content-type", "text/plain; charset=latin1");
            }
            let Ok(req) = req.body(Body::from(body.clone())) else {
                continue;
            };
            let res = router.clone().oneshot(req).await.expect("infallible");
            let status = res.status().as_u16();
            let ct = res
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let bytes = res.into_body().collect().await.expect("body").to_bytes();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                status < 500,
                "{method} {path} with body #{i} answered {status}: {text}"
            );
            // What it answered is documented for the route (status, media
            // type, body), as every other test's responses are.
            let media = (!ct.is_empty()).then_some(ct.as_str());
            community::testing::contract::assert_documented(method, &path, status, media, &bytes);
            if status >= 400 {
                assert_eq!(ct, "application/problem+json", "{method} {path} #{i}");
                assert!(
                    !text.contains("Error {") && !text.contains("panicked"),
                    "no Debug output: {text}"
                );
            }
            sent += 1;
        }
    }
    assert!(sent > 300, "{sent}");
}

/// Every route the functions serve is documented in the OpenAPI file (the
/// end-to-end test checks the converse: every documented route is served).
#[test]
fn every_served_route_is_documented() {
    let spec: serde_json::Value = serde_json::from_str(local::OPENAPI).expect("json");
    for (method, path) in ROUTES {
        let op = &spec["paths"][path][method.to_lowercase()];
        assert!(
            op.is_object(),
            "{method} {path} is served but not in docs/openapi.json"
        );
        assert!(
            op["x-function"].is_string(),
            "{method} {path} names its function"
        );
    }
}
