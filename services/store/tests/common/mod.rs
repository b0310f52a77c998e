//! What the store's test crates share: a fresh store on each backend.

use chrono::Utc;
use sevloop_store::Store;

/// A fresh SQLite store and a fresh PostgreSQL store (a new database named after `name`); a
/// missing PostgreSQL fails the test, loudly.
pub async fn stores(name: &str) -> (Vec<Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite_url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
    let sqlite = Store::connect(&sqlite_url).await.expect("sqlite store");
    let server = std::env::var("SEVLOOP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!(
        "sevloop_test_{name}_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    let url = sevloop_store::create_postgres_database(&server, &db)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not usable at {server} ({e}); start it with scripts/services.sh")
        });
    let postgres = Store::connect(&url).await.expect("postgres store");
    (vec![sqlite, postgres], dir)
}
