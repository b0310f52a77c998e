//! The records of the ticket log: parsed into a ticket, a correction or a SEV action, and the
//! ones that cannot be processed dead-lettered with a reason that leaves no personal data.

use sevloop_bus::{Outgoing, Record};
use sevloop_core::cluster::corrections::CORRECTION_RECORD;
use sevloop_core::sev::SEV_ACTION_RECORD;
use sevloop_core::{TicketEvent, RECORD_HEADER};

use super::{Body, Dead, Pipeline, PipelineError};

impl Pipeline {
    /// Sends bad records to the dead-letter topic with their reason, and waits for the ack: the
    /// offsets past them are committed only after.
    pub(super) async fn dead_letter(&self, dead: &[Dead]) -> Result<(), PipelineError> {
        if dead.is_empty() {
            return Ok(());
        }
        let out: Vec<Outgoing> = dead
            .iter()
            .map(|(r, code, reason)| {
                tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.offset,
                    code, "dead-lettered a record");
                self.metrics.dead_lettered(code);
                Outgoing {
                    key: r.key.clone(),
                    payload: r.payload.clone(),
                    headers: vec![
                        ("sevloop.error.code".into(), code.as_bytes().to_vec()),
                        (
                            "sevloop.error.reason".into(),
                            self.safe_reason(&r.payload, reason).into_bytes(),
                        ),
                        ("sevloop.source.topic".into(), r.topic.clone().into_bytes()),
                        (
                            "sevloop.source.partition".into(),
                            r.partition.to_string().into_bytes(),
                        ),
                        (
                            "sevloop.source.offset".into(),
                            r.offset.to_string().into_bytes(),
                        ),
                    ],
                }
            })
            .collect();
        self.dlq
            .send(&self.settings.pipeline.dlq_topic, out)
            .await?;
        Ok(())
    }

    /// A dead-letter reason fit to leave: a parser may quote the bad value, which may be personal
    /// data wherever it was found ("invalid type: string \"Ada Lovelace\"" for a customer given
    /// as a string), so quoted values go, and what is left is redacted with the record's own
    /// customer's strings (read from the record as far as it parses).
    fn safe_reason(&self, payload: &[u8], reason: &str) -> String {
        let record: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
        let customer = &record["customer"];
        let personal = sevloop_core::redact::Personal {
            name: customer["name"].as_str(),
            customer_id: customer["id"].as_str(),
            email: customer["email"].as_str(),
        };
        self.redactor.redact(&without_values(reason), &personal)
    }
}

/// Longest dead-letter reason sent: a header as large as its record could push the dead letter
/// past the broker's message size, and then no record after it would ever be processed.
const MAX_REASON_CHARS: usize = 300;

/// `reason` with every value a parser quotes shown as `…` (double-quoted strings, and the
/// back-quoted numbers, characters and unknown variants serde names), cut to
/// [`MAX_REASON_CHARS`]. Field paths and the expected shapes ("expected one of `free`, `pro`")
/// stay: they say what is wrong without repeating what was sent.
fn without_values(reason: &str) -> String {
    const QUOTED: [&str; 4] = [
        "unknown variant `",
        "integer `",
        "floating point `",
        "char `",
    ];
    let mut out = String::new();
    let mut rest = reason;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            out.push_str("\"…\"");
            rest = after_closing(&rest[1..], '"');
        } else if let Some((open, tail)) = QUOTED
            .iter()
            .find_map(|q| Some((*q, rest.strip_prefix(q)?)))
        {
            out.push_str(open);
            out.push_str("…`");
            rest = after_closing(tail, '`');
        } else {
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    match out.char_indices().nth(MAX_REASON_CHARS) {
        Some((cut, _)) => format!("{}…", &out[..cut]),
        None => out,
    }
}

/// What follows the first unescaped `close` in `s` (nothing, if it never closes).
fn after_closing(s: &str, close: char) -> &str {
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            c if c == close => return &s[i + c.len_utf8()..],
            _ => {}
        }
    }
    ""
}

/// Parses a record of the ticket log: a ticket, or a correction or SEV action marked by its
/// header.
pub(super) fn parse(record: &Record) -> Result<Body, (&'static str, String)> {
    let marked = record
        .headers
        .iter()
        .find(|(k, _)| k == RECORD_HEADER)
        .map(|(_, v)| v.as_slice());
    match marked {
        None => TicketEvent::parse(&record.payload)
            .map(Body::Ticket)
            .map_err(|e| (e.code(), e.to_string())),
        Some(kind) if kind == CORRECTION_RECORD.as_bytes() => {
            serde_json::from_slice(&record.payload)
                .map(Body::Correction)
                .map_err(|e| {
                    (
                        "invalid_correction",
                        format!("invalid correction record: {e}"),
                    )
                })
        }
        Some(kind) if kind == SEV_ACTION_RECORD.as_bytes() => {
            serde_json::from_slice(&record.payload)
                .map(Body::Action)
                .map_err(|e| ("invalid_action", format!("invalid SEV action record: {e}")))
        }
        Some(kind) => Err((
            "unknown_record",
            format!(
                "unknown record kind `{}`",
                String::from_utf8_lossy(kind)
                    .chars()
                    .take(64)
                    .collect::<String>()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_names_the_field_and_the_expected_shape_never_the_value() {
        let cases = [
            (
                r#"customer: invalid type: string "Ada \"Lovelace\" Byron", expected struct Customer"#,
                r#"customer: invalid type: string "…", expected struct Customer"#,
            ),
            (
                "customer.tier: unknown variant `ada@example.com`, expected one of `free`, `pro`",
                "customer.tier: unknown variant `…`, expected one of `free`, `pro`",
            ),
            (
                "customer.email: invalid type: integer `4539148803436467`, expected a string",
                "customer.email: invalid type: integer `…`, expected a string",
            ),
            (
                "ticket_id: must not be empty",
                "ticket_id: must not be empty",
            ),
            (r#"body: unterminated "value"#, r#"body: unterminated "…""#),
        ];
        for (reason, safe) in cases {
            assert_eq!(without_values(reason), safe);
        }
    }

    #[test]
    fn a_reason_is_cut_to_a_header_size() {
        let reason = format!("event: {}", "é".repeat(5_000));
        let safe = without_values(&reason);
        assert_eq!(safe.chars().count(), MAX_REASON_CHARS + 1);
        assert!(safe.ends_with('…'));
    }
}
