//! Every response checked against the contract: `docs/openapi.json` (the
//! document the local server serves at `/openapi.json`).
//!
//! [`check`] finds the operation of a request (method and concrete path,
//! matched against the document's path templates, a literal segment winning
//! over a `{param}` one as routers do: `/ideas/similar` before
//! `/ideas/{id}`), the response documented for the status code (exact, then
//! `4XX`-style ranges, then `default`; `$ref`s to `components/responses`
//! followed), and validates what came back: a body where the document
//! gives none (or none where it gives one), the media type (a problem
//! documented as `application/problem+json` must say so), and a JSON body
//! against the response's schema (JSON Schema draft 2020-12, as OpenAPI 3.1
//! uses, with `format` asserted; `#/components/...` references resolve
//! inside the document, registered once as a schema resource).
//!
//! A request no operation of the document matches (an unknown route, a
//! method a path does not have, the test-only helpers of a router) is not
//! the contract's; an error it gets must still be an RFC 9457 problem, so
//! its JSON body is validated against `components/schemas/Problem`.
//!
//! Where it runs: `testing::call`/`call_event` (every handler test), the
//! local server's router tests (`local/tests/support`, `hostile.rs`) and
//! the end-to-end tests (`tests/e2e/support.rs`: `send`, `fetch`) put every
//! response through [`assert_documented`].

use jsonschema::{Draft, Registry, Validator};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

/// The contract, compiled in: a test binary checks against the document of
/// its own commit.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The URI the document is registered under as a schema resource.
const BASE: &str = "urn:community:openapi";

/// What a response is checked as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A documented operation's response (`"PUT /ideas/{id}/vote"`).
    Operation(String),
    /// No operation of the document matches the request; an error body was
    /// checked as a problem.
    Undocumented,
}

struct Contract {
    doc: &'static Value,
    registry: Registry<'static>,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

fn contract() -> &'static Contract {
    static CONTRACT: OnceLock<Contract> = OnceLock::new();
    CONTRACT.get_or_init(|| {
        let doc: &'static Value = Box::leak(Box::new(
            serde_json::from_str(OPENAPI).expect("docs/openapi.json is JSON"),
        ));
        let registry = Registry::new()
            .draft(Draft::Draft202012)
            .add(BASE, doc)
            .and_then(|r| r.prepare())
            .expect("docs/openapi.json registers as a schema resource");
        Contract {
            doc,
            registry,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

/// The document (parsed once).
pub fn document() -> &'static Value {
    contract().doc
}

/// Checks one response; `Err` says what does not match, with the operation,
/// the status, each error's JSON pointer and the body.
pub fn check(
    method: &str,
    path_and_query: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<Checked, String> {
    let c = contract();
    let path = path_and_query
        .split(['?', '#'])
        .next()
        .unwrap_or(path_and_query);
    let method = method.to_ascii_lowercase();
    let head = method == "head";
    let media = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase());
    let text = String::from_utf8_lossy(body);
    let Some((template, op_key, op)) = operation(c.doc, &method, path) else {
        // Not the contract's; an error is still a problem.
        if status >= 400 && !body.is_empty() {
            let what = format!(
                "{} {path} (not in docs/openapi.json)",
                method.to_uppercase()
            );
            if media.as_deref() != Some("application/problem+json") {
                return Err(format!(
                    "{what} {status}: an error must be application/problem+json, not {}; body: {text}",
                    media.as_deref().unwrap_or("no content-type")
                ));
            }
            let value = parse_json(&what, status, &text)?;
            validate(
                c,
                &what,
                status,
                "/components/schemas/Problem",
                &value,
                &text,
            )?;
        }
        return Ok(Checked::Undocumented);
    };
    let what = format!("{} {template}", method.to_uppercase());
    let responses = &op["responses"];
    let code = status.to_string();
    let range = format!("{}XX", status / 100);
    let Some(key) = [code.as_str(), range.as_str(), "default"]
        .into_iter()
        .find(|k| responses.get(*k).is_some())
    else {
        let documented: Vec<&String> = responses
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        return Err(format!(
            "{what} answered {status}, which docs/openapi.json does not document \
             (documented: {documented:?}); body: {text}"
        ));
    };
    let op_ptr = format!("/paths/{}/{op_key}", escape(&template));
    let (resp_ptr, response) = follow(c.doc, format!("{op_ptr}/responses/{}", escape(key)));
    if head {
        return Ok(Checked::Operation(what));
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        if body.is_empty() {
            return Ok(Checked::Operation(what));
        }
        return Err(format!(
            "{what} {status}: docs/openapi.json documents no body, the response has one \
             ({}); body: {text}",
            media.as_deref().unwrap_or("no content-type")
        ));
    };
    let Some(media) = media else {
        return Err(format!(
            "{what} {status}: no Content-Type; docs/openapi.json documents {:?}; body: {text}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    let Some((media_key, _)) = content
        .iter()
        .find(|(k, _)| k.to_ascii_lowercase() == media)
        .or_else(|| content.iter().find(|(k, _)| k.as_str() == "*/*"))
    else {
        return Err(format!(
            "{what} {status}: Content-Type {media}, docs/openapi.json documents {:?}; body: {text}",
            content.keys().collect::<Vec<_>>()
        ));
    };
    let is_json = media == "application/json" || media.ends_with("+json");
    if !is_json || content[media_key].get("schema").is_none() {
        return Ok(Checked::Operation(what));
    }
    let value = parse_json(&what, status, &text)?;
    let schema_ptr = format!("{resp_ptr}/content/{}/schema", escape(media_key));
    validate(c, &what, status, &schema_ptr, &value, &text)?;
    Ok(Checked::Operation(what))
}

/// [`check`], panicking with its message on a mismatch.
pub fn assert_documented(
    method: &str,
    path_and_query: &str,
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Checked {
    match check(method, path_and_query, status, content_type, body) {
        Ok(c) => c,
        Err(e) => panic!("response does not match docs/openapi.json: {e}"),
    }
}

/// The operation of `method` on the path template that best matches `path`:
/// the template, the operation's key (`head` falls back on `get`), the
/// operation.
fn operation<'d>(
    doc: &'d Value,
    method: &str,
    path: &str,
) -> Option<(String, &'static str, &'d Value)> {
    let segs: Vec<&str> = path.split('/').collect();
    let mut best: Option<(Vec<bool>, &String, &Value)> = None;
    for (template, item) in doc["paths"].as_object()? {
        let tsegs: Vec<&str> = template.split('/').collect();
        if tsegs.len() != segs.len() {
            continue;
        }
        let mut rank = Vec::with_capacity(tsegs.len());
        let matched = tsegs.iter().zip(&segs).all(|(t, s)| {
            let param = t.starts_with('{') && t.ends_with('}');
            rank.push(param);
            if param {
                !s.is_empty()
            } else {
                t == s
            }
        });
        // A literal segment before a parameter, position by position.
        if matched && best.as_ref().is_none_or(|(r, _, _)| rank < *r) {
            best = Some((rank, template, item));
        }
    }
    let (_, template, item) = best?;
    let key = [
        "get", "put", "post", "delete", "options", "head", "patch", "trace",
    ]
    .into_iter()
    .find(|k| *k == method)?;
    match item.get(key) {
        Some(op) => Some((template.clone(), key, op)),
        None if key == "head" => Some((template.clone(), "get", item.get("get")?)),
        None => None,
    }
}

/// Follows `$ref`s (inside the document) from the object at `ptr`.
fn follow(doc: &Value, mut ptr: String) -> (String, &Value) {
    for _ in 0..8 {
        let v = doc.pointer(&ptr).unwrap_or(&Value::Null);
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) if r.starts_with("#/") => ptr = r[1..].to_owned(),
            _ => return (ptr, v),
        }
    }
    panic!("docs/openapi.json: $ref cycle at {ptr}");
}

fn parse_json(what: &str, status: u16, text: &str) -> Result<Value, String> {
    serde_json::from_str(text)
        .map_err(|e| format!("{what} {status}: the body is not JSON ({e}); body: {text}"))
}

fn validate(
    c: &'static Contract,
    what: &str,
    status: u16,
    schema_ptr: &str,
    value: &Value,
    text: &str,
) -> Result<(), String> {
    let validator = validator(c, schema_ptr);
    let errors: Vec<String> = validator
        .iter_errors(value)
        .take(10)
        .map(|e| {
            format!(
                "at {:?}: {e} (schema: #{})",
                e.instance_path().as_str(),
                e.schema_path().as_str()
            )
        })
        .collect();
    let errors = if errors.is_empty() {
        undocumented_properties(&validator, value)
    } else {
        errors
    };
    if errors.is_empty() {
        return Ok(());
    }
    let mut msg = format!("{what} {status}: the body does not match the schema at #{schema_ptr}:");
    for e in &errors {
        let _ = write!(msg, "\n  - {e}");
    }
    let _ = write!(msg, "\nbody: {text}");
    Err(msg)
}

/// Properties the schema does not name, in a body that validates: an
/// object the schema describes (a `properties`, `patternProperties` or
/// `additionalProperties` keyword applied to it, through `$ref`, `allOf` and
/// the `oneOf` branch that matched) may hold only what those keywords
/// evaluated, as if every such schema said `unevaluatedProperties: false`.
/// A renamed optional field (or one the document never had) fails here,
/// where a plain validation lets any extra property through. Free-form
/// objects (`{"type": "object"}` alone) are left as they are.
fn undocumented_properties(validator: &Validator, value: &Value) -> Vec<String> {
    let evaluation = validator.evaluate(value);
    let mut known: HashMap<String, Vec<String>> = HashMap::new();
    for a in evaluation.iter_annotations() {
        let keyword = a.schema_location.rsplit('/').next().unwrap_or_default();
        if !matches!(
            keyword,
            "properties" | "patternProperties" | "additionalProperties" | "unevaluatedProperties"
        ) {
            continue;
        }
        let names = known
            .entry(a.instance_location.as_str().to_owned())
            .or_default();
        if let Some(list) = a.annotations.value().as_array() {
            names.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    let mut out = Vec::new();
    walk_objects(value, &mut String::new(), &mut |ptr, obj| {
        if let Some(names) = known.get(ptr) {
            for k in obj.keys().filter(|k| !names.contains(k)) {
                out.push(format!(
                    "at {ptr:?}: property {k:?} is not in the schema (undocumented or renamed)"
                ));
            }
        }
    });
    out.truncate(10);
    out
}

/// Calls `f` with the JSON pointer of every object in `v`.
fn walk_objects(
    v: &Value,
    ptr: &mut String,
    f: &mut dyn FnMut(&str, &serde_json::Map<String, Value>),
) {
    match v {
        Value::Object(o) => {
            f(ptr, o);
            for (k, child) in o {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&escape(k));
                walk_objects(child, ptr, f);
                ptr.truncate(len);
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                let len = ptr.len();
                let _ = write!(ptr, "/{i}");
                walk_objects(child, ptr, f);
                ptr.truncate(len);
            }
        }
        _ => {}
    }
}

/// The validator of the schema at `ptr` in the document (built once).
fn validator(c: &'static Contract, ptr: &str) -> Arc<Validator> {
    let mut cache = c.validators.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(v) = cache.get(ptr) {
        return v.clone();
    }
    let schema = json!({"$ref": format!("{BASE}#{}", fragment(ptr))});
    let v = jsonschema::options()
        .with_draft(Draft::Draft202012)
        .with_registry(&c.registry)
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("docs/openapi.json: the schema at {ptr} does not compile: {e}"));
    let v = Arc::new(v);
    cache.insert(ptr.to_owned(), v.clone());
    v
}

/// A JSON pointer token (RFC 6901).
fn escape(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// A JSON pointer as a URI fragment (RFC 6901 §6): characters a fragment
/// may not hold (the braces of path templates) percent-encoded.
fn fragment(ptr: &str) -> String {
    let mut out = String::with_capacity(ptr.len());
    for b in ptr.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vote(body: Value) -> Vec<u8> {
        body.to_string().into_bytes()
    }

    const JSON: Option<&str> = Some("application/json");
    const PROBLEM: Option<&str> = Some("application/problem+json");

    #[test]
    fn a_documented_response_passes() {
        let body =
            vote(json!({"idea_id": "01JD8Z3K4M5N6P7Q8R9S0TVWXY", "voted": true, "votes": 3}));
        let c = check(
            "PUT",
            "/ideas/01JD8Z3K4M5N6P7Q8R9S0TVWXY/vote",
            200,
            JSON,
            &body,
        );
        assert_eq!(c, Ok(Checked::Operation("PUT /ideas/{id}/vote".into())));
    }

    #[test]
    fn a_renamed_field_fails_naming_where() {
        let body = vote(json!({"idea": "01JD8Z3K4M5N6P7Q8R9S0TVWXY", "voted": true, "votes": 3}));
        let e = check("PUT", "/ideas/x/vote", 200, JSON, &body).expect_err("renamed");
        assert!(e.contains("PUT /ideas/{id}/vote 200"), "{e}");
        assert!(e.contains("idea_id"), "{e}");
        assert!(e.contains("body: {"), "{e}");
        // A wrong type names the field's pointer.
        let body = vote(json!({"idea_id": "x", "voted": "yes", "votes": 3}));
        let e = check("PUT", "/ideas/x/vote", 200, JSON, &body).expect_err("type");
        assert!(e.contains("at \"/voted\""), "{e}");
    }

    #[test]
    fn an_undocumented_property_fails() {
        // A renamed optional field: the document's name is gone (allowed),
        // the new one is not in the schema.
        let body = vote(json!({"idea_id": "x", "voted": true, "votes": 3, "vote_count": 3}));
        let e = check("PUT", "/ideas/x/vote", 200, JSON, &body).expect_err("extra");
        assert!(e.contains("\"vote_count\" is not in the schema"), "{e}");
        // Inside a list's items, through `$ref`s.
        let page = json!({"items": [{"id": "01JDC1A2B3C4D5E6F7G8H9J0K1", "idea_id": "01JD8Z3K4M5N6P7Q8R9S0TVWXY", "body": "b", "created_at": "2026-11-23T09:00:00Z",
                                     "author": {"id": "m", "display_name": "M", "nickname": "x"}}],
                          "next_cursor": null});
        let e =
            check("GET", "/ideas/i/comments", 200, JSON, &vote(page.clone())).expect_err("extra");
        assert!(
            e.contains("at \"/items/0/author\": property \"nickname\""),
            "{e}"
        );
        let mut page = page;
        page["items"][0]["author"]
            .as_object_mut()
            .expect("author")
            .remove("nickname");
        assert!(check("GET", "/ideas/i/comments", 200, JSON, &vote(page)).is_ok());
    }

    #[test]
    fn an_undocumented_status_fails() {
        let body = vote(json!({"type": "/problems/x", "title": "t", "status": 418, "detail": "d"}));
        let e = check("PUT", "/ideas/x/vote", 418, PROBLEM, &body).expect_err("418");
        assert!(e.contains("answered 418"), "{e}");
        assert!(e.contains("\"200\""), "lists what is documented: {e}");
    }

    #[test]
    fn a_problem_must_say_problem_json() {
        let body = vote(
            json!({"type": "/problems/not-found", "title": "Not found", "status": 404, "detail": "no such idea"}),
        );
        assert!(check("PUT", "/ideas/x/vote", 404, PROBLEM, &body).is_ok());
        let e = check("PUT", "/ideas/x/vote", 404, JSON, &body).expect_err("media type");
        assert!(e.contains("application/problem+json"), "{e}");
        let e = check("PUT", "/ideas/x/vote", 404, PROBLEM, b"{\"detail\": 1}").expect_err("shape");
        assert!(
            e.contains("/components/schemas/Problem") || e.contains("title"),
            "{e}"
        );
    }

    #[test]
    fn a_literal_segment_wins_over_a_parameter() {
        let (t, _, _) = operation(document(), "get", "/ideas/similar").expect("op");
        assert_eq!(t, "/ideas/similar");
        let (t, _, _) =
            operation(document(), "get", "/ideas/01JD8Z3K4M5N6P7Q8R9S0TVWXY").expect("op");
        assert_eq!(t, "/ideas/{id}");
        // A method the best path lacks is no operation (the router answers 405).
        assert!(operation(document(), "put", "/ideas/similar").is_none());
    }

    #[test]
    fn a_body_where_none_is_documented_fails() {
        assert!(check("GET", "/health", 304, None, b"").is_ok());
        let e = check("GET", "/health", 304, JSON, b"{}").expect_err("body");
        assert!(e.contains("no body"), "{e}");
    }

    #[test]
    fn undocumented_routes_are_skipped_but_errors_are_problems() {
        let p = vote(
            json!({"type": "/problems/not-found", "title": "Not found", "status": 404, "detail": "no route"}),
        );
        assert_eq!(
            check("GET", "/nowhere", 404, PROBLEM, &p),
            Ok(Checked::Undocumented)
        );
        assert!(check("GET", "/nowhere", 404, PROBLEM, b"{\"oops\": true}").is_err());
        assert!(check("GET", "/nowhere", 404, JSON, &p).is_err());
    }
}
