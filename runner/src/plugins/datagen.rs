//! The `datagen` source: deterministic records for demos and benchmarks.
//!
//! Record `s` (a global sequence number) has the key `key-<k>` and the value
//! `{"seq": s, "key": "key-<k>", "payload": "<payloadBytes characters>"}`, where `k` and the
//! payload come from a pseudo-random generator seeded by `seed` and `s`: the same spec always
//! produces the same records. Task `i` of `n` produces the numbers `s` with `s % n == i`;
//! its source partition is `{"task": "<i>", "tasks": "<n>"}` and its offset the next local
//! index, so a restarted task continues where Kafka last acknowledged it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_crds::plugins::DatagenSource;

use super::{
    PluginError, SourceOffset, SourcePartition, SourcePoll, SourceRecord, SourceTask, TaskShare,
};
use crate::config_error::ConfigError;

const DEFAULT_KEYS: u64 = 1000;
const DEFAULT_PAYLOAD_BYTES: u32 = 100;
const MAX_PAYLOAD_BYTES: u32 = 1 << 20;
const BATCH: u64 = 1000;
const NEXT: &str = "next";

/// Checks a `datagen` source block.
pub fn validate(spec: &DatagenSource) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut err = |field: &str, message: &str| {
        out.push(ConfigError {
            field: format!("spec.source.datagen.{field}"),
            message: message.into(),
        })
    };
    if spec.topic.trim().is_empty() {
        err("topic", "must name the topic the records are written to");
    }
    if spec.rate_per_second == Some(0) {
        err("ratePerSecond", "must be at least 1 (omit it for no limit)");
    }
    if spec.keys == Some(0) {
        err("keys", "must be at least 1");
    }
    if spec.payload_bytes.is_some_and(|b| b > MAX_PAYLOAD_BYTES) {
        err("payloadBytes", "must be at most 1048576");
    }
    out
}

/// A small, fast, deterministic generator (SplitMix64).
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key index and payload of record `seq`.
pub fn generate(seed: u64, seq: u64, keys: u64, payload_bytes: u32) -> (u64, String) {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = splitmix64(seed ^ splitmix64(seq));
    let key = state % keys.max(1);
    let mut payload = String::with_capacity(payload_bytes as usize);
    let mut bits = 0u64;
    let mut left = 0;
    for _ in 0..payload_bytes {
        if left == 0 {
            state = splitmix64(state);
            bits = state;
            left = 10;
        }
        payload.push(ALPHABET[(bits & 63) as usize % 62] as char);
        bits >>= 6;
        left -= 1;
    }
    (key, payload)
}

/// The `datagen` source.
#[derive(Debug)]
pub struct DatagenTask {
    spec: DatagenSource,
    share: TaskShare,
    next_local: u64,
    local_total: Option<u64>,
    started: Option<Instant>,
    produced_since_start: u64,
}

impl DatagenTask {
    /// A task producing its share of the records.
    pub fn new(spec: &DatagenSource, share: TaskShare) -> Self {
        let count = u64::from(share.count.max(1));
        let index = u64::from(share.index);
        let local_total = spec
            .records
            .map(|total| total / count + u64::from(index < total % count));
        Self {
            spec: spec.clone(),
            share,
            next_local: 0,
            local_total,
            started: None,
            produced_since_start: 0,
        }
    }

    fn partition(&self) -> SourcePartition {
        BTreeMap::from([
            ("task".to_string(), self.share.index.to_string()),
            ("tasks".to_string(), self.share.count.to_string()),
        ])
    }

    /// How many records may be produced now under the rate limit.
    fn allowance(&mut self) -> u64 {
        let Some(rate) = self.spec.rate_per_second else {
            return BATCH;
        };
        let started = *self.started.get_or_insert_with(Instant::now);
        let due = (started.elapsed().as_secs_f64() * f64::from(rate)) as u64 + 1;
        if due > self.produced_since_start + u64::from(rate) {
            // More than a second behind (a pause, a slow broker): start over rather than
            // burst to catch up.
            self.started = Some(Instant::now());
            self.produced_since_start = 0;
            return 1;
        }
        due.saturating_sub(self.produced_since_start).min(BATCH)
    }
}

#[async_trait]
impl SourceTask for DatagenTask {
    fn partitions(&self) -> Vec<SourcePartition> {
        vec![self.partition()]
    }

    async fn start(
        &mut self,
        offsets: BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), PluginError> {
        if let Some(next) = offsets.get(&self.partition()).and_then(|o| o.get(NEXT)) {
            self.next_local = next.parse().map_err(|_| {
                PluginError::Fatal(format!(
                    "datagen source: the stored offset {next:?} is not a record number"
                ))
            })?;
        }
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, PluginError> {
        if self.local_total.is_some_and(|t| self.next_local >= t) {
            return Ok(SourcePoll::Finished);
        }
        let mut n = self.allowance();
        if n == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            return Ok(SourcePoll::Idle);
        }
        if let Some(total) = self.local_total {
            n = n.min(total - self.next_local);
        }
        let count = u64::from(self.share.count.max(1));
        let keys = self.spec.keys.unwrap_or(DEFAULT_KEYS);
        let payload_bytes = self.spec.payload_bytes.unwrap_or(DEFAULT_PAYLOAD_BYTES);
        let partition = self.partition();
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let seq = self.next_local * count + u64::from(self.share.index);
            let (key, payload) = generate(self.spec.seed, seq, keys, payload_bytes);
            self.next_local += 1;
            out.push(SourceRecord {
                partition: partition.clone(),
                offset: BTreeMap::from([(NEXT.to_string(), self.next_local.to_string())]),
                record: crate::value_text::datagen_record(
                    &self.spec.topic,
                    seq,
                    &format!("key-{key}"),
                    payload,
                ),
            });
        }
        self.produced_since_start += n;
        Ok(SourcePoll::Records(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(records: Option<u64>) -> DatagenSource {
        DatagenSource {
            topic: "t".into(),
            records,
            rate_per_second: None,
            seed: 7,
            keys: Some(10),
            payload_bytes: Some(16),
        }
    }

    #[test]
    fn generation_is_deterministic() {
        assert_eq!(generate(1, 5, 10, 32), generate(1, 5, 10, 32));
        assert_ne!(generate(1, 5, 10, 32), generate(2, 5, 10, 32));
        let (k, p) = generate(1, 5, 10, 1024);
        assert!(k < 10);
        assert_eq!(p.len(), 1024);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[tokio::test]
    async fn tasks_split_the_sequence_and_stop_at_their_share() {
        let mut seqs = Vec::new();
        for index in 0..3 {
            let mut t = DatagenTask::new(&spec(Some(10)), TaskShare { index, count: 3 });
            t.start(BTreeMap::new()).await.unwrap();
            loop {
                match t.poll().await.unwrap() {
                    SourcePoll::Records(r) => {
                        seqs.extend(r.into_iter().map(|r| match &r.record.value.value {
                            crate::data::Value::Struct(fields) => fields[0].clone(),
                            other => panic!("not a datagen value: {other:?}"),
                        }))
                    }
                    SourcePoll::Finished => break,
                    SourcePoll::Idle => {}
                }
            }
        }
        seqs.sort_by_key(|v| match v {
            crate::data::Value::Int64(n) => *n,
            _ => -1,
        });
        let expected: Vec<crate::data::Value> = (0..10).map(crate::data::Value::Int64).collect();
        assert_eq!(
            seqs, expected,
            "the tasks together produce every sequence number once"
        );
        let t = DatagenTask::new(&spec(Some(10)), TaskShare { index: 0, count: 3 });
        assert_eq!(t.local_total, Some(4));
        let t = DatagenTask::new(&spec(Some(10)), TaskShare { index: 2, count: 3 });
        assert_eq!(t.local_total, Some(3));
    }

    #[test]
    fn the_rate_limit_does_not_burst_after_a_stall() {
        let mut s = spec(None);
        s.rate_per_second = Some(100);
        let mut t = DatagenTask::new(&s, TaskShare { index: 0, count: 1 });
        assert_eq!(t.allowance(), 1);
        t.produced_since_start = 1;
        t.started = Some(Instant::now() - Duration::from_secs(5));
        assert_eq!(t.allowance(), 1, "500 records due, but no burst");
        t.produced_since_start = 1;
        t.started = Some(Instant::now() - Duration::from_millis(500));
        assert_eq!(t.allowance(), 50);
    }

    #[tokio::test]
    async fn resumes_after_the_stored_offset() {
        let mut t = DatagenTask::new(&spec(Some(5)), TaskShare { index: 0, count: 1 });
        let stored = BTreeMap::from([(
            t.partition(),
            BTreeMap::from([("next".to_string(), "3".to_string())]),
        )]);
        t.start(stored).await.unwrap();
        match t.poll().await.unwrap() {
            SourcePoll::Records(r) => {
                assert_eq!(r.len(), 2);
                assert_eq!(r[1].offset["next"], "5");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(t.poll().await.unwrap(), SourcePoll::Finished));
    }

    #[test]
    fn validation_names_fields() {
        let mut s = spec(None);
        s.rate_per_second = Some(0);
        s.keys = Some(0);
        s.payload_bytes = Some(2 << 20);
        let fields: Vec<String> = validate(&s).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            vec![
                "spec.source.datagen.ratePerSecond",
                "spec.source.datagen.keys",
                "spec.source.datagen.payloadBytes"
            ]
        );
    }
}
