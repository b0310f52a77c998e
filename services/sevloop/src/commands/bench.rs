//! `bench`: replays generated tickets through the whole pipeline and prints end-to-end
//! throughput and the latency from appending the ticket that crosses the floor rule to the SEV
//! being committed. Embedded always; Kafka + PostgreSQL too with `--kafka`.

use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;
use sevloop_store::{SevFilter, Store};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Stage};
use crate::cli::BenchArgs;
use crate::commands::replay::{replay, Target};
use crate::config::{KafkaSection, Settings};

const BACKGROUND: &[u8] = include_bytes!("../../../../deploy/demo/banking77-demo.tickets.jsonl");
const BURST: usize = 20;
/// Gap between burst tickets: longer than any SEV latency, so the crossing ticket is unambiguous.
const BURST_GAP: Duration = Duration::from_millis(300);

struct Figures {
    mode: &'static str,
    tickets: usize,
    seconds: f64,
    sev_latency: Option<Duration>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let background = background(args.tickets)?;
    // The loop's own cost, on terms alone: the encoder's (about 4 ms of CPU per ticket) is
    // measured apart, in ../shared/MODELS.md and `eval`.
    let terms_only = || {
        let mut settings = Settings::default();
        settings.encoder.enabled = false;
        settings
    };
    let mut results = vec![measure("embedded", terms_only(), &background).await?];
    if let Some(brokers) = &args.kafka {
        let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S%3f");
        let topic = format!("sevloop.bench.{stamp}");
        sevloop_bus::kafka::create_topic(brokers, &topic, 3).await?;
        let db = sevloop_store::create_postgres_database(
            &args.database_url,
            &format!("sevloop_bench_{stamp}"),
        )
        .await?;
        let mut settings = Settings {
            kafka: Some(KafkaSection {
                brokers: brokers.clone(),
                group_id: format!("sevloop-bench-{stamp}"),
                ..KafkaSection::default()
            }),
            ..terms_only()
        };
        settings.database.url = db;
        settings.pipeline.tickets_topic = topic;
        results.push(measure("kafka+postgres", settings, &background).await?);
    }
    println!(
        "{:<16} {:>9} {:>9} {:>12} {:>18}",
        "mode", "tickets", "seconds", "tickets/s", "sev latency (ms)"
    );
    for f in &results {
        let latency = f.sev_latency.map_or("no SEV".to_string(), |d| {
            format!("{:.1}", d.as_secs_f64() * 1000.0)
        });
        println!(
            "{:<16} {:>9} {:>9.2} {:>12.0} {:>18}",
            f.mode,
            f.tickets,
            f.seconds,
            f.tickets as f64 / f.seconds,
            latency
        );
    }
    Ok(())
}

async fn measure(
    mode: &'static str,
    mut settings: Settings,
    background: &[Vec<u8>],
) -> anyhow::Result<Figures> {
    let temp = tempfile::Builder::new()
        .prefix("sevloop-bench-")
        .tempdir()?;
    settings.data_dir = temp.path().to_path_buf();
    settings.http.listen = "127.0.0.1:0".parse()?;
    let stages = [Stage::Pipeline];
    let app = App::build(settings, &stages).await?;
    let store = app.store.clone();
    let target = Target::Log {
        writer: app.writer(),
        topic: app.settings().pipeline.tickets_topic.clone(),
    };
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));
    eprintln!("bench ({mode}): replaying {} tickets...", background.len());
    let started = Instant::now();
    replay(&target, background, 0, true, &shutdown).await?;
    wait_for_tickets(&store, background.len() as i64).await?;
    let seconds = started.elapsed().as_secs_f64();
    let sev_latency = burst_latency(&target, &store, background.len()).await?;
    shutdown.cancel();
    running.await.context("pipeline task failed")??;
    Ok(Figures {
        mode,
        tickets: background.len(),
        seconds,
        sev_latency,
    })
}

/// Waits until the pipeline has stored `n` tickets.
pub(crate) async fn wait_for_tickets(store: &Store, n: i64) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while store.stats().await?.tickets < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the pipeline did not catch up within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Sends the burst one ticket at a time and returns the time from sending the ticket that crossed
/// the rule (the latest burst ticket among the SEV's evidence) to the SEV being visible.
async fn burst_latency(
    target: &Target,
    store: &Store,
    background: usize,
) -> anyhow::Result<Option<Duration>> {
    let cancel = CancellationToken::new();
    // The background may open SEVs of its own; the burst's is the first new one.
    let before = store.sevs(&SevFilter::default()).await?.len();
    eprintln!("the background opened {before} SEV(s)");
    let mut sent = Vec::new();
    for line in burst(background) {
        sent.push(Instant::now());
        replay(target, &[line], 0, false, &cancel).await?;
        if let Some(latency) = watch_for_sev(store, before, &sent, BURST_GAP).await? {
            return Ok(Some(latency));
        }
    }
    watch_for_sev(store, before, &sent, Duration::from_secs(10)).await
}

async fn watch_for_sev(
    store: &Store,
    before: usize,
    sent: &[Instant],
    wait: Duration,
) -> anyhow::Result<Option<Duration>> {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        let sevs = store.sevs(&SevFilter::default()).await?;
        if sevs.len() > before {
            let seen = Instant::now();
            let evidence = store.sev_ticket_ids(&sevs[0].id).await?;
            let crossing = evidence
                .iter()
                .filter_map(|t| t.strip_prefix("burst-")?.parse::<usize>().ok())
                .max()
                .with_context(|| {
                    format!("{} opened during the burst is not the burst's", sevs[0].id)
                })?;
            eprintln!("SEV opened by burst ticket {}", crossing + 1);
            return Ok(sent.get(crossing).map(|t| seen - *t));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Ok(None)
}

fn background_start() -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap_or_default()
}

/// Background tickets from the bundled BANKING77 slice, cycled with fresh ids, two seconds apart.
pub(crate) fn background(n: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let rows: Vec<serde_json::Value> = BACKGROUND
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(serde_json::from_slice)
        .collect::<Result<_, _>>()
        .context("bundled tickets are invalid")?;
    let start = background_start();
    Ok((0..n)
        .map(|i| {
            let mut t = rows[i % rows.len()].clone();
            t["ticket_id"] = json!(format!("bench-{i}"));
            t["event_time"] = json!((start + chrono::Duration::seconds(2 * i as i64)).to_rfc3339());
            serde_json::to_vec(&t).unwrap_or_default()
        })
        .collect())
}

/// A burst of one new complaint from distinct customers, right after `background` tickets of an
/// established product (a brand-new product's first clusters wait out its warm-up).
fn burst(background: usize) -> Vec<Vec<u8>> {
    let start = background_start() + chrono::Duration::seconds(2 * background as i64);
    (0..BURST)
        .map(|i| {
            let t = json!({"ticket_id": format!("burst-{i}"), "event": "created",
                "event_time": (start + chrono::Duration::seconds(20 * i as i64)).to_rfc3339(),
                "subject": "Checkout fails", "body": format!("Checkout fails with error 500 when I pay for order {}", 1000 + i),
                "product": "cards", "customer": {"id": format!("bench-cust-{i}"), "tier": "pro"},
                "channel": "web", "source": "bench"});
            serde_json::to_vec(&t).unwrap_or_default()
        })
        .collect()
}
