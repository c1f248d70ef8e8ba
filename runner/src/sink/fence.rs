//! Fencing the writer against revocations, so that an at-least-once sink never writes a
//! partition's records after the partition has gone to another task. Without it, a batch
//! read before a rebalance could still be written after it, land after a newer batch the
//! partition's new owner wrote, and leave a stale row in an upsert table.
//!
//! Each record carries the generation of its partition when it was read (the
//! [`OffsetTracker`] counts revocations). Before every write attempt the writer drops the
//! records whose partition was revoked since; a revocation waits for the write in progress
//! to end before the partition is let go, and no write starts while it runs. Both happen
//! under the fence's lock, so a write either finishes before the revocation commits and
//! lets go, or starts after it without the revoked records.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::handoff::Batch;
use super::lock;
use crate::offset_tracker::OffsetTracker;

/// How long a revocation waits for the write in progress. A write still running after it
/// (a database that stopped answering) may land after the new owner's writes; the task
/// says so in its log.
pub(super) const REVOCATION_WAIT: Duration = Duration::from_secs(30);

/// The writer's side and the revocation's side of the fence, around the task's offsets.
#[derive(Debug)]
pub(super) struct WriteFence {
    /// The offsets of the task's records, which also count the revocations.
    tracker: Arc<Mutex<OffsetTracker>>,
    /// Whether a write is in progress.
    writing: Mutex<bool>,
    /// Signalled when a write ends.
    ended: Condvar,
}

/// A write in progress; ends when dropped.
pub(super) struct Write<'a> {
    fence: &'a WriteFence,
}

impl Drop for Write<'_> {
    fn drop(&mut self) {
        *lock(&self.fence.writing) = false;
        self.fence.ended.notify_all();
    }
}

impl WriteFence {
    /// The fence of the writer of the records whose offsets `tracker` follows.
    pub(super) fn new(tracker: Arc<Mutex<OffsetTracker>>) -> Self {
        Self {
            tracker,
            writing: Mutex::new(false),
            ended: Condvar::new(),
        }
    }

    /// The task's offsets.
    pub(super) fn tracker(&self) -> &Mutex<OffsetTracker> {
        &self.tracker
    }

    /// Starts a write of `batch`: drops its records whose partition was revoked since they
    /// were read (their new owner reads them again), then marks the write as running.
    /// Returns the write (drop it once the written records are acknowledged) and how many
    /// records were dropped.
    pub(super) fn begin(&self, batch: &mut Batch) -> (Write<'_>, usize) {
        let mut writing = lock(&self.writing);
        let dropped = {
            let tracker = lock(&self.tracker);
            batch.retain(|tp, generation| tracker.is_current(tp, generation))
        };
        *writing = true;
        (Write { fence: self }, dropped)
    }

    /// Runs `revoke` on the task's offsets once no write is in progress (waiting at most
    /// `limit`), with no write starting until it returns. Returns what `revoke` returned and
    /// whether the wait timed out with a write still running.
    pub(super) fn revoke<T>(
        &self,
        limit: Duration,
        revoke: impl FnOnce(&mut OffsetTracker) -> T,
    ) -> (T, bool) {
        let deadline = Instant::now() + limit;
        let mut writing = lock(&self.writing);
        while *writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            writing = match self.ended.wait_timeout(writing, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let timed_out = *writing;
        (revoke(&mut lock(&self.tracker)), timed_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offset_tracker::TopicPartition;
    use crate::record::Record;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition {
            topic: Arc::from("t"),
            partition: p,
        }
    }

    #[test]
    fn a_write_begun_after_a_revocation_leaves_the_revoked_records_out() {
        let fence = WriteFence::new(Arc::new(Mutex::new(OffsetTracker::new())));
        let mut batch = Batch::new();
        for (p, offset) in [(0, 1), (1, 1), (0, 2)] {
            let generation = lock(fence.tracker()).consumed(&tp(p), offset);
            batch.push(tp(p), offset, generation, 10, Record::new("t"));
        }
        let ((), waited_out) = fence.revoke(REVOCATION_WAIT, |t| t.revoke(&[tp(0)]));
        assert!(!waited_out, "no write was running");
        let (write, dropped) = fence.begin(&mut batch);
        assert_eq!(dropped, 2);
        assert_eq!(batch.origins, vec![(tp(1), 1)]);
        drop(write);
    }

    #[test]
    fn a_revocation_waits_for_the_write_in_progress() {
        let fence = WriteFence::new(Arc::new(Mutex::new(OffsetTracker::new())));
        let written = Mutex::new(false);
        let mut batch = Batch::new();
        let generation = lock(fence.tracker()).consumed(&tp(0), 1);
        batch.push(tp(0), 1, generation, 10, Record::new("t"));
        let (write, dropped) = fence.begin(&mut batch);
        assert_eq!(dropped, 0);
        std::thread::scope(|s| {
            let written = &written;
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                *lock(written) = true;
                drop(write);
            });
            let (seen, waited_out) = fence.revoke(REVOCATION_WAIT, |_| *lock(written));
            assert!(!waited_out);
            assert!(seen, "the revocation ran only after the write had ended");
        });
    }

    #[test]
    fn a_revocation_waits_no_longer_than_its_limit() {
        let fence = WriteFence::new(Arc::new(Mutex::new(OffsetTracker::new())));
        let mut batch = Batch::new();
        let (_write, _) = fence.begin(&mut batch);
        let started = Instant::now();
        let ((), waited_out) = fence.revoke(Duration::from_millis(100), |_| ());
        assert!(waited_out, "the write is still running");
        assert!(started.elapsed() >= Duration::from_millis(100));
    }
}
