//! The body of a Zendesk ticket update (`PUT /api/v2/tickets/{id}.json`,
//! <https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/#update-ticket>) that
//! tells support, on each linked ticket, which SEV it belongs to and in what state: an internal
//! note (`public: false`, so the customer never sees it) and tags support can filter views on.

use serde_json::{json, Value};
use sevloop_core::SevState;

use super::{extras, headline};
use crate::SevNotice;

/// The update for one ticket linked to the SEV.
pub fn helpdesk_note(n: &SevNotice) -> Value {
    // Every other state's tag goes, whatever the ticket had before: the update needs no read.
    let stale: Vec<String> = SevState::ALL
        .into_iter()
        .filter(|s| *s != n.state)
        .map(state_tag)
        .collect();
    json!({
        "ticket": {
            "comment": { "body": note(n), "public": false },
            // Added and removed in one update, so a view filtering on a state tag never sees a
            // ticket with two states or none.
            "additional_tags": [tag_safe(&format!("sevloop_{}", n.sev_id)), state_tag(n.state)],
            "remove_tags": stale,
        }
    })
}

fn note(n: &SevNotice) -> String {
    let mut lines = vec![
        format!("sevloop: this ticket is part of {}", headline(n)),
        format!("State: {} (change: {})", n.state.as_str(), n.kind.as_str()),
        format!("Team: {}", n.team),
    ];
    lines.extend(
        extras(n)
            .iter()
            .map(|e| format!("{}: {}", e.label, e.value)),
    );
    lines.push(n.url.clone());
    lines.join("\n")
}

fn state_tag(state: SevState) -> String {
    format!("sevloop_{}", state.as_str())
}

/// Zendesk tags are lowercase words; anything but `[a-z0-9_]` (a space would split the tag in
/// two) becomes `_`.
fn tag_safe(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_hold_only_lowercase_letters_digits_and_underscores() {
        assert_eq!(tag_safe("sevloop_SEV-12"), "sevloop_sev_12");
        assert_eq!(tag_safe("sevloop_Ünï code/x y"), "sevloop__n__code_x_y");
    }
}
