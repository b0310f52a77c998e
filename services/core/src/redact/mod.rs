//! Redaction of personal data from everything that leaves sevloop: SEV titles and summaries,
//! exemplars shown to non-support roles, notifications, logs and dead-letter reasons.
//!
//! Detection reads a working copy of the text in which every span already decided is blanked
//! (same byte length, so offsets stay valid). Self-delimiting kinds go first: the customer's own
//! strings, emails, IBANs, IP addresses. Then dates and times are blanked, then runs of digits
//! are read as cards and, last, as phones. So a phone is judged on its own digits, never on a
//! neighbouring card, date or IP, and look-alikes are turned away by validation (Luhn, mod-97,
//! octet ranges, the IPv6 grammar) and by context words rather than by ever-tighter patterns.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Range;

use regex::Regex;

mod delimited;
mod numbers;
mod personal;

pub use numbers::luhn_valid;

/// Kinds of personal data the redactor finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PiiKind {
    Email,
    Phone,
    Card,
    Iban,
    Ip,
    Name,
    CustomerId,
}

impl PiiKind {
    /// Every kind the redactor finds.
    pub const ALL: [PiiKind; 7] = [
        PiiKind::Email,
        PiiKind::Phone,
        PiiKind::Card,
        PiiKind::Iban,
        PiiKind::Ip,
        PiiKind::Name,
        PiiKind::CustomerId,
    ];

    /// What replaces a finding of this kind in redacted text.
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::Email => "[email]",
            PiiKind::Phone => "[phone]",
            PiiKind::Card => "[card]",
            PiiKind::Iban => "[iban]",
            PiiKind::Ip => "[ip]",
            PiiKind::Name => "[name]",
            PiiKind::CustomerId => "[customer]",
        }
    }
}

/// One finding: a byte range of the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

/// The strings of the ticket's own customer, hidden wherever they appear (case-insensitive,
/// whole words).
#[derive(Debug, Clone, Copy, Default)]
pub struct Personal<'a> {
    pub name: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub email: Option<&'a str>,
}

/// Compiled once, shared (Send + Sync); cheap to call.
pub struct Redactor {
    placeholder: Regex,
    email: Regex,
    iban_start: Regex,
    ipv4: Regex,
    ipv6: Regex,
    date_or_time: Regex,
    card_chain: Regex,
    phone_chain: Regex,
}

/// Fills decided spans of the working copy. ASCII, so byte offsets and char boundaries are kept,
/// and matched by no pattern, so nothing is found twice or across a decided span.
const MASK: char = '\u{1}';

const IPV4_OCTET: &str = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";

/// An email's local part: the RFC 5322 atom characters less `=`, `/`, `?`, `|`, `{`, `}` and the
/// backtick, which in logs, URLs and markdown mark where an address starts or ends
/// ("email=jane@…"). It opens with a letter or digit and an apostrophe only joins two, as in
/// "o'brien", so quotes and markup around an address ("'jane@…'", "**jane@…**") stay outside.
const EMAIL_LOCAL: &str = r"\w(?:[\w.!#$%&*+^~-]|'\w)*";

/// Spaces that part the groups of a written number: space, no-break, figure and narrow no-break
/// space, as a class body. Not a tab: tabs part a table's columns ("12\t4999\t59988").
const SPACES: &str = r" \u{a0}\u{2007}\u{202f}";

/// Dashes that part the groups of a written number: hyphen-minus, the Unicode hyphens and dashes
/// (U+2010 to U+2015) and the minus sign, as a class body.
const DASHES: &str = r"\-\u{2010}-\u{2015}\u{2212}";

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    pub fn new() -> Self {
        let placeholders: Vec<String> = PiiKind::ALL
            .iter()
            .map(|k| regex::escape(k.placeholder()))
            .collect();
        Self {
            placeholder: pattern(&placeholders.join("|")),
            email: pattern(&format!(
                r"{EMAIL_LOCAL}@[\w-]+(?:\.[\w-]+)*\.\p{{L}}{{2,}}"
            )),
            iban_start: pattern(r"\b[A-Za-z]{2}[0-9]{2}"),
            ipv4: pattern(&format!(r"\b(?:{IPV4_OCTET}\.){{3}}{IPV4_OCTET}\b")),
            ipv6: pattern(
                r"(?:[0-9a-fA-F]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9a-fA-F]{1,4})?",
            ),
            date_or_time: pattern(concat!(
                r"\b(?:(?:19|20)[0-9]{2}[-./][0-9]{1,2}[-./][0-9]{1,2}",
                r"|[0-9]{1,2}[-./][0-9]{1,2}[-./](?:19|20)[0-9]{2}",
                r"|[0-9]{1,2}:[0-9]{2}(?::[0-9]{2})?)\b"
            )),
            card_chain: pattern(&format!(r"[0-9]+(?:{}[0-9]+)*", card_separator())),
            phone_chain: pattern(&phone_chain()),
        }
    }

    /// Findings sorted by start, non-overlapping (on overlap keep the longer / more specific one).
    pub fn find(&self, text: &str, personal: &Personal) -> Vec<Finding> {
        let mut work = text.to_owned();
        blank_matches(&mut work, &self.placeholder);
        let delimited = resolve(self.delimited(&work, personal));
        blank(&mut work, &delimited);
        blank_matches(&mut work, &self.date_or_time);
        let cards = resolve(self.cards(&work));
        blank(&mut work, &cards);
        let phones = self.phones(&work);
        let mut found = [delimited, cards, phones].concat();
        found.sort_by_key(|f| f.start);
        found
    }

    /// The text with every finding replaced by its kind's placeholder.
    ///
    /// Repeats until nothing is found: a placeholder can free a neighbour that was rejected for
    /// touching the replaced span (digits glued to an email), and the repetition makes redaction
    /// idempotent. It ends because findings never reach into placeholders, so each round hides
    /// at least one more byte of the original text.
    pub fn redact(&self, text: &str, personal: &Personal) -> String {
        let mut current = text.to_owned();
        loop {
            let findings = self.find(&current, personal);
            if findings.is_empty() {
                return current;
            }
            current = replace(&current, &findings);
        }
    }

    /// Whether `text` names the customer `personal` describes by their full name, id or email
    /// (a part of a name alone, "Will" or "May", is a word too), without looking for any
    /// pattern: cheap enough to pick, among a SEV's many customers, the few a typed note or a
    /// search names.
    pub fn names(&self, text: &str, personal: &Personal) -> bool {
        personal::names_whole(text, personal)
    }

    /// [`Redactor::redact`] for text that belongs to no particular customer (logs, reasons).
    pub fn redact_all(&self, text: &str) -> String {
        self.redact(text, &Personal::default())
    }
}

/// Between two groups of a card: one or two spaces, a dash or dot, or a dash between spaces
/// ("4539 - 1488"). A dot takes no spaces, so "Order 12345. 4539 …" stays two numbers; the wide
/// separators may part two values too, which the card check allows for.
fn card_separator() -> String {
    format!(r"(?:[{SPACES}]{{1,2}}|[.{DASHES}]|[{SPACES}][{DASHES}][{SPACES}])")
}

/// Groups of a phone, parted by one space, dash, dot or slash, some of them an area code in
/// parentheses, which may follow the digits before it directly: "+44(0)20…". Never by two
/// characters: a phone must be its whole run, and " - " or two spaces part two values as often
/// as two groups ("Order 4839201734 - 020 7946 0958").
fn phone_chain() -> String {
    let area = format!(r"\([0-9]{{1,5}}\)[{SPACES}]?");
    let separator = format!(r"[{SPACES}./{DASHES}]");
    format!(r"\+?(?:{area})?[0-9]+(?:(?:{separator}?{area}|{separator})[0-9]+)*")
}

fn pattern(source: &str) -> Regex {
    Regex::new(source).expect("built-in redaction patterns compile")
}

fn finding(kind: PiiKind, range: Range<usize>) -> Finding {
    Finding {
        kind,
        start: range.start,
        end: range.end,
    }
}

/// Keeps the longest of overlapping candidates (on equal length the kind listed first), so a name
/// inside an email or an IPv4 inside an IPv6 never splits the bigger finding.
fn resolve(mut candidates: Vec<Finding>) -> Vec<Finding> {
    candidates.sort_by_key(|f| (Reverse(f.end - f.start), f.kind, f.start));
    let mut kept: BTreeMap<usize, Finding> = BTreeMap::new();
    for c in candidates {
        // Kept spans are disjoint, so only the last one starting before `c` ends can overlap it.
        let free = kept
            .range(..c.end)
            .next_back()
            .is_none_or(|(_, k)| k.end <= c.start);
        if free {
            kept.insert(c.start, c);
        }
    }
    kept.into_values().collect()
}

fn blank_range(work: &mut String, range: Range<usize>) {
    let filler = MASK.to_string().repeat(range.len());
    work.replace_range(range, &filler);
}

fn blank(work: &mut String, findings: &[Finding]) {
    for f in findings {
        blank_range(work, f.start..f.end);
    }
}

fn blank_matches(work: &mut String, re: &Regex) {
    let ranges: Vec<Range<usize>> = re.find_iter(work).map(|m| m.range()).collect();
    for range in ranges {
        blank_range(work, range);
    }
}

fn replace(text: &str, findings: &[Finding]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in findings {
        out.push_str(&text[last..f.start]);
        out.push_str(f.kind.placeholder());
        last = f.end;
    }
    out.push_str(&text[last..]);
    out
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

fn touches_word(work: &str, span: Range<usize>) -> bool {
    is_word(work[..span.start].chars().next_back()) || is_word(work[span.end..].chars().next())
}

#[cfg(test)]
mod tests;
