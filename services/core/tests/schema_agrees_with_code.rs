//! `schemas/ticket.v1.json` and `TicketEvent::parse` must accept and refuse the same tickets.

use serde_json::{json, Value};
use sevloop_core::TicketEvent;

fn schema() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/ticket.v1.json");
    let text = std::fs::read_to_string(path).expect("schema file is readable");
    let schema: Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("schema compiles")
}

fn valid() -> Value {
    json!({"ticket_id": "ZD-48213", "event": "created", "event_time": "2024-01-03T14:52:10Z",
      "subject": "Card declined everywhere", "body": "My card is declined in every shop since this morning...",
      "product": "cards", "component": null, "tags": ["card", "declined"],
      "customer": {"id": "cust-000412", "tier": "enterprise", "name": "Ada Example", "email": "ada@example.com"},
      "channel": "email", "source": "zendesk", "language": "en"})
}

fn with(mutate: impl FnOnce(&mut Value)) -> Value {
    let mut v = valid();
    mutate(&mut v);
    v
}

fn valid_examples() -> Vec<Value> {
    vec![
        valid(),
        with(|v| {
            for k in ["component", "tags", "language"] {
                v.as_object_mut().unwrap().remove(k);
            }
            let c = v["customer"].as_object_mut().unwrap();
            c.remove("name");
            c.remove("email");
        }),
        with(|v| v["tags"] = Value::Null),
        with(|v| v["unknown_field"] = json!({"kept": true})),
        with(|v| v["event_time"] = "2024-01-03T16:52:10+02:00".into()),
        with(|v| v["subject"] = "".into()),
        with(|v| v["component"] = "checkout".into()),
    ]
}

fn invalid_examples() -> Vec<(&'static str, Value)> {
    vec![
        ("event", with(|v| v["event"] = "deleted".into())),
        ("event_time", with(|v| v["event_time"] = "yesterday".into())),
        (
            "customer.tier",
            with(|v| v["customer"]["tier"] = "gold".into()),
        ),
        (
            "customer.tier",
            with(|v| {
                v["customer"].as_object_mut().unwrap().remove("tier");
            }),
        ),
        (
            "product",
            with(|v| {
                v.as_object_mut().unwrap().remove("product");
            }),
        ),
        ("product", with(|v| v["product"] = "cards/eu".into())),
        ("product", with(|v| v["product"] = "".into())),
        ("ticket_id", with(|v| v["ticket_id"] = "ZD 1".into())),
        ("ticket_id", with(|v| v["ticket_id"] = 42.into())),
        (
            "body",
            with(|v| {
                v["subject"] = " ".into();
                v["body"] = "".into();
            }),
        ),
        ("subject", with(|v| v["subject"] = "x".repeat(1001).into())),
        ("tags[0]", with(|v| v["tags"] = json!([""]))),
        ("tags", with(|v| v["tags"] = json!(vec!["t"; 51]))),
        ("channel", with(|v| v["channel"] = "".into())),
        ("customer.id", with(|v| v["customer"]["id"] = "".into())),
        (
            "customer.name",
            with(|v| v["customer"]["name"] = "x".repeat(257).into()),
        ),
        (
            "customer.email",
            with(|v| v["customer"]["email"] = "x".repeat(257).into()),
        ),
        // chrono reads years far outside what windows can subtract from without overflow.
        (
            "event_time",
            with(|v| v["event_time"] = "-262143-01-01T00:00:00Z".into()),
        ),
        (
            "event_time",
            with(|v| v["event_time"] = "1969-07-20T20:17:40Z".into()),
        ),
    ]
}

#[test]
fn valid_examples_pass_both_the_schema_and_the_code() {
    let schema = schema();
    for example in valid_examples() {
        let errors: Vec<String> = schema
            .iter_errors(&example)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "schema refused {example}: {errors:?}");
        let bytes = serde_json::to_vec(&example).unwrap();
        if let Err(e) = TicketEvent::parse(&bytes) {
            panic!("code refused {example}: {e}");
        }
    }
}

#[test]
fn invalid_examples_fail_both_and_the_code_names_the_field() {
    let schema = schema();
    for (field, example) in invalid_examples() {
        assert!(
            !schema.is_valid(&example),
            "schema accepted bad `{field}`: {example}"
        );
        let bytes = serde_json::to_vec(&example).unwrap();
        match TicketEvent::parse(&bytes) {
            Ok(_) => panic!("code accepted bad `{field}`: {example}"),
            Err(sevloop_core::TicketError::Field { field: named, .. }) => {
                assert_eq!(named, field, "for {example}")
            }
            Err(other) => panic!("expected a field error for `{field}`, got {other}"),
        }
    }
}

#[test]
fn the_shared_stream_tickets_all_pass_both() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/demo/banking77-demo.tickets.jsonl"
    );
    let text = std::fs::read_to_string(path).expect("bundled slice is readable");
    let schema = schema();
    let mut n = 0;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert!(schema.is_valid(&v), "schema refused {line}");
        TicketEvent::parse(line.as_bytes()).unwrap();
        n += 1;
    }
    assert!(n >= 100, "slice has {n} tickets");
}
