use tokio_util::sync::CancellationToken;

use crate::app::{App, ALL_STAGES};
use crate::cli::UpArgs;
use crate::config::Settings;

pub async fn run(args: UpArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut settings = Settings::load(args.config.as_deref())?;
    settings.embedded_in(args.data_dir);
    settings.http.listen = args.listen;
    settings.kafka = None;
    settings.encoder.or_terms_if_missing();
    let app = App::build(settings, &ALL_STAGES).await?;
    if let Some(addr) = app.local_addr() {
        println!("sevloop is up: dashboard and API on http://{addr}");
        if app.store.tokens().await?.is_empty() {
            println!(
                "no tokens yet: `sevloop token create --role admin --data-dir {}` makes the first",
                app.settings().data_dir.display()
            );
        }
    }
    app.run(shutdown).await
}
