//! The ticket contract (`schemas/ticket.v1.json`): types, parsing and validation.
//!
//! Parsing names the offending field in every error, so the API can answer with a 4xx that says
//! what is wrong and the dead-letter topic can carry the same reason.

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Largest encoded ticket accepted, in bytes. Bodies past this are dead-lettered, not truncated.
pub const MAX_TICKET_BYTES: usize = 1024 * 1024;
const MAX_ID_CHARS: usize = 128;
const MAX_SUBJECT_CHARS: usize = 1_000;
const MAX_BODY_CHARS: usize = 100_000;
const MAX_NAME_CHARS: usize = 64;
const MAX_TAGS: usize = 50;
/// A customer's name or email longer than this is not one (and the mask compares every word
/// of a ticket with every part of the name).
const MAX_CUSTOMER_FIELD_CHARS: usize = 256;
/// Event times are between 1970 and the end of year 9999 (UTC): what RFC 3339 can write with
/// a four-digit year, and far from where time arithmetic on windows and spans overflows.
const MIN_EVENT_YEAR: i32 = 1970;
const MAX_EVENT_YEAR: i32 = 9999;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Created,
    Updated,
    Solved,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Free,
    Pro,
    Enterprise,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub id: String,
    pub tier: Tier,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Unknown fields are kept (and re-emitted) but never interpreted.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One event of a support ticket, as it travels on `sevloop.tickets.v1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketEvent {
    pub ticket_id: String,
    pub event: EventKind,
    pub event_time: DateTime<Utc>,
    pub subject: String,
    pub body: String,
    pub product: String,
    #[serde(default)]
    pub component: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub tags: Vec<String>,
    pub customer: Customer,
    pub channel: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why a ticket was refused. Each variant says what is wrong in terms a producer can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("ticket is {size} bytes; the limit is {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("field `{field}`: {problem}")]
    Field { field: String, problem: String },
}

impl TicketError {
    /// A stable, machine-readable code (used in API errors, dead-letter headers and metrics labels).
    pub fn code(&self) -> &'static str {
        match self {
            TicketError::TooLarge { .. } => "too_large",
            TicketError::Json { .. } => "invalid_json",
            TicketError::Field { .. } => "invalid_field",
        }
    }

    fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        TicketError::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl TicketEvent {
    /// Parses and validates one encoded ticket event.
    pub fn parse(bytes: &[u8]) -> Result<Self, TicketError> {
        if bytes.len() > MAX_TICKET_BYTES {
            return Err(TicketError::TooLarge {
                size: bytes.len(),
                max: MAX_TICKET_BYTES,
            });
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let ticket: TicketEvent =
            serde_path_to_error::deserialize(&mut de).map_err(from_serde_error)?;
        de.end().map_err(from_serde_error_plain)?;
        ticket.validate()?;
        Ok(ticket)
    }

    /// Validates an already-decoded JSON value (one element of an API batch, for instance).
    pub fn from_value(value: Value) -> Result<Self, TicketError> {
        let ticket: TicketEvent =
            serde_path_to_error::deserialize(value).map_err(from_serde_error)?;
        ticket.validate()?;
        Ok(ticket)
    }

    /// The checks JSON types alone cannot express; kept in step with `schemas/ticket.v1.json`.
    pub fn validate(&self) -> Result<(), TicketError> {
        check_identifier("ticket_id", &self.ticket_id, MAX_ID_CHARS)?;
        check_product(&self.product)?;
        check_identifier("customer.id", &self.customer.id, MAX_ID_CHARS)?;
        let personal = [
            ("customer.name", &self.customer.name),
            ("customer.email", &self.customer.email),
        ];
        for (field, value) in personal {
            if let Some(v) = value {
                check_text(field, v, MAX_CUSTOMER_FIELD_CHARS)?;
            }
        }
        if !(MIN_EVENT_YEAR..=MAX_EVENT_YEAR).contains(&self.event_time.year()) {
            return Err(TicketError::field(
                "event_time",
                format!("must be in the years {MIN_EVENT_YEAR} to {MAX_EVENT_YEAR} (UTC)"),
            ));
        }
        check_text("subject", &self.subject, MAX_SUBJECT_CHARS)?;
        check_text("body", &self.body, MAX_BODY_CHARS)?;
        if self.subject.trim().is_empty() && self.body.trim().is_empty() {
            return Err(TicketError::field(
                "body",
                "subject and body are both empty; a ticket needs some text",
            ));
        }
        check_name("channel", &self.channel)?;
        check_name("source", &self.source)?;
        if let Some(component) = &self.component {
            check_name("component", component)?;
        }
        if self.tags.len() > MAX_TAGS {
            return Err(TicketError::field(
                "tags",
                format!("{} tags; at most {MAX_TAGS} are allowed", self.tags.len()),
            ));
        }
        for (i, tag) in self.tags.iter().enumerate() {
            check_name(&format!("tags[{i}]"), tag)?;
        }
        Ok(())
    }

    /// The ticket's text as features and search see it.
    pub fn text(&self) -> String {
        if self.body.starts_with(self.subject.trim()) {
            self.body.clone()
        } else {
            format!("{}\n{}", self.subject, self.body)
        }
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(de: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(de)?.unwrap_or_default())
}

fn from_serde_error(err: serde_path_to_error::Error<serde_json::Error>) -> TicketError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    if !inner.is_data() {
        return from_serde_error_plain(inner);
    }
    let message = strip_position(&inner.to_string());
    // serde reports a missing field at its parent's path; name the field itself.
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
    {
        let field = if path == "." {
            name.to_string()
        } else {
            format!("{path}.{name}")
        };
        return TicketError::field(field, "is required");
    }
    let field = if path == "." {
        "(ticket)".to_string()
    } else {
        path
    };
    TicketError::field(field, message)
}

fn from_serde_error_plain(err: serde_json::Error) -> TicketError {
    TicketError::Json {
        line: err.line(),
        column: err.column(),
        message: strip_position(&err.to_string()),
    }
}

fn strip_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

fn check_len(field: &str, value: &str, max: usize) -> Result<(), TicketError> {
    let chars = value.chars().count();
    if chars > max {
        return Err(TicketError::field(
            field,
            format!("is {chars} characters; at most {max} are allowed"),
        ));
    }
    Ok(())
}

/// Whether `c` is a control character text may not hold: all but tabs and line breaks
/// (PostgreSQL refuses NUL, and none of them is typed by a person).
pub(crate) fn is_unwelcome_control(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// Text may hold tabs and line breaks but no other control characters.
fn check_text(field: &str, value: &str, max: usize) -> Result<(), TicketError> {
    check_len(field, value, max)?;
    if let Some(c) = value.chars().find(|&c| is_unwelcome_control(c)) {
        return Err(TicketError::field(
            field,
            format!("contains the control character U+{:04X}", c as u32),
        ));
    }
    Ok(())
}

fn check_name(field: &str, value: &str) -> Result<(), TicketError> {
    if value.trim().is_empty() {
        return Err(TicketError::field(field, "must not be empty"));
    }
    check_text(field, value, MAX_NAME_CHARS)
}

fn check_identifier(field: &str, value: &str, max: usize) -> Result<(), TicketError> {
    if value.is_empty() {
        return Err(TicketError::field(field, "must not be empty"));
    }
    check_len(field, value, max)?;
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TicketError::field(
            field,
            "must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// The product is the message key and the clustering scope, so it must be a plain name.
fn check_product(value: &str) -> Result<(), TicketError> {
    if value.is_empty() {
        return Err(TicketError::field("product", "must not be empty"));
    }
    check_len("product", value, MAX_NAME_CHARS)?;
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !plain {
        return Err(TicketError::field(
            "product",
            "may contain only ASCII letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn example() -> Value {
        serde_json::json!({"ticket_id": "ZD-48213", "event": "created", "event_time": "2024-01-03T14:52:10Z",
          "subject": "Card declined everywhere", "body": "My card is declined in every shop since this morning",
          "product": "cards", "component": null, "tags": ["card", "declined"],
          "customer": {"id": "cust-000412", "tier": "enterprise", "name": "Ada Example", "email": "ada@example.com"},
          "channel": "email", "source": "zendesk", "language": "en"})
    }

    fn parse_value(v: &Value) -> Result<TicketEvent, TicketError> {
        TicketEvent::parse(&serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn the_spec_example_parses() {
        let t = parse_value(&example()).unwrap();
        assert_eq!(t.ticket_id, "ZD-48213");
        assert_eq!(t.customer.tier, Tier::Enterprise);
        assert_eq!(t.event, EventKind::Created);
    }

    #[test]
    fn unknown_fields_are_kept_but_ignored() {
        let mut v = example();
        v["priority"] = "high".into();
        v["customer"]["segment"] = "smb".into();
        let t = parse_value(&v).unwrap();
        assert_eq!(t.extra["priority"], "high");
        let back = serde_json::to_value(&t).unwrap();
        assert_eq!(back["customer"]["segment"], "smb");
    }

    #[test]
    fn a_missing_field_is_named_with_its_path() {
        let mut v = example();
        v["customer"].as_object_mut().unwrap().remove("tier");
        let err = parse_value(&v).unwrap_err();
        assert_eq!(
            err,
            TicketError::field("customer.tier", "is required"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_enum_value_names_the_field() {
        let mut v = example();
        v["event"] = "deleted".into();
        match parse_value(&v).unwrap_err() {
            TicketError::Field { field, problem } => {
                assert_eq!(field, "event");
                assert!(problem.contains("deleted"), "{problem}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_bad_timestamp_names_the_field() {
        let mut v = example();
        v["event_time"] = "yesterday".into();
        let err = parse_value(&v).unwrap_err();
        assert!(
            matches!(&err, TicketError::Field { field, .. } if field == "event_time"),
            "{err}"
        );
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let err = TicketEvent::parse(b"{\"ticket_id\": ").unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        let err = TicketEvent::parse(b"not json").unwrap_err();
        assert!(matches!(err, TicketError::Json { line: 1, .. }), "{err}");
    }

    #[test]
    fn an_oversized_ticket_is_refused_before_parsing() {
        let big = vec![b' '; MAX_TICKET_BYTES + 1];
        assert_eq!(
            TicketEvent::parse(&big).unwrap_err(),
            TicketError::TooLarge {
                size: MAX_TICKET_BYTES + 1,
                max: MAX_TICKET_BYTES
            }
        );
    }

    #[test]
    fn a_product_with_a_slash_is_refused() {
        let mut v = example();
        v["product"] = "cards/eu".into();
        let err = parse_value(&v).unwrap_err();
        assert!(
            matches!(&err, TicketError::Field { field, .. } if field == "product"),
            "{err}"
        );
    }

    #[test]
    fn a_nul_character_in_the_body_is_refused_with_its_field() {
        let mut v = example();
        v["body"] = "card declined\u{0}".into();
        let err = parse_value(&v).unwrap_err();
        assert!(
            matches!(&err, TicketError::Field { field, problem } if field == "body" && problem.contains("U+0000")),
            "{err}"
        );
        v["body"] = "line one\r\nline two\tend".into();
        assert!(parse_value(&v).is_ok(), "tabs and line breaks are fine");
    }

    #[test]
    fn null_tags_mean_no_tags() {
        let mut v = example();
        v["tags"] = Value::Null;
        assert!(parse_value(&v).unwrap().tags.is_empty());
    }

    #[test]
    fn text_does_not_repeat_a_subject_that_opens_the_body() {
        let mut v = example();
        v["subject"] = "Card declined".into();
        v["body"] = "Card declined at the till".into();
        assert_eq!(parse_value(&v).unwrap().text(), "Card declined at the till");
    }
}
