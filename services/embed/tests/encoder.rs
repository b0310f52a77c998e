//! Tests against the real model. They never skip: without the model they fail and say how to
//! install it, so a machine that forgot the setup step cannot pass silently.

use std::sync::OnceLock;

use sevloop_embed::{default_model_dir, EmbedError, Encoder, MODEL_NAME};

fn encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| {
        let dir = default_model_dir();
        // The error already names the missing file and says to run scripts/fetch-model.sh.
        Encoder::load(&dir).unwrap_or_else(|e| panic!("the encoder tests need the model: {e}"))
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (norm(a) * norm(b))
}

fn encode_one(text: &str) -> Vec<f32> {
    let mut out = encoder().encode(&[text]).expect("encode");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

#[test]
fn vectors_are_unit_length_and_384_dim() {
    let enc = encoder();
    assert_eq!(enc.dim(), 384);
    let texts = [
        "card declined",
        "",
        "why is my transfer pending for three days?",
    ];
    let vectors = enc.encode(&texts).expect("encode");
    assert_eq!(vectors.len(), texts.len());
    for (text, v) in texts.iter().zip(&vectors) {
        assert_eq!(v.len(), 384, "{text:?}");
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?}: norm {norm}");
    }
}

#[test]
fn output_order_matches_input_order() {
    // Lengths deliberately not sorted, so the internal length sort reorders them.
    let long = "I topped up my account with a bank transfer yesterday morning and the money \
                still has not arrived, the app only says pending and support has not replied";
    let texts = [
        "hi",
        long,
        "my card got declined",
        "",
        "where is my new card? it is late",
    ];
    let batched = encoder().encode(&texts).expect("encode");
    for (text, v) in texts.iter().zip(&batched) {
        let alone = encode_one(text);
        let c = cosine(v, &alone);
        assert!(c > 0.9999, "{text:?}: cosine {c} to its own encoding");
    }
}

#[test]
fn small_batches_keep_order_too() {
    let enc = Encoder::load(&default_model_dir())
        .expect("run scripts/fetch-model.sh")
        .with_batch_size(2);
    let texts = [
        "a much longer sentence about a refund",
        "b",
        "c d",
        "e f g h i",
    ];
    let vectors = enc.encode(&texts).expect("encode");
    for (text, v) in texts.iter().zip(&vectors) {
        assert!(cosine(v, &encode_one(text)) > 0.9999, "{text:?}");
    }
}

#[test]
fn similar_complaints_are_closer_than_unrelated_ones() {
    let v = encoder()
        .encode(&[
            "my card was declined at the shop",
            "the store refused my card payment",
            "how do I change my home address",
        ])
        .expect("encode");
    let related = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[0], &v[2]);
    assert!(
        related > unrelated + 0.1,
        "related {related}, unrelated {unrelated}"
    );
}

#[test]
fn padding_in_a_batch_does_not_change_results() {
    let short = "refund please";
    let long = "I was charged twice for the same purchase at the supermarket last week and I \
                would like one of the two payments to be refunded to my card as soon as possible";
    let batched = encoder().encode(&[short, long]).expect("encode");
    let c = cosine(&batched[0], &encode_one(short));
    assert!(c > 0.9999, "cosine {c}");
}

/// Determinism for replays: a text's vector is bit-identical whatever it is batched with.
#[test]
fn a_vector_is_bit_identical_whatever_shares_its_batch() {
    let texts = [
        "my card was declined",
        "my card was refused",
        "the app will not open",
        "where is my refund",
        "I cannot log in",
        "top up failed again",
        "my card was declined at the shop yesterday",
    ];
    let together = encoder().encode(&texts).expect("encode");
    for (text, vector) in texts.iter().zip(&together) {
        assert_eq!(&encode_one(text), vector, "{text}");
    }
}

#[test]
fn very_long_text_is_truncated_not_rejected() {
    let huge = "my payment failed again and again. ".repeat(2_000);
    let v = encode_one(&huge);
    assert_eq!(v.len(), 384);
    assert!(v.iter().all(|x| x.is_finite()));
}

#[test]
fn empty_input_gives_empty_output() {
    assert!(encoder().encode(&[]).expect("encode").is_empty());
}

#[test]
fn model_id_names_the_model_and_is_stable() {
    let id = encoder().model_id();
    let hex = id
        .strip_prefix(MODEL_NAME)
        .and_then(|rest| rest.strip_prefix('@'))
        .unwrap_or_else(|| panic!("unexpected model id {id}"));
    assert_eq!(hex.len(), 12, "{id}");
    let again = Encoder::load(&default_model_dir()).expect("run scripts/fetch-model.sh");
    assert_eq!(again.model_id(), id);
}

#[test]
fn load_from_empty_dir_names_the_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Encoder::load(dir.path()).expect_err("empty dir must not load");
    assert!(matches!(err, EmbedError::MissingFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
    assert!(
        ["config.json", "tokenizer.json", "model.safetensors"]
            .iter()
            .any(|f| msg.contains(f)),
        "{msg}"
    );
    assert!(msg.contains("scripts/fetch-model.sh"), "{msg}");
}

#[test]
fn corrupt_config_is_a_load_error_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::write(dir.path().join(f), b"not json").expect("write");
    }
    let err = Encoder::load(dir.path()).expect_err("corrupt files must not load");
    assert!(matches!(err, EmbedError::Load { .. }), "{err:?}");
    assert!(err.to_string().contains("config.json"), "{err}");
}
