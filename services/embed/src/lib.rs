//! Sentence encoder: turns ticket text into unit-length dense vectors.
