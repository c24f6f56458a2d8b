//! Admin: retries on unavailable, errors, domain structs serializable.

use std::collections::BTreeMap;

use strata_client::Error;
use tonic::Code;

use crate::client;
use crate::mock::{Fault, MockCluster, MockStatus};

#[tokio::test]
async fn create_retries_unavailable_and_reports_existing_topics() {
    let cluster = MockCluster::start(2).await;
    let client = client(&cluster).await;
    let admin = client.admin();
    cluster.push_fault(Fault::Admin(MockStatus::strata(
        Code::Unavailable,
        "NOT_CONTROLLER",
        &[],
    )));
    cluster.push_fault(Fault::Admin(MockStatus::plain(Code::Unavailable)));
    let configs = BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]);
    let topic = admin.create_topic("orders", 3, 2, configs).await.unwrap();
    assert_eq!(topic.name, "orders");
    assert_eq!(topic.partitions.len(), 3);
    assert_eq!(topic.configs["retention.ms"], "60000");
    assert_eq!(cluster.state().admin_calls, 3);

    let error = admin
        .create_topic("orders", 3, 2, BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::TopicExists {
            topic: "orders".into()
        }
    );
    let error = admin
        .create_topic("bad", 0, 2, BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(
        error,
        Error::InvalidArgument {
            field: "partitions".into(),
            reason: "must be at least 1".into()
        }
    );

    // The client learned the topic: a producer can use it without a refresh.
    let producer = client
        .producer(strata_client::ProducerConfig::default())
        .unwrap();
    let ack = producer
        .send(strata_client::ProducerRecord::new("orders", "v").with_partition(2))
        .await
        .unwrap();
    producer.flush().await;
    assert_eq!(ack.await.unwrap().offset, 0);
}

#[tokio::test]
async fn describe_list_delete_and_status() {
    let cluster = MockCluster::start(2).await;
    cluster.add_topic("a", &[1]);
    cluster.add_topic("b", &[2, 1]);
    let client = client(&cluster).await;
    let admin = client.admin();
    let names: Vec<String> = admin
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    let b = admin.describe_topic("b").await.unwrap();
    assert_eq!(b.partitions[0].leader_id, Some(2));
    assert_eq!(b.partitions[1].high_watermark, Some(0));
    let json = serde_json::to_value(&b).unwrap();
    assert_eq!(json["partitions"][0]["leader_id"], 2);

    assert_eq!(admin.delete_topic("a").await.unwrap(), "id-a");
    let error = admin.describe_topic("a").await.unwrap_err();
    assert_eq!(error, Error::UnknownTopic { topic: "a".into() });

    let status = admin.cluster_status().await.unwrap();
    assert!(status.healthy);
    assert_eq!(status.nodes.len(), 2);
    assert_eq!(status.controller_id, Some(1));
    assert_eq!(serde_json::to_value(&status).unwrap()["partitions"], 2);
    assert_eq!(admin.rebalance().await.unwrap(), 3);
    assert_eq!(admin.decommission(2).await.unwrap(), 2);

    let error = admin.add_partitions("b", 4).await.unwrap_err();
    assert!(
        matches!(&error, Error::Other { code, .. } if code == "Unimplemented"),
        "{error:?}"
    );
}
