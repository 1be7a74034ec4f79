//! `GET /docs`: the API's documentation page. The page's own script
//! (`docs.html`, inline: nothing is fetched from elsewhere, so it works
//! offline) reads `/openapi.json`, lists every route and lets a reader try
//! one. The descriptions are Markdown; they are rendered here, once, with
//! pulldown-cmark, and travel in the page as a JSON map from each
//! description's text to its HTML, which the script shows.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::OnceLock;

const PAGE: &str = include_str!("docs.html");
/// Where the page takes the rendered descriptions.
const SLOT: &str = "<!-- descriptions -->";

/// The page for the OpenAPI description the server serves.
pub fn page() -> &'static str {
    static RENDERED: OnceLock<String> = OnceLock::new();
    RENDERED.get_or_init(|| render_page(crate::OPENAPI))
}

/// The page with every `description` of `spec` rendered.
pub fn render_page(spec: &str) -> String {
    let mut rendered = BTreeMap::new();
    if let Ok(v) = serde_json::from_str::<Value>(spec) {
        collect(&v, &mut rendered);
    }
    let json = serde_json::to_string(&rendered).unwrap_or_else(|_| "{}".into());
    // In a <script> element only `</script` could end it early: JSON may
    // write `<` as `\u003c` (and `>`, `&` likewise), so nothing in the data
    // reads as markup.
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    PAGE.replacen(
        SLOT,
        &format!(r#"<script type="application/json" id="descriptions">{json}</script>"#),
        1,
    )
}

/// Every string `description` in the document (an object-valued one is a
/// property named `description` of some schema: looked into, not taken).
fn collect(v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(text) if k == "description" => {
                        if !out.contains_key(text) {
                            out.insert(text.clone(), markdown(text));
                        }
                    }
                    _ => collect(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
        _ => {}
    }
}

/// CommonMark (with tables and strikethrough) to HTML. Raw HTML in the text
/// is shown as text, never as markup, and a link or image to anything but
/// a web address, a mail address or this site is dropped (its text stays).
pub fn markdown(text: &str) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    html::push_html(&mut out, events);
    out
}

/// `url` when it is a web or mail address or a path on this site (no
/// scheme), else `#`.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme = lower
        .split_once(':')
        .map(|(s, _)| s)
        .filter(|s| !s.contains(['/', '?', '#']));
    match scheme {
        None | Some("http" | "https" | "mailto") => url,
        Some(_) => CowStr::Borrowed("#"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_markup_in_it_is_not() {
        assert_eq!(
            markdown("Send `Idempotency-Key`: **once**."),
            "<p>Send <code>Idempotency-Key</code>: <strong>once</strong>.</p>\n"
        );
        let list = markdown("Rules:\n- one\n- two");
        assert!(list.contains("<ul>\n<li>one</li>"), "{list}");
        let raw = markdown("a <script>alert(1)</script> b");
        assert!(!raw.contains("<script"), "{raw}");
        assert!(raw.contains("&lt;script&gt;"), "{raw}");
        let link = markdown("[x](javascript:alert(1)) [y](https://example.fr/a) [z](/docs#t)");
        assert!(!link.contains("javascript"), "{link}");
        assert!(link.contains(r#"href="https://example.fr/a""#), "{link}");
        assert!(link.contains(r##"href="/docs#t""##), "{link}");
    }

    #[test]
    fn the_page_carries_every_description_rendered_and_no_closing_tag() {
        let spec = r#"{"info": {"description": "The `API` </script><b>x</b>"},
            "components": {"schemas": {"Theme": {"properties": {"description": {"type": "string", "description": "A theme's *text*."}}}}}}"#;
        let page = render_page(spec);
        assert!(!page.contains(SLOT));
        let start = page.find(r#"id="descriptions">"#).expect("the data") + 18;
        let end = start + page[start..].find("</script>").expect("its end");
        let data: BTreeMap<String, String> =
            serde_json::from_str(&page[start..end]).expect("a JSON map");
        assert_eq!(data.len(), 2, "{data:?}");
        assert!(data["The `API` </script><b>x</b>"]
            .starts_with("<p>The <code>API</code> &lt;/script&gt;"));
        assert_eq!(
            data["A theme's *text*."],
            "<p>A theme's <em>text</em>.</p>\n"
        );
    }

    #[test]
    fn the_served_description_renders() {
        assert!(page().contains(r#"id="descriptions""#));
        // `<` travels as `\u003c` in the page's JSON.
        assert!(page().contains(r"\u003ccode\u003eIdempotency-Key\u003c/code\u003e"));
    }
}
