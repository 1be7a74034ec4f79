//! The links function through its Lambda entry (API Gateway events in).

use community::testing::{call, caller, embedded_app, join, member};

async fn opted_in<T: community::store::Table>(app: &community::App<T>, sub: &str) -> bool {
    community::members::get(app, &caller(&member(sub)).id)
        .await
        .expect("member")
        .email_opt_in
}

/// Mail security scanners follow every link of a mail: a `GET` of the
/// unsubscribe link only shows the confirmation page; the page's button
/// (or a mail client's RFC 8058 one-click `POST`) unsubscribes.
#[tokio::test]
async fn unsubscribing_takes_a_post_and_a_get_changes_nothing() {
    let (app, _d) = embedded_app(|_| {});
    join(&app, &member("marie")).await;
    assert!(opted_in(&app, "marie").await);
    let url = community::mail::unsubscribe_url(&app.settings(), "marie");
    let path = url
        .strip_prefix(&app.settings().public_url)
        .expect("a link of this server")
        .to_owned();
    let router = links::router(app.clone());

    for _ in 0..3 {
        let page = call(&router, "GET", &path, None, None).await;
        assert_eq!(page.status, 200);
        let html = page.body.as_str().expect("a page");
        assert!(html.contains("<form method=\"post\""), "{html}");
        assert_eq!(page.header("cache-control"), Some("no-store"));
    }
    assert!(opted_in(&app, "marie").await, "a GET unsubscribes no one");

    let done = call(&router, "POST", &path, None, None).await;
    assert_eq!(done.status, 200);
    assert!(!opted_in(&app, "marie").await, "the POST unsubscribes");
    // Again: still fine (a mail client may retry).
    assert_eq!(call(&router, "POST", &path, None, None).await.status, 200);

    // A forged or damaged token is a 404 on both, and changes nothing.
    for method in ["GET", "POST"] {
        let r = call(&router, method, "/unsubscribe/not-a-token", None, None).await;
        assert_eq!(r.status, 404, "{method}");
    }
}

/// A tracked link redirects to its target and counts the member's first
/// click on the mail only (the click record and the counter move together).
#[tokio::test]
async fn a_tracked_link_redirects_and_counts_one_click_per_member() {
    let (app, _d) = embedded_app(|_| {});
    join(&app, &member("marie")).await;
    let url = community::mail::tracked_url(
        &app.settings(),
        "news-1",
        "marie",
        "https://example.fr/idees",
    );
    let path = url
        .strip_prefix(&app.settings().public_url)
        .expect("a link of this server")
        .to_owned();
    let router = links::router(app.clone());
    for _ in 0..2 {
        let res = call(&router, "GET", &path, None, None).await;
        assert!((300..400).contains(&res.status), "{}", res.status);
        assert_eq!(res.header("location"), Some("https://example.fr/idees"));
    }
    let stats = call(
        &router,
        "GET",
        "/mails/news-1/stats",
        Some(&member("ana").in_groups(&["marketing"])),
        None,
    )
    .await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.body["unique_clicks"], 1);
    let forged = call(&router, "GET", "/r/not-a-token", None, None).await;
    assert_eq!(forged.status, 404);
}

/// During the soft launch the mail links stay open (an unsubscribe link
/// must always work), while the marketing figures, like every other read,
/// need a member (then the marketing group).
#[tokio::test]
async fn soft_launch_keeps_mail_links_open_and_reads_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = community::store::embedded::EmbeddedTable::open(dir.path()).expect("store");
    let app = community::App::from_table(
        table,
        community::testing::settings(),
        community::live::Overrides::default(),
        std::time::Duration::ZERO,
    );
    community::store::Table::transact(
        &app.table,
        vec![community::live::launch_write(
            community::live::LaunchMode::Soft,
            &community::domain::now(),
        )],
    )
    .await
    .expect("soft launch");
    let marie = member("marie");
    join(&app, &marie).await;
    let r = links::router(app.clone());
    let url = community::mail::unsubscribe_url(&app.settings(), "marie");
    let path = url
        .strip_prefix(&app.settings().public_url)
        .expect("our url")
        .to_owned();
    assert_eq!(call(&r, "GET", &path, None, None).await.status, 200);
    let stats = "/mails/news-1/stats";
    assert_eq!(call(&r, "GET", stats, None, None).await.status, 401);
    assert_eq!(
        call(&r, "GET", stats, Some(&member("stranger")), None)
            .await
            .status,
        403,
        "not a member"
    );
    let r2 = call(&r, "GET", stats, Some(&marie), None).await;
    assert_eq!(r2.status, 403, "a member, not marketing: {}", r2.body);
    let mk = member("mia").in_groups(&["marketing"]);
    assert_eq!(call(&r, "GET", stats, Some(&mk), None).await.status, 200);
}
