//! The store's guarantees, checked on SQLite and on PostgreSQL (a fresh database per test; a
//! missing PostgreSQL fails the test).

use chrono::{DateTime, Utc};
use sevloop_core::detect::Verdict;
use sevloop_core::Escalation;
use sevloop_store::{NewNotification, NewSev, Revoked, StoreError};

mod common;
use common::stores;

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
        verdict: Verdict {
            tickets: 8,
            customers: 6,
            customer_weight: 6.0,
            expected: 0.5,
            p_value: 1e-6,
            span_minutes: 30.0,
            floor: true,
            cold_start: true,
            ..Verdict::default()
        },
    }
}

fn new_sev(escalation: &Escalation) -> NewSev<'_> {
    NewSev {
        escalation,
        title: "t",
        team: "triage",
        product: "cards",
        created_at: t0(),
        previous_sev: None,
    }
}

/// A transaction on `store` with one SEV opened in it, and the SEV's id.
async fn open_one(store: &sevloop_store::Store) -> (sevloop_store::Tx, String) {
    let mut tx = store.begin().await.expect("tx");
    let sev = sevloop_store::open_sev(&mut tx, &new_sev(&escalation()))
        .await
        .expect("open")
        .expect("new");
    (tx, sev)
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
            ordering_key: format!("{sev}/ops"),
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
                .lease_due(at, std::time::Duration::from_secs(60), 10, 10, &[])
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
        // A dispatcher that stalled past its lease reports its own attempt late.
        store
            .mark_failed(&again[0].id, "request failed: timed out", Some(retry_at))
            .await
            .expect("a late outcome");
        let state = store.notifications_of(&sev).await.expect("state");
        assert_eq!(
            (state[0].state.as_str(), state[0].attempts),
            ("delivered", 2),
            "{:?}: a late outcome does not make a delivered row due again",
            store.dialect()
        );
    }
}

fn ticket(i: u32, customer: &str, tier: &str) -> sevloop_core::TicketEvent {
    sevloop_core::TicketEvent::from_value(serde_json::json!({
        "ticket_id": format!("T-{i}"), "event": "created",
        "event_time": (t0() + chrono::Duration::minutes(i64::from(i))).to_rfc3339(),
        "subject": "card declined", "body": "my card is declined", "product": "cards",
        "customer": {"id": customer, "tier": tier}, "channel": "email", "source": "test",
    }))
    .expect("valid ticket")
}

/// Stores tickets T-0..T-n with the given customers and tiers.
async fn store_tickets(tx: &mut sevloop_store::Tx, customers: &[(&str, &str)]) -> Vec<String> {
    let assignment = sevloop_core::Assignment {
        cluster_id: "cards:1".into(),
        similarity: 1.0,
        matched_terms: vec![],
        new_cluster: false,
    };
    let mut ids = Vec::new();
    for (i, (customer, tier)) in customers.iter().enumerate() {
        let t = ticket(i as u32, customer, tier);
        sevloop_store::insert_ticket(tx, &t, &assignment, None, 0, i as i64)
            .await
            .expect("ticket");
        ids.push(t.ticket_id);
    }
    ids
}

#[tokio::test]
async fn the_sev_lifecycle_moves_and_counts_alike_on_both_databases() {
    use sevloop_core::sev::SevAction;
    use sevloop_core::SevState;
    let (stores, _dir) = stores("lifecycle").await;
    for store in stores {
        let d = store.dialect();
        let mut tx = store.begin().await.expect("tx");
        let customers = [
            ("a", "free"),
            ("b", "enterprise"),
            ("a", "free"),
            ("c", "pro"),
        ];
        let ids = store_tickets(&mut tx, &customers).await;
        let e = escalation();
        let sev = sevloop_store::open_sev(&mut tx, &new_sev(&e))
            .await
            .expect("open")
            .expect("new");
        let linked = sevloop_store::link_tickets(&mut tx, &sev, &ids[..2], t0())
            .await
            .expect("link");
        assert_eq!(linked.len(), 2);
        let again = sevloop_store::link_tickets(&mut tx, &sev, &ids, t0())
            .await
            .expect("link");
        assert_eq!(
            again,
            ids[2..].to_vec(),
            "{d:?}: only new links are returned"
        );
        sevloop_store::update_severity(&mut tx, &sev, t0())
            .await
            .expect("severity");
        let row = sevloop_store::sev_in(&mut tx, &sev)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(
            (
                row.ticket_count,
                row.distinct_customers,
                row.enterprise_customers
            ),
            (4, 3, 1),
            "{d:?}: one angry customer counts once"
        );
        let steps = [
            (SevAction::Acknowledge, SevState::Acknowledged),
            (
                SevAction::Reroute {
                    team: "payments".into(),
                    note: None,
                },
                SevState::Open,
            ),
            (SevAction::Mitigate, SevState::Mitigated),
            (SevAction::Resolve, SevState::Resolved),
        ];
        for (action, next) in &steps {
            sevloop_store::apply_transition(&mut tx, &sev, action, *next, t0())
                .await
                .unwrap_or_else(|e| panic!("{d:?}: {} failed: {e}", action.kind()));
        }
        let row = sevloop_store::sev_in(&mut tx, &sev)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(
            (row.state.as_str(), row.team.as_str()),
            ("resolved", "payments")
        );
        assert!(
            row.resolved_at.is_some()
                && row.mitigated_at.is_some()
                && row.acknowledged_at.is_some()
        );
        sevloop_store::reopen(&mut tx, &sev, t0())
            .await
            .expect("reopen");
        let decline = SevAction::Decline {
            reason: "known limitation".into(),
        };
        sevloop_store::apply_transition(&mut tx, &sev, &decline, SevState::Declined, t0())
            .await
            .expect("decline");
        let row = sevloop_store::sev_in(&mut tx, &sev)
            .await
            .expect("read")
            .expect("row");
        assert_eq!(row.reopened, 1);
        assert_eq!(
            row.decline_reason.as_deref(),
            Some("known limitation"),
            "{d:?}"
        );
        tx.commit().await.expect("commit");
    }
}

#[tokio::test]
async fn an_unacknowledged_sev_escalates_once_and_a_reroute_sticks_to_its_cluster() {
    let (stores, _dir) = stores("escalate").await;
    for store in stores {
        let d = store.dialect();
        let (tx, sev) = open_one(&store).await;
        tx.commit().await.expect("commit");
        assert_eq!(
            store.unacknowledged().await.expect("list").len(),
            1,
            "{d:?}"
        );
        let read = store.unacknowledged().await.expect("list").remove(0);
        let mut tx = store.begin().await.expect("tx");
        let reroute = sevloop_core::sev::SevAction::Reroute {
            team: "fraud".into(),
            note: None,
        };
        let (open, later) = (
            sevloop_core::SevState::Open,
            t0() + chrono::Duration::minutes(1),
        );
        sevloop_store::apply_transition(&mut tx, &sev, &reroute, open, later)
            .await
            .expect("reroute");
        let escalated = sevloop_store::mark_escalated(&mut tx, &read, "triage", later).await;
        assert!(
            !escalated.expect("mark"),
            "{d:?}: rerouted since it was read, it waits for the new team's ack timeout"
        );
        let read = sevloop_store::sev_in(&mut tx, &sev)
            .await
            .expect("read")
            .expect("row");
        for (n, expected) in [(1, true), (2, false)] {
            let escalated = sevloop_store::mark_escalated(&mut tx, &read, "triage", later).await;
            assert_eq!(escalated.expect("mark"), expected, "{d:?}: escalation {n}");
        }
        sevloop_store::set_cluster_owner(&mut tx, "cards:1", "fraud", &sev, t0())
            .await
            .expect("owner");
        sevloop_store::set_cluster_owner(&mut tx, "cards:1", "cards", &sev, t0())
            .await
            .expect("owner again");
        assert_eq!(
            sevloop_store::cluster_owner(&mut tx, "cards:1")
                .await
                .expect("owner")
                .as_deref(),
            Some("cards")
        );
        tx.commit().await.expect("commit");
        assert!(store.unacknowledged().await.expect("list").is_empty());
        let later = t0() + chrono::Duration::minutes(5);
        let first = store.disable_endpoint("ops", "url-1", t0(), "410").await;
        assert!(first.expect("disable"), "{d:?}");
        let again = store.disable_endpoint("ops", "url-1", later, "again").await;
        assert!(
            !again.expect("disable twice"),
            "{d:?}: the first record stays"
        );
        let gone = store.disabled_endpoint("ops").await.expect("read");
        let gone = gone.expect("disabled");
        assert_eq!(
            (gone.target.as_str(), gone.reason.as_str()),
            ("url-1", "410"),
            "{d:?}"
        );
        let moved = store
            .disable_endpoint("ops", "url-2", later, "moved, then gone")
            .await;
        assert!(moved.expect("disable at a new url"), "{d:?}");
        let listed = store.disabled_endpoints().await.expect("list");
        assert_eq!(listed.len(), 1, "{d:?}");
        assert_eq!(
            (listed[0].target.as_str(), listed[0].disabled_at),
            ("url-2", later),
            "{d:?}: a 410 at the new url replaces the record"
        );
        let moved = store.enable_endpoint("ops", Some("url-2")).await;
        assert!(!moved.expect("enable if moved"), "{d:?}: still at url-2");
        let moved = store.enable_endpoint("ops", Some("url-3")).await;
        assert!(moved.expect("enable if moved"), "{d:?}: moved to url-3");
        store
            .disable_endpoint("ops", "url-3", later, "gone again")
            .await
            .expect("disable");
        assert!(
            store.enable_endpoint("ops", None).await.expect("enable"),
            "{d:?}"
        );
        let again = store.enable_endpoint("ops", None).await;
        assert!(!again.expect("enable again"), "{d:?}");
        assert_eq!(
            store.disabled_endpoint("ops").await.expect("read"),
            None,
            "{d:?}"
        );
    }
}

/// Queues notification `id` of `sev` at `t0`, with an empty payload.
async fn queue(
    tx: &mut sevloop_store::Tx,
    sev: &str,
    id: &str,
    endpoint: &str,
    ordering_key: String,
    kind: &str,
) {
    let n = NewNotification {
        id: id.into(),
        sev_id: sev,
        endpoint,
        ordering_key,
        kind,
        payload: serde_json::json!({}),
        created_at: t0(),
    };
    sevloop_store::enqueue(tx, &n).await.expect("enqueue");
}

#[tokio::test]
async fn notifications_of_one_ordering_key_leave_one_at_a_time_in_the_order_queued() {
    let (stores, _dir) = stores("ordering").await;
    for store in stores {
        let d = store.dialect();
        let (mut tx, sev) = open_one(&store).await;
        // Queued in this order within one transaction; ids sort the other way.
        for (id, key) in [
            ("z-opened", "a"),
            ("y-acknowledged", "a"),
            ("x-resolved", "a"),
            ("w-other", "b"),
        ] {
            queue(&mut tx, &sev, id, "ops", key.into(), id).await;
        }
        tx.commit().await.expect("commit");
        let lease = std::time::Duration::from_secs(60);
        let mut delivered = Vec::new();
        for round in 0..3 {
            let due = store
                .lease_due(t0(), lease, 10, 10, &[])
                .await
                .expect("lease");
            let ids: Vec<&str> = due.iter().map(|n| n.id.as_str()).collect();
            let expected: &[&str] = match round {
                0 => &["z-opened", "w-other"],
                1 => &["y-acknowledged"],
                _ => &["x-resolved"],
            };
            assert_eq!(ids, expected, "{d:?} round {round}");
            for n in &due {
                store.mark_delivered(&n.id, t0()).await.expect("deliver");
                delivered.push(n.id.clone());
            }
        }
        assert_eq!(delivered.len(), 4);
    }
}

#[tokio::test]
async fn a_held_notification_holds_back_its_stream_until_what_it_missed_is_settled() {
    let (stores, _dir) = stores("held").await;
    for store in stores {
        let d = store.dialect();
        let (mut tx, sev) = open_one(&store).await;
        for (id, endpoint, kind) in [
            ("1.opened", "ops", "opened"),
            ("2.acknowledged", "ops", "acknowledged"),
            ("3.updated", "ops", "updated"),
            ("4.resolved", "ops", "resolved"),
            ("1.opened.other", "other", "opened"),
        ] {
            queue(
                &mut tx,
                &sev,
                id,
                endpoint,
                format!("{sev}/{endpoint}"),
                kind,
            )
            .await;
        }
        tx.commit().await.expect("commit");
        let lease = std::time::Duration::from_secs(60);
        let due = |at| store.lease_due(at, lease, 10, 10, &[]);
        let ids = |due: Vec<sevloop_store::Notification>| -> Vec<String> {
            due.into_iter().map(|n| n.id).collect()
        };
        let first = due(t0()).await.expect("lease");
        assert_eq!(ids(first), ["1.opened", "1.opened.other"], "{d:?}");
        store
            .mark_delivered("1.opened", t0())
            .await
            .expect("deliver");
        store
            .mark_delivered("1.opened.other", t0())
            .await
            .expect("deliver");
        assert_eq!(
            ids(due(t0()).await.expect("lease")),
            ["2.acknowledged"],
            "{d:?}"
        );
        let gone = "the receiver answered 410 Gone; endpoint disabled";
        store
            .disable_endpoint("ops", "url-1", t0(), gone)
            .await
            .expect("disable");
        store
            .mark_held("2.acknowledged", gone, true)
            .await
            .expect("hold");

        let later = t0() + chrono::Duration::minutes(5);
        assert!(
            due(later).await.expect("lease").is_empty(),
            "{d:?}: the held notification holds back the rest of its stream"
        );
        let held = store.held().await.expect("held");
        assert!(held.enabled.is_empty(), "{d:?} {held:?}");
        assert_eq!(held.disabled, ["ops"], "{d:?}");
        let rows = store.notifications_of(&sev).await.expect("state");
        let held_rows: Vec<&sevloop_store::Notification> =
            rows.iter().filter(|n| n.state == "held").collect();
        assert_eq!(held_rows.len(), 1, "{d:?} {rows:?}");
        assert_eq!(held_rows[0].id, "2.acknowledged", "{d:?}");
        assert_eq!(held_rows[0].attempts, 1, "{d:?}");
        assert_eq!(held_rows[0].next_attempt_at, None, "{d:?}");

        assert!(store.enable_endpoint("ops", None).await.expect("enable"));
        let held = store.held().await.expect("held");
        assert_eq!(held.enabled, ["ops"], "{d:?}");
        assert!(held.disabled.is_empty(), "{d:?}");
        assert!(
            due(later).await.expect("lease").is_empty(),
            "{d:?}: still held back until settled, so nothing overtakes what was missed"
        );
        let missed = store.missed("ops").await.expect("missed");
        assert_eq!(missed.len(), 1, "{d:?} {missed:?}");
        let m = &missed[0];
        assert!(m.heard, "{d:?}: the receiver was told the SEV opened");
        assert_eq!(
            m.ids,
            ["2.acknowledged", "3.updated", "4.resolved"],
            "{d:?}"
        );
        assert_eq!(m.kinds, ["acknowledged", "updated", "resolved"], "{d:?}");
        assert!(
            store.missed("other").await.expect("missed").is_empty(),
            "{d:?}"
        );

        let why = "superseded: test";
        let settled = store.settle_missed(m, &[false, false, true], why, later);
        assert!(settled.await.expect("settle"), "{d:?}");
        assert_eq!(
            ids(due(later).await.expect("lease")),
            ["4.resolved"],
            "{d:?}"
        );
        let states: Vec<(String, String, Option<String>)> = store
            .notifications_of(&sev)
            .await
            .expect("state")
            .into_iter()
            .filter(|n| n.endpoint == "ops")
            .map(|n| (n.id, n.state, n.last_error))
            .collect();
        let superseded = Some(why.to_string());
        assert_eq!(
            states,
            [
                ("1.opened".into(), "delivered".into(), None),
                (
                    "2.acknowledged".into(),
                    "superseded".into(),
                    superseded.clone()
                ),
                ("3.updated".into(), "superseded".into(), superseded),
                ("4.resolved".into(), "pending".into(), None),
            ],
            "{d:?}"
        );
        let again = store.settle_missed(m, &[true, true, true], why, later);
        assert!(
            !again.await.expect("settling twice"),
            "{d:?}: the held notification was settled already"
        );
        let states = store.notifications_of(&sev).await.expect("state");
        assert_eq!(
            states.iter().filter(|n| n.state == "superseded").count(),
            2,
            "{d:?}: a second settling changes nothing already settled"
        );
        assert!(
            store.held().await.expect("held").enabled.is_empty(),
            "{d:?}"
        );
    }
}

#[tokio::test]
async fn a_plan_read_before_a_notification_was_held_again_does_not_settle_it() {
    let (stores, _dir) = stores("held_again").await;
    for store in stores {
        let d = store.dialect();
        let (mut tx, sev) = open_one(&store).await;
        for (id, kind) in [("1.opened", "opened"), ("2.resolved", "resolved")] {
            queue(&mut tx, &sev, id, "ops", format!("{sev}/ops"), kind).await;
        }
        tx.commit().await.expect("commit");
        let lease = std::time::Duration::from_secs(60);
        let due = |at| store.lease_due(at, lease, 10, 10, &[]);
        assert_eq!(due(t0()).await.expect("lease").len(), 1, "{d:?}");
        let gone = "the receiver answered 410 Gone; endpoint disabled";
        store.mark_held("1.opened", gone, true).await.expect("hold");
        let stale = store.missed("ops").await.expect("missed");
        assert_eq!(stale.len(), 1, "{d:?} {stale:?}");
        assert_eq!(stale[0].queued_at, t0(), "{d:?}");

        // Another dispatcher settles the stream first, sends the notification, and the
        // receiver refuses it again, all within the millisecond it was first queued in.
        let same_ms = t0();
        let settled = store.settle_missed(&stale[0], &[true, true], "superseded: test", same_ms);
        assert!(settled.await.expect("settle"), "{d:?}");
        let sent = due(same_ms).await.expect("lease");
        assert_eq!(sent.len(), 1, "{d:?}");
        assert_eq!(sent[0].id, "1.opened", "{d:?}");
        store.mark_held("1.opened", gone, true).await.expect("hold");

        let stale_plan = store.settle_missed(&stale[0], &[false, true], "stale", same_ms);
        assert!(
            !stale_plan.await.expect("settle"),
            "{d:?}: the plan was made for the notification before it was sent again"
        );
        let rows = store.notifications_of(&sev).await.expect("state");
        let states: Vec<&str> = rows.iter().map(|n| n.state.as_str()).collect();
        assert_eq!(states, ["held", "pending"], "{d:?}: nothing changed");
        let fresh = store.missed("ops").await.expect("missed");
        assert_eq!(
            fresh[0].queued_at,
            stale[0].queued_at + chrono::Duration::milliseconds(1),
            "{d:?}: settled within the millisecond it was queued in, queued a millisecond on"
        );
        let later = same_ms + chrono::Duration::minutes(5);
        let settled = store.settle_missed(&fresh[0], &[true, true], "superseded: test", later);
        assert!(settled.await.expect("settle"), "{d:?}");
        let rows = store.notifications_of(&sev).await.expect("state");
        assert!(
            rows.iter()
                .all(|n| n.state == "pending" && n.created_at == later),
            "{d:?}: settled later, queued anew at the time of settling: {rows:?}"
        );
    }
}

#[tokio::test]
async fn a_busy_endpoint_is_skipped_one_takes_its_share_and_a_release_is_due_again_at_once() {
    let (stores, _dir) = stores("busy").await;
    for store in stores {
        let d = store.dialect();
        let (mut tx, sev) = open_one(&store).await;
        // The helpdesk orders per ticket: two heads to one endpoint.
        for (id, endpoint, key) in [
            ("1.slow", "slow", "slow"),
            ("1.pager", "pager", "pager"),
            ("1.desk.a", "desk", "desk/a"),
            ("1.desk.b", "desk", "desk/b"),
        ] {
            queue(
                &mut tx,
                &sev,
                id,
                endpoint,
                format!("{sev}/{key}"),
                "opened",
            )
            .await;
        }
        tx.commit().await.expect("commit");
        let lease = std::time::Duration::from_secs(60);
        let ids = |due: Vec<sevloop_store::Notification>| -> Vec<String> {
            due.into_iter().map(|n| n.id).collect()
        };
        let busy = ["slow".to_string()];
        let due = store.lease_due(t0(), lease, 10, 1, &busy).await;
        assert_eq!(ids(due.expect("lease")), ["1.pager", "1.desk.a"], "{d:?}");
        let due = store.lease_due(t0(), lease, 10, 1, &[]).await;
        assert_eq!(ids(due.expect("lease")), ["1.slow", "1.desk.b"], "{d:?}");
        store.release("1.desk.b").await.expect("release");
        let due = store.lease_due(t0(), lease, 10, 1, &[]).await;
        assert_eq!(
            ids(due.expect("lease")),
            ["1.desk.b"],
            "{d:?} released is due"
        );
        let state = store.notifications_of(&sev).await.expect("state");
        assert!(
            state.iter().all(|n| n.attempts == 0),
            "{d:?}: a lease or a release is no attempt: {state:?}"
        );
    }
}

#[tokio::test]
async fn a_fresh_installation_is_named_with_twelve_hex_digits_of_its_own() {
    let (stores, _dir) = stores("installation").await;
    let mut names = Vec::new();
    for store in stores {
        let name = store.installation().await.expect("named");
        assert_eq!(name.len(), 12, "{:?}: {name:?}", store.dialect());
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{:?}: {name:?}",
            store.dialect()
        );
        assert_eq!(store.installation().await.expect("again"), name, "stable");
        names.push(name);
    }
    assert_ne!(names[0], names[1], "each database its own name");
}

#[tokio::test]
async fn tokens_and_sessions_are_found_by_hash_until_revoked_or_expired() {
    use sevloop_core::access::Role;
    let (stores, _dir) = stores("auth").await;
    for store in stores {
        let d = store.dialect();
        let team = Role::Team {
            team: "cards".into(),
        };
        store
            .create_token("tok-1", "hash-1", &team, "pager", t0())
            .await
            .expect("create");
        let found = store.token_by_secret("hash-1").await.expect("read");
        assert_eq!(found.map(|t| t.role), Some(team.clone()), "{d:?}");
        assert!(store
            .token_by_secret("other")
            .await
            .expect("read")
            .is_none());
        let expires = t0() + chrono::Duration::hours(1);
        store
            .create_session("s-1", "tok-1", "csrf-1", t0(), expires)
            .await
            .expect("session");
        let live = store.session("s-1", t0()).await.expect("session");
        assert_eq!(
            live.map(|(t, csrf)| (t.token_id, csrf)),
            Some(("tok-1".into(), "csrf-1".into()))
        );
        assert!(
            store.session("s-1", expires).await.expect("read").is_none(),
            "{d:?}: expired"
        );
        assert_eq!(
            store.revoke_token("tok-1", t0()).await.expect("revoke"),
            Revoked::Done
        );
        assert_eq!(
            store
                .revoke_token("tok-1", t0())
                .await
                .expect("revoke twice"),
            Revoked::NoSuchToken
        );
        assert!(store
            .token_by_secret("hash-1")
            .await
            .expect("read")
            .is_none());
        assert!(
            store.session("s-1", t0()).await.expect("read").is_none(),
            "{d:?}: sessions end with it"
        );
        assert_eq!(store.tokens().await.expect("list").len(), 1);
        for (id, hash) in [("adm-1", "hash-a1"), ("adm-2", "hash-a2")] {
            store
                .create_token(id, hash, &Role::Admin, "admin", t0())
                .await
                .expect("create");
        }
        assert_eq!(
            store.revoke_token("adm-1", t0()).await.expect("revoke"),
            Revoked::Done
        );
        assert_eq!(
            store.revoke_token("adm-2", t0()).await.expect("revoke"),
            Revoked::LastAdmin,
            "{d:?}: the last admin token stays"
        );
        assert!(store
            .token_by_secret("hash-a2")
            .await
            .expect("read")
            .is_some());
    }
}

#[tokio::test]
async fn sev_lists_filter_sort_and_page_and_leadership_aggregates_them() {
    use sevloop_core::sev::SevAction;
    use sevloop_core::SevState;
    let (stores, _dir) = stores("leadership").await;
    for store in stores {
        let d = store.dialect();
        let mut tx = store.begin().await.expect("tx");
        let ids = store_tickets(&mut tx, &[("a", "free"), ("b", "pro"), ("c", "free")]).await;
        let mut sevs = Vec::new();
        for i in 0..3 {
            let e = Escalation {
                id: format!("esc-{i}"),
                cluster_id: format!("cards:{}", i + 1),
                fired_at: t0() + chrono::Duration::hours(i),
                ..escalation()
            };
            let sev = sevloop_store::open_sev(&mut tx, &new_sev(&e))
                .await
                .expect("open")
                .expect("new");
            sevloop_store::link_tickets(&mut tx, &sev, &ids[..=i as usize], e.fired_at)
                .await
                .expect("link");
            sevs.push(sev);
        }
        let ack_at = t0() + chrono::Duration::minutes(10);
        sevloop_store::apply_transition(
            &mut tx,
            &sevs[0],
            &SevAction::Acknowledge,
            SevState::Acknowledged,
            ack_at,
        )
        .await
        .expect("ack");
        let decline = SevAction::Decline {
            reason: "expected".into(),
        };
        sevloop_store::apply_transition(&mut tx, &sevs[1], &decline, SevState::Declined, ack_at)
            .await
            .expect("decline");
        tx.commit().await.expect("commit");

        let page = |f: sevloop_store::SevFilter| {
            let store = store.clone();
            async move { store.sevs_page(&f).await.expect("list") }
        };
        let (items, total) = page(sevloop_store::SevFilter {
            limit: 2,
            ..Default::default()
        })
        .await;
        assert_eq!((items.len(), total), (2, 3), "{d:?}");
        assert_eq!(items[0].id, sevs[2], "newest first");
        let (items, total) = page(sevloop_store::SevFilter {
            state: Some("declined".into()),
            team: Some("triage".into()),
            product: Some("cards".into()),
            ..Default::default()
        })
        .await;
        assert_eq!((items.len(), total), (1, 1), "{d:?}");
        let (items, _) = page(sevloop_store::SevFilter {
            from: Some(t0() + chrono::Duration::minutes(30)),
            sort: sevloop_store::SevSort::Oldest,
            ..Default::default()
        })
        .await;
        let listed: Vec<&str> = items.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(listed, vec![sevs[1].as_str(), sevs[2].as_str()], "{d:?}");

        let o = store
            .leadership(sevloop_store::Period::default(), 10)
            .await
            .unwrap_or_else(|e| panic!("{d:?}: {e}"));
        let triage = &o.teams[0];
        assert_eq!(
            (
                triage.opened,
                triage.open,
                triage.declined,
                triage.acknowledged
            ),
            (3, 2, 1, 1),
            "{d:?}"
        );
        assert!(
            triage.mtta_seconds.is_some_and(|s| s > 0.0),
            "{d:?}: {triage:?}"
        );
        assert_eq!(o.declined.len(), 1);
        assert_eq!(o.tickets, 3);
        assert_eq!(
            o.pareto[0].tickets, 3,
            "{d:?}: all three tickets are in cards:1"
        );
        assert!((o.pareto[0].cumulative_share - 1.0).abs() < 1e-9);
        assert_eq!(o.weekly.iter().map(|w| w.tickets).sum::<i64>(), 3, "{d:?}");
        assert_eq!(
            o.weekly.iter().map(|w| w.sevs_opened).sum::<i64>(),
            3,
            "{d:?}"
        );
        assert_eq!(o.lead_time.sevs, 3);
    }
}

/// Times to acknowledge and to resolve are of a SEV's latest episode (a regression weeks later
/// is not weeks to resolve, nor to acknowledge), and a SEV open for weeks counts as open in a
/// week that did not open it.
#[tokio::test]
async fn leadership_times_are_per_episode_and_open_sevs_count_whenever_they_opened() {
    use sevloop_core::sev::SevAction;
    use sevloop_core::SevState;
    let (stores, _dir) = stores("episodes").await;
    let minutes = |m: i64| t0() + chrono::Duration::minutes(m);
    let day = 24 * 60;
    for store in stores {
        let d = store.dialect();
        let mut tx = store.begin().await.expect("tx");
        let opened = |i: i64, fired: i64| Escalation {
            id: format!("esc-{i}"),
            cluster_id: format!("cards:{i}"),
            fired_at: minutes(fired),
            first_ticket_at: minutes(fired),
            ..escalation()
        };
        let old = opened(1, -30 * day);
        let back = opened(2, 0);
        let mut ids = Vec::new();
        for (e, created) in [(&old, minutes(-30 * day)), (&back, minutes(0))] {
            let new = NewSev {
                created_at: created,
                ..new_sev(e)
            };
            let id = sevloop_store::open_sev(&mut tx, &new).await.expect("open");
            ids.push(id.expect("new"));
        }
        let step = |action: SevAction, next: SevState, at: i64| (action, next, minutes(at));
        for (action, next, at) in [
            step(SevAction::Acknowledge, SevState::Acknowledged, 5),
            step(SevAction::Resolve, SevState::Resolved, 120),
        ] {
            sevloop_store::apply_transition(&mut tx, &ids[1], &action, next, at)
                .await
                .expect("first episode");
        }
        sevloop_store::reopen(&mut tx, &ids[1], minutes(20 * day))
            .await
            .expect("reopen");
        for (action, next, at) in [
            step(
                SevAction::Acknowledge,
                SevState::Acknowledged,
                20 * day + 10,
            ),
            step(SevAction::Resolve, SevState::Resolved, 20 * day + 190),
        ] {
            sevloop_store::apply_transition(&mut tx, &ids[1], &action, next, at)
                .await
                .expect("second episode");
        }
        tx.commit().await.expect("commit");

        let week = sevloop_store::Period {
            from: Some(minutes(-7 * day)),
            to: Some(minutes(21 * day)),
        };
        let o = store.leadership(week, 10).await.expect("leadership");
        let triage = &o.teams[0];
        assert_eq!(
            (
                triage.opened,
                triage.resolved,
                triage.open,
                triage.unacknowledged
            ),
            (1, 1, 1, 1),
            "{d:?}: the SEV opened a month ago is open now: {triage:?}"
        );
        assert_eq!(
            triage.mtta_seconds,
            Some(600.0),
            "{d:?}: its latest episode's"
        );
        assert_eq!(triage.mttr_seconds, Some(190.0 * 60.0), "{d:?}");
        assert_eq!(triage.oldest_open_since, Some(minutes(-30 * day)), "{d:?}");

        let all = store
            .leadership(sevloop_store::Period::default(), 10)
            .await
            .expect("leadership");
        let weeks: Vec<_> = all.weekly.iter().map(|w| w.week).collect();
        assert!(
            weeks.len() >= 5,
            "{d:?}: a month apart, quiet weeks between: {weeks:?}"
        );
        assert!(
            weeks
                .windows(2)
                .all(|w| w[1] - w[0] == chrono::Duration::weeks(1)),
            "{d:?}: every week, the quiet ones with zeros: {weeks:?}"
        );
        let opened: i64 = all.weekly.iter().map(|w| w.sevs_opened).sum();
        assert_eq!(opened, 2, "{d:?}");
    }
}
