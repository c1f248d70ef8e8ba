//! The MySQL and MariaDB connection of the `mysql` sink (mysql_async, no TLS).

use std::ops::Range;

use ferry_crds::plugins::database_sink::InsertMode;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Params, TxOpts, Value};

use super::dialect::Dialect;
use super::rows::TableName;
use super::table::{ColumnInfo, RowGroup, TableInfo};
use super::types::{self, SqlValue};
use super::DbError;

/// Most placeholders in one MySQL statement.
const MAX_PLACEHOLDERS: usize = 65_535;
/// Most bytes of values in one statement, well below the servers' default
/// `max_allowed_packet` (MariaDB 16 MiB, MySQL 64 MiB).
const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// Ranges of `rows` holding at most `max_rows` rows and about `max_bytes` bytes of values
/// each (at least one row).
fn chunks(rows: &[Vec<SqlValue>], max_rows: usize, max_bytes: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let size: usize = row
            .iter()
            .map(|v| match v {
                SqlValue::Null => 4,
                SqlValue::Text(t) => t.len() + 3,
                SqlValue::Bytes(b) => b.len() + 3,
            })
            .sum();
        if i > start && (i - start >= max_rows || bytes + size > max_bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < rows.len() {
        out.push(start..rows.len());
    }
    out
}

/// The columns of a table (`TABLE_SCHEMA` defaults to the session's database).
const COLUMNS_SQL: &str = "SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, \
     (COLUMN_DEFAULT IS NOT NULL OR EXTRA LIKE '%auto_increment%' OR EXTRA LIKE '%GENERATED%') \
     FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) \
     AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";

/// Server error codes worth a retry: lock wait timeout, deadlock, too many connections,
/// server shutdown, gone away, lost connection, connection killed.
const TRANSIENT_CODES: &[u16] = &[1205, 1213, 1040, 1053, 2006, 2013, 1927, 1317];
/// Server error codes of a value or row the table refuses.
const DATA_CODES: &[u16] = &[
    1048, 1062, 1264, 1265, 1292, 1364, 1366, 1406, 1451, 1452, 3140, 3819, 4025, 1690, 1367,
];
/// Server error codes of a table or column that changed under the sink.
const STALE_CODES: &[u16] = &[1146, 1054];
/// "Duplicate column name": another task added the column first.
const DUPLICATE_COLUMN: u16 = 1060;

/// An open MySQL session.
pub struct Mysql {
    conn: Conn,
    batch_size: usize,
}

/// Connects with `opts`.
pub async fn connect(opts: Opts, batch_size: usize) -> Result<Mysql, DbError> {
    let conn = Conn::new(opts).await.map_err(classify)?;
    Ok(Mysql { conn, batch_size })
}

/// Sorts a database error into what the sink does about it.
pub fn classify(e: mysql_async::Error) -> DbError {
    match e {
        mysql_async::Error::Server(s) => {
            let message = format!("{} (error {}, SQLSTATE {})", s.message, s.code, s.state);
            if TRANSIENT_CODES.contains(&s.code)
                || s.state.starts_with("08")
                || s.state.starts_with("40")
            {
                DbError::Transient(message)
            } else if STALE_CODES.contains(&s.code) {
                DbError::Stale(message)
            } else if DATA_CODES.contains(&s.code)
                || s.state.starts_with("22")
                || s.state.starts_with("23")
            {
                DbError::Data(message)
            } else {
                DbError::Other(message)
            }
        }
        mysql_async::Error::Url(u) => DbError::Other(u.to_string()),
        other => DbError::Transient(other.to_string()),
    }
}

fn value(v: &SqlValue) -> Value {
    match v {
        SqlValue::Null => Value::NULL,
        SqlValue::Text(s) => Value::Bytes(s.as_bytes().to_vec()),
        SqlValue::Bytes(b) => Value::Bytes(b.clone()),
    }
}

impl Mysql {
    /// The columns of table `t`, or `None` when it does not exist.
    pub async fn table(&mut self, t: &TableName) -> Result<Option<TableInfo>, DbError> {
        let rows: Vec<(String, String, String, i64)> = self
            .conn
            .exec(COLUMNS_SQL, (t.schema.clone(), t.table.clone()))
            .await
            .map_err(classify)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let columns = rows
            .into_iter()
            .map(|(name, column_type, nullable, has_default)| ColumnInfo {
                name,
                max_chars: super::table::max_chars(&column_type),
                category: types::category(&column_type),
                cast: column_type,
                nullable: nullable.eq_ignore_ascii_case("YES"),
                has_default: has_default != 0,
            })
            .collect();
        Ok(Some(TableInfo { columns }))
    }

    /// Runs a definition statement (`CREATE TABLE`, `ALTER TABLE`); a column another task
    /// added first counts as added.
    pub async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        match self.conn.query_drop(sql).await {
            Err(mysql_async::Error::Server(s)) if s.code == DUPLICATE_COLUMN => Ok(()),
            r => r.map_err(classify),
        }
    }

    /// Writes `groups` in one transaction, `batchSize` rows per statement, or one row per
    /// statement to find the row the database refuses (its record is then returned with
    /// the error).
    pub async fn write(
        &mut self,
        groups: &[RowGroup],
        mode: InsertMode,
        one_row_each: bool,
    ) -> Result<(), (Option<usize>, DbError)> {
        let mut tx = self
            .conn
            .start_transaction(TxOpts::default())
            .await
            .map_err(|e| (None, classify(e)))?;
        for group in groups {
            let width = if group.delete {
                group.key_len
            } else {
                group.columns.len()
            };
            let update = !group.delete && mode == InsertMode::Update;
            let chunk = if one_row_each || update {
                1
            } else {
                self.batch_size.clamp(1, MAX_PLACEHOLDERS / width.max(1))
            };
            for range in chunks(&group.rows, chunk, MAX_STATEMENT_BYTES) {
                let first = range.start;
                let rows = &group.rows[range];
                let sql = if group.delete {
                    Some(Dialect::Mysql.delete(
                        &group.table,
                        &group.columns[..group.key_len],
                        rows.len(),
                    ))
                } else {
                    Dialect::Mysql.write(
                        &group.table,
                        &group.columns,
                        group.key_len,
                        mode,
                        rows.len(),
                    )
                };
                let Some(sql) = sql else { break };
                let mut params = Vec::with_capacity(rows.len() * width);
                for row in rows {
                    if update {
                        // SET the other columns, WHERE the key.
                        params.extend(row[group.key_len..].iter().map(value));
                        params.extend(row[..group.key_len].iter().map(value));
                    } else {
                        params.extend(row[..width].iter().map(value));
                    }
                }
                if let Err(e) = tx.exec_drop(sql, Params::Positional(params)).await {
                    let record = (rows.len() == 1).then(|| group.records[first]);
                    return Err((record, classify(e)));
                }
            }
        }
        tx.commit().await.map_err(|e| (None, classify(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_bounded_by_rows_and_bytes() {
        let row = |n: usize| vec![SqlValue::Text("x".repeat(n)), SqlValue::Null];
        let rows: Vec<Vec<SqlValue>> = vec![row(10), row(10), row(10), row(100), row(10)];
        assert_eq!(chunks(&rows, 2, 1000), vec![0..2, 2..4, 4..5]);
        assert_eq!(chunks(&rows, 10, 40), vec![0..2, 2..3, 3..4, 4..5]);
        assert_eq!(chunks(&rows[..0], 10, 40), Vec::<Range<usize>>::new());
    }
}
