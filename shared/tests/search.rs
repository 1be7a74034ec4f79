//! Search on both adapters (the embedded store, and DynamoDB on moto): the
//! word index written with each idea, the AND merge-join over more postings
//! than one round reads, theme/status/sort, hidden ideas and suggestions.

mod support;

use community::ideas::{self, ListRequest, NewIdea, Sort};
use community::moderation::{self, DecisionRequest};
use community::search;
use community::store::Table;
use community::App;
use std::sync::Arc;
use support::{app, caller, embedded, member};

/// Ideas posted (more than a round of the merge-join reads per word).
const N: usize = 105;

fn titles(items: &[ideas::IdeaCard]) -> Vec<String> {
    items.iter().map(|c| c.title.clone()).collect()
}

/// Every page of a search, concatenated.
async fn all(app: &App<Arc<dyn Table>>, q: &str, mut req: ListRequest) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..50 {
        let page = search::search(app, q, req.clone()).await.expect("search");
        out.extend(titles(&page.items));
        match page.next_cursor {
            Some(c) => req.cursor = Some(c),
            None => return out,
        }
    }
    panic!("too many pages");
}

fn req(limit: u32) -> ListRequest {
    ListRequest {
        limit,
        ..Default::default()
    }
}

async fn case(app: App<Arc<dyn Table>>) {
    let ana = member(&app, "ana").await;
    let mut ids = Vec::new();
    for i in 0..N {
        let v = ideas::create(
            &app,
            &ana,
            NewIdea {
                theme: Some(if i % 3 == 0 { "children" } else { "shopping" }.into()),
                title: Some(format!("Idée commune {i:03}")),
                body: Some(format!(
                    "Une proposition assez longue, {} et {}.",
                    if i % 10 == 0 { "rare" } else { "banale" },
                    if i % 2 == 0 { "pair" } else { "impair" }
                )),
            },
            None,
        )
        .await
        .expect("idea");
        ids.push(v.id);
    }
    let name = |i: usize| format!("Idée commune {i:03}");
    // One common word: every idea, newest first, over several rounds.
    let got = all(&app, "communes", req(40)).await;
    let want: Vec<String> = (0..N).rev().map(name).collect();
    assert_eq!(got, want);
    // A rare word AND a common one: the rare one's postings run out first.
    let got = all(&app, "commune RARE", req(5)).await;
    let want: Vec<String> = (0..N).rev().filter(|i| i % 10 == 0).map(name).collect();
    assert_eq!(got, want);
    let got = all(&app, "pair commune", req(100)).await;
    let want: Vec<String> = (0..N).rev().filter(|i| i % 2 == 0).map(name).collect();
    assert_eq!(got, want);
    // Theme.
    let mut r = req(20);
    r.theme = Some("children".into());
    let got = all(&app, "rare", r).await;
    let want: Vec<String> = (0..N)
        .rev()
        .filter(|i| i % 10 == 0 && i % 3 == 0)
        .map(name)
        .collect();
    assert_eq!(got, want);
    // Top: no votes, so newest first, among the 100 newest matches.
    let mut r = req(30);
    r.sort = Sort::Top;
    let got = all(&app, "commune", r).await;
    assert_eq!(got.len(), search::TOP_CAP);
    assert_eq!(got[0], name(N - 1));
    // A hidden idea leaves the results; restored, it is back.
    let modo = {
        let mut c = caller("modo");
        c.groups = vec!["moderator".into()];
        c
    };
    let decide = |action: &'static str| {
        let app = app.clone();
        let modo = modo.clone();
        let id = ids[100].clone();
        async move {
            moderation::decide(
                &app,
                &modo,
                "idea",
                &id,
                DecisionRequest {
                    action: Some(action.into()),
                    reason: Some("Vérification".into()),
                },
            )
            .await
            .expect("decision")
        }
    };
    decide("hide").await;
    let got = all(&app, "rare", req(20)).await;
    assert_eq!(got.first(), Some(&name(90)));
    let similar = search::similar(&app, "Une idée commune rare")
        .await
        .expect("similar");
    assert_eq!(similar.len(), search::SIMILAR);
    assert!(!titles(&similar).contains(&name(100)));
    decide("restore").await;
    let got = all(&app, "rare", req(20)).await;
    assert_eq!(got.first(), Some(&name(100)));
    // Suggestions: a shared title word and the rare body word rank first.
    let similar = search::similar(&app, "Une idée commune rare")
        .await
        .expect("similar");
    assert_eq!(
        titles(&similar),
        [name(100), name(90), name(80), name(70), name(60)]
    );
}

/// Ideas written before the index existed are indexed by `reindex`, once
/// however often it runs.
async fn reindex_case(app: App<Arc<dyn Table>>) {
    let ana = member(&app, "ana").await;
    let fresh = ideas::create(
        &app,
        &ana,
        NewIdea {
            theme: Some("loyalty".into()),
            title: Some("Une carte de fidélité virtuelle".into()),
            body: Some("Dans l'application du magasin, sans carte en plastique.".into()),
        },
        None,
    )
    .await
    .expect("idea");
    // An older idea: its row and body only, as posted before the index.
    let id = community::domain::IdeaId::new();
    let mut row = ideas::load(
        &app,
        &community::domain::IdeaId::parse(&fresh.id).expect("id"),
        true,
    )
    .await
    .expect("row");
    row.id = id.as_str().to_owned();
    row.title = "Des tickets de caisse virtuels".into();
    let body = support::obj(
        serde_json::json!({"pk": format!("IDEA#{}", row.id), "sk": "BODY",
        "id": row.id, "body": "Envoyés par courriel plutôt qu'imprimés."}),
    );
    app.table
        .transact(vec![
            community::store::Write::put(row.to_item().expect("item")),
            community::store::Write::put(body),
        ])
        .await
        .expect("old idea");
    assert_eq!(
        all(&app, "virtuel", req(20)).await,
        ["Une carte de fidélité virtuelle"]
    );
    let first = search::reindex(&app).await.expect("reindex");
    assert_eq!(first.ideas, 2);
    let again = search::reindex(&app).await.expect("reindex");
    assert_eq!(again, first);
    let mut got = all(&app, "virtuel", req(20)).await;
    got.sort();
    assert_eq!(
        got,
        [
            "Des tickets de caisse virtuels",
            "Une carte de fidélité virtuelle"
        ]
    );
    assert_eq!(
        all(&app, "courriel", req(20)).await,
        ["Des tickets de caisse virtuels"]
    );
}

#[tokio::test]
async fn reindex_on_both_adapters() {
    let (t, _d) = embedded();
    reindex_case(app(t, |s| s.abuse.rate_limits.enabled = false)).await;
    if let Some(t) = support::dynamodb().await {
        reindex_case(app(t, |s| s.abuse.rate_limits.enabled = false)).await;
    }
}

#[tokio::test]
async fn search_on_the_embedded_store() {
    let (t, _d) = embedded();
    case(app(t, |s| s.abuse.rate_limits.enabled = false)).await;
}

#[tokio::test]
async fn search_on_dynamodb() {
    let Some(t) = support::dynamodb().await else {
        return;
    };
    case(app(t, |s| s.abuse.rate_limits.enabled = false)).await;
}
