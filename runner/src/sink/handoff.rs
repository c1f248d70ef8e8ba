//! Batches between the sink's read loop and its writer, and their handing over.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::{mpsc, Notify};

use super::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS};
use crate::offset_tracker::TopicPartition;
use crate::record::Record;

/// Batches queued for the writer (besides the one being written).
pub(super) const WRITER_QUEUE: usize = 2;

/// Consumed records on their way to the sink plugin, with where each came from. The
/// records are kept apart from their coordinates so that the writer hands them to the
/// plugin as they are.
pub(super) struct Batch {
    /// The records, in consumption order.
    pub(super) records: Vec<Record>,
    /// Partition and offset of each record, in the same order.
    pub(super) origins: Vec<(TopicPartition, i64)>,
    /// The generation of each record's partition when it was read (see
    /// [`crate::offset_tracker::OffsetTracker::is_current`]), in the same order.
    pub(super) generations: Vec<u32>,
    /// Bytes of the records read into it (keys and values as in Kafka).
    bytes: usize,
}

impl Batch {
    pub(super) fn new() -> Self {
        Batch {
            records: Vec::with_capacity(MAX_BATCH_RECORDS),
            origins: Vec::with_capacity(MAX_BATCH_RECORDS),
            generations: Vec::with_capacity(MAX_BATCH_RECORDS),
            bytes: 0,
        }
    }

    pub(super) fn push(
        &mut self,
        origin: TopicPartition,
        offset: i64,
        generation: u32,
        bytes: usize,
        record: Record,
    ) {
        self.bytes += bytes;
        self.records.push(record);
        self.origins.push((origin, offset));
        self.generations.push(generation);
    }

    /// Drops the records for which `keep` (partition, generation) is false, keeping the
    /// order of the others; returns how many were dropped.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&TopicPartition, u32) -> bool) -> usize {
        let before = self.records.len();
        let mut i = 0;
        while i < self.records.len() {
            if keep(&self.origins[i].0, self.generations[i]) {
                i += 1;
            } else {
                // Runs of one partition are usual: find the end of this run and drain it.
                let mut end = i + 1;
                while end < self.records.len() && !keep(&self.origins[end].0, self.generations[end])
                {
                    end += 1;
                }
                self.records.drain(i..end);
                self.origins.drain(i..end);
                self.generations.drain(i..end);
            }
        }
        before - self.records.len()
    }

    /// Removes the record at `index`.
    pub(super) fn remove(&mut self, index: usize) {
        self.records.remove(index);
        self.origins.remove(index);
        self.generations.remove(index);
    }

    /// Whether the batch holds [`MAX_BATCH_RECORDS`] records or [`MAX_BATCH_BYTES`] bytes.
    pub(super) fn is_full(&self) -> bool {
        self.records.len() >= MAX_BATCH_RECORDS || self.bytes >= MAX_BATCH_BYTES
    }

    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

/// Batches between the read loop and the writer. A batch is handed over when it is full or
/// when the writer has nothing left to write; while the writer is busy, records gather into
/// the next batch. Written batches come back empty, so their buffers (2,048 records) are
/// allocated once, not once per batch.
pub(super) struct Handoff {
    /// Batches handed over and not yet written.
    in_flight: AtomicUsize,
    /// Signalled when the writer has written everything handed to it.
    pub(super) idle: Notify,
    /// Written batches, emptied, to be filled again.
    spare: Mutex<Vec<Batch>>,
}

impl Handoff {
    pub(super) fn new() -> Self {
        Handoff {
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            spare: Mutex::new(Vec::new()),
        }
    }

    /// Whether the writer has written every batch handed to it.
    pub(super) fn writer_idle(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
    }

    /// Sends `batch` to the writer, leaving an empty one in its place; false when the writer
    /// has stopped.
    pub(super) async fn hand_over(&self, batch: &mut Batch, to: &mpsc::Sender<Batch>) -> bool {
        let empty = self
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_else(Batch::new);
        let full = std::mem::replace(batch, empty);
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        to.send(full).await.is_ok()
    }

    /// The writer is done with `batch`: keeps its buffers, and wakes the read loop when
    /// nothing else is waiting to be written.
    pub(super) fn written(&self, mut batch: Batch) {
        batch.records.clear();
        batch.origins.clear();
        batch.generations.clear();
        batch.bytes = 0;
        {
            let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
            // One being filled, the queued ones and the one being written.
            if spare.len() <= WRITER_QUEUE {
                spare.push(batch);
            }
        }
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_batch_is_full_by_records_or_by_bytes() {
        let tp = TopicPartition {
            topic: Arc::from("t"),
            partition: 0,
        };
        let mut small = Batch::new();
        for o in 0..MAX_BATCH_RECORDS {
            assert!(!small.is_full());
            small.push(tp.clone(), o as i64, 0, 10, Record::new("t"));
        }
        assert!(small.is_full(), "by records");
        let mut large = Batch::new();
        large.push(tp.clone(), 0, 0, MAX_BATCH_BYTES - 1, Record::new("t"));
        assert!(!large.is_full());
        large.push(tp, 1, 0, 1, Record::new("t"));
        assert!(large.is_full(), "by bytes");
    }

    #[test]
    fn retain_drops_records_of_stale_generations_in_order() {
        let tp = |p| TopicPartition {
            topic: Arc::from("t"),
            partition: p,
        };
        let mut batch = Batch::new();
        for (p, offset, generation) in [(0, 1, 0), (1, 1, 0), (0, 2, 0), (0, 3, 1), (1, 2, 0)] {
            batch.push(tp(p), offset, generation, 10, Record::new("t"));
        }
        // Partition 0 was revoked once: its generation-0 records are stale.
        let dropped = batch.retain(|t, g| t.partition != 0 || g == 1);
        assert_eq!(dropped, 2);
        assert_eq!(batch.origins, vec![(tp(1), 1), (tp(0), 3), (tp(1), 2)]);
        assert_eq!(batch.generations, vec![0, 1, 0]);
        assert_eq!(batch.records.len(), 3);
    }

    #[tokio::test]
    async fn the_writer_gets_a_batch_when_idle_and_returns_its_buffers() {
        let handoff = Handoff::new();
        let (tx, mut rx) = mpsc::channel::<Batch>(WRITER_QUEUE);
        let tp = TopicPartition {
            topic: Arc::from("t"),
            partition: 0,
        };
        let mut filling = Batch::new();
        filling.push(tp.clone(), 7, 0, 10, Record::new("t"));
        assert!(handoff.writer_idle());
        assert!(handoff.hand_over(&mut filling, &tx).await);
        assert!(
            filling.is_empty(),
            "an empty batch takes the place of the one handed over"
        );
        assert!(!handoff.writer_idle(), "one batch is being written");

        let written = rx.recv().await.expect("the batch reaches the writer");
        assert_eq!(written.origins, vec![(tp, 7)]);
        let buffer = written.records.as_ptr();
        handoff.written(written);
        assert!(handoff.writer_idle());
        // The read loop waiting for an idle writer is woken, also when it starts waiting later.
        tokio::time::timeout(Duration::from_secs(1), handoff.idle.notified())
            .await
            .expect("the idle writer is announced");

        // The next batch handed over leaves the written one's buffers to be filled.
        assert!(handoff.hand_over(&mut filling, &tx).await);
        assert!(filling.is_empty());
        assert_eq!(filling.records.as_ptr(), buffer, "the buffer is reused");
        assert!(filling.records.capacity() >= MAX_BATCH_RECORDS);
    }
}
