//! The `pgoutput` logical replication protocol (version 1): decoding the messages carried in
//! the replication stream's `XLogData` payloads.
//!
//! The stream itself (connection, authentication, keepalives, standby status updates, `Begin`
//! and `Commit` framing) is handled by the `pgwire-replication` crate, which hands over the
//! payloads of row changes undecoded; this module turns them into [`Message`]s.

/// Replica identity of a relation (`REPLICA IDENTITY`), as sent in a `Relation` message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// `DEFAULT`: the primary key identifies a row.
    Default,
    /// `NOTHING`: updates and deletes carry no old values.
    Nothing,
    /// `FULL`: updates and deletes carry the whole old row.
    Full,
    /// `USING INDEX`: a unique index identifies a row.
    Index,
}

/// One column of a `Relation` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// Whether the column is part of the replica identity key.
    pub key: bool,
    /// Column name.
    pub name: String,
    /// Type OID.
    pub type_oid: u32,
    /// Type modifier (`-1`: none), e.g. the scale of `numeric(10,2)`.
    pub type_modifier: i32,
}

/// A `Relation` message: describes a table before its first change in a session and after
/// each change of its definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relation {
    /// Table OID.
    pub id: u32,
    /// Schema name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// Replica identity.
    pub replica_identity: ReplicaIdentity,
    /// Columns in table order.
    pub columns: Vec<RelationColumn>,
}

/// One column value of a row in the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// A TOASTed value that did not change and is not sent.
    Unchanged,
    /// The value in PostgreSQL's text format.
    Text(String),
}

/// A decoded `pgoutput` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A table's description.
    Relation(Relation),
    /// A row was inserted.
    Insert {
        /// Table OID.
        relation: u32,
        /// The new row.
        new: Vec<Cell>,
    },
    /// A row was updated.
    Update {
        /// Table OID.
        relation: u32,
        /// The old row: its key columns (`key_only`) when the key changed, the whole row with
        /// `REPLICA IDENTITY FULL`, absent otherwise.
        old: Option<Vec<Cell>>,
        /// Whether `old` holds only the key columns (others are [`Cell::Null`]).
        key_only: bool,
        /// The new row.
        new: Vec<Cell>,
    },
    /// A row was deleted.
    Delete {
        /// Table OID.
        relation: u32,
        /// The old row (only its key columns unless `REPLICA IDENTITY FULL`).
        old: Vec<Cell>,
        /// Whether `old` holds only the key columns.
        key_only: bool,
    },
    /// Tables were truncated.
    Truncate {
        /// Table OIDs.
        relations: Vec<u32>,
    },
    /// Anything else the stream may carry (type descriptions, origins, begin/commit framing
    /// already handled by the stream).
    Other(u8),
}

/// A payload that is not valid `pgoutput`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed pgoutput message: {0}")]
pub struct DecodeError(String);

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| {
                DecodeError(format!(
                    "needs {n} more bytes at byte {} of {}",
                    self.at,
                    self.buf.len()
                ))
            })?;
        let out = &self.buf[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        let rest = &self.buf[self.at..];
        let len = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| DecodeError("a string has no terminating zero byte".into()))?;
        let s = String::from_utf8_lossy(&rest[..len]).into_owned();
        self.at += len + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Cell>, DecodeError> {
        let n = self.i16()?;
        let n = usize::try_from(n).map_err(|_| DecodeError(format!("{n} columns")))?;
        let mut cells = Vec::with_capacity(n);
        for _ in 0..n {
            cells.push(match self.u8()? {
                b'n' => Cell::Null,
                b'u' => Cell::Unchanged,
                b't' => {
                    let len = self.i32()?;
                    let len = usize::try_from(len)
                        .map_err(|_| DecodeError(format!("a value of length {len}")))?;
                    Cell::Text(String::from_utf8_lossy(self.take(len)?).into_owned())
                }
                b'b' => {
                    return Err(DecodeError(
                        "a value in binary format (the stream is read in text format)".into(),
                    ))
                }
                other => return Err(DecodeError(format!("unknown value kind {other:#04x}"))),
            });
        }
        Ok(cells)
    }
}

/// Decodes one `pgoutput` message.
pub fn decode(payload: &[u8]) -> Result<Message, DecodeError> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    let tag = r.u8()?;
    Ok(match tag {
        b'R' => {
            let id = r.u32()?;
            let schema = r.string()?;
            let table = r.string()?;
            let replica_identity = match r.u8()? {
                b'd' => ReplicaIdentity::Default,
                b'n' => ReplicaIdentity::Nothing,
                b'f' => ReplicaIdentity::Full,
                b'i' => ReplicaIdentity::Index,
                other => {
                    return Err(DecodeError(format!(
                        "unknown replica identity {other:#04x}"
                    )))
                }
            };
            let n = r.i16()?;
            let mut columns = Vec::with_capacity(usize::try_from(n).unwrap_or(0));
            for _ in 0..n {
                let flags = r.u8()?;
                columns.push(RelationColumn {
                    key: flags & 1 == 1,
                    name: r.string()?,
                    type_oid: r.u32()?,
                    type_modifier: r.i32()?,
                });
            }
            Message::Relation(Relation {
                id,
                schema,
                table,
                replica_identity,
                columns,
            })
        }
        b'I' => {
            let relation = r.u32()?;
            expect(&mut r, b'N')?;
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.u32()?;
            let mut old = None;
            let mut key_only = false;
            let mut kind = r.u8()?;
            if kind == b'K' || kind == b'O' {
                key_only = kind == b'K';
                old = Some(r.tuple()?);
                kind = r.u8()?;
            }
            if kind != b'N' {
                return Err(DecodeError(format!(
                    "update: expected the new row, found {kind:#04x}"
                )));
            }
            Message::Update {
                relation,
                old,
                key_only,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.u32()?;
            let kind = r.u8()?;
            if kind != b'K' && kind != b'O' {
                return Err(DecodeError(format!(
                    "delete: expected the old row, found {kind:#04x}"
                )));
            }
            Message::Delete {
                relation,
                key_only: kind == b'K',
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.u32()?;
            let _options = r.u8()?;
            let mut relations = Vec::new();
            for _ in 0..n {
                relations.push(r.u32()?);
            }
            Message::Truncate { relations }
        }
        other => Message::Other(other),
    })
}

fn expect(r: &mut Reader<'_>, want: u8) -> Result<(), DecodeError> {
    let got = r.u8()?;
    if got == want {
        Ok(())
    } else {
        Err(DecodeError(format!(
            "expected {:?}, found {got:#04x}",
            want as char
        )))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encodes a tuple the way `pgoutput` does.
    pub(crate) fn tuple(cells: &[Option<&str>]) -> Vec<u8> {
        let mut out = (cells.len() as i16).to_be_bytes().to_vec();
        for c in cells {
            match c {
                None => out.push(b'n'),
                Some(t) => {
                    out.push(b't');
                    out.extend((t.len() as i32).to_be_bytes());
                    out.extend(t.as_bytes());
                }
            }
        }
        out
    }

    pub(crate) fn relation_message(id: u32, cols: &[(&str, u32, i32, bool)]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend(id.to_be_bytes());
        m.extend(b"public\0users\0d");
        m.extend((cols.len() as i16).to_be_bytes());
        for (name, oid, typmod, key) in cols {
            m.push(u8::from(*key));
            m.extend(name.as_bytes());
            m.push(0);
            m.extend(oid.to_be_bytes());
            m.extend(typmod.to_be_bytes());
        }
        m
    }

    #[test]
    fn relation_and_changes_decode() {
        let m = relation_message(16384, &[("id", 23, -1, true), ("name", 25, -1, false)]);
        let Message::Relation(rel) = decode(&m).unwrap() else {
            panic!("not a relation")
        };
        assert_eq!(rel.schema, "public");
        assert_eq!(rel.table, "users");
        assert_eq!(rel.replica_identity, ReplicaIdentity::Default);
        assert_eq!(rel.columns.len(), 2);
        assert!(rel.columns[0].key && !rel.columns[1].key);
        assert_eq!(rel.columns[1].type_oid, 25);

        let mut ins = vec![b'I'];
        ins.extend(16384u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(tuple(&[Some("1"), None]));
        assert_eq!(
            decode(&ins).unwrap(),
            Message::Insert {
                relation: 16384,
                new: vec![Cell::Text("1".into()), Cell::Null]
            }
        );

        let mut upd = vec![b'U'];
        upd.extend(16384u32.to_be_bytes());
        upd.push(b'K');
        upd.extend(tuple(&[Some("1"), None]));
        upd.push(b'N');
        upd.extend(tuple(&[Some("2"), Some("b")]));
        let Message::Update {
            old, key_only, new, ..
        } = decode(&upd).unwrap()
        else {
            panic!("not an update")
        };
        assert!(key_only);
        assert_eq!(old.unwrap()[0], Cell::Text("1".into()));
        assert_eq!(new[1], Cell::Text("b".into()));

        let mut del = vec![b'D'];
        del.extend(16384u32.to_be_bytes());
        del.push(b'O');
        del.extend(tuple(&[Some("2"), Some("b")]));
        let Message::Delete { key_only, old, .. } = decode(&del).unwrap() else {
            panic!("not a delete")
        };
        assert!(!key_only);
        assert_eq!(old.len(), 2);

        let mut unchanged = vec![b'I'];
        unchanged.extend(1u32.to_be_bytes());
        unchanged.extend([b'N', 0, 1, b'u']);
        assert_eq!(
            decode(&unchanged).unwrap(),
            Message::Insert {
                relation: 1,
                new: vec![Cell::Unchanged]
            }
        );
    }

    #[test]
    fn truncated_or_odd_payloads_are_errors_not_panics() {
        let mut ins = vec![b'I'];
        ins.extend(16384u32.to_be_bytes());
        ins.push(b'N');
        ins.extend(tuple(&[Some("hello")]));
        for cut in 0..ins.len() {
            let _ = decode(&ins[..cut]);
        }
        assert!(decode(&ins[..ins.len() - 1]).is_err());
        assert!(decode(&[b'U', 0, 0, 0, 1, b'X']).is_err());
        assert!(decode(&[b'I', 0, 0, 0, 1, b'N', 0xff, 0xff]).is_err());
        assert_eq!(decode(&[b'Y', 1]).unwrap(), Message::Other(b'Y'));
        assert!(decode(&[]).is_err());
    }
}
