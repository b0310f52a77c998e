//! Runs of digits, read as cards (Luhn-valid, 13 to 19 digits) and, once cards are blanked, as
//! phones; the words just before a number say whether it is a reference, an amount or a phone.

use std::ops::Range;

use super::{finding, is_word, touches_word, Finding, PiiKind, Redactor, MASK};

/// Words that name a nearby number as a reference rather than a phone or a card.
const REFERENCE_WORDS: &str = "order ref reference invoice ticket case tracking parcel shipment \
    transaction txn booking confirmation receipt serial version build sku id po";

/// Currencies: the number after them is an amount.
const CURRENCY_WORDS: &str = "usd eur gbp chf jpy inr idr rp";
const CURRENCY_SIGNS: [char; 5] = ['$', '€', '£', '¥', '₹'];

/// Words that say a number is a phone; nearer than a reference word, they win.
const PHONE_WORDS: &str =
    "call phone tel telephone mobile cell ring text sms whatsapp contact reach fax landline";

impl Redactor {
    pub(super) fn cards(&self, work: &str) -> Vec<Finding> {
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

    pub(super) fn phones(&self, work: &str) -> Vec<Finding> {
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
