//! Campaign files: the shipped ones are valid; each broken case is rejected
//! with a message naming the file and the field; cross-file checks; the
//! diff `campaigns apply` prints and what applying keeps.

use community::campaigns::{apply, apply_plan, current, load_dir, plan, Change};
use community::store::embedded::{is_locked, EmbeddedTable};
use community::store::Table;
use std::path::Path;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/campaigns");

#[test]
fn the_shipped_campaigns_are_valid() {
    let c = load_dir(Path::new(ROOT)).expect("valid");
    assert_eq!(c.contests.len(), 2);
    assert_eq!(c.product_tests.len(), 1);
    assert_eq!(
        c.product_tests[0].brand_slug.as_deref(),
        Some("bergeries-du-larzac")
    );
    assert_eq!(c.surveys.len(), 1);
    assert!(c
        .contests
        .iter()
        .any(|c| c.sponsor.is_some() && c.kind == community::campaigns::ContestKind::Survey));
}

/// Each broken survey file is named with its field (`surveys/*.toml`).
#[test]
fn each_broken_survey_is_named_with_its_field() {
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "bad-date.toml",
            Box::new(|t| t.replace("2026-12-01T08:00:00Z", "le 1er décembre")),
            "opens_at",
        ),
        (
            "closes-first.toml",
            Box::new(|t| t.replace("2027-01-15T22:59:59Z", "2026-01-01T00:00:00Z")),
            "closes_at",
        ),
        (
            "bad-cohort.toml",
            Box::new(|t| t.replace("\"panel\"", "\"Panel Clients\"")),
            "audience.cohorts[1]",
        ),
        (
            "unknown-level.toml",
            Box::new(|t| t.replace("ambassadors = true", "levels = [\"platine\"]")),
            "audience.levels[0]",
        ),
        (
            "bad-member.toml",
            Box::new(|t| t.replace("ambassadors = true", "members = [\"\"]")),
            "audience.members[0]",
        ),
        (
            "bad-type.toml",
            Box::new(|t| t.replacen("type = \"single\"", "type = \"rating\"", 1)),
            "questions[0].type",
        ),
        (
            "one-option.toml",
            Box::new(|t| {
                t.replace(
                    "options = [\"Groupe Facebook\", \"Groupe WhatsApp\", \"Panel consommateurs\", \"En magasin\", \"Par un collègue\"]",
                    "options = [\"Groupe Facebook\"]",
                )
            }),
            "questions[0].options",
        ),
        (
            "too-many-choices.toml",
            Box::new(|t| t.replace("max_choices = 5", "max_choices = 9")),
            "questions[1].max_choices",
        ),
        (
            "flat-scale.toml",
            Box::new(|t| t.replace("min = 0\nmax = 10", "min = 3\nmax = 3")),
            "questions[2].max",
        ),
        (
            "scale-options.toml",
            Box::new(|t| t.replace("min = 0\nmax = 10", "options = [\"a\", \"b\"]")),
            "questions[2].options",
        ),
        (
            "text-too-long.toml",
            Box::new(|t| t.replace("max_length = 1000", "max_length = 100000")),
            "questions[4].max_length",
        ),
        (
            "bad-brand.toml",
            Box::new(|t| t.replace("points = 50", "points = 50\nbrand = \"Bonne Maman\"")),
            "brand",
        ),
        (
            "negative.toml",
            Box::new(|t| t.replace("points = 50", "points = -5")),
            "points",
        ),
    ];
    for (name, edit, field) in cases {
        let dir = bare_dir();
        std::fs::create_dir_all(dir.path().join("surveys")).expect("mkdir");
        let stem = name.trim_end_matches(".toml");
        let f = add(
            &dir,
            "surveys/votre-avis-v1.toml",
            &format!("surveys/{name}"),
            |t| edit(t).replace("id = \"votre-avis-v1\"", &format!("id = \"{stem}\"")),
        );
        assert_names(&errors(&dir), &f, field, name);
    }
    // A file whose id is not its name.
    let dir = bare_dir();
    std::fs::create_dir_all(dir.path().join("surveys")).expect("mkdir");
    let f = add(
        &dir,
        "surveys/votre-avis-v1.toml",
        "surveys/copie.toml",
        |t| t,
    );
    assert_names(&errors(&dir), &f, "id", "file name");
}

fn with_file(
    sub: &str,
    name: &str,
    edit: impl Fn(String) -> String,
) -> (tempfile::TempDir, String) {
    let dir = bare_dir();
    let src = match sub {
        "contests" => "grand-jeu-lancement.toml",
        _ => "test-yaourt-brebis.toml",
    };
    let text = std::fs::read_to_string(Path::new(ROOT).join(sub).join(src)).expect("read");
    let path = dir.path().join(sub).join(name);
    std::fs::write(&path, edit(text)).expect("write");
    (dir, path.display().to_string())
}

/// A campaigns directory with the shipped community.toml and points.toml
/// and empty contests/ and product-tests/.
fn bare_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for s in ["contests", "product-tests"] {
        std::fs::create_dir_all(dir.path().join(s)).expect("mkdir");
    }
    for f in ["community.toml", "points.toml"] {
        std::fs::copy(Path::new(ROOT).join(f), dir.path().join(f)).expect("copy");
    }
    dir
}

/// Copies a shipped file into `dir` under another name, edited.
fn add(dir: &tempfile::TempDir, sub: &str, name: &str, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join(sub)).expect("read");
    let path = dir.path().join(name);
    std::fs::write(&path, edit(text)).expect("write");
    path.display().to_string()
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
        (
            "product-tests",
            "bad-brand-slug.toml",
            Box::new(|t| {
                t.replace(
                    "brand_slug = \"bergeries-du-larzac\"",
                    "brand_slug = \"Les Bergeries\"",
                )
            }),
            "brand_slug",
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

/// `errs` has a line that starts with `file` and names `field`.
fn assert_names(errs: &[String], file: &str, field: &str, case: &str) {
    assert!(
        errs.iter()
            .any(|e| e.starts_with(file) && e.contains(&format!(": {field}: "))),
        "{case}: expected an error naming {file} and {field}, got {errs:?}"
    );
}

#[test]
fn a_missing_required_field_is_named() {
    let dir = bare_dir();
    let f = add(
        &dir,
        "contests/grand-jeu-lancement.toml",
        "contests/grand-jeu-lancement.toml",
        |t| {
            t.lines()
                .filter(|l| !l.starts_with("title ="))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    let errs = errors(&dir);
    assert!(
        errs.contains(&format!("{f}: title: is required")),
        "{errs:?}"
    );
    // Several missing fields: one line each.
    let dir = bare_dir();
    let f = add(
        &dir,
        "product-tests/test-yaourt-brebis.toml",
        "product-tests/test-yaourt-brebis.toml",
        |t| {
            t.lines()
                .filter(|l| !l.starts_with("brand =") && !l.starts_with("slots ="))
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    let errs = errors(&dir);
    for field in ["brand", "slots"] {
        assert!(
            errs.contains(&format!("{f}: {field}: is required")),
            "{field}: {errs:?}"
        );
    }
    assert_eq!(errs.len(), 2, "{errs:?}");
    // Each required field of a contest, alone.
    for field in [
        "id",
        "title",
        "description",
        "kind",
        "opens_at",
        "closes_at",
    ] {
        let dir = bare_dir();
        let f = add(
            &dir,
            "contests/grand-jeu-lancement.toml",
            "contests/grand-jeu-lancement.toml",
            |t| {
                t.lines()
                    .filter(|l| !l.starts_with(&format!("{field} =")))
                    .collect::<Vec<_>>()
                    .join("\n")
            },
        );
        let errs = errors(&dir);
        assert!(
            errs.contains(&format!("{f}: {field}: is required")),
            "{field}: {errs:?}"
        );
    }
    // Nested: a prize without its count.
    let dir = bare_dir();
    let f = add(
        &dir,
        "contests/grand-jeu-lancement.toml",
        "contests/grand-jeu-lancement.toml",
        |t| t.replace("count = 20", ""),
    );
    let errs = errors(&dir);
    assert!(
        errs.contains(&format!("{f}: prizes[1].count: is required")),
        "{errs:?}"
    );
}

#[test]
fn community_and_points_files_are_checked_with_every_problem() {
    // Two problems in community.toml, one in points.toml: all reported.
    let dir = bare_dir();
    let c = add(&dir, "community.toml", "community.toml", |t| {
        t.replace("vote_threshold = 10000", "vote_threshold = 0")
            .replace("label = \"Les enfants\"", "label = \" \"")
    });
    let p = add(&dir, "points.toml", "points.toml", |t| {
        t.replace("[rules.review]", "[rules.reviews]")
    });
    let errs = errors(&dir);
    assert_names(&errs, &c, "ideas.vote_threshold", "threshold");
    assert_names(&errs, &c, "ideas.themes[1].label", "label");
    assert_names(&errs, &p, "rules.reviews", "rule");
    // A syntax error names its line.
    let dir = bare_dir();
    let c = add(&dir, "community.toml", "community.toml", |t| {
        t.replace("[ideas]", "[ideas")
    });
    let errs = errors(&dir);
    assert!(
        errs.iter().any(|e| e.starts_with(&format!("{c}: line "))),
        "{errs:?}"
    );
    // No community.toml: not a campaigns directory.
    let dir = bare_dir();
    std::fs::remove_file(dir.path().join("community.toml")).expect("rm");
    let errs = errors(&dir);
    assert!(
        errs.iter()
            .any(|e| e.contains("community.toml: (file): file not found")),
        "{errs:?}"
    );
}

#[test]
fn cross_file_checks_name_file_and_field() {
    // A contest on a theme that community.toml does not have.
    let dir = bare_dir();
    let f = add(
        &dir,
        "contests/grand-jeu-lancement.toml",
        "contests/grand-jeu-lancement.toml",
        |t| {
            t.replace(
                "kind = \"survey\"",
                "kind = \"survey\"\ntheme = \"gardening\"",
            )
        },
    );
    let errs = errors(&dir);
    assert_names(&errs, &f, "theme", "unknown theme");
    assert!(errs.iter().any(|e| e.contains("\"gardening\"")), "{errs:?}");
    // A product test on a theme that does exist passes; one that does not fails.
    let dir = bare_dir();
    add(
        &dir,
        "product-tests/test-yaourt-brebis.toml",
        "product-tests/test-yaourt-brebis.toml",
        |t| t.replace("slots = 50", "theme = \"eat-well\"\nslots = 50"),
    );
    assert_eq!(errors(&dir), Vec::<String>::new());
    let f = add(
        &dir,
        "product-tests/test-yaourt-brebis.toml",
        "product-tests/test-yaourt-brebis.toml",
        |t| t.replace("slots = 50", "theme = \"eat-better\"\nslots = 50"),
    );
    assert_names(&errors(&dir), &f, "theme", "unknown theme");
    // Entry points with no contest_entry rule to credit them.
    let dir = bare_dir();
    add(&dir, "points.toml", "points.toml", |t| {
        t.replace(
            "[rules.contest_entry]\npoints = 10",
            "[rules.contest_entry]\npoints = 0",
        )
    });
    let f = add(
        &dir,
        "contests/grand-jeu-lancement.toml",
        "contests/grand-jeu-lancement.toml",
        |t| t,
    );
    assert_names(&errors(&dir), &f, "entry_points", "no rule");
    // Two tests of the same product over overlapping periods.
    let dir = bare_dir();
    add(
        &dir,
        "product-tests/test-yaourt-brebis.toml",
        "product-tests/test-yaourt-brebis.toml",
        |t| t,
    );
    let f = add(
        &dir,
        "product-tests/test-yaourt-brebis.toml",
        "product-tests/yaourt-encore.toml",
        |t| {
            t.replace("id = \"test-yaourt-brebis\"", "id = \"yaourt-encore\"")
                .replace("2026-11-23T00:00:00Z", "2027-01-10T00:00:00Z")
                .replace("2026-12-07T23:59:59Z", "2027-01-20T00:00:00Z")
                .replace("2026-12-08T00:00:00Z", "2027-01-21T00:00:00Z")
                .replace("2027-01-15T23:59:59Z", "2027-02-21T00:00:00Z")
        },
    );
    let errs = errors(&dir);
    assert_names(&errs, &f, "ean", "overlap");
    assert!(
        errs.iter().any(|e| e.contains("test-yaourt-brebis")),
        "{errs:?}"
    );
    // The same product later, after the first test ended: fine.
    add(
        &dir,
        "product-tests/test-yaourt-brebis.toml",
        "product-tests/yaourt-encore.toml",
        |t| {
            t.replace("id = \"test-yaourt-brebis\"", "id = \"yaourt-encore\"")
                .replace("2026-11-23T00:00:00Z", "2027-03-01T00:00:00Z")
                .replace("2026-12-07T23:59:59Z", "2027-03-10T00:00:00Z")
                .replace("2026-12-08T00:00:00Z", "2027-03-11T00:00:00Z")
                .replace("2027-01-15T23:59:59Z", "2027-04-11T00:00:00Z")
        },
    );
    assert_eq!(errors(&dir), Vec::<String>::new());
    // A file whose id is not its name (a copied file whose id was kept).
    let dir = bare_dir();
    let f = add(
        &dir,
        "contests/grand-jeu-lancement.toml",
        "contests/jeu-de-printemps.toml",
        |t| t,
    );
    assert_names(&errors(&dir), &f, "id", "file name");
    // A cohort that no invite could carry.
    let dir = bare_dir();
    let f = add(
        &dir,
        "contests/concours-recette-anti-gaspi.toml",
        "contests/concours-recette-anti-gaspi.toml",
        |t| t.replace("\"panel\"", "\"Panel Clients\""),
    );
    assert_names(&errors(&dir), &f, "eligibility.cohorts[1]", "cohort");
}

#[tokio::test]
async fn the_plan_shows_new_changed_and_unchanged_and_applying_keeps_draws() {
    let store = tempfile::tempdir().expect("tempdir");
    let table = EmbeddedTable::open(store.path()).expect("open");
    let shipped = load_dir(Path::new(ROOT)).expect("valid");
    // Empty table: everything is new.
    let p = plan(&current(&table).await.expect("read"), &shipped);
    assert!(p.items.iter().all(|i| i.change == Change::New), "{p:?}");
    assert!(p
        .lines()
        .contains(&"+ contest grand-jeu-lancement".to_owned()));
    let mut seen = Vec::new();
    let n = apply_plan(&table, &shipped, &p, |i, n, x| {
        seen.push(format!("[{i}/{n}] {} {}", x.kind, x.id))
    })
    .await
    .expect("apply");
    assert_eq!(n, 8);
    assert_eq!(
        seen,
        [
            "[1/8] settings community.toml, points.toml, trust.toml",
            "[2/8] contest concours-recette-anti-gaspi",
            "[3/8] contest grand-jeu-lancement",
            "[4/8] product test test-yaourt-brebis",
            "[5/8] challenge defi-produit-de-demain-anti-gaspi",
            "[6/8] event table-ronde-en-ligne-anti-gaspi",
            "[7/8] event table-ronde-magasin-de-demain",
            "[8/8] survey votre-avis-v1"
        ]
    );
    // The settings are in the table, for the functions to read at run time,
    // and the launch mode was taken from the file once.
    let applied = community::live::read(&table).await.expect("read");
    assert_eq!(applied.files.as_ref(), shipped.files.as_ref());
    assert_eq!(
        applied.launch.map(|l| l.mode),
        Some(community::live::LaunchMode::Public)
    );
    // Re-planned: nothing to do.
    let p = plan(&current(&table).await.expect("read"), &shipped);
    assert!(p.to_apply().is_empty(), "{:?}", p.lines());
    // A point rule changed: the field, and only the settings to apply.
    let mut points = shipped.clone();
    if let Some(f) = points.files.as_mut() {
        f.points = f
            .points
            .replace("points = 2\ndaily_cap = 20", "points = 3\ndaily_cap = 20");
        f.community = f
            .community
            .replace("invite_only = false", "invite_only = true");
    }
    let p = plan(&current(&table).await.expect("read"), &points);
    let lines = p.lines();
    assert!(
        lines.contains(&"~ settings community.toml, points.toml, trust.toml: points.toml rules.vote_cast.points 2 → 3".to_owned()),
        "{lines:?}"
    );
    // The launch is the launch command's once set: the file's invite_only
    // is shown, not applied.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("! launch: public since ")
                && l.contains("asks for soft and is not applied")),
        "{lines:?}"
    );
    assert_eq!(p.to_apply().len(), 1);
    apply_plan(&table, &points, &p, |_, _, _| {})
        .await
        .expect("apply");
    let applied = community::live::read(&table).await.expect("read");
    assert_eq!(applied.files.as_ref(), points.files.as_ref());
    assert_eq!(
        applied.launch.map(|l| l.mode),
        Some(community::live::LaunchMode::Public),
        "the launch stays public"
    );
    // A drawn contest whose title changes: the change, and the note.
    let key = community::campaigns::contest_key("grand-jeu-lancement");
    table
        .transact(vec![community::store::Write::update(
            key.clone(),
            community::store::Update::default().set(
                "draw",
                serde_json::json!({"drawn_at": "2027-02-01T10:00:00Z", "winners": ["x"]}),
            ),
        )])
        .await
        .expect("draw");
    let mut edited = points.clone();
    edited.contests[1].title = "Le grand jeu".into();
    let p = plan(&current(&table).await.expect("read"), &edited);
    let lines = p.lines();
    assert!(
        lines.contains(
            &"~ contest grand-jeu-lancement: title \"Le grand jeu de lancement de la communauté\" → \"Le grand jeu\""
                .to_owned()
        ),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l
            .starts_with("! contest grand-jeu-lancement: already drawn on 2027-02-01T10:00:00Z")),
        "{lines:?}"
    );
    assert!(lines.contains(&"= contest concours-recette-anti-gaspi".to_owned()));
    let seed_before = table
        .get(
            &community::campaigns::seed_key("contest", "grand-jeu-lancement"),
            true,
        )
        .await
        .expect("get")
        .expect("seed");
    assert_eq!(
        apply_plan(&table, &edited, &p, |_, _, _| {})
            .await
            .expect("apply"),
        1
    );
    let item = table.get(&key, true).await.expect("get").expect("contest");
    assert_eq!(item["config"]["title"], "Le grand jeu");
    assert_eq!(item["draw"]["winners"][0], "x", "the draw is kept");
    let seed_after = table
        .get(
            &community::campaigns::seed_key("contest", "grand-jeu-lancement"),
            true,
        )
        .await
        .expect("get")
        .expect("seed");
    assert_eq!(seed_before, seed_after, "the seed is kept");
    // A campaign no file names any more is reported, never removed.
    let mut fewer = edited.clone();
    fewer.product_tests.clear();
    let p = plan(&current(&table).await.expect("read"), &fewer);
    assert!(
        p.lines().iter().any(
            |l| l.starts_with("! product test test-yaourt-brebis: in the table but in no file")
        ),
        "{:?}",
        p.lines()
    );
    apply(&table, &fewer).await.expect("apply");
    assert!(table
        .get(
            &community::campaigns::product_test_key("test-yaourt-brebis"),
            true
        )
        .await
        .expect("get")
        .is_some());
}

#[test]
fn a_store_held_by_another_opener_is_reported_as_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _held = EmbeddedTable::open(dir.path()).expect("open");
    let e = EmbeddedTable::open(dir.path())
        .err()
        .expect("the second open fails");
    assert!(is_locked(&e), "{e}");
}

/// The `community.news` events in the outbox, by id.
async fn announced<T: Table>(table: &T) -> Vec<String> {
    let mut ids = Vec::new();
    for b in 0..community::events::OUTBOX_BUCKETS {
        let q = community::store::Query::new(
            community::store::Index::Primary,
            community::events::outbox_pk(b),
        )
        .limit(1000);
        for i in table.query(&q).await.expect("outbox").items {
            if let Some(e) = community::events::Event::from_item(&i) {
                if e.kind == community::events::Kind::CommunityNews {
                    ids.push(e.event_id);
                }
            }
        }
    }
    ids.sort();
    ids
}

/// `campaigns apply` announces each new contest and product test once, in
/// the write that creates it: not again when applied again (even with the
/// stale plan of two racing applies), nor for a change; the local server's
/// start (`apply`) announces nothing.
async fn announce_scenario<T: Table>(table: &T, started: &T) {
    let shipped = load_dir(Path::new(ROOT)).expect("valid");
    let p = plan(&current(table).await.expect("read"), &shipped);
    apply_plan(table, &shipped, &p, |_, _, _| {})
        .await
        .expect("apply");
    let once = vec![
        "news-challenge-defi-produit-de-demain-anti-gaspi".to_owned(),
        "news-contest-concours-recette-anti-gaspi".to_owned(),
        "news-contest-grand-jeu-lancement".to_owned(),
        "news-product-test-test-yaourt-brebis".to_owned(),
    ];
    assert_eq!(announced(table).await, once);
    let news = community::events::Event::from_item(
        &table
            .get(
                &community::events::Event::outbox_key("news-contest-grand-jeu-lancement"),
                true,
            )
            .await
            .expect("get")
            .expect("event"),
    )
    .expect("event");
    assert_eq!(news.data["contest_id"], "grand-jeu-lancement");
    assert_eq!(
        community::events::routes(news.kind),
        &[community::events::Queue::Emails]
    );
    // The same plan again (an apply that read the table before the first
    // wrote): the campaigns exist, nothing more is announced.
    apply_plan(table, &shipped, &p, |_, _, _| {})
        .await
        .expect("apply again");
    // Re-planned, with a change.
    let mut edited = shipped.clone();
    edited.contests[1].title = "Le grand jeu".into();
    let p = plan(&current(table).await.expect("read"), &edited);
    assert_eq!(p.to_apply().len(), 1);
    apply_plan(table, &edited, &p, |_, _, _| {})
        .await
        .expect("apply the change");
    assert_eq!(announced(table).await, once, "announced once");
    // The local server's start applies without announcing.
    apply(started, &shipped).await.expect("apply at start");
    assert!(announced(started).await.is_empty());
}

#[tokio::test]
async fn new_campaigns_are_announced_once_on_the_embedded_store() {
    let (a, b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let t1 = EmbeddedTable::open(a.path()).expect("open");
    let t2 = EmbeddedTable::open(b.path()).expect("open");
    announce_scenario(&t1, &t2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_campaigns_are_announced_once_on_dynamodb() {
    let (Some(t1), Some(t2)) = (
        community::testing::moto_table("news-apply").await,
        community::testing::moto_table("news-start").await,
    ) else {
        return;
    };
    announce_scenario(t1.as_ref(), t2.as_ref()).await;
}

/// Challenge files (défis): the shipped one is valid and applied; each
/// broken one is named with its file and field; re-applying keeps the
/// results, and the plan says so.
#[tokio::test]
async fn challenge_files_are_checked_and_applied_keeping_results() {
    let shipped = load_dir(Path::new(ROOT)).expect("valid");
    assert_eq!(shipped.challenges.len(), 1);
    let c = &shipped.challenges[0];
    assert_eq!(
        c.sponsor.as_ref().map(|s| s.brand.as_str()),
        Some("bonne-maman")
    );
    let src = "challenges/defi-produit-de-demain-anti-gaspi.toml";
    let name = "challenges/defi-produit-de-demain-anti-gaspi.toml";
    type Edit = Box<dyn Fn(String) -> String>;
    let cases: Vec<(Edit, &str, &str)> = vec![
        (
            Box::new(|t| t.replace("brand = \"bonne-maman\"", "brand = \"Bonne Maman\"")),
            "sponsor.brand",
            "slug",
        ),
        (
            Box::new(|t| t.replace("theme = \"environment\"", "theme = \"jardin\"")),
            "theme",
            "theme",
        ),
        (
            Box::new(|t| t.replace("question = ", "# question = ")),
            "question",
            "missing",
        ),
        (
            Box::new(|t| {
                t.replace(
                    "closes_at = \"2027-01-15T23:59:59Z\"",
                    "closes_at = \"2026-11-01T00:00:00Z\"",
                )
            }),
            "closes_at",
            "window",
        ),
        (
            Box::new(|t| t.replace("winner_points = 500", "winner_points = -1")),
            "winner_points",
            "negative",
        ),
        (
            Box::new(|t| t.replace("name = \"Bonne Maman\"", "name = \" \"")),
            "sponsor.name",
            "empty",
        ),
        (
            Box::new(|t| {
                t.replace(
                    "id = \"defi-produit-de-demain-anti-gaspi\"",
                    "id = \"autre-defi\"",
                )
            }),
            "id",
            "file name",
        ),
    ];
    for (edit, field, case) in cases {
        let dir = bare_dir();
        std::fs::create_dir_all(dir.path().join("challenges")).expect("mkdir");
        let f = add(&dir, src, name, edit);
        assert_names(&errors(&dir), &f, field, case);
    }
    // Points without a rule to credit them.
    let dir = bare_dir();
    std::fs::create_dir_all(dir.path().join("challenges")).expect("mkdir");
    let points = std::fs::read_to_string(dir.path().join("points.toml")).expect("points");
    let cut = points.find("[rules.challenge_proposal]").expect("rule");
    std::fs::write(dir.path().join("points.toml"), &points[..cut]).expect("write");
    let f = add(&dir, src, name, |t| t);
    assert_names(&errors(&dir), &f, "proposal_points", "no rule");

    // Applied; results published; re-applied with a new title: kept.
    let store = tempfile::tempdir().expect("tempdir");
    let table = EmbeddedTable::open(store.path()).expect("open");
    apply(&table, &shipped).await.expect("apply");
    let key = community::campaigns::challenge_key(&c.id);
    table
        .transact(vec![community::store::Write::update(
            key.clone(),
            community::store::Update::default().set(
                "results",
                serde_json::json!({"published_at": "2027-01-20T10:00:00Z", "winners": [], "answer": "Merci"}),
            ),
        )])
        .await
        .expect("results");
    let mut edited = shipped.clone();
    edited.challenges[0].title = "Défi : demain".into();
    let p = plan(&current(&table).await.expect("read"), &edited);
    let lines = p.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("~ challenge {}: title", c.id))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "! challenge {}: results already published on 2027-01-20T10:00:00Z",
            c.id
        ))),
        "{lines:?}"
    );
    apply_plan(&table, &edited, &p, |_, _, _| {})
        .await
        .expect("apply");
    let item = table
        .get(&key, true)
        .await
        .expect("get")
        .expect("challenge");
    assert_eq!(item["config"]["title"], "Défi : demain");
    assert_eq!(item["results"]["answer"], "Merci", "the results are kept");
}
