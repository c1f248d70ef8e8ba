//! Source and sink plugin blocks: the external system a connector reads or writes.
//!
//! A source (or sink) block holds exactly one plugin block, named after the plugin, e.g.
//! `source: {file: {path: /data/in.txt, topic: lines}}`.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub mod database_sink;
pub mod postgres_cdc;

pub use database_sink::DatabaseSink;
pub use postgres_cdc::PostgresCdcSource;

/// Names of the source plugin blocks, as they appear under `spec.source`.
pub const SOURCE_PLUGINS: &[&str] = &["file", "datagen", "postgresCdc"];
/// Names of the sink plugin blocks, as they appear under `spec.sink`.
pub const SINK_PLUGINS: &[&str] = &["file", "discard", "postgres", "mysql"];

/// The external system a source connector reads (exactly one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SourcePlugin {
    /// Lines of a local file, one record per line (like Kafka Connect's FileStreamSource),
    /// resumed from the byte position after the last line Kafka acknowledged.
    File(FileSource),
    /// Generated records, deterministic for a given seed, for demos and benchmarks.
    Datagen(DatagenSource),
    /// Row changes of PostgreSQL tables through logical replication (`pgoutput`), as
    /// Debezium change events, one topic per table. At most one task (changes stay in commit
    /// order).
    PostgresCdc(PostgresCdcSource),
}

impl SourcePlugin {
    /// The plugin's name, as in [`SOURCE_PLUGINS`].
    pub fn name(&self) -> &'static str {
        match self {
            SourcePlugin::File(_) => "file",
            SourcePlugin::Datagen(_) => "datagen",
            SourcePlugin::PostgresCdc(_) => "postgresCdc",
        }
    }

    /// The most tasks this plugin can use; the operator runs no more than this many.
    /// `None`: no limit.
    pub fn max_tasks(&self) -> Option<i32> {
        match self {
            SourcePlugin::File(_) => Some(1),
            SourcePlugin::Datagen(_) => None,
            SourcePlugin::PostgresCdc(_) => Some(1),
        }
    }
}

/// The external system a sink connector writes (exactly one).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SinkPlugin {
    /// Appends one line per record to a local file (like Kafka Connect's FileStreamSink),
    /// flushed to disk before offsets are committed.
    File(FileSink),
    /// Acknowledges and drops every record: a null sink, for benchmarks and tests.
    Discard(DiscardSink),
    /// Writes records as rows of PostgreSQL tables: insert, upsert or update, deletes on
    /// tombstones, tables created and extended from the records' schemas.
    Postgres(DatabaseSink),
    /// Writes records as rows of MySQL or MariaDB tables, like `postgres`.
    Mysql(DatabaseSink),
}

impl SinkPlugin {
    /// The plugin's name, as in [`SINK_PLUGINS`].
    pub fn name(&self) -> &'static str {
        match self {
            SinkPlugin::File(_) => "file",
            SinkPlugin::Discard(_) => "discard",
            SinkPlugin::Postgres(_) => "postgres",
            SinkPlugin::Mysql(_) => "mysql",
        }
    }

    /// Whether the sink can deliver exactly once: it stores the Kafka positions it read in
    /// the same transaction as its writes (`postgres`).
    pub fn delivers_exactly_once(&self) -> bool {
        matches!(self, SinkPlugin::Postgres(_))
    }

    /// The most tasks this plugin can use. `None`: no limit (sinks scale with partitions).
    pub fn max_tasks(&self) -> Option<i32> {
        match self {
            SinkPlugin::File(_) => Some(1),
            SinkPlugin::Discard(_) => None,
            SinkPlugin::Postgres(_) | SinkPlugin::Mysql(_) => None,
        }
    }
}

/// The `file` source: reads a file line by line. At most one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSource {
    /// Absolute path of the file to read. Lines appended later are picked up; the source
    /// offset is the byte position after the last acknowledged line.
    pub path: String,
    /// Topic the lines are written to.
    pub topic: String,
    /// Most lines read per batch. Default 2000 (Kafka Connect's `batch.size`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
    /// Kafka partition every line is written to. Default: chosen by the producer's
    /// partitioner (lines have no key). Set it to keep the file's order in Kafka when the
    /// topic has several partitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<i32>,
    /// How often the end of the file is checked for new lines, in milliseconds. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_interval_ms: Option<u64>,
}

/// The `datagen` source: deterministic records `{"seq": n, "key": "key-<k>", "payload": "..."}`
/// keyed by `key-<k>`. With several tasks, task `i` of `n` generates the sequence numbers
/// `s` with `s % n == i`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatagenSource {
    /// Topic the records are written to.
    pub topic: String,
    /// Total records to generate across all tasks; the task stops (exit code 0) when its
    /// share is written and acknowledged. Default: unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// Records per second per task. Default: as fast as Kafka accepts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<u32>,
    /// Seed of the pseudo-random payload and key choice; the same seed gives the same records.
    /// Default 0.
    #[serde(default)]
    pub seed: u64,
    /// Number of distinct keys. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keys: Option<u64>,
    /// Length of the `payload` string, in bytes. Default 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u32>,
}

/// The `file` sink: appends each record's value as one line (strings as they are, other
/// values as JSON, null values as an empty line). At most one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileSink {
    /// Absolute path of the file to append to; created when missing.
    pub path: String,
}

/// The `discard` sink (a null sink): accepts and drops every record. Takes no settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DiscardSink {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plugin_blocks_parse_by_name() {
        let s: SourcePlugin =
            serde_json::from_value(json!({"file": {"path": "/tmp/in", "topic": "t"}})).unwrap();
        assert_eq!(s.name(), "file");
        assert_eq!(s.max_tasks(), Some(1));
        let s: SourcePlugin =
            serde_json::from_value(json!({"datagen": {"topic": "t", "records": 10, "seed": 3}}))
                .unwrap();
        assert_eq!(s.name(), "datagen");
        assert_eq!(s.max_tasks(), None);
        let k: SinkPlugin = serde_json::from_value(json!({"discard": {}})).unwrap();
        assert_eq!(k, SinkPlugin::Discard(DiscardSink {}));
        assert!(
            serde_json::from_value::<SinkPlugin>(json!({"file": {"path": "/x", "pth": "/y"}}))
                .is_err()
        );
    }

    #[test]
    fn names_match_the_serde_tags() {
        for name in SOURCE_PLUGINS {
            let e = serde_json::from_value::<SourcePlugin>(json!({ *name: {} })).unwrap_err();
            assert!(!e.to_string().contains("unknown variant"), "{name}: {e}");
        }
        for name in SINK_PLUGINS {
            let r = serde_json::from_value::<SinkPlugin>(json!({ *name: {} }));
            assert!(
                r.as_ref()
                    .err()
                    .is_none_or(|e| !e.to_string().contains("unknown variant")),
                "{name}: {r:?}"
            );
        }
        let e = serde_json::from_value::<SinkPlugin>(json!({"s4": {}})).unwrap_err();
        assert!(e.to_string().contains("unknown variant"));
    }
}
