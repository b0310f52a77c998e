//! The embedded default mode, end to end: the real binary, its embedded log and SQLite.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::sevs::linked_ids;
use common::*;
use serde_json::{json, Value};

/// `sevloop up` with a webhook, fed through `sevloop replay --api`.
async fn up(receiver: &Receiver) -> (Sevloop, tempfile::TempDir) {
    Sevloop::embedded(&catalog_toml(Some(&receiver.url))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_mode_opens_one_sev_for_a_burst_and_links_every_burst_ticket() {
    let receiver = Receiver::start().await;
    let (sevloop, dir) = up(&receiver).await;
    let mut tickets = background(1500, 15);
    tickets.extend(burst(30, 750 * 15));
    let tickets = by_event_time(tickets);
    let file = write_jsonl(dir.path(), "tickets.jsonl", &to_lines(&tickets));
    sevloop.replay_api(&file);

    let last = tickets
        .last()
        .and_then(|t| t["ticket_id"].as_str())
        .unwrap_or_default()
        .to_string();
    eventually(
        "the last ticket to be processed",
        Duration::from_secs(60),
        || async { (sevloop.get(&format!("/api/v1/tickets/{last}")).await.0 == 200).then_some(()) },
    )
    .await;
    let (_, sevs) = sevloop.get("/api/v1/sevs").await;
    let items = sevs["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "exactly one SEV: {sevs:#}");
    let sev = &items[0];
    let (_, burst_ticket) = sevloop.get("/api/v1/tickets/burst-0").await;
    assert_eq!(
        sev["cluster_id"], burst_ticket["cluster_id"],
        "the SEV is the burst's cluster"
    );
    let (_, detail) = sevloop
        .get(&format!(
            "/api/v1/sevs/{}",
            sev["id"].as_str().unwrap_or_default()
        ))
        .await;
    let linked = linked_ids(&detail);
    for i in 0..30 {
        assert!(
            linked.contains(&format!("burst-{i}")),
            "burst-{i} is linked to {}",
            sev["id"]
        );
    }
    let (_, t) = sevloop.get("/api/v1/tickets/burst-29").await;
    assert_eq!(t["sev_id"], sev["id"]);
    assert_eq!(t["sev_state"], "open");
    let bodies = eventually(
        "the webhook to be notified",
        Duration::from_secs(30),
        || async {
            let b = receiver.bodies();
            (!b.is_empty()).then_some(b)
        },
    )
    .await;
    assert_eq!(bodies[0]["type"], "sev.opened");
    assert_eq!(bodies[0]["data"]["sev_id"], sev["id"]);
    assert!(
        !bodies[0].to_string().contains("Card declined at checkout"),
        "notifications carry no ticket text"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tickets_get_a_clear_error_naming_the_field_and_nothing_is_appended() {
    let receiver = Receiver::start().await;
    let (sevloop, _dir) = up(&receiver).await;
    let client = client_with(&sevloop.token);
    let url = format!("{}/api/v1/tickets", sevloop.url);

    let resp = client
        .post(&url)
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "invalid_json");

    let mut good = background(1, 15).remove(0);
    good["ticket_id"] = json!("good-1");
    let mut bad = good.clone();
    bad["ticket_id"] = json!("bad-1");
    bad["customer"]["tier"] = json!("gold");
    let resp = client
        .post(&url)
        .json(&json!([good, bad]))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["code"], "invalid_ticket");
    assert_eq!(body["errors"][0]["index"], 1);
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("customer.tier"),
        "{body}"
    );

    let mut future = good.clone();
    future["ticket_id"] = json!("future-1");
    future["event_time"] = json!("2999-01-01T11:00:00Z");
    let resp = client
        .post(&url)
        .json(&future)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.expect("json");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("event_time") && message.contains("2999"),
        "a ticket from the future is refused naming its time: {body}"
    );

    let resp = client.post(&url).json(&good).send().await.expect("answer");
    assert_eq!(resp.status(), 202);
    eventually(
        "the valid ticket to be processed",
        Duration::from_secs(30),
        || async { (sevloop.get("/api/v1/tickets/good-1").await.0 == 200).then_some(()) },
    )
    .await;
    assert_eq!(
        sevloop.get("/api/v1/tickets/bad-1").await.0,
        404,
        "nothing of a refused batch is appended"
    );
    let (status, search) = sevloop.get("/api/v1/search?q=").await;
    assert_eq!(
        (status, search["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
}

#[test]
fn admin_commands_name_a_data_directory_without_a_database_and_create_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let typo = dir.path().join("sevloop-dta");
    let path = typo.to_str().expect("utf-8 path");
    for args in [
        &["token", "list"][..],
        &["token", "revoke", "tok_x"],
        &["endpoint", "list"],
        &["endpoint", "enable", "hook"],
        &["digest", "--days", "7"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .args(["--data-dir", path])
            .output()
            .expect("sevloop runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} refuses: {stderr}");
        assert!(
            stderr.contains(path) && stderr.contains("holds no sevloop database"),
            "{args:?} names the directory: {stderr}"
        );
        assert!(!typo.exists(), "{args:?} created nothing");
    }
    // The first admin token may come before `up`: `token create` makes the database.
    assert!(!create_token(&["--data-dir".into(), path.into()], &["--role", "admin"]).is_empty());
    assert!(typo.join("sevloop.db").exists());
}

/// Labels of the bundled demo stream: ticket id → (label, injected).
fn demo_truth() -> BTreeMap<String, (String, bool)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/demo/banking77-demo.truth.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("truth file")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|v| {
            let id = v["ticket_id"].as_str().unwrap_or_default().to_string();
            let label = v["label"].as_str().unwrap_or_default().to_string();
            (id, (label, v["injected"] == json!(true)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_opens_a_sev_for_the_injected_incident_and_none_for_background() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("demo");
    let listen = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--exit",
            "--data-dir",
            data.to_str().unwrap_or_default(),
            "--listen",
            &listen,
            "--log-format",
            "json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let stderr = child.stderr.take().expect("stderr");
    let logs = std::thread::spawn(move || {
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let stdout = child.stdout.take().expect("stdout");
    let lines: Vec<String> = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .collect();
    let status = child.wait().expect("demo exits");
    let logs = logs.join().expect("stderr read");
    assert!(status.success(), "demo failed: {lines:#?} {logs:#?}");
    // A newcomer's first run logs nothing alarming (it once logged the dispatcher failing on
    // SQLite's lock while a batch was being embedded).
    let alarming: Vec<&String> = logs
        .iter()
        .filter(|l| {
            let level = serde_json::from_str::<Value>(l).map(|v| v["level"].clone());
            !matches!(
                level.as_ref().ok().and_then(Value::as_str),
                Some("INFO" | "DEBUG")
            )
        })
        .collect();
    assert!(alarming.is_empty(), "the demo logged: {alarming:#?}");
    // How fast is a figure to report, not to assert: it depends on what else the machine runs.
    eprintln!("demo finished in {:.1}s", started.elapsed().as_secs_f64());
    assert!(
        lines.iter().any(|l| l.starts_with("SEV-1 opened after")),
        "{lines:#?}"
    );

    // Score what opened against the labels (the pipeline never sees them).
    let pool = connect(&format!(
        "sqlite://{}?mode=ro",
        data.join("sevloop.db").display()
    ))
    .await;
    let truth = demo_truth();
    let sevs: Vec<(String, i64)> = sqlx::query_as("SELECT sev_id, opened_at FROM sevs")
        .fetch_all(&pool)
        .await
        .expect("sevs");
    assert!(!sevs.is_empty());
    let mut clean = 0;
    for (sev, opened) in &sevs {
        let evidence: Vec<String> = sqlx::query_scalar(
            "SELECT ticket_id FROM sev_tickets WHERE sev_id = $1 AND linked_at = $2",
        )
        .bind(sev)
        .bind(opened)
        .fetch_all(&pool)
        .await
        .expect("evidence");
        let incident = evidence
            .iter()
            .filter(|t| truth[*t] == ("card_not_working".to_string(), true))
            .count();
        let decoy = evidence
            .iter()
            .filter(|t| truth[*t].0 == "pending_transfer" && truth[*t].1)
            .count();
        assert!(
            2 * incident >= evidence.len(),
            "{sev} is mostly background: {incident} of {} evidence tickets are the incident's",
            evidence.len()
        );
        assert_eq!(
            decoy, 0,
            "{sev} counts the angry customer's tickets as evidence"
        );
        if 4 * incident >= 3 * evidence.len() {
            clean += 1;
        }
    }
    assert!(
        clean >= 1,
        "one SEV's evidence is (at least 75%) the incident"
    );
}
