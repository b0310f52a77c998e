//! The customer's own strings (name, customer id, email), found as whole words in any case, and
//! the parts of a name that are hidden alike.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

use super::{finding, is_word, Finding, Personal, PiiKind};

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
            .map(|w| w.chars().flat_map(folded).collect::<String>())
            .filter(|w| !w.is_empty()) // all marks: nothing to spell
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

/// Where `word` (folded) ends if `text` spells it, in any case and with or without accents,
/// from `pos` on.
fn spelled_at(text: &str, pos: usize, word: &str) -> Option<usize> {
    let mut expected = word.chars().peekable();
    for (offset, c) in text[pos..].char_indices() {
        // Accents written as combining marks after the word's last letter are part of it.
        if expected.peek().is_none() && !is_combining_mark(c) {
            return Some(pos + offset);
        }
        for lower in folded(c) {
            expected.next().filter(|&e| e == lower)?;
        }
    }
    expected.peek().is_none().then_some(text.len())
}

/// How a character of a name compares: lowercase, without accents (written precomposed or as
/// combining marks, which fold to nothing), with the letters that have no decomposition spelled
/// as people type them without the key ("Łukasz" is "Lukasz", "Straße" "strasse"), and the
/// typographic apostrophe read as the plain one ("O’Brien" is "O'Brien"). A customer's name
/// field and what they or an agent type rarely agree on all of these.
fn folded(c: char) -> impl Iterator<Item = char> {
    let mut buf = ['\0'; 4];
    let mut n = 0;
    let mut push = |ch: char| {
        if let Some(slot) = buf.get_mut(n) {
            *slot = ch;
            n += 1;
        }
    };
    if c.is_ascii() {
        push(c.to_ascii_lowercase());
    } else {
        decompose_canonical(c, |d| match d {
            d if is_combining_mark(d) => {}
            'ß' | 'ẞ' => "ss".chars().for_each(&mut push),
            'ł' | 'Ł' => push('l'),
            'ø' | 'Ø' => push('o'),
            'đ' | 'Đ' => push('d'),
            '’' => push('\''),
            d => d.to_lowercase().for_each(&mut push),
        });
    }
    buf.into_iter().take(n)
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

pub(super) fn personal_findings(work: &str, personal: &Personal) -> Vec<Finding> {
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
