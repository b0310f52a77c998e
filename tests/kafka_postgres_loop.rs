//! Kafka (tansu) + PostgreSQL, end to end, through the real binary.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::sevs::linked_ids;
use common::topics::read_topic;
use common::*;
use serde_json::json;

/// Everything one run leaves behind, in comparable form.
#[derive(Debug, PartialEq)]
struct Outcome {
    tickets: Vec<(String, String)>,
    sevs: Vec<(String, i64, i64)>,
    links: Vec<(String, String)>,
}

async fn outcome(database_url: &str) -> Outcome {
    let pool = connect(database_url).await;
    let tickets = sqlx::query_as("SELECT ticket_id, cluster_id FROM tickets ORDER BY ticket_id")
        .fetch_all(&pool)
        .await
        .expect("tickets");
    let sevs = sqlx::query_as(
        "SELECT cluster_id, ticket_count, distinct_customers FROM sevs ORDER BY cluster_id",
    )
    .fetch_all(&pool)
    .await
    .expect("sevs");
    let links = sqlx::query_as(
        "SELECT s.cluster_id, st.ticket_id FROM sev_tickets st JOIN sevs s ON s.sev_id = st.sev_id ORDER BY 1, 2",
    )
    .fetch_all(&pool).await.expect("links");
    pool.close().await;
    Outcome {
        tickets,
        sevs,
        links,
    }
}

/// Writes lines to a file and replays them into fresh topics with `sevloop replay --kafka`.
async fn topic_with(lines: &[String], partitions: i32) -> (String, tempfile::TempDir) {
    let topic = fresh_topics("sevloop.test", partitions).await;
    let dir = tempfile::tempdir().expect("temp dir");
    replay_into(&topic, dir.path(), "tickets.jsonl", lines);
    (topic, dir)
}

/// Starts `sevloop serve` and waits until it has stored `n` tickets.
async fn serve_until_stored(config: &Config, n: usize, timeout: Duration) -> Sevloop {
    let sevloop = Sevloop::serve_healthy(config).await;
    wait_for_tickets(&config.database_url, n as i64, timeout).await;
    sevloop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opens_exactly_one_sev_for_a_burst_among_10000_tickets_and_notifies_the_team() {
    let mut tickets = background(9970, 15);
    tickets.extend(burst(30, 5000 * 15));
    let tickets = by_event_time(tickets);
    let (topic, _dir) = topic_with(&to_lines(&tickets), 3).await;
    let receiver = Receiver::start().await;
    let mut config = Config::for_topic(&topic).await;
    config.webhook = Some(receiver.url.clone());
    let sevloop = serve_until_stored(&config, 10_000, Duration::from_secs(300)).await;

    let (_, sevs) = sevloop.get("/api/v1/sevs").await;
    let items = sevs["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 1, "exactly one SEV: {sevs:#}");
    let sev = &items[0];
    let sev_id = sev["id"].as_str().unwrap_or_default().to_string();
    let (_, first) = sevloop.get("/api/v1/tickets/burst-0").await;
    assert_eq!(
        sev["cluster_id"], first["cluster_id"],
        "the SEV is the burst's cluster"
    );
    for field in [
        "id",
        "state",
        "team",
        "severity",
        "cluster_id",
        "opened_at",
        "ticket_count",
        "distinct_customers",
    ] {
        assert!(!sev[field].is_null(), "SEV has `{field}`: {sev}");
    }
    let (_, detail) = sevloop.get(&format!("/api/v1/sevs/{sev_id}")).await;
    let linked = linked_ids(&detail);
    let missing: Vec<String> = (0..30)
        .map(|i| format!("burst-{i}"))
        .filter(|t| !linked.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "burst tickets not linked to {sev_id}: {missing:?}"
    );
    let (_, ticket) = sevloop.get("/api/v1/tickets/burst-17").await;
    assert_eq!(
        (ticket["sev_id"].as_str(), ticket["sev_state"].as_str()),
        (Some(sev_id.as_str()), Some("open"))
    );

    let delivered = eventually(
        "the webhook to receive the SEV",
        Duration::from_secs(30),
        || async {
            let r = receiver.received.lock().expect("lock").clone();
            (!r.is_empty()).then_some(r)
        },
    )
    .await;
    let (headers, body) = &delivered[0];
    assert_eq!(body["data"]["sev_id"], json!(sev_id));
    assert!(
        headers.get("idempotency-key").is_some(),
        "notification carries an idempotency key"
    );
    let (_, search) = sevloop.get("/api/v1/search?q=checkout%20declined").await;
    assert!(
        search["total"].as_u64().unwrap_or_default() >= 30,
        "search finds the burst: {search}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_replay_loses_nothing_and_doubles_nothing() {
    let mut tickets = background(3000, 15);
    tickets.extend(burst(30, 1500 * 15));
    let tickets = by_event_time(tickets);
    let topic = fresh_topics("sevloop.test", 3).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = write_jsonl(dir.path(), "tickets.jsonl", &to_lines(&tickets));

    // Interrupted run: the replay runs while the pipeline is killed with SIGKILL and restarted.
    let config_b = Config::for_topic(&topic).await;
    let db_b = config_b.database_url.clone();
    let mut b = Sevloop::serve_healthy(&config_b).await;
    let brokers = kafka_brokers();
    let replaying = std::thread::spawn({
        let file = file.clone();
        let topic = topic.clone();
        move || {
            replay(
                &file,
                &["--kafka", &brokers, "--topic", &topic, "--rate", "600"],
            )
        }
    });
    // A random point mid-stream: once the pipeline has stored some tickets, wait 0 to 1 s more.
    let pool = connect(&db_b).await;
    eventually(
        "the pipeline to store its first tickets",
        Duration::from_secs(60),
        || async { (scalar(&pool, "SELECT COUNT(*) FROM tickets").await > 0).then_some(()) },
    )
    .await;
    let jitter = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_millis())
        .unwrap_or_default();
    tokio::time::sleep(Duration::from_millis(jitter as u64)).await;
    b.kill9();
    let at_kill = scalar(&pool, "SELECT COUNT(*) FROM tickets").await;
    pool.close().await;
    eprintln!(
        "killed the pipeline with {at_kill} of {} tickets stored",
        tickets.len()
    );
    assert!(
        at_kill > 0 && at_kill < tickets.len() as i64,
        "the kill came mid-stream ({at_kill} stored)"
    );
    let mut b = Sevloop::serve_healthy(&config_b).await;
    replaying.join().expect("replay thread");
    wait_for_tickets(&db_b, tickets.len() as i64, Duration::from_secs(300)).await;
    b.stop();

    // Uninterrupted run over the same topic, with its own group, database and index.
    let config_a = Config::for_topic(&topic).await;
    let db_a = config_a.database_url.clone();
    serve_until_stored(&config_a, tickets.len(), Duration::from_secs(300))
        .await
        .stop();

    let (interrupted, uninterrupted) = (outcome(&db_b).await, outcome(&db_a).await);
    assert_eq!(interrupted.tickets.len(), tickets.len());
    assert!(!uninterrupted.sevs.is_empty(), "the burst opened a SEV");
    assert_eq!(interrupted, uninterrupted);
    let docs = |config: &Config| {
        sevloop_index::TicketIndex::open_read_only(&config.index_dir())
            .expect("index")
            .doc_count()
    };
    assert_eq!(
        docs(&config_b),
        tickets.len() as u64,
        "interrupted index document count"
    );
    assert_eq!(
        docs(&config_a),
        tickets.len() as u64,
        "uninterrupted index document count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_records_are_dead_lettered_with_reasons_and_the_valid_ones_around_them_are_processed() {
    let valid = background(40, 15);
    let mut wrong_tier = valid[0].clone();
    wrong_tier["ticket_id"] = json!("bad-tier");
    wrong_tier["customer"]["tier"] = json!("gold");
    let mut huge = valid[1].clone();
    huge["ticket_id"] = json!("bad-huge");
    huge["body"] = json!("x".repeat(2 * 1024 * 1024));
    let mut lines = to_lines(&valid[..10]);
    lines.push("{\"ticket_id\": \"bad-json\", ".to_string());
    lines.extend(to_lines(&valid[10..20]));
    lines.push(wrong_tier.to_string());
    lines.extend(to_lines(&valid[20..30]));
    lines.push(huge.to_string());
    lines.extend(to_lines(&valid[30..]));
    let (topic, _dir) = topic_with(&lines, 1).await;
    let config = Config::for_topic(&topic).await;
    let db = config.database_url.clone();
    let sevloop = serve_until_stored(&config, valid.len(), Duration::from_secs(120)).await;

    let dead: Vec<(String, String, usize)> =
        read_topic(&config.dlq_topic, "three dead letters", |seen| {
            seen.len() >= 3
        })
        .await
        .iter()
        .map(|m| {
            (
                m.header("sevloop.error.code"),
                m.header("sevloop.error.reason"),
                m.payload.len(),
            )
        })
        .collect();
    let codes: BTreeSet<&str> = dead.iter().map(|d| d.0.as_str()).collect();
    assert_eq!(
        codes,
        BTreeSet::from(["invalid_json", "invalid_field", "too_large"]),
        "{dead:?}"
    );
    let tier = dead
        .iter()
        .find(|d| d.0 == "invalid_field")
        .expect("schema violation");
    assert!(
        tier.1.contains("customer.tier"),
        "the reason names the field: {}",
        tier.1
    );
    let too_large = dead.iter().find(|d| d.0 == "too_large").expect("oversized");
    assert!(
        too_large.2 > 2 * 1024 * 1024,
        "the dead letter keeps the whole record"
    );

    let pool = connect(&db).await;
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM tickets").await,
        valid.len() as i64
    );
    assert_eq!(
        scalar(
            &pool,
            "SELECT COUNT(*) FROM tickets WHERE ticket_id LIKE 'bad-%'"
        )
        .await,
        0
    );
    let metrics = reqwest::get(format!("{}/metrics", sevloop.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("sevloop_dead_letters_total{code=\"too_large\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_lost_with_its_directory_is_rebuilt_from_the_log_on_restart() {
    let tickets = background(600, 15);
    let (topic, _dir) = topic_with(&to_lines(&tickets), 3).await;
    let config = Config::for_topic(&topic).await;
    let db = config.database_url.clone();
    serve_until_stored(&config, tickets.len(), Duration::from_secs(120))
        .await
        .stop();
    std::fs::remove_dir_all(config.index_dir()).expect("index removed");

    let sevloop = Sevloop::serve_healthy(&config).await;
    let want = format!("sevloop_index_documents {}", tickets.len());
    eventually(
        "the index to be rebuilt from the log",
        Duration::from_secs(60),
        || async {
            let metrics = reqwest::get(format!("{}/metrics", sevloop.url))
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            metrics.lines().any(|l| l == want).then_some(())
        },
    )
    .await;
    let pool = connect(&db).await;
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM tickets").await,
        tickets.len() as i64,
        "no ticket counted twice"
    );
}
