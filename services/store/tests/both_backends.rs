//! The store's guarantees, checked on SQLite and on PostgreSQL (a fresh database per test; a
//! missing PostgreSQL fails the test).

use chrono::{DateTime, Utc};
use sevloop_core::{Escalation, Severity};
use sevloop_store::{NewNotification, NewSev, Store, StoreError};

fn postgres_server() -> String {
    std::env::var("SEVLOOP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh SQLite store and a fresh PostgreSQL store.
async fn stores(name: &str) -> (Vec<Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = Store::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("t.db").display()
    ))
    .await
    .expect("sqlite store");
    let db = format!(
        "sevloop_store_{name}_{}_{}",
        std::process::id(),
        Utc::now().timestamp_micros()
    );
    let server = postgres_server();
    let url = sevloop_store::create_postgres_database(&server, &db)
        .await
        .unwrap_or_else(|e| {
            panic!("PostgreSQL is not usable at {server} ({e}); start it with scripts/services.sh")
        });
    let postgres = Store::connect(&url).await.expect("postgres store");
    (vec![sqlite, postgres], dir)
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-01-03T14:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn escalation() -> Escalation {
    Escalation {
        id: "esc-0001".into(),
        cluster_id: "cards:1".into(),
        rule: "floor".into(),
        episode: 1,
        window_start: t0(),
        fired_at: t0(),
        first_ticket_at: t0(),
        ticket_count: 8,
        distinct_customers: 6,
        evidence: vec![],
    }
}

fn new_sev(escalation: &Escalation) -> NewSev<'_> {
    NewSev {
        escalation,
        title: "t",
        severity: Severity::Sev4,
        team: "triage",
        first_ticket_at: t0(),
    }
}

#[tokio::test]
async fn offsets_move_only_by_compare_and_set() {
    let (stores, _dir) = stores("offsets").await;
    for store in stores {
        let mut tx = store.begin().await.expect("tx");
        assert_eq!(
            sevloop_store::read_offset(&mut tx, "g", "t", 0)
                .await
                .expect("read"),
            None
        );
        sevloop_store::advance_offset(&mut tx, "g", "t", 0, None, 10)
            .await
            .expect("first");
        tx.commit().await.expect("commit");

        let mut tx = store.begin().await.expect("tx");
        let stale = sevloop_store::advance_offset(&mut tx, "g", "t", 0, Some(5), 20).await;
        assert!(
            matches!(
                stale,
                Err(StoreError::OffsetConflict {
                    expected: Some(5),
                    ..
                })
            ),
            "{stale:?}"
        );
        let again = sevloop_store::advance_offset(&mut tx, "g", "t", 0, None, 20).await;
        assert!(
            matches!(again, Err(StoreError::OffsetConflict { .. })),
            "an insert over an existing row conflicts"
        );
        sevloop_store::advance_offset(&mut tx, "g", "t", 0, Some(10), 20)
            .await
            .expect("in step");
        tx.commit().await.expect("commit");
        let stored = sevloop_store::stored_offsets(&store, "g", "t")
            .await
            .expect("offsets");
        assert_eq!(stored.get(&0), Some(&20), "{:?}", store.dialect());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_concurrent_attempts_to_open_a_sev_for_one_cluster_episode_open_one() {
    let (stores, _dir) = stores("race").await;
    for store in stores {
        let attempts = (0..16).map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let e = Escalation {
                    id: format!("esc-{i}"),
                    ..escalation()
                };
                let new = new_sev(&e);
                // Each attempt retries on a serialization failure, as the pipeline's restart would.
                for _ in 0..50 {
                    let Ok(mut tx) = store.begin().await else {
                        continue;
                    };
                    match sevloop_store::open_sev(&mut tx, &new).await {
                        Ok(opened) => {
                            if tx.commit().await.is_ok() {
                                return opened;
                            }
                        }
                        Err(_) => {
                            let _ = tx.rollback().await;
                        }
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                panic!("attempt {i} never committed");
            })
        });
        let results = futures::future::join_all(attempts).await;
        let opened: Vec<String> = results
            .into_iter()
            .filter_map(|r| r.expect("task"))
            .collect();
        assert_eq!(opened.len(), 1, "{:?}: {opened:?}", store.dialect());
        let all = store.sevs(&Default::default()).await.expect("sevs");
        assert_eq!(all.len(), 1, "{:?}", store.dialect());
        assert_eq!(all[0].cluster_id, "cards:1");
    }
}

#[tokio::test]
async fn a_leased_notification_is_not_handed_out_twice_and_a_retry_waits() {
    let (stores, _dir) = stores("outbox").await;
    for store in stores {
        let mut tx = store.begin().await.expect("tx");
        let e = escalation();
        let new = new_sev(&e);
        let sev = sevloop_store::open_sev(&mut tx, &new)
            .await
            .expect("open")
            .expect("new SEV");
        let n = NewNotification {
            id: "esc-0001.opened.ops".into(),
            sev_id: &sev,
            endpoint: "ops",
            kind: "sev.opened",
            payload: serde_json::json!({"sev": {"id": sev}}),
            created_at: t0(),
        };
        sevloop_store::enqueue(&mut tx, &n).await.expect("enqueue");
        sevloop_store::enqueue(&mut tx, &n)
            .await
            .expect("enqueue twice is a no-op");
        tx.commit().await.expect("commit");

        let now = t0() + chrono::Duration::seconds(1);
        let leaser = &store;
        let lease = |at| async move {
            leaser
                .lease_due(at, std::time::Duration::from_secs(60), 10)
                .await
                .expect("lease")
        };
        let first = lease(now).await;
        assert_eq!(first.len(), 1, "{:?}", store.dialect());
        assert!(
            lease(now).await.is_empty(),
            "leased rows are not handed out again"
        );

        let retry_at = now + chrono::Duration::seconds(30);
        store
            .mark_failed(&first[0].id, "receiver answered 500", Some(retry_at))
            .await
            .expect("fail");
        assert!(lease(now).await.is_empty(), "not due before its retry time");
        let again = lease(retry_at).await;
        assert_eq!(again.len(), 1);
        store
            .mark_delivered(&again[0].id, retry_at)
            .await
            .expect("deliver");
        let state = store.notifications_of(&sev).await.expect("state");
        assert_eq!(
            (state[0].state.as_str(), state[0].attempts),
            ("delivered", 2),
            "{:?}",
            store.dialect()
        );
    }
}
