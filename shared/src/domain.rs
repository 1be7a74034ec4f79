//! Domain newtypes: each is built by `parse`, so a value of the type is valid
//! by construction ("parse, don't validate"). Parse errors name the field.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// A problem with one input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Collects field errors while parsing a request.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    /// Records the error of a parse, returning its value if it succeeded.
    pub fn take<T>(&mut self, r: Result<T, FieldError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.0.push(e);
                None
            }
        }
    }
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

fn required<T>(field: &str, v: Option<T>) -> Result<T, FieldError> {
    v.ok_or_else(|| FieldError::new(field, "is required"))
}

/// Trims, then checks the length in characters and refuses control characters.
fn text(
    field: &str,
    v: Option<String>,
    min: usize,
    max: usize,
    multiline: bool,
) -> Result<String, FieldError> {
    let v = required(field, v)?;
    let t = v.trim();
    let n = t.chars().count();
    if n < min || n > max {
        return Err(FieldError::new(
            field,
            format!("must be {min} to {max} characters long (it is {n})"),
        ));
    }
    refuse_controls(field, t, multiline)?;
    Ok(t.to_owned())
}

/// The one rule for control characters in free text (Unicode `Cc`:
/// U+0000–U+001F and U+007F–U+009F): refused, except line breaks and tabs
/// (`\n`, `\r`, `\t`) in multi-line fields. docs/openapi.json states the
/// same rule as each text field's `pattern`.
pub fn refuse_controls(field: &str, t: &str, multiline: bool) -> Result<(), FieldError> {
    if t.chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err(FieldError::new(
            field,
            if multiline {
                "must not contain control characters other than line breaks and tabs"
            } else {
                "must not contain control characters"
            },
        ));
    }
    Ok(())
}

/// A member's id: the token's `sub`. Restricted to characters that cannot
/// break the store's `#`-separated keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct MemberId(String);

impl MemberId {
    pub fn parse(s: &str) -> Option<MemberId> {
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:@|+".contains(&b));
        ok.then(|| MemberId(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(v: Option<String>) -> Result<Self, FieldError> {
        text("display_name", v, 2, 40, false).map(DisplayName)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// A mailbox `local@domain` with a dotted DNS domain: no quoted local
    /// parts, IP literals or display names, at most 254 characters.
    pub fn parse(v: Option<String>) -> Result<Self, FieldError> {
        let v = required("email", v)?;
        let v = v.trim();
        let bad = || FieldError::new("email", "must be an email address such as marie@example.fr");
        if v.len() > 254 || v.contains(['"', '[', ']', '<', '>', ' ']) {
            return Err(bad());
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            v,
            email_address::Options::default().without_display_text(),
        )
        .map_err(|_| bad())?;
        let domain = parsed.domain().to_ascii_lowercase();
        let labels_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !labels_ok {
            return Err(bad());
        }
        Ok(Email(format!("{}@{}", parsed.local_part(), domain)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A loyalty card number: digits only. Stored, never shown back in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoyaltyCard(String);

impl LoyaltyCard {
    pub fn parse(v: String) -> Result<Self, FieldError> {
        let ok = (8..=19).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit());
        if ok {
            Ok(LoyaltyCard(v))
        } else {
            Err(FieldError::new(
                "loyalty_card",
                "must be 8 to 19 digits, without spaces",
            ))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The masked form shown to the member: the last four digits only.
    pub fn masked(number: &str) -> String {
        let n = number.len();
        let tail = number.get(n.saturating_sub(4)..).unwrap_or_default();
        format!("{}{}", "•".repeat(n.saturating_sub(4)), tail)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdeaTitle(String);

impl IdeaTitle {
    pub fn parse(v: Option<String>) -> Result<Self, FieldError> {
        text("title", v, 5, 120, false).map(IdeaTitle)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdeaBody(String);

impl IdeaBody {
    pub fn parse(v: Option<String>) -> Result<Self, FieldError> {
        text("body", v, 10, 5000, true).map(IdeaBody)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An idea id (a ULID: sortable by creation time).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdeaId(String);

impl IdeaId {
    pub fn new() -> Self {
        IdeaId(ulid::Ulid::new().to_string())
    }
    /// Parses an id from a path; anything else is an unknown idea.
    pub fn parse(s: &str) -> Option<IdeaId> {
        ulid::Ulid::from_string(s)
            .ok()
            .map(|u| IdeaId(u.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for IdeaId {
    fn default() -> Self {
        IdeaId::new()
    }
}

/// The life of an idea: open for votes, then the committee's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdeaStatus {
    Open,
    UnderReview,
    Accepted,
    Rejected,
    InProgress,
    Implemented,
}

impl IdeaStatus {
    pub const ALL: [IdeaStatus; 6] = [
        IdeaStatus::Open,
        IdeaStatus::UnderReview,
        IdeaStatus::Accepted,
        IdeaStatus::Rejected,
        IdeaStatus::InProgress,
        IdeaStatus::Implemented,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            IdeaStatus::Open => "open",
            IdeaStatus::UnderReview => "under_review",
            IdeaStatus::Accepted => "accepted",
            IdeaStatus::Rejected => "rejected",
            IdeaStatus::InProgress => "in_progress",
            IdeaStatus::Implemented => "implemented",
        }
    }
    pub fn parse(s: &str) -> Option<IdeaStatus> {
        IdeaStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A JSON number read as an integer the way JSON Schema counts one: `3`
/// and `3.0` are both the integer 3 (2020-12, "integer" is any number with
/// a zero fractional part), `3.5` is not. serde's `i64` refuses `3.0`, so
/// a client whose JSON library writes every number as a float would meet a
/// 400 for a request docs/openapi.json calls valid.
pub fn json_integer(v: &serde_json::Value) -> Option<i64> {
    if let Some(n) = v.as_i64() {
        return Some(n);
    }
    let f = v.as_f64()?;
    // The range check keeps the `as` cast exact (no saturation).
    (f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64).then_some(f as i64)
}

/// `#[serde(default, deserialize_with = "crate::domain::optional_integer")]`
/// for an optional integer field of a request body: accepts `3` and `3.0`
/// (see [`json_integer`]), null or absent as None, anything else is the
/// usual serde type error (400 naming the field).
pub fn optional_integer<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::Error as _;
    use serde::Deserialize as _;
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => json_integer(&v)
            .map(Some)
            .ok_or_else(|| D::Error::custom(format!("invalid type: {v}, expected an integer"))),
    }
}

/// Timestamps are RFC 3339 UTC with milliseconds, fixed width, so their
/// string order is their time order (they appear in sort keys).
pub fn now() -> String {
    format_ts(OffsetDateTime::now_utc())
}

pub fn format_ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

pub fn parse_ts(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_owned())
    }

    #[test]
    fn integers_as_json_schema_counts_them() {
        use serde_json::json;
        assert_eq!(json_integer(&json!(3)), Some(3));
        assert_eq!(json_integer(&json!(3.0)), Some(3));
        assert_eq!(json_integer(&json!(-500.0)), Some(-500));
        assert_eq!(json_integer(&json!(3.5)), None);
        assert_eq!(json_integer(&json!(1e300)), None);
        assert_eq!(json_integer(&json!("3")), None);
        #[derive(serde::Deserialize)]
        struct B {
            #[serde(default, deserialize_with = "optional_integer")]
            n: Option<i64>,
        }
        let b = |v: serde_json::Value| serde_json::from_value::<B>(v).map(|b| b.n);
        assert_eq!(b(json!({"n": 87100.0})).ok(), Some(Some(87100)));
        assert_eq!(b(json!({})).ok(), Some(None));
        assert_eq!(b(json!({"n": null})).ok(), Some(None));
        let err = b(json!({"n": 2.5})).err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("expected an integer")));
    }

    #[test]
    fn display_name_bounds() {
        assert!(DisplayName::parse(s("Jo")).is_ok());
        assert!(DisplayName::parse(s(" J ")).is_err());
        assert!(DisplayName::parse(s(&"é".repeat(40))).is_ok());
        assert!(DisplayName::parse(s(&"é".repeat(41))).is_err());
        assert!(DisplayName::parse(s("ab\u{7}c")).is_err());
        assert_eq!(
            DisplayName::parse(None).map_err(|e| e.message),
            Err("is required".into())
        );
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(s("Marie@Example.FR")).map(|e| e.0),
            Ok("Marie@example.fr".into())
        );
        for bad in [
            "marie",
            "marie@",
            "@x.fr",
            "marie@localhost",
            "a b@x.fr",
            "\"a\"@x.fr",
            "a@[1.2.3.4]",
            "a@-x.fr",
            "a@x..fr",
            "Marie <m@x.fr>",
        ] {
            assert!(Email::parse(s(bad)).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn loyalty_cards_are_digits_and_masked() {
        assert!(LoyaltyCard::parse("9130012345678901".into()).is_ok());
        assert!(LoyaltyCard::parse("9130 0123 4567".into()).is_err());
        assert!(LoyaltyCard::parse("1234567".into()).is_err());
        assert_eq!(LoyaltyCard::masked("9130012345678901"), "••••••••••••8901");
    }

    #[test]
    fn idea_fields() {
        assert!(IdeaTitle::parse(s("1234")).is_err());
        assert!(IdeaTitle::parse(s("12345")).is_ok());
        assert!(IdeaTitle::parse(s(&"x".repeat(121))).is_err());
        assert!(IdeaBody::parse(s("short")).is_err());
        assert!(IdeaBody::parse(s("line one\nline two")).is_ok());
        assert!(IdeaBody::parse(s(&"x".repeat(5001))).is_err());
    }

    #[test]
    fn member_ids_cannot_break_keys() {
        assert!(MemberId::parse("0b5e4c1e-0b7a-4d4f-9a9e-123456789abc").is_some());
        assert!(MemberId::parse("alice#IDEA").is_none());
        assert!(MemberId::parse("").is_none());
    }

    #[test]
    fn timestamps_sort_as_strings() {
        let a = format_ts(OffsetDateTime::UNIX_EPOCH);
        assert_eq!(a, "1970-01-01T00:00:00.000Z");
        assert!(parse_ts(&a).is_some());
        assert!(a < now());
    }
}
