//! One error type for the crate; every variant names the values that were wrong.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("truth has {truth} items but predicted has {predicted}; they must match one to one")]
    LengthMismatch { truth: usize, predicted: usize },

    #[error("nothing to score: truth and predicted are both empty")]
    Empty,

    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} line {line}: {message}")]
    BadLine {
        path: PathBuf,
        line: usize,
        message: String,
    },

    #[error(
        "k = {k} clusters asked for {texts} texts; k must be between 1 and the number of texts"
    )]
    BadK { k: usize, texts: usize },

    #[error("max_terms must be at least 1")]
    ZeroMaxTerms,

    #[error("none of the {texts} texts has a term after analysis; nothing to cluster")]
    NoTerms { texts: usize },

    #[error("lsa_dims = {dims} must be at least 1 and below both the vocabulary size ({terms}) and the number of texts ({texts})")]
    BadLsaDims {
        dims: usize,
        terms: usize,
        texts: usize,
    },

    #[error("LSA reduction to {dims} dimensions failed: {source}")]
    Reduction {
        dims: usize,
        #[source]
        source: linfa_reduction::ReductionError,
    },

    #[error("k-means with k = {k} failed: {source}")]
    KMeans {
        k: usize,
        #[source]
        source: linfa_clustering::KMeansError,
    },
}
