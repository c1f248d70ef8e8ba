//! The `postgres` and `mysql` sink blocks: Kafka records become table rows, in the style of
//! Kafka Connect's JDBC sinks (Confluent's and Debezium's), with the same setting names in
//! camelCase.
//!
//! Both plugins share one block, [`DatabaseSink`]; only the SQL dialect differs.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connector::SecretValue;

/// Default `tableNameFormat`: the table is named after the topic.
pub const DEFAULT_TABLE_NAME_FORMAT: &str = "${topic}";
/// Default `batchSize`: most rows written in one statement.
pub const DEFAULT_BATCH_SIZE: u32 = 3000;
/// Largest accepted `batchSize`.
pub const MAX_BATCH_SIZE: u32 = 100_000;
/// Default port of the `postgres` sink.
pub const DEFAULT_POSTGRES_PORT: u16 = 5432;
/// Default port of the `mysql` sink.
pub const DEFAULT_MYSQL_PORT: u16 = 3306;

/// The `postgres` and `mysql` sinks: each record becomes a row of a table (inserted,
/// upserted or updated), a tombstone can delete its row, and tables can be created and
/// extended from the records' schemas. Debezium change events (`before`/`after`/`op`) are
/// accepted as they are: creates, updates and snapshot reads write `after`, deletes delete by
/// key.
///
/// Connect with `url` (a Secret holding the whole connection URL), or with `host`, `port`,
/// `database`, `user` and `password` (a Secret). Rows of a batch are written in one
/// transaction; Kafka offsets are committed only after it commits (at least once: a row may
/// be written twice, so use `upsert` for an exact copy).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "has(self.url) != has(self.host)",
        "message": "needs exactly one of url (a Secret holding the connection URL) or host"
    },
    {
        "rule": "!has(self.url) || (!has(self.port) && !has(self.database) && !has(self.user) && !has(self.password))",
        "message": "port, database, user and password go with host; with url they are part of the URL"
    },
    {
        "rule": "!has(self.insertMode) || self.insertMode == 'insert' || (has(self.primaryKeyMode) && self.primaryKeyMode != 'none')",
        "message": "insertMode upsert and update need a primary key: set primaryKeyMode to recordKey, recordValue or kafka"
    },
    {
        "rule": "!has(self.deleteEnabled) || !self.deleteEnabled || (has(self.primaryKeyMode) && self.primaryKeyMode == 'recordKey')",
        "message": "deleteEnabled needs primaryKeyMode recordKey: a tombstone only has its key"
    }
]))]
pub struct DatabaseSink {
    /// Secret key holding the whole connection URL, e.g.
    /// `postgres://user:password@db:5432/shop` or `mysql://user:password@db:3306/shop`.
    /// Exactly one of `url` and `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<SecretValue>,
    /// Database server host name or address. Exactly one of `url` and `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub host: Option<String>,
    /// Database server port. Default 5432 (`postgres`) or 3306 (`mysql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Database to write to. Default: the user's default database (`postgres`: the user's
    /// name; `mysql`: none, so `tableNameFormat` must then name it, e.g. `shop.${topic}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub database: Option<String>,
    /// User name. Default `postgres` (`postgres`) or `root` (`mysql`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub user: Option<String>,
    /// Secret key holding the user's password. Default: no password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretValue>,
    /// Name of the table a record is written to. `${topic}` stands for the record's topic,
    /// with `.` replaced by `_` (so `shop.public.orders` becomes `shop_public_orders`); a
    /// `.` written in the format itself separates the schema (`postgres`) or database
    /// (`mysql`) from the table, e.g. `staging.${topic}`. Default `${topic}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub table_name_format: Option<String>,
    /// How a record is written: `insert` (default; a second write of the same key fails),
    /// `upsert` (insert, or update the row with the same primary key: idempotent, the
    /// choice for an exact copy), or `update` (update the row with the same primary key;
    /// a record without a row changes nothing).
    #[serde(default)]
    pub insert_mode: InsertMode,
    /// Where a row's primary key comes from: `none` (default; rows have no key), `kafka`
    /// (the columns `__connect_topic`, `__connect_partition`, `__connect_offset`),
    /// `recordKey` (the record key: a primitive key becomes one column, a struct or map key
    /// one column per field) or `recordValue` (fields of the record value).
    #[serde(default)]
    pub primary_key_mode: PrimaryKeyMode,
    /// The primary key columns. `recordKey`: the key's fields to use (default: all of
    /// them; for a primitive key, the column's name, default `__connect_key`).
    /// `recordValue`: the value's fields (required). `kafka`: three names replacing the
    /// default column names for topic, partition and offset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(min = 1, max = 63)))]
    pub primary_key_fields: Vec<String>,
    /// A tombstone (a record with a key and a null value) deletes the row with that key.
    /// Needs `primaryKeyMode: recordKey`. Default false: tombstones are skipped. Debezium
    /// delete events (`op: d`) delete their row when this is true, and are skipped
    /// otherwise.
    #[serde(default)]
    pub delete_enabled: bool,
    /// Create a missing table from the first record's schema (records need a schema:
    /// schemaless JSON cannot say which column types to create). Default false.
    #[serde(default)]
    pub auto_create: bool,
    /// Add a column for a record field the table lacks, always nullable. Columns are never
    /// dropped or changed. Default false: such a record fails and names the field.
    #[serde(default)]
    pub auto_evolve: bool,
    /// Most rows written in one statement; a batch of records read from Kafka is written
    /// in one transaction whatever its size. Default 3000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub batch_size: Option<u32>,
}

/// How a record is written to its row.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum InsertMode {
    /// `INSERT`: a row whose primary key exists fails the record.
    #[default]
    Insert,
    /// Insert, or update the row with the same primary key.
    Upsert,
    /// Update the row with the same primary key; nothing when there is none.
    Update,
}

/// Where a row's primary key comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PrimaryKeyMode {
    /// No primary key.
    #[default]
    None,
    /// The Kafka coordinates: topic, partition and offset.
    Kafka,
    /// The record key.
    RecordKey,
    /// Fields of the record value.
    RecordValue,
}

impl DatabaseSink {
    /// `tableNameFormat` or its default.
    pub fn table_name_format(&self) -> &str {
        self.table_name_format
            .as_deref()
            .unwrap_or(DEFAULT_TABLE_NAME_FORMAT)
    }

    /// `batchSize` or its default.
    pub fn batch_size(&self) -> u32 {
        self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(yaml: &str) -> DatabaseSink {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_follow_the_jdbc_sinks() {
        let b = block("host: db");
        assert_eq!(b.insert_mode, InsertMode::Insert);
        assert_eq!(b.primary_key_mode, PrimaryKeyMode::None);
        assert_eq!(b.table_name_format(), "${topic}");
        assert_eq!(b.batch_size(), 3000);
        assert!(!b.delete_enabled && !b.auto_create && !b.auto_evolve);
    }

    /// The fields admission names for a `postgres` (or `mysql`) block.
    fn refused_fields(plugin: &str, block: &str) -> Vec<String> {
        let object = serde_json::json!({
            "apiVersion": "ferry.rs/v1alpha1", "kind": "KafkaConnector",
            "metadata": {"name": "db"},
            "spec": {
                "kafka": {"bootstrapServers": "k:9092"},
                "sink": {"topics": ["t"], plugin: serde_yaml::from_str::<serde_json::Value>(block).unwrap()},
            },
        });
        match crate::admission::admit(&object) {
            Ok(_) => Vec::new(),
            Err(v) => v.into_iter().map(|v| v.field).collect(),
        }
    }

    #[test]
    fn admission_names_the_block() {
        assert!(refused_fields("postgres", "host: db").is_empty());
        assert_eq!(
            refused_fields("postgres", "host: db\ninsertMode: upsert"),
            ["spec.sink.postgres"]
        );
        assert_eq!(
            refused_fields(
                "mysql",
                "url: {secretKeyRef: {name: pg, key: url}}\nhost: db"
            ),
            ["spec.sink.mysql"]
        );
        assert_eq!(
            refused_fields("postgres", "host: db\ndeleteEnabled: true\nprimaryKeyMode: recordValue\nprimaryKeyFields: [id]\ninsertMode: upsert"),
            ["spec.sink.postgres"]
        );
        assert_eq!(
            refused_fields("mysql", "host: db\nport: 0"),
            ["spec.sink.mysql.port"]
        );
        assert!(serde_yaml::from_str::<DatabaseSink>("host: db\npassword: hunter2").is_err());
        assert!(serde_yaml::from_str::<DatabaseSink>("host: db\ninsertMode: merge").is_err());
    }
}
