//! Resume positions of the change stream: which LSN each change's offset carries, and which
//! LSN may be confirmed to the slot.
//!
//! A change's offset `lsn` is the commit LSN of the last transaction handed over in full:
//! resuming there loses nothing (the change's own transaction is read again). The last
//! change of a transaction is held until its `Commit` arrives and then carries that
//! transaction's own commit LSN, so a transaction acknowledged to its end is not read again.
//! The other changes also carry `changes`, how many changes of their transaction were handed
//! over up to and including them: a stream resumed there skips the transactions that end
//! before `lsn` and the first `changes` changes of the transaction `txId`, so nothing is
//! handed over twice (which exactly-once delivery needs, and at-least-once welcomes).

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

/// How far the changes handed over reach: every transaction that ends at or before `end`,
/// and the first changes of the next one, `(xid, count)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handed {
    /// Commit LSN (end) of the last transaction handed over in full.
    pub end: u64,
    /// Transaction id and count of the changes handed over of the transaction after it.
    pub partial: Option<(u32, u64)>,
}

impl Handed {
    /// The position an offset of this plugin records (`lsn`, `txId`, `changes`).
    pub fn of_offset(offset: &BTreeMap<String, String>) -> Option<Handed> {
        let end = offset.get("lsn")?.parse().ok()?;
        let partial = offset
            .get("changes")
            .and_then(|n| n.parse().ok())
            .zip(offset.get("txId").and_then(|x| x.parse().ok()))
            .map(|(n, xid)| (xid, n));
        Some(Handed { end, partial })
    }
}

/// Assigns offsets to the changes of one replication session.
#[derive(Debug)]
pub struct Sequencer {
    partition: SourcePartition,
    tx: Option<Transaction>,
    held: Option<SourceRecord>,
    last_end: u64,
    server_lsn: u64,
    /// What was handed over before this session: read again, and skipped.
    handed: Handed,
    /// Changes of the open transaction so far.
    count: u64,
    /// The open transaction was handed over in full before.
    skip_transaction: bool,
}

impl Sequencer {
    /// A session streaming from `start` (a resume position), after the changes `handed`
    /// over before.
    pub fn new(partition: SourcePartition, start: u64, handed: Handed) -> Self {
        Sequencer {
            partition,
            tx: None,
            held: None,
            last_end: start.max(handed.end),
            server_lsn: 0,
            handed,
            count: 0,
            skip_transaction: false,
        }
    }

    /// A transaction whose commit record is at `commit_lsn` begins.
    pub fn begin(&mut self, tx: Transaction, commit_lsn: u64) {
        self.tx = Some(tx);
        self.count = 0;
        // A commit record before the end of the last one handed over: read again.
        self.skip_transaction = commit_lsn < self.handed.end;
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
        if self.skip_transaction {
            return;
        }
        let xid = self.tx.map_or(0, |t| t.xid);
        self.count += 1;
        if self
            .handed
            .partial
            .is_some_and(|(x, n)| x == xid && self.count <= n)
        {
            return;
        }
        let offset = BTreeMap::from([
            ("lsn".to_string(), self.last_end.to_string()),
            ("txId".to_string(), xid.to_string()),
            ("changes".to_string(), self.count.to_string()),
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
            last.offset.remove("changes");
            out.push(last);
        }
        if !self.skip_transaction {
            // The partly handed over transaction (if it was this one) is behind us.
            self.handed.partial = None;
        }
        self.skip_transaction = false;
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
        let mut s = Sequencer::new(SourcePartition::new(), 100, Handed::default());
        let mut out = Vec::new();
        s.begin(
            Transaction {
                xid: 7,
                commit_ms: 0,
            },
            u64::MAX,
        );
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
        s.begin(
            Transaction {
                xid: 8,
                commit_ms: 0,
            },
            u64::MAX,
        );
        s.commit(400, &mut out);
        assert!(out.is_empty());
        assert_eq!(s.heartbeat_position(250, 250), Some(400));
        // A commit older than what was read does not move back.
        s.commit(350, &mut out);
        assert_eq!(s.last_end(), 400);
    }

    #[test]
    fn changes_of_the_next_transaction_resume_after_the_previous_commit() {
        let mut s = Sequencer::new(SourcePartition::new(), 10, Handed::default());
        let mut out = Vec::new();
        s.begin(
            Transaction {
                xid: 1,
                commit_ms: 0,
            },
            u64::MAX,
        );
        s.change(Record::new("t"), &mut out);
        s.commit(20, &mut out);
        s.begin(
            Transaction {
                xid: 2,
                commit_ms: 0,
            },
            u64::MAX,
        );
        s.change(Record::new("t"), &mut out);
        s.change(Record::new("t"), &mut out);
        assert_eq!(lsns(&out), ["20", "20"]);
        assert_eq!(s.heartbeat_position(20, 20), None, "one change is held");
    }

    #[test]
    fn a_resumed_stream_skips_what_was_handed_over() {
        let tx = |xid| Transaction { xid, commit_ms: 0 };
        // Transaction 5 ended at 200 and two changes of transaction 6 were handed over.
        let mut first = Sequencer::new(SourcePartition::new(), 100, Handed::default());
        let mut out = Vec::new();
        first.begin(tx(5), 190);
        first.change(Record::new("t"), &mut out);
        first.commit(200, &mut out);
        first.begin(tx(6), 290);
        for _ in 0..3 {
            first.change(Record::new("t"), &mut out);
        }
        assert_eq!(out.len(), 3, "the third change of 6 is held");
        let handed = Handed::of_offset(&out[2].offset).unwrap();
        assert_eq!(
            handed,
            Handed {
                end: 200,
                partial: Some((6, 2))
            }
        );

        // The server sends from the stored position 100 again: 5 in full, then 6.
        let mut again = Sequencer::new(SourcePartition::new(), 100, handed);
        let mut out = Vec::new();
        again.begin(tx(5), 190);
        again.change(Record::new("t"), &mut out);
        again.commit(200, &mut out);
        assert!(out.is_empty(), "transaction 5 was handed over");
        again.begin(tx(6), 290);
        for _ in 0..4 {
            again.change(Record::new("t"), &mut out);
        }
        again.commit(300, &mut out);
        assert_eq!(lsns(&out), ["200", "300"], "changes 3 and 4 of 6 only");
        assert_eq!(out[0].offset["changes"], "3");
        assert!(!out[1].offset.contains_key("changes"));
        assert_eq!(
            Handed::of_offset(&out[1].offset),
            Some(Handed {
                end: 300,
                partial: None
            })
        );
        // Later transactions pass.
        again.begin(tx(7), 390);
        again.change(Record::new("t"), &mut out);
        again.commit(400, &mut out);
        assert_eq!(out.len(), 3);
    }
}
