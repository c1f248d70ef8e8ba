//! The source offsets topic (`ferry-offsets` by default): one compacted topic shared by all
//! source connectors, keyed `<namespace>/<connector>/<source partition as JSON>` with the
//! offset as a JSON object value ([`format`]). The runner stores a source task's offsets
//! here; the operator reads them for `status.offsets`, and resets and deletes them. Both go
//! through the one reader ([`read_offsets`]) and the one writer ([`OffsetsWriter`]).

pub mod format;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

pub use format::{
    key_prefix, offset_key, offset_value, parse_offset_value, partition_of_key, SourceOffset,
    SourcePartition,
};

use crate::error::Error;
use crate::topics::{ensure_topic, TopicRequest};

/// Timeout of one Kafka request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest a read of the whole offsets topic may take: longer than the default
/// `transaction.timeout.ms` (60 s), so that a read waiting behind a transaction left open by a
/// stopped exactly-once task sees it end.
pub const READ_DEADLINE: Duration = Duration::from_secs(120);

/// Whether a consumer error is the connection's, not the read's: the client retries it by
/// itself (broker restarting, connection refused or reset, a request timing out).
fn is_transient(error: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as Code;
    matches!(
        error.rdkafka_error_code(),
        Some(
            Code::BrokerTransportFailure
                | Code::AllBrokersDown
                | Code::NetworkException
                | Code::RequestTimedOut
                | Code::OperationTimedOut
                | Code::NotCoordinator
                | Code::LeaderNotAvailable
                | Code::NotLeaderForPartition
        )
    )
}
/// The consumer group id of readers. They are assigned partitions and never commit, so the
/// group has no members and holds no offsets.
const READER_GROUP: &str = "ferry-offsets-reader";

/// Which offsets a reader counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Only offsets whose transaction committed (exactly-once sources write their offsets
    /// in the transactions of the records they describe); the read waits for open
    /// transactions to end.
    ReadCommitted,
    /// Every offset written, without waiting for anybody's open transaction.
    ReadUncommitted,
}

impl Isolation {
    /// The isolation that reads a connector's offsets as its tasks wrote them.
    pub fn for_connector(exactly_once: bool) -> Self {
        if exactly_once {
            Isolation::ReadCommitted
        } else {
            Isolation::ReadUncommitted
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read_committed",
            Isolation::ReadUncommitted => "read_uncommitted",
        }
    }
}

/// Applies one record of the offsets topic to `into` if it belongs to the connector whose
/// key prefix is `prefix`; a record without a value (a tombstone) deletes the offset.
/// Records of the connector that are not in the format are skipped with a warning.
pub fn apply_offset_record(
    prefix: &str,
    key: &[u8],
    value: Option<&[u8]>,
    into: &mut BTreeMap<SourcePartition, SourceOffset>,
) {
    let partition = match partition_of_key(prefix, key) {
        None => return,
        Some(Ok(partition)) => partition,
        Some(Err(error)) => {
            tracing::warn!(
                key = %String::from_utf8_lossy(key),
                %error,
                "offsets topic: ignoring a key whose partition is not a JSON object of strings"
            );
            return;
        }
    };
    match value.map(parse_offset_value) {
        None => {
            into.remove(&partition);
        }
        Some(Ok(offset)) => {
            into.insert(partition, offset);
        }
        Some(Err(error)) => tracing::warn!(
            key = %String::from_utf8_lossy(key),
            %error,
            "offsets topic: ignoring an offset that is not a JSON object of strings"
        ),
    }
}

fn reader(config: &ClientConfig, isolation: Isolation) -> Result<BaseConsumer, Error> {
    let mut config = config.clone();
    config
        .set("group.id", READER_GROUP)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation.as_str());
    config.create().map_err(|source| Error::Client {
        kind: "consumer",
        source,
    })
}

/// Every stored offset of connector `namespace/connector` in `topic`, read to the topic's
/// end as it was when the read started; a missing topic holds none. Blocking: call it from a
/// blocking thread.
pub fn read_offsets(
    config: &ClientConfig,
    topic: &str,
    namespace: &str,
    connector: &str,
    isolation: Isolation,
) -> Result<BTreeMap<SourcePartition, SourceOffset>, Error> {
    // A broker that is restarting fails the metadata or bounds requests at once: read again
    // until the deadline, as the client would reconnect.
    let deadline = Instant::now() + READ_DEADLINE;
    loop {
        match read_offsets_once(config, topic, namespace, connector, isolation) {
            Err(Error::Metadata { source, .. } | Error::Bounds { source, .. })
                if is_transient(&source) && Instant::now() < deadline =>
            {
                tracing::warn!(%topic, error = %source, "reading offsets: the broker is unreachable; retrying");
                std::thread::sleep(Duration::from_secs(1));
            }
            result => return result,
        }
    }
}

fn read_offsets_once(
    config: &ClientConfig,
    topic: &str,
    namespace: &str,
    connector: &str,
    isolation: Isolation,
) -> Result<BTreeMap<SourcePartition, SourceOffset>, Error> {
    let metadata_error = |source| Error::Metadata {
        topic: topic.to_string(),
        source,
    };
    // The end of each partition, transactions still open included: a read_committed client
    // would be told the last stable offset instead.
    let ends = reader(config, Isolation::ReadUncommitted)?;
    let metadata = ends
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(metadata_error)?;
    let mut tpl = TopicPartitionList::new();
    let mut remaining: BTreeMap<i32, i64> = BTreeMap::new();
    for t in metadata.topics().iter().filter(|t| t.error().is_none()) {
        for p in t.partitions() {
            let (low, high) = ends
                .fetch_watermarks(topic, p.id(), REQUEST_TIMEOUT)
                .map_err(|source| Error::Bounds {
                    topic: topic.to_string(),
                    partition: p.id(),
                    source,
                })?;
            if high > low {
                // From the offset just read rather than `Offset::Beginning`, which the
                // client would look up again (a second before the first fetch).
                tpl.add_partition_offset(topic, p.id(), Offset::Offset(low))
                    .map_err(|source| Error::Read {
                        topic: topic.to_string(),
                        source,
                    })?;
                remaining.insert(p.id(), high);
            }
        }
    }
    drop(ends);
    let mut out = BTreeMap::new();
    if remaining.is_empty() {
        return Ok(out);
    }
    let consumer = reader(config, isolation)?;
    // The reading client learns the partitions' leaders before it is assigned them, so that
    // it fetches at once.
    consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(metadata_error)?;
    let read_error = |source| Error::Read {
        topic: topic.to_string(),
        source,
    };
    consumer.assign(&tpl).map_err(read_error)?;
    let prefix = key_prefix(namespace, connector);
    let deadline = Instant::now() + READ_DEADLINE;
    while !remaining.is_empty() {
        if Instant::now() > deadline {
            return Err(Error::ReadTimeout {
                topic: topic.to_string(),
                seconds: READ_DEADLINE.as_secs(),
                partitions: remaining.keys().copied().collect(),
            });
        }
        let at_end = match consumer.poll(Duration::from_millis(500)) {
            None | Some(Err(KafkaError::PartitionEOF(_))) => true,
            // The broker went away for a moment: librdkafka reconnects on its own, and the
            // read goes on until the deadline.
            Some(Err(e)) if is_transient(&e) => {
                tracing::warn!(%topic, error = %e, "reading offsets: the broker is unreachable; retrying");
                false
            }
            Some(Err(e)) => return Err(read_error(e)),
            Some(Ok(m)) => {
                if let Some(key) = m.key() {
                    apply_offset_record(&prefix, key, m.payload(), &mut out);
                }
                remaining
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
            }
        };
        // The read position counts transaction markers, which are never delivered: it tells
        // when a partition is read to the end taken above. Under read_committed it stops
        // before a transaction still open, until that one ends.
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

/// The records that store `offsets` of a connector: key and value, for a producer of the
/// caller's (an exactly-once task writes them in the transaction of the records they
/// describe).
pub fn offset_records(
    namespace: &str,
    connector: &str,
    offsets: &BTreeMap<SourcePartition, SourceOffset>,
) -> Vec<(String, Vec<u8>)> {
    offsets
        .iter()
        .map(|(partition, offset)| {
            (
                offset_key(namespace, connector, partition),
                offset_value(offset),
            )
        })
        .collect()
}

/// Creates the offsets topic (one partition, compacted) unless it exists.
pub async fn ensure_offsets_topic(config: &ClientConfig, topic: &str) -> Result<(), Error> {
    // A broker that is restarting (recovering its logs) times the request out: ask again
    // until the deadline, as for the read.
    let deadline = Instant::now() + READ_DEADLINE;
    loop {
        let created = ensure_topic(
            config,
            TopicRequest {
                name: topic,
                partitions: 1,
                replication_factor: None,
                config: &[("cleanup.policy", "compact")],
            },
        )
        .await;
        match created {
            Err(Error::CreateTopic { source, .. })
                if is_transient(&source) && Instant::now() < deadline =>
            {
                tracing::warn!(%topic, error = %source, "creating the offsets topic: the broker does not answer; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            result => return result,
        }
    }
}

/// Writes offsets and tombstones into the offsets topic with an idempotent producer.
pub struct OffsetsWriter {
    producer: FutureProducer,
    topic: String,
}

impl OffsetsWriter {
    /// Creates the topic unless it exists, and the producer.
    pub async fn open(config: &ClientConfig, topic: &str) -> Result<Self, Error> {
        ensure_offsets_topic(config, topic).await?;
        let mut config = config.clone();
        config.set("enable.idempotence", "true").set("acks", "all");
        let producer = config.create().map_err(|source| Error::Client {
            kind: "producer",
            source,
        })?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Stores an offset (`Some`) or deletes it (`None`, a tombstone) for each source
    /// partition of connector `namespace/connector`; returns once Kafka has them all.
    pub async fn write(
        &self,
        namespace: &str,
        connector: &str,
        records: &[(SourcePartition, Option<SourceOffset>)],
    ) -> Result<(), Error> {
        let pending = records.iter().map(|(partition, offset)| {
            let key = offset_key(namespace, connector, partition);
            let value = offset.as_ref().map(offset_value);
            async move {
                let mut record = FutureRecord::<String, Vec<u8>>::to(&self.topic).key(&key);
                if let Some(value) = &value {
                    record = record.payload(value);
                }
                self.producer.send(record, REQUEST_TIMEOUT).await
            }
        });
        for result in futures::future::join_all(pending).await {
            result.map_err(|(source, _)| Error::Write {
                topic: self.topic.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_going_away_is_retried_a_missing_topic_is_not() {
        use rdkafka::types::RDKafkaErrorCode as Code;
        assert!(is_transient(&KafkaError::MessageConsumption(
            Code::BrokerTransportFailure
        )));
        assert!(is_transient(&KafkaError::MessageConsumption(
            Code::AllBrokersDown
        )));
        // What fetch_watermarks returns while a restarted broker recovers the partition.
        assert!(is_transient(&KafkaError::MetadataFetch(
            Code::NotLeaderForPartition
        )));
        assert!(!is_transient(&KafkaError::MessageConsumption(
            Code::UnknownTopicOrPartition
        )));
        assert!(!is_transient(&KafkaError::MessageConsumption(
            Code::TopicAuthorizationFailed
        )));
    }

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
        apply_offset_record(&prefix, key.as_bytes(), Some(b"not json"), &mut m);
        assert_eq!(m[&part]["position"], "20");
        assert_eq!(m.len(), 1);
        apply_offset_record(&prefix, key.as_bytes(), None, &mut m);
        assert!(m.is_empty());
    }

    #[test]
    fn records_hold_the_keys_and_values_of_the_format() {
        let offsets = BTreeMap::from([(
            BTreeMap::from([("path".to_string(), "/a".to_string())]),
            BTreeMap::from([("position".to_string(), "7".to_string())]),
        )]);
        let records = offset_records("n", "c", &offsets);
        assert_eq!(
            records,
            vec![(
                r#"n/c/{"path":"/a"}"#.to_string(),
                br#"{"position":"7"}"#.to_vec()
            )]
        );
    }

    #[test]
    fn isolation_follows_the_connector_s_delivery() {
        assert_eq!(Isolation::for_connector(true), Isolation::ReadCommitted);
        assert_eq!(Isolation::for_connector(false), Isolation::ReadUncommitted);
    }
}
