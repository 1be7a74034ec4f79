//! Each entity owns its keys (docs/architecture.md "Keys"): no module but
//! the owner formats the entity's key prefix. Test modules (after a file's
//! `#[cfg(test)]`) may spell keys out, to check them.

use std::path::{Path, PathBuf};

/// Key prefix → the modules that may write it (one, the entity's owner,
/// but for the change feed's filter). The local queues' `LQ#`/`LDLQ#`
/// partitions are the embedded store's own, not an entity's.
const OWNERS: &[(&str, &[&str])] = &[
    ("\"MEMBER#", &["members.rs"]),
    ("\"INVITE#", &["members.rs"]),
    ("\"NEWS#", &["members.rs"]),
    ("\"CARD#", &["members.rs"]),
    ("\"IDEA#", &["ideas.rs"]),
    ("\"IDEAS#", &["ideas.rs"]),
    ("\"PROPOSALS#", &["ideas.rs"]),
    ("\"VOTE#", &["votes.rs"]),
    ("\"TALLIES#", &["thresholds.rs"]),
    ("\"COMMENT#", &["comments.rs"]),
    ("\"COMMENTS#", &["comments.rs"]),
    ("\"FOLLOW#", &["follows.rs"]),
    ("\"FOLLOWERS#", &["follows.rs"]),
    ("\"WORD#", &["search.rs"]),
    ("\"CONTRIB#", &["contrib.rs"]),
    ("\"MOD#", &["moderation.rs"]),
    ("\"REPORT#", &["moderation.rs"]),
    ("\"RATE#", &["ratelimit.rs"]),
    ("\"LEDGER#", &["points.rs"]),
    ("\"CAP#", &["points.rs"]),
    ("\"REDEMPTION#", &["loyalty.rs"]),
    ("\"REDEMPTIONS#", &["loyalty.rs"]),
    ("\"CARDLINK#", &["cards.rs"]),
    ("\"BASKET#", &["baskets.rs"]),
    ("\"INSIGHTS#", &["insights.rs"]),
    ("\"DAY#", &["insights.rs"]),
    ("\"SCORED#", &["ambassadors.rs"]),
    ("\"CONTEST#", &["campaigns.rs"]),
    ("\"CHALLENGE#", &["campaigns.rs"]),
    ("\"SEED#", &["campaigns.rs"]),
    ("\"ENTRY#", &["contests.rs"]),
    ("\"ENTRYCARD#", &["contests.rs"]),
    ("\"ENTRIES#", &["contests.rs"]),
    ("\"DRAW#", &["contests.rs"]),
    ("\"PTEST#", &["products.rs"]),
    ("\"PRODUCT#", &["products.rs"]),
    ("\"APPLY#", &["products.rs"]),
    ("\"APPLICANTS#", &["products.rs"]),
    ("\"TESTER#", &["products.rs"]),
    ("\"REVIEW#", &["products.rs"]),
    ("\"REVIEWS#", &["products.rs"]),
    ("\"REVIEWID#", &["products.rs"]),
    ("\"CHPROPS#", &["challenges.rs"]),
    ("\"CHPART#", &["challenges.rs"]),
    ("\"CHSTATS#", &["challenges.rs"]),
    ("\"SURVEY#", &["surveys.rs"]),
    ("\"RESULTS#", &["surveys.rs"]),
    ("\"RTABLE#", &["roundtables.rs"]),
    ("\"REG#", &["roundtables.rs"]),
    ("\"WAIT#", &["roundtables.rs"]),
    ("\"RTABLEDAY#", &["roundtables.rs"]),
    ("\"DIGEST#", &["digests.rs"]),
    ("\"DIGESTS#", &["digests.rs"]),
    ("\"PENDING#", &["digests.rs"]),
    ("\"MAIL#", &["mail/mod.rs"]),
    ("\"STATS#", &["mail/mod.rs"]),
    ("\"CLICK#", &["mail/mod.rs"]),
    ("\"IDEMP#", &["receipt.rs"]),
    ("\"DONE#", &["events.rs"]),
    // The change feed's filter names the streamed prefixes, as the
    // template's stream filters do.
    ("\"VOTERS#", &["votes.rs", "store/feed.rs"]),
    ("\"OUTBOX#", &["events.rs", "store/feed.rs"]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_an_entitys_owner_formats_its_key_prefix() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "found the sources: {files:?}");
    let mut offenders = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (prefix, owners) in OWNERS {
            if owners.iter().any(|o| file.ends_with(o)) {
                continue;
            }
            let owner = owners[0];
            for (n, line) in code.lines().enumerate() {
                let line = line.trim_start();
                if !line.starts_with("//") && line.contains(prefix) {
                    offenders.push(format!(
                        "{}:{}: {prefix}… belongs to {owner}",
                        file.strip_prefix(&src).unwrap_or(file).display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(offenders.is_empty(), "{}", offenders.join("\n"));
}

/// The table names real owners: each prefix is formatted by its first
/// owner (so a prefix renamed or moved without the table fails here).
#[test]
fn each_owner_formats_its_prefixes() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    for (prefix, owners) in OWNERS {
        let text = std::fs::read_to_string(src.join(owners[0])).expect("owner's file");
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        if !code.contains(prefix) {
            missing.push(format!("{prefix}… is not in {}", owners[0]));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}
