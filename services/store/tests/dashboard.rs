//! The dashboard's reads, on SQLite and on PostgreSQL (a fresh database per test; a missing
//! PostgreSQL fails the test): a page of clusters agrees with each cluster's detail, and a SEV's
//! growth, tickets and deliveries add up.

use chrono::{DateTime, Duration, Utc};
use sevloop_core::detect::Verdict;
use sevloop_core::sev::SevAction;
use sevloop_core::{Assignment, ClusterCheckpoint, Escalation, SevState, TicketEvent};
use sevloop_store::{ClusterFilter, ClusterSort, NewNotification, NewSev, Store};

mod common;
use common::stores;

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-04T12:00:00Z")
        .expect("time")
        .with_timezone(&Utc)
}

fn ticket(id: &str, at: DateTime<Utc>) -> TicketEvent {
    let json = serde_json::json!({
        "ticket_id": id, "event": "created", "event_time": at, "subject": "card declined",
        "body": "declined at checkout", "product": "cards",
        "customer": {"id": format!("c-{id}"), "tier": "free"}, "channel": "email", "source": "t",
    });
    TicketEvent::parse(json.to_string().as_bytes()).expect("ticket")
}

fn checkpoint(seq: u64, size: u64, merged_into: Option<u64>, label: &[&str]) -> ClusterCheckpoint {
    let json = serde_json::json!({
        "cluster": {"id": format!("cards:{seq}"), "product": "cards", "seq": seq, "size": size,
            "centroid": {}, "surface": {}, "exemplars": [], "merged_into": merged_into,
            "first_seen": t0() - Duration::days(3), "last_seen": t0()},
        "detector": {"window": [], "episode": 0, "active": false},
        "label": label,
    });
    serde_json::from_value(json).expect("checkpoint")
}

fn escalation(n: u32, cluster: &str, evidence: Vec<String>) -> Escalation {
    Escalation {
        id: format!("esc-{n}"),
        cluster_id: cluster.into(),
        rule: "floor".into(),
        episode: n,
        window_start: t0(),
        fired_at: t0(),
        first_ticket_at: t0(),
        ticket_count: evidence.len() as u64,
        distinct_customers: evidence.len() as u64,
        evidence,
        verdict: Verdict {
            tickets: 1,
            customers: 1,
            customer_weight: 1.0,
            expected: 0.5,
            p_value: 1e-6,
            span_minutes: 30.0,
            floor: true,
            ..Verdict::default()
        },
    }
}

/// Opens SEV number `n` of the cards team on `cluster`; returns its id.
async fn open(tx: &mut sevloop_store::Tx, n: u32, cluster: &str) -> String {
    let e = escalation(n, cluster, vec![]);
    let new = NewSev {
        escalation: &e,
        title: "t",
        team: "cards",
        product: "cards",
        created_at: t0(),
        previous_sev: None,
    };
    let id = sevloop_store::open_sev(tx, &new).await.expect("open");
    id.expect("new")
}

/// Clusters cards:1 (6 tickets, 2 in the last day, 2 the day before), cards:2 (3 tickets, all in
/// the last day), cards:3 merged into cards:1 (2 tickets in the last day); SEV-1 on cards:1
/// links 5 tickets over three hours and has notifications in every state; cards:2 joined it.
async fn seed(store: &Store) {
    let mut tx = store.begin().await.expect("tx");
    let hours = [-60, -50, -40, -30, -2, -1, -3, -2, -1, -5, -4];
    let clusters = [
        "cards:1", "cards:1", "cards:1", "cards:1", "cards:1", "cards:1", "cards:2", "cards:2",
        "cards:2", "cards:3", "cards:3",
    ];
    for (i, (h, c)) in hours.iter().zip(clusters).enumerate() {
        let a = Assignment {
            cluster_id: c.into(),
            similarity: 0.9,
            matched_terms: vec![],
            new_cluster: false,
        };
        let t = ticket(&format!("T-{i}"), t0() + Duration::hours(*h));
        sevloop_store::insert_ticket(&mut tx, &t, &a, None, 0, i as i64)
            .await
            .expect("ticket");
    }
    let cps = [
        checkpoint(1, 8, None, &["card", "declined", "checkout", "abroad"]),
        checkpoint(2, 3, None, &["refund"]),
        checkpoint(3, 2, Some(1), &["card"]),
    ];
    sevloop_store::save_clusters(&mut tx, &cps)
        .await
        .expect("clusters");
    let id = open(&mut tx, 1, "cards:1").await;
    let linked: Vec<String> = [0, 3, 4, 5, 9].iter().map(|i| format!("T-{i}")).collect();
    sevloop_store::link_tickets(&mut tx, &id, &linked, t0())
        .await
        .expect("link");
    sevloop_store::cover_cluster(&mut tx, &id, "cards:2", t0())
        .await
        .expect("cards:2 joins SEV-1");
    for (n, endpoint) in ["slack", "slack", "slack", "pager"].iter().enumerate() {
        let row = NewNotification {
            id: format!("{id}.{n}"),
            sev_id: &id,
            endpoint,
            ordering_key: format!("{id}/{endpoint}"),
            kind: "opened",
            payload: serde_json::json!({}),
            created_at: t0(),
        };
        sevloop_store::enqueue(&mut tx, &row)
            .await
            .expect("enqueue");
    }
    tx.commit().await.expect("commit");
    store
        .mark_delivered(&format!("{id}.0"), t0())
        .await
        .expect("delivered");
    store
        .mark_failed(&format!("{id}.1"), "HTTP 500", Some(t0()))
        .await
        .expect("retry");
    store
        .mark_held(&format!("{id}.3"), "HTTP 410 Gone", true)
        .await
        .expect("held");
    store
        .disable_endpoint("pager", "pager-url", t0(), "410 Gone")
        .await
        .expect("disable");
    // The newest slack notification was held, then superseded when its endpoint came back.
    let newest = format!("{id}.2");
    store
        .mark_held(&newest, "HTTP 410 Gone", true)
        .await
        .expect("held");
    let missed = sevloop_store::Missed {
        ordering_key: format!("{id}/slack"),
        sev_id: id.clone(),
        heard: true,
        queued_at: t0(),
        ids: vec![newest],
        kinds: vec!["opened".into()],
    };
    let settled = store.settle_missed(&missed, &[false], "superseded: test", t0());
    assert!(settled.await.expect("settle"));
}

#[tokio::test]
async fn a_page_of_clusters_agrees_with_each_clusters_detail_and_counts_merged_tickets() {
    let (stores, _dir) = stores("clusters").await;
    for store in stores {
        seed(&store).await;
        for sort in [ClusterSort::Size, ClusterSort::Growth, ClusterSort::Recent] {
            for (limit, offset) in [(50, 0), (1, 1)] {
                let f = ClusterFilter {
                    product: None,
                    sort,
                    limit,
                    offset,
                };
                // Each row agrees with the cluster's own detail (counted by a simpler query).
                let (page, _) = store.clusters_page(&f).await.expect("page");
                for row in page {
                    let detail = store.cluster(&row.cluster_id).await.expect("detail");
                    let detail = detail.expect("a listed cluster exists").row;
                    assert_eq!(
                        row,
                        detail,
                        "{:?} {sort:?} {limit} {offset}",
                        store.dialect()
                    );
                }
            }
        }
        let (rows, total) = store
            .clusters_page(&ClusterFilter {
                product: None,
                sort: ClusterSort::Growth,
                limit: 50,
                offset: 0,
            })
            .await
            .expect("page");
        assert_eq!(total, 2);
        let one = &rows[0];
        assert_eq!(
            (
                one.cluster_id.as_str(),
                one.tickets_last_24h,
                one.tickets_previous_24h
            ),
            ("cards:1", 4, 2),
            "merged-in tickets count"
        );
        assert_eq!(one.sev_id.as_deref(), Some("SEV-1"));
        assert_eq!(
            (rows[1].cluster_id.as_str(), rows[1].sev_id.as_deref()),
            ("cards:2", Some("SEV-1")),
            "a cluster that joined a SEV shows it"
        );
        let none = ClusterFilter {
            product: Some("nope".into()),
            sort: ClusterSort::Size,
            limit: 50,
            offset: 0,
        };
        assert_eq!(
            store.clusters_page(&none).await.expect("empty"),
            (vec![], 0)
        );

        let ids = vec!["cards:1".to_string(), "cards:2".to_string()];
        let terms = store.cluster_terms(&ids).await.expect("terms");
        assert_eq!(
            terms["cards:1"],
            vec!["card", "declined", "checkout", "abroad"]
        );
        assert!(store.cluster_terms(&[]).await.expect("none").is_empty());
    }
}

#[tokio::test]
async fn a_sevs_growth_tickets_and_deliveries_add_up() {
    let (stores, _dir) = stores("sev").await;
    for store in stores {
        seed(&store).await;
        let growth = store.sev_growth("SEV-1").await.expect("growth");
        assert_eq!(
            growth.buckets.iter().map(|b| b.1).sum::<i64>(),
            5,
            "{:?}",
            store.dialect()
        );
        assert_eq!(
            growth.bucket_hours, 2,
            "60 hours of tickets in 2-hour buckets"
        );
        assert_eq!(growth.buckets[0].0, t0() - Duration::hours(60));

        let first = store.sev_tickets_page("SEV-1", 3, 0).await.expect("page");
        let rest = store.sev_tickets_page("SEV-1", 3, 3).await.expect("page");
        assert_eq!((first.len(), rest.len()), (3, 2));
        let all = store.sev_ticket_ids("SEV-1").await.expect("ids");
        assert_eq!([first, rest].concat(), all, "pages follow link order");

        let channels = store.sev_channels("SEV-1").await.expect("channels");
        assert_eq!(channels.len(), 2);
        let (pager, slack) = (&channels[0], &channels[1]);
        assert_eq!(
            (
                pager.endpoint.as_str(),
                pager.held,
                pager.failed,
                pager.disabled.as_deref()
            ),
            ("pager", 1, 0, Some("410 Gone"))
        );
        assert_eq!(pager.last_error.as_deref(), Some("HTTP 410 Gone"));
        assert_eq!(
            (
                slack.delivered,
                slack.pending,
                slack.failed,
                slack.superseded
            ),
            (1, 1, 0, 1)
        );
        assert_eq!(
            slack.last_error.as_deref(),
            Some("HTTP 500"),
            "a superseded notification's reason is no delivery error"
        );
        assert_eq!(slack.last_delivered_at, Some(t0()));

        let facets = store.facets().await.expect("facets");
        assert_eq!(
            (facets.teams, facets.products),
            (vec!["cards".to_string()], vec!["cards".to_string()])
        );
    }
}

#[tokio::test]
async fn a_cluster_shows_the_sev_that_covers_it_its_own_joined_or_merged_into() {
    let (stores, _dir) = stores("covering").await;
    for store in stores {
        let d = store.dialect();
        seed(&store).await;
        let shown = |store: Store| async move {
            let f = ClusterFilter {
                product: None,
                sort: ClusterSort::Size,
                limit: 50,
                offset: 0,
            };
            let (rows, _) = store.clusters_page(&f).await.expect("page");
            let row = rows.into_iter().find(|r| r.cluster_id == "cards:2");
            let detail = store.cluster("cards:2").await.expect("detail");
            let detail = detail.expect("cards:2").row;
            assert_eq!(
                row.as_ref(),
                Some(&detail),
                "the page agrees with the detail"
            );
            (detail.sev_id, detail.sev_state)
        };
        let joined = (Some("SEV-1".to_string()), Some("open".to_string()));
        assert_eq!(
            shown(store.clone()).await,
            joined,
            "{d:?}: the SEV it joined"
        );

        let mut tx = store.begin().await.expect("tx");
        let own = open(&mut tx, 2, "cards:2").await;
        tx.commit().await.expect("commit");
        let opened = (Some(own.clone()), Some("open".to_string()));
        assert_eq!(shown(store.clone()).await, opened, "{d:?}: its own, newer");

        let mut tx = store.begin().await.expect("tx");
        let merge = SevAction::Merge {
            into: "SEV-1".into(),
        };
        sevloop_store::apply_transition(&mut tx, &own, &merge, SevState::Merged, t0())
            .await
            .expect("merged");
        sevloop_store::cover_clusters_of(&mut tx, &own, "SEV-1", t0())
            .await
            .expect("covered");
        tx.commit().await.expect("commit");
        assert_eq!(
            shown(store.clone()).await,
            joined,
            "{d:?}: once its own SEV is merged, the SEV it went into"
        );
    }
}
