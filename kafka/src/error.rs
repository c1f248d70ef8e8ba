//! What can go wrong talking to Kafka. Every variant keeps the client's own error as its
//! source and names what was being done.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// A failed Kafka operation of the shared layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// librdkafka refused to create a client from the properties.
    #[error("cannot create a Kafka {kind}: {source}")]
    Client {
        /// `consumer`, `producer` or `admin client`.
        kind: &'static str,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A topic could not be created.
    #[error("cannot create topic {topic}: {source}")]
    CreateTopic {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// The broker refused to create a topic.
    #[error("cannot create topic {topic}: {code}")]
    TopicRefused {
        /// The topic.
        topic: String,
        /// The broker's error code.
        code: RDKafkaErrorCode,
    },
    /// Reading a topic's metadata failed.
    #[error("cannot read the metadata of {topic}: {source}")]
    Metadata {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// Reading the bounds (low and high watermark) of a partition failed.
    #[error("cannot read the bounds of {topic}[{partition}]: {source}")]
    Bounds {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// Reading records failed.
    #[error("cannot read {topic}: {source}")]
    Read {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A topic was not read to its end in time.
    #[error(
        "timed out after {seconds} s reading {topic} (partitions {partitions:?} not read to \
         their end; a transaction left open by a stopped producer ends after its \
         transaction.timeout.ms)"
    )]
    ReadTimeout {
        /// The topic.
        topic: String,
        /// How long the read was allowed to take.
        seconds: u64,
        /// The partitions not read to their end.
        partitions: Vec<i32>,
    },
    /// Kafka did not take a record.
    #[error("Kafka did not take a record for {topic}: {source}")]
    Write {
        /// The topic.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
}
