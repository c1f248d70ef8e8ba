//! Topics the runner creates for itself: the source offsets topic and the dead letter queue.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::kafka_config::to_client_config;

/// A topic to create when it does not exist.
#[derive(Clone, Debug)]
pub struct TopicRequest<'a> {
    /// Name.
    pub name: &'a str,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor; `None`: the broker's default.
    pub replication_factor: Option<i32>,
    /// Topic configuration (e.g. `cleanup.policy=compact`).
    pub config: &'a [(&'a str, &'a str)],
}

/// Creates the topic unless it exists. Errors are messages for the operator of the task.
pub async fn ensure_topic(
    props: &BTreeMap<String, String>,
    topic: TopicRequest<'_>,
) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = to_client_config(props)
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let mut new = NewTopic::new(
        topic.name,
        topic.partitions,
        TopicReplication::Fixed(topic.replication_factor.unwrap_or(-1)),
    );
    for (k, v) in topic.config {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| format!("cannot create topic {}: {e}", topic.name))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = topic.name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(format!("cannot create topic {name}: {code}")),
        }
    }
    Ok(())
}
