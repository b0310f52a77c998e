//! Our signatures checked by someone else's code: `standardwebhooks`, the reference Python
//! implementation, must accept what `sevloop_notify::signing` produces and reject tampering.
//!
//! Needs `$SEVLOOP_PYTHON` (set by scripts/test.sh) or runs scripts/python-tools.sh to get it.
//! Fails, never skips, when Python or the package is missing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use common::{notice, INSTALLATION};
use serde_json::{json, Map, Value};
use sevloop_notify::{headers, scoped, webhook, NoticeKind, WebhookSecret};

const OLD_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW_SECRET: &str = "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const OTHER_SECRET: &str = "whsec_c2V2bG9vcCB0ZXN0IHNlY3JldCB0aGF0IHNpZ25zIG5vdGhpbmc=";
/// The script's exit status for "verification failed" (any other failure is an error).
const REJECTED: i32 = 3;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv's python, from `$SEVLOOP_PYTHON` or, when unset or empty, from the install script
/// (run once per test binary, so parallel tests do not race to create the venv).
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| match std::env::var_os("SEVLOOP_PYTHON") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => install_python_tools(),
    })
}

fn install_python_tools() -> PathBuf {
    let root = workspace_root();
    let out = Command::new(root.join("scripts/python-tools.sh"))
        .current_dir(&root)
        .stderr(Stdio::inherit())
        .output()
        .expect("failed to run scripts/python-tools.sh");
    assert!(
        out.status.success(),
        "scripts/python-tools.sh failed ({}): it installs the standardwebhooks package this test needs",
        out.status
    );
    let path = String::from_utf8(out.stdout).expect("python-tools.sh prints a UTF-8 path");
    PathBuf::from(path.trim())
}

enum Verdict {
    Verified,
    Rejected(String),
}

/// Asks the reference library whether `secret` verifies `body` under `headers`.
fn reference_verify(secret: &str, headers: &[(&str, String)], body: &[u8]) -> Verdict {
    let headers: Map<String, Value> = headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), Value::from(value.as_str())))
        .collect();
    let body = std::str::from_utf8(body).expect("webhook bodies are JSON, hence UTF-8");
    let request = json!({ "secret": secret, "headers": headers, "body": body });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/verify_standard_webhooks.py");
    let mut child = Command::new(python())
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to start {}: {e}", python().display()));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    stdin
        .write_all(request.to_string().as_bytes())
        .expect("failed to write the request to the verifier");
    drop(stdin);
    let out = child
        .wait_with_output()
        .expect("failed to wait for the verifier");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    match out.status.code() {
        Some(0) => Verdict::Verified,
        Some(REJECTED) => Verdict::Rejected(stderr),
        _ => panic!(
            "the Python verifier did not run ({}):\n{stderr}",
            out.status
        ),
    }
}

fn secret(s: &str) -> WebhookSecret {
    WebhookSecret::parse(s).expect("test secret parses")
}

/// A real delivery: the webhook body of a notice, signed now, since the reference library
/// refuses timestamps more than five minutes from its clock.
fn delivery(secrets: &[WebhookSecret]) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let n = notice(NoticeKind::Opened);
    let id = scoped(INSTALLATION, &n.event_id);
    let body = serde_json::to_vec(&webhook(&n, INSTALLATION)).expect("a JSON value serializes");
    let now = chrono::Utc::now().timestamp();
    (headers(secrets, &id, now, &body), body)
}

fn assert_verified(secret: &str, headers: &[(&str, String)], body: &[u8]) {
    if let Verdict::Rejected(reason) = reference_verify(secret, headers, body) {
        panic!("standardwebhooks rejected our signature: {reason}");
    }
}

fn assert_rejected(secret: &str, headers: &[(&str, String)], body: &[u8]) {
    if let Verdict::Verified = reference_verify(secret, headers, body) {
        panic!("standardwebhooks accepted a delivery it should have rejected");
    }
}

#[test]
fn the_reference_library_verifies_our_signature() {
    let (headers, body) = delivery(&[secret(OLD_SECRET)]);
    assert_verified(OLD_SECRET, &headers, &body);
}

#[test]
fn during_rotation_each_secret_alone_verifies_the_two_signature_header() {
    let (headers, body) = delivery(&[secret(OLD_SECRET), secret(NEW_SECRET)]);
    let signature = &headers[2].1;
    assert_eq!(signature.split(' ').count(), 2, "{signature}");
    assert_verified(OLD_SECRET, &headers, &body);
    assert_verified(NEW_SECRET, &headers, &body);
    assert_rejected(OTHER_SECRET, &headers, &body);
}

#[test]
fn the_reference_library_rejects_a_tampered_body() {
    let (headers, body) = delivery(&[secret(OLD_SECRET)]);
    let original = String::from_utf8(body).expect("UTF-8");
    let tampered = original.replace("\"ticket_count\":42", "\"ticket_count\":4");
    assert_ne!(tampered, original, "the tampering must change the body");
    assert_rejected(OLD_SECRET, &headers, tampered.as_bytes());
}
