//! The PostgreSQL connection of the `postgres` sink (tokio-postgres, no TLS).

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls};

use super::dialect::Dialect;
use super::positions::{self as position_sql, OffsetsScope, PositionUpdate};
use super::rows::TableName;
use super::table::{ColumnInfo, RowGroup, TableInfo};
use super::types::{self, SqlValue};
use super::DbError;

/// The columns of a table, by its quoted name (`to_regclass` resolves the search path).
const COLUMNS_SQL: &str = "SELECT a.attname::text, format_type(a.atttypid, NULL), \
     format_type(a.atttypid, a.atttypmod), a.attnotnull, (a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '') \
     FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 \
     AND NOT a.attisdropped ORDER BY a.attnum";

/// An open PostgreSQL session.
pub struct Postgres {
    client: Client,
    batch_size: usize,
}

/// Connects with `config`; the session's I/O runs on its own task until the client is
/// dropped.
pub async fn connect(config: &Config, batch_size: usize) -> Result<Postgres, DbError> {
    let (client, connection) = config.connect(NoTls).await.map_err(classify)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "postgres sink: the database connection ended");
        }
    });
    Ok(Postgres { client, batch_size })
}

/// Sorts a database error into what the sink does about it.
pub fn classify(e: tokio_postgres::Error) -> DbError {
    let message = match e.as_db_error() {
        Some(db) => {
            let mut m = db.message().to_string();
            if let Some(d) = db.detail() {
                m.push_str(": ");
                m.push_str(d);
            }
            if let Some(c) = db.column() {
                m.push_str(&format!(" (column {c:?})"));
            }
            m
        }
        None => e.to_string(),
    };
    let Some(code) = e.code() else {
        // No SQLSTATE: the connection failed or was closed.
        return DbError::Transient(message);
    };
    if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::UNDEFINED_COLUMN {
        return DbError::Stale(message);
    }
    match &code.code()[..2] {
        "08" | "40" | "53" | "57" | "58" => DbError::Transient(message),
        "22" | "23" => DbError::Data(message),
        _ => DbError::Other(message),
    }
}

/// One text array per column (the first `columns` of each row), borrowing the values.
/// PostgreSQL values are all text (binary values as `\x` hex, see `types::render`).
fn text_arrays(rows: &[Vec<SqlValue>], columns: usize) -> Result<Vec<Vec<Option<&str>>>, DbError> {
    let mut arrays: Vec<Vec<Option<&str>>> = (0..columns)
        .map(|_| Vec::with_capacity(rows.len()))
        .collect();
    for row in rows {
        for (array, v) in arrays.iter_mut().zip(row) {
            array.push(match v {
                SqlValue::Null => None,
                SqlValue::Text(s) => Some(s.as_str()),
                SqlValue::Bytes(_) => {
                    return Err(DbError::Other(
                        "a binary value was not rendered as text for PostgreSQL".into(),
                    ))
                }
            });
        }
    }
    Ok(arrays)
}

impl Postgres {
    /// The columns of table `t`, or `None` when it does not exist.
    pub async fn table(&mut self, t: &TableName) -> Result<Option<TableInfo>, DbError> {
        let name = Dialect::Postgres.table(t);
        let rows = self
            .client
            .query(COLUMNS_SQL, &[&name])
            .await
            .map_err(classify)?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut columns = Vec::with_capacity(rows.len());
        for row in rows {
            let get = |e: tokio_postgres::Error| {
                DbError::Other(format!("reading the columns of {t}: {e}"))
            };
            let cast: String = row.try_get(1).map_err(get)?;
            let full: String = row.try_get(2).map_err(get)?;
            let not_null: bool = row.try_get(3).map_err(get)?;
            columns.push(ColumnInfo {
                name: row.try_get(0).map_err(get)?,
                category: types::category(&cast),
                cast,
                nullable: !not_null,
                has_default: row.try_get(4).map_err(get)?,
                max_chars: super::table::max_chars(&full),
            });
        }
        Ok(Some(TableInfo { columns }))
    }

    /// Runs a definition statement (`CREATE TABLE`, `ALTER TABLE`).
    pub async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        self.client.batch_execute(sql).await.map_err(classify)
    }

    async fn positions_table_exists(&self) -> Result<bool, DbError> {
        let found: Option<String> = self
            .client
            .query_one(
                "SELECT to_regclass($1)::text",
                &[&ferry_crds::contract::SINK_OFFSETS_TABLE],
            )
            .await
            .map_err(classify)?
            .get(0);
        Ok(found.is_some())
    }

    /// The stored Kafka positions of `scope`: topic, partition, next offset. Creates the
    /// positions table when it is missing.
    pub async fn positions(
        &mut self,
        scope: &OffsetsScope,
    ) -> Result<Vec<(String, i32, i64)>, DbError> {
        if !self.positions_table_exists().await? {
            tracing::info!(
                table = ferry_crds::contract::SINK_OFFSETS_TABLE,
                "postgres sink: creating the table of Kafka positions"
            );
            if let Err(e) = self
                .client
                .batch_execute(&position_sql::create_table_sql())
                .await
            {
                // Several tasks may create it at once; one of them wins.
                if !self.positions_table_exists().await? {
                    return Err(classify(e));
                }
            }
        }
        let rows = self
            .client
            .query(
                &position_sql::select_sql(),
                &[&scope.connector, &scope.reset_id],
            )
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(classify)?,
                    r.try_get(1).map_err(classify)?,
                    r.try_get(2).map_err(classify)?,
                ))
            })
            .collect()
    }

    /// Writes `groups` in one transaction, `batchSize` rows per statement, or one row per
    /// statement to find the row the database refuses (its record is then returned with
    /// the error). `positions`: the Kafka positions after the rows, moved in the same
    /// transaction from the values expected ([`DbError::Moved`] when another task moved
    /// one first).
    pub async fn write(
        &mut self,
        groups: &[RowGroup],
        mode: ferry_crds::plugins::database_sink::InsertMode,
        one_row_each: bool,
        positions: Option<(&OffsetsScope, &[PositionUpdate])>,
    ) -> Result<(), (Option<usize>, DbError)> {
        let chunk = if one_row_each {
            1
        } else {
            self.batch_size.max(1)
        };
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| (None, classify(e)))?;
        for group in groups {
            let (sql, width) = if group.delete {
                (
                    Dialect::Postgres.delete(&group.table, &group.columns[..group.key_len], 0),
                    group.key_len,
                )
            } else {
                match Dialect::Postgres.write(&group.table, &group.columns, group.key_len, mode, 0)
                {
                    Some(sql) => (sql, group.columns.len()),
                    None => continue,
                }
            };
            let statement = tx.prepare(&sql).await.map_err(|e| (None, classify(e)))?;
            for (n, rows) in group.rows.chunks(chunk).enumerate() {
                let arrays = text_arrays(rows, width).map_err(|e| (None, e))?;
                let params: Vec<&(dyn ToSql + Sync)> =
                    arrays.iter().map(|a| a as &(dyn ToSql + Sync)).collect();
                if let Err(e) = tx.execute(&statement, &params).await {
                    let record = (rows.len() == 1).then(|| group.records[n * chunk]);
                    return Err((record, classify(e)));
                }
            }
        }
        if let Some((scope, updates)) = positions {
            let (insert, update) = (position_sql::insert_sql(), position_sql::update_sql());
            for u in updates {
                let topic: &str = &u.topic;
                let changed = match u.expected {
                    None => {
                        tx.execute(
                            &insert,
                            &[
                                &scope.connector,
                                &scope.reset_id,
                                &topic,
                                &u.partition,
                                &u.next,
                            ],
                        )
                        .await
                    }
                    Some(expected) => {
                        tx.execute(
                            &update,
                            &[
                                &scope.connector,
                                &scope.reset_id,
                                &topic,
                                &u.partition,
                                &u.next,
                                &expected,
                            ],
                        )
                        .await
                    }
                }
                .map_err(|e| (None, classify(e)))?;
                if changed != 1 {
                    // Dropping the transaction rolls it back.
                    return Err((
                        None,
                        DbError::Moved(format!(
                            "another task wrote {topic}/{} since this one read its position {}",
                            u.partition,
                            u.expected.map_or("(none)".to_string(), |e| e.to_string())
                        )),
                    ));
                }
            }
        }
        tx.commit().await.map_err(|e| (None, classify(e)))
    }
}
