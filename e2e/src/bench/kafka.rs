//! The benchmark's Kafka side: topics, the records written to them, and a bare librdkafka
//! consumer (the physical limit a sink can reach on this broker).

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use super::error::BenchError;
use super::procfs::usage_of;

/// Creates `topic` with `partitions` partitions (replication factor 1).
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32) -> Result<(), BenchError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .map_err(BenchError::kafka(format!("cannot connect to {bootstrap}")))?;
    let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&t], &AdminOptions::new())
        .await
        .map_err(BenchError::kafka(format!("cannot create topic {topic}")))?;
    for r in results {
        r.map_err(|(t, e)| BenchError::Check(format!("cannot create topic {t}: {e}")))?;
    }
    Ok(())
}

/// Deletes topics (best effort: a benchmark's leftovers must not fail the next run).
pub async fn delete_topics(bootstrap: &str, topics: &[&str]) {
    let Ok(admin) = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create::<AdminClient<DefaultClientContext>>()
    else {
        return;
    };
    let _ = admin.delete_topics(topics, &AdminOptions::new()).await;
}

/// The value of record `i`: a JSON object of exactly `bytes` bytes (at least 64), with
/// an id, a customer, an amount and a padding note. Fixed length, so the harness can count
/// delivered lines by file size.
pub fn json_record(i: u64, bytes: usize) -> String {
    let head = format!(
        "{{\"id\":{i},\"customer\":\"customer-{:05}\",\"amount\":{}.{:02},\"note\":\"",
        i % 10_000,
        i % 1000,
        i % 100
    );
    let tail = "\"}";
    let pad = bytes.saturating_sub(head.len() + tail.len());
    let alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut s = String::with_capacity(bytes);
    s.push_str(&head);
    s.extend((0..pad).map(|j| alphabet[(i as usize * 7 + j) % alphabet.len()] as char));
    s.push_str(tail);
    s
}

/// Writes `records` records to `topic`: key `key-<i mod 1000>`, value from `value(i)`.
pub fn fill_topic(
    bootstrap: &str,
    topic: &str,
    records: u64,
    value: impl Fn(u64) -> String,
    key: impl Fn(u64) -> String,
) -> Result<(), BenchError> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "262144")
        .create()
        .map_err(BenchError::kafka(format!(
            "cannot create a producer for {bootstrap}"
        )))?;
    for i in 0..records {
        let payload = value(i);
        let key = key(i);
        let mut record = BaseRecord::to(topic).key(&key).payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull,
                    ),
                    r,
                )) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => {
                    return Err(BenchError::Kafka {
                        what: format!("cannot write record {i} to {topic}"),
                        source: e,
                    })
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(300))
        .map_err(BenchError::kafka(format!(
            "cannot flush the records to {topic}"
        )))
}

/// Sum of the high watermarks of `topic`'s partitions: records written to it so far (a
/// fresh topic, no compaction, no transactions).
pub fn topic_end(consumer: &BaseConsumer, topic: &str, partitions: i32) -> Result<u64, BenchError> {
    let mut total = 0u64;
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .map_err(BenchError::kafka(format!(
                "cannot read the end of {topic}/{p}"
            )))?;
        total += u64::try_from(high).unwrap_or(0);
    }
    Ok(total)
}

/// A consumer for [`topic_end`].
pub fn metadata_consumer(bootstrap: &str) -> Result<BaseConsumer, BenchError> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "ferry-bench-metadata")
        // The topic a source creates may not exist at the first look: refresh often, so
        // that "unknown topic" is not remembered for the default five minutes.
        .set("topic.metadata.refresh.interval.ms", "250")
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(BenchError::kafka(format!("cannot connect to {bootstrap}")))
}

/// Reads `records` records of `topic` from the beginning with a bare librdkafka consumer
/// (no processing, no commits), printing `first <CPU seconds>` on stdout when the first
/// record arrives and `done <CPU seconds> <VmHWM KiB>` after the last. `ferry-bench raw-consume` runs this in a
/// child process, so it is measured like the systems it is compared with.
pub fn raw_consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    records: u64,
    timeout: Duration,
) -> Result<(), BenchError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set(
            "group.id",
            format!("ferry-bench-raw-{}", crate::harness::random_suffix(6)),
        )
        .set("enable.auto.commit", "false")
        .create()
        .map_err(BenchError::kafka(format!("cannot connect to {bootstrap}")))?;
    // Start from each partition's first offset, looked up here: assigned
    // `Offset::Beginning`, librdkafka resolves it again itself about a second later, which
    // would count against this consumer's first record.
    consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(BenchError::kafka(format!(
            "cannot read the metadata of {topic}"
        )))?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let (low, _) = consumer
            .fetch_watermarks(topic, p, timeout)
            .map_err(BenchError::kafka(format!(
                "cannot read the offsets of {topic}/{p}"
            )))?;
        tpl.add_partition_offset(topic, p, Offset::Offset(low))
            .map_err(BenchError::kafka(format!("cannot assign {topic}/{p}")))?;
    }
    consumer
        .assign(&tpl)
        .map_err(BenchError::kafka(format!("cannot assign {topic}")))?;
    let mut n = 0u64;
    let deadline = Instant::now() + timeout;
    let mut stdout = std::io::stdout();
    while n < records {
        if Instant::now() > deadline {
            return Err(BenchError::Timeout {
                what: format!("{records} records of {topic} (read {n})"),
                timeout,
            });
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m.map_err(BenchError::kafka(format!("cannot read {topic}")))?;
            if n == 0 {
                let cpu = usage_of(std::process::id()).map_or(0.0, |u| u.cpu_seconds);
                writeln!(stdout, "first {cpu}")
                    .and_then(|()| stdout.flush())
                    .map_err(BenchError::io("cannot write to stdout"))?;
            }
            n += 1;
        }
    }
    let usage = usage_of(std::process::id()).unwrap_or_default();
    writeln!(stdout, "done {} {}", usage.cpu_seconds, usage.peak_rss_kib)
        .and_then(|()| stdout.flush())
        .map_err(BenchError::io("cannot write to stdout"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_records_have_the_exact_size_and_parse() {
        for i in [0, 7, 123_456, 999_999] {
            let r = json_record(i, 1024);
            assert_eq!(r.len(), 1024);
            let v: serde_json::Value = serde_json::from_str(&r).expect("valid JSON");
            assert_eq!(v["id"], i);
            assert!(!r.contains('\n'));
        }
        assert_ne!(json_record(1, 1024), json_record(2, 1024));
    }
}
