//! Event files (`infra/campaigns/events/*.toml`, events and round tables):
//! the shipped ones are valid; each broken one is named with its field;
//! applying keeps the registrations and plans the change field by field.

use community::campaigns::{apply_plan, current, load_dir, plan, Change};
use community::store::embedded::EmbeddedTable;
use community::store::{Key, Table, Update, Write};
use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/campaigns");
const SAMPLE: &str = "table-ronde-magasin-de-demain";

#[test]
fn the_shipped_events_are_valid() {
    let c = load_dir(Path::new(ROOT)).expect("valid");
    assert_eq!(c.events.len(), 2);
    let kinds: Vec<_> = c.events.iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&community::roundtables::RoundtableKind::InStore));
    assert!(kinds.contains(&community::roundtables::RoundtableKind::Online));
}

/// The shipped settings and one event file, edited, under `name`.
fn dir_with(name: &str, edit: impl Fn(String) -> String) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    for s in ["contests", "product-tests", "events"] {
        std::fs::create_dir_all(dir.path().join(s)).expect("mkdir");
    }
    for f in ["community.toml", "points.toml"] {
        std::fs::copy(Path::new(ROOT).join(f), dir.path().join(f)).expect("copy");
    }
    let text = std::fs::read_to_string(
        Path::new(ROOT)
            .join("events")
            .join(format!("{SAMPLE}.toml")),
    )
    .expect("read");
    let path = dir.path().join("events").join(name);
    std::fs::write(&path, edit(text)).expect("write");
    (dir, path.display().to_string())
}

#[test]
fn each_broken_event_file_is_named_with_its_field() {
    type Edit = Box<dyn Fn(String) -> String>;
    let same = format!("{SAMPLE}.toml");
    let cases: Vec<(String, Edit, &str)> = vec![
        (
            same.clone(),
            Box::new(|t| t.replace("capacity = 30", "capacity = 0")),
            "capacity",
        ),
        (
            same.clone(),
            Box::new(|t| t.replace("kind = \"in_store\"", "kind = \"online\"")),
            "link",
        ),
        (
            same.clone(),
            Box::new(|t| t.replace("place = ", "# place = ")),
            "place",
        ),
        (
            same.clone(),
            Box::new(|t| {
                t.replace(
                    "starts_at = \"2027-01-21T17:30:00Z\"",
                    "starts_at = \"demain soir\"",
                )
            }),
            "starts_at",
        ),
        (
            same.clone(),
            Box::new(|t| t.replace("2027-01-20T17:30:00Z", "2027-01-22T17:30:00Z")),
            "registration_closes_at",
        ),
        (
            same.clone(),
            Box::new(|t| t.replace("kind = \"in_store\"", "kind = \"au magasin\"")),
            "kind",
        ),
        (
            same.clone(),
            Box::new(|t| t.replace("theme = \"shopping\"", "theme = \"sport\"")),
            "theme",
        ),
        (
            same.clone(),
            Box::new(|t| t.replace("title = ", "titre = ")),
            "titre",
        ),
        ("autre-nom.toml".into(), Box::new(|t| t), "id"),
    ];
    for (name, edit, field) in cases {
        let (dir, file) = dir_with(&name, edit);
        let errs: Vec<String> = match load_dir(dir.path()) {
            Ok(_) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        };
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{file}: {field}"))),
            "{field}: {errs:?}"
        );
    }
}

#[tokio::test]
async fn applying_plans_events_and_keeps_their_registrations() {
    let store = tempfile::tempdir().expect("tempdir");
    let table = EmbeddedTable::open(store.path()).expect("open");
    let shipped = load_dir(Path::new(ROOT)).expect("valid");
    let p = plan(&current(&table).await.expect("read"), &shipped);
    assert!(
        p.lines().contains(&format!("+ event {SAMPLE}")),
        "{:?}",
        p.lines()
    );
    apply_plan(&table, &shipped, &p, |_, _, _| {})
        .await
        .expect("apply");
    // Seats taken meanwhile.
    table
        .transact(vec![Write::update(
            community::roundtables::key(SAMPLE),
            Update::default().add("registered", 7),
        )])
        .await
        .expect("seat");
    let mut changed = shipped.clone();
    if let Some(e) = changed.events.iter_mut().find(|e| e.id == SAMPLE) {
        e.capacity = 40;
    }
    let p = plan(&current(&table).await.expect("read"), &changed);
    let lines = p.lines();
    assert!(
        lines.contains(&format!("~ event {SAMPLE}: capacity 30 → 40")),
        "{lines:?}"
    );
    assert_eq!(p.to_apply().len(), 1);
    assert!(p
        .items
        .iter()
        .filter(|i| i.kind == "event")
        .all(|i| i.change != Change::New));
    apply_plan(&table, &changed, &p, |_, _, _| {})
        .await
        .expect("apply");
    let item = table
        .get(&Key::new(format!("RTABLE#{SAMPLE}"), "RTABLE"), true)
        .await
        .expect("get")
        .expect("event");
    assert_eq!(item["registered"], 7, "registrations kept");
    assert_eq!(item["capacity"], 40);
    assert_eq!(item["gsi2pk"], "RTABLEDAY#2027-01-21");
}
