use anyhow::bail;
use tokio_util::sync::CancellationToken;

use crate::app::{App, ALL_STAGES};
use crate::cli::ServeArgs;
use crate::config::Settings;

pub async fn run(args: ServeArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = Settings::load(Some(&args.config))?;
    if settings.kafka.is_none() {
        bail!(
            "{} has no [kafka] section; `serve` runs on Kafka (use `up` for the embedded mode)",
            args.config.display()
        );
    }
    let stages = match args.only {
        Some(stage) => vec![stage],
        None => ALL_STAGES.to_vec(),
    };
    let app = App::build(settings, &stages).await?;
    if let Some(addr) = app.local_addr() {
        println!("sevloop is serving: API on http://{addr}");
    }
    app.run(shutdown).await
}
