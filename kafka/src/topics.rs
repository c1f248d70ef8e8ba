//! Topics Ferry creates for itself: the source offsets topic and dead letter queues.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::error::Error;

/// How long the broker may take to create a topic.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Creates the topic unless it exists.
pub async fn ensure_topic(config: &ClientConfig, topic: TopicRequest<'_>) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|source| Error::Client {
            kind: "admin client",
            source,
        })?;
    let mut new = NewTopic::new(
        topic.name,
        topic.partitions,
        TopicReplication::Fixed(topic.replication_factor.unwrap_or(-1)),
    );
    for (k, v) in topic.config {
        new = new.set(k, v);
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(CREATE_TIMEOUT))
        .request_timeout(Some(CREATE_TIMEOUT));
    let results =
        admin
            .create_topics([&new], &opts)
            .await
            .map_err(|source| Error::CreateTopic {
                topic: topic.name.to_string(),
                source,
            })?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic = topic.name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => return Err(Error::TopicRefused { topic: name, code }),
        }
    }
    Ok(())
}
