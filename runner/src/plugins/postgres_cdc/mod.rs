//! The `postgresCdc` source: row changes of PostgreSQL tables through logical replication
//! (`pgoutput`), as Debezium change events.
//!
//! Two connections: an ordinary one (`tokio-postgres`) for the catalog, the publication and
//! the snapshot, and a replication one (`pgwire-replication`, which speaks the streaming
//! replication protocol and sends standby status updates) for the change stream.
//!
//! Offsets. The source partition is `{"database", "slot"}`; the offset's `lsn` is a position
//! from which the stream can resume without losing a change: the commit LSN of the last
//! transaction every change of which was handed over before (or with) the record. The
//! position stored with a transaction's last change is that transaction's commit LSN, so
//! an acknowledged transaction is not read again. The connector confirms a position to
//! PostgreSQL (the slot's `confirmed_flush_lsn`) only once the runtime reports it stored
//! ([`SourceTask::committed`]), i.e. after Kafka acknowledged every record up to it: the slot
//! keeps the WAL of everything not yet in Kafka. While nothing waits for Kafka, the server's
//! current position is confirmed every `heartbeatIntervalMs`, so changes the connector does
//! not capture do not pin WAL.

pub mod catalog;
pub mod envelope;
pub mod positions;
pub mod replication;
pub mod snapshot;
pub mod types;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use ferry_crds::contract::{self, ReplicationSlotReport};
use ferry_crds::plugins::postgres_cdc::SnapshotMode;
use ferry_crds::plugins::PostgresCdcSource;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use regex::Regex;

use self::envelope::{Column, Op, SourceInfo, Table};
use self::positions::{Handed, Sequencer, Transaction};
use self::replication::{Cell, Message, Relation};
use self::types::{kind_of, PgType};
use super::{PluginError, SourceOffset, SourcePartition, SourcePoll, SourceRecord, SourceTask};
use crate::config_error::ConfigError;
use crate::data::Value;

/// Path of the plugin block, for configuration errors.
const FIELD: &str = "spec.source.postgresCdc";
/// Microseconds between 1970-01-01 and PostgreSQL's epoch, 2000-01-01.
const PG_EPOCH_OFFSET_MS: i64 = 946_684_800_000;
/// How long a poll waits for the first change.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// How long a stopping task tries to measure its slot.
const MEASURE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the connector cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum CdcError {
    /// The configuration does not fit the database (unknown table, missing rights, a column
    /// without mapping); restarting does not help.
    #[error("{FIELD}.{field}: {message}")]
    Config {
        /// Field under `spec.source.postgresCdc`.
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The server refused the credentials. Retried with backoff: a restarted task reads the
    /// Secret again, so a rotated password is picked up without editing the connector.
    #[error("{FIELD}.{field}: {message}")]
    Refused {
        /// Field under `spec.source.postgresCdc` naming the credential.
        field: String,
        /// The server's answer and what to do.
        message: String,
    },
    /// The database is unreachable or failed; a later attempt may work.
    #[error("{0}")]
    Unavailable(String),
    /// The change stream holds something the connector cannot turn into an event.
    #[error("{0}")]
    Fatal(String),
}

impl CdcError {
    /// A configuration error on `field` (under `spec.source.postgresCdc`).
    pub fn config(field: &str, message: String) -> Self {
        CdcError::Config {
            field: field.to_string(),
            message,
        }
    }

    /// A failed query, doing `what`.
    pub fn query(what: &str, e: &tokio_postgres::Error) -> Self {
        CdcError::Unavailable(format!("PostgreSQL: {what}: {}", catalog::db_message(e)))
    }
}

impl From<CdcError> for PluginError {
    fn from(e: CdcError) -> Self {
        match e {
            CdcError::Config { field, message } => {
                PluginError::Config(ConfigError::new(format!("{FIELD}.{field}"), message))
            }
            e @ CdcError::Refused { .. } => PluginError::Retriable(e.to_string()),
            CdcError::Unavailable(m) => PluginError::Retriable(m),
            CdcError::Fatal(m) => PluginError::Fatal(m),
        }
    }
}

/// Checks the block offline beyond admission; field paths start at `spec.source.postgresCdc`.
pub fn validate(spec: &PostgresCdcSource) -> Vec<ConfigError> {
    // The block's own rules are the CRD's, which admission applies; these need a regex engine.
    let mut errors: Vec<ConfigError> = Vec::new();
    for (name, list) in [
        ("tableIncludeList", &spec.table_include_list),
        ("tableExcludeList", &spec.table_exclude_list),
    ] {
        for (i, pattern) in list.iter().enumerate() {
            if let Err(e) = full_match(pattern) {
                errors.push(ConfigError::new(
                    format!("{FIELD}.{name}[{i}]"),
                    format!("invalid regular expression: {e}"),
                ));
            }
        }
    }
    errors
}

fn full_match(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(&format!("^(?:{pattern})$"))
}

/// Which tables are captured: include/exclude lists over `<schema>.<table>`.
#[derive(Clone, Debug, Default)]
pub struct TableFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl TableFilter {
    /// The filter of a (validated) block; invalid patterns match nothing.
    pub fn new(spec: &PostgresCdcSource) -> Self {
        let compile = |list: &[String]| list.iter().filter_map(|p| full_match(p).ok()).collect();
        TableFilter {
            include: compile(&spec.table_include_list),
            exclude: compile(&spec.table_exclude_list),
        }
    }

    /// Whether `<schema>.<table>` is captured.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        let name = format!("{schema}.{table}");
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(&name)))
            && !self.exclude.iter().any(|r| r.is_match(&name))
    }

    /// Position of the first include pattern matching none of `tables`.
    pub fn unmatched_include(&self, tables: &[(String, String)]) -> Option<usize> {
        self.include
            .iter()
            .position(|r| !tables.iter().any(|(s, t)| r.is_match(&format!("{s}.{t}"))))
    }
}

/// Where the snapshot is.
#[derive(Debug)]
struct SnapshotProgress {
    /// Index in `tables` of the table being read.
    table: usize,
    /// Ordering values of the last row handed over.
    after: Option<Vec<String>>,
    /// Rows of the page read and not yet handed over (at most `maxBatchSize` become
    /// records per poll: a page of events with their schemas is large).
    rows: VecDeque<snapshot::PageRow>,
    /// Whether the page in `rows` is the table's last.
    last_page: bool,
}

impl SnapshotProgress {
    /// Reading table `table` after `after`.
    fn at(table: usize, after: Option<Vec<String>>) -> Self {
        SnapshotProgress {
            table,
            after,
            rows: VecDeque::new(),
            last_page: false,
        }
    }
}

/// The change stream.
struct Stream {
    client: ReplicationClient,
    relations: HashMap<u32, Option<Arc<Table>>>,
    positions: Sequencer,
}

enum Phase {
    Snapshot(SnapshotProgress),
    Streaming(Option<Box<Stream>>),
    Finished,
}

/// The task of a `postgresCdc` connector.
pub struct PostgresCdcTask {
    spec: PostgresCdcSource,
    password: String,
    slot: String,
    publication: String,
    filter: TableFilter,
    partition: SourcePartition,
    phase: Phase,
    client: Option<tokio_postgres::Client>,
    types: HashMap<u32, PgType>,
    tables: Vec<Arc<Table>>,
    /// Position the stream starts from (the slot's start, or the stored offset).
    start_lsn: u64,
    /// Offset position of the last record handed over.
    last_emitted: u64,
    /// Highest offset position the runtime reported stored.
    last_stored: u64,
    /// How far the changes handed over reach (a reconnected stream skips them).
    handed: Handed,
    last_heartbeat: Instant,
    last_backlog_check: Option<Instant>,
    backlog: Option<u64>,
    /// The slot's retained WAL, as last measured (or why measuring failed).
    slot_report: Option<ReplicationSlotReport>,
}

impl PostgresCdcTask {
    /// The task of connector `connector` in `namespace`; the password comes from
    /// [`contract::ENV_SOURCE_DATABASE_PASSWORD`].
    pub fn new(spec: &PostgresCdcSource, namespace: &str, connector: &str) -> Self {
        let slot = spec.slot_name(namespace, connector);
        let partition = BTreeMap::from([
            ("database".to_string(), spec.database.clone()),
            ("slot".to_string(), slot.clone()),
        ]);
        PostgresCdcTask {
            password: std::env::var(contract::ENV_SOURCE_DATABASE_PASSWORD).unwrap_or_default(),
            publication: spec.publication_name(namespace, connector),
            filter: TableFilter::new(spec),
            spec: spec.clone(),
            slot,
            partition,
            phase: Phase::Finished,
            client: None,
            types: HashMap::new(),
            tables: Vec::new(),
            start_lsn: 0,
            last_emitted: 0,
            last_stored: 0,
            handed: Handed::default(),
            last_heartbeat: Instant::now(),
            last_backlog_check: None,
            backlog: None,
            slot_report: None,
        }
    }

    fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.spec.heartbeat_interval_ms())
    }

    fn client(&self) -> Result<&tokio_postgres::Client, CdcError> {
        self.client
            .as_ref()
            .ok_or_else(|| CdcError::Fatal("the connector is not started".into()))
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, CdcError> {
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&self.spec.host)
            .port(self.spec.port())
            .user(self.spec.user())
            .dbname(&self.spec.database)
            .application_name("ferry-postgres-cdc")
            .connect_timeout(Duration::from_secs(30));
        if !self.password.is_empty() {
            cfg.password(&self.password);
        }
        let (client, connection) = cfg.connect(tokio_postgres::NoTls).await.map_err(|e| {
            match e.code() {
                Some(c)
                    if *c == tokio_postgres::error::SqlState::INVALID_PASSWORD
                        || *c == tokio_postgres::error::SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
                {
                    CdcError::Refused {
                        field: "password".into(),
                        message: format!(
                            "PostgreSQL refused user {:?}: {}. The task is restarted with \
                             backoff and reads the Secret again each time (a rotated password \
                             is picked up without editing the connector); meanwhile the \
                             replication slot {:?} keeps WAL on the server",
                            self.spec.user(),
                            catalog::db_message(&e),
                            self.slot
                        ),
                    }
                }
                Some(c) if *c == tokio_postgres::error::SqlState::INVALID_CATALOG_NAME => {
                    CdcError::config("database", catalog::db_message(&e))
                }
                _ => CdcError::Unavailable(format!(
                    "cannot connect to PostgreSQL at {}:{}: {e}",
                    self.spec.host,
                    self.spec.port()
                )),
            }
        })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "PostgreSQL connection closed");
            }
        });
        let settings: String = catalog::SESSION_SETTINGS
            .iter()
            .map(|(k, v)| format!("SET {k} = {};", catalog::quote_literal(v)))
            .collect();
        client
            .batch_execute(&settings)
            .await
            .map_err(|e| CdcError::query("setting up the session", &e))?;
        Ok(client)
    }

    fn replication_config(&self, start: u64) -> ReplicationConfig {
        let options: String = catalog::SESSION_SETTINGS
            .iter()
            .map(|(k, v)| format!("-c {k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        ReplicationConfig::new(
            self.spec.host.clone(),
            self.spec.user().to_string(),
            self.password.clone(),
            self.spec.database.clone(),
            self.slot.clone(),
            self.publication.clone(),
        )
        .with_port(self.spec.port())
        .with_start_lsn(Lsn::from_u64(start))
        .with_status_interval(self.heartbeat().min(Duration::from_secs(10)))
        .with_wakeup_interval(self.heartbeat().min(Duration::from_secs(10)))
        .with_buffer_size(usize::try_from(self.spec.max_batch_size()).unwrap_or(2048) * 4)
        .with_options(options)
        .with_application_name(format!("ferry-{}", self.slot))
    }

    /// Finds, creates and describes the captured tables.
    async fn prepare_tables(&mut self) -> Result<(), CdcError> {
        let client = self.client()?;
        let existing = catalog::publication_tables(client, &self.publication).await?;
        let candidates = match &existing {
            Some(tables) => tables.clone(),
            None => catalog::all_tables(client).await?,
        };
        if let Some(i) = self.filter.unmatched_include(&candidates) {
            let pattern = &self.spec.table_include_list[i];
            let place = match &existing {
                Some(_) => format!("publication {:?}", self.publication),
                None => format!("database {:?}", self.spec.database),
            };
            return Err(CdcError::config(
                &format!("tableIncludeList[{i}]"),
                format!("{pattern:?} matches no table of {place} (patterns match the whole <schema>.<table> name, e.g. public\\.orders)"),
            ));
        }
        let captured: Vec<(String, String)> = candidates
            .into_iter()
            .filter(|(s, t)| self.filter.matches(s, t))
            .collect();
        // Every column must have a mapping before anything is created.
        let types = catalog::load_types(client).await?;
        let mut tables = Vec::with_capacity(captured.len());
        for (s, t) in &captured {
            tables.push(Arc::new(
                catalog::describe_table(client, &self.spec.topic_prefix, s, t, &types).await?,
            ));
        }
        if existing.is_none() {
            let only = (!self.spec.table_include_list.is_empty()).then_some(captured.as_slice());
            catalog::create_publication(client, &self.publication, only).await?;
        }
        tables.sort_by_key(|t| t.qualified());
        self.types = types;
        self.tables = tables;
        Ok(())
    }

    /// Creates the slot, exporting its start snapshot into a transaction of the snapshot
    /// connection when `export` is set; returns the slot's start.
    async fn create_slot(&mut self, export: bool) -> Result<u64, CdcError> {
        let mut session = ReplicationClient::connect_gated(self.replication_config(0))
            .await
            .map_err(|e| CdcError::Unavailable(format!("replication connection: {e}")))?;
        let sql = format!(
            "CREATE_REPLICATION_SLOT {} LOGICAL pgoutput{}",
            catalog::quote_ident(&self.slot),
            if export {
                " (SNAPSHOT 'export')"
            } else {
                " (SNAPSHOT 'nothing')"
            }
        );
        let rows = session.simple_query(&sql).await.map_err(|e| {
            CdcError::Unavailable(format!(
                "cannot create replication slot {:?}: {e}",
                self.slot
            ))
        })?;
        let text = |i: usize| -> Option<String> {
            rows.first()?
                .get(i)?
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
        };
        let start = text(1)
            .and_then(|l| catalog::parse_lsn(&l))
            .ok_or_else(|| {
                CdcError::Fatal("CREATE_REPLICATION_SLOT returned no consistent point".into())
            })?;
        if export {
            let name = text(2).ok_or_else(|| {
                CdcError::Fatal("CREATE_REPLICATION_SLOT exported no snapshot".into())
            })?;
            self.client()?
                .batch_execute(&format!(
                    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
                    catalog::quote_literal(&name)
                ))
                .await
                .map_err(|e| CdcError::query("importing the slot's snapshot", &e))?;
        }
        session.abort();
        tracing::info!(slot = %self.slot, start = %catalog::format_lsn(start), "created the replication slot");
        Ok(start)
    }

    async fn snapshot_poll(
        &mut self,
        mut progress: SnapshotProgress,
    ) -> Result<Vec<SourceRecord>, CdcError> {
        let limit = self.spec.snapshot_fetch_size();
        let batch = usize::try_from(self.spec.max_batch_size()).unwrap_or(2048);
        loop {
            let Some(table) = self.tables.get(progress.table).cloned() else {
                if let Some(c) = &self.client {
                    c.batch_execute("COMMIT")
                        .await
                        .map_err(|e| CdcError::query("ending the snapshot", &e))?;
                }
                tracing::info!(tables = self.tables.len(), "snapshot finished");
                self.phase = if self.spec.snapshot_mode == SnapshotMode::InitialOnly {
                    Phase::Finished
                } else {
                    Phase::Streaming(None)
                };
                return Ok(Vec::new());
            };
            if progress.rows.is_empty() {
                let rows =
                    snapshot::read_page(self.client()?, &table, progress.after.as_deref(), limit)
                        .await?;
                progress.last_page = rows.len() < usize::try_from(limit).unwrap_or(usize::MAX);
                progress.rows = rows.into();
            }
            let last_table = progress.table + 1 == self.tables.len();
            let now = jiff::Timestamp::now().as_millisecond();
            let mut out = Vec::with_capacity(batch.min(progress.rows.len()));
            while out.len() < batch {
                let Some(row) = progress.rows.pop_front() else {
                    break;
                };
                let value = table
                    .row(&row.cells, false)
                    .map_err(|e| CdcError::Fatal(e.to_string()))?;
                let last = last_table && progress.last_page && progress.rows.is_empty();
                let source = SourceInfo {
                    server: self.spec.topic_prefix.clone(),
                    db: self.spec.database.clone(),
                    ts_ms: now,
                    snapshot: if last { "last" } else { "true" },
                    tx_id: None,
                    lsn: Some(self.start_lsn),
                    sequence: None,
                };
                let offset = BTreeMap::from([
                    ("lsn".to_string(), self.start_lsn.to_string()),
                    ("snapshot_table".to_string(), table.qualified()),
                    (
                        "snapshot_after".to_string(),
                        serde_json::to_string(&row.position).unwrap_or_default(),
                    ),
                ]);
                progress.after = Some(row.position);
                out.push(SourceRecord {
                    partition: self.partition.clone(),
                    offset,
                    record: table.event(Op::Read, None, Some(value), &source, now),
                });
            }
            if progress.rows.is_empty() && progress.last_page {
                progress = SnapshotProgress::at(progress.table + 1, None);
            }
            if !out.is_empty() {
                self.last_emitted = self.start_lsn;
                self.phase = Phase::Snapshot(progress);
                return Ok(out);
            }
        }
    }

    /// A table from a `Relation` message, `None` when it is not captured.
    async fn relation_table(&mut self, rel: &Relation) -> Result<Option<Arc<Table>>, CdcError> {
        if !self.filter.matches(&rel.schema, &rel.table) {
            return Ok(None);
        }
        if rel
            .columns
            .iter()
            .any(|c| !self.types.contains_key(&c.type_oid))
        {
            self.types = catalog::load_types(self.client()?).await?;
        }
        let described = catalog::describe_table(
            self.client()?,
            &self.spec.topic_prefix,
            &rel.schema,
            &rel.table,
            &self.types,
        )
        .await;
        let (nullable, key_names): (HashMap<String, bool>, Vec<String>) = match &described {
            Ok(t) => (
                t.columns
                    .iter()
                    .map(|c| (c.name.clone(), c.optional))
                    .collect(),
                t.key_columns
                    .iter()
                    .filter_map(|i| t.columns.get(*i))
                    .map(|c| c.name.clone())
                    .collect(),
            ),
            // The table may be gone by now; its key columns are the stream's.
            Err(_) => (
                HashMap::new(),
                rel.columns
                    .iter()
                    .filter(|c| c.key)
                    .map(|c| c.name.clone())
                    .collect(),
            ),
        };
        let lookup = |oid: u32| self.types.get(&oid).cloned();
        let mut columns = Vec::with_capacity(rel.columns.len());
        for c in &rel.columns {
            let kind = kind_of(c.type_oid, c.type_modifier, &lookup)
                .map_err(|ty| catalog::unmappable(&rel.schema, &rel.table, &c.name, &ty))?;
            columns.push(Column {
                name: c.name.clone(),
                kind,
                optional: nullable.get(&c.name).copied().unwrap_or(true),
            });
        }
        let keys = key_names
            .iter()
            .filter_map(|k| columns.iter().position(|c| c.name == *k))
            .collect();
        Ok(Some(Arc::new(Table::new(
            &self.spec.topic_prefix,
            &rel.schema,
            &rel.table,
            columns,
            keys,
        ))))
    }

    async fn stream_poll(
        &mut self,
        mut stream: Box<Stream>,
    ) -> Result<Vec<SourceRecord>, CdcError> {
        let max = usize::try_from(self.spec.max_batch_size()).unwrap_or(2048);
        let mut out: Vec<SourceRecord> = Vec::new();
        let mut wait = IDLE_WAIT;
        let result = loop {
            if out.len() >= max {
                break Ok(());
            }
            let event = match tokio::time::timeout(wait, stream.client.recv()).await {
                Err(_) => break Ok(()),
                Ok(Ok(Some(e))) => e,
                Ok(Ok(None)) => {
                    break Err(CdcError::Unavailable("the replication stream ended".into()))
                }
                Ok(Err(e)) => {
                    break Err(CdcError::Unavailable(format!(
                        "replication stream of slot {:?}: {e}",
                        self.slot
                    )))
                }
            };
            wait = Duration::ZERO;
            if let Err(e) = self.handle(&mut stream, event, &mut out).await {
                break Err(e);
            }
        };
        if let Some(last) = out.last() {
            if let Some(handed) = Handed::of_offset(&last.offset) {
                self.last_emitted = handed.end;
                self.handed = handed;
            }
        }
        match result {
            Ok(()) => {
                self.maybe_heartbeat(&stream);
                self.phase = Phase::Streaming(Some(stream));
                Ok(out)
            }
            Err(e) if out.is_empty() => {
                stream.client.abort();
                self.phase = Phase::Streaming(None);
                Err(e)
            }
            Err(e) => {
                // Hand over what was read; the next poll reconnects and reports nothing lost:
                // the stream resumes from the last stored position.
                tracing::warn!(error = %e, "replication stream failed; reconnecting");
                stream.client.abort();
                self.phase = Phase::Streaming(None);
                Ok(out)
            }
        }
    }

    fn maybe_heartbeat(&mut self, stream: &Stream) {
        if self.last_heartbeat.elapsed() < self.heartbeat() {
            return;
        }
        let Some(position) = stream
            .positions
            .heartbeat_position(self.last_stored, self.last_emitted)
        else {
            return;
        };
        tracing::debug!(position = %catalog::format_lsn(position), "heartbeat: confirming the server's position");
        if position > 0 {
            stream.client.update_applied_lsn(Lsn::from_u64(position));
        }
        self.last_heartbeat = Instant::now();
    }

    async fn handle(
        &mut self,
        stream: &mut Stream,
        event: ReplicationEvent,
        out: &mut Vec<SourceRecord>,
    ) -> Result<(), CdcError> {
        match event {
            ReplicationEvent::Begin {
                xid,
                commit_time_micros,
                final_lsn,
            } => {
                stream.positions.begin(
                    Transaction {
                        xid,
                        commit_ms: commit_time_micros / 1000 + PG_EPOCH_OFFSET_MS,
                    },
                    final_lsn.as_u64(),
                );
            }
            ReplicationEvent::Commit { end_lsn, .. } => {
                stream.positions.commit(end_lsn.as_u64(), out);
            }
            ReplicationEvent::KeepAlive { wal_end, .. } => {
                stream.positions.keepalive(wal_end.as_u64());
            }
            ReplicationEvent::XLogData {
                data, wal_start, ..
            } => {
                let message = replication::decode(&data).map_err(|e| {
                    CdcError::Fatal(format!(
                        "at LSN {}: {e}",
                        catalog::format_lsn(wal_start.as_u64())
                    ))
                })?;
                self.change(stream, message, wal_start.as_u64(), out)
                    .await?;
            }
            ReplicationEvent::Message { .. } | ReplicationEvent::StoppedAt { .. } => {}
        }
        Ok(())
    }

    async fn change(
        &mut self,
        stream: &mut Stream,
        message: Message,
        lsn: u64,
        out: &mut Vec<SourceRecord>,
    ) -> Result<(), CdcError> {
        let (relation, op, old, key_only, new) = match message {
            Message::Relation(rel) => {
                let table = self.relation_table(&rel).await?;
                stream.relations.insert(rel.id, table);
                return Ok(());
            }
            Message::Insert { relation, new } => (relation, Op::Create, None, false, Some(new)),
            Message::Update {
                relation,
                old,
                key_only,
                new,
            } => (relation, Op::Update, old, key_only, Some(new)),
            Message::Delete {
                relation,
                old,
                key_only,
            } => (relation, Op::Delete, Some(old), key_only, None),
            Message::Truncate { relations } => {
                tracing::info!(
                    tables = relations.len(),
                    "TRUNCATE is not captured (as Debezium's default truncate.handling.mode=skip)"
                );
                return Ok(());
            }
            Message::Other(_) => return Ok(()),
        };
        let Some(table) = stream.relations.get(&relation).cloned().flatten() else {
            return Ok(());
        };
        let row = |cells: &[Cell], key_only: bool| {
            table
                .row(cells, key_only)
                .map_err(|e| CdcError::Fatal(format!("at LSN {}: {e}", catalog::format_lsn(lsn))))
        };
        let before = old.as_deref().map(|c| row(c, key_only)).transpose()?;
        let after = new.as_deref().map(|c| row(c, false)).transpose()?;
        let (xid, commit_ms) = stream
            .positions
            .transaction()
            .map_or((None, 0), |t| (Some(i64::from(t.xid)), t.commit_ms));
        let source = SourceInfo {
            server: self.spec.topic_prefix.clone(),
            db: self.spec.database.clone(),
            ts_ms: commit_ms,
            snapshot: "false",
            tx_id: xid,
            lsn: Some(lsn),
            sequence: Some(format!("[\"{}\",\"{lsn}\"]", stream.positions.last_end())),
        };
        let now = jiff::Timestamp::now().as_millisecond();
        let mut records = Vec::with_capacity(3);
        match op {
            Op::Update if key_only && before.is_some() => {
                // The primary key changed: Debezium's delete, tombstone, create.
                let before = before.unwrap_or(Value::Null);
                records.push(table.event(Op::Delete, Some(before.clone()), None, &source, now));
                if self.spec.tombstones_on_delete {
                    records.push(table.tombstone(&before));
                }
                records.push(table.event(Op::Create, None, after, &source, now));
            }
            Op::Update => {
                // Only REPLICA IDENTITY FULL sends the whole old row.
                records.push(table.event(Op::Update, before, after, &source, now));
            }
            Op::Delete => {
                let before = before.unwrap_or(Value::Null);
                records.push(table.event(Op::Delete, Some(before.clone()), None, &source, now));
                if self.spec.tombstones_on_delete {
                    records.push(table.tombstone(&before));
                }
            }
            Op::Create | Op::Read => records.push(table.event(op, None, after, &source, now)),
        }
        for record in records {
            stream.positions.change(record, out);
        }
        Ok(())
    }

    async fn update_backlog(&mut self) {
        if self
            .last_backlog_check
            .is_some_and(|t| t.elapsed() < self.heartbeat().min(Duration::from_secs(5)))
        {
            return;
        }
        self.last_backlog_check = Some(Instant::now());
        if let Some(client) = &self.client {
            let measured = catalog::slot_wal(client, &self.slot).await;
            if let Ok(Some(wal)) = &measured {
                self.backlog = wal.unconfirmed;
            }
            self.note_slot(measured);
        }
    }

    /// Records a measurement of the slot (or why it failed, keeping the last figure).
    fn note_slot(&mut self, measured: Result<Option<catalog::SlotWal>, CdcError>) {
        let last = self.slot_report.take();
        self.slot_report = Some(match measured {
            Ok(wal) => ReplicationSlotReport {
                slot: self.slot.clone(),
                retained_wal_bytes: wal.and_then(|w| w.retained),
                measured_at: Some(jiff::Timestamp::now().to_string()),
                measurement_error: wal
                    .is_none()
                    .then(|| format!("the slot {:?} does not exist", self.slot)),
            },
            Err(e) => ReplicationSlotReport {
                measurement_error: Some(e.to_string()),
                ..last.unwrap_or_else(|| ReplicationSlotReport {
                    slot: self.slot.clone(),
                    ..ReplicationSlotReport::default()
                })
            },
        });
    }
}

#[async_trait]
impl SourceTask for PostgresCdcTask {
    fn partitions(&self) -> Vec<SourcePartition> {
        vec![self.partition.clone()]
    }

    async fn start(
        &mut self,
        offsets: BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), PluginError> {
        self.client = Some(self.connect().await?);
        catalog::check_replication_role(self.client()?, self.spec.user()).await?;
        self.prepare_tables().await?;
        let stored = offsets.get(&self.partition);
        let slot = catalog::slot_position(self.client()?, &self.slot, &self.spec.database).await?;
        let stored_lsn = stored
            .and_then(|o| o.get("lsn"))
            .and_then(|l| l.parse::<u64>().ok());
        let snapshot_wanted = self.spec.snapshot_mode != SnapshotMode::Never;
        match (stored_lsn, slot) {
            (Some(lsn), Some(_)) => {
                self.start_lsn = lsn;
                self.last_stored = lsn;
                self.last_emitted = lsn;
                self.handed = stored.and_then(Handed::of_offset).unwrap_or_default();
                let resume = stored.and_then(|o| {
                    let table = o.get("snapshot_table")?;
                    let after = o
                        .get("snapshot_after")
                        .and_then(|a| serde_json::from_str::<Vec<String>>(a).ok());
                    Some((table.clone(), after))
                });
                match resume {
                    Some((table, after)) if snapshot_wanted => {
                        let index = self
                            .tables
                            .iter()
                            .position(|t| t.qualified() >= table)
                            .unwrap_or(self.tables.len());
                        let same = self
                            .tables
                            .get(index)
                            .is_some_and(|t| t.qualified() == table);
                        tracing::info!(table, "resuming the snapshot");
                        self.client()?
                            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                            .await
                            .map_err(|e| CdcError::query("starting the snapshot", &e))?;
                        self.phase = Phase::Snapshot(SnapshotProgress::at(
                            index,
                            if same { after } else { None },
                        ));
                    }
                    _ => {
                        tracing::info!(lsn = %catalog::format_lsn(lsn), "resuming the change stream");
                        self.phase = Phase::Streaming(None);
                    }
                }
            }
            (stored, slot) => {
                if stored.is_some() {
                    tracing::warn!(slot = %self.slot, "the stored offset's replication slot is gone: changes made since may be missing; creating it again");
                }
                let start = match slot {
                    Some(position) => {
                        if snapshot_wanted {
                            self.client()?
                                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                                .await
                                .map_err(|e| CdcError::query("starting the snapshot", &e))?;
                        }
                        position.unwrap_or(0)
                    }
                    None => self.create_slot(snapshot_wanted).await?,
                };
                self.start_lsn = start;
                self.last_stored = start;
                self.last_emitted = start;
                self.phase = if snapshot_wanted {
                    tracing::info!(tables = self.tables.len(), "starting the snapshot");
                    Phase::Snapshot(SnapshotProgress::at(0, None))
                } else {
                    Phase::Streaming(None)
                };
            }
        }
        tracing::info!(
            slot = %self.slot,
            publication = %self.publication,
            tables = ?self.tables.iter().map(|t| t.qualified()).collect::<Vec<_>>(),
            "postgresCdc source ready"
        );
        Ok(())
    }

    async fn poll(&mut self) -> Result<SourcePoll, PluginError> {
        self.update_backlog().await;
        // Each arm leaves the phase to poll next, also when it fails.
        let phase = std::mem::replace(&mut self.phase, Phase::Finished);
        let records = match phase {
            Phase::Finished => return Ok(SourcePoll::Finished),
            Phase::Snapshot(progress) => {
                // Rows read and not handed over are read again.
                let retry = SnapshotProgress::at(progress.table, progress.after.clone());
                match self.snapshot_poll(progress).await {
                    Ok(records) => records,
                    Err(e) => {
                        self.phase = Phase::Snapshot(retry);
                        return Err(e.into());
                    }
                }
            }
            Phase::Streaming(None) => {
                self.phase = Phase::Streaming(None);
                let start = self.last_stored.max(self.start_lsn);
                let client = ReplicationClient::connect(self.replication_config(start))
                    .await
                    .map_err(|e| CdcError::Unavailable(format!("replication connection: {e}")))?;
                tracing::info!(slot = %self.slot, from = %catalog::format_lsn(start), "streaming changes");
                let stream = Box::new(Stream {
                    client,
                    relations: HashMap::new(),
                    positions: Sequencer::new(self.partition.clone(), start, self.handed),
                });
                self.stream_poll(stream).await?
            }
            Phase::Streaming(Some(stream)) => self.stream_poll(stream).await?,
        };
        Ok(if records.is_empty() {
            if matches!(self.phase, Phase::Finished) {
                SourcePoll::Finished
            } else {
                SourcePoll::Idle
            }
        } else {
            SourcePoll::Records(records)
        })
    }

    async fn committed(
        &mut self,
        offsets: &BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), PluginError> {
        let Some(lsn) = offsets
            .get(&self.partition)
            .and_then(|o| o.get("lsn"))
            .and_then(|l| l.parse::<u64>().ok())
        else {
            return Ok(());
        };
        self.last_stored = self.last_stored.max(lsn);
        tracing::debug!(lsn = %catalog::format_lsn(self.last_stored), "offsets stored; confirming");
        if let Phase::Streaming(Some(stream)) = &self.phase {
            stream
                .client
                .update_applied_lsn(Lsn::from_u64(self.last_stored));
        }
        Ok(())
    }

    fn backlog_bytes(&self) -> Option<u64> {
        self.backlog
    }

    fn replication_slot(&self) -> Option<ReplicationSlotReport> {
        self.slot_report.clone()
    }

    async fn measure_replication_slot(&mut self) -> Option<ReplicationSlotReport> {
        // The task's own connection may be what failed: measure over a new one, in bounded
        // time (the task is stopping).
        let measured = match tokio::time::timeout(MEASURE_TIMEOUT, async {
            let client = self.connect().await?;
            catalog::slot_wal(&client, &self.slot).await
        })
        .await
        {
            Ok(measured) => measured,
            Err(_) => Err(CdcError::Unavailable(format!(
                "PostgreSQL did not answer within {} s",
                MEASURE_TIMEOUT.as_secs()
            ))),
        };
        self.note_slot(measured);
        self.slot_report.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PostgresCdcSource {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn filters_match_whole_names() {
        let f = TableFilter::new(&spec(
            "{host: h, database: d, topicPrefix: p, tableIncludeList: ['public\\.orders', 'inv\\..*']}",
        ));
        assert!(f.matches("public", "orders"));
        assert!(!f.matches("public", "orders_archive"));
        assert!(f.matches("inv", "items"));
        let tables = vec![("public".to_string(), "orders".to_string())];
        assert_eq!(f.unmatched_include(&tables), Some(1));
        let f = TableFilter::new(&spec(
            "{host: h, database: d, topicPrefix: p, tableExcludeList: ['.*\\.audit']}",
        ));
        assert!(f.matches("public", "orders") && !f.matches("public", "audit"));
        assert_eq!(f.unmatched_include(&tables), None);
    }

    #[test]
    fn validation_names_bad_patterns() {
        let errors = validate(&spec(
            "{host: h, database: d, topicPrefix: p, tableIncludeList: ['(']}",
        ));
        assert_eq!(errors.len(), 1);
        assert_eq!(
            errors[0].field,
            "spec.source.postgresCdc.tableIncludeList[0]"
        );
        let e: PluginError = CdcError::config("slotName", "taken".into()).into();
        match e {
            PluginError::Config(c) => assert_eq!(c.field, "spec.source.postgresCdc.slotName"),
            other => panic!("{other:?}"),
        }
    }
}
