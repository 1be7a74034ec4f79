//! Campaign files: the shipped ones are valid; each broken case is rejected
//! with a message naming the file and the field.

use community::campaigns::load_dir;
use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/campaigns");

#[test]
fn the_shipped_campaigns_are_valid() {
    let c = load_dir(Path::new(ROOT)).expect("valid");
    assert_eq!(c.contests.len(), 2);
    assert_eq!(c.product_tests.len(), 1);
    assert!(c
        .contests
        .iter()
        .any(|c| c.sponsor.is_some() && c.kind == community::campaigns::ContestKind::Survey));
}

fn with_file(
    sub: &str,
    name: &str,
    edit: impl Fn(String) -> String,
) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    for s in ["contests", "product-tests"] {
        std::fs::create_dir_all(dir.path().join(s)).expect("mkdir");
    }
    let src = match sub {
        "contests" => "grand-jeu-lancement.toml",
        _ => "test-yaourt-brebis.toml",
    };
    let text = std::fs::read_to_string(Path::new(ROOT).join(sub).join(src)).expect("read");
    let path = dir.path().join(sub).join(name);
    std::fs::write(&path, edit(text)).expect("write");
    (dir, path.display().to_string())
}

fn errors(dir: &tempfile::TempDir) -> Vec<String> {
    match load_dir(dir.path()) {
        Ok(_) => vec![],
        Err(e) => e.iter().map(|e| e.to_string()).collect(),
    }
}

#[test]
fn each_broken_file_is_named_with_its_field() {
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, &str, Edit, &str)> = vec![
        (
            "contests",
            "bad-date.toml",
            Box::new(|t| t.replace("2026-11-23T00:00:00Z", "le 23 novembre")),
            "opens_at",
        ),
        (
            "contests",
            "closes-first.toml",
            Box::new(|t| t.replace("2027-01-31T23:59:59Z", "2026-01-01T00:00:00Z")),
            "closes_at",
        ),
        (
            "contests",
            "question-type.toml",
            Box::new(|t| t.replace("type = \"rating\"", "type = \"stars\"")),
            "questions[2].type",
        ),
        (
            "contests",
            "no-options.toml",
            Box::new(|t| {
                t.replace("options = [\"Plusieurs fois par semaine\", \"Une fois par semaine\", \"Moins souvent\"]", "options = []")
            }),
            "questions[0].options",
        ),
        (
            "contests",
            "no-prize-count.toml",
            Box::new(|t| t.replace("count = 20", "count = 0")),
            "prizes[1].count",
        ),
        (
            "contests",
            "unknown-field.toml",
            Box::new(|t| format!("winners_per_day = 3\n{t}")),
            "winners_per_day",
        ),
        (
            "product-tests",
            "bad-ean.toml",
            Box::new(|t| t.replace("3560070123452", "3560070123457")),
            "ean",
        ),
        (
            "product-tests",
            "windows.toml",
            Box::new(|t| {
                t.replace(
                    "reviews_open_at = \"2026-12-08T00:00:00Z\"",
                    "reviews_open_at = \"2026-12-01T00:00:00Z\"",
                )
            }),
            "reviews_open_at",
        ),
        (
            "product-tests",
            "no-slots.toml",
            Box::new(|t| t.replace("slots = 50", "slots = 0")),
            "slots",
        ),
    ];
    for (sub, name, edit, field) in cases {
        let (dir, path) = with_file(sub, name, edit);
        let errs = errors(&dir);
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&path) && e.contains(&format!(": {field}: "))),
            "{name}: expected an error naming {path} and {field}, got {errs:?}"
        );
    }
}

#[test]
fn duplicate_ids_across_files_are_refused() {
    let (dir, _) = with_file("contests", "a.toml", |t| t);
    let text = std::fs::read_to_string(dir.path().join("contests/a.toml")).expect("read");
    std::fs::write(dir.path().join("contests/b.toml"), text).expect("write");
    let errs = errors(&dir);
    assert!(
        errs.iter()
            .any(|e| e.contains("b.toml: id: duplicate contest id")),
        "{errs:?}"
    );
}
