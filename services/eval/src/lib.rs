//! Clustering quality: scores against labels and batch baselines.
//!
//! - [`score`]: NMI, ARI, homogeneity and completeness of a partition against labels, defined
//!   as in scikit-learn so numbers compare with published ones.
//! - [`tfidf_kmeans`]: the batch baseline the online clusterer is measured against: TF-IDF over
//!   the project's own analyzer, optionally LSA, then k-means (linfa).
//! - [`read_labelled`], [`read_truth`]: the JSON-lines files the scores are computed from.

mod baselines;
mod data;
mod error;
mod metrics;

pub use baselines::{tfidf_kmeans, BaselineConfig};
pub use data::{read_labelled, read_truth, Labelled};
pub use error::EvalError;
pub use metrics::{score, Scores};
