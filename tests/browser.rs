//! The dashboard in a real browser: Debian's headless chromium, driven by playwright-core
//! (tests/browser/flow.mjs), against the real binary in its embedded mode.
//!
//! A support user files a ticket burst through the API and sees the SEV on the ticket page; a
//! member of the owning team acknowledges and resolves it on the SEV page; leadership sees MTTA
//! and the Pareto chart change; the daily digest of those numbers is posted to a webhook.
//! Screenshots of every page go to `target/screenshots/`.
//!
//! Tickets are dated just before now: MTTA and MTTR measure from the SEV's opening (event time)
//! to the team's action (wall clock), so historical dates would make them years long.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sevs::wait_processed;
use common::*;
use serde_json::{json, Value};

/// Moves the tickets' event times so that the last one is `end`, keeping their spacing.
fn dated_until(tickets: Vec<Value>, end: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let time = |t: &Value| {
        chrono::DateTime::parse_from_rfc3339(str_of(t, "event_time"))
            .expect("test tickets have RFC 3339 times")
            .to_utc()
    };
    let last = tickets.iter().map(time).max().expect("tickets");
    tickets
        .into_iter()
        .map(|mut t| {
            let at = end - (last - time(&t));
            t["event_time"] = json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            t
        })
        .collect()
}

fn screenshots_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(target)
        .join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots directory");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn support_sees_the_sev_a_team_resolves_it_and_leadership_sees_the_numbers_move() {
    let chromium = std::env::var("SEVLOOP_CHROMIUM").expect(
        "SEVLOOP_CHROMIUM names the chromium binary (scripts/browser-tools.sh); scripts/test.sh sets it",
    );
    let (sevloop, dir) = Sevloop::embedded(TWO_TEAMS).await;

    // Six hours of background up to ten minutes before the last full hour; the burst, filed by
    // the browser flow, ends on that hour. A fixed phase, because consolidation runs on 15-minute
    // rounds of event time: with the burst ending 3.5 minutes past a round, a consolidation in
    // the middle of the burst kept it from opening a SEV, and the test failed in two CI runs.
    let now =
        chrono::DurationRound::duration_trunc(chrono::Utc::now(), chrono::TimeDelta::hours(1))
            .expect("the clock is within chrono's range");
    let background = dated_until(background(1440, 15), now - chrono::Duration::minutes(10));
    let file = write_jsonl(dir.path(), "background.jsonl", &to_lines(&background));
    sevloop.replay_api(&file);
    wait_processed(&sevloop, &background, Duration::from_secs(90)).await;
    let burst = dated_until(burst(30, 0), now);
    let first_of_burst = burst[0].clone();
    let burst_file = dir.path().join("burst.json");
    std::fs::write(&burst_file, Value::Array(burst).to_string()).expect("burst file");

    let shots = screenshots_dir();
    let flow = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/flow.mjs");
    let out = Command::new("node")
        .arg(&flow)
        .env("SEVLOOP_URL", &sevloop.url)
        .env("SEVLOOP_CHROMIUM", &chromium)
        .env("SUPPORT_TOKEN", sevloop.token_for(&["--role", "support"]))
        .env(
            "TEAM_TOKEN",
            sevloop.token_for(&["--role", "team", "--team", "triage"]),
        )
        .env(
            "LEADERSHIP_TOKEN",
            sevloop.token_for(&["--role", "leadership"]),
        )
        .env("BURST_FILE", &burst_file)
        .env("SCREENSHOTS", &shots)
        .output()
        .expect("node runs the browser flow");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "the browser flow failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The flow's own assertions ran in the browser; here: what it left behind is real.
    let sev = sevloop.get_ok("/api/v1/sevs?state=resolved").await;
    assert_eq!(sev["total"], 1, "the team resolved the burst's SEV: {sev}");
    // The daily digest of the same numbers, posted as a webhook would receive it.
    let receiver = Receiver::start().await;
    let posted = Command::new(BIN)
        .args([
            "digest",
            "--days",
            "1",
            "--post",
            &receiver.url,
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .status()
        .expect("sevloop digest runs");
    assert!(posted.success(), "sevloop digest posts");
    let digest = receiver.bodies().pop().expect("the digest arrived");
    let html = digest["html"].as_str().unwrap_or_default();
    assert!(str_of(&digest, "subject").starts_with("sevloop digest"));
    assert!(html.contains("triage"), "the digest has the team's numbers");
    assert!(
        !html.contains(str_of(&first_of_burst, "body")),
        "the digest carries no ticket text"
    );
    for page in [
        "ticket",
        "sev-resolved",
        "leadership-after",
        "clusters",
        "search",
    ] {
        let shot = shots.join(format!("{page}.png"));
        let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
        assert!(size > 10_000, "{} is a real screenshot", shot.display());
    }
}
