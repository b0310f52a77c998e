//! The customer's own strings (name, customer id, email), found as whole words in any case, and
//! the parts of a name that are hidden alike.

use unicode_normalization::char::{decompose_canonical, is_combining_mark};

use super::{finding, is_word, Finding, Personal, PiiKind};

/// A customer's string as lowercase words. It matches in any case, as whole words, with any
/// whitespace between the words. Matched by hand rather than by a regex built per call, which
/// would cost more than all the other detectors together.
struct Literal {
    kind: PiiKind,
    words: Vec<Word>,
}

/// A word of a literal, folded as [`folded`] does; `accents` when the text's accents may differ
/// from it.
struct Word {
    text: String,
    accents: bool,
}

impl Word {
    /// With `alone`, a word of fewer than four letters keeps its accents: folded, the name "Tô"
    /// or "Đỗ" on its own would be the words "to" and "do". In a full name of several words it
    /// folds: "To Lan" is her name, typed without accents.
    fn new(word: &str, alone: bool) -> Option<Word> {
        let text: String = word.chars().flat_map(|c| folded(c, true)).collect();
        let exact: String = word.chars().flat_map(|c| folded(c, false)).collect();
        let accents = !alone || text.chars().count() >= 4 || text == exact;
        let text = if accents { text } else { exact };
        // All marks: nothing to spell.
        (!text.is_empty()).then_some(Word { text, accents })
    }
}

impl Literal {
    fn new<'a>(kind: PiiKind, words: impl ExactSizeIterator<Item = &'a str>) -> Option<Self> {
        let alone = words.len() == 1;
        let words: Vec<Word> = words.filter_map(|w| Word::new(w, alone)).collect();
        (!words.is_empty()).then_some(Self { kind, words })
    }

    /// Where the literal ends if it starts at `start`, a char boundary of `text`.
    fn end_at(&self, text: &str, start: usize) -> Option<usize> {
        let open = self.words.first()?.text.chars().next();
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
        let close = self.words.last()?.text.chars().next_back();
        let whole = !(is_word(close) && is_word(text[pos..].chars().next()));
        whole.then_some(pos)
    }
}

/// Where `word` ends if `text` spells it, in any case (and with or without accents where the
/// word allows), from `pos` on.
fn spelled_at(text: &str, pos: usize, word: &Word) -> Option<usize> {
    let mut expected = word.text.chars().peekable();
    for (offset, c) in text[pos..].char_indices() {
        // Accents written as combining marks after the word's last letter are part of it.
        if expected.peek().is_none() && !(word.accents && is_combining_mark(c)) {
            return Some(pos + offset);
        }
        for lower in folded(c, word.accents) {
            expected.next().filter(|&e| e == lower)?;
        }
    }
    expected.peek().is_none().then_some(text.len())
}

/// How a character of a name compares: lowercase, with the typographic apostrophe read as the
/// plain one ("O’Brien" is "O'Brien"), and with `accents`, without them (written precomposed
/// or as combining marks, which fold to nothing) and with the letters that have no
/// decomposition spelled as people type them without the key ("Łukasz" is "Lukasz", "Straße"
/// "strasse"). A customer's name field and what they or an agent type rarely agree on these.
fn folded(c: char, accents: bool) -> impl Iterator<Item = char> {
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
    } else if !accents {
        match c {
            '’' => push('\''),
            c => c.to_lowercase().for_each(&mut push),
        }
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

/// The customer's full name, id and email: what says who they are on its own.
fn whole_literals(personal: &Personal) -> Vec<Literal> {
    let name = personal
        .name
        .and_then(|n| Literal::new(PiiKind::Name, name_words(n).into_iter()));
    let strings = [
        (PiiKind::CustomerId, personal.customer_id),
        (PiiKind::Email, personal.email),
    ];
    let strings = strings.into_iter().filter_map(|(kind, value)| {
        let words: Vec<&str> = value?.split_whitespace().collect();
        Literal::new(kind, words.into_iter())
    });
    name.into_iter().chain(strings).collect()
}

/// The words of a name, without the punctuation around them.
fn name_words(name: &str) -> Vec<&str> {
    name.split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect()
}

/// Every word and hyphenated part of the name of at least two letters, so "Mary-Jane O'Neil"
/// hides "Mary-Jane", "Jane" and "O'Neil" alike (the full name is a whole literal).
fn part_literals(name: &str) -> Vec<Literal> {
    let words = name_words(name);
    let parts = words
        .iter()
        .flat_map(|w| std::iter::once(*w).chain(w.split('-')));
    let parts = parts.filter(|p| p.chars().filter(|c| c.is_alphabetic()).count() >= 2);
    parts
        .filter_map(|p| Literal::new(PiiKind::Name, std::iter::once(p)))
        .collect()
}

pub(super) fn personal_findings(work: &str, personal: &Personal) -> Vec<Finding> {
    let mut literals = whole_literals(personal);
    literals.extend(personal.name.map(part_literals).unwrap_or_default());
    findings_of(work, &literals)
}

/// Whether `text` holds the customer's full name, id or email (a part of a name alone is not
/// enough: "Will" or "May" are words too).
pub(super) fn names_whole(text: &str, personal: &Personal) -> bool {
    !findings_of(text, &whole_literals(personal)).is_empty()
}

fn findings_of(work: &str, literals: &[Literal]) -> Vec<Finding> {
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
