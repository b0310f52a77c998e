/// Store errors are infrastructure errors: the caller rolls back and retries without advancing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database url scheme `{scheme}` is not supported; use postgres:// or sqlite:")]
    UnsupportedUrl { scheme: String },
    #[error("failed to {operation}: {source}")]
    Sql {
        operation: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("failed to apply migrations: {source}")]
    Migrate {
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    #[error("stored {what} `{id}` is unreadable: {reason}")]
    Corrupt {
        what: &'static str,
        id: String,
        reason: String,
    },
    #[error("could not encode {what} `{id}` for storage: {reason}")]
    Encode {
        what: &'static str,
        id: String,
        reason: String,
    },
    /// Another consumer advanced this partition first (a rebalance overlap): roll back, re-read.
    #[error("offset of {topic}/{partition} moved under us (expected {expected:?})")]
    OffsetConflict {
        topic: String,
        partition: i32,
        expected: Option<i64>,
    },
}

impl StoreError {
    pub(crate) fn sql(operation: impl Into<String>, source: sqlx::Error) -> Self {
        StoreError::Sql {
            operation: operation.into(),
            source,
        }
    }
}
