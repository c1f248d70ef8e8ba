//! Where source offsets live: one compacted Kafka topic (`ferry-offsets` by default), shared
//! by all source connectors, keyed `<namespace>/<connector>/<source partition as JSON>`
//! with the offset as a JSON object value. Kept behind [`OffsetStore`] so that a plugin
//! whose external system can hold offsets itself can use another store.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::kafka_admin::{ensure_topic, TopicRequest};
use crate::kafka_config::to_client_config;
use crate::plugins::{SourceOffset, SourcePartition};

/// A failure to load or store source offsets (retriable: Kafka may come back).
#[derive(Debug, thiserror::Error)]
#[error("source offsets in topic {topic}: {message}")]
pub struct OffsetStoreError {
    /// The offsets topic.
    pub topic: String,
    /// What went wrong.
    pub message: String,
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

/// The key format is shared with the operator, which resets and deletes these offsets.
pub use ferry_crds::offsets_topic::{key_prefix, offset_key};

/// Applies one record of the offsets topic to `into` if it belongs to the connector
/// (`prefix`); a record without a value (a tombstone) deletes the offset.
pub fn apply_offset_record(
    prefix: &str,
    key: &[u8],
    value: Option<&[u8]>,
    into: &mut BTreeMap<SourcePartition, SourceOffset>,
) {
    let Ok(key) = std::str::from_utf8(key) else {
        return;
    };
    let Some(partition_json) = key.strip_prefix(prefix) else {
        return;
    };
    let Ok(partition) = serde_json::from_str::<SourcePartition>(partition_json) else {
        tracing::warn!(
            key,
            "offsets topic: ignoring a key whose partition is not a JSON object of strings"
        );
        return;
    };
    match value {
        None => {
            into.remove(&partition);
        }
        Some(v) => match serde_json::from_slice::<SourceOffset>(v) {
            Ok(offset) => {
                into.insert(partition, offset);
            }
            Err(e) => {
                tracing::warn!(key, error = %e, "offsets topic: ignoring an offset that is not a JSON object of strings")
            }
        },
    }
}

/// [`OffsetStore`] in a compacted Kafka topic.
pub struct KafkaOffsetStore {
    props: BTreeMap<String, String>,
    topic: String,
    namespace: String,
    connector: String,
    /// Writes offsets; `None` when the task's transactional producer writes them
    /// ([`KafkaOffsetStore::records`]).
    producer: Option<FutureProducer>,
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
        let err = |message: String| OffsetStoreError {
            topic: topic.to_string(),
            message,
        };
        ensure_topic(
            props,
            TopicRequest {
                name: topic,
                partitions: 1,
                replication_factor: None,
                config: &[("cleanup.policy", "compact")],
            },
        )
        .await
        .map_err(err)?;
        let producer = if transactional {
            None
        } else {
            let mut cfg = to_client_config(props);
            cfg.set("enable.idempotence", "true").set("acks", "all");
            Some(
                cfg.create::<FutureProducer>()
                    .map_err(|e| err(format!("cannot create a producer: {e}")))?,
            )
        };
        Ok(Self {
            props: props.clone(),
            topic: topic.to_string(),
            namespace: namespace.to_string(),
            connector: connector.to_string(),
            producer,
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
        offsets
            .iter()
            .map(|(partition, offset)| {
                (
                    offset_key(&self.namespace, &self.connector, partition),
                    ferry_crds::offsets_topic::offset_value(offset),
                )
            })
            .collect()
    }

    fn read_all(&self) -> Result<BTreeMap<SourcePartition, SourceOffset>, OffsetStoreError> {
        let err = |message: String| OffsetStoreError {
            topic: self.topic.clone(),
            message,
        };
        let client = |isolation: &str| {
            let mut cfg = to_client_config(&self.props);
            cfg.set(
                "group.id",
                format!("ferry-offsets-reader-{}", std::process::id()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", isolation);
            cfg.create::<BaseConsumer>()
                .map_err(|e| err(format!("cannot create a consumer: {e}")))
        };
        // The end of each partition, transactions still open included: a read_committed
        // client would be told the last stable offset instead.
        let ends = client("read_uncommitted")?;
        let consumer = client(if self.producer.is_none() {
            "read_committed"
        } else {
            "read_uncommitted"
        })?;
        let timeout = Duration::from_secs(30);
        let metadata = ends
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(|e| err(format!("cannot read metadata: {e}")))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let mut tpl = TopicPartitionList::new();
        let mut remaining = BTreeMap::new();
        for p in partitions {
            let (low, high) = ends
                .fetch_watermarks(&self.topic, p, timeout)
                .map_err(|e| err(format!("cannot read the end of partition {p}: {e}")))?;
            if high > low {
                // From the offset just read rather than `Offset::Beginning`, which the
                // client would look up again (a second before the first fetch).
                tpl.add_partition_offset(&self.topic, p, Offset::Offset(low))
                    .map_err(|e| err(e.to_string()))?;
                remaining.insert(p, high);
            }
        }
        drop(ends);
        let mut out = BTreeMap::new();
        if remaining.is_empty() {
            return Ok(out);
        }
        // The reading client learns the partitions' leaders before it is assigned them, so
        // that it fetches at once.
        consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .map_err(|e| err(format!("cannot read metadata: {e}")))?;
        consumer
            .assign(&tpl)
            .map_err(|e| err(format!("cannot assign partitions: {e}")))?;
        let prefix = key_prefix(&self.namespace, &self.connector);
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while !remaining.is_empty() {
            if std::time::Instant::now() > deadline {
                return Err(err(format!(
                    "timed out reading the stored offsets (partitions {:?} not read to their end; \
                     a transaction left open by a stopped producer ends after its transaction.timeout.ms)",
                    remaining.keys().collect::<Vec<_>>()
                )));
            }
            let at_end = match consumer.poll(Duration::from_millis(500)) {
                None | Some(Err(KafkaError::PartitionEOF(_))) => true,
                Some(Err(e)) => return Err(err(format!("cannot read: {e}"))),
                Some(Ok(m)) => {
                    if let Some(key) = m.key() {
                        apply_offset_record(&prefix, key, m.payload(), &mut out);
                    }
                    remaining
                        .get(&m.partition())
                        .is_some_and(|end| m.offset() + 1 >= *end)
                }
            };
            // The read position counts transaction markers, which are never delivered: it
            // tells when a partition is read to the end taken above. Under read_committed
            // it stops before a transaction still open, until that one ends.
            if at_end {
                if let Ok(position) = consumer.position() {
                    for e in position.elements() {
                        if let Offset::Offset(next) = e.offset() {
                            if remaining
                                .get(&e.partition())
                                .is_some_and(|end| next >= *end)
                            {
                                remaining.remove(&e.partition());
                            }
                        }
                    }
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl OffsetStore for KafkaOffsetStore {
    async fn load(&self) -> Result<BTreeMap<SourcePartition, SourceOffset>, OffsetStoreError> {
        tokio::task::block_in_place(|| self.read_all())
    }

    async fn store(
        &self,
        offsets: &BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), OffsetStoreError> {
        let Some(producer) = &self.producer else {
            return Err(OffsetStoreError {
                topic: self.topic.clone(),
                message: "an exactly-once task writes its offsets in its own transactions".into(),
            });
        };
        let records = self.records(offsets);
        let pending = records.iter().map(|(key, value)| {
            producer.send(
                FutureRecord::to(&self.topic).key(key).payload(value),
                Duration::from_secs(30),
            )
        });
        for result in futures::future::join_all(pending).await {
            result.map_err(|(e, _)| OffsetStoreError {
                topic: self.topic.clone(),
                message: format!("cannot store an offset: {e}"),
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_to_the_connector_and_tombstones_delete() {
        let part = BTreeMap::from([("path".to_string(), "/in.txt".to_string())]);
        let key = offset_key("shop", "lines", &part);
        assert_eq!(key, "shop/lines/{\"path\":\"/in.txt\"}");
        let mut m = BTreeMap::new();
        let prefix = key_prefix("shop", "lines");
        apply_offset_record(
            &prefix,
            key.as_bytes(),
            Some(br#"{"position":"10"}"#),
            &mut m,
        );
        apply_offset_record(
            &prefix,
            key.as_bytes(),
            Some(br#"{"position":"20"}"#),
            &mut m,
        );
        apply_offset_record(
            &prefix,
            b"shop/other/{\"path\":\"/in.txt\"}",
            Some(br#"{"position":"99"}"#),
            &mut m,
        );
        apply_offset_record(&prefix, b"shop/lines/not json", Some(b"{}"), &mut m);
        assert_eq!(m[&part]["position"], "20");
        assert_eq!(m.len(), 1);
        apply_offset_record(&prefix, key.as_bytes(), None, &mut m);
        assert!(m.is_empty());
    }
}
