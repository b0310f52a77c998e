//! Clustering in the running product, with the sentence encoder on: the cluster API, and human
//! corrections that stick across a restart, consolidation and later tickets.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

fn ticket(id: &str, minute: i64, body: &str) -> Value {
    json!({"ticket_id": id, "event": "created", "event_time": at(minute * 60),
        "subject": "", "body": body, "product": "cards",
        "customer": {"id": format!("cust-{id}"), "tier": "pro"},
        "channel": "web", "source": "test"})
}

async fn post(sevloop: &Sevloop, path: &str, body: Value) -> (u16, Value) {
    sevloop.post(path, Some(body)).await
}

async fn cluster_of(sevloop: &Sevloop, ticket_id: &str) -> String {
    let (_, t) = sevloop.get(&format!("/api/v1/tickets/{ticket_id}")).await;
    t["cluster_id"].as_str().unwrap_or_default().to_string()
}

async fn processed(sevloop: &Sevloop, ticket_id: &str) {
    let path = format!("/api/v1/tickets/{ticket_id}");
    eventually(
        &format!("{ticket_id} to be processed"),
        Duration::from_secs(60),
        || async { (sevloop.get(&path).await.0 == 200).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_stick_across_restart_consolidation_and_later_tickets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sevloop.toml");
    std::fs::write(&config, "[encoder]\nenabled = true\n").expect("config");
    let data = dir.path().join("data");
    let port = free_port();
    let mut sevloop = Sevloop::up(&data, &config, port);
    sevloop.wait_healthy().await;

    let declined = "My card was declined at the checkout";
    let abroad = "My card does not work at cash machines abroad";
    let address = "How do I change the home address on my account?";
    let mut tickets = Vec::new();
    for i in 0..4 {
        tickets.push(ticket(&format!("declined-{i}"), i, declined));
        tickets.push(ticket(&format!("address-{i}"), i, address));
    }
    let (status, body) = post(&sevloop, "/api/v1/tickets", json!(tickets)).await;
    assert_eq!(status, 202, "{body}");
    processed(&sevloop, "address-3").await;

    // The cluster API explains what it formed.
    let declined_cluster = cluster_of(&sevloop, "declined-0").await;
    let address_cluster = cluster_of(&sevloop, "address-0").await;
    assert_ne!(declined_cluster, address_cluster);
    let (_, list) = sevloop
        .get("/api/v1/clusters?product=cards&sort=size")
        .await;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{list:#}");
    let (_, detail) = sevloop
        .get(&format!("/api/v1/clusters/{declined_cluster}"))
        .await;
    assert_eq!(detail["size"], 4, "{detail:#}");
    assert!(
        detail["top_terms"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == "declined")),
        "{detail:#}"
    );
    assert_eq!(
        detail["exemplars"][0]["ticket_id"], "declined-0",
        "{detail:#}"
    );
    let (_, t1) = sevloop.get("/api/v1/tickets/declined-1").await;
    assert!(t1["similarity"].as_f64().unwrap_or(0.0) > 0.9, "{t1:#}");

    // A person splits two tickets off, and merges the address cluster with what is left.
    let (status, body) = post(
        &sevloop,
        &format!("/api/v1/clusters/{declined_cluster}/split"),
        json!({"ticket_ids": ["declined-2", "declined-3"]}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let split_cluster = eventually("the split to apply", Duration::from_secs(30), || async {
        let c = cluster_of(&sevloop, "declined-3").await;
        (c != declined_cluster).then_some(c)
    })
    .await;
    assert_eq!(cluster_of(&sevloop, "declined-2").await, split_cluster);
    let (status, body) = post(
        &sevloop,
        &format!("/api/v1/clusters/{address_cluster}/merge"),
        json!({"with": declined_cluster}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("the merge to apply", Duration::from_secs(30), || async {
        (cluster_of(&sevloop, "declined-0").await == cluster_of(&sevloop, "address-0").await)
            .then_some(())
    })
    .await;
    let merged = cluster_of(&sevloop, "address-0").await;

    // Bad corrections are refused with a reason.
    let (status, body) = post(
        &sevloop,
        &format!("/api/v1/clusters/{split_cluster}/split"),
        json!({"ticket_ids": ["address-0"]}),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{body}"
    );
    let (status, _) = post(
        &sevloop,
        "/api/v1/clusters/cards:999/merge",
        json!({"with": merged}),
    )
    .await;
    assert_eq!(status, 404);

    // A person moves one ticket; a move to a cluster that does not exist is refused.
    let (status, body) = post(
        &sevloop,
        "/api/v1/tickets/declined-1/move",
        json!({"to_cluster_id": split_cluster}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    eventually("the move to apply", Duration::from_secs(30), || async {
        (cluster_of(&sevloop, "declined-1").await == split_cluster).then_some(())
    })
    .await;
    let (status, _) = post(
        &sevloop,
        "/api/v1/tickets/declined-0/move",
        json!({"to_cluster_id": "cards:999"}),
    )
    .await;
    assert_eq!(status, 404);

    // After a restart, and hours of event time later (consolidation rounds run, strays fold),
    // the corrections hold, and tickets like the split ones go to the split cluster.
    sevloop.stop();
    let mut sevloop = Sevloop::up(&data, &config, port);
    sevloop.wait_healthy().await;
    assert_eq!(cluster_of(&sevloop, "declined-3").await, split_cluster);
    assert_eq!(cluster_of(&sevloop, "declined-1").await, split_cluster);
    assert_eq!(cluster_of(&sevloop, "address-1").await, merged);
    let later = vec![
        ticket("late-declined", 9 * 60, declined),
        ticket("late-address", 9 * 60 + 1, address),
        ticket("late-abroad", 9 * 60 + 2, abroad),
    ];
    let (status, body) = post(&sevloop, "/api/v1/tickets", json!(later)).await;
    assert_eq!(status, 202, "{body}");
    processed(&sevloop, "late-abroad").await;
    assert_eq!(
        cluster_of(&sevloop, "late-declined").await,
        split_cluster,
        "identical text goes where its twins were split to"
    );
    assert_eq!(cluster_of(&sevloop, "late-address").await, merged);
    let (_, split) = sevloop
        .get(&format!("/api/v1/clusters/{split_cluster}"))
        .await;
    assert_eq!(
        split["cluster_id"],
        json!(split_cluster),
        "never merged back: {split:#}"
    );
    assert!(
        split["kept_apart_from"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{split:#}"
    );
    sevloop.stop();
}

/// A cluster that chained from one complaint into another is split at the next consolidation
/// round, and the tickets that moved show their new cluster in the API (and stay there across a
/// restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_that_drifted_splits_and_its_tickets_follow() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("sevloop.toml");
    // A join threshold that lets anything in, and LSH tables that make every cluster a
    // candidate: the online pass chains both complaints into one cluster.
    std::fs::write(
        &config,
        "[encoder]\nenabled = true\n[clustering]\nsemantic_threshold = -1.0\n\
         [clustering.lsh]\ntables = 16\nbits = 1\n",
    )
    .expect("config");
    let data = dir.path().join("data");
    let port = free_port();
    let mut sevloop = Sevloop::up(&data, &config, port);
    sevloop.wait_healthy().await;

    let declined = "My card was declined at the checkout";
    let address = "How do I change the home address on my account?";
    let mut tickets = Vec::new();
    for i in 0..10 {
        tickets.push(ticket(&format!("declined-{i}"), i, declined));
    }
    for i in 0..8 {
        tickets.push(ticket(&format!("address-{i}"), 10 + i / 2, address));
    }
    let (status, body) = post(&sevloop, "/api/v1/tickets", json!(tickets)).await;
    assert_eq!(status, 202, "{body}");
    processed(&sevloop, "address-7").await;
    let chained = cluster_of(&sevloop, "declined-0").await;
    assert_eq!(
        cluster_of(&sevloop, "address-7").await,
        chained,
        "precondition: one cluster holds both complaints"
    );

    // The next ticket crosses a round boundary (every 15 minutes of event time).
    let next = vec![ticket("declined-late", 16, declined)];
    let (status, body) = post(&sevloop, "/api/v1/tickets", json!(next)).await;
    assert_eq!(status, 202, "{body}");
    processed(&sevloop, "declined-late").await;
    let split = cluster_of(&sevloop, "address-0").await;
    assert_ne!(
        split, chained,
        "the address tickets left the chained cluster"
    );
    for i in 0..8 {
        assert_eq!(cluster_of(&sevloop, &format!("address-{i}")).await, split);
    }
    for i in 0..10 {
        assert_eq!(
            cluster_of(&sevloop, &format!("declined-{i}")).await,
            chained
        );
    }
    let (_, detail) = sevloop.get(&format!("/api/v1/clusters/{split}")).await;
    assert_eq!(detail["size"], 8, "{detail:#}");
    let (_, detail) = sevloop.get(&format!("/api/v1/clusters/{chained}")).await;
    assert_eq!(detail["size"], 11, "{detail:#}");

    sevloop.stop();
    let mut sevloop = Sevloop::up(&data, &config, port);
    sevloop.wait_healthy().await;
    assert_eq!(cluster_of(&sevloop, "address-3").await, split);
    assert_eq!(cluster_of(&sevloop, "declined-late").await, chained);
    sevloop.stop();
}
