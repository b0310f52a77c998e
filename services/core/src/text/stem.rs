//! The English Snowball stemmer (the algorithm tantivy's own `Stemmer` filter runs), remembering
//! the stems it has made. Tickets repeat a small vocabulary, and stemming a word costs far more
//! than looking it up: about a tenth of the clustering stage's instructions went to stemming.

use std::collections::HashMap;

use rust_stemmers::{Algorithm, Stemmer};
use tantivy::tokenizer::{Token, TokenFilter, TokenStream, Tokenizer};

/// Words remembered per analyzer before the memo starts over: a few MB at most, far above a
/// support vocabulary, and a bound should text be mostly new words.
const MAX_STEMS: usize = 50_000;

type Stems = HashMap<String, String, foldhash::fast::FixedState>;

/// A token filter that replaces each token by its English stem.
#[derive(Clone, Copy, Debug, Default)]
pub struct CachedStemmer;

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CachedStemmerFilter<T> {
        CachedStemmerFilter {
            inner,
            stems: Stems::default(),
        }
    }
}

/// Each clone of an analyzer (one per thread) keeps its own memo: no lock on the hot path.
#[derive(Clone)]
pub struct CachedStemmerFilter<T> {
    inner: T,
    stems: Stems,
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        if self.stems.len() > MAX_STEMS {
            self.stems.clear();
        }
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            stems: &mut self.stems,
            stemmer: Stemmer::create(Algorithm::English),
        }
    }
}

pub struct CachedStemmerStream<'a, S> {
    tail: S,
    stems: &'a mut Stems,
    stemmer: Stemmer,
}

impl<S: TokenStream> TokenStream for CachedStemmerStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if let Some(stem) = self.stems.get(&token.text) {
            token.text.clone_from(stem);
        } else {
            let stem = self.stemmer.stem(&token.text).into_owned();
            let word = std::mem::replace(&mut token.text, stem.clone());
            self.stems.insert(word, stem);
        }
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use tantivy::tokenizer::{Language, SimpleTokenizer, TextAnalyzer};

    use super::*;

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    proptest! {
        /// Remembered or not, every stem is the one tantivy's own filter makes, text after text
        /// (the memo warm from the earlier ones).
        #[test]
        fn stems_are_tantivys_stems(
            texts in proptest::collection::vec("[a-zA-Z ]{0,60}|(running|runs|ran|cards|carded|charging|charged|payments) {1,4}", 1..8),
        ) {
            let mut cached = TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(CachedStemmer)
                .build();
            let mut plain = TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(tantivy::tokenizer::Stemmer::new(Language::English))
                .build();
            for text in &texts {
                prop_assert_eq!(tokens(&mut cached, text), tokens(&mut plain, text));
            }
        }
    }

    #[test]
    fn a_word_seen_again_gets_the_same_stem() {
        let mut analyzer = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(CachedStemmer)
            .build();
        let first = tokens(&mut analyzer, "charging payments");
        assert_eq!(first, ["charg", "payment"]);
        assert_eq!(
            tokens(&mut analyzer, "payments charging"),
            ["payment", "charg"]
        );
    }
}
