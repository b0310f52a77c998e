//! `digest`: the leadership numbers of the last days as one email-ready HTML document (the
//! dashboard's `/leadership/digest`), printed, written to a file, or posted to a webhook. Run it
//! daily from cron or a Kubernetes CronJob: `sevloop digest --config F --post URL`.

use anyhow::Context;
use chrono::{Duration, Utc};
use sevloop_core::redact::Redactor;
use sevloop_store::Period;

use crate::cli::DigestArgs;
use crate::commands::open;

/// Clusters the Pareto of the digest lists.
const PARETO: i64 = 10;

pub async fn run(args: DigestArgs) -> anyhow::Result<()> {
    let store = open(&args.database).await?;
    let to = Utc::now();
    let period = Period {
        from: Some(to - Duration::days(args.days)),
        to: Some(to),
    };
    let numbers = sevloop_http::leadership::numbers(&store, &Redactor::new(), period, PARETO)
        .await
        .context("failed to read the leadership numbers")?;
    let words = sevloop_http::period_words(period.from, period.to);
    let html = sevloop_http::digest_html(&numbers, &words);
    if let Some(path) = &args.out {
        std::fs::write(path, &html)
            .with_context(|| format!("failed to write {}", path.display()))?;
    }
    match &args.post {
        Some(url) => post(url, &words, &html).await?,
        None if args.out.is_none() => println!("{html}"),
        None => {}
    }
    Ok(())
}

/// Posts `{subject, period, html}`: what a mail relay or chat webhook needs to pass it on.
async fn post(url: &str, period: &str, html: &str) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "subject": format!("sevloop digest: {period}"),
        "period": period,
        "html": html,
    });
    let answer = reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("failed to post the digest to {url}"))?;
    anyhow::ensure!(
        answer.status().is_success(),
        "{url} answered {} to the digest",
        answer.status()
    );
    eprintln!("digest for {period} posted to {url}");
    Ok(())
}
