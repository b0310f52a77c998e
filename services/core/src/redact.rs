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
use std::net::Ipv6Addr;
use std::ops::Range;

use regex::Regex;

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

const KINDS: [PiiKind; 7] = [
    PiiKind::Email,
    PiiKind::Phone,
    PiiKind::Card,
    PiiKind::Iban,
    PiiKind::Ip,
    PiiKind::Name,
    PiiKind::CustomerId,
];

impl PiiKind {
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

/// Words that name a nearby number as a reference rather than a phone or a card.
const REFERENCE_WORDS: &str = "order ref reference invoice ticket case tracking parcel shipment \
    transaction txn booking confirmation receipt serial version build sku id po";

/// Currencies: the number after them is an amount.
const CURRENCY_WORDS: &str = "usd eur gbp chf jpy inr idr rp";
const CURRENCY_SIGNS: [char; 5] = ['$', '€', '£', '¥', '₹'];

/// Words that say a number is a phone; nearer than a reference word, they win.
const PHONE_WORDS: &str =
    "call phone tel telephone mobile cell ring text sms whatsapp contact reach fax landline";

const IPV4_OCTET: &str = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactor {
    pub fn new() -> Self {
        let placeholders: Vec<String> = KINDS
            .iter()
            .map(|k| regex::escape(k.placeholder()))
            .collect();
        Self {
            placeholder: pattern(&placeholders.join("|")),
            email: pattern(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.\p{L}{2,}"),
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
            card_chain: pattern(r"[0-9]+(?:[ \u{a0}-][0-9]+)*"),
            phone_chain: pattern(concat!(
                r"\+?(?:\([0-9]{1,5}\)[ \u{a0}]?)?[0-9]+",
                r"(?:[-./ \u{a0}](?:\([0-9]{1,5}\)[ \u{a0}]?)?[0-9]+)*"
            )),
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

    /// [`Redactor::redact`] for text that belongs to no particular customer (logs, reasons).
    pub fn redact_all(&self, text: &str) -> String {
        self.redact(text, &Personal::default())
    }

    /// Candidates of the kinds whose extent the pattern itself fixes, overlapping each other.
    fn delimited(&self, work: &str, personal: &Personal) -> Vec<Finding> {
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

    fn ipv6s<'a>(&'a self, work: &'a str) -> impl Iterator<Item = Finding> + 'a {
        self.ipv6
            .find_iter(work)
            .filter(|m| !touches_word(work, m.range()))
            .filter(|m| m.as_str().contains(|c: char| c.is_ascii_hexdigit()))
            .filter(|m| m.as_str().parse::<Ipv6Addr>().is_ok())
            .map(|m| finding(PiiKind::Ip, m.range()))
    }

    fn cards(&self, work: &str) -> Vec<Finding> {
        let mut found = Vec::new();
        for chain in self.card_chain.find_iter(work) {
            if touches_word(work, chain.range()) {
                continue;
            }
            let groups = digit_runs(work, chain.range());
            let before = &work[..chain.start()];
            // "+4539…" is a phone written without spaces, whatever its checksum.
            let first = usize::from(before.ends_with('+'));
            // Within a longer run named a reference or an amount (a tracking number), a
            // Luhn-valid stretch is chance, not a card.
            let context = context_before(before);
            let whole_only = matches!(context, Context::Reference | Context::Amount);
            let cards = (first..groups.len()).filter_map(|i| card_from(work, &groups[i..]));
            let whole = |c: &Finding| (c.start, c.end) == (chain.start(), chain.end());
            found.extend(cards.filter(|c| !whole_only || whole(c)));
        }
        found
    }

    fn phones(&self, work: &str) -> Vec<Finding> {
        self.phone_chain
            .find_iter(work)
            .filter(|chain| !glued(work, chain.range()))
            .filter_map(|chain| {
                let len = phone_len(chain.as_str(), context_before(&work[..chain.start()]))?;
                Some(finding(PiiKind::Phone, chain.start()..chain.start() + len))
            })
            .collect()
    }
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

/// A customer's string as lowercase words. It matches in any case, as whole words, with any
/// whitespace between the words. Matched by hand rather than by a regex built per call, which
/// would cost more than all the other detectors together.
struct Literal {
    kind: PiiKind,
    words: Vec<String>,
}

impl Literal {
    fn new<'a>(kind: PiiKind, words: impl Iterator<Item = &'a str>) -> Option<Self> {
        let words: Vec<String> = words
            .map(|w| w.chars().flat_map(folded).collect())
            .collect();
        (!words.is_empty()).then_some(Self { kind, words })
    }

    /// Where the literal ends if it starts at `start`, a char boundary of `text`.
    fn end_at(&self, text: &str, start: usize) -> Option<usize> {
        let open = self.words.first()?.chars().next();
        if is_word(open) && is_word(text[..start].chars().next_back()) {
            return None;
        }
        let mut pos = spelled_at(text, start, self.words.first()?)?;
        for word in &self.words[1..] {
            let gap: usize = text[pos..]
                .chars()
                .take_while(|c| c.is_whitespace())
                .map(char::len_utf8)
                .sum();
            pos = spelled_at(text, pos + gap, word).filter(|_| gap > 0)?;
        }
        let close = self.words.last()?.chars().next_back();
        let whole = !(is_word(close) && is_word(text[pos..].chars().next()));
        whole.then_some(pos)
    }
}

/// Where `word` (lowercase) ends if `text` spells it, in any case, from `pos` on.
fn spelled_at(text: &str, pos: usize, word: &str) -> Option<usize> {
    let mut expected = word.chars().peekable();
    for (offset, c) in text[pos..].char_indices() {
        if expected.peek().is_none() {
            return Some(pos + offset);
        }
        for lower in folded(c) {
            expected.next().filter(|&e| e == lower)?;
        }
    }
    expected.peek().is_none().then_some(text.len())
}

/// Lowercase, with the typographic apostrophe read as the plain one: "O’Brien" is "O'Brien".
fn folded(c: char) -> impl Iterator<Item = char> {
    c.to_lowercase().map(|l| if l == '’' { '\'' } else { l })
}

fn personal_literals(personal: &Personal) -> Vec<Literal> {
    let mut literals = personal.name.map(name_literals).unwrap_or_default();
    let strings = [
        (PiiKind::CustomerId, personal.customer_id),
        (PiiKind::Email, personal.email),
    ];
    for (kind, value) in strings {
        literals.extend(value.and_then(|v| Literal::new(kind, v.split_whitespace())));
    }
    literals
}

/// The full name, then every word and hyphenated part of at least two letters, so
/// "Mary-Jane O'Neil" hides "Mary-Jane O'Neil", "Mary-Jane", "Jane" and "O'Neil" alike.
fn name_literals(name: &str) -> Vec<Literal> {
    let words: Vec<&str> = name
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect();
    let parts = words
        .iter()
        .flat_map(|w| std::iter::once(*w).chain(w.split('-')));
    let parts = parts.filter(|p| p.chars().filter(|c| c.is_alphabetic()).count() >= 2);
    let full = Literal::new(PiiKind::Name, words.iter().copied());
    let parts = parts.filter_map(|p| Literal::new(PiiKind::Name, std::iter::once(p)));
    full.into_iter().chain(parts).collect()
}

fn personal_findings(work: &str, personal: &Personal) -> Vec<Finding> {
    let literals = personal_literals(personal);
    if literals.is_empty() {
        return Vec::new();
    }
    let mut found = Vec::new();
    for (start, _) in work.char_indices() {
        let ends = literals
            .iter()
            .filter_map(|l| Some((l.kind, l.end_at(work, start)?)));
        found.extend(ends.map(|(kind, end)| finding(kind, start..end)));
    }
    found
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
fn iban_valid(compact: &str) -> bool {
    let (head, tail) = compact.split_at(4.min(compact.len()));
    let remainder = tail.chars().chain(head.chars()).try_fold(0u32, |acc, c| {
        let value = c.to_digit(36)?;
        let shift = if value < 10 { 10 } else { 100 };
        Some((acc * shift + value) % 97)
    });
    remainder == Some(1)
}

/// Luhn checksum of the digits in `s` (non-digits ignored); false for fewer than 12 digits.
// `u32::is_multiple_of` needs Rust 1.87; the workspace promises 1.85.
#[allow(clippy::manual_is_multiple_of)]
pub fn luhn_valid(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    // Every second digit from the right is doubled, and a two-digit result counts as its sum.
    let doubled = |(i, &d): (usize, &u32)| match (i % 2, d * 2) {
        (0, _) => d,
        (_, x) if x > 9 => x - 9,
        (_, x) => x,
    };
    let sum: u32 = digits.iter().rev().enumerate().map(doubled).sum();
    digits.len() >= 12 && sum % 10 == 0
}

/// The longest card starting at the first group: 13 to 19 digits passing Luhn, not starting with
/// 0 (no issuer does, while "00" opens international phone numbers). Only the last group may be
/// shorter than three digits, which keeps "+44 20 …" prefixes and dates out of cards.
fn card_from(work: &str, groups: &[Range<usize>]) -> Option<Finding> {
    let start = groups.first()?.start;
    if work.as_bytes()[start] == b'0' {
        return None;
    }
    let (mut digits, mut end) = (0, None);
    for group in groups {
        digits += group.len();
        if digits > 19 {
            break;
        }
        if digits >= 13 && luhn_valid(&work[start..group.end]) {
            end = Some(group.end);
        }
        if group.len() < 3 {
            break;
        }
    }
    end.map(|end| finding(PiiKind::Card, start..end))
}

/// Byte length of the phone a digit chain starts with, if it is one. With "+" or "00" the
/// country code anchors it, so it is cut to the longest plausible prefix. A national number
/// must be the whole chain (a longer run is an account or reference number). An amount is never
/// a phone; a reference word sways only numbers written without spaces, because people write
/// phones in space-separated groups and references as one run or with dashes.
fn phone_len(chain: &str, context: Context) -> Option<usize> {
    if chain.starts_with('+') {
        return international_len(chain, 8, 15);
    }
    let spaced = chain.contains([' ', '\u{a0}']);
    if context == Context::Amount || (context == Context::Reference && !spaced) {
        return None;
    }
    if chain.starts_with("00") {
        return international_len(chain, 10, 17);
    }
    let digits = chain.bytes().filter(u8::is_ascii_digit).count();
    let zip_plus_four = digits == 9 && chain.find('-') == Some(5);
    ((9..=12).contains(&digits) && !zip_plus_four).then_some(chain.len())
}

fn international_len(chain: &str, min: usize, max: usize) -> Option<usize> {
    let bytes = chain.as_bytes();
    let (mut digits, mut end) = (0, None);
    for (i, _) in bytes.iter().enumerate().filter(|(_, b)| b.is_ascii_digit()) {
        digits += 1;
        if digits > max {
            break;
        }
        let run_ends = bytes.get(i + 1).is_none_or(|n| !n.is_ascii_digit());
        if run_ends && digits >= min {
            end = Some(i + 1);
        }
    }
    end
}

/// What the words just before a number say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Phone,
    Reference,
    Amount,
    Neutral,
}

/// Looks at up to three words before a number; the nearest phone word, reference word or
/// currency decides. Another value in between ("Order 4839201734 - 020 7946 0958") owns the words
/// before it, so the look stops there.
fn context_before(before: &str) -> Context {
    let is_in = |list: &str, word: &str| list.split_whitespace().any(|w| w == word);
    for token in tail(before, 60).split_whitespace().rev().take(3) {
        if token.contains(|c: char| c.is_ascii_digit() || c == MASK) {
            return Context::Neutral;
        }
        let word = token
            .trim_matches(|c: char| !c.is_alphabetic())
            .to_lowercase();
        if token.contains(CURRENCY_SIGNS) || is_in(CURRENCY_WORDS, &word) {
            return Context::Amount;
        }
        if is_in(PHONE_WORDS, &word) {
            return Context::Phone;
        }
        if is_in(REFERENCE_WORDS, &word) {
            return Context::Reference;
        }
    }
    Context::Neutral
}

/// The last `max` bytes or so of `s`, so reading context stays linear in the text's length.
fn tail(s: &str, max: usize) -> &str {
    let from = s.len().saturating_sub(max);
    let from = (from..=s.len())
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(s.len());
    &s[from..]
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

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

fn touches_word(work: &str, span: Range<usize>) -> bool {
    is_word(work[..span.start].chars().next_back()) || is_word(work[span.end..].chars().next())
}

/// True when a run of digits belongs to a larger token: an identifier ("TRK-4829-2291",
/// "#48213", "1Z999AA10123456784") or a percentage.
fn glued(work: &str, span: Range<usize>) -> bool {
    let mut before = work[..span.start].chars().rev();
    let mut after = work[span.end..].chars();
    let (b1, b2, a1, a2) = (before.next(), before.next(), after.next(), after.next());
    let joiner = |c: Option<char>| matches!(c, Some('-' | '_' | '/'));
    touches_word(work, span)
        || b1 == Some('#')
        || a1 == Some('%')
        || (joiner(b1) && is_word(b2))
        || (joiner(a1) && is_word(a2))
}

fn digit_runs(work: &str, span: Range<usize>) -> Vec<Range<usize>> {
    let bytes = work.as_bytes();
    let mut runs = Vec::new();
    let mut i = span.start;
    while i < span.end {
        let len = bytes[i..span.end]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if len > 0 {
            runs.push(i..i + len);
        }
        i += len.max(1);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn redactor() -> &'static Redactor {
        static REDACTOR: OnceLock<Redactor> = OnceLock::new();
        REDACTOR.get_or_init(Redactor::new)
    }

    fn kinds(text: &str, personal: &Personal) -> Vec<(PiiKind, String)> {
        let found = redactor().find(text, personal);
        found
            .iter()
            .map(|f| (f.kind, text[f.start..f.end].to_string()))
            .collect()
    }

    /// A Luhn-valid number: `body` followed by its check digit.
    fn with_check_digit(body: &str) -> String {
        (0..10)
            .map(|d| format!("{body}{d}"))
            .find(|n| luhn_valid(n))
            .expect("one check digit fits")
    }

    #[test]
    fn each_kind_is_found_and_replaced_by_its_placeholder() {
        let cases = [
            (
                "mail Jane.Doe+tix@Mail.Example.CO.UK now",
                "mail [email] now",
            ),
            ("card 4539 1488 0343 6467 twice", "card [card] twice"),
            ("card 4539-1488-0343-6467.", "card [card]."),
            ("amex 378282246310005 ok", "amex [card] ok"),
            (
                "iban GB82 WEST 1234 5698 7654 32, thanks",
                "iban [iban], thanks",
            ),
            ("iban de89370400440532013000", "iban [iban]"),
            (
                "from 192.168.0.17:8443 and 2001:db8::8a2e:370:7334",
                "from [ip]:8443 and [ip]",
            ),
            (
                "full 2001:0db8:85a3:0000:0000:8a2e:0370:7334 and ::ffff:192.0.2.1",
                "full [ip] and [ip]",
            ),
            (
                "call +44 20 7946 0958 or (202) 555-0143",
                "call [phone] or [phone]",
            ),
            (
                "on 0044 20 7946 0958, +1-202-555-0143, +91 98765 43210",
                "on [phone], [phone], [phone]",
            ),
            (
                "ring 020 7946 0958 / 202.555.0143 / 01 23 45 67 89",
                "ring [phone] / [phone] / [phone]",
            ),
            (
                "mobile 07700 900123, +44 (0)20 7946 0958",
                "mobile [phone], [phone]",
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(redactor().redact_all(text), expected, "{text}");
        }
    }

    #[test]
    fn the_customers_own_strings_are_hidden_wherever_they_appear() {
        let personal = Personal {
            name: Some("Mary-Jane O'Neil"),
            customer_id: Some("CUST-00042"),
            email: Some("mj@corp.example"),
        };
        let text =
            "mary-jane o'neil (cust-00042): JANE here, O’Neil too; Janet is not; MJ@corp.example";
        assert_eq!(
            redactor().redact(text, &personal),
            "[name] ([customer]): [name] here, [name] too; Janet is not; [email]"
        );
    }

    #[test]
    fn name_parts_shorter_than_two_letters_are_left_alone() {
        let personal = Personal {
            name: Some("J. R. Hartley"),
            ..Personal::default()
        };
        assert_eq!(
            redactor().redact("J wrote to hartley", &personal),
            "J wrote to [name]"
        );
    }

    #[test]
    fn luhn_accepts_valid_numbers_and_rejects_altered_or_short_ones() {
        assert!(luhn_valid("4539 1488 0343 6467"));
        assert!(luhn_valid("378282246310005"));
        assert!(!luhn_valid("4539 1488 0343 6468"));
        assert!(!luhn_valid("1234567890123456"));
        assert!(luhn_valid(&with_check_digit("12345678901")));
        assert!(luhn_valid("000000000000"));
        assert!(!luhn_valid("00000000000"), "11 digits are too few");
        assert!(!luhn_valid("0"));
    }

    #[test]
    fn iban_check_digits_must_satisfy_mod_97() {
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("DE89370400440532013000"));
        assert!(iban_valid("fr1420041010050500013m02606"));
        assert!(!iban_valid("GB83WEST12345698765432"));
        assert!(!iban_valid("DE89370400440532013001"));
        assert_eq!(
            kinds("GB83 WEST 1234 5698 7654 32", &Personal::default()),
            vec![]
        );
    }

    #[test]
    fn a_sixteen_digit_number_failing_luhn_is_neither_card_nor_phone() {
        let text = "ref 4539 1488 0343 6468 and 4539148803436468";
        assert_eq!(redactor().redact_all(text), text);
    }

    #[test]
    fn overlapping_candidates_keep_the_longer_finding() {
        let personal = Personal {
            name: Some("Jane Doe"),
            ..Personal::default()
        };
        assert_eq!(
            kinds("write jane.doe@example.com", &personal),
            vec![(PiiKind::Email, "jane.doe@example.com".into())]
        );
        assert_eq!(
            kinds("to GB82 WEST 1234 5698 7654 32", &Personal::default()),
            vec![(PiiKind::Iban, "GB82 WEST 1234 5698 7654 32".into())]
        );
        assert_eq!(
            kinds("::ffff:192.0.2.1", &Personal::default()),
            vec![(PiiKind::Ip, "::ffff:192.0.2.1".into())]
        );
    }

    #[test]
    fn a_card_and_a_phone_in_one_run_of_digits_are_told_apart() {
        assert_eq!(
            redactor().redact_all("+44 20 7946 0958 4539 1488 0343 6467"),
            "[phone] [card]"
        );
        assert_eq!(
            redactor().redact_all("4539 1488 0343 6467 exp 12 26"),
            "[card] exp 12 26"
        );
    }

    #[test]
    fn text_without_personal_data_comes_back_unchanged() {
        let texts = [
            "Order 4839201734 has not arrived",
            "order #A-99812, tracking 1Z999AA10123456784 and TRK-4829-2291",
            "ticket ZD-48213 reopened on 2024-01-03 at 14:52:10 (03/01/2024)",
            "charged $1,234.56 and € 20.00 and 1.234,56 EUR, 12.5% more",
            "after v2.3.1 and 1.2.3.4-beta, build 22631.2861, version 10.12.14.1234",
            "postcodes SW1A 1AA, 75008, 90210-1234; PIN 1234; code 482913",
            "2024-01-03 14:52 and 03.01.2024 09:05",
            "std::vector and Foo::Bar are C++, :: too",
        ];
        for text in texts {
            assert_eq!(redactor().redact_all(text), text);
        }
    }

    #[test]
    fn context_words_decide_between_a_reference_and_a_phone() {
        let cases = [
            ("invoice 4839201734", "invoice 4839201734"),
            ("order number is 4839201734", "order number is 4839201734"),
            ("SKU 123-456-789", "SKU 123-456-789"),
            ("order late, call 4839201734", "order late, call [phone]"),
            ("4839201734", "[phone]"),
            ("Re ticket: 020 7946 0958", "Re ticket: [phone]"),
            (
                "Order 4839201734 - 020 7946 0958",
                "Order 4839201734 - [phone]",
            ),
            ("paid € 123 456 789,00", "paid € 123 456 789,00"),
            ("call 030/1234567", "call [phone]"),
        ];
        for (text, expected) in cases {
            assert_eq!(redactor().redact_all(text), expected, "{text}");
        }
    }

    #[test]
    fn placeholders_are_never_redacted_again() {
        let personal = Personal {
            name: Some("Email Card"),
            customer_id: Some("phone"),
            email: None,
        };
        let text = "[email] [card] [phone]";
        assert_eq!(redactor().redact(text, &personal), text);
        assert_eq!(redactor().redact("email me", &personal), "[name] me");
    }

    #[test]
    fn digits_glued_to_an_email_are_redacted_on_a_second_pass() {
        assert_eq!(
            redactor().redact_all("x@example.com4539148803436467"),
            "[email][card]"
        );
    }

    #[test]
    fn utf8_text_keeps_findings_on_char_boundaries() {
        let text = "Zoë 🎉 josé@exämple.com ☎+44 20 7946 0958 — Müller, 4539 1488 0343 6467 ✓";
        let personal = Personal {
            name: Some("Zoë Müller"),
            ..Personal::default()
        };
        let found = redactor().find(text, &personal);
        assert_eq!(found.len(), 5, "{found:?}");
        assert!(found
            .iter()
            .all(|f| text.is_char_boundary(f.start) && text.is_char_boundary(f.end)));
        assert_eq!(
            redactor().redact(text, &personal),
            "[name] 🎉 [email] ☎[phone] — [name], [card] ✓"
        );
    }

    fn filler() -> impl Strategy<Value = String> {
        // Digits are left out (a number one space away is read as part of the run), and so are
        // currency signs, which rightly make the number next to them an amount.
        let left_out = |c: char| c.is_ascii_digit() || "$€£¥₹".contains(c);
        "\\PC{0,40}".prop_map(move |s| s.replace(left_out, ""))
    }

    fn email() -> impl Strategy<Value = String> {
        "[A-Za-z][A-Za-z0-9._+-]{0,12}@[A-Za-z][A-Za-z0-9-]{0,8}(\\.[A-Za-z]{2,8}){0,2}\\.[A-Za-z]{2,6}"
    }

    fn card() -> impl Strategy<Value = String> {
        let body = (1u8..10, prop::collection::vec(0u8..10, 11..=17));
        (body, prop_oneof![Just(""), Just(" "), Just("-")]).prop_map(|((first, rest), sep)| {
            let body: String = std::iter::once(first)
                .chain(rest)
                .map(|d| char::from(b'0' + d))
                .collect();
            let number = with_check_digit(&body);
            let groups: Vec<&str> = number
                .as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap_or_default())
                .collect();
            groups.join(sep)
        })
    }

    fn phone() -> impl Strategy<Value = String> {
        let formats = [
            "+44 20 #### ####",
            "+1-###-###-####",
            "+33 # ## ## ## ##",
            "+49 30 #######",
            "0044 20 #### ####",
            "+91 ##### #####",
            "+1 (###) ###-####",
            "+81 3-####-####",
            "0## #### ####",
            "(###) ###-####",
            "###-###-####",
            "###.###.####",
            "030 ########",
            "0# ## ## ## ##",
            "07### ######",
            "##########",
        ];
        (
            prop::sample::select(formats.to_vec()),
            prop::collection::vec(0u8..10, 12),
        )
            .prop_map(|(format, digits)| {
                let mut digits = digits.into_iter();
                format
                    .chars()
                    .map(|c| match c {
                        '#' => char::from(b'0' + digits.next().unwrap_or(5)),
                        c => c,
                    })
                    .collect()
            })
    }

    proptest! {
        #[test]
        fn redaction_never_panics_and_findings_sit_on_char_boundaries(
            text in any::<String>(),
            name in any::<String>(),
            id in any::<String>(),
        ) {
            let personal = Personal { name: Some(&name), customer_id: Some(&id), email: Some(&id) };
            for f in redactor().find(&text, &personal) {
                prop_assert!(f.start < f.end);
                prop_assert!(text.is_char_boundary(f.start) && text.is_char_boundary(f.end));
            }
            redactor().redact(&text, &personal);
        }

        #[test]
        fn planted_emails_cards_and_phones_never_survive_redaction(
            before in filler(),
            planted in prop_oneof![email(), card(), phone()],
            after in filler(),
        ) {
            let text = format!("{before} {planted} {after}");
            let redacted = redactor().redact_all(&text);
            prop_assert!(!redacted.contains(&planted), "{redacted}");
        }

        #[test]
        fn redacting_twice_equals_redacting_once(
            text in prop_oneof!["\\PC{0,200}", "[0-9a-fA-F @.:+()#%/-]{0,120}"],
        ) {
            let personal = Personal { name: Some("Ada Lovelace"), customer_id: Some("42"), email: None };
            let once = redactor().redact(&text, &personal);
            prop_assert_eq!(redactor().redact(&once, &personal), once);
        }

        #[test]
        fn lowercase_words_and_spaces_come_back_unchanged(text in "[a-z ]{0,200}") {
            prop_assert_eq!(redactor().redact_all(&text), text);
        }
    }
}
