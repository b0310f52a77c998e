//! The generic webhook event, in the payload shape Standard Webhooks recommends
//! (<https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md#payload-structure>):
//! a dotted `type`, the time of the change, and the notice itself as `data`. Signing is
//! [`crate::signing`]'s job.

use serde_json::{json, Value};

use super::rfc3339;
use crate::SevNotice;

/// `{"type": "sev.<kind>", "timestamp": <at>, "data": <the notice>}`.
pub fn webhook(n: &SevNotice) -> Value {
    json!({
        "type": format!("sev.{}", n.kind.as_str()),
        "timestamp": rfc3339(n.at),
        "data": n,
    })
}
