//! Clusters: checkpoints written by the pipeline, and the read side for the cluster API.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use sevloop_core::{ClusterCheckpoint, TicketEvent};
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use crate::sevs::COVERING_FIRST;
use crate::tickets::{get, Filer};
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

/// Saves cluster checkpoints (state and detection window) in the pipeline's transaction. A
/// merged-away cluster records where it went, and clusters that had merged into it follow, so
/// `merged_into` always names a live cluster.
pub async fn save_clusters(
    conn: &mut AnyConnection,
    checkpoints: &[ClusterCheckpoint],
) -> Result<(), StoreError> {
    for cp in checkpoints {
        let c = &cp.cluster;
        let merged_into = c
            .merged_into
            .map(|seq| sevloop_core::cluster::cluster_id(&c.product, seq));
        // An empty checkpoint would restore as nothing: refuse the batch instead.
        let checkpoint = serde_json::to_string(cp).map_err(|e| StoreError::Encode {
            what: "cluster checkpoint",
            id: c.id.clone(),
            reason: e.to_string(),
        })?;
        let label: Vec<&str> = cp.label.iter().take(3).map(String::as_str).collect();
        sqlx::query(
            "INSERT INTO clusters (cluster_id, product, seq, label, size, first_seen, last_seen, checkpoint, merged_into) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (cluster_id) DO UPDATE SET label = excluded.label, size = excluded.size, \
             first_seen = excluded.first_seen, last_seen = excluded.last_seen, \
             checkpoint = excluded.checkpoint, merged_into = excluded.merged_into",
        )
        .bind(&c.id)
        .bind(&c.product)
        .bind(c.seq as i64)
        .bind(label.join(" · "))
        .bind(c.size as i64)
        .bind(to_ms(c.first_seen))
        .bind(to_ms(c.last_seen))
        .bind(checkpoint)
        .bind(merged_into.as_deref())
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(format!("save cluster {}", c.id), e))?;
        if let Some(into) = &merged_into {
            sqlx::query("UPDATE clusters SET merged_into = $1 WHERE merged_into = $2")
                .bind(into)
                .bind(&c.id)
                .execute(&mut *conn)
                .await
                .map_err(|e| StoreError::sql(format!("follow merge of {}", c.id), e))?;
        }
    }
    Ok(())
}

/// Restores a product's cluster checkpoints, merged-away clusters included.
pub async fn load_clusters(
    conn: &mut AnyConnection,
    product: &str,
) -> Result<Vec<ClusterCheckpoint>, StoreError> {
    let rows =
        sqlx::query("SELECT cluster_id, checkpoint FROM clusters WHERE product = $1 ORDER BY seq")
            .bind(product)
            .fetch_all(conn)
            .await
            .map_err(|e| StoreError::sql(format!("load clusters of {product}"), e))?;
    rows.iter().map(parse_checkpoint).collect()
}

fn parse_checkpoint(row: &AnyRow) -> Result<ClusterCheckpoint, StoreError> {
    let id: String = get(row, "cluster_id")?;
    let text: String = get(row, "checkpoint")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        what: "cluster checkpoint",
        id,
        reason: e.to_string(),
    })
}

/// A stored ticket as a correction needs it: its cluster, the event and its sentence vector.
#[derive(Debug, Clone)]
pub struct Member {
    pub ticket_id: String,
    pub cluster_id: String,
    pub ticket: TicketEvent,
    pub embedding: Option<Vec<f32>>,
}

/// The stored tickets among `ids` (unknown ids are left out).
pub async fn ticket_members(
    conn: &mut AnyConnection,
    ids: &[String],
) -> Result<Vec<Member>, StoreError> {
    let mut out = Vec::new();
    for id in ids {
        let row = sqlx::query(
            "SELECT ticket_id, cluster_id, raw, embedding FROM tickets WHERE ticket_id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| StoreError::sql(format!("read ticket {id}"), e))?;
        let Some(row) = row else { continue };
        let raw: String = get(&row, "raw")?;
        let ticket = TicketEvent::parse(raw.as_bytes()).map_err(|e| StoreError::Corrupt {
            what: "stored ticket",
            id: id.clone(),
            reason: e.to_string(),
        })?;
        let embedding: Option<Vec<u8>> = get(&row, "embedding")?;
        out.push(Member {
            ticket_id: get(&row, "ticket_id")?,
            cluster_id: get(&row, "cluster_id")?,
            ticket,
            embedding: embedding.map(|b| sevloop_core::cluster::vector::from_bytes(&b)),
        });
    }
    Ok(out)
}

/// Points a ticket at the cluster a correction put it in.
pub async fn set_ticket_cluster(
    conn: &mut AnyConnection,
    ticket_id: &str,
    cluster_id: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE tickets SET cluster_id = $1, similarity = 1.0, matched_terms = '[]' WHERE ticket_id = $2")
        .bind(cluster_id)
        .bind(ticket_id)
        .execute(conn)
        .await
        .map_err(|e| StoreError::sql(format!("move ticket {ticket_id}"), e))?;
    Ok(())
}

/// A correction as it was asked for and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorrectionRow {
    pub product: String,
    pub kind: String,
    pub request: serde_json::Value,
    pub actor_role: String,
    pub requested_at: DateTime<Utc>,
    pub outcome: String,
}

pub async fn record_correction(
    conn: &mut AnyConnection,
    c: &CorrectionRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO cluster_corrections (product, kind, request, actor_role, requested_at, outcome) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.product)
    .bind(&c.kind)
    .bind(c.request.to_string())
    .bind(&c.actor_role)
    .bind(to_ms(c.requested_at))
    .bind(&c.outcome)
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql("record correction", e))?;
    Ok(())
}

/// Little-endian f32s: the stored form of a sentence vector.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClusterSort {
    /// Most tickets first.
    #[default]
    Size,
    /// Most tickets in the last 24 hours of event time first.
    Growth,
    /// Most recently seen first.
    Recent,
}

#[derive(Debug, Clone, Default)]
pub struct ClusterFilter {
    pub product: Option<String>,
    pub sort: ClusterSort,
    pub limit: i64,
    pub offset: i64,
}

/// A live cluster as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterRow {
    pub cluster_id: String,
    pub product: String,
    pub label: String,
    pub size: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Tickets in the 24 hours of event time up to the newest ticket, and the 24 hours before.
    pub tickets_last_24h: i64,
    pub tickets_previous_24h: i64,
    pub sev_id: Option<String>,
    pub sev_state: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exemplar {
    pub ticket_id: String,
    pub similarity: f32,
    pub subject: String,
    pub body: String,
    #[serde(skip)]
    pub filed_by: Filer,
}

/// The live cluster an id resolves to, and its product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCluster {
    pub cluster_id: String,
    pub product: String,
}

/// One cluster with its explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterDetail {
    #[serde(flatten)]
    pub row: ClusterRow,
    pub top_terms: Vec<String>,
    pub exemplars: Vec<Exemplar>,
    /// Clusters merged into this one (by consolidation or by a person).
    pub merged_from: Vec<String>,
    /// Clusters a person split from this one; never merged back.
    pub kept_apart_from: Vec<String>,
}

const GROWTH_WINDOW_HOURS: i64 = 24;

impl Store {
    /// Live clusters by `f`; only the one with id `only` unless it is empty.
    async fn query_clusters(
        &self,
        f: &ClusterFilter,
        only: &str,
    ) -> Result<Vec<ClusterRow>, StoreError> {
        let order = match f.sort {
            ClusterSort::Size => "c.size DESC",
            ClusterSort::Growth => "recent DESC, c.size DESC",
            ClusterSort::Recent => "c.last_seen DESC",
        };
        let now = self.event_time_now().await?;
        let sql = format!(
            "SELECT c.cluster_id, c.product, c.label, c.size, c.first_seen, c.last_seen, \
             (SELECT COUNT(*) FROM tickets t JOIN clusters m ON m.cluster_id = t.cluster_id \
               WHERE COALESCE(m.merged_into, m.cluster_id) = c.cluster_id AND t.created_at > $1) AS recent, \
             (SELECT COUNT(*) FROM tickets t JOIN clusters m ON m.cluster_id = t.cluster_id \
               WHERE COALESCE(m.merged_into, m.cluster_id) = c.cluster_id \
               AND t.created_at > $2 AND t.created_at <= $1) AS previous, \
             cs.sev_id AS sev_id, cs.state AS sev_state \
             FROM clusters c LEFT JOIN sevs cs ON cs.sev_id = \
               (SELECT s.sev_id FROM sev_clusters k JOIN sevs s ON s.sev_id = k.sev_id \
               WHERE k.cluster_id = c.cluster_id ORDER BY {COVERING_FIRST} LIMIT 1) \
             WHERE c.merged_into IS NULL AND ($3 = '' OR c.product = $3) \
             AND ($6 = '' OR c.cluster_id = $6) \
             ORDER BY {order}, c.cluster_id LIMIT $4 OFFSET $5"
        );
        let window = Duration::hours(GROWTH_WINDOW_HOURS);
        let rows = sqlx::query(&sql)
            .bind(to_ms(now - window))
            .bind(to_ms(now - window - window))
            .bind(f.product.clone().unwrap_or_default())
            .bind(f.limit)
            .bind(f.offset)
            .bind(only)
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("list clusters", e))?;
        rows.iter().map(cluster_row).collect()
    }

    /// One cluster by id; a merged-away id answers with the cluster it went into.
    pub async fn cluster(&self, cluster_id: &str) -> Result<Option<ClusterDetail>, StoreError> {
        let Some(LiveCluster {
            cluster_id: live, ..
        }) = self.live_cluster(cluster_id).await?
        else {
            return Ok(None);
        };
        let row = sqlx::query("SELECT cluster_id, checkpoint FROM clusters WHERE cluster_id = $1")
            .bind(&live)
            .fetch_one(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("read cluster {live}"), e))?;
        let cp = parse_checkpoint(&row)?;
        let one = ClusterFilter {
            limit: 1,
            ..ClusterFilter::default()
        };
        let Some(row) = self.query_clusters(&one, &live).await?.pop() else {
            return Ok(None);
        };
        let merged_from: Vec<String> = sqlx::query_scalar(
            "SELECT cluster_id FROM clusters WHERE merged_into = $1 ORDER BY seq",
        )
        .bind(&live)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("merges into {live}"), e))?;
        let product = &cp.cluster.product;
        Ok(Some(ClusterDetail {
            row,
            top_terms: cp.label.clone(),
            exemplars: self.exemplars(&cp).await?,
            merged_from,
            kept_apart_from: cp
                .cluster
                .cannot_link
                .iter()
                .map(|seq| sevloop_core::cluster::cluster_id(product, *seq))
                .collect(),
        }))
    }

    /// Where a cluster id leads now (itself, or the cluster it was merged into) and its
    /// product: one indexed lookup, for callers that need no more than that.
    pub async fn live_cluster(&self, cluster_id: &str) -> Result<Option<LiveCluster>, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(merged_into, cluster_id) AS live, product FROM clusters WHERE cluster_id = $1",
        )
        .bind(cluster_id)
        .fetch_optional(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("resolve cluster {cluster_id}"), e))?;
        row.map(|r| {
            Ok(LiveCluster {
                cluster_id: get(&r, "live")?,
                product: get(&r, "product")?,
            })
        })
        .transpose()
    }

    async fn exemplars(&self, cp: &ClusterCheckpoint) -> Result<Vec<Exemplar>, StoreError> {
        let mut out = Vec::new();
        for e in &cp.cluster.exemplars {
            let row = sqlx::query(
                "SELECT subject, body, customer_id, raw FROM tickets WHERE ticket_id = $1",
            )
            .bind(&e.ticket_id)
            .fetch_optional(self.pool())
            .await
            .map_err(|err| StoreError::sql(format!("read exemplar {}", e.ticket_id), err))?;
            if let Some(row) = row {
                out.push(Exemplar {
                    ticket_id: e.ticket_id.clone(),
                    similarity: e.similarity,
                    subject: get(&row, "subject")?,
                    body: get(&row, "body")?,
                    filed_by: Filer::of(get(&row, "customer_id")?, &get::<String>(&row, "raw")?),
                });
            }
        }
        Ok(out)
    }

    /// The newest event time seen: "now" for growth figures, so they follow the stream, not the
    /// wall clock (a replayed week reads like the week it was).
    async fn event_time_now(&self) -> Result<DateTime<Utc>, StoreError> {
        let ms: Option<i64> = sqlx::query_scalar("SELECT MAX(last_seen) FROM clusters")
            .fetch_one(self.pool())
            .await
            .map_err(|e| StoreError::sql("latest event time", e))?;
        Ok(ms.map_or_else(Utc::now, from_ms))
    }
}

fn cluster_row(r: &AnyRow) -> Result<ClusterRow, StoreError> {
    Ok(ClusterRow {
        cluster_id: get(r, "cluster_id")?,
        product: get(r, "product")?,
        label: get(r, "label")?,
        size: get(r, "size")?,
        first_seen: from_ms(get(r, "first_seen")?),
        last_seen: from_ms(get(r, "last_seen")?),
        tickets_last_24h: get(r, "recent")?,
        tickets_previous_24h: get(r, "previous")?,
        sev_id: get(r, "sev_id")?,
        sev_state: get(r, "sev_state")?,
    })
}
