//! Consumed offsets, stored with the effects. `next_offset` is the next record to read.

use std::collections::BTreeMap;

use sqlx::{AnyConnection, Row};

use crate::{Store, StoreError};

/// Next offsets of every partition of `topic` this consumer has stored.
pub async fn stored_offsets(
    store: &Store,
    consumer: &str,
    topic: &str,
) -> Result<BTreeMap<i32, i64>, StoreError> {
    let rows = sqlx::query(
        "SELECT log_partition, next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2",
    )
    .bind(consumer)
    .bind(topic)
    .fetch_all(store.pool())
    .await
    .map_err(|e| StoreError::sql("read stored offsets", e))?;
    rows.iter()
        .map(|r| {
            let p: i64 = r
                .try_get(0)
                .map_err(|e| StoreError::sql("decode offset", e))?;
            let o: i64 = r
                .try_get(1)
                .map_err(|e| StoreError::sql("decode offset", e))?;
            Ok((p as i32, o))
        })
        .collect()
}

pub async fn read_offset(
    conn: &mut AnyConnection,
    consumer: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>, StoreError> {
    sqlx::query_scalar(
        "SELECT next_offset FROM consumer_offsets WHERE consumer = $1 AND topic = $2 AND log_partition = $3",
    )
    .bind(consumer)
    .bind(topic)
    .bind(partition as i64)
    .fetch_optional(conn)
    .await
    .map_err(|e| StoreError::sql("read offset", e))
}

/// Compare-and-set: moves the partition from `expected` to `next`. Fails with `OffsetConflict`
/// when another consumer moved it first, so its transaction (and ours) never double-apply.
pub async fn advance_offset(
    conn: &mut AnyConnection,
    consumer: &str,
    topic: &str,
    partition: i32,
    expected: Option<i64>,
    next: i64,
) -> Result<(), StoreError> {
    let result = match expected {
        Some(expected) => sqlx::query(
            "UPDATE consumer_offsets SET next_offset = $1 \
             WHERE consumer = $2 AND topic = $3 AND log_partition = $4 AND next_offset = $5",
        )
        .bind(next)
        .bind(consumer)
        .bind(topic)
        .bind(partition as i64)
        .bind(expected),
        None => sqlx::query(
            "INSERT INTO consumer_offsets (next_offset, consumer, topic, log_partition) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(next)
        .bind(consumer)
        .bind(topic)
        .bind(partition as i64),
    }
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql("advance offset", e))?;
    if result.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::OffsetConflict {
            topic: topic.to_string(),
            partition,
            expected,
        })
    }
}
