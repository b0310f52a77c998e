//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>, spec:
//! <https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md>):
//! HMAC-SHA256 over `{msg_id}.{timestamp}.{body}`, sent as `v1,<base64>` in `webhook-signature`.
//! Clock-free like the rest of the crate: the caller picks the timestamp when sending, and checks
//! its freshness when receiving.

use std::fmt;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{DecodeError, Engine};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const SECRET_PREFIX: &str = "whsec_";
const VERSION_PREFIX: &str = "v1,";

/// Secrets are handed around with and without base64 padding; the reference libraries accept
/// both, so we do too.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a webhook secret was refused. Never holds any part of the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("webhook secret must start with \"whsec_\"")]
    MissingPrefix,
    #[error("webhook secret is not valid base64 after \"whsec_\": {0}")]
    BadBase64(String),
    #[error("webhook secret has an empty key after \"whsec_\"")]
    EmptyKey,
}

/// A signing key, from its `whsec_<base64>` form.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl WebhookSecret {
    pub fn parse(s: &str) -> Result<Self, SigningError> {
        let encoded = s
            .strip_prefix(SECRET_PREFIX)
            .ok_or(SigningError::MissingPrefix)?;
        let key = SECRET_BASE64
            .decode(encoded)
            .map_err(|e| SigningError::BadBase64(describe(&e)))?;
        if key.is_empty() {
            return Err(SigningError::EmptyKey);
        }
        Ok(Self { key })
    }

    /// The MAC of the signed content, ready to finalize or verify.
    fn mac(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
        mac.update(body);
        mac
    }
}

/// Logs and panics print settings; the key must not show up in them.
impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecret").finish_non_exhaustive()
    }
}

/// Says where the base64 is wrong without echoing the offending character, which is part of the
/// secret.
fn describe(e: &DecodeError) -> String {
    match e {
        DecodeError::InvalidByte(offset, _) => format!("invalid character at position {offset}"),
        DecodeError::InvalidLength(len) => format!("{len} base64 characters is not a valid length"),
        DecodeError::InvalidLastSymbol(offset, _) => {
            format!("invalid last character at position {offset}")
        }
        DecodeError::InvalidPadding => "invalid padding".to_owned(),
    }
}

/// The `webhook-signature` value: one `v1,<base64>` per secret, space-separated, so during a
/// rotation both the old and the new secret sign and receivers holding either one accept it.
/// With no secret it is empty, which no receiver accepts.
pub fn sign(secrets: &[WebhookSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets
        .iter()
        .map(|s| {
            let tag = s.mac(msg_id, timestamp, body).finalize().into_bytes();
            format!("{VERSION_PREFIX}{}", STANDARD.encode(tag))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// True when any `v1` signature in `header` is this secret's signature of the message.
/// Compares in constant time; unknown versions and malformed entries are skipped, as the spec
/// asks. Does not judge the timestamp's age: that needs a clock, which the caller has.
pub fn verify(
    secret: &WebhookSecret,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let mac = secret.mac(msg_id, timestamp, body);
    header
        .split_whitespace()
        .filter_map(|entry| entry.strip_prefix(VERSION_PREFIX))
        .filter_map(|signature| STANDARD.decode(signature).ok())
        .any(|signature| mac.clone().verify_slice(&signature).is_ok())
}

/// The three headers of a signed delivery, names in lowercase as the spec writes them.
pub fn headers(
    secrets: &[WebhookSecret],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("webhook-id", msg_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", sign(secrets, msg_id, timestamp, body)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the Standard Webhooks reference libraries' tests. The expected signature
    /// was recomputed independently with Python's standard library:
    /// `base64.b64encode(hmac.new(base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    /// b'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}', hashlib.sha256).digest())`.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const MSG_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    /// 32 bytes 0x00..0x1f, base64 with padding.
    const NEW_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn secret(s: &str) -> WebhookSecret {
        WebhookSecret::parse(s).expect("test secret parses")
    }

    #[test]
    fn signs_the_known_test_vector() {
        assert_eq!(sign(&[secret(SECRET)], MSG_ID, TIMESTAMP, BODY), SIGNATURE);
        assert!(verify(&secret(SECRET), MSG_ID, TIMESTAMP, BODY, SIGNATURE));
    }

    #[test]
    fn during_rotation_both_secrets_sign_and_each_verifies_alone() {
        let (old, new) = (secret(SECRET), secret(NEW_SECRET));
        let header = sign(&[old.clone(), new.clone()], MSG_ID, TIMESTAMP, BODY);
        let signatures: Vec<&str> = header.split(' ').collect();
        assert_eq!(signatures.len(), 2);
        assert_eq!(signatures[0], SIGNATURE);
        assert!(signatures[1].starts_with("v1,"));
        assert_ne!(signatures[0], signatures[1]);
        assert!(verify(&old, MSG_ID, TIMESTAMP, BODY, &header));
        assert!(verify(&new, MSG_ID, TIMESTAMP, BODY, &header));
    }

    #[test]
    fn a_tampered_body_id_or_timestamp_fails_verification() {
        let key = secret(SECRET);
        assert!(!verify(
            &key,
            MSG_ID,
            TIMESTAMP,
            br#"{"test": 2432232315}"#,
            SIGNATURE
        ));
        assert!(!verify(&key, "msg_other", TIMESTAMP, BODY, SIGNATURE));
        assert!(!verify(&key, MSG_ID, TIMESTAMP + 1, BODY, SIGNATURE));
    }

    #[test]
    fn another_secret_fails_verification() {
        assert!(!verify(
            &secret(NEW_SECRET),
            MSG_ID,
            TIMESTAMP,
            BODY,
            SIGNATURE
        ));
    }

    #[test]
    fn unknown_versions_and_malformed_entries_are_skipped() {
        let header = format!("v2,{} v1,not*base64 garbage {SIGNATURE}", &SIGNATURE[3..]);
        assert!(verify(&secret(SECRET), MSG_ID, TIMESTAMP, BODY, &header));
        let without_v1 = format!("v2,{}", &SIGNATURE[3..]);
        assert!(!verify(
            &secret(SECRET),
            MSG_ID,
            TIMESTAMP,
            BODY,
            &without_v1
        ));
        assert!(!verify(&secret(SECRET), MSG_ID, TIMESTAMP, BODY, ""));
    }

    #[test]
    fn secrets_without_padding_parse_to_the_same_key() {
        let unpadded = NEW_SECRET.trim_end_matches('=');
        assert_eq!(secret(unpadded).key, secret(NEW_SECRET).key);
    }

    #[test]
    fn bad_secrets_are_refused_with_an_error_naming_the_problem() {
        assert_eq!(
            WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SigningError::MissingPrefix
        );
        assert_eq!(
            WebhookSecret::parse("whsec_").unwrap_err(),
            SigningError::EmptyKey
        );
        let bad = WebhookSecret::parse("whsec_abc-def").unwrap_err();
        assert_eq!(
            bad,
            SigningError::BadBase64("invalid character at position 3".into())
        );
        assert_eq!(
            bad.to_string(),
            "webhook secret is not valid base64 after \"whsec_\": invalid character at position 3"
        );
        assert!(matches!(
            WebhookSecret::parse("whsec_abcde").unwrap_err(),
            SigningError::BadBase64(_)
        ));
    }

    #[test]
    fn debug_output_does_not_show_the_key() {
        let shown = format!("{:?}", secret(NEW_SECRET));
        assert_eq!(shown, "WebhookSecret { .. }");
    }

    #[test]
    fn headers_carry_id_timestamp_and_signature() {
        let headers = headers(&[secret(SECRET)], MSG_ID, TIMESTAMP, BODY);
        assert_eq!(
            headers,
            vec![
                ("webhook-id", MSG_ID.to_owned()),
                ("webhook-timestamp", "1614265330".to_owned()),
                ("webhook-signature", SIGNATURE.to_owned()),
            ]
        );
    }
}
