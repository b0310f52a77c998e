//! A Slack incoming-webhook message in Block Kit (<https://docs.slack.dev/reference/block-kit/blocks>).
//! Slack reads `&`, `<` and `>` as markup (`<!channel>` pings everyone, `<url|text>` links), so
//! every string that came from people is escaped, as Slack's formatting guide asks
//! (<https://docs.slack.dev/messaging/formatting-message-text#escaping>). Texts are also kept
//! within Block Kit's length limits, since Slack rejects the whole message otherwise.

use serde_json::{json, Value};

use super::{extras, headline, rfc3339};
use crate::SevNotice;

/// Block Kit limits, in characters.
const HEADER_MAX: usize = 150;
const FIELD_MAX: usize = 2000;
const TEXT_MAX: usize = 3000;

/// The message for this notice.
pub fn slack(n: &SevNotice) -> Value {
    json!({
        // Shown in notifications and by clients that cannot render blocks.
        "text": escape_within(
            &format!("{} ({}, team {})", headline(n), n.kind.as_str(), n.team),
            TEXT_MAX,
        ),
        "blocks": [header(n), facts(n), context(n), link(n)],
    })
}

fn header(n: &SevNotice) -> Value {
    json!({
        "type": "header",
        "text": { "type": "plain_text", "text": escape_within(&headline(n), HEADER_MAX) },
    })
}

fn facts(n: &SevNotice) -> Value {
    let fields: Vec<Value> = [
        ("Team", n.team.clone()),
        ("State", n.state.as_str().to_owned()),
        ("Tickets", n.ticket_count.to_string()),
        ("Distinct customers", n.distinct_customers.to_string()),
        ("First ticket", rfc3339(n.first_ticket_at)),
        ("Opened", rfc3339(n.opened_at)),
    ]
    .into_iter()
    .map(|(label, value)| mrkdwn(&format!("*{label}*\n"), &value, FIELD_MAX))
    .collect();
    json!({ "type": "section", "fields": fields })
}

/// What changed, and why when the change says: the line people read after the header.
fn context(n: &SevNotice) -> Value {
    let mut elements = vec![mrkdwn("Change: ", n.kind.as_str(), TEXT_MAX)];
    for extra in extras(n) {
        elements.push(mrkdwn(&format!("{}: ", extra.label), extra.value, TEXT_MAX));
    }
    json!({ "type": "context", "elements": elements })
}

fn link(n: &SevNotice) -> Value {
    json!({
        "type": "actions",
        "elements": [{
            "type": "button",
            "text": { "type": "plain_text", "text": "Open in sevloop" },
            "url": n.url,
        }],
    })
}

/// A mrkdwn text object: our own `prefix` markup, then `value` escaped, within `max` in all.
fn mrkdwn(prefix: &str, value: &str, max: usize) -> Value {
    let room = max.saturating_sub(prefix.chars().count());
    json!({ "type": "mrkdwn", "text": format!("{prefix}{}", escape_within(value, room)) })
}

fn escaped(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        _ => None,
    }
}

fn escaped_len(c: char) -> usize {
    escaped(c).map_or(1, str::len)
}

/// Escapes `s` and keeps the result within `max` characters, cutting between characters (never
/// inside `&amp;`) and marking a cut with an ellipsis.
fn escape_within(s: &str, max: usize) -> String {
    let total: usize = s.chars().map(escaped_len).sum();
    let budget = if total <= max {
        max
    } else {
        max.saturating_sub(1)
    };
    let mut out = String::new();
    let mut len = 0;
    for c in s.chars() {
        len += escaped_len(c);
        if len > budget {
            out.push('…');
            break;
        }
        match escaped(c) {
            Some(entity) => out.push_str(entity),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_slacks_three_control_characters() {
        assert_eq!(
            escape_within("<!channel> & \"friends\" > 'all'", 100),
            "&lt;!channel&gt; &amp; \"friends\" &gt; 'all'"
        );
    }

    #[test]
    fn a_cut_never_splits_an_entity_and_stays_within_the_limit() {
        let cut = escape_within("aaaa&&&&", 10);
        assert_eq!(cut, "aaaa&amp;…");
        assert!(cut.chars().count() <= 10);
        let exact = escape_within("aaaa&", 9);
        assert_eq!(exact, "aaaa&amp;");
    }

    #[test]
    fn a_long_multibyte_title_fits_the_header_limit() {
        let cut = escape_within(&"ü".repeat(500), HEADER_MAX);
        assert_eq!(cut.chars().count(), HEADER_MAX);
        assert!(cut.ends_with('…'));
    }
}
