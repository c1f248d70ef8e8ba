//! Where source offsets live: by default the shared offsets topic (`ferry-offsets`, see
//! [`ferry_kafka::offsets_topic`]), kept behind [`OffsetStore`] so that a plugin whose
//! external system can hold offsets itself can use another store.

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferry_kafka::offsets_topic::{self, Isolation, OffsetsWriter};
use rdkafka::ClientConfig;

use crate::plugins::{SourceOffset, SourcePartition};

/// A failure to load or store source offsets (retriable: Kafka may come back).
#[derive(Debug, thiserror::Error)]
pub enum OffsetStoreError {
    /// Kafka failed.
    #[error("source offsets in topic {topic}: {source}")]
    Kafka {
        /// The offsets topic.
        topic: String,
        /// What failed.
        source: ferry_kafka::Error,
    },
    /// The store cannot do this.
    #[error("source offsets in topic {topic}: {message}")]
    Unsupported {
        /// The offsets topic.
        topic: String,
        /// Why.
        message: &'static str,
    },
}

/// Loads and stores the source offsets of one connector.
#[async_trait]
pub trait OffsetStore: Send + Sync {
    /// Every stored offset of the connector.
    async fn load(&self) -> Result<BTreeMap<SourcePartition, SourceOffset>, OffsetStoreError>;
    /// Stores offsets; returns once they are durable.
    async fn store(
        &self,
        offsets: &BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), OffsetStoreError>;
}

/// [`OffsetStore`] in the offsets topic.
pub struct KafkaOffsetStore {
    client: ClientConfig,
    topic: String,
    namespace: String,
    connector: String,
    /// Writes offsets; `None` when the task's transactional producer writes them
    /// ([`KafkaOffsetStore::records`]).
    writer: Option<OffsetsWriter>,
}

impl KafkaOffsetStore {
    /// Connects to Kafka with the task's client properties and creates the topic
    /// (compacted) when it is missing. `transactional`: the task writes its offsets in its
    /// own transactions (exactly-once sources), so they count once their transaction
    /// committed (loading waits for transactions still open to end) and the store keeps no
    /// producer.
    pub async fn open(
        props: &BTreeMap<String, String>,
        topic: &str,
        namespace: &str,
        connector: &str,
        transactional: bool,
    ) -> Result<Self, OffsetStoreError> {
        let err = |source| OffsetStoreError::Kafka {
            topic: topic.to_string(),
            source,
        };
        let client = ferry_kafka::client_config(props);
        let writer = if transactional {
            offsets_topic::ensure_offsets_topic(&client, topic)
                .await
                .map_err(err)?;
            None
        } else {
            Some(OffsetsWriter::open(&client, topic).await.map_err(err)?)
        };
        Ok(Self {
            client,
            topic: topic.to_string(),
            namespace: namespace.to_string(),
            connector: connector.to_string(),
            writer,
        })
    }

    /// The topic the offsets are stored in.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The records that store `offsets`: key and value, for a producer of the caller's (a
    /// transactional one writes them in the same transaction as the records they describe).
    pub fn records(
        &self,
        offsets: &BTreeMap<SourcePartition, SourceOffset>,
    ) -> Vec<(String, Vec<u8>)> {
        offsets_topic::offset_records(&self.namespace, &self.connector, offsets)
    }
}

#[async_trait]
impl OffsetStore for KafkaOffsetStore {
    async fn load(&self) -> Result<BTreeMap<SourcePartition, SourceOffset>, OffsetStoreError> {
        let isolation = Isolation::for_connector(self.writer.is_none());
        tokio::task::block_in_place(|| {
            offsets_topic::read_offsets(
                &self.client,
                &self.topic,
                &self.namespace,
                &self.connector,
                isolation,
            )
        })
        .map_err(|source| OffsetStoreError::Kafka {
            topic: self.topic.clone(),
            source,
        })
    }

    async fn store(
        &self,
        offsets: &BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), OffsetStoreError> {
        let Some(writer) = &self.writer else {
            return Err(OffsetStoreError::Unsupported {
                topic: self.topic.clone(),
                message: "an exactly-once task writes its offsets in its own transactions",
            });
        };
        let records: Vec<(SourcePartition, Option<SourceOffset>)> = offsets
            .iter()
            .map(|(partition, offset)| (partition.clone(), Some(offset.clone())))
            .collect();
        writer
            .write(&self.namespace, &self.connector, &records)
            .await
            .map_err(|source| OffsetStoreError::Kafka {
                topic: self.topic.clone(),
                source,
            })
    }
}
