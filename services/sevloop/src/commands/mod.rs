pub mod backtest;
pub mod bench;
pub mod bench_clustering;
pub mod bench_pages;
pub mod demo;
pub mod digest;
pub mod endpoint;
pub mod eval;
pub mod replay;
pub mod serve;
pub mod token;
pub mod up;

use anyhow::Context;
use sevloop_store::Store;

use crate::cli::DatabaseArgs;
use crate::config::Settings;

/// The database `database` names. Only `token create` makes an embedded one (the first admin
/// token may come before `up`); every other command refuses a data directory without one, so
/// a mistyped `--data-dir` is named instead of answered from a new, empty database.
pub(crate) async fn open(database: &DatabaseArgs) -> anyhow::Result<Store> {
    connect(database, false).await
}

pub(crate) async fn connect(database: &DatabaseArgs, create: bool) -> anyhow::Result<Store> {
    store_of(&settings(database)?, create).await
}

/// The database `settings` name (see [`open`]).
pub(crate) async fn store_of(settings: &Settings, create: bool) -> anyhow::Result<Store> {
    if settings.database.url.is_empty() {
        let file = settings.embedded_database();
        if !create && !file.exists() {
            anyhow::bail!(
                "{} holds no sevloop database (no {}); check the path, or start sevloop there \
                 first with `sevloop up --data-dir {}`",
                settings.data_dir.display(),
                file.display(),
                settings.data_dir.display()
            );
        }
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("failed to create {}", settings.data_dir.display()))?;
    }
    Store::connect(&settings.database_url())
        .await
        .context("failed to open the database")
}

/// The settings `database` names: the settings file's or, given a data directory, the
/// embedded mode's there (as `up` runs it).
pub(crate) fn settings(database: &DatabaseArgs) -> anyhow::Result<Settings> {
    let mut settings = Settings::load(database.config.as_deref())?;
    if let Some(dir) = &database.data_dir {
        settings.embedded_in(dir.clone());
    }
    Ok(settings)
}
