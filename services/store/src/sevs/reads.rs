//! Reading SEVs: one SEV, the SEV a cluster's tickets now belong to and a SEV's linked tickets
//! inside the caller's transaction, and on [`Store`] the pages, customers and timeline the API
//! shows.

use sqlx::AnyConnection;

use super::{sev_row, SevFilter, SevRow, TimelineEvent, SEV_COLUMNS};
use crate::tickets::{get, Filer};
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

/// One SEV, read inside the caller's transaction.
pub async fn sev_in(conn: &mut AnyConnection, sev_id: &str) -> Result<Option<SevRow>, StoreError> {
    let sql = format!("SELECT {SEV_COLUMNS} FROM sevs WHERE sev_id = $1");
    let row = sqlx::query(&sql)
        .bind(sev_id)
        .fetch_optional(conn)
        .await
        .map_err(|e| StoreError::sql(format!("read {sev_id}"), e))?;
    row.as_ref().map(sev_row).transpose()
}

/// The SEV a cluster's tickets now belong to: its latest episode's, or, for a cluster that
/// never opened one, the latest SEV it joined; followed through merges.
pub async fn latest_sev_of_cluster(
    conn: &mut AnyConnection,
    cluster_id: &str,
) -> Result<Option<SevRow>, StoreError> {
    let latest: Option<String> = sqlx::query_scalar(
        "SELECT sev_id FROM sevs WHERE cluster_id = $1 ORDER BY episode DESC LIMIT 1",
    )
    .bind(cluster_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| StoreError::sql(format!("find SEV of cluster {cluster_id}"), e))?;
    let latest = match latest {
        Some(own) => Some(own),
        None => sqlx::query_scalar(
            "SELECT s.sev_id FROM sev_clusters c JOIN sevs s ON s.sev_id = c.sev_id \
             WHERE c.cluster_id = $1 ORDER BY s.number DESC LIMIT 1",
        )
        .bind(cluster_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(format!("find SEV cluster {cluster_id} joined"), e))?,
    };
    let Some(mut sev_id) = latest else {
        return Ok(None);
    };
    // Each merge lengthens the chain by one (a person cannot merge into a merged SEV, but can
    // merge the SEV a chain ends in); a chain of 16 is far past any real one.
    for _ in 0..16 {
        let Some(row) = sev_in(conn, &sev_id).await? else {
            return Ok(None);
        };
        match &row.merged_into {
            Some(into) => sev_id = into.clone(),
            None => return Ok(Some(row)),
        }
    }
    Ok(None)
}

/// The clusters a SEV covers: its own and those that joined it or came with a SEV merged
/// into it.
pub async fn sev_cluster_ids(
    conn: &mut AnyConnection,
    sev_id: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar("SELECT cluster_id FROM sev_clusters WHERE sev_id = $1 ORDER BY cluster_id")
        .bind(sev_id)
        .fetch_all(conn)
        .await
        .map_err(|e| StoreError::sql(format!("read clusters of {sev_id}"), e))
}

/// Linked ticket ids, in link order.
pub async fn sev_ticket_ids(
    conn: &mut AnyConnection,
    sev_id: &str,
) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar(
        "SELECT ticket_id FROM sev_tickets WHERE sev_id = $1 ORDER BY linked_at, ticket_id",
    )
    .bind(sev_id)
    .fetch_all(conn)
    .await
    .map_err(|e| StoreError::sql(format!("read tickets of {sev_id}"), e))
}

impl Store {
    /// A page of the SEVs `filter` picks, and how many it picks in all.
    pub async fn sevs_page(&self, f: &SevFilter) -> Result<(Vec<SevRow>, i64), StoreError> {
        const WHERE: &str = "($1 = '' OR state = $1) AND ($2 = '' OR team = $2) \
             AND ($3 = '' OR severity = $3) AND ($4 = '' OR product = $4) \
             AND opened_at >= $5 AND opened_at < $6";
        fn bound<'q>(
            sql: &'q str,
            f: &SevFilter,
        ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
            sqlx::query(sql)
                .bind(f.state.clone().unwrap_or_default())
                .bind(f.team.clone().unwrap_or_default())
                .bind(f.severity.clone().unwrap_or_default())
                .bind(f.product.clone().unwrap_or_default())
                .bind(f.from.map_or(i64::MIN, to_ms))
                .bind(f.to.map_or(i64::MAX, to_ms))
        }
        let sql = format!(
            "SELECT {SEV_COLUMNS} FROM sevs WHERE {WHERE} ORDER BY {} LIMIT $7 OFFSET $8",
            f.sort.order_by()
        );
        let rows = bound(&sql, f)
            .bind(if f.limit > 0 { f.limit } else { 100 })
            .bind(f.offset.max(0))
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("list SEVs", e))?;
        let total_sql = format!("SELECT COUNT(*) AS n FROM sevs WHERE {WHERE}");
        let total: i64 = get(
            &bound(&total_sql, f)
                .fetch_one(self.pool())
                .await
                .map_err(|e| StoreError::sql("count SEVs", e))?,
            "n",
        )?;
        Ok((rows.iter().map(sev_row).collect::<Result<_, _>>()?, total))
    }

    /// The first page of the SEVs `filter` picks.
    pub async fn sevs(&self, filter: &SevFilter) -> Result<Vec<SevRow>, StoreError> {
        Ok(self.sevs_page(filter).await?.0)
    }

    pub async fn sev(&self, sev_id: &str) -> Result<Option<SevRow>, StoreError> {
        sev_in(&mut *self.conn().await?, sev_id).await
    }

    /// Linked ticket ids, in link order.
    pub async fn sev_ticket_ids(&self, sev_id: &str) -> Result<Vec<String>, StoreError> {
        sev_ticket_ids(&mut *self.conn().await?, sev_id).await
    }

    /// The customers of a SEV's tickets as each ticket names them (one customer may give a
    /// name on one ticket and none on another), each once.
    pub async fn sev_filers(&self, sev_id: &str) -> Result<Vec<Filer>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.customer_id, t.raw FROM sev_tickets st \
             JOIN tickets t ON t.ticket_id = st.ticket_id WHERE st.sev_id = $1",
        )
        .bind(sev_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read the customers of {sev_id}"), e))?;
        let mut filers = rows
            .iter()
            .map(|r| Ok(Filer::of(get(r, "customer_id")?, &get::<String>(r, "raw")?)))
            .collect::<Result<Vec<Filer>, StoreError>>()?;
        let key = |f: &Filer| (f.id.clone(), f.name.clone(), f.email.clone());
        filers.sort_by_key(key);
        filers.dedup_by_key(|f| key(f));
        Ok(filers)
    }

    pub async fn sev_timeline(&self, sev_id: &str) -> Result<Vec<TimelineEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT kind, actor_role, at, detail FROM sev_events WHERE sev_id = $1 ORDER BY id",
        )
        .bind(sev_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read timeline of {sev_id}"), e))?;
        rows.iter()
            .map(|r| {
                let detail: String = get(r, "detail")?;
                Ok(TimelineEvent {
                    kind: get(r, "kind")?,
                    actor_role: get(r, "actor_role")?,
                    at: from_ms(get(r, "at")?),
                    detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}
