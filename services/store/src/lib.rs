//! The only crate that speaks SQL. PostgreSQL in production, SQLite in the embedded default, both
//! through sqlx's `Any` driver so every query is written once.
//!
//! Functions that belong to the pipeline's transaction take `&mut AnyConnection` (a transaction
//! derefs to one), so ticket rows, cluster checkpoints, SEVs, outbox rows and the consumed
//! offsets commit together or not at all.

mod auth;
mod clusters;
mod dashboard;
mod error;
mod leadership;
mod lifecycle;
mod offsets;
mod outbox;
mod sevs;
mod tickets;
mod time;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Transaction};

pub use auth::{Revoked, TokenRow};
pub use clusters::{
    load_clusters, record_correction, save_clusters, set_ticket_cluster, ticket_members,
    ClusterDetail, ClusterFilter, ClusterRow, ClusterSort, CorrectionRow, Exemplar, LiveCluster,
    Member,
};
pub use dashboard::{ChannelState, Facets, Growth};
pub use error::StoreError;
pub use leadership::{
    Declined, LeadTime, Overview, ParetoRow, Period, Rerouted, TeamNumbers, Week,
};
pub use lifecycle::{
    action_seen, apply_transition, cluster_owner, mark_escalated, record_action, reopen,
    set_cluster_owner, ActionRow, DisabledEndpoint,
};
pub use offsets::{advance_offset, read_offset, stored_offsets};
pub use outbox::enqueue;
pub use outbox::{Held, Missed, NewNotification, Notification};
pub use sevs::{
    add_sev_event, cover_cluster, cover_clusters_of, latest_sev_of_cluster, link_tickets, open_sev,
    sev_cluster_ids, sev_in, sev_ticket_ids, update_severity,
};
pub use sevs::{NewSev, SevFilter, SevRow, SevSort, TimelineEvent};
pub use tickets::{insert_ticket, known_tickets, update_ticket, Filer, KnownTicket, TicketRow};
pub use time::{from_ms, to_ms};

static POSTGRES: Migrator = sqlx::migrate!("../../migrations/postgres");
static SQLITE: Migrator = sqlx::migrate!("../../migrations/sqlite");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// A handle on the database. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    dialect: Dialect,
}

pub type Tx = Transaction<'static, sqlx::Any>;

/// A connection (or a transaction, which derefs to one) the statements run on.
pub type Conn = AnyConnection;

impl Store {
    /// Connects (creating an SQLite file if needed) and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(StoreError::UnsupportedUrl {
                scheme: url.split(':').next().unwrap_or_default().to_string(),
            });
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::sql("parse database url", e))?
            .disable_statement_logging();
        let max = if dialect == Dialect::Sqlite { 4 } else { 16 };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::sql("connect to the database", e))?;
        let store = Store { pool, dialect };
        store.prepare().await?;
        Ok(store)
    }

    async fn prepare(&self) -> Result<(), StoreError> {
        let migrator = match self.dialect {
            Dialect::Postgres => &POSTGRES,
            Dialect::Sqlite => {
                // WAL lets the API read while the pipeline writes; it persists in the file.
                sqlx::query("PRAGMA journal_mode = WAL")
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::sql("enable WAL", e))?;
                &SQLITE
            }
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|source| StoreError::Migrate { source })
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Begins a transaction. On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a
    /// transaction that reads first and writes later would otherwise fail with SQLITE_BUSY
    /// whenever another connection (the dispatcher) committed in between, busy timeout or not.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        let begun = match self.dialect {
            Dialect::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Dialect::Postgres => self.pool.begin().await,
        };
        begun.map_err(|e| StoreError::sql("begin transaction", e))
    }

    pub async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Any>, StoreError> {
        self.pool
            .acquire()
            .await
            .map_err(|e| StoreError::sql("acquire connection", e))
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::sql("ping", e))
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Counts for `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub tickets: i64,
    pub clusters: i64,
    pub open_sevs: i64,
    pub outbox_pending: i64,
}

impl Store {
    pub async fn stats(&self) -> Result<Stats, StoreError> {
        let mut conn = self.conn().await?;
        Ok(Stats {
            tickets: count(&mut conn, "SELECT COUNT(*) FROM tickets").await?,
            clusters: count(&mut conn, "SELECT COUNT(*) FROM clusters").await?,
            open_sevs: count(
                &mut conn,
                "SELECT COUNT(*) FROM sevs WHERE state NOT IN ('resolved', 'declined', 'merged')",
            )
            .await?,
            outbox_pending: count(
                &mut conn,
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'",
            )
            .await?,
        })
    }
}

async fn count(conn: &mut AnyConnection, sql: &'static str) -> Result<i64, StoreError> {
    sqlx::query_scalar(sql)
        .fetch_one(conn)
        .await
        .map_err(|e| StoreError::sql(sql, e))
}

/// Creates a new, empty PostgreSQL database on the server at `server_url` and returns its URL
/// (tests and `bench` get a database of their own).
pub async fn create_postgres_database(server_url: &str, name: &str) -> Result<String, StoreError> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(StoreError::UnsupportedUrl {
            scheme: format!("database name {name}"),
        });
    }
    let mut conn = AnyConnection::connect(server_url)
        .await
        .map_err(|e| StoreError::sql(format!("connect to {server_url}"), e))?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .map_err(|e| StoreError::sql(format!("create database {name}"), e))?;
    let (base, query) = match server_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (server_url, String::new()),
    };
    let root = base.rsplit_once('/').map_or(base, |(r, _)| r);
    Ok(format!("{root}/{name}{query}"))
}
