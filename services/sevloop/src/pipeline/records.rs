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
    /// data, the record's own customer's included (read from the record as far as it parses).
    fn safe_reason(&self, payload: &[u8], reason: &str) -> String {
        let record: serde_json::Value = serde_json::from_slice(payload).unwrap_or_default();
        let customer = &record["customer"];
        let personal = sevloop_core::redact::Personal {
            name: customer["name"].as_str(),
            customer_id: customer["id"].as_str(),
            email: customer["email"].as_str(),
        };
        self.redactor.redact(reason, &personal)
    }
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
