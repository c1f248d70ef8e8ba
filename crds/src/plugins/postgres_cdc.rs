//! The `postgresCdc` source block: change data capture out of PostgreSQL through logical
//! replication (`pgoutput`), with change events in Debezium's envelope and Debezium's
//! setting names in camelCase.
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::connector::SecretValue;

/// Default `port`.
pub const DEFAULT_PORT: u16 = 5432;
/// Default `user`.
pub const DEFAULT_USER: &str = "postgres";
/// Default `heartbeatIntervalMs`.
pub const DEFAULT_HEARTBEAT_INTERVAL_MS: u64 = 10_000;
/// Default `snapshotFetchSize` (Debezium's `snapshot.fetch.size`).
pub const DEFAULT_SNAPSHOT_FETCH_SIZE: u32 = 10_240;
/// Default `maxBatchSize` (Debezium's `max.batch.size`).
pub const DEFAULT_MAX_BATCH_SIZE: u32 = 2048;
/// Longest PostgreSQL identifier (`NAMEDATALEN - 1`).
pub const MAX_IDENTIFIER_LENGTH: usize = 63;

/// The `postgresCdc` source: streams the row changes of PostgreSQL tables into Kafka, one
/// topic per table (`<topicPrefix>.<schema>.<table>`), as Debezium's PostgreSQL connector
/// does. It runs one task.
///
/// The database needs `wal_level = logical`; the user needs the `REPLICATION` attribute,
/// `SELECT` on the tables, and (unless the publication exists) the right to create the
/// publication: ownership of the tables, or superuser for a publication of all tables.
///
/// Delivery is at least once: an LSN is confirmed to PostgreSQL only after every change up to
/// it was acknowledged by Kafka and its offset stored, so the replication slot keeps the WAL
/// of anything not yet in Kafka. After a crash some changes may be written again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.tableIncludeList) || !has(self.tableExcludeList)",
        "message": "set at most one of tableIncludeList and tableExcludeList"
    }
]))]
pub struct PostgresCdcSource {
    /// Database server host name or address.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Database server port. Default 5432.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub port: Option<u16>,
    /// Database to capture (one database per connector).
    #[schemars(length(min = 1, max = 63))]
    pub database: String,
    /// User name; the user needs the `REPLICATION` attribute. Default `postgres`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub user: Option<String>,
    /// Secret key holding the user's password. Default: no password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretValue>,
    /// First part of every topic name (Debezium's `topic.prefix`): changes of table
    /// `public.orders` go to `<topicPrefix>.public.orders`. Also `source.name` in events.
    #[schemars(length(min = 1, max = 200), pattern(r"^[a-zA-Z0-9._-]+$"))]
    pub topic_prefix: String,
    /// Replication slot to read (created with the `pgoutput` plugin when missing, reused
    /// otherwise). A slot is read by one connector at a time. It stays when the connector is
    /// deleted, unless `spec.offsets.deleteOnRemoval` is true. Default
    /// `ferry_<namespace>_<connector>`, lower-cased, other characters than letters, digits and
    /// `_` replaced by `_`, cut to 63 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(r"^[a-z0-9_]+$"))]
    pub slot_name: Option<String>,
    /// Publication naming the captured tables (created when missing, reused as it is
    /// otherwise). When created, it holds the tables `tableIncludeList` matches at start, or
    /// every table (`FOR ALL TABLES`, needs superuser) without an include list. Default: the
    /// slot's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub publication_name: Option<String>,
    /// Regular expressions matching the whole `<schema>.<table>` name of the tables to capture
    /// (Debezium's `table.include.list`), e.g. `public\.orders` or `inventory\..*`. Default:
    /// every table of the publication. At most one of `tableIncludeList` and
    /// `tableExcludeList`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 1024)))]
    pub table_include_list: Vec<String>,
    /// Regular expressions matching the whole `<schema>.<table>` name of tables not to
    /// capture (Debezium's `table.exclude.list`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 100), inner(length(min = 1, max = 1024)))]
    pub table_exclude_list: Vec<String>,
    /// When to read the tables' existing rows (events with `op: r`) before streaming
    /// changes: `initial` (default: when the connector has no stored offset), `never`
    /// (stream changes only, from the slot's position), or `initialOnly` (read the rows,
    /// then stop without streaming).
    #[serde(default)]
    pub snapshot_mode: SnapshotMode,
    /// Write a tombstone (the key with a null value) after each delete event, so a compacted
    /// topic forgets the row. Default true.
    #[serde(default = "default_true")]
    pub tombstones_on_delete: bool,
    /// How often, in milliseconds, the connector confirms its position to PostgreSQL while
    /// no change is waiting for Kafka, so that changes of other tables and databases do not
    /// pin WAL on the server. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 100, max = 3600000))]
    pub heartbeat_interval_ms: Option<u64>,
    /// Rows read per query during the snapshot. Default 10240.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub snapshot_fetch_size: Option<u32>,
    /// Most change events handed to Kafka per batch. Default 2048.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub max_batch_size: Option<u32>,
}

fn default_true() -> bool {
    true
}

/// When the existing rows are read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum SnapshotMode {
    /// Read the rows when the connector has no stored offset (or its snapshot was cut
    /// short), then stream.
    #[default]
    Initial,
    /// Never read existing rows: stream changes from the slot's position.
    Never,
    /// Read the rows like `initial`, then stop (exit code 0) without streaming.
    InitialOnly,
}

impl PostgresCdcSource {
    /// `port` or its default.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// `user` or its default.
    pub fn user(&self) -> &str {
        self.user.as_deref().unwrap_or(DEFAULT_USER)
    }

    /// `slotName`, or the default derived from the connector's namespace and name.
    pub fn slot_name(&self, namespace: &str, connector: &str) -> String {
        match &self.slot_name {
            Some(s) => s.clone(),
            None => default_slot_name(namespace, connector),
        }
    }

    /// `publicationName`, or the slot's name.
    pub fn publication_name(&self, namespace: &str, connector: &str) -> String {
        match &self.publication_name {
            Some(p) => p.clone(),
            None => self.slot_name(namespace, connector),
        }
    }

    /// `heartbeatIntervalMs` or its default.
    pub fn heartbeat_interval_ms(&self) -> u64 {
        self.heartbeat_interval_ms
            .unwrap_or(DEFAULT_HEARTBEAT_INTERVAL_MS)
    }

    /// `snapshotFetchSize` or its default.
    pub fn snapshot_fetch_size(&self) -> u32 {
        self.snapshot_fetch_size
            .unwrap_or(DEFAULT_SNAPSHOT_FETCH_SIZE)
    }

    /// `maxBatchSize` or its default.
    pub fn max_batch_size(&self) -> u32 {
        self.max_batch_size.unwrap_or(DEFAULT_MAX_BATCH_SIZE)
    }
}

/// The default slot name of a connector: `ferry_<namespace>_<connector>` made a valid
/// PostgreSQL slot name (lower-case letters, digits and `_`, at most 63 characters).
pub fn default_slot_name(namespace: &str, connector: &str) -> String {
    let mut name: String = format!("ferry_{namespace}_{connector}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_IDENTIFIER_LENGTH);
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(yaml: &str) -> PostgresCdcSource {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn defaults_follow_debezium() {
        let b = block("{host: db, database: shop, topicPrefix: shop}");
        assert_eq!(b.port(), 5432);
        assert_eq!(b.user(), "postgres");
        assert_eq!(b.snapshot_mode, SnapshotMode::Initial);
        assert!(b.tombstones_on_delete);
        assert_eq!(b.heartbeat_interval_ms(), 10_000);
        assert_eq!(b.snapshot_fetch_size(), 10_240);
        assert_eq!(b.max_batch_size(), 2048);
        assert_eq!(
            b.slot_name("prod-eu", "Orders.CDC"),
            "ferry_prod_eu_orders_cdc"
        );
        assert_eq!(
            b.publication_name("prod-eu", "orders"),
            "ferry_prod_eu_orders"
        );
        let long = default_slot_name(&"n".repeat(63), &"c".repeat(253));
        assert_eq!(long.len(), 63);
    }

    /// The fields admission names for a `postgresCdc` block.
    fn refused_fields(block: &str) -> Vec<String> {
        let object = serde_json::json!({
            "apiVersion": "ferry.rs/v1alpha1", "kind": "KafkaConnector",
            "metadata": {"name": "cdc"},
            "spec": {
                "kafka": {"bootstrapServers": "k:9092"},
                "source": {"postgresCdc": serde_yaml::from_str::<serde_json::Value>(block).unwrap()},
            },
        });
        match crate::admission::admit(&object) {
            Ok(_) => Vec::new(),
            Err(v) => v.into_iter().map(|v| v.field).collect(),
        }
    }

    #[test]
    fn admission_names_the_field() {
        assert!(refused_fields("{host: db, database: shop, topicPrefix: shop}").is_empty());
        assert_eq!(
            refused_fields("{host: db, database: shop, topicPrefix: shop, tableIncludeList: [a], tableExcludeList: [b]}"),
            ["spec.source.postgresCdc"]
        );
        assert_eq!(
            refused_fields("{host: db, database: shop, topicPrefix: 'a b', slotName: Bad}"),
            [
                "spec.source.postgresCdc.slotName",
                "spec.source.postgresCdc.topicPrefix"
            ]
        );
        assert_eq!(
            refused_fields("{host: db, database: shop, topicPrefix: s, heartbeatIntervalMs: 5}"),
            ["spec.source.postgresCdc.heartbeatIntervalMs"]
        );
        assert!(serde_yaml::from_str::<PostgresCdcSource>(
            "{host: db, database: shop, topicPrefix: s, password: hunter2}"
        )
        .is_err());
        assert!(serde_yaml::from_str::<PostgresCdcSource>(
            "{host: db, database: shop, topicPrefix: s, snapshotMode: always}"
        )
        .is_err());
    }
}
