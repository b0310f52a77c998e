//! Runs of digits, read as cards (Luhn-valid, 13 to 19 digits) and, once cards are blanked, as
//! phones; the words just before a number say whether it is a reference, an amount or a phone.

use std::ops::Range;

use super::{finding, is_word, touches_word, Finding, PiiKind, Redactor, MASK};

/// Words that name a nearby number as a reference rather than a phone or a card.
const REFERENCE_WORDS: &str = "order ref reference invoice ticket case transaction txn booking \
    confirmation receipt serial version build sku id po";

/// References that carriers print in spaced groups ("1234 5678 9012"), so unlike the other
/// reference words they turn a spaced number away from phones too; only when they name the
/// number itself, though: directly or through a label word ("tracking number").
const TRACKING_WORDS: &str = "tracking parcel shipment";
const LABEL_WORDS: &str = "number no nr num code";

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
            let named = !matches!(context_before(before), Context::Phone | Context::Neutral);
            for at in first..groups.len() {
                let Some(card) = card_from(work, &groups[at..]) else {
                    continue;
                };
                if !named || stands_alone(work, &groups, at, card.end) {
                    found.push(card);
                }
            }
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
/// shorter than three digits, which keeps "+44 20 …" prefixes and dates out of cards. A card
/// parted by a wide separator is parted by it throughout, so in "ORD-3703-991309 - 030 50024850"
/// no card spans the two numbers by chance.
fn card_from(work: &str, groups: &[Range<usize>]) -> Option<Finding> {
    let start = groups.first()?.start;
    if work.as_bytes()[start] == b'0' {
        return None;
    }
    let separator = |i: usize| {
        groups
            .get(i + 1)
            .map_or("", |next| &work[groups[i].end..next.start])
    };
    let first = separator(0);
    let (mut digits, mut end) = (0, None);
    for (i, group) in groups.iter().enumerate() {
        digits += group.len();
        if digits > 19 {
            break;
        }
        if digits >= 13 && luhn_valid(&work[start..group.end]) {
            end = Some(group.end);
        }
        let next = separator(i);
        let mixed = next != first && (wide(next) || wide(first));
        if group.len() < 3 || mixed {
            break;
        }
    }
    end.map(|end| finding(PiiKind::Card, start..end))
}

/// Whether a card from `groups[at]` to `end`, in a run named a reference or an amount, is a
/// card of its own rather than a Luhn-valid stretch of a longer number, which is chance. It must
/// start the value (the run, or after a wide separator), and only an expiry date or a security
/// code may follow it in the run.
fn stands_alone(work: &str, groups: &[Range<usize>], at: usize, end: usize) -> bool {
    let starts_value = at
        .checked_sub(1)
        .is_none_or(|prev| wide(&work[groups[prev].end..groups[at].start]));
    // Three groups are enough to tell, and keep a long run linear.
    let rest: Vec<usize> = groups[at..]
        .iter()
        .filter(|g| g.start >= end)
        .take(3)
        .map(|g| g.len())
        .collect();
    starts_value && matches!(rest[..], [] | [3 | 4] | [1 | 2] | [1 | 2, 1 | 2])
}

/// A separator of more than one character (" - ", two spaces) parts two values as often as two
/// groups of one.
fn wide(separator: &str) -> bool {
    separator.chars().count() > 1
}

/// Byte length of the phone a digit chain starts with, if it is one. With "+" or "00" the
/// country code anchors it, so it is cut to the longest plausible prefix. A national number
/// must be the whole chain (a longer run is an account or reference number). An amount or a
/// tracking number is never a phone; other reference words sway only numbers written without
/// spaces, because people write phones in space-separated groups and references as one run or
/// with dashes.
fn phone_len(chain: &str, context: Context) -> Option<usize> {
    if chain.starts_with('+') {
        return international_len(chain, 8, 15);
    }
    let spaced = chain.contains(char::is_whitespace);
    let never = matches!(context, Context::Amount | Context::Tracking);
    if never || (context == Context::Reference && !spaced) || dotted_version(chain) {
        return None;
    }
    if chain.starts_with("00") {
        return international_len(chain, 10, 17);
    }
    let digits = chain.bytes().filter(u8::is_ascii_digit).count();
    let zip_plus_four = digits == 9 && chain.find('-') == Some(5);
    ((9..=12).contains(&digits) && !zip_plus_four).then_some(chain.len())
}

/// "120.0.6099.109", "10.0.22631.2861": four or more groups parted by dots alone, one of them a
/// single digit, are a version; phones written with dots ("01.23.45.67.89") have no such group.
fn dotted_version(chain: &str) -> bool {
    let groups: Vec<&str> = chain.split('.').collect();
    let numeric = |g: &&str| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit());
    groups.len() >= 4 && groups.iter().all(numeric) && groups.iter().any(|g| g.len() == 1)
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
    /// A reference that carriers print in spaced groups: a tracking or parcel number.
    Tracking,
    Amount,
    Neutral,
}

/// Looks at up to three words before a number; the nearest phone word, reference word or
/// currency decides. Another value in between ("Order 4839201734 - 020 7946 0958") owns the words
/// before it, so the look stops there.
fn context_before(before: &str) -> Context {
    // Whether only labels ("number", "#") stand between the number and the word looked at.
    let mut adjacent = true;
    for token in tail(before, 60).split_whitespace().rev().take(3) {
        if token.contains(|c: char| c.is_ascii_digit() || c == MASK) {
            return Context::Neutral;
        }
        let word = token
            .trim_matches(|c: char| !c.is_alphabetic())
            .to_lowercase();
        if let Some(context) = word_context(token, &word, adjacent) {
            return context;
        }
        adjacent &= word.is_empty() || listed(LABEL_WORDS, &word);
    }
    Context::Neutral
}

/// What one word before a number says it is, if anything. A tracking word further off than its
/// labels ("parcel not delivered, 020 …") names some other number, so it counts as a plain
/// reference word there.
fn word_context(token: &str, word: &str, adjacent: bool) -> Option<Context> {
    if token.contains(CURRENCY_SIGNS) || listed(CURRENCY_WORDS, word) {
        Some(Context::Amount)
    } else if listed(PHONE_WORDS, word) {
        Some(Context::Phone)
    } else if listed(TRACKING_WORDS, word) && adjacent {
        Some(Context::Tracking)
    } else if listed(TRACKING_WORDS, word) || listed(REFERENCE_WORDS, word) {
        Some(Context::Reference)
    } else {
        None
    }
}

fn listed(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
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
/// "#48213", "1Z999AA10123456784") or a percentage. An extension ("0958x123") is not part of
/// the number's token: the phone before it stands.
fn glued(work: &str, span: Range<usize>) -> bool {
    let mut before = work[..span.start].chars().rev();
    let mut after = work[span.end..].chars();
    let (b1, b2, a1, a2) = (before.next(), before.next(), after.next(), after.next());
    let joiner = |c: Option<char>| {
        c.is_some_and(|c| matches!(c, '-' | '_' | '/' | '\u{2010}'..='\u{2015}' | '\u{2212}'))
    };
    let extension = matches!(a1, Some('x' | 'X')) && a2.is_some_and(|c| c.is_ascii_digit());
    is_word(b1)
        || (is_word(a1) && !extension)
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
