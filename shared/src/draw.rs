//! The verifiable draw ("community-draw-v1"), used for contest winners and
//! product-test testers.
//!
//! Before the draw, only `seed_hash = SHA-256(seed)` is public. The draw
//! freezes the entry list — each entry is a pseudonym
//! `SHA-256("{campaign id}:{member id}")` in hex, sorted ascending — and
//! publishes `entries_hash = SHA-256(entries joined by "\n")` and the seed.
//! Winner `i` (0-based) is picked from the entries not yet picked:
//! for k = 0, 1, …: `h = SHA-256("{seed}:{entries_hash}:{i}:{k}")`,
//! `r` = the first 8 bytes of `h` as a big-endian u64; if
//! `r < 2^64 - (2^64 mod n)` (no modulo bias) the pick is `remaining[r mod n]`
//! (which is then removed, keeping the order of the rest), otherwise try the
//! next k. `min(count, entries)` winners are picked. Anyone with the response
//! can recompute it (`local verify-draw`), and each member can find their own
//! pseudonym in the list.

use crate::campaigns::sha256_hex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const ALGORITHM: &str = "community-draw-v1";

/// Everything needed to recompute a draw.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proof {
    pub algorithm: String,
    pub campaign_id: String,
    pub seed: String,
    pub seed_hash: String,
    pub entries: Vec<String>,
    pub entries_hash: String,
    pub count: usize,
    /// The picked pseudonyms, in order.
    pub winners: Vec<String>,
}

pub fn pseudonym(campaign_id: &str, member_id: &str) -> String {
    sha256_hex(format!("{campaign_id}:{member_id}").as_bytes())
}

pub fn entries_hash(entries: &[String]) -> String {
    sha256_hex(entries.join("\n").as_bytes())
}

/// Pseudonyms per stored page of a proof's entry list: 5,000 × 65 bytes
/// keeps a page item near 330 KB, under DynamoDB's 400 KB item limit.
pub const PAGE_SIZE: usize = 5_000;

/// The published, stored part of a proof: everything but the entry list,
/// which is stored and served in pages of [`PAGE_SIZE`] pseudonyms
/// (`entries_path?cursor=`), page `i` holding `entries[i*PAGE_SIZE..]`.
/// `page_hashes[i]` = SHA-256(page `i` joined by "\n") lets a member check
/// one page alone; `entries_hash` (over the whole list) is what the draw uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub algorithm: String,
    pub campaign_id: String,
    pub seed: String,
    pub seed_hash: String,
    pub entries_hash: String,
    pub entry_count: usize,
    pub count: usize,
    pub winners: Vec<String>,
    pub page_size: usize,
    pub entry_pages: usize,
    pub page_hashes: Vec<String>,
    /// The route serving the entry pages (`?cursor=` from `next_cursor`).
    pub entries_path: String,
}

impl Proof {
    /// The entry list cut into stored pages.
    pub fn pages(&self) -> Vec<Vec<String>> {
        self.entries
            .chunks(PAGE_SIZE)
            .map(<[String]>::to_vec)
            .collect()
    }

    pub fn summary(&self, entries_path: &str) -> Summary {
        let pages = self.pages();
        Summary {
            algorithm: self.algorithm.clone(),
            campaign_id: self.campaign_id.clone(),
            seed: self.seed.clone(),
            seed_hash: self.seed_hash.clone(),
            entries_hash: self.entries_hash.clone(),
            entry_count: self.entries.len(),
            count: self.count,
            winners: self.winners.clone(),
            page_size: PAGE_SIZE,
            entry_pages: pages.len(),
            page_hashes: pages.iter().map(|p| entries_hash(p)).collect(),
            entries_path: entries_path.to_owned(),
        }
    }
}

/// Recomputes a draw from its summary and its entry pages (in order).
pub fn verify_paged(s: &Summary, pages: &[Vec<String>]) -> Result<(), String> {
    if pages.len() != s.entry_pages || s.page_hashes.len() != s.entry_pages {
        return Err(format!(
            "the proof has {} entry pages, {} were given",
            s.entry_pages,
            pages.len()
        ));
    }
    for (i, (p, h)) in pages.iter().zip(&s.page_hashes).enumerate() {
        if &entries_hash(p) != h {
            return Err(format!("entry page {i} does not match its page hash"));
        }
    }
    let entries: Vec<String> = pages.concat();
    if entries.len() != s.entry_count {
        return Err(format!(
            "the proof counts {} entries, the pages hold {}",
            s.entry_count,
            entries.len()
        ));
    }
    verify(&Proof {
        algorithm: s.algorithm.clone(),
        campaign_id: s.campaign_id.clone(),
        seed: s.seed.clone(),
        seed_hash: s.seed_hash.clone(),
        entries,
        entries_hash: s.entries_hash.clone(),
        count: s.count,
        winners: s.winners.clone(),
    })
}

/// Picks `count` entries from the sorted, deduplicated `entries`.
pub fn pick(seed: &str, entries: &[String], count: usize) -> Vec<String> {
    let eh = entries_hash(entries);
    let mut remaining: Vec<String> = entries.to_vec();
    let mut out = Vec::new();
    for i in 0..count.min(entries.len()) {
        let n = remaining.len() as u64;
        let zone = u64::MAX - (u64::MAX % n + 1) % n;
        let mut k = 0u64;
        let idx = loop {
            let h = Sha256::digest(format!("{seed}:{eh}:{i}:{k}").as_bytes());
            let r = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
            if r <= zone {
                break (r % n) as usize;
            }
            k += 1;
        };
        out.push(remaining.remove(idx));
    }
    out
}

/// Runs a draw over member ids.
pub fn run(campaign_id: &str, seed: &str, members: &[String], count: usize) -> Proof {
    let mut entries: Vec<String> = members.iter().map(|m| pseudonym(campaign_id, m)).collect();
    entries.sort();
    entries.dedup();
    let winners = pick(seed, &entries, count);
    Proof {
        algorithm: ALGORITHM.into(),
        campaign_id: campaign_id.into(),
        seed: seed.into(),
        seed_hash: sha256_hex(seed.as_bytes()),
        entries_hash: entries_hash(&entries),
        entries,
        count,
        winners,
    }
}

/// Recomputes a draw from its published proof.
pub fn verify(p: &Proof) -> Result<(), String> {
    if p.algorithm != ALGORITHM {
        return Err(format!("unknown algorithm {:?}", p.algorithm));
    }
    if sha256_hex(p.seed.as_bytes()) != p.seed_hash {
        return Err("the seed does not match the published seed_hash".into());
    }
    let mut sorted = p.entries.clone();
    sorted.sort();
    sorted.dedup();
    if sorted != p.entries {
        return Err("the entry list is not sorted and unique".into());
    }
    if entries_hash(&p.entries) != p.entries_hash {
        return Err("the entry list does not match entries_hash".into());
    }
    let again = pick(&p.seed, &p.entries, p.count);
    if again != p.winners {
        return Err(format!(
            "the winners do not follow from the seed and the entries (expected {again:?})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("member-{i}")).collect()
    }

    #[test]
    fn reproducible_and_verifiable() {
        let p = run("c", "seed", &members(100), 5);
        assert_eq!(p.winners.len(), 5);
        assert_eq!(run("c", "seed", &members(100), 5), p);
        assert_eq!(verify(&p), Ok(()));
        let mut uniq = p.winners.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), 5, "without replacement");
    }

    #[test]
    fn one_changed_entry_changes_the_draw_and_tampering_is_caught() {
        let a = run("c", "seed", &members(100), 5);
        let mut m = members(100);
        m[42] = "someone-else".into();
        let b = run("c", "seed", &m, 5);
        assert_ne!(a.entries_hash, b.entries_hash);
        assert_ne!(a.winners, b.winners);
        let mut t = a.clone();
        t.winners.swap(0, 1);
        assert!(verify(&t).is_err());
        let mut t = a.clone();
        t.seed = "other".into();
        assert!(verify(&t).is_err());
        let mut t = a;
        t.entries.pop();
        assert!(verify(&t).is_err());
    }

    #[test]
    fn paged_summary_verifies_and_catches_a_changed_page() {
        let p = run("c", "seed", &members(12_001), 4);
        let s = p.summary("/x");
        assert_eq!((s.entry_pages, s.entry_count), (3, 12_001));
        let mut pages = p.pages();
        assert_eq!(verify_paged(&s, &pages), Ok(()));
        pages[1][7] = "0".repeat(64);
        assert!(verify_paged(&s, &pages).is_err());
        assert!(verify_paged(&s, &p.pages()[..2]).is_err());
    }

    #[test]
    fn fewer_entries_than_prizes() {
        let p = run("c", "s", &members(3), 10);
        assert_eq!(p.winners.len(), 3);
        assert_eq!(run("c", "s", &[], 10).winners.len(), 0);
    }
}
