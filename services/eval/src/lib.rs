//! Clustering quality: scores against labels and batch baselines.
