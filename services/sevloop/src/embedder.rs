//! The sentence encoder at the pipeline's edge: loaded once, run on a blocking thread so the
//! async runtime keeps serving while a batch is embedded.

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use sevloop_embed::{EmbedError, Encoder};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncoderSettings {
    /// Semantic features on (the default) or off. Off, clustering runs on terms alone: coarser
    /// clusters and far noisier detection (docs/MEASUREMENTS.md).
    pub enabled: bool,
    /// Where `scripts/fetch-model.sh` put the model (default: its default directory).
    pub model_dir: Option<PathBuf>,
    pub batch_size: usize,
}

impl Default for EncoderSettings {
    fn default() -> Self {
        EncoderSettings {
            enabled: true,
            model_dir: None,
            batch_size: 64,
        }
    }
}

impl EncoderSettings {
    /// For the embedded mode, which must run with no setup: terms alone when the model is not
    /// installed, said on stdout. (`serve` refuses to start without it instead.)
    pub fn or_terms_if_missing(&mut self) {
        let dir = self
            .model_dir
            .clone()
            .unwrap_or_else(sevloop_embed::default_model_dir);
        if self.enabled && !dir.join("model.safetensors").exists() {
            println!(
                "note: no sentence encoder in {} (scripts/fetch-model.sh installs it); clustering on terms alone",
                dir.display()
            );
            self.enabled = false;
        }
    }
}

#[derive(Clone)]
pub struct Embedder {
    encoder: Arc<Encoder>,
}

impl Embedder {
    /// Loads the encoder if it is enabled; a missing model is an error naming the directory.
    pub fn load(settings: &EncoderSettings) -> Result<Option<Embedder>, EmbedError> {
        if !settings.enabled {
            return Ok(None);
        }
        let dir = settings
            .model_dir
            .clone()
            .unwrap_or_else(sevloop_embed::default_model_dir);
        let encoder = Encoder::load(&dir)?.with_batch_size(settings.batch_size.max(1));
        tracing::info!(model = encoder.model_id(), dir = %dir.display(), "sentence encoder loaded");
        Ok(Some(Embedder {
            encoder: Arc::new(encoder),
        }))
    }

    pub fn encoder(&self) -> &Arc<Encoder> {
        &self.encoder
    }

    /// One unit vector per text, in order.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EmbedderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encoder = self.encoder.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            encoder.encode(&refs)
        })
        .await?
        .map_err(EmbedderError::from)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedderError {
    #[error(transparent)]
    Encoder(#[from] EmbedError),
    #[error("encoder task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}
