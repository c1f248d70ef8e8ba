//! The source and sink plugins compiled into the runner, behind two small traits.
//!
//! A sink plugin receives batches of records and returns once they are durable; the
//! pipeline then commits their Kafka offsets. A source plugin returns batches of records,
//! each with its source partition and offset; the pipeline stores an offset only after Kafka
//! acknowledged the record and every record before it.

pub mod database_sink;
pub mod datagen;
pub mod discard;
pub mod file_sink;
pub mod file_source;
pub mod postgres_cdc;

use std::collections::BTreeMap;

use async_trait::async_trait;
use ferry_crds::contract::ReplicationSlotReport;
use ferry_crds::plugins::{SinkPlugin, SourcePlugin};

use crate::config_error::ConfigError;
use crate::offset_tracker::TopicPartition;
use crate::record::Record;

/// A source partition (e.g. `{"path": "/data/in.txt"}`): a stream of the external system
/// with its own offsets. String maps, as in `spec.offsets.reset.to` for sources.
pub type SourcePartition = BTreeMap<String, String>;
/// A position in a source partition (e.g. `{"position": "1234"}`).
pub type SourceOffset = BTreeMap<String, String>;

/// One record read by a source plugin, with where it came from.
#[derive(Debug)]
pub struct SourceRecord {
    /// The stream the record belongs to.
    pub partition: SourcePartition,
    /// The position after this record: storing it means the record is done.
    pub offset: SourceOffset,
    /// The record (topic set; partition optional).
    pub record: Record,
}

/// What a poll of a source plugin returned.
#[derive(Debug)]
pub enum SourcePoll {
    /// Records, in order.
    Records(Vec<SourceRecord>),
    /// Nothing right now; poll again later.
    Idle,
    /// The source has no more records (a bounded source); the task stops once everything
    /// is acknowledged.
    Finished,
}

/// A failure of a plugin.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The external system is unavailable or overloaded; the same call may succeed later.
    #[error("{0} (retriable)")]
    Retriable(String),
    /// The plugin cannot go on; the task fails and is restarted with backoff.
    #[error("{0}")]
    Fatal(String),
    /// The configuration does not fit the external system (an unknown table, missing
    /// rights, a column type without mapping): the task stops with a configuration error
    /// and is not restarted until the spec changes.
    #[error("{0}")]
    Config(ConfigError),
    /// One record of the batch cannot be written (it does not fit the external system);
    /// nothing of the batch was written. The pipeline handles it like a record that failed
    /// in a transform: it fails the task naming the record, or skips it (and sends it to the
    /// dead letter queue), then writes the rest of the batch again.
    #[error("{message}")]
    Record {
        /// Position of the record in the batch given to [`SinkTask::write`].
        index: usize,
        /// What is wrong, naming the field or column.
        message: String,
    },
}

impl PluginError {
    /// Whether retrying may help.
    pub fn is_retriable(&self) -> bool {
        matches!(self, PluginError::Retriable(_))
    }
}

/// Reads records from an external system.
#[async_trait]
pub trait SourceTask: Send {
    /// The partitions this task reads; their stored offsets are passed to [`Self::start`].
    fn partitions(&self) -> Vec<SourcePartition>;
    /// Starts reading after the given stored offsets (absent: from the beginning).
    async fn start(
        &mut self,
        offsets: BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), PluginError>;
    /// Returns the next records.
    async fn poll(&mut self) -> Result<SourcePoll, PluginError>;

    /// Called after `offsets` (the latest offset of each partition) were stored durably,
    /// i.e. Kafka acknowledged every record up to them. A plugin whose external system
    /// keeps the position itself (a replication slot) confirms it there. Default: nothing.
    async fn committed(
        &mut self,
        _offsets: &BTreeMap<SourcePartition, SourceOffset>,
    ) -> Result<(), PluginError> {
        Ok(())
    }

    /// Bytes of change log the external system keeps for this task and the task has not
    /// confirmed (`ferry_task_source_backlog_bytes`), when the plugin knows it.
    fn backlog_bytes(&self) -> Option<u64> {
        None
    }

    /// What the task last measured of the replication slot it reads (`postgresCdc`), for
    /// `/progress` and the metrics. Default: none.
    fn replication_slot(&self) -> Option<ReplicationSlotReport> {
        None
    }

    /// Measures the replication slot again, now: called when the task is about to stop on
    /// an error, so that the termination message says how much WAL the slot retains while
    /// nothing reads it. Falls back to the last measurement, with why measuring failed.
    async fn measure_replication_slot(&mut self) -> Option<ReplicationSlotReport> {
        None
    }
}

/// Writes records to an external system.
#[async_trait]
pub trait SinkTask: Send {
    /// Writes `records` and returns once they are durable.
    async fn write(&mut self, records: &[Record]) -> Result<(), PluginError>;

    /// Writes `records`, read at the Kafka positions `origins` (one per record, in order),
    /// and returns once they are durable. An exactly-once plugin stores the positions with
    /// the records in one transaction of its external system and leaves out the records it
    /// stored before; the others ignore them (the default).
    async fn write_from(
        &mut self,
        records: &[Record],
        origins: &[(TopicPartition, i64)],
    ) -> Result<(), PluginError> {
        let _ = origins;
        self.write(records).await
    }

    /// Whether the plugin looks at record headers. A plugin that does not (and says so)
    /// spares the task decoding every record's headers when no transform needs them either.
    fn reads_headers(&self) -> bool {
        true
    }
}

/// Which task this is, for plugins that split work between tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskShare {
    /// Task index, `0..count`.
    pub index: u32,
    /// Task count.
    pub count: u32,
}

/// Checks a source plugin block; field paths start at `spec.source.<plugin>`.
pub fn validate_source(plugin: &SourcePlugin, share: TaskShare) -> Vec<ConfigError> {
    let mut errors = match plugin {
        SourcePlugin::File(f) => file_source::validate(f),
        SourcePlugin::Datagen(d) => datagen::validate(d),
        SourcePlugin::PostgresCdc(p) => postgres_cdc::validate(p),
    };
    if let Some(max) = plugin.max_tasks() {
        if i64::from(share.count) > i64::from(max) {
            errors.push(ConfigError {
                field: "spec.tasks".into(),
                message: format!(
                    "the {} source runs at most {max} task(s), got {}",
                    plugin.name(),
                    share.count
                ),
            });
        }
    }
    errors
}

/// Checks a sink plugin block; field paths start at `spec.sink.<plugin>`.
pub fn validate_sink(plugin: &SinkPlugin, share: TaskShare) -> Vec<ConfigError> {
    let mut errors = match plugin {
        SinkPlugin::File(f) => file_sink::validate(f),
        SinkPlugin::Discard(_) => Vec::new(),
        SinkPlugin::Postgres(d) => database_sink::validate(d, "postgres"),
        SinkPlugin::Mysql(d) => database_sink::validate(d, "mysql"),
    };
    if let Some(max) = plugin.max_tasks() {
        if i64::from(share.count) > i64::from(max) {
            errors.push(ConfigError {
                field: "spec.tasks".into(),
                message: format!(
                    "the {} sink runs at most {max} task(s), got {}",
                    plugin.name(),
                    share.count
                ),
            });
        }
    }
    errors
}

/// Builds the source plugin of a (validated) spec of connector `connector` in `namespace`.
pub fn build_source(
    plugin: &SourcePlugin,
    share: TaskShare,
    namespace: &str,
    connector: &str,
) -> Box<dyn SourceTask> {
    match plugin {
        SourcePlugin::File(f) => Box::new(file_source::FileSourceTask::new(f)),
        SourcePlugin::Datagen(d) => Box::new(datagen::DatagenTask::new(d, share)),
        SourcePlugin::PostgresCdc(p) => {
            Box::new(postgres_cdc::PostgresCdcTask::new(p, namespace, connector))
        }
    }
}

/// Builds the sink plugin of a (validated) spec; opening its resources may fail.
pub fn build_sink(
    plugin: &SinkPlugin,
    exactly_once: Option<database_sink::positions::OffsetsScope>,
) -> Result<Box<dyn SinkTask>, PluginError> {
    Ok(match plugin {
        SinkPlugin::File(f) => Box::new(file_sink::FileSinkTask::open(f)?),
        SinkPlugin::Discard(_) => Box::new(discard::DiscardSinkTask),
        SinkPlugin::Postgres(d) => Box::new(database_sink::DatabaseSinkTask::new(
            database_sink::Dialect::Postgres,
            d,
            exactly_once,
        )?),
        SinkPlugin::Mysql(d) => Box::new(database_sink::DatabaseSinkTask::new(
            database_sink::Dialect::Mysql,
            d,
            None,
        )?),
    })
}

/// `path` must be absolute; `field` names it in the error.
pub(crate) fn check_absolute_path(path: &str, field: &str) -> Option<ConfigError> {
    if path.is_empty() {
        Some(ConfigError {
            field: field.into(),
            message: "must be set to an absolute file path".into(),
        })
    } else if !std::path::Path::new(path).is_absolute() {
        Some(ConfigError {
            field: field.into(),
            message: format!("must be an absolute path, got {path:?}"),
        })
    } else {
        None
    }
}
