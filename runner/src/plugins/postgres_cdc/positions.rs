//! Resume positions of the change stream: which LSN each change's offset carries, and which
//! LSN may be confirmed to the slot.
//!
//! A change's offset `lsn` is the commit LSN of the last transaction handed over in full:
//! resuming there loses nothing (the change's own transaction is read again). The last
//! change of a transaction is held until its `Commit` arrives and then carries that
//! transaction's own commit LSN, so a transaction acknowledged to its end is not read again.

use std::collections::BTreeMap;

use super::super::{SourcePartition, SourceRecord};
use crate::record::Record;

/// An open transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// Transaction id.
    pub xid: u32,
    /// Commit time, ms since the epoch.
    pub commit_ms: i64,
}

/// Assigns offsets to the changes of one replication session.
#[derive(Debug)]
pub struct Sequencer {
    partition: SourcePartition,
    tx: Option<Transaction>,
    held: Option<SourceRecord>,
    last_end: u64,
    server_lsn: u64,
}

impl Sequencer {
    /// A session streaming from `start` (a resume position).
    pub fn new(partition: SourcePartition, start: u64) -> Self {
        Sequencer {
            partition,
            tx: None,
            held: None,
            last_end: start,
            server_lsn: 0,
        }
    }

    /// A transaction begins.
    pub fn begin(&mut self, tx: Transaction) {
        self.tx = Some(tx);
    }

    /// The open transaction.
    pub fn transaction(&self) -> Option<Transaction> {
        self.tx
    }

    /// Commit LSN of the last transaction read to its end.
    pub fn last_end(&self) -> u64 {
        self.last_end
    }

    /// A change record of the open transaction; the one held before it goes to `out`.
    pub fn change(&mut self, record: Record, out: &mut Vec<SourceRecord>) {
        let xid = self.tx.map_or(0, |t| t.xid);
        let offset = BTreeMap::from([
            ("lsn".to_string(), self.last_end.to_string()),
            ("txId".to_string(), xid.to_string()),
        ]);
        let next = SourceRecord {
            partition: self.partition.clone(),
            offset,
            record,
        };
        if let Some(previous) = self.held.replace(next) {
            out.push(previous);
        }
    }

    /// The open transaction committed at `end`: its last change goes to `out`, carrying
    /// `end`.
    pub fn commit(&mut self, end: u64, out: &mut Vec<SourceRecord>) {
        if let Some(mut last) = self.held.take() {
            last.offset.insert("lsn".into(), end.to_string());
            out.push(last);
        }
        self.tx = None;
        self.last_end = self.last_end.max(end);
    }

    /// The server reported its position.
    pub fn keepalive(&mut self, wal_end: u64) {
        self.server_lsn = self.server_lsn.max(wal_end);
    }

    /// The position a heartbeat may confirm, given the highest position `stored` and the
    /// position of the last record handed over (`emitted`): the server's position when no
    /// transaction is open, nothing is held and everything handed over is stored.
    pub fn heartbeat_position(&self, stored: u64, emitted: u64) -> Option<u64> {
        if self.tx.is_some() || self.held.is_some() || stored < emitted {
            return None;
        }
        Some(self.last_end.max(self.server_lsn).max(stored))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lsns(out: &[SourceRecord]) -> Vec<&str> {
        out.iter().map(|r| r.offset["lsn"].as_str()).collect()
    }

    #[test]
    fn the_last_change_of_a_transaction_carries_its_commit() {
        let mut s = Sequencer::new(SourcePartition::new(), 100);
        let mut out = Vec::new();
        s.begin(Transaction {
            xid: 7,
            commit_ms: 0,
        });
        for _ in 0..3 {
            s.change(Record::new("t"), &mut out);
        }
        assert_eq!(lsns(&out), ["100", "100"], "the third is held");
        assert_eq!(
            s.heartbeat_position(100, 100),
            None,
            "a transaction is open"
        );
        s.commit(250, &mut out);
        assert_eq!(lsns(&out), ["100", "100", "250"]);
        assert_eq!(out[2].offset["txId"], "7");
        assert_eq!(s.last_end(), 250);
        assert_eq!(
            s.heartbeat_position(100, 250),
            None,
            "not everything is stored"
        );
        s.keepalive(300);
        assert_eq!(s.heartbeat_position(250, 250), Some(300));

        // A transaction without captured changes moves the position too.
        let mut out = Vec::new();
        s.begin(Transaction {
            xid: 8,
            commit_ms: 0,
        });
        s.commit(400, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.heartbeat_position(250, 250), Some(400));
        // A commit older than what was read does not move back.
        s.commit(350, &mut out);
        assert_eq!(s.last_end(), 400);
    }

    #[test]
    fn changes_of_the_next_transaction_resume_after_the_previous_commit() {
        let mut s = Sequencer::new(SourcePartition::new(), 10);
        let mut out = Vec::new();
        s.begin(Transaction {
            xid: 1,
            commit_ms: 0,
        });
        s.change(Record::new("t"), &mut out);
        s.commit(20, &mut out);
        s.begin(Transaction {
            xid: 2,
            commit_ms: 0,
        });
        s.change(Record::new("t"), &mut out);
        s.change(Record::new("t"), &mut out);
        assert_eq!(lsns(&out), ["20", "20"]);
        assert_eq!(s.heartbeat_position(20, 20), None, "one change is held");
    }
}
