//! `demo`: `up` on a fresh data directory, plus a replay of a bundled slice of BANKING77 with an
//! injected incident. Prints each SEV as it opens; leaves the dashboard running.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use sevloop_store::{SevFilter, Store};
use tokio_util::sync::CancellationToken;

use crate::app::{App, ALL_STAGES};
use sevloop_core::access::Role;

use crate::cli::DemoArgs;
use crate::commands::replay::{replay, Target};
use crate::config::Settings;

const TICKETS: &[u8] = include_bytes!("../../../../deploy/demo/banking77-demo.tickets.jsonl");
const SETTINGS: &str = include_str!("../../../../deploy/demo/sevloop.demo.toml");
const CATALOG: &str = include_str!("../../../../deploy/demo/catalog.toml");

pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (data_dir, _temp) = data_dir(args.data_dir)?;
    let mut settings: Settings =
        toml::from_str(SETTINGS).context("bundled demo settings are invalid")?;
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("failed to create {}", data_dir.display()))?;
    let catalog = data_dir.join("catalog.toml");
    std::fs::write(&catalog, CATALOG)
        .with_context(|| format!("failed to write {}", catalog.display()))?;
    settings.catalog = Some(catalog);
    settings.data_dir = data_dir;
    settings.http.listen = args.listen;
    settings.encoder.or_terms_if_missing();
    let app = App::build(settings, &ALL_STAGES).await?;
    let url = app
        .local_addr()
        .map(|a| format!("http://{a}"))
        .unwrap_or_default();
    println!("sevloop demo: dashboard on {url}");
    for (role, label) in [
        (Role::Admin, "admin"),
        (Role::Support, "support"),
        (
            Role::Team {
                team: "cards".into(),
            },
            "team cards",
        ),
        (Role::Leadership, "leadership"),
    ] {
        let (_, secret) = crate::commands::token::create(&app.store, &role, "demo").await?;
        println!("  {label} token: {secret}");
    }
    println!(
        "replaying a bundled slice of BANKING77 (CC BY 4.0, PolyAI) with an injected incident..."
    );
    let target = Target::Log {
        writer: app.writer(),
        topic: app.settings().pipeline.tickets_topic.clone(),
    };
    let store = app.store.clone();
    let topic = app.settings().pipeline.tickets_topic.clone();
    let running = tokio::spawn(app.run(shutdown.clone()));
    let lines: Vec<Vec<u8>> = TICKETS
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let watch = tokio::spawn(print_sevs(store.clone(), url.clone(), shutdown.clone()));
    replay(&target, &lines, args.rate, false, &shutdown).await?;
    wait_until_processed(&store, &topic, lines.len() as i64, &shutdown).await?;
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sevs = store.sevs(&SevFilter::default()).await?;
    println!(
        "replay finished: {} tickets, {} SEV(s) opened. Open {url} to look around (Ctrl-C stops).",
        lines.len(),
        sevs.len()
    );
    if args.exit {
        shutdown.cancel();
    }
    watch.await.context("the SEV watcher failed")?;
    running.await.context("sevloop failed")?
}

/// The given directory (which must be empty) or a fresh temporary one, removed on exit.
fn data_dir(given: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    match given {
        Some(dir) => {
            let used = std::fs::read_dir(&dir)
                .map(|mut d| d.next().is_some())
                .unwrap_or(false);
            if used {
                bail!(
                    "{} is not empty; the demo needs a new or empty directory",
                    dir.display()
                );
            }
            Ok((dir, None))
        }
        None => {
            let temp = tempfile::Builder::new().prefix("sevloop-demo-").tempdir()?;
            Ok((temp.path().to_path_buf(), Some(temp)))
        }
    }
}

async fn wait_until_processed(
    store: &Store,
    topic: &str,
    end: i64,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    while !shutdown.is_cancelled() {
        let stored = sevloop_store::stored_offsets(store, "embedded", topic).await?;
        if stored.get(&0).copied().unwrap_or(0) >= end {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn print_sevs(store: Store, url: String, shutdown: CancellationToken) {
    let started = std::time::Instant::now();
    let mut seen = BTreeSet::new();
    while !shutdown.is_cancelled() {
        if let Ok(sevs) = store.sevs(&SevFilter::default()).await {
            for s in sevs.iter().rev() {
                if !seen.insert(s.id.clone()) {
                    continue;
                }
                println!(
                    "{} opened after {:.1}s · {} · {} · {} tickets from {} customers · team {} · {url}/sevs/{}",
                    s.id,
                    started.elapsed().as_secs_f64(),
                    s.severity,
                    s.title,
                    s.ticket_count,
                    s.distinct_customers,
                    s.team,
                    s.id
                );
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => {}
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    }
}
