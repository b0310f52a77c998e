//! Text features: the same tantivy analyzer the search index uses (tokenize, lowercase, drop stop
//! words, stem), after masking the parts of a ticket that differ between otherwise equal complaints
//! (numbers, identifiers, amounts, emails, URLs) and the customer's own name.

use std::collections::BTreeMap;

use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, StopWordFilter, TextAnalyzer,
};

mod stem;

/// Name under which the index registers [`analyzer`], so search and clustering agree on words.
pub const ANALYZER_NAME: &str = "sevloop_en";

pub const MASK_NUMBER: &str = "xnumx";
pub const MASK_EMAIL: &str = "xemailx";
pub const MASK_URL: &str = "xurlx";
pub const MASK_NAME: &str = "xnamex";

/// Whether a term is one of the mask words (kept as a feature, never shown as a label).
pub fn is_mask(term: &str) -> bool {
    [MASK_NUMBER, MASK_EMAIL, MASK_URL, MASK_NAME].contains(&term)
}

/// The analyzer shared by the index and the features.
pub fn analyzer() -> TextAnalyzer {
    base_builder().filter(stem::CachedStemmer).build()
}

/// Words that say nothing about what a complaint is about. Lucene's English list plus the
/// pronouns, auxiliaries and pleasantries of support tickets, and the pieces the tokenizer makes
/// of contractions ("can't" → "can", "t"). "not" and "no" are kept: "card not working" differs
/// from "card working".
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "of", "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this",
    "to", "was", "will", "with", "i", "me", "my", "mine", "myself", "you", "your", "yours", "we",
    "us", "our", "he", "she", "him", "her", "his", "its", "them", "am", "been", "being", "were",
    "do", "does", "did", "doing", "done", "have", "has", "had", "having", "can", "could", "would",
    "should", "shall", "may", "might", "must", "what", "which", "who", "whom", "whose", "why",
    "how", "when", "where", "so", "than", "too", "very", "just", "also", "about", "from", "up",
    "out", "any", "some", "all", "there", "here", "please", "hi", "hello", "hey", "thanks",
    "thank", "s", "t", "m", "d", "ll", "re", "ve", "im", "dont", "didnt", "cant", "get", "got",
    "getting", "want", "need", "know", "like", "one", "way", "still", "yet", "again",
];

fn base_builder() -> tantivy::tokenizer::TextAnalyzerBuilder {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser)
        .filter(StopWordFilter::remove(
            STOP_WORDS.iter().map(|w| w.to_string()),
        ))
        .dynamic()
}

/// Replaces whole whitespace-separated words that carry no complaint meaning with a mask word.
/// `personal` are the customer's own strings (name parts) to hide as well.
pub fn mask(text: &str, personal: &[&str]) -> String {
    let mut out = String::with_capacity(text.len());
    for word in text.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(mask_word(word, personal).unwrap_or(word));
    }
    out
}

fn mask_word(word: &str, personal: &[&str]) -> Option<&'static str> {
    let bare = word.trim_matches(|c: char| !c.is_alphanumeric());
    if URL_PREFIXES
        .iter()
        .any(|prefix| starts_with_ignoring_case(word, prefix))
    {
        return Some(MASK_URL);
    }
    if let Some((user, domain)) = bare.split_once('@') {
        if !user.is_empty() && domain.contains('.') {
            return Some(MASK_EMAIL);
        }
    }
    if bare.chars().any(|c| c.is_ascii_digit()) {
        return Some(MASK_NUMBER);
    }
    if is_personal(bare, personal) {
        return Some(MASK_NAME);
    }
    None
}

/// Whether `word` is one of the customer's own strings: as written in any case, in a
/// possessive ("Ada's"), or as a part of a hyphenated word ("Mary-Jane" for "Jane"). Labels
/// are built from what this leaves, so a name it misses could become a SEV title's term.
fn is_personal(word: &str, personal: &[&str]) -> bool {
    let word = ["'s", "\u{2019}s"]
        .iter()
        .find_map(|s| word.strip_suffix(s))
        .unwrap_or(word);
    let same = |a: &str, b: &str| {
        a.eq_ignore_ascii_case(b)
            || (!(a.is_ascii() && b.is_ascii()) && a.to_lowercase() == b.to_lowercase())
    };
    // Every word of every ticket comes here: a word without a hyphen is compared once.
    let parts = word.contains('-').then(|| word.split('-'));
    std::iter::once(word)
        .chain(parts.into_iter().flatten())
        .filter(|part| !part.is_empty())
        .any(|part| personal.iter().any(|p| same(p, part)))
}

/// How a word that is a URL starts (in any case).
const URL_PREFIXES: [&str; 3] = ["http://", "https://", "www."];

/// Whether `word` starts with the ASCII `prefix` in any case, without lowercasing a copy of
/// every word of every ticket.
fn starts_with_ignoring_case(word: &str, prefix: &str) -> bool {
    word.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

/// A sparse, L2-normalised term vector, ordered so that iteration is deterministic.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TermVector {
    pub weights: BTreeMap<String, f32>,
    /// A readable surface word for each stemmed term (the first one seen).
    pub surface: BTreeMap<String, String>,
}

/// Turns text into term features. Holds the analyzer so it is built once.
pub struct Featurizer {
    analyzer: TextAnalyzer,
}

impl Default for Featurizer {
    fn default() -> Self {
        Featurizer {
            analyzer: analyzer(),
        }
    }
}

impl Featurizer {
    /// Sub-linear term frequency (1 + ln tf), L2-normalised. One pass of the index's analyzer:
    /// each term's readable surface word is the text its token came from, lowercased char by
    /// char as the analyzer's LowerCaser does.
    pub fn features(&mut self, text: &str, personal: &[&str]) -> TermVector {
        let masked = mask(text, personal);
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        let mut surface = BTreeMap::new();
        let mut stream = self.analyzer.token_stream(&masked);
        while stream.advance() {
            let token = stream.token();
            *counts.entry(token.text.clone()).or_default() += 1;
            surface.entry(token.text.clone()).or_insert_with(|| {
                masked
                    .get(token.offset_from..token.offset_to)
                    .unwrap_or_default()
                    .chars()
                    .flat_map(char::to_lowercase)
                    .collect::<String>()
            });
        }
        let mut weights: BTreeMap<String, f32> = counts
            .into_iter()
            .map(|(t, n)| (t, 1.0 + (n as f32).ln()))
            .collect();
        let norm = weights.values().map(|w| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            weights.values_mut().for_each(|w| *w /= norm);
        }
        TermVector { weights, surface }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_numbers_look_alike_after_masking() {
        let mut f = Featurizer::default();
        let a = f.features("Where is order 123?", &[]);
        let b = f.features("where is ORDER #456", &[]);
        assert_eq!(a.weights, b.weights);
        assert!(a.weights.contains_key(MASK_NUMBER));
    }

    proptest! {
        #[test]
        fn url_prefixes_match_as_on_a_lowercased_copy(
            word in "(?i)(https?://|www\\.|ht|w)?[a-zA-Zé0-9./:]{0,12}"
        ) {
            for prefix in URL_PREFIXES {
                prop_assert_eq!(
                    starts_with_ignoring_case(&word, prefix),
                    word.to_ascii_lowercase().starts_with(prefix)
                );
            }
        }
    }

    #[test]
    fn emails_urls_and_the_customers_name_are_masked() {
        let masked = mask(
            "Hi, Ada here: ada@example.com, see https://x.io/a?b=1 (Ada)",
            &["Ada"],
        );
        assert_eq!(masked, "Hi, xnamex here: xemailx see xurlx xnamex");
    }

    #[test]
    fn the_customers_name_is_masked_in_any_case_possessive_or_hyphenated() {
        let masked = mask(
            "MÜLLER called: Jane's card, jane-müller's account, Müller-Lüdenscheidt, Janet",
            &["Jane", "Müller"],
        );
        assert_eq!(
            masked,
            "xnamex called: xnamex card, xnamex account, xnamex Janet"
        );
    }

    #[test]
    fn stop_words_are_dropped_and_words_stemmed() {
        let mut f = Featurizer::default();
        let v = f.features("The cards were declined", &[]);
        let terms: Vec<&str> = v.weights.keys().map(String::as_str).collect();
        assert_eq!(terms, vec!["card", "declin"]);
        assert_eq!(v.surface["declin"], "declined");
    }

    proptest! {
        #[test]
        fn masked_text_never_contains_a_digit(s in "\\PC{0,200}") {
            prop_assert!(!mask(&s, &[]).chars().any(|c| c.is_ascii_digit()));
        }

        #[test]
        fn masking_is_idempotent(s in "\\PC{0,200}") {
            let once = mask(&s, &["ada"]);
            prop_assert_eq!(mask(&once, &["ada"]), once);
        }

        #[test]
        fn masking_keeps_every_word_in_place(s in "\\PC{0,200}") {
            prop_assert_eq!(mask(&s, &[]).split_whitespace().count(), s.split_whitespace().count());
        }

        #[test]
        fn tickets_differing_only_in_identifiers_look_alike(
            words in proptest::collection::vec("[a-z]{2,10}", 1..12),
            a in 0u64..1_000_000_000,
            b in 0u64..1_000_000_000,
            at in 0usize..12,
        ) {
            let with = |n: u64| {
                let mut w: Vec<String> = words.clone();
                w.insert(at.min(w.len()), format!("#{n}"));
                w.join(" ")
            };
            let mut f = Featurizer::default();
            prop_assert_eq!(f.features(&with(a), &[]).weights, f.features(&with(b), &[]).weights);
        }

        /// The terms are exactly what the index's analyzer makes of the masked text, so search
        /// and clustering agree on words; each term's surface is the first word (lowercased,
        /// unstemmed) that made it.
        #[test]
        fn terms_are_the_index_analyzers_tokens(s in "[a-zA-ZÀ-ÿ0-9 @.',!?-]{0,200}") {
            let masked = mask(&s, &[]);
            let mut expected: BTreeMap<String, String> = BTreeMap::new();
            let mut words = base_builder().build();
            let mut unstemmed = words.token_stream(&masked);
            let mut index = analyzer();
            let mut stemmed = index.token_stream(&masked);
            while stemmed.advance() {
                prop_assert!(unstemmed.advance());
                expected
                    .entry(stemmed.token().text.clone())
                    .or_insert_with(|| unstemmed.token().text.clone());
            }
            let v = Featurizer::default().features(&s, &[]);
            prop_assert_eq!(v.weights.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
            prop_assert_eq!(v.surface, expected);
        }

        #[test]
        fn feature_vectors_are_unit_length_or_empty(s in "[a-zA-Z0-9 @.]{0,200}") {
            let v = Featurizer::default().features(&s, &[]);
            let norm: f32 = v.weights.values().map(|w| w * w).sum::<f32>().sqrt();
            prop_assert!(v.weights.is_empty() || (norm - 1.0).abs() < 1e-4);
        }
    }
}
