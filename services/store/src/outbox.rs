//! The transactional outbox: notifications are written with the SEV change that causes them and
//! delivered afterwards, at least once, each under a stable idempotency key (the row id, which
//! the dispatcher scopes by the installation's name).

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;

use crate::tickets::get;
use crate::time::{from_ms, to_ms};
use crate::{Store, StoreError};

pub struct NewNotification<'a> {
    /// The idempotency key's row part: the same SEV event to the same endpoint always gets the
    /// same id.
    pub id: String,
    pub sev_id: &'a str,
    pub endpoint: &'a str,
    /// Notifications with the same key are delivered one at a time, in the order queued (a
    /// SEV's events to one channel must not overtake each other).
    pub ordering_key: String,
    pub kind: &'a str,
    pub payload: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

/// Microseconds of the wall clock, strictly increasing within this process: the order
/// notifications are queued in (several are queued within one millisecond of one transaction).
fn next_seq() -> i64 {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = Utc::now().timestamp_micros();
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last + 1);
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(seen) => last = seen,
        }
    }
}

/// Queues a notification in the caller's transaction. Queuing the same id twice is a no-op.
pub async fn enqueue(conn: &mut AnyConnection, n: &NewNotification<'_>) -> Result<(), StoreError> {
    let at = to_ms(n.created_at);
    sqlx::query(
        "INSERT INTO outbox (id, sev_id, endpoint, kind, payload, state, attempts, next_attempt_at, \
         lease_until, created_at, seq, ordering_key) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, 0, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(&n.id)
    .bind(n.sev_id)
    .bind(n.endpoint)
    .bind(n.kind)
    .bind(n.payload.to_string())
    .bind(at)
    .bind(next_seq())
    .bind(&n.ordering_key)
    .execute(conn)
    .await
    .map_err(|e| StoreError::sql(format!("queue notification {}", n.id), e))?;
    Ok(())
}

/// Endpoints with held notifications (see [`Store::held`]), by name.
#[derive(Debug, Default)]
pub struct Held {
    /// Called again: their held notifications are to be settled.
    pub enabled: Vec<String>,
    /// Still disabled.
    pub disabled: Vec<String>,
}

/// One stream's held notification and those after it, oldest first (see [`Store::missed`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    pub ordering_key: String,
    pub sev_id: String,
    /// Whether a notification of the stream was delivered before.
    pub heard: bool,
    /// When the held notification was queued. Settling queues it anew, always later (by a
    /// millisecond if need be), so this tells a notification held again since it was read
    /// (sent, refused with 410 again) from the one read: a plan made for the first is stale
    /// for the second.
    pub queued_at: DateTime<Utc>,
    pub ids: Vec<String>,
    pub kinds: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub id: String,
    pub sev_id: String,
    pub endpoint: String,
    pub kind: String,
    #[serde(skip)]
    pub payload: String,
    pub state: String,
    pub attempts: i64,
    /// When it is tried next; none once it was delivered, given up, held or superseded.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, sev_id, endpoint, kind, payload, state, attempts, next_attempt_at, \
     last_error, created_at, delivered_at, seq";

impl Store {
    /// Takes up to `limit` due notifications under a lease, so two dispatchers never send the
    /// same one at once (a crashed dispatcher's lease simply expires). Only the oldest pending
    /// notification of each ordering key is due: the next waits until it is delivered or given
    /// up (a held one holds back those after it until its endpoint is called again). At most
    /// `per_endpoint` go to one endpoint, and endpoints in `busy` are skipped, so
    /// one slow receiver's backlog cannot fill the batch. Returned in the order they were
    /// queued.
    pub async fn lease_due(
        &self,
        now: DateTime<Utc>,
        lease: std::time::Duration,
        limit: i64,
        per_endpoint: i64,
        busy: &[String],
    ) -> Result<Vec<Notification>, StoreError> {
        let now_ms = to_ms(now);
        let until = now_ms + lease.as_millis() as i64;
        let skip = if busy.is_empty() {
            String::new()
        } else {
            let marks: Vec<String> = (0..busy.len()).map(|i| format!("${}", i + 5)).collect();
            format!("AND o.endpoint NOT IN ({}) ", marks.join(", "))
        };
        let sql = format!(
            "UPDATE outbox SET lease_until = $1 WHERE id IN (SELECT d.id FROM \
             (SELECT o.id, o.seq, ROW_NUMBER() OVER (PARTITION BY o.endpoint ORDER BY o.seq) AS nth \
             FROM outbox o WHERE o.state = 'pending' AND o.next_attempt_at <= $2 \
             AND o.lease_until <= $2 {skip}\
             AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.ordering_key = o.ordering_key \
             AND e.state IN ('pending', 'held') AND e.seq < o.seq)) d \
             WHERE d.nth <= $4 ORDER BY d.seq LIMIT $3) \
             AND lease_until <= $2 RETURNING {COLUMNS}"
        );
        let mut query = sqlx::query(&sql)
            .bind(until)
            .bind(now_ms)
            .bind(limit)
            .bind(per_endpoint);
        for endpoint in busy {
            query = query.bind(endpoint);
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql("lease due notifications", e))?;
        // RETURNING gives rows in storage order, not the subquery's.
        let mut leased: Vec<(i64, Notification)> = rows
            .iter()
            .map(|r| Ok((get(r, "seq")?, notification(r)?)))
            .collect::<Result<_, StoreError>>()?;
        leased.sort_by_key(|(seq, _)| *seq);
        Ok(leased.into_iter().map(|(_, n)| n).collect())
    }

    /// This installation's name (empty for one that had SEVs before it was named).
    pub async fn installation(&self) -> Result<String, StoreError> {
        sqlx::query_scalar("SELECT id FROM installation")
            .fetch_one(self.pool())
            .await
            .map_err(|e| StoreError::sql("read the installation's name", e))
    }

    /// Hands a leased notification back unattempted: it is due again at once.
    pub async fn release(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET lease_until = 0 WHERE id = $1 AND state = 'pending'")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("release {id}"), e))?;
        Ok(())
    }

    // The outcome of an attempt is recorded only on a row still pending: a dispatcher that
    // stalled past its lease must not turn a row another one delivered (or gave up, or held)
    // back into one to send.

    pub async fn mark_delivered(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET state = 'delivered', delivered_at = $1, attempts = attempts + 1, lease_until = 0 WHERE id = $2 AND state = 'pending'")
            .bind(to_ms(at))
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("mark {id} delivered"), e))?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or given up for good when `None`.
    pub async fn mark_failed(
        &self,
        id: &str,
        error: &str,
        retry_at: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        let (state, next) = match retry_at {
            Some(t) => ("pending", to_ms(t)),
            None => ("failed", 0),
        };
        sqlx::query("UPDATE outbox SET state = $1, next_attempt_at = $2, last_error = $3, attempts = attempts + 1, lease_until = 0 WHERE id = $4 AND state = 'pending'")
            .bind(state)
            .bind(next)
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("mark {id} failed"), e))?;
        Ok(())
    }

    /// Holds a notification while its endpoint is disabled (it answered 410 Gone), so that it
    /// and those queued after it to the same stream wait for the endpoint to be called again
    /// ([`Store::missed`]). `attempted` says whether this attempt reached the receiver.
    pub async fn mark_held(
        &self,
        id: &str,
        error: &str,
        attempted: bool,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE outbox SET state = 'held', next_attempt_at = 0, last_error = $1, attempts = attempts + $2, lease_until = 0 WHERE id = $3 AND state = 'pending'")
            .bind(error)
            .bind(i64::from(attempted))
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("hold {id}"), e))?;
        Ok(())
    }

    /// Endpoints with held notifications: those called again since (their 410 record is gone)
    /// and those still disabled.
    pub async fn held(&self) -> Result<Held, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT o.endpoint, (SELECT COUNT(*) FROM endpoints e \
             WHERE e.name = o.endpoint) AS disabled FROM outbox o WHERE o.state = 'held' \
             ORDER BY o.endpoint",
        )
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql("read endpoints with held notifications", e))?;
        let mut held = Held::default();
        for r in &rows {
            let endpoint = get(r, "endpoint")?;
            if get::<i64>(r, "disabled")? > 0 {
                held.disabled.push(endpoint);
            } else {
                held.enabled.push(endpoint);
            }
        }
        Ok(held)
    }

    /// What each of `endpoint`'s streams (a SEV's notifications to it; per ticket for the
    /// helpdesk) missed: its held notification and those queued after it, oldest first.
    pub async fn missed(&self, endpoint: &str) -> Result<Vec<Missed>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.sev_id, o.kind, o.ordering_key, o.created_at, \
             (SELECT COUNT(*) FROM outbox d WHERE d.ordering_key = o.ordering_key \
             AND d.state = 'delivered') AS heard FROM outbox o \
             WHERE o.endpoint = $1 AND o.state IN ('held', 'pending') AND EXISTS \
             (SELECT 1 FROM outbox h WHERE h.ordering_key = o.ordering_key AND h.state = 'held' \
             AND h.seq <= o.seq) ORDER BY o.ordering_key, o.seq",
        )
        .bind(endpoint)
        .fetch_all(self.pool())
        .await
        .map_err(|e| StoreError::sql(format!("read what {endpoint} missed"), e))?;
        let mut streams: Vec<Missed> = Vec::new();
        for r in &rows {
            let key: String = get(r, "ordering_key")?;
            if streams.last().is_none_or(|m| m.ordering_key != key) {
                streams.push(Missed {
                    ordering_key: key,
                    sev_id: get(r, "sev_id")?,
                    heard: get::<i64>(r, "heard")? > 0,
                    queued_at: from_ms(get(r, "created_at")?),
                    ids: Vec::new(),
                    kinds: Vec::new(),
                });
            }
            let stream = streams.last_mut().expect("pushed above");
            stream.ids.push(get(r, "id")?);
            stream.kinds.push(get(r, "kind")?);
        }
        Ok(streams)
    }

    /// Settles a stream's missed notifications in one transaction: `send` are queued anew (their
    /// retries start now), the others are marked superseded with `why`. The held notification
    /// (the first) is settled only if it is still held since it was read (same `queued_at`), so
    /// of two dispatchers settling the same stream at once one does and the other changes
    /// nothing, even if the first already sent it and saw it held again; returns whether this
    /// one did.
    pub async fn settle_missed(
        &self,
        missed: &Missed,
        send: &[bool],
        why: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let mut state = "held";
        for (id, &send) in missed.ids.iter().zip(send) {
            let query = if send {
                // Queued anew strictly later than before, even within one millisecond, so
                // `queued_at` tells every settling apart.
                sqlx::query("UPDATE outbox SET state = 'pending', next_attempt_at = $1, created_at = CASE WHEN created_at < $1 THEN $1 ELSE created_at + 1 END WHERE id = $2 AND state = $3 AND (state <> 'held' OR created_at = $4)")
                    .bind(to_ms(now))
            } else {
                sqlx::query("UPDATE outbox SET state = 'superseded', next_attempt_at = 0, last_error = $1 WHERE id = $2 AND state = $3 AND (state <> 'held' OR created_at = $4)")
                    .bind(why)
            };
            let done = query
                .bind(id)
                .bind(state)
                .bind(to_ms(missed.queued_at))
                .execute(&mut *tx)
                .await
                .map_err(|e| StoreError::sql(format!("settle {id}"), e))?;
            if state == "held" && done.rows_affected() == 0 {
                return Ok(false); // settled by another dispatcher; rolled back on drop
            }
            state = "pending";
        }
        tx.commit()
            .await
            .map_err(|e| StoreError::sql(format!("settle {}", missed.ordering_key), e))?;
        Ok(true)
    }

    /// Delivery state of a SEV's notifications.
    pub async fn notifications_of(&self, sev_id: &str) -> Result<Vec<Notification>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM outbox WHERE sev_id = $1 ORDER BY seq, id");
        let rows = sqlx::query(&sql)
            .bind(sev_id)
            .fetch_all(self.pool())
            .await
            .map_err(|e| StoreError::sql(format!("read notifications of {sev_id}"), e))?;
        rows.iter().map(notification).collect()
    }
}

fn notification(r: &AnyRow) -> Result<Notification, StoreError> {
    let delivered: Option<i64> = get(r, "delivered_at")?;
    let state: String = get(r, "state")?;
    let next = (state == "pending")
        .then(|| get(r, "next_attempt_at").map(from_ms))
        .transpose()?;
    Ok(Notification {
        id: get(r, "id")?,
        sev_id: get(r, "sev_id")?,
        endpoint: get(r, "endpoint")?,
        kind: get(r, "kind")?,
        payload: get(r, "payload")?,
        state,
        attempts: get(r, "attempts")?,
        next_attempt_at: next,
        last_error: get(r, "last_error")?,
        created_at: from_ms(get(r, "created_at")?),
        delivered_at: delivered.map(from_ms),
    })
}
