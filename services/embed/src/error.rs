use std::path::PathBuf;

/// A boxed error from a dependency whose error type is itself a box (tokenizers) or varies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong loading or running the encoder.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A required model file is not there: the model was never installed in this directory.
    #[error(
        "model file {} is missing: run scripts/fetch-model.sh \
         (or point SEVLOOP_MODEL_DIR at a directory holding the model)",
        path.display()
    )]
    MissingFile { path: PathBuf },

    /// A model file exists but could not be read or parsed (truncated download, wrong model).
    #[error(
        "cannot load model file {}: {source}; delete the model directory and run scripts/fetch-model.sh again",
        path.display()
    )]
    Load {
        path: PathBuf,
        #[source]
        source: BoxError,
    },

    /// The tokenizer rejected an input text.
    #[error("tokenizing the input failed: {0}")]
    Tokenize(#[source] BoxError),

    /// The forward pass or pooling failed (shape mismatch, out of memory).
    #[error("model inference failed: {0}")]
    Inference(#[source] candle_core::Error),
}

impl EmbedError {
    pub(crate) fn load(path: PathBuf, source: impl Into<BoxError>) -> Self {
        EmbedError::Load {
            path,
            source: source.into(),
        }
    }
}
