//! The `postgres` and `mysql` sinks: records become rows, JDBC-sink style.
//!
//! A batch from the pipeline is planned first (pure: the row change of each record, the
//! last change per key), then each table is made ready (created or extended when allowed)
//! and every row checked against its columns, and finally the batch is written in one
//! transaction: deletes, then multi-row inserts, upserts or updates. `write` returns only
//! after the commit, so the pipeline commits Kafka offsets only for rows that are durable.
//!
//! Failures: a lost connection, a deadlock or a serialization failure is retriable (the
//! session is reopened on the next attempt); a record that does not fit its table is
//! reported with its index in the batch ([`PluginError::Record`]), so the pipeline can name
//! it and send it to the dead letter queue. When the database refuses a multi-row statement
//! for a value, the batch is written again one row per statement to find the record.
//!
//! Under `spec.delivery: ExactlyOnce` the `postgres` sink also stores, in the same
//! transaction, the Kafka position after the batch and skips what it stored before
//! ([`positions`]).

mod dialect;
mod mysql;
pub mod positions;
mod postgres;
pub mod rows;
pub mod table;
pub mod types;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use ferry_crds::contract;
use ferry_crds::plugins::database_sink::{
    DatabaseSink, PrimaryKeyMode, DEFAULT_MYSQL_PORT, DEFAULT_POSTGRES_PORT,
};

use super::{PluginError, SinkTask};
use crate::config_error::ConfigError;
use crate::offset_tracker::TopicPartition;
use crate::record::Record;
pub use dialect::Dialect;
use positions::{OffsetsScope, PositionUpdate, Positions};
use rows::TableName;
use table::{Ddl, RowGroup, TableError, TableInfo};
use types::Flavor;

/// How long opening a database session may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A database failure, sorted by what the sink does about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbError {
    /// The connection failed, or the database asks to try again (deadlock, serialization
    /// failure, shutdown): retriable, on a new session.
    Transient(String),
    /// A value or row was refused (type, length, constraint): a record failure.
    Data(String),
    /// A table or column changed under the sink: retriable after reading the tables again.
    Stale(String),
    /// Anything else (permissions, syntax): the task fails.
    Other(String),
    /// Another task moved a stored Kafka position (exactly-once): retriable after reading
    /// the positions again.
    Moved(String),
}

/// Checks a `postgres` or `mysql` block beyond the API server's rules; field paths start
/// at `spec.sink.<plugin>`.
pub fn validate(spec: &DatabaseSink, plugin: &str) -> Vec<ConfigError> {
    let field = |f: &str| format!("spec.sink.{plugin}.{f}");
    let mut errors = Vec::new();
    match spec.primary_key_mode {
        PrimaryKeyMode::RecordValue if spec.primary_key_fields.is_empty() => {
            errors.push(ConfigError::new(
                field("primaryKeyFields"),
                "primaryKeyMode recordValue needs the value fields that make the key",
            ))
        }
        PrimaryKeyMode::Kafka if !matches!(spec.primary_key_fields.len(), 0 | 3) => {
            errors.push(ConfigError::new(
                field("primaryKeyFields"),
                "primaryKeyMode kafka takes no names (default __connect_topic, __connect_partition, __connect_offset) or exactly three",
            ))
        }
        PrimaryKeyMode::None if !spec.primary_key_fields.is_empty() => {
            errors.push(ConfigError::new(
                field("primaryKeyFields"),
                "needs a primaryKeyMode (recordKey, recordValue or kafka)",
            ))
        }
        _ => {}
    }
    let format = spec.table_name_format();
    let dots = format.replace("${topic}", "x").matches('.').count();
    if dots > 1 || format.starts_with('.') || format.ends_with('.') {
        errors.push(ConfigError::new(
            field("tableNameFormat"),
            format!("{format:?} must be a table name or schema.table (one dot at most, outside ${{topic}})"),
        ));
    }
    errors
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub enum Target {
    /// A PostgreSQL server.
    Postgres(Box<tokio_postgres::Config>),
    /// A MySQL or MariaDB server.
    Mysql(mysql_async::Opts),
}

/// The connection settings of `spec`; `env` reads the variables the operator sets from the
/// connector's Secrets ([`contract::ENV_SINK_DATABASE_URL`],
/// [`contract::ENV_SINK_DATABASE_PASSWORD`]).
pub fn target(
    dialect: Dialect,
    spec: &DatabaseSink,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Target, ConfigError> {
    let plugin = dialect.name();
    let read = |var: &str, field: &str| {
        env(var).filter(|v| !v.is_empty()).ok_or_else(|| {
            ConfigError::new(
                format!("spec.sink.{plugin}.{field}"),
                format!("the environment variable {var} is not set (the operator sets it from the Secret; standalone runs must export it)"),
            )
        })
    };
    let password = match &spec.password {
        Some(_) => Some(read(contract::ENV_SINK_DATABASE_PASSWORD, "password")?),
        None => None,
    };
    match dialect {
        Dialect::Postgres => {
            let mut config = match &spec.url {
                Some(_) => {
                    let url = read(contract::ENV_SINK_DATABASE_URL, "url")?;
                    url.parse::<tokio_postgres::Config>().map_err(|e| {
                        ConfigError::new(
                            "spec.sink.postgres.url",
                            format!("the Secret's value is not a PostgreSQL connection URL: {e}"),
                        )
                    })?
                }
                None => {
                    let mut c = tokio_postgres::Config::new();
                    c.host(spec.host.as_deref().unwrap_or("localhost"))
                        .port(spec.port.unwrap_or(DEFAULT_POSTGRES_PORT))
                        .user(spec.user.as_deref().unwrap_or("postgres"));
                    if let Some(db) = &spec.database {
                        c.dbname(db);
                    }
                    if let Some(p) = &password {
                        c.password(p);
                    }
                    c
                }
            };
            config
                .application_name("ferry-sink")
                .connect_timeout(CONNECT_TIMEOUT);
            Ok(Target::Postgres(Box::new(config)))
        }
        Dialect::Mysql => {
            let opts = match &spec.url {
                Some(_) => {
                    let url = read(contract::ENV_SINK_DATABASE_URL, "url")?;
                    mysql_async::Opts::from_url(&url).map_err(|e| {
                        ConfigError::new(
                            "spec.sink.mysql.url",
                            format!("the Secret's value is not a MySQL connection URL: {e}"),
                        )
                    })?
                }
                None => mysql_async::OptsBuilder::default()
                    .ip_or_hostname(spec.host.clone().unwrap_or_else(|| "localhost".into()))
                    .tcp_port(spec.port.unwrap_or(DEFAULT_MYSQL_PORT))
                    .user(Some(spec.user.clone().unwrap_or_else(|| "root".into())))
                    .pass(password)
                    .db_name(spec.database.clone())
                    .prefer_socket(false)
                    .into(),
            };
            Ok(Target::Mysql(opts))
        }
    }
}

/// An open session with the database.
enum Session {
    Postgres(postgres::Postgres),
    Mysql(mysql::Mysql),
}

impl Session {
    async fn open(target: &Target, batch_size: usize) -> Result<Session, DbError> {
        let open = async {
            match target {
                Target::Postgres(c) => postgres::connect(c, batch_size)
                    .await
                    .map(Session::Postgres),
                Target::Mysql(o) => mysql::connect(o.clone(), batch_size)
                    .await
                    .map(Session::Mysql),
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, open)
            .await
            .unwrap_or_else(|_| {
                Err(DbError::Transient(format!(
                    "no connection within {} s",
                    CONNECT_TIMEOUT.as_secs()
                )))
            })
    }

    async fn table(&mut self, t: &TableName) -> Result<Option<TableInfo>, DbError> {
        match self {
            Session::Postgres(s) => s.table(t).await,
            Session::Mysql(s) => s.table(t).await,
        }
    }

    async fn execute(&mut self, sql: &str) -> Result<(), DbError> {
        match self {
            Session::Postgres(s) => s.execute(sql).await,
            Session::Mysql(s) => s.execute(sql).await,
        }
    }

    async fn write(
        &mut self,
        groups: &[RowGroup],
        spec: &DatabaseSink,
        one_row_each: bool,
        positions: Option<(&OffsetsScope, &[PositionUpdate])>,
    ) -> Result<(), (Option<usize>, DbError)> {
        match self {
            Session::Postgres(s) => {
                s.write(groups, spec.insert_mode, one_row_each, positions)
                    .await
            }
            Session::Mysql(_) if positions.is_some() => Err((
                None,
                DbError::Other("the mysql sink does not store Kafka positions".into()),
            )),
            Session::Mysql(s) => s.write(groups, spec.insert_mode, one_row_each).await,
        }
    }

    /// The stored positions of `scope` (creating their table when missing).
    async fn positions(
        &mut self,
        scope: &OffsetsScope,
    ) -> Result<Vec<(String, i32, i64)>, DbError> {
        match self {
            Session::Postgres(s) => s.positions(scope).await,
            Session::Mysql(_) => Err(DbError::Other(
                "the mysql sink does not store Kafka positions".into(),
            )),
        }
    }
}

/// The `postgres` or `mysql` sink.
pub struct DatabaseSinkTask {
    dialect: Dialect,
    spec: DatabaseSink,
    target: Target,
    session: Option<Session>,
    /// Columns of the tables written so far; dropped after any failure.
    tables: HashMap<TableName, TableInfo>,
    /// Exactly-once: whose Kafka positions are stored with the rows.
    exactly_once: Option<OffsetsScope>,
    /// The stored positions known (exactly-once only).
    positions: Positions,
}

impl std::fmt::Debug for DatabaseSinkTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSinkTask")
            .field("dialect", &self.dialect)
            .field("connected", &self.session.is_some())
            .finish_non_exhaustive()
    }
}

impl DatabaseSinkTask {
    /// The sink of `spec`, with its connection settings read from the environment (a
    /// missing variable or an unreadable URL is a configuration error). The database is
    /// first contacted by the first write. With `exactly_once`, Kafka positions are stored
    /// with the rows (PostgreSQL only; validation refuses it for MySQL).
    pub fn new(
        dialect: Dialect,
        spec: &DatabaseSink,
        exactly_once: Option<OffsetsScope>,
    ) -> Result<Self, PluginError> {
        let target =
            target(dialect, spec, |k| std::env::var(k).ok()).map_err(PluginError::Config)?;
        Ok(Self {
            dialect,
            spec: spec.clone(),
            target,
            session: None,
            tables: HashMap::new(),
            exactly_once,
            positions: Positions::default(),
        })
    }

    fn flavor(&self) -> Flavor {
        match self.dialect {
            Dialect::Postgres => Flavor::Postgres,
            Dialect::Mysql => Flavor::Mysql,
        }
    }

    fn failed(&mut self, e: DbError) -> PluginError {
        let name = self.dialect.name();
        self.tables.clear();
        match e {
            DbError::Transient(m) => {
                self.session = None;
                // A commit cut off by the failure may have landed.
                self.positions.forget();
                PluginError::Retriable(format!("{name} sink: {m}"))
            }
            DbError::Stale(m) => PluginError::Retriable(format!(
                "{name} sink: {m} (the table changed; reading its columns again)"
            )),
            DbError::Moved(m) => {
                self.positions.forget();
                PluginError::Retriable(format!("{name} sink: {m}; reading the positions again"))
            }
            DbError::Data(m) | DbError::Other(m) => PluginError::Fatal(format!("{name} sink: {m}")),
        }
    }

    async fn connect(&mut self) -> Result<(), PluginError> {
        if self.session.is_none() {
            let session = Session::open(&self.target, self.spec.batch_size() as usize)
                .await
                .map_err(|e| self.failed(e))?;
            self.session = Some(session);
        }
        Ok(())
    }

    /// The columns of `t`, from the cache or the database.
    async fn table_info(&mut self, t: &TableName) -> Result<Option<TableInfo>, DbError> {
        if let Some(info) = self.tables.get(t) {
            return Ok(Some(info.clone()));
        }
        let Some(session) = self.session.as_mut() else {
            return Err(DbError::Transient("not connected".into()));
        };
        let info = session.table(t).await?;
        if let Some(i) = &info {
            self.tables.insert(t.clone(), i.clone());
        }
        Ok(info)
    }

    /// Creates or extends table `t` as `ddl` says, and returns its columns afterwards.
    async fn apply_ddl(
        &mut self,
        t: &TableName,
        ddl: &[Ddl],
    ) -> Result<Option<TableInfo>, DbError> {
        let Some(session) = self.session.as_mut() else {
            return Err(DbError::Transient("not connected".into()));
        };
        for d in ddl {
            let sql = match d {
                Ddl::Create { columns, key } => self.dialect.create_table(t, columns, key),
                Ddl::AddColumn { name, kind } => self.dialect.add_column(t, name, *kind),
            };
            tracing::info!(table = %t, statement = %sql, "{} sink: changing a table", self.dialect.name());
            session.execute(&sql).await?;
        }
        self.tables.remove(t);
        self.table_info(t).await
    }

    /// Exactly-once: writes the records of `records` not written before, with the
    /// positions after them, in one transaction.
    async fn write_exactly_once(
        &mut self,
        scope: &OffsetsScope,
        records: &[Record],
        origins: &[(TopicPartition, i64)],
    ) -> Result<(), PluginError> {
        self.connect().await?;
        if self.positions.unknown(origins) {
            let rows = match self.session.as_mut() {
                Some(session) => session.positions(scope).await,
                None => Err(DbError::Transient("not connected".into())),
            };
            let rows = rows.map_err(|e| self.failed(e))?;
            self.positions.load(rows, origins);
        }
        let selection = self.positions.select(origins);
        if selection.updates.is_empty() {
            tracing::debug!(
                records = records.len(),
                "every record of the batch was written before"
            );
            return Ok(());
        }
        let kept: Vec<Record>;
        let batch = if selection.keep.len() == records.len() {
            records
        } else {
            tracing::info!(
                skipped = records.len() - selection.keep.len(),
                "leaving out records written before"
            );
            kept = selection.keep.iter().map(|&i| records[i].clone()).collect();
            &kept
        };
        match self
            .write_batch(batch, Some((scope, &selection.updates)))
            .await
        {
            Ok(()) => {
                self.positions.written(&selection.updates);
                Ok(())
            }
            Err(PluginError::Record { index, message }) => Err(PluginError::Record {
                index: selection.keep.get(index).copied().unwrap_or(index),
                message,
            }),
            Err(e) => Err(e),
        }
    }

    /// Plans, checks and writes one batch, with the Kafka positions after it.
    async fn write_batch(
        &mut self,
        records: &[Record],
        positions: Option<(&OffsetsScope, &[PositionUpdate])>,
    ) -> Result<(), PluginError> {
        let plan = rows::plan(records, &self.spec).map_err(|e| PluginError::Record {
            index: e.record,
            message: e.message,
        })?;
        if plan.is_empty() && positions.is_none() {
            return Ok(());
        }
        self.connect().await?;
        let name = self.dialect.name();
        let mut groups = Vec::new();
        for changes in &plan {
            let mut info = self
                .table_info(&changes.table)
                .await
                .map_err(|e| self.failed(e))?;
            let ddl =
                table::ddl_for(info.as_ref(), changes, &self.spec, name).map_err(table_error)?;
            if !ddl.is_empty() {
                info = self
                    .apply_ddl(&changes.table, &ddl)
                    .await
                    .map_err(|e| self.failed(e))?;
            }
            // A table that does not exist has no rows to delete.
            let Some(info) = info else { continue };
            groups.extend(
                table::row_groups(&info, changes, self.spec.insert_mode, self.flavor())
                    .map_err(table_error)?,
            );
        }
        let Some(session) = self.session.as_mut() else {
            return Ok(());
        };
        let rows: usize = groups.iter().map(|g| g.rows.len()).sum();
        // The record of a batch of one row.
        let only = groups
            .iter()
            .flat_map(|g| g.records.iter().copied())
            .next()
            .filter(|_| rows == 1);
        match session.write(&groups, &self.spec, false, positions).await {
            Ok(()) => Ok(()),
            Err((index, DbError::Data(message))) => match index.or(only) {
                Some(index) => Err(PluginError::Record {
                    index,
                    message: format!("{name} refused the row: {message}"),
                }),
                None => {
                    tracing::warn!(error = %message, rows, "{name} sink: the database refused a batch; writing it row by row to find the record");
                    match session.write(&groups, &self.spec, true, positions).await {
                        Ok(()) => Ok(()),
                        Err((Some(index), DbError::Data(message))) => Err(PluginError::Record {
                            index,
                            message: format!("{name} refused the row: {message}"),
                        }),
                        Err((_, e)) => Err(self.failed(e)),
                    }
                }
            },
            Err((_, e)) => Err(self.failed(e)),
        }
    }
}

fn table_error(e: TableError) -> PluginError {
    match e {
        TableError::Record(index, message) => PluginError::Record { index, message },
        TableError::Table(message) => PluginError::Fatal(message),
    }
}

#[async_trait]
impl SinkTask for DatabaseSinkTask {
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError> {
        let reused = self.session.is_some();
        match self.write_batch(records, None).await {
            // A session kept open between batches may have been closed by the server (a
            // restart, an idle timeout): one immediate retry on a new session before the
            // pipeline's retry policy applies. The whole batch is written again (at least
            // once: a commit cut off by the failure may have landed).
            Err(PluginError::Retriable(message)) if reused && self.session.is_none() => {
                tracing::warn!(error = %message, "{} sink: the connection failed; reconnecting", self.dialect.name());
                self.write_batch(records, None).await
            }
            other => other,
        }
    }

    async fn write_from(
        &mut self,
        records: &[Record],
        origins: &[(TopicPartition, i64)],
    ) -> Result<(), PluginError> {
        let Some(scope) = self.exactly_once.clone() else {
            return self.write(records).await;
        };
        let reused = self.session.is_some();
        match self.write_exactly_once(&scope, records, origins).await {
            // As in `write`; a commit cut off by the failure is found in the positions,
            // which the failure made the sink forget and read again on the new session.
            Err(PluginError::Retriable(message)) if reused && self.session.is_none() => {
                tracing::warn!(error = %message, "{} sink: the connection failed; reconnecting", self.dialect.name());
                self.write_exactly_once(&scope, records, origins).await
            }
            other => other,
        }
    }

    /// Rows hold keys and values only.
    fn reads_headers(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> DatabaseSink {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn validation_names_the_field() {
        let e = validate(
            &spec("{host: db, primaryKeyMode: recordValue, insertMode: upsert}"),
            "postgres",
        );
        assert_eq!(e[0].field, "spec.sink.postgres.primaryKeyFields");
        let e = validate(
            &spec("{host: db, primaryKeyMode: kafka, primaryKeyFields: [a]}"),
            "mysql",
        );
        assert_eq!(e[0].field, "spec.sink.mysql.primaryKeyFields");
        let e = validate(
            &spec("{host: db, tableNameFormat: 'a.b.${topic}'}"),
            "mysql",
        );
        assert_eq!(e[0].field, "spec.sink.mysql.tableNameFormat");
        assert!(validate(
            &spec("{host: db, tableNameFormat: 'staging.${topic}'}"),
            "mysql"
        )
        .is_empty());
    }

    #[test]
    fn connection_settings_come_from_the_block_and_the_secrets() {
        let env = |k: &str| match k {
            "FERRY_SINK_DATABASE_PASSWORD" => Some("s3cret".to_string()),
            "FERRY_SINK_DATABASE_URL" => Some("postgres://u:p@db:6543/shop".to_string()),
            _ => None,
        };
        let s = spec("{host: db, database: shop, password: {secretKeyRef: {name: pg, key: pw}}}");
        let Ok(Target::Postgres(c)) = target(Dialect::Postgres, &s, env) else {
            panic!("a postgres target")
        };
        assert_eq!(c.get_ports(), &[5432]);
        assert_eq!(c.get_user(), Some("postgres"));
        assert_eq!(c.get_password(), Some(&b"s3cret"[..]));
        assert_eq!(c.get_dbname(), Some("shop"));
        let s = spec("{url: {secretKeyRef: {name: pg, key: url}}}");
        let Ok(Target::Postgres(c)) = target(Dialect::Postgres, &s, env) else {
            panic!("a postgres target")
        };
        assert_eq!(c.get_ports(), &[6543]);
        let Err(e) = target(Dialect::Mysql, &s, |_| None) else {
            panic!("no URL")
        };
        assert_eq!(e.field, "spec.sink.mysql.url");
        assert!(e.message.contains("FERRY_SINK_DATABASE_URL"), "{e}");
        let s = spec("{host: db}");
        let Ok(Target::Mysql(o)) = target(Dialect::Mysql, &s, |_| None) else {
            panic!("a mysql target")
        };
        assert_eq!(o.tcp_port(), 3306);
        assert_eq!(o.user(), Some("root"));
    }
}
