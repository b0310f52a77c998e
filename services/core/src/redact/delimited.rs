//! The kinds whose extent the pattern itself fixes, gathered in one pass: the customer's own
//! strings (found in `personal.rs`), emails, IBANs (checked by mod-97) and IPv4 and IPv6
//! addresses (versions that merely contain one turned away).

use std::net::Ipv6Addr;
use std::ops::Range;

use super::personal::personal_findings;
use super::{finding, touches_word, Finding, Personal, PiiKind, Redactor, MASK};

impl Redactor {
    /// Candidates of the kinds whose extent the pattern itself fixes, overlapping each other.
    pub(super) fn delimited(&self, work: &str, personal: &Personal) -> Vec<Finding> {
        let mut found = personal_findings(work, personal);
        // A customer string may contain anything, even the mask; it must not reach into a blank.
        found.retain(|f| !work[f.start..f.end].contains(MASK));
        let emails = self
            .email
            .find_iter(work)
            .map(|m| finding(PiiKind::Email, m.range()));
        found.extend(emails);
        found.extend(self.ibans(work));
        found.extend(self.ipv4s(work));
        found.extend(self.ipv6s(work));
        found
    }

    fn ibans<'a>(&'a self, work: &'a str) -> impl Iterator<Item = Finding> + 'a {
        self.iban_start.find_iter(work).filter_map(|m| {
            iban_end(work, m.start()).map(|end| finding(PiiKind::Iban, m.start()..end))
        })
    }

    fn ipv4s<'a>(&'a self, work: &'a str) -> impl Iterator<Item = Finding> + 'a {
        self.ipv4
            .find_iter(work)
            .filter(|m| !version_like(work, m.range()))
            .map(|m| finding(PiiKind::Ip, m.range()))
    }

    fn ipv6s(&self, work: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(m) = self.ipv6.find_at(work, at) {
            at = m.end();
            if touches_word(work, m.range()) {
                // In "ip:2001:db8::1" or "host:::1" the match takes the colon ending the label
                // for an empty first group; the address may start just after it.
                if m.as_str().starts_with(':') {
                    at = m.start() + 1;
                }
                continue;
            }
            let hex = m.as_str().contains(|c: char| c.is_ascii_hexdigit());
            if hex && m.as_str().parse::<Ipv6Addr>().is_ok() {
                found.push(finding(PiiKind::Ip, m.range()));
            }
        }
        found
    }
}

/// End of the longest IBAN starting at `start`, written as one block or in groups of four
/// (the last may be shorter) split by single spaces: 15 to 34 characters that pass mod-97.
fn iban_end(work: &str, start: usize) -> Option<usize> {
    let bytes = work.as_bytes();
    let (mut compact, mut pos, mut end) = (String::new(), start, None);
    loop {
        let len = bytes[pos..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if pos != start && len > 4 {
            return end;
        }
        compact.push_str(&work[pos..pos + len]);
        pos += len;
        if (15..=34).contains(&compact.len()) && iban_valid(&compact) {
            end = Some(pos);
        }
        let grouped = len == 4 && compact.len() < 34;
        match (bytes.get(pos), bytes.get(pos + 1)) {
            (Some(b' '), Some(next)) if grouped && next.is_ascii_alphanumeric() => pos += 1,
            _ => return end,
        }
    }
}

/// ISO 13616: with the first four characters moved to the end and letters read as 10..=35,
/// the number is 1 modulo 97.
pub(super) fn iban_valid(compact: &str) -> bool {
    let (head, tail) = compact.split_at(4.min(compact.len()));
    let remainder = tail.chars().chain(head.chars()).try_fold(0u32, |acc, c| {
        let value = c.to_digit(36)?;
        let shift = if value < 10 { 10 } else { 100 };
        Some((acc * shift + value) % 97)
    });
    remainder == Some(1)
}

/// "1.2.3.4.5" and "1.2.3.4-beta" are versions that merely contain an address-shaped part.
fn version_like(work: &str, span: Range<usize>) -> bool {
    let before = work[..span.start].chars().next_back();
    let mut after = work[span.end..].chars();
    let (a1, a2) = (after.next(), after.next());
    before == Some('.')
        || (a1 == Some('.') && a2.is_some_and(|c| c.is_ascii_digit()))
        || (a1 == Some('-') && a2.is_some_and(char::is_alphabetic))
}
