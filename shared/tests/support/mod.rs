//! Test support: adapters to run cases on, and a few domain fixtures.
#![allow(dead_code)]

use community::auth::Caller;
use community::config::{Settings, BUILTIN_CAMPAIGN};
use community::domain::{IdeaId, MemberId};
use community::store::dynamo::{create_table, DynamoTable};
use community::store::embedded::EmbeddedTable;
use community::store::{Item, Table};
use community::App;
use serde_json::Value;
use std::sync::Arc;

pub fn obj(v: Value) -> Item {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

pub fn embedded() -> (Arc<dyn Table>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let t = EmbeddedTable::open(dir.path()).expect("open");
    (Arc::new(t), dir)
}

/// A fresh table on moto, or None (skip) when no endpoint is configured and
/// COMMUNITY_REQUIRE_MOTO is not set.
pub async fn dynamodb() -> Option<Arc<dyn Table>> {
    let Ok(endpoint) = std::env::var("COMMUNITY_TEST_DYNAMODB_ENDPOINT") else {
        if std::env::var("COMMUNITY_REQUIRE_MOTO").is_ok_and(|v| v == "1") {
            panic!("COMMUNITY_REQUIRE_MOTO=1 but COMMUNITY_TEST_DYNAMODB_ENDPOINT is not set");
        }
        eprintln!("skipping a DynamoDB case: COMMUNITY_TEST_DYNAMODB_ENDPOINT is not set (run ./scripts/test)");
        return None;
    };
    let client = dynamo_client(&endpoint);
    let name = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
    create_table(&client, &name)
        .await
        .expect("create table on moto");
    Some(Arc::new(DynamoTable::new(client, name)))
}

pub fn dynamo_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    let conf = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_dynamodb::config::Region::new("eu-west-3"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

pub fn app(t: Arc<dyn Table>, tweak: impl FnOnce(&mut Settings)) -> App<Arc<dyn Table>> {
    let mut s = Settings::from_campaign(BUILTIN_CAMPAIGN, "builtin").expect("campaign");
    tweak(&mut s);
    App::new(t, s)
}

pub fn caller(sub: &str) -> Caller {
    Caller {
        id: MemberId::parse(sub).expect("sub"),
        email: Some(format!("{sub}@example.fr")),
        groups: vec![],
        email_verified: Some(true),
    }
}

pub async fn member(app: &App<Arc<dyn Table>>, sub: &str) -> Caller {
    let c = caller(sub);
    let req = community::members::SignUp {
        display_name: Some(format!("Membre {sub}")),
        email: Some(format!("{sub}@example.fr")),
        accept_terms_version: Some(app.settings().terms_version.clone()),
        email_opt_in: Some(true),
        ..Default::default()
    };
    community::members::sign_up(app, &c, req, None)
        .await
        .expect("sign up");
    c
}

pub async fn idea(app: &App<Arc<dyn Table>>, author: &Caller) -> IdeaId {
    let req = community::ideas::NewIdea {
        theme: Some("environment".into()),
        title: Some("Des paniers anti-gaspi".into()),
        body: Some("Des paniers de produits proches de leur date, à prix réduit.".into()),
    };
    let v = community::ideas::create(app, author, req, None)
        .await
        .expect("idea");
    IdeaId::parse(&v.id).expect("id")
}
