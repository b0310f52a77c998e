//! The generic webhook event, in the payload shape Standard Webhooks recommends
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#payload-structure>):
//! a dotted `type`, the time of the change, and the notice itself as `data`. Signing is
//! [`crate::signing`]'s job.

use serde_json::{json, Value};

use super::{rfc3339, scoped};
use crate::SevNotice;

/// `{"type": "sev.<kind>", "timestamp": <at>, "data": <the notice>}`. The notice's `event_id`
/// is scoped by the installation as the webhook-id header is (see [`scoped`]): a receiver
/// that deduplicates on the body's id must not fold two installations' changes together.
pub fn webhook(n: &SevNotice, installation: &str) -> Value {
    let data = SevNotice {
        event_id: scoped(installation, &n.event_id),
        ..n.clone()
    };
    json!({
        "type": format!("sev.{}", n.kind.as_str()),
        "timestamp": rfc3339(n.at),
        "data": data,
    })
}
