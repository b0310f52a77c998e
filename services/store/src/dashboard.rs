//! Reads only the dashboard needs: a page of clusters with their growth, a SEV's growth over
//! event time, one page of its tickets, the delivery state of its notifications per channel, the
//! values its filters offer, and the top terms of a page of clusters. Each is one indexed query
//! (or two), whatever the data size.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;

use crate::clusters::{ClusterFilter, ClusterRow, ClusterSort};
use crate::sevs::COVERING_FIRST;
use crate::tickets::{get, Filer};
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

/// A SEV's linked tickets counted per bucket of their event time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Growth {
    pub bucket_hours: i64,
    /// Start of each bucket and its tickets, oldest first, empty buckets included.
    pub buckets: Vec<(DateTime<Utc>, i64)>,
}

/// Most buckets a growth chart gets; wider buckets are used for longer SEVs.
const MAX_BUCKETS: i64 = 48;
const BUCKET_HOURS: [i64; 8] = [1, 2, 3, 6, 12, 24, 48, 168];
const HOUR_MS: i64 = 3_600_000;
/// Cluster growth compares the last day of event time with the day before.
const DAY_MS: i64 = 24 * HOUR_MS;

/// Folds per-hour counts (`(hours since the epoch, tickets)`, ascending) into at most
/// [`MAX_BUCKETS`] buckets of a round width.
fn growth_buckets(hourly: &[(i64, i64)]) -> Growth {
    let (Some(&(first, _)), Some(&(last, _))) = (hourly.first(), hourly.last()) else {
        return Growth {
            bucket_hours: 1,
            buckets: Vec::new(),
        };
    };
    let aligned = |w: i64| first - first.rem_euclid(w);
    let width = BUCKET_HOURS
        .into_iter()
        .chain(std::iter::successors(Some(336), |w: &i64| w.checked_mul(2)))
        .find(|&w| (last - aligned(w)) / w < MAX_BUCKETS)
        .unwrap_or(i64::MAX);
    let start = aligned(width);
    let n = (last - start) / width + 1;
    let mut counts = vec![0i64; n as usize];
    for &(hour, tickets) in hourly {
        counts[((hour - start) / width) as usize] += tickets;
    }
    let buckets = counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| (from_ms((start + i as i64 * width) * HOUR_MS), c))
        .collect();
    Growth {
        bucket_hours: width,
        buckets,
    }
}

/// Delivery of a SEV's notifications to one endpoint (a channel, the events topic, the helpdesk).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChannelState {
    pub endpoint: String,
    pub delivered: i64,
    pub pending: i64,
    /// Waiting for the endpoint, disabled by a 410, to be called again.
    pub held: i64,
    /// Given up on (4xx, a channel no longer in the catalog, or retried past the give-up time).
    pub failed: i64,
    /// Not sent: the SEV closed while the endpoint was disabled, so a later change stood for
    /// them (or nothing, for a receiver that never heard of the SEV).
    pub superseded: i64,
    /// Most attempts any one of them took.
    pub attempts: i64,
    pub last_delivered_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Why the endpoint was disabled (it answered 410 Gone), if it was.
    pub disabled: Option<String>,
}

/// Values the dashboard's filters offer.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facets {
    /// Teams that have SEVs.
    pub teams: Vec<String>,
    /// Products that have clusters.
    pub products: Vec<String>,
}

#[derive(Deserialize)]
struct Labelled {
    #[serde(default)]
    label: Vec<String>,
}

impl Store {
    /// One page of live clusters by `f`, and how many there are: the rows the cluster API lists,
    /// with the two days of growth counted in one pass over those days' tickets (an index range)
    /// rather than once per cluster.
    pub async fn clusters_page(
        &self,
        f: &ClusterFilter,
    ) -> Result<(Vec<ClusterRow>, i64), StoreError> {
        let order = match f.sort {
            ClusterSort::Size => "c.size DESC",
            ClusterSort::Growth => "g.recent DESC, c.size DESC",
            ClusterSort::Recent => "c.last_seen DESC",
        };
        // "Now" is the newest event time seen, so growth follows the stream, not the wall clock.
        // Every cluster starts at zero; the last two days' tickets (an index range) add to the
        // cluster they now belong to.
        let sql = format!(
            "WITH b AS (SELECT COALESCE(MAX(last_seen), $1) AS now FROM clusters), \
             x AS (SELECT cluster_id AS live, 0 AS recent, 0 AS previous FROM clusters \
               UNION ALL SELECT COALESCE(m.merged_into, t.cluster_id), \
               CASE WHEN t.created_at > b.now - $2 THEN 1 ELSE 0 END, \
               CASE WHEN t.created_at > b.now - $2 THEN 0 ELSE 1 END \
               FROM b JOIN tickets t ON t.created_at > b.now - 2 * $2 \
               JOIN clusters m ON m.cluster_id = t.cluster_id), \
             g AS (SELECT live, SUM(recent) AS recent, SUM(previous) AS previous FROM x GROUP BY live) \
             SELECT c.cluster_id, c.product, c.label, c.size, c.first_seen, c.last_seen, \
             g.recent, g.previous FROM g JOIN clusters c ON c.cluster_id = g.live \
             WHERE c.merged_into IS NULL AND ($3 = '' OR c.product = $3) \
             ORDER BY {order}, c.cluster_id LIMIT $4 OFFSET $5"
        );
        let product = f.product.clone().unwrap_or_default();
        let rows = sqlx::query(&sql)
            .bind(to_ms(Utc::now()))
            .bind(DAY_MS)
            .bind(&product)
            .bind(f.limit)
            .bind(f.offset)
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("list a page of clusters", e))?;
        let total: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM clusters WHERE merged_into IS NULL AND ($1 = '' OR product = $1)",
        )
        .bind(&product)
        .fetch_one(self.pool())
        .await
        .map_err(|e| StoreError::sql("count clusters", e))?;
        let ids: Vec<String> = rows
            .iter()
            .map(|r| get(r, "cluster_id"))
            .collect::<Result<_, _>>()?;
        let mut sevs = self.latest_sevs(&ids).await?;
        let page = rows
            .iter()
            .map(|r| {
                let id: String = get(r, "cluster_id")?;
                let (sev_id, sev_state) = sevs.remove(&id).unzip();
                Ok(ClusterRow {
                    product: get(r, "product")?,
                    label: get(r, "label")?,
                    size: get(r, "size")?,
                    first_seen: from_ms(get(r, "first_seen")?),
                    last_seen: from_ms(get(r, "last_seen")?),
                    tickets_last_24h: get(r, "recent")?,
                    tickets_previous_24h: get(r, "previous")?,
                    cluster_id: id,
                    sev_id,
                    sev_state,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok((page, total))
    }

    /// The newest SEV (id and state) of each of `cluster_ids` that has one.
    async fn latest_sevs(
        &self,
        cluster_ids: &[String],
    ) -> Result<BTreeMap<String, (String, String)>, StoreError> {
        let sql = format!(
            "SELECT k.cluster_id, s.sev_id, s.state FROM sev_clusters k \
             JOIN sevs s ON s.sev_id = k.sev_id WHERE k.cluster_id IN ({{ids}}) \
             ORDER BY {COVERING_FIRST}"
        );
        let rows = self
            .rows_in(&sql, cluster_ids, "read the SEVs of clusters")
            .await?;
        let mut latest = BTreeMap::new();
        for r in &rows {
            let sev = (get(r, "sev_id")?, get(r, "state")?);
            latest.entry(get(r, "cluster_id")?).or_insert(sev);
        }
        Ok(latest)
    }

    /// The SEV's linked tickets per bucket of event time (when they were filed).
    pub async fn sev_growth(&self, sev_id: &str) -> Result<Growth, StoreError> {
        let rows = sqlx::query(
            "SELECT t.created_at / 3600000 AS h, COUNT(*) AS n FROM sev_tickets st \
             JOIN tickets t ON t.ticket_id = st.ticket_id WHERE st.sev_id = $1 GROUP BY 1 ORDER BY 1",
        )
        .bind(sev_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read growth of {sev_id}"), e))?;
        let hourly: Vec<(i64, i64)> = rows
            .iter()
            .map(|r| Ok((get(r, "h")?, get(r, "n")?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(growth_buckets(&hourly))
    }

    /// One page of a SEV's linked ticket ids, in link order (the SEV's `ticket_count` is the total).
    pub async fn sev_tickets_page(
        &self,
        sev_id: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT ticket_id FROM sev_tickets WHERE sev_id = $1 \
             ORDER BY linked_at, ticket_id LIMIT $2 OFFSET $3",
        )
        .bind(sev_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read a page of tickets of {sev_id}"), e))
    }

    /// Delivery state of a SEV's notifications, per endpoint.
    pub async fn sev_channels(&self, sev_id: &str) -> Result<Vec<ChannelState>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.endpoint, o.state, COUNT(*) AS n, MAX(o.attempts) AS attempts, \
             MAX(o.delivered_at) AS delivered, MAX(e.reason) AS disabled FROM outbox o \
             LEFT JOIN endpoints e ON e.name = o.endpoint WHERE o.sev_id = $1 \
             GROUP BY o.endpoint, o.state ORDER BY o.endpoint",
        )
        .bind(sev_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read deliveries of {sev_id}"), e))?;
        let mut channels: BTreeMap<String, ChannelState> = BTreeMap::new();
        for r in &rows {
            let endpoint: String = get(r, "endpoint")?;
            let c = channels.entry(endpoint.clone()).or_default();
            c.endpoint = endpoint;
            let n: i64 = get(r, "n")?;
            match get::<String>(r, "state")?.as_str() {
                "delivered" => c.delivered += n,
                "pending" => c.pending += n,
                "held" => c.held += n,
                "superseded" => c.superseded += n,
                _ => c.failed += n,
            }
            c.attempts = c.attempts.max(get(r, "attempts")?);
            let delivered = get::<Option<i64>>(r, "delivered")?.map(from_ms);
            c.last_delivered_at = c.last_delivered_at.max(delivered);
            c.disabled = c.disabled.take().or(get(r, "disabled")?);
        }
        for (endpoint, error) in self.latest_errors(sev_id).await? {
            if let Some(c) = channels.get_mut(&endpoint) {
                c.last_error.get_or_insert(error);
            }
        }
        Ok(channels.into_values().collect())
    }

    /// The newest delivery errors of a SEV's notifications, newest first. A superseded one's
    /// reason is no error: it is counted apart.
    async fn latest_errors(&self, sev_id: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT endpoint, last_error FROM outbox WHERE sev_id = $1 AND last_error IS NOT NULL \
             AND state <> 'superseded' ORDER BY seq DESC LIMIT 100",
        )
        .bind(sev_id)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read delivery errors of {sev_id}"), e))?;
        rows.iter()
            .map(|r| Ok((get(r, "endpoint")?, get(r, "last_error")?)))
            .collect()
    }

    /// The teams that have SEVs and the products that have clusters.
    pub async fn facets(&self) -> Result<Facets, StoreError> {
        let distinct = |sql: &'static str| async move {
            sqlx::query_scalar::<_, String>(sql)
                .fetch_all(self.pool())
                .await
                .map_err(|e| StoreError::sql(sql, e))
        };
        Ok(Facets {
            teams: distinct("SELECT DISTINCT team FROM sevs ORDER BY team").await?,
            products: distinct("SELECT DISTINCT product FROM clusters ORDER BY product").await?,
        })
    }

    /// The top terms of each of `cluster_ids` (a page of them), from their checkpoints.
    pub async fn cluster_terms(
        &self,
        cluster_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, StoreError> {
        let rows = self
            .rows_in(
                "SELECT cluster_id, checkpoint FROM clusters WHERE cluster_id IN ({ids})",
                cluster_ids,
                "read cluster terms",
            )
            .await?;
        rows.iter()
            .map(|r| {
                let id: String = get(r, "cluster_id")?;
                let text: String = get(r, "checkpoint")?;
                let terms = serde_json::from_str::<Labelled>(&text)
                    .map_err(|e| StoreError::Corrupt {
                        what: "cluster checkpoint",
                        id: id.clone(),
                        reason: e.to_string(),
                    })?
                    .label;
                Ok((id, terms))
            })
            .collect()
    }
}

/// `$1, …, $n` for a portable IN list; `NULL` (matching nothing) for none.
impl Store {
    /// The filers of `ticket_ids` (those that exist), for redacting what other roles see.
    pub async fn filers(
        &self,
        ticket_ids: &[String],
    ) -> Result<BTreeMap<String, Filer>, StoreError> {
        let rows = self
            .rows_in(
                "SELECT ticket_id, customer_id, raw FROM tickets WHERE ticket_id IN ({ids})",
                ticket_ids,
                "read the filers of tickets",
            )
            .await?;
        rows.iter()
            .map(|r| {
                let filer = Filer::of(get(r, "customer_id")?, &get::<String>(r, "raw")?);
                Ok((get(r, "ticket_id")?, filer))
            })
            .collect()
    }
}

impl Store {
    /// The rows of `sql`, whose `{ids}` stands for the list of `ids` (one bound parameter each).
    async fn rows_in(
        &self,
        sql: &str,
        ids: &[String],
        what: &str,
    ) -> Result<Vec<AnyRow>, StoreError> {
        let sql = sql.replace("{ids}", &placeholders(ids.len()));
        ids.iter()
            .fold(sqlx::query(&sql), |q, id| q.bind(id))
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql(what, e))
    }
}

fn placeholders(n: usize) -> String {
    if n == 0 {
        return "NULL".to_string();
    }
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_keeps_hours_for_a_short_sev_and_widens_buckets_for_a_long_one() {
        let short = growth_buckets(&[(100, 2), (102, 5)]);
        assert_eq!(short.bucket_hours, 1);
        let counts: Vec<i64> = short.buckets.iter().map(|b| b.1).collect();
        assert_eq!(counts, vec![2, 0, 5]);
        assert_eq!(short.buckets[0].0, from_ms(100 * HOUR_MS));

        let long = growth_buckets(&[(0, 1), (23, 1), (24 * 10, 3)]);
        assert_eq!(long.bucket_hours, 6);
        assert!(long.buckets.len() as i64 <= MAX_BUCKETS);
        assert_eq!(long.buckets.iter().map(|b| b.1).sum::<i64>(), 5);
        assert_eq!(long.buckets[0].1, 1);
        assert_eq!(
            long.buckets[3].1, 1,
            "hour 23 is in the fourth 6-hour bucket"
        );
    }

    #[test]
    fn growth_of_a_very_long_sev_stays_within_the_bucket_limit() {
        let g = growth_buckets(&[(5, 1), (24 * 7 * 100, 1)]);
        assert!(g.buckets.len() as i64 <= MAX_BUCKETS, "{}", g.buckets.len());
        assert_eq!(g.buckets.iter().map(|b| b.1).sum::<i64>(), 2);
        assert!(growth_buckets(&[]).buckets.is_empty());
    }
}
