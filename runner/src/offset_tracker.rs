//! End-to-end acknowledgement of consumed records: which Kafka offsets may be committed.
//!
//! Records of a partition are registered in the order they are consumed and acknowledged in
//! any order (a dead letter queue write may finish after later records were written). The
//! committable position of a partition is one past the last record of the longest
//! acknowledged prefix, so a commit never covers a record that is not durable downstream.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

/// A topic partition. The name is shared: every record of a partition carries one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition number.
    pub partition: i32,
}

#[derive(Debug, Default)]
struct PartitionState {
    /// Consumed, not yet committable offsets in consumption order, with their ack flag.
    pending: VecDeque<(i64, bool)>,
    /// Next offset to commit (one past the last acknowledged prefix), if it moved since the
    /// last [`OffsetTracker::take_committable`].
    committable: Option<i64>,
    /// One past the last acknowledged prefix, taken or not (`None` after a rewind).
    acknowledged_end: Option<i64>,
}

impl PartitionState {
    fn acknowledge(&mut self, offset: i64) {
        match self.pending.front_mut() {
            // Records are mostly acknowledged in the order they were consumed.
            Some((o, done)) if *o == offset => *done = true,
            _ => {
                if let Ok(i) = self.pending.binary_search_by_key(&offset, |(o, _)| *o) {
                    self.pending[i].1 = true;
                }
            }
        }
        while let Some(&(o, true)) = self.pending.front() {
            self.pending.pop_front();
            self.committable = Some(o + 1);
            self.acknowledged_end = Some(o + 1);
        }
    }
}

/// Tracks consumed and acknowledged offsets per partition.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<TopicPartition, PartitionState>,
    /// How many times each partition was revoked: a record consumed in an earlier
    /// generation of its partition belongs to an ownership this task has lost.
    generations: BTreeMap<TopicPartition, u32>,
}

impl OffsetTracker {
    /// An empty tracker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a consumed record and returns the generation of its partition (see
    /// [`Self::is_current`]). Offsets of a partition must increase; a lower offset (the
    /// partition was re-read after a seek) drops what was pending for it.
    pub fn consumed(&mut self, tp: &TopicPartition, offset: i64) -> u32 {
        let state = match self.partitions.get_mut(tp) {
            Some(s) => s,
            None => self.partitions.entry(tp.clone()).or_default(),
        };
        if state
            .pending
            .back()
            .is_some_and(|(last, _)| *last >= offset)
        {
            state.pending.clear();
        }
        // Read again from before the acknowledged end: a failed commit of that end must
        // not be retried over the new position.
        if state.acknowledged_end.is_some_and(|end| offset < end) {
            state.acknowledged_end = None;
        }
        state.pending.push_back((offset, false));
        self.generations.get(tp).copied().unwrap_or(0)
    }

    /// Whether a record of `tp` consumed in `generation` is still this task's to write: its
    /// partition has not been revoked since (even if it was assigned again, its new
    /// records are read again from the committed offset).
    pub fn is_current(&self, tp: &TopicPartition, generation: u32) -> bool {
        self.generations.get(tp).copied().unwrap_or(0) == generation
    }

    /// Marks a record as durable downstream (written, filtered out, or in the dead letter
    /// queue). Unknown offsets (a revoked partition) are ignored.
    pub fn acknowledged(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(state) = self.partitions.get_mut(tp) {
            state.acknowledge(offset);
        }
    }

    /// [`Self::acknowledged`] for many records, looking each partition up once per run of
    /// records from it (a batch usually holds long runs of one partition).
    pub fn acknowledged_all(&mut self, records: &[(TopicPartition, i64)]) {
        let mut rest = records;
        while let Some((tp, _)) = rest.first() {
            let run = rest.iter().position(|(t, _)| t != tp).unwrap_or(rest.len());
            if let Some(state) = self.partitions.get_mut(tp) {
                for (_, offset) in &rest[..run] {
                    state.acknowledge(*offset);
                }
            }
            rest = &rest[run..];
        }
    }

    /// Offsets to commit (next offset to read, per partition) that moved since the last call.
    pub fn take_committable(&mut self) -> Vec<(TopicPartition, i64)> {
        self.partitions
            .iter_mut()
            .filter_map(|(tp, s)| s.committable.take().map(|o| (tp.clone(), o)))
            .collect()
    }

    /// Like [`Self::take_committable`], only for the given partitions.
    pub fn take_committable_for(&mut self, tps: &[TopicPartition]) -> Vec<(TopicPartition, i64)> {
        tps.iter()
            .filter_map(|tp| {
                let s = self.partitions.get_mut(tp)?;
                s.committable.take().map(|o| (tp.clone(), o))
            })
            .collect()
    }

    /// Gives back offsets taken by [`Self::take_committable`] whose commit failed, so the
    /// next commit tries them again: without this, a partition whose last records were
    /// written before a failed commit (say, during a rebalance) would keep its old committed
    /// offset until more records arrived. An offset is given back only while it is still
    /// the partition's acknowledged end and nothing newer waits, so a retry never moves a
    /// commit backwards; partitions revoked since are skipped.
    pub fn retry_commit(&mut self, offsets: &[(TopicPartition, i64)]) {
        for (tp, offset) in offsets {
            if let Some(s) = self.partitions.get_mut(tp) {
                if s.committable.is_none() && s.acknowledged_end == Some(*offset) {
                    s.committable = Some(*offset);
                }
            }
        }
    }

    /// Forgets partitions this task no longer owns; their pending records will be read again
    /// by their new owner.
    pub fn revoke(&mut self, tps: &[TopicPartition]) {
        for tp in tps {
            self.partitions.remove(tp);
            let generation = self.generations.entry(tp.clone()).or_default();
            *generation = generation.wrapping_add(1);
        }
    }

    /// Records consumed and not yet acknowledged, over all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions
            .values()
            .map(|s| s.pending.iter().filter(|(_, done)| !done).count())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: "t".into(),
            partition: p,
        }
    }

    #[test]
    fn a_failed_commit_is_tried_again_but_never_moves_backwards() {
        let mut t = OffsetTracker::new();
        for o in 0..4 {
            t.consumed(&tp(0), o);
            t.consumed(&tp(1), o);
        }
        for o in 0..4 {
            t.acknowledged(&tp(0), o);
            t.acknowledged(&tp(1), o);
        }
        let failed = t.take_committable();
        assert_eq!(failed, vec![(tp(0), 4), (tp(1), 4)]);
        assert!(t.take_committable().is_empty());
        // Partition 1 moved on before the retry; partition 2 was never this task's.
        t.consumed(&tp(1), 4);
        t.acknowledged(&tp(1), 4);
        t.retry_commit(&[failed.clone(), vec![(tp(2), 9)]].concat());
        assert_eq!(t.take_committable(), vec![(tp(0), 4), (tp(1), 5)]);
        // A stale retry (partition 1 is at 5 now) and a revoked partition change nothing.
        t.revoke(&[tp(0)]);
        t.retry_commit(&failed);
        assert!(t.take_committable().is_empty());
        // Nor does one over a partition read again from an earlier offset.
        let failed = vec![(tp(1), 5)];
        t.consumed(&tp(1), 2);
        t.retry_commit(&failed);
        assert!(t.take_committable().is_empty());
    }

    #[test]
    fn commits_only_the_acknowledged_prefix() {
        let mut t = OffsetTracker::new();
        for o in 10..15 {
            t.consumed(&tp(0), o);
        }
        t.acknowledged(&tp(0), 12);
        t.acknowledged(&tp(0), 11);
        assert!(
            t.take_committable().is_empty(),
            "10 is not acknowledged yet"
        );
        t.acknowledged(&tp(0), 10);
        assert_eq!(t.take_committable(), vec![(tp(0), 13)]);
        assert!(t.take_committable().is_empty(), "nothing moved");
        t.acknowledged(&tp(0), 14);
        assert!(t.take_committable().is_empty());
        t.acknowledged(&tp(0), 13);
        assert_eq!(t.take_committable(), vec![(tp(0), 15)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn partitions_are_independent_and_gaps_in_offsets_are_fine() {
        let mut t = OffsetTracker::new();
        t.consumed(&tp(0), 0);
        t.consumed(&tp(1), 100);
        t.consumed(&tp(1), 105); // compacted topic: offsets skip
        t.acknowledged(&tp(1), 105);
        t.acknowledged(&tp(1), 100);
        assert_eq!(t.take_committable(), vec![(tp(1), 106)]);
        assert_eq!(t.in_flight(), 1);
        assert_eq!(t.take_committable_for(&[tp(0)]), vec![]);
    }

    #[test]
    fn acknowledging_a_batch_equals_acknowledging_each_record() {
        let mut t = OffsetTracker::new();
        for o in 0..4 {
            t.consumed(&tp(0), o);
            t.consumed(&tp(1), 10 + o);
        }
        t.consumed(&tp(2), 7);
        t.acknowledged_all(&[
            (tp(0), 0),
            (tp(0), 1),
            (tp(1), 11),
            (tp(1), 10),
            (tp(0), 3),
            (tp(3), 1),
        ]);
        assert_eq!(t.take_committable(), vec![(tp(0), 2), (tp(1), 12)]);
        assert_eq!(t.in_flight(), 1 + 2 + 1, "0@2, 1@12, 1@13 and 2@7 wait");
        t.acknowledged_all(&[(tp(0), 2), (tp(2), 7)]);
        assert_eq!(t.take_committable(), vec![(tp(0), 4), (tp(2), 8)]);
    }

    #[test]
    fn revoked_partitions_and_unknown_acks_are_ignored() {
        let mut t = OffsetTracker::new();
        t.consumed(&tp(0), 5);
        t.revoke(&[tp(0)]);
        t.acknowledged(&tp(0), 5);
        t.acknowledged(&tp(3), 1);
        assert!(t.take_committable().is_empty());
    }

    #[test]
    fn a_record_read_before_its_partition_was_revoked_is_no_longer_current() {
        let mut t = OffsetTracker::new();
        let before = t.consumed(&tp(0), 5);
        let other = t.consumed(&tp(1), 9);
        assert!(t.is_current(&tp(0), before));
        t.revoke(&[tp(0)]);
        assert!(!t.is_current(&tp(0), before), "revoked");
        assert!(t.is_current(&tp(1), other), "another partition");
        // Assigned again: what is read now is current, what was read before is not.
        let after = t.consumed(&tp(0), 5);
        assert!(t.is_current(&tp(0), after));
        assert!(!t.is_current(&tp(0), before));
    }

    #[test]
    fn rewinding_a_partition_drops_stale_pending_records() {
        let mut t = OffsetTracker::new();
        t.consumed(&tp(0), 5);
        t.consumed(&tp(0), 6);
        t.consumed(&tp(0), 3);
        t.acknowledged(&tp(0), 3);
        assert_eq!(t.take_committable(), vec![(tp(0), 4)]);
    }
}
