//! Reading and moving a connector's offsets in Kafka (I/O).
//!
//! Sinks: the consumer group `ferry.<namespace>.<connector>`; its offsets are committed
//! directly (a commit outside any group generation), which Kafka accepts only while the group
//! has no members, so the reset waits until the stopped tasks' static memberships expired.
//! Sources: the connector's records in the offsets topic, in the format of
//! [`ferry_kafka::offsets_topic`]; a reset to `Earliest` writes a tombstone for every stored
//! source partition, explicit offsets are written as they are.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_crds::connector::{OffsetTarget, SinkSpec};
use ferry_kafka::offsets_topic::{self, Isolation, OffsetsWriter, SourceOffset, SourcePartition};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::error::Error;
use crate::offset_reset::plural;

/// Timeout of one Kafka request.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What applying a reset did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The offsets were moved; what was done, in words.
    Done(String),
    /// The sink's consumer group still has members (the stopped tasks' static memberships
    /// expire after the session timeout): try again shortly.
    GroupNotEmpty(String),
    /// The target does not fit what exists in Kafka (a partition that does not exist);
    /// nothing was changed. Why, naming the field.
    Rejected(String),
}

/// The committed offset and the bounds of one topic partition a sink reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The consumer group's committed offset, if any.
    pub committed: Option<i64>,
    /// Offset of the first record still in the partition.
    pub start: i64,
    /// Offset after the last record.
    pub end: i64,
}

impl PartitionOffsets {
    /// Records after the committed offset (from the start when nothing is committed).
    pub fn lag(&self) -> i64 {
        let from = self.committed.unwrap_or(self.start).max(self.start);
        (self.end - from).max(0)
    }
}

fn kafka_error(action: impl Into<String>) -> impl FnOnce(String) -> Error {
    let action = action.into();
    move |message| Error::Offsets { action, message }
}

/// Runs blocking Kafka client calls off the async runtime.
async fn blocking<T: Send + 'static>(
    action: &str,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Offsets {
            action: action.to_string(),
            message: format!("the Kafka client task ended: {e}"),
        })?
}

fn consumer(config: &ClientConfig, group: &str) -> Result<BaseConsumer, String> {
    let mut config = config.clone();
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    config
        .create()
        .map_err(|e| format!("cannot create a Kafka consumer: {e}"))
}

/// The topics a sink reads that exist now, with their partition counts.
fn sink_topics(consumer: &BaseConsumer, sink: &SinkSpec) -> Result<Vec<(String, i32)>, String> {
    let regex = match &sink.topics_regex {
        Some(pattern) => Some(
            regex::Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| format!("spec.sink.topicsRegex is not a regular expression: {e}"))?,
        ),
        None => None,
    };
    let metadata = consumer
        .fetch_metadata(None, TIMEOUT)
        .map_err(|e| format!("cannot read the topics' metadata: {e}"))?;
    let mut topics: Vec<(String, i32)> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .filter(|t| {
            sink.topics.iter().any(|n| n == t.name())
                || regex.as_ref().is_some_and(|r| r.is_match(t.name()))
        })
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();
    topics.sort();
    Ok(topics)
}

/// Reads the committed offsets and bounds of every partition of the topics a sink reads.
pub async fn read_sink_offsets(
    config: &ClientConfig,
    group: &str,
    sink: &SinkSpec,
) -> Result<Vec<PartitionOffsets>, Error> {
    let config = config.clone();
    let group = group.to_string();
    let sink = sink.clone();
    let action = format!("reading the offsets of consumer group {group}");
    blocking(&action.clone(), move || {
        let consumer = consumer(&config, &group).map_err(kafka_error(&action))?;
        let topics = sink_topics(&consumer, &sink).map_err(kafka_error(&action))?;
        let mut tpl = TopicPartitionList::new();
        for (topic, count) in &topics {
            for partition in 0..*count {
                tpl.add_partition(topic, partition);
            }
        }
        if tpl.count() == 0 {
            return Ok(Vec::new());
        }
        let committed = consumer
            .committed_offsets(tpl, TIMEOUT)
            .map_err(|e| kafka_error(&action)(format!("cannot read committed offsets: {e}")))?;
        let mut out = Vec::new();
        for element in committed.elements() {
            let (start, end) = consumer
                .fetch_watermarks(element.topic(), element.partition(), TIMEOUT)
                .map_err(|e| {
                    kafka_error(&action)(format!(
                        "cannot read the bounds of {}[{}]: {e}",
                        element.topic(),
                        element.partition()
                    ))
                })?;
            out.push(PartitionOffsets {
                topic: element.topic().to_string(),
                partition: element.partition(),
                committed: match element.offset() {
                    Offset::Offset(o) => Some(o),
                    _ => None,
                },
                start,
                end,
            });
        }
        Ok(out)
    })
    .await
}

/// Moves a sink's consumer group offsets to `target`. Call it only once the tasks are gone.
pub async fn reset_sink(
    config: &ClientConfig,
    group: &str,
    sink: &SinkSpec,
    target: &OffsetTarget,
) -> Result<Applied, Error> {
    let config = config.clone();
    let group = group.to_string();
    let sink = sink.clone();
    let target = target.clone();
    let action = format!("resetting the offsets of consumer group {group}");
    blocking(&action.clone(), move || {
        let fail = |m: String| kafka_error(&action)(m);
        let consumer = consumer(&config, &group).map_err(fail)?;
        let groups = consumer
            .fetch_group_list(Some(&group), TIMEOUT)
            .map_err(|e| fail(format!("cannot describe the group: {e}")))?;
        if let Some(g) = groups.groups().iter().find(|g| g.name() == group) {
            if !g.members().is_empty() {
                return Ok(Applied::GroupNotEmpty(format!(
                    "consumer group {group} still has {} ({}); the stopped tasks' static \
                     memberships expire after the session timeout",
                    plural(g.members().len(), "member"),
                    g.state()
                )));
            }
        }
        let topics = sink_topics(&consumer, &sink).map_err(fail)?;
        let bounds = |topic: &str, partition: i32| {
            consumer
                .fetch_watermarks(topic, partition, TIMEOUT)
                .map_err(|e| {
                    fail(format!(
                        "cannot read the bounds of {topic}[{partition}]: {e}"
                    ))
                })
        };
        // (topic, partition, new offset, end)
        let mut moves: Vec<(String, i32, i64, i64)> = Vec::new();
        match &target {
            OffsetTarget::Earliest | OffsetTarget::Latest => {
                for (topic, count) in &topics {
                    for partition in 0..*count {
                        let (start, end) = bounds(topic, partition)?;
                        let to = if target == OffsetTarget::Earliest {
                            start
                        } else {
                            end
                        };
                        moves.push((topic.clone(), partition, to, end));
                    }
                }
            }
            OffsetTarget::Timestamp(at) => {
                let mut tpl = TopicPartitionList::new();
                for (topic, count) in &topics {
                    for partition in 0..*count {
                        tpl.add_partition_offset(
                            topic,
                            partition,
                            Offset::Offset(at.as_millisecond()),
                        )
                        .map_err(|e| fail(e.to_string()))?;
                    }
                }
                if tpl.count() > 0 {
                    let found = consumer
                        .offsets_for_times(tpl, TIMEOUT)
                        .map_err(|e| fail(format!("cannot look up offsets by time: {e}")))?;
                    for element in found.elements() {
                        let (_, end) = bounds(element.topic(), element.partition())?;
                        // No record at or after the time: the end of the partition.
                        let to = match element.offset() {
                            Offset::Offset(o) if o >= 0 => o,
                            _ => end,
                        };
                        moves.push((element.topic().to_string(), element.partition(), to, end));
                    }
                }
            }
            OffsetTarget::Sink(offsets) => {
                for (i, o) in offsets.iter().enumerate() {
                    let Some((_, count)) = topics.iter().find(|(t, _)| *t == o.topic) else {
                        return Ok(Applied::Rejected(format!(
                            "spec.offsets.reset.sinkOffsets[{i}].topic: topic {:?} does not exist",
                            o.topic
                        )));
                    };
                    if o.partition >= *count {
                        return Ok(Applied::Rejected(format!(
                            "spec.offsets.reset.sinkOffsets[{i}].partition: topic {:?} has no \
                             partition {} (it has {})",
                            o.topic,
                            o.partition,
                            plural(*count as usize, "partition")
                        )));
                    }
                    let (_, end) = bounds(&o.topic, o.partition)?;
                    moves.push((o.topic.clone(), o.partition, o.offset, end));
                }
            }
            OffsetTarget::Source(_) => {
                return Ok(Applied::Rejected(
                    "spec.offsets.reset.sourceOffsets: is for source connectors".to_string(),
                ))
            }
        }
        if moves.is_empty() {
            return Ok(Applied::Done(format!(
                "nothing to reset: none of the connector's topics exists yet ({})",
                describe_topics(&sink)
            )));
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, to, _) in &moves {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*to))
                .map_err(|e| fail(e.to_string()))?;
        }
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::UnknownMemberId
                            | RDKafkaErrorCode::RebalanceInProgress
                            | RDKafkaErrorCode::IllegalGeneration
                            | RDKafkaErrorCode::FencedInstanceId
                    )
                ) =>
            {
                return Ok(Applied::GroupNotEmpty(format!(
                    "consumer group {group} refused the new offsets while it has members: {e}"
                )));
            }
            Err(e) => return Err(fail(format!("cannot commit the new offsets: {e}"))),
        }
        Ok(Applied::Done(describe_moves(&moves)))
    })
    .await
}

fn describe_topics(sink: &SinkSpec) -> String {
    match &sink.topics_regex {
        Some(regex) => format!("topics matching {regex:?}"),
        None => sink.topics.join(", "),
    }
}

/// `3 partitions of orders moved; 1500 records to read`.
fn describe_moves(moves: &[(String, i32, i64, i64)]) -> String {
    let mut topics: Vec<&str> = moves.iter().map(|m| m.0.as_str()).collect();
    topics.dedup();
    let to_read: i64 = moves.iter().map(|(_, _, to, end)| (end - to).max(0)).sum();
    format!(
        "{} of {} moved; {to_read} records to read",
        plural(moves.len(), "partition"),
        topics.join(", ")
    )
}

/// Reads every stored source offset of a connector from the offsets topic; an absent topic
/// holds none. Offsets written in transactions (exactly-once sources) count once their
/// transaction committed; the read waits for open transactions to end.
pub async fn read_source_offsets(
    config: &ClientConfig,
    topic: &str,
    namespace: &str,
    connector: &str,
) -> Result<BTreeMap<SourcePartition, SourceOffset>, Error> {
    let config = config.clone();
    let (topic, namespace, connector) = (
        topic.to_string(),
        namespace.to_string(),
        connector.to_string(),
    );
    let action = format!("reading the source offsets of {namespace}/{connector} in {topic}");
    blocking(&action.clone(), move || {
        offsets_topic::read_offsets(
            &config,
            &topic,
            &namespace,
            &connector,
            Isolation::ReadCommitted,
        )
        .map_err(|e| kafka_error(&action)(e.to_string()))
    })
    .await
}

/// Writes source offsets (`Some`) and tombstones (`None`) of a connector into the offsets
/// topic, creating the topic (compacted) when it is missing; returns once Kafka has them all.
async fn write_source_offsets(
    config: &ClientConfig,
    topic: &str,
    namespace: &str,
    connector: &str,
    records: &[(SourcePartition, Option<SourceOffset>)],
) -> Result<(), Error> {
    let action = format!("writing the source offsets of {namespace}/{connector} into {topic}");
    let writer = OffsetsWriter::open(config, topic)
        .await
        .map_err(|e| kafka_error(&action)(e.to_string()))?;
    writer
        .write(namespace, connector, records)
        .await
        .map_err(|e| kafka_error(&action)(e.to_string()))
}

/// Moves a source connector's stored offsets to `target`: `Earliest` forgets every stored
/// offset (the tasks start from the beginning of their source), explicit offsets are stored
/// as given. Call it only once the tasks are gone.
pub async fn reset_source(
    config: &ClientConfig,
    topic: &str,
    namespace: &str,
    connector: &str,
    target: &OffsetTarget,
) -> Result<Applied, Error> {
    match target {
        OffsetTarget::Earliest => {
            let forgotten = delete_source_offsets(config, topic, namespace, connector).await?;
            Ok(Applied::Done(if forgotten == 0 {
                "no source offsets were stored: the tasks start from the beginning".to_string()
            } else {
                format!(
                    "forgot the stored offsets of {}: the tasks start from the beginning",
                    plural(forgotten, "source partition")
                )
            }))
        }
        OffsetTarget::Source(offsets) => {
            let records: Vec<(SourcePartition, Option<SourceOffset>)> = offsets
                .iter()
                .map(|o| (o.partition.clone(), Some(o.offset.clone())))
                .collect();
            write_source_offsets(config, topic, namespace, connector, &records).await?;
            Ok(Applied::Done(format!(
                "stored the offsets of {} in {topic}",
                plural(records.len(), "source partition")
            )))
        }
        OffsetTarget::Latest | OffsetTarget::Timestamp(_) | OffsetTarget::Sink(_) => {
            Ok(Applied::Rejected(
                "spec.offsets.reset: a source connector resets only to Earliest or to explicit \
                 sourceOffsets"
                    .to_string(),
            ))
        }
    }
}

/// Writes a tombstone for every stored source offset of the connector; returns how many
/// source partitions had one.
pub async fn delete_source_offsets(
    config: &ClientConfig,
    topic: &str,
    namespace: &str,
    connector: &str,
) -> Result<usize, Error> {
    let stored = read_source_offsets(config, topic, namespace, connector).await?;
    if stored.is_empty() {
        return Ok(0);
    }
    let records: Vec<(SourcePartition, Option<SourceOffset>)> =
        stored.into_keys().map(|p| (p, None)).collect();
    write_source_offsets(config, topic, namespace, connector, &records).await?;
    Ok(records.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_committed_offset_or_the_start() {
        let p = |committed, start, end| PartitionOffsets {
            topic: "t".into(),
            partition: 0,
            committed,
            start,
            end,
        };
        assert_eq!(p(Some(40), 0, 100).lag(), 60);
        assert_eq!(p(None, 10, 100).lag(), 90);
        assert_eq!(
            p(Some(5), 10, 100).lag(),
            90,
            "below the start: from the start"
        );
        assert_eq!(p(Some(120), 0, 100).lag(), 0);
    }

    #[test]
    fn moves_are_summarized_per_topic() {
        let moves = vec![
            ("orders".to_string(), 0, 0, 100),
            ("orders".to_string(), 1, 50, 100),
            ("payments".to_string(), 0, 7, 7),
        ];
        assert_eq!(
            describe_moves(&moves),
            "3 partitions of orders, payments moved; 150 records to read"
        );
    }
}
