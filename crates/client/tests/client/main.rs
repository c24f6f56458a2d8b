//! strata-client against an in-process mock cluster (`mock.rs`): real tonic servers on
//! 127.0.0.1:0 with scripted leaders and faults.

#![allow(clippy::unwrap_used, missing_docs)]

mod admin;
mod consumer;
mod mock;
mod producer;

use std::time::Duration;

use strata_client::{Client, ClientConfig};

use mock::MockCluster;

/// A client of `cluster` with short refresh backoff (tests should not wait on it).
pub async fn client(cluster: &MockCluster) -> Client {
    Client::connect_with(
        cluster.addrs.clone(),
        ClientConfig {
            metadata_refresh_backoff: Duration::from_millis(5),
            connect_timeout: Duration::from_secs(2),
            ..ClientConfig::default()
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn connect_skips_dead_brokers_and_reads_metadata() {
    let cluster = MockCluster::start(2).await;
    cluster.add_topic("t", &[1, 2]);
    // Nothing listens on a port we just freed.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let client = Client::connect([dead.clone(), cluster.addrs[0].clone()])
        .await
        .unwrap();
    let metadata = client.metadata(["t", "nope"]).await.unwrap();
    assert_eq!(metadata.cluster_id, "mock");
    assert_eq!(metadata.nodes.len(), 2);
    assert_eq!(metadata.nodes[1].client_addr, cluster.addrs[1]);
    assert_eq!(metadata.topics.len(), 1);
    assert_eq!(metadata.topics[0].partitions[1].leader_id, Some(2));
    assert_eq!(metadata.unknown_topics, vec!["nope".to_string()]);

    let error = Client::connect([dead]).await.unwrap_err();
    assert!(
        matches!(error, strata_client::Error::Transport(_)),
        "{error:?}"
    );
    let error = Client::connect(Vec::<String>::new()).await.unwrap_err();
    assert!(matches!(
        error,
        strata_client::Error::InvalidArgument { .. }
    ));
}

#[tokio::test]
async fn metadata_does_not_wait_for_a_frozen_node() {
    let cluster = MockCluster::start(2).await;
    cluster.add_topic("t", &[1, 2]);
    // Node 1 accepts connections and answers pings, but no request.
    cluster.freeze(1, true);
    let started = tokio::time::Instant::now();
    let client = Client::connect(cluster.addrs.clone()).await.unwrap();
    let metadata = client.metadata(["t"]).await.unwrap();
    assert_eq!(metadata.topics.len(), 1);
    // Node 2 is asked once node 1 kept silent for `leader_probe_interval` (500 ms), not after
    // the 30 s request timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// The client's types and futures can move between tasks (`tokio::spawn`).
#[allow(dead_code)]
fn futures_are_send(
    client: strata_client::Client,
    producer: strata_client::Producer,
    mut consumer: strata_client::Consumer,
    admin: strata_client::Admin,
) {
    fn send<T: Send>(_: T) {}
    fn sync<T: Send + Sync>(_: &T) {}
    sync(&client);
    sync(&producer);
    sync(&admin);
    send(producer.send(strata_client::ProducerRecord::new("t", "v")));
    send(producer.flush());
    send(producer.close());
    send(client.metadata(["t"]));
    send(admin.list_topics());
    send(consumer.end_offsets());
    send(consumer.poll());
    send(consumer);
    send(strata_client::Client::connect(["a:1"]));
}
