//! Each entity owns its keys (docs/architecture.md "Keys"): no module but
//! the owner formats the entity's key prefix. Test modules (after a file's
//! `#[cfg(test)]`) may spell keys out, to check them.

use std::path::{Path, PathBuf};

/// Key prefix → the one module that may write it.
const OWNERS: &[(&str, &str)] = &[("\"MEMBER#", "members.rs")];

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
        for (prefix, owner) in OWNERS {
            if file.ends_with(owner) {
                continue;
            }
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
