//! `replay`: append a JSONL file of ticket events to the ticket log at a chosen rate, with
//! progress. Through the API, invalid lines are refused and reported (and the rest of their batch
//! is resent); straight to Kafka, lines go as they are, so bad ones reach the dead-letter topic.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sevloop_bus::kafka::KafkaProducer;
use sevloop_bus::{LogWriter, Outgoing};
use tokio_util::sync::CancellationToken;

use crate::cli::ReplayArgs;

const BATCH: usize = 100;

/// Where replayed tickets go.
pub enum Target {
    Log {
        writer: LogWriter,
        topic: String,
    },
    Api {
        client: reqwest::Client,
        url: String,
    },
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Replayed {
    pub sent: usize,
    pub rejected: usize,
}

pub async fn run(args: ReplayArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let lines = read_lines(&args.file)?;
    let target = match (&args.api, &args.kafka) {
        (Some(api), _) => Target::Api {
            client: api_client(args.token.as_deref())?,
            url: format!("{}/api/v1/tickets", api.trim_end_matches('/')),
        },
        (None, Some(brokers)) => Target::Log {
            writer: LogWriter::Kafka(KafkaProducer::new(brokers)?),
            topic: args.topic.clone(),
        },
        (None, None) => bail!("give --api URL or --kafka BROKERS"),
    };
    let started = Instant::now();
    let done = replay(&target, &lines, args.rate, true, &shutdown).await?;
    eprintln!(
        "replayed {} tickets ({} rejected) in {:.1}s",
        done.sent,
        done.rejected,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A client that sends the token with every request.
fn api_client(token: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .context("the token is not a valid header value")?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
    }
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .build()?)
}

pub fn read_lines(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let text = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    Ok(text
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(<[u8]>::to_vec)
        .collect())
}

/// Sends `lines` in order at `rate` per second (0: unpaced), printing progress if asked.
pub async fn replay(
    target: &Target,
    lines: &[Vec<u8>],
    rate: u32,
    progress: bool,
    shutdown: &CancellationToken,
) -> anyhow::Result<Replayed> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut done = Replayed::default();
    let batch = if rate == 0 {
        BATCH
    } else {
        (rate as usize / 10).clamp(1, BATCH)
    };
    for chunk in lines.chunks(batch) {
        if shutdown.is_cancelled() {
            break;
        }
        done.rejected += target.send(chunk).await?;
        done.sent += chunk.len();
        if rate > 0 {
            let due = started + Duration::from_secs_f64(done.sent as f64 / rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        if progress && last_report.elapsed() >= Duration::from_secs(1) {
            let per_sec = done.sent as f64 / started.elapsed().as_secs_f64();
            eprintln!("replayed {}/{} ({per_sec:.0}/s)", done.sent, lines.len());
            last_report = Instant::now();
        }
    }
    Ok(done)
}

impl Target {
    /// Sends one batch; returns how many lines were refused.
    async fn send(&self, lines: &[Vec<u8>]) -> anyhow::Result<usize> {
        match self {
            Target::Log { writer, topic } => {
                let records = lines.iter().map(|l| Outgoing {
                    key: product_key(l),
                    payload: l.clone(),
                    headers: vec![],
                });
                writer.send(topic, records.collect()).await?;
                Ok(0)
            }
            Target::Api { client, url } => post_batch(client, url, lines).await,
        }
    }
}

/// The message key is the product, so a product's tickets stay in order on one partition.
fn product_key(line: &[u8]) -> Option<Vec<u8>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    v.get("product")?.as_str().map(|p| p.as_bytes().to_vec())
}

async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    lines: &[Vec<u8>],
) -> anyhow::Result<usize> {
    let mut items: Vec<serde_json::Value> = Vec::with_capacity(lines.len());
    let mut rejected = 0;
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_slice(line) {
            Ok(v) => items.push(v),
            Err(e) => {
                eprintln!("line {} of this batch is not JSON ({e}); skipped", i + 1);
                rejected += 1;
            }
        }
    }
    while !items.is_empty() {
        let resp = post_with_retries(client, url, &items).await?;
        if resp.status().is_success() {
            break;
        }
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        let bad: Vec<usize> = body["errors"]
            .as_array()
            .map(|errs| {
                errs.iter()
                    .filter_map(|e| e["index"].as_u64())
                    .map(|i| i as usize)
                    .collect()
            })
            .unwrap_or_default();
        if status != reqwest::StatusCode::UNPROCESSABLE_ENTITY || bad.is_empty() {
            bail!("the API refused a batch with {status}: {body}");
        }
        for e in body["errors"].as_array().into_iter().flatten() {
            eprintln!("refused: {}", e["message"].as_str().unwrap_or_default());
        }
        rejected += bad.len();
        items = items
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !bad.contains(i))
            .map(|(_, v)| v)
            .collect();
    }
    Ok(rejected)
}

async fn post_with_retries(
    client: &reqwest::Client,
    url: &str,
    items: &[serde_json::Value],
) -> anyhow::Result<reqwest::Response> {
    let mut wait = Duration::from_millis(200);
    for _ in 0..6 {
        match client.post(url).json(items).send().await {
            Ok(resp) if resp.status() != reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                return Ok(resp)
            }
            Ok(resp) => eprintln!("the API is unavailable ({}); retrying", resp.status()),
            Err(e) => eprintln!("failed to reach the API ({e}); retrying"),
        }
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
    bail!("the API at {url} did not accept the batch after retries")
}
