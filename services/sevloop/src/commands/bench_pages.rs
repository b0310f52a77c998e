//! `bench-pages`: how fast the dashboard answers under a realistic load. The embedded mode takes
//! `--tickets` generated tickets through the whole pipeline, then `--sevs` SEVs are opened over
//! them (linked tickets, timelines, a mix of states) with the store's own writes; every page is
//! then requested `--requests` times over HTTP by a logged-in admin (who may open every page), and the latency
//! p50 / p95 / max per page printed.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use sevloop_core::access::Role;
use sevloop_core::detect::Verdict;
use sevloop_core::sev::SevAction;
use sevloop_core::{Escalation, SevState};
use sevloop_store::{NewSev, Store};
use tokio_util::sync::CancellationToken;

use crate::app::{App, Stage};
use crate::cli::BenchPagesArgs;
use crate::commands::bench::{background, wait_for_tickets};
use crate::commands::replay::{replay, Target};
use crate::config::Settings;

/// Tickets linked to each SEV.
const LINKED: usize = 20;

pub async fn run(args: BenchPagesArgs) -> anyhow::Result<()> {
    let temp = tempfile::Builder::new()
        .prefix("sevloop-bench-pages-")
        .tempdir()?;
    let mut settings = Settings {
        data_dir: temp.path().to_path_buf(),
        ..Settings::default()
    };
    settings.http.listen = "127.0.0.1:0".parse()?;
    // Page latency does not depend on how tickets were clustered: terms alone load faster.
    settings.encoder.enabled = false;
    let app = App::build(settings, &[Stage::Api, Stage::Pipeline]).await?;
    let base = format!("http://{}", app.local_addr().context("the API listens")?);
    let store = app.store.clone();
    let target = Target::Log {
        writer: app.writer(),
        topic: app.settings().pipeline.tickets_topic.clone(),
    };
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.run(shutdown.clone()));

    eprintln!(
        "bench-pages: {} tickets through the pipeline...",
        args.tickets
    );
    let tickets = background(args.tickets)?;
    replay(&target, &tickets, 0, true, &shutdown).await?;
    wait_for_tickets(&store, tickets.len() as i64).await?;
    eprintln!("bench-pages: opening {} SEVs...", args.sevs);
    let sevs = open_sevs(&store, args.sevs, args.tickets).await?;

    let client = reqwest::Client::new();
    let cookie = log_in(&base, &store).await?;
    println!(
        "{} tickets, {} SEVs, {} requests per page (embedded mode, one client)",
        args.tickets, args.sevs, args.requests
    );
    println!(
        "{:<22} {:>9} {:>9} {:>9}",
        "page", "p50 ms", "p95 ms", "max ms"
    );
    for (name, path) in pages(&store, &sevs).await? {
        let mut times = Vec::with_capacity(args.requests);
        for _ in 0..args.requests {
            times.push(time_page(&client, &base, &path, &cookie).await?);
        }
        times.sort();
        println!(
            "{name:<22} {:>9.1} {:>9.1} {:>9.1}",
            ms(percentile(&times, 0.50)),
            ms(percentile(&times, 0.95)),
            ms(times[times.len() - 1]),
        );
    }
    shutdown.cancel();
    running.await.context("sevloop failed")??;
    Ok(())
}

/// The pages measured, with real ids from the loaded data.
async fn pages(store: &Store, sevs: &[String]) -> anyhow::Result<Vec<(&'static str, String)>> {
    let sev = sevs.first().context("no SEV was opened")?;
    let ticket = store
        .ticket("bench-0")
        .await?
        .context("the first ticket is stored")?;
    Ok(vec![
        ("SEV list", "/".to_string()),
        ("SEV list, filtered", "/?state=open&sort=customers".into()),
        ("SEV page", format!("/sevs/{sev}")),
        ("clusters by volume", "/clusters".into()),
        ("clusters by growth", "/clusters?sort=growth".into()),
        ("cluster page", format!("/clusters/{}", ticket.cluster_id)),
        ("search", "/search?q=card+payment".into()),
        ("ticket page", format!("/tickets/{}", ticket.ticket_id)),
        ("leadership", "/leadership".into()),
    ])
}

/// Opens `n` SEVs, each over `LINKED` consecutive tickets, a quarter in each of open,
/// acknowledged, resolved and declined.
async fn open_sevs(store: &Store, n: usize, tickets: usize) -> anyhow::Result<Vec<String>> {
    let stride = (tickets / n.max(1)).max(LINKED);
    let mut opened = Vec::with_capacity(n);
    for i in 0..n {
        let ids: Vec<String> = (0..LINKED)
            .map(|k| format!("bench-{}", (i * stride + k) % tickets))
            .collect();
        let first = store
            .ticket(&ids[0])
            .await?
            .with_context(|| format!("ticket {} is stored", ids[0]))?;
        let escalation = escalation(i, &first.cluster_id, first.created_at, &ids);
        let mut tx = store.begin().await?;
        let new = NewSev {
            escalation: &escalation,
            title: &format!("Bench complaint {i}"),
            team: ["payments", "cards", "accounts", "triage"][i % 4],
            product: &first.product,
            created_at: Utc::now(),
            previous_sev: None,
        };
        let Some(sev_id) = sevloop_store::open_sev(&mut tx, &new).await? else {
            continue;
        };
        sevloop_store::link_tickets(&mut tx, &sev_id, &ids, first.created_at).await?;
        let detail = serde_json::json!({"rule": "floor"});
        sevloop_store::add_sev_event(&mut tx, &sev_id, "opened", "sevloop", Utc::now(), &detail)
            .await?;
        for action in actions(i) {
            let state = sevloop_store::sev_in(&mut tx, &sev_id)
                .await?
                .and_then(|s| SevState::parse(&s.state))
                .unwrap_or(SevState::Open);
            let next = state.after(&action)?;
            let at = Utc::now() + chrono::Duration::minutes(5 + i as i64 % 60);
            sevloop_store::apply_transition(&mut tx, &sev_id, &action, next, at).await?;
        }
        tx.commit().await.context("commit a SEV")?;
        opened.push(sev_id);
    }
    Ok(opened)
}

fn actions(i: usize) -> Vec<SevAction> {
    match i % 4 {
        0 => vec![],
        1 => vec![SevAction::Acknowledge],
        2 => vec![SevAction::Acknowledge, SevAction::Resolve],
        _ => vec![SevAction::Decline {
            reason: "a known third-party outage".into(),
        }],
    }
}

fn escalation(
    i: usize,
    cluster_id: &str,
    at: chrono::DateTime<Utc>,
    evidence: &[String],
) -> Escalation {
    let count = evidence.len() as u64;
    Escalation {
        id: format!("bench-escalation-{i}"),
        cluster_id: cluster_id.to_string(),
        rule: "floor".into(),
        episode: i as u32,
        window_start: at,
        fired_at: at,
        first_ticket_at: at,
        ticket_count: count,
        distinct_customers: count,
        evidence: evidence.to_vec(),
        verdict: Verdict {
            tickets: count,
            customers: count,
            customer_weight: count as f64,
            expected: 1.0,
            p_value: 0.0,
            span_minutes: 30.0,
            floor: true,
            ..Verdict::default()
        },
    }
}

/// An admin's session cookie, made by logging in with a fresh token like a person would.
async fn log_in(base: &str, store: &Store) -> anyhow::Result<String> {
    let (token_id, secret) = sevloop_http::auth::new_token();
    let hash = sevloop_http::auth::hash(&secret);
    store
        .create_token(&token_id, &hash, &Role::Admin, "bench-pages", Utc::now())
        .await?;
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?
        .post(format!("{base}/login"))
        .form(&[("token", secret.as_str())])
        .send()
        .await?;
    let cookie = answer
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .context("logging in sets the session cookie")?;
    Ok(cookie.to_string())
}

async fn time_page(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    cookie: &str,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let answer = client
        .get(format!("{base}{path}"))
        .header(reqwest::header::COOKIE, cookie)
        .send()
        .await?;
    let status = answer.status();
    answer.bytes().await?;
    anyhow::ensure!(status.is_success(), "{path} answered {status}");
    Ok(started.elapsed())
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
