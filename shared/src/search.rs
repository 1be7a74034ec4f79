//! Search: `GET /ideas?q=` and `GET /ideas/similar?title=`, on a word index
//! kept in the table (no Scan, no search engine).
//!
//! Keys: `WORD#{stem}` / `{created_at}#{idea id}`, one item (a "posting",
//! about 100 bytes: `id`, `theme`, `in_title`) per distinct indexable word of
//! an idea: its title's words, then its body's, at most [`MAX_IDEA_WORDS`].
//! They are written in the idea's own posting transaction (4 items + at most
//! 40 postings + the receipt: well under DynamoDB's 100), never changed;
//! a merge deletes the merged idea's in its own transaction (`crate::merge`).
//! Each posting is its own item: no item is shared between two ideas'
//! transactions; the word's partition takes one write per idea using it.
//!
//! Words are normalised ([`words`]): lower case, accents folded (é → e,
//! œ → oe; combining marks dropped), split on anything not a letter or a
//! digit, French stop words dropped, and lightly stemmed ([`stem`]): a final
//! plural `s`/`x`, then a feminine `e`, then a doubled final consonant go,
//! so `Végétarien`, `vegetarien`, `végétariens` and `végétarienne` are all
//! `vegetarien`.
//!
//! A search reads each query word's postings newest first (a merge-join on
//! the common sort key `{created_at}#{id}`), keeps the ideas every word names
//! (AND), then reads those ideas' rows (BatchGetItem) for their cards, which
//! also drops hidden ideas (moderation: the postings stay, the row says
//! `moderation`, so a restored idea is found again at once) and applies the
//! status filter. Erasure anonymises an erased member's ideas (author "Ancien
//! membre"): they stay published and searchable; postings hold no personal
//! data. Costs and limits: docs/architecture.md, "Search".

use crate::app::App;
use crate::domain::IdeaStatus;
use crate::error::{Error, Result};
use crate::ideas::{self, IdeaCard, IdeaRow, ListPage, ListRequest, Sort};
use crate::store::{Item, Key, Query, Table, Write};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// Distinct words indexed per idea (title first, then body).
pub const MAX_IDEA_WORDS: usize = 40;
/// Words of a query used (the first ones; more are ignored).
pub const MAX_QUERY_WORDS: usize = 6;
/// Characters of `q` / `title`.
pub const MAX_QUERY_CHARS: usize = 200;
/// Postings read per word per round of the merge-join (about 8 KB: 1 RCU).
const SCAN_PER_WORD: u32 = 100;
/// Rounds per request: a page reads at most this many postings per word
/// (`ROUNDS × SCAN_PER_WORD`) before answering with a cursor to go on.
const ROUNDS: usize = 5;
/// `sort=top` ranks at most this many of the newest matches.
pub const TOP_CAP: usize = 100;
/// Suggestions of `GET /ideas/similar`.
pub const SIMILAR: usize = 5;
/// Postings read per word of a draft title.
const SIMILAR_PER_WORD: u32 = 50;
/// Rows read to fill the suggestions (the best-scored candidates).
const SIMILAR_CANDIDATES: usize = 15;
/// Characters of a stem kept in its key.
const MAX_STEM_CHARS: usize = 40;

const STOP_WORDS: &[&str] = &[
    "a", "ai", "au", "aux", "avec", "ce", "ces", "cet", "cette", "comme", "dan", "dans", "de",
    "des", "du", "elle", "en", "est", "et", "etre", "il", "ils", "je", "la", "le", "les", "leur",
    "lui", "ma", "mai", "mais", "me", "mes", "mon", "ne", "no", "nos", "notre", "nou", "nous",
    "on", "ont", "ou", "par", "pas", "plu", "plus", "pour", "qu", "que", "qui", "sa", "san",
    "sans", "se", "ses", "son", "sont", "sur", "ta", "te", "tes", "ton", "tu", "un", "une", "vo",
    "vos", "votre", "vou", "vous", "y", "the", "and", "of", "to", "notr", "votr", "com", "ell",
    "etr", "cet",
];

pub fn word_pk(stem: &str) -> String {
    format!("WORD#{stem}")
}

/// A lower-case character without its accent (`None`: a combining mark).
fn fold(c: char, out: &mut String) {
    match c {
        '\u{300}'..='\u{36f}' => {}
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => out.push('a'),
        'æ' => out.push_str("ae"),
        'ç' => out.push('c'),
        'è' | 'é' | 'ê' | 'ë' => out.push('e'),
        'ì' | 'í' | 'î' | 'ï' => out.push('i'),
        'ñ' => out.push('n'),
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => out.push('o'),
        'œ' => out.push_str("oe"),
        'ù' | 'ú' | 'û' | 'ü' => out.push('u'),
        'ý' | 'ÿ' => out.push('y'),
        'ß' => out.push_str("ss"),
        c => out.push(c),
    }
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y')
}

/// The light French stem of a folded word: a plural `s`/`x`, then a final
/// `e`, then a doubled final consonant go (each only on words longer than 3).
pub fn stem(word: &str) -> String {
    let mut s: Vec<char> = word.chars().collect();
    if s.len() > 3 && matches!(s.last(), Some('s' | 'x')) {
        s.pop();
    }
    if s.len() > 3 && s.last() == Some(&'e') {
        s.pop();
    }
    if s.len() > 3 {
        let n = s.len();
        if s[n - 1] == s[n - 2] && !is_vowel(s[n - 1]) && s[n - 1].is_alphabetic() {
            s.pop();
        }
    }
    s.truncate(MAX_STEM_CHARS);
    s.into_iter().collect()
}

/// The distinct indexable words of `text`, normalised and stemmed, in order.
pub fn words(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let push = |cur: &mut String, out: &mut Vec<String>| {
        if cur.chars().count() >= 2 && !STOP_WORDS.contains(&cur.as_str()) {
            let s = stem(cur);
            if !STOP_WORDS.contains(&s.as_str()) && !out.contains(&s) {
                out.push(s);
            }
        }
        cur.clear();
    };
    for c in text.chars() {
        for l in c.to_lowercase() {
            let mut f = String::new();
            fold(l, &mut f);
            for fc in f.chars() {
                if fc.is_alphanumeric() {
                    cur.push(fc);
                } else {
                    push(&mut cur, &mut out);
                }
            }
        }
    }
    push(&mut cur, &mut out);
    out
}

/// The postings of a new idea (`row` with its body), for its posting
/// transaction: at most [`MAX_IDEA_WORDS`] items.
pub fn postings(row: &IdeaRow) -> Vec<Write> {
    let title = words(&row.title);
    let mut all: Vec<(String, bool)> = title.iter().map(|w| (w.clone(), true)).collect();
    for w in words(&row.body) {
        if all.len() >= MAX_IDEA_WORDS {
            break;
        }
        if !title.contains(&w) {
            all.push((w, false));
        }
    }
    all.truncate(MAX_IDEA_WORDS);
    all.into_iter()
        .filter_map(|(w, in_title)| {
            let v = json!({
                "pk": word_pk(&w),
                "sk": ideas::new_sk(&row.created_at, &row.id),
                "id": row.id,
                "theme": row.theme,
                "in_title": in_title,
            });
            match v {
                Value::Object(item) => Some(Write::put(item)),
                _ => None,
            }
        })
        .collect()
}

/// The deletes of an idea's postings (`row` with its body, as posted): a
/// merged idea leaves the index for good (`crate::merge`).
pub fn posting_deletes(row: &IdeaRow) -> Vec<Write> {
    postings(row)
        .iter()
        .filter_map(Write::key)
        .map(|key| Write::Delete { key, cond: None })
        .collect()
}

/// The indexable words of a query parameter, or a 422 naming it.
pub fn query_words(field: &str, text: &str) -> Result<Vec<String>> {
    let n = text.chars().count();
    if n == 0 || n > MAX_QUERY_CHARS {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {MAX_QUERY_CHARS} characters"),
        ));
    }
    let mut w = words(text);
    if w.is_empty() {
        return Err(Error::invalid(
            field,
            "must contain at least one searchable word",
        ));
    }
    w.truncate(MAX_QUERY_WORDS);
    Ok(w)
}

fn s<'a>(i: &'a Item, a: &str) -> &'a str {
    i.get(a).and_then(Value::as_str).unwrap_or_default()
}

/// Where a page of results resumes.
#[derive(Debug, Clone, PartialEq)]
enum Cursor {
    /// `sort=new`: after this posting sort key.
    After(String),
    /// `sort=top`: this many ranked matches in.
    Offset(usize),
}

fn encode(c: &Cursor) -> String {
    let raw = match c {
        Cursor::After(sk) => format!("n:{sk}"),
        Cursor::Offset(o) => format!("t:{o}"),
    };
    URL_SAFE_NO_PAD.encode(raw)
}

fn decode(c: &str, sort: Sort) -> Result<Cursor> {
    let bad = || Error::invalid("cursor", "the cursor is not one this list returned");
    if c.len() > 512 {
        return Err(bad());
    }
    let raw = URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    match (sort, raw.split_once(':')) {
        (Sort::New, Some(("n", sk))) if !sk.is_empty() => Ok(Cursor::After(sk.to_owned())),
        (Sort::Top, Some(("t", o))) => o
            .parse::<usize>()
            .ok()
            .filter(|o| *o < TOP_CAP)
            .map(Cursor::Offset)
            .ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// The ideas every word names, newest first, in rounds of the merge-join.
struct Matches<'a, T: Table> {
    app: &'a App<T>,
    words: Vec<String>,
    theme: Option<String>,
    /// Exclusive upper bound of the next round (`None`: from the newest).
    bound: Option<String>,
    done: bool,
    rounds: usize,
}

impl<'a, T: Table> Matches<'a, T> {
    /// The next round's matches (sort key, idea id), newest first; empty
    /// when `done` or out of rounds.
    async fn round(&mut self) -> Result<Vec<(String, String)>> {
        if self.done || self.rounds >= ROUNDS {
            return Ok(Vec::new());
        }
        self.rounds += 1;
        let queries = self.words.iter().map(|w| {
            let pk = word_pk(w);
            let start = self
                .bound
                .as_ref()
                .map(|b| crate::store::page_key(crate::store::Index::Primary, &obj(&pk, b)));
            let q = Query::new(crate::store::Index::Primary, pk)
                .backward()
                .limit(SCAN_PER_WORD)
                .start_after(start);
            let table = &self.app.table;
            async move { table.query(&q).await }
        });
        let pages = futures::future::try_join_all(queries).await?;
        // Below `floor`, some word has postings not read yet: only sort keys
        // at or above it are decided this round.
        let mut floor: Option<String> = None;
        let mut counts: BTreeMap<String, (usize, String, bool)> = BTreeMap::new();
        for p in &pages {
            if p.last_key.is_some() {
                let last = p.items.last().map(|i| s(i, "sk").to_owned());
                let last = match (last, p.last_key.as_ref()) {
                    (Some(l), _) => l,
                    (None, Some(k)) => s(k, "sk").to_owned(),
                    (None, None) => String::new(),
                };
                if floor.as_ref().is_none_or(|f| &last > f) {
                    floor = Some(last);
                }
            }
            for i in &p.items {
                let e = counts
                    .entry(s(i, "sk").to_owned())
                    .or_insert_with(|| (0, s(i, "id").to_owned(), true));
                e.0 += 1;
                if let Some(t) = &self.theme {
                    e.2 = e.2 && s(i, "theme") == t;
                }
            }
        }
        let n = self.words.len();
        let out: Vec<(String, String)> = counts
            .into_iter()
            .rev()
            .filter(|(sk, _)| floor.as_ref().is_none_or(|f| sk >= f))
            .filter(|(_, (c, id, theme_ok))| *c == n && *theme_ok && !id.is_empty())
            .map(|(sk, (_, id, _))| (sk, id))
            .collect();
        match floor {
            Some(f) => self.bound = Some(f),
            None => self.done = true,
        }
        Ok(out)
    }

    fn exhausted(&self) -> bool {
        self.done || self.rounds >= ROUNDS
    }
}

fn obj(pk: &str, sk: &str) -> Item {
    let mut i = Item::new();
    i.insert("pk".into(), json!(pk));
    i.insert("sk".into(), json!(sk));
    i
}

/// The visible rows of these ideas (one BatchGetItem per 100), by id.
async fn rows<T: Table>(app: &App<T>, ids: &[String]) -> Result<HashMap<String, Item>> {
    let keys: Vec<Key> = ids
        .iter()
        .filter_map(|i| crate::domain::IdeaId::parse(i))
        .map(|i| ideas::key(&i))
        .collect();
    let mut out = HashMap::new();
    for item in crate::store::get_all(&app.table, &keys, false).await? {
        // Hidden (moderation), or merged into another idea (issue 14; the
        // target is what search shows).
        if item.contains_key("moderation") || item.contains_key("merged_into") {
            continue;
        }
        out.insert(s(&item, "id").to_owned(), item);
    }
    Ok(out)
}

fn status_ok(item: &Item, status: Option<IdeaStatus>) -> bool {
    status.is_none_or(|st| s(item, "status") == st.as_str())
}

/// `GET /ideas?q=`: the visible ideas naming every word of `q`, filtered on
/// theme and status, newest or most voted first (see the module's doc).
pub async fn search<T: Table>(
    app: &App<T>,
    q: &str,
    req: ListRequest,
) -> Result<ListPage<IdeaCard>> {
    let words = query_words("q", q)?;
    if let Some(t) = &req.theme {
        if app.settings().theme(t).is_none() {
            let settings = app.settings();
            let ids: Vec<&str> = settings.themes.iter().map(|t| t.id.as_str()).collect();
            return Err(Error::invalid(
                "theme",
                format!("must be one of {}", ids.join(", ")),
            ));
        }
    }
    let cursor = req
        .cursor
        .as_deref()
        .map(|c| decode(c, req.sort))
        .transpose()?;
    let limit = req.limit.clamp(1, 100) as usize;
    let mut m = Matches {
        app,
        words,
        theme: req.theme.clone(),
        bound: match &cursor {
            Some(Cursor::After(sk)) => Some(sk.clone()),
            _ => None,
        },
        done: false,
        rounds: 0,
    };
    match req.sort {
        Sort::New => {
            let mut items: Vec<IdeaCard> = Vec::new();
            let mut last_sk: Option<String> = None;
            loop {
                let found = m.round().await?;
                let mut at = 0;
                while at < found.len() {
                    if items.len() == limit {
                        // A further match exists: the page ends here.
                        let next = last_sk.as_ref().map(|s| encode(&Cursor::After(s.clone())));
                        return Ok(ListPage {
                            items,
                            next_cursor: next,
                        });
                    }
                    // Rows for the cards still missing (none read for nothing
                    // unless hidden or of another status).
                    let chunk = &found[at..(at + limit - items.len()).min(found.len())];
                    at += chunk.len();
                    let ids: Vec<String> = chunk.iter().map(|(_, id)| id.clone()).collect();
                    let mut rows = rows(app, &ids).await?;
                    for (sk, id) in chunk {
                        if let Some(item) = rows.remove(id).filter(|i| status_ok(i, req.status)) {
                            items.push(ideas::card_from(item)?);
                            last_sk = Some(sk.clone());
                        }
                    }
                }
                if m.exhausted() {
                    break;
                }
            }
            // Out of rounds with more to read: resume below what was read.
            let next = match (m.done, &m.bound) {
                (false, Some(b)) => Some(encode(&Cursor::After(b.clone()))),
                _ => None,
            };
            Ok(ListPage {
                items,
                next_cursor: next,
            })
        }
        Sort::Top => {
            let mut found: Vec<(String, String)> = Vec::new();
            while found.len() < TOP_CAP && !m.exhausted() {
                found.extend(m.round().await?);
            }
            found.truncate(TOP_CAP);
            let ids: Vec<String> = found.iter().map(|(_, id)| id.clone()).collect();
            let rows = rows(app, &ids).await?;
            let mut ranked: Vec<(String, Item)> = found
                .into_iter()
                .filter_map(|(sk, id)| rows.get(&id).map(|r| (sk, r.clone())))
                .filter(|(_, r)| status_ok(r, req.status))
                .map(|(sk, r)| {
                    let votes = r.get("votes").and_then(Value::as_i64).unwrap_or(0);
                    (format!("{:010}#{sk}", votes.max(0)), r)
                })
                .collect();
            ranked.sort_by(|a, b| b.0.cmp(&a.0));
            let offset = match cursor {
                Some(Cursor::Offset(o)) => o,
                _ => 0,
            };
            let end = (offset + limit).min(ranked.len());
            let next = (end < ranked.len()).then(|| encode(&Cursor::Offset(end)));
            let items = ranked
                .into_iter()
                .skip(offset)
                .take(limit)
                .map(|(_, r)| ideas::card_from(r))
                .collect::<Result<Vec<_>>>()?;
            Ok(ListPage {
                items,
                next_cursor: next,
            })
        }
    }
}

/// `GET /ideas/similar?title=`: up to [`SIMILAR`] visible ideas sharing
/// words with a draft title, most shared first (a word of their title
/// counts 2, of their body 1; at least 2 to be suggested), then newest.
pub async fn similar<T: Table>(app: &App<T>, title: &str) -> Result<Vec<IdeaCard>> {
    let words = query_words("title", title)?;
    let queries = words.iter().map(|w| {
        let q = Query::new(crate::store::Index::Primary, word_pk(w))
            .backward()
            .limit(SIMILAR_PER_WORD);
        let table = &app.table;
        async move { table.query(&q).await }
    });
    let pages = futures::future::try_join_all(queries).await?;
    let mut score: HashMap<String, (u32, String)> = HashMap::new();
    for p in pages {
        for i in p.items {
            let points = if i.get("in_title").and_then(Value::as_bool) == Some(true) {
                2
            } else {
                1
            };
            let e = score
                .entry(s(&i, "id").to_owned())
                .or_insert_with(|| (0, s(&i, "sk").to_owned()));
            e.0 += points;
        }
    }
    let mut ranked: Vec<(String, u32, String)> = score
        .into_iter()
        .filter(|(id, (p, _))| *p >= 2 && !id.is_empty())
        .map(|(id, (p, sk))| (id, p, sk))
        .collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| b.2.cmp(&a.2)));
    ranked.truncate(SIMILAR_CANDIDATES);
    let ids: Vec<String> = ranked.iter().map(|(id, _, _)| id.clone()).collect();
    let mut rows = rows(app, &ids).await?;
    let mut out = Vec::new();
    for id in ids {
        if out.len() == SIMILAR {
            break;
        }
        if let Some(r) = rows.remove(&id) {
            out.push(ideas::card_from(r)?);
        }
    }
    Ok(out)
}

/// What [`reindex`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reindexed {
    pub ideas: usize,
    pub postings: usize,
}

/// Writes the postings of every listed idea (every theme × status partition
/// of gsi1: no Scan), for ideas posted before the index existed. Idempotent
/// (a posting's key and content are the idea's own); groups of at most 25
/// writes. Hidden ideas are in no list and are skipped (see "Search").
pub async fn reindex<T: Table>(app: &App<T>) -> Result<Reindexed> {
    let settings = app.settings();
    let mut done = Reindexed::default();
    for theme in &settings.themes {
        for status in IdeaStatus::ALL {
            let q =
                Query::new(crate::store::Index::Gsi1, ideas::list_pk(&theme.id, status)).limit(100);
            let items = crate::store::all_pages(&app.table, q).await?;
            let mut rows = items
                .into_iter()
                .map(ideas::row_from)
                .collect::<Result<Vec<_>>>()?;
            ideas::with_bodies(app, &mut rows).await?;
            for row in &rows {
                let writes = postings(row);
                done.ideas += 1;
                done.postings += writes.len();
                for group in writes.chunks(25) {
                    app.table.transact(group.to_vec()).await?;
                }
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accents_case_and_plurals_meet() {
        for w in [
            "végétarien",
            "Végétarien",
            "VÉGÉTARIENS",
            "vegetarien",
            "végétarienne",
            "végétariennes",
            "ve\u{301}ge\u{301}tarien",
        ] {
            assert_eq!(words(w), ["vegetarien"], "{w}");
        }
        assert_eq!(
            words("Un rayon végétarien, pour les enfants !"),
            ["rayon", "vegetarien", "enfant"]
        );
        assert_eq!(words("l'épicerie d'à côté"), ["epiceri", "cot"]);
        assert_eq!(words("Notre magasin, comme elles"), ["magasin"]);
        assert_eq!(words("Œufs bio"), ["oeuf", "bio"]);
        assert_eq!(words("le la les de"), Vec::<String>::new());
        assert_eq!(words("prix prix"), ["pri"]);
    }

    #[test]
    fn queries_are_checked() {
        assert!(query_words("q", "").is_err());
        assert!(query_words("q", &"a".repeat(201)).is_err());
        assert!(query_words("q", "le la").is_err());
        assert_eq!(query_words("q", "a b c d e f g h i j").ok(), None);
        assert_eq!(
            query_words("q", "un deux trois quatre cinq six sept")
                .map(|w| w.len())
                .ok(),
            Some(MAX_QUERY_WORDS)
        );
    }

    #[test]
    fn cursors_round_trip_and_refuse_others() {
        let c = encode(&Cursor::After("2026#x".into()));
        assert_eq!(
            decode(&c, Sort::New).ok(),
            Some(Cursor::After("2026#x".into()))
        );
        assert!(decode(&c, Sort::Top).is_err());
        let t = encode(&Cursor::Offset(20));
        assert_eq!(decode(&t, Sort::Top).ok(), Some(Cursor::Offset(20)));
        assert!(decode(&encode(&Cursor::Offset(TOP_CAP)), Sort::Top).is_err());
        assert!(decode("garbage!", Sort::New).is_err());
    }
}
