//! Exactly-once delivery of the `postgres` sink: the Kafka positions a batch was read from
//! are written in the same database transaction as its rows, to the table
//! [`contract::SINK_OFFSETS_TABLE`], one row per connector, reset id and partition holding
//! the next offset to write. Records below a stored position were written before and are
//! left out, so the consumer group's committed offsets (which trail the table) may lag
//! without a record being written twice.
//!
//! A position is moved only from the value this task last read or wrote (`UPDATE … WHERE
//! next_offset = <expected>`): when another task wrote the partition in between (a
//! rebalance, or an old task still alive), the transaction is rolled back, the positions
//! are read again and the records filtered again. Rows are keyed by the reset id
//! (`spec.offsets.reset.id`, empty without one), so a reset starts from the consumer group
//! offsets the operator set instead of the stored positions.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ferry_crds::contract;

use crate::offset_tracker::TopicPartition;

/// Whose positions these are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OffsetsScope {
    /// `<namespace>/<connector>`.
    pub connector: String,
    /// The reset id the tasks run under (`spec.offsets.reset.id`), empty without one.
    pub reset_id: String,
}

/// A position to move within the transaction of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PositionUpdate {
    /// Topic read.
    pub topic: Arc<str>,
    /// Partition read.
    pub partition: i32,
    /// The next offset stored now (`None`: no row yet).
    pub expected: Option<i64>,
    /// The next offset after the batch.
    pub next: i64,
}

/// The positions this task knows, per partition: `Some(None)` means "no row".
#[derive(Debug, Default)]
pub struct Positions {
    known: HashMap<TopicPartition, Option<i64>>,
}

/// Which records of a batch to write, and the positions that go with them.
#[derive(Debug, PartialEq, Eq)]
pub struct Selection {
    /// Indexes of the records at or past their partition's stored position.
    pub keep: Vec<usize>,
    /// One update per partition with a record kept.
    pub updates: Vec<PositionUpdate>,
}

impl Positions {
    /// Whether a partition of `origins` has no known position.
    pub fn unknown(&self, origins: &[(TopicPartition, i64)]) -> bool {
        origins.iter().any(|(tp, _)| !self.known.contains_key(tp))
    }

    /// Takes the positions read from the table; partitions of `origins` without a row get
    /// "no row".
    pub fn load(&mut self, rows: Vec<(String, i32, i64)>, origins: &[(TopicPartition, i64)]) {
        for (tp, _) in origins {
            self.known.entry(tp.clone()).or_insert(None);
        }
        for (topic, partition, next) in rows {
            let tp = TopicPartition {
                topic: Arc::from(topic),
                partition,
            };
            self.known.insert(tp, Some(next));
        }
    }

    /// Forgets every position (another task moved one): they are read again.
    pub fn forget(&mut self) {
        self.known.clear();
    }

    /// Leaves out the records below their partition's stored position. Pure: `origins`
    /// must all be known ([`Self::unknown`] false).
    pub fn select(&self, origins: &[(TopicPartition, i64)]) -> Selection {
        let mut keep = Vec::with_capacity(origins.len());
        let mut next: BTreeMap<(&str, i32), (Option<i64>, i64)> = BTreeMap::new();
        for (i, (tp, offset)) in origins.iter().enumerate() {
            let stored = self.known.get(tp).copied().flatten();
            if stored.is_some_and(|s| *offset < s) {
                continue;
            }
            keep.push(i);
            let entry = next
                .entry((&tp.topic, tp.partition))
                .or_insert((stored, offset + 1));
            entry.1 = entry.1.max(offset + 1);
        }
        let updates = next
            .into_iter()
            .map(|((topic, partition), (expected, next))| PositionUpdate {
                topic: Arc::from(topic),
                partition,
                expected,
                next,
            })
            .collect();
        Selection { keep, updates }
    }

    /// The batch committed: its positions are the stored ones now.
    pub fn written(&mut self, updates: &[PositionUpdate]) {
        for u in updates {
            self.known.insert(
                TopicPartition {
                    topic: u.topic.clone(),
                    partition: u.partition,
                },
                Some(u.next),
            );
        }
    }
}

/// Creates the positions table when it is missing.
pub fn create_table_sql() -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\
         connector text NOT NULL, reset_id text NOT NULL, topic text NOT NULL, \
         kafka_partition integer NOT NULL, next_offset bigint NOT NULL, \
         updated_at timestamptz NOT NULL DEFAULT now(), \
         PRIMARY KEY (connector, reset_id, topic, kafka_partition))",
        contract::SINK_OFFSETS_TABLE
    )
}

/// Reads the positions of a connector: `$1` connector, `$2` reset id.
pub fn select_sql() -> String {
    format!(
        "SELECT topic, kafka_partition, next_offset FROM {} WHERE connector = $1 AND reset_id = $2",
        contract::SINK_OFFSETS_TABLE
    )
}

/// Stores a first position: `$1` connector, `$2` reset id, `$3` topic, `$4` partition,
/// `$5` next offset. No row is written when one exists already (another task's).
pub fn insert_sql() -> String {
    format!(
        "INSERT INTO {} (connector, reset_id, topic, kafka_partition, next_offset) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        contract::SINK_OFFSETS_TABLE
    )
}

/// Moves a position from the expected one: `$1`–`$5` as in [`insert_sql`], `$6` expected.
pub fn update_sql() -> String {
    format!(
        "UPDATE {} SET next_offset = $5, updated_at = now() WHERE connector = $1 \
         AND reset_id = $2 AND topic = $3 AND kafka_partition = $4 AND next_offset = $6",
        contract::SINK_OFFSETS_TABLE
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from(topic),
            partition,
        }
    }

    #[test]
    fn records_below_the_stored_position_are_left_out() {
        let origins = vec![
            (tp("a", 0), 8),
            (tp("a", 1), 3),
            (tp("a", 0), 9),
            (tp("b", 0), 0),
            (tp("a", 0), 10),
            (tp("a", 1), 4),
        ];
        let mut p = Positions::default();
        assert!(p.unknown(&origins));
        p.load(vec![("a".into(), 0, 10), ("a".into(), 1, 2)], &origins);
        assert!(!p.unknown(&origins));
        let s = p.select(&origins);
        assert_eq!(s.keep, vec![1, 3, 4, 5], "a/0 8 and 9 were written");
        assert_eq!(
            s.updates,
            vec![
                PositionUpdate {
                    topic: "a".into(),
                    partition: 0,
                    expected: Some(10),
                    next: 11
                },
                PositionUpdate {
                    topic: "a".into(),
                    partition: 1,
                    expected: Some(2),
                    next: 5
                },
                PositionUpdate {
                    topic: "b".into(),
                    partition: 0,
                    expected: None,
                    next: 1
                },
            ]
        );
        p.written(&s.updates);
        // The same records again (a replay after a crash): nothing to write.
        let again = p.select(&origins);
        assert!(
            again.keep.is_empty() && again.updates.is_empty(),
            "{again:?}"
        );
        // Gaps (transaction markers, compaction) are fine: positions only move forward.
        let later = p.select(&[(tp("a", 0), 15)]);
        assert_eq!(later.keep, vec![0]);
        assert_eq!(later.updates[0].expected, Some(11));
        assert_eq!(later.updates[0].next, 16);
        p.forget();
        assert!(p.unknown(&[(tp("a", 0), 15)]));
    }
}
