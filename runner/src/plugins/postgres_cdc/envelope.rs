//! Change events in Debezium's envelope: key = the primary key struct, value = `{before,
//! after, source, op, ts_ms}` with Connect schemas named as Debezium names them
//! (`<topicPrefix>.<schema>.<table>.Key`, `.Value`, `.Envelope`,
//! `io.debezium.connector.postgresql.Source`).

use super::replication::Cell;
use super::types::{parse, schema_of, Kind, UNAVAILABLE_VALUE};
use crate::data::{Schema, SchemaAndValue, SchemaType, Value};
use crate::record::Record;

/// `source.connector` of every event.
pub const CONNECTOR: &str = "postgresql";
/// Name of the `source` struct's schema.
pub const SOURCE_SCHEMA_NAME: &str = "io.debezium.connector.postgresql.Source";

/// A column of a captured table.
#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// How its values are read.
    pub kind: Kind,
    /// Whether it may be null.
    pub optional: bool,
}

/// A captured table with the schemas of its events.
#[derive(Clone, Debug)]
pub struct Table {
    /// Schema (namespace) name.
    pub schema: String,
    /// Table name.
    pub name: String,
    /// Columns, in table order.
    pub columns: Vec<Column>,
    /// Positions of the primary key columns in `columns`, in key order.
    pub key_columns: Vec<usize>,
    /// Topic of its events.
    pub topic: String,
    key_schema: Option<Schema>,
    envelope_schema: Schema,
}

/// What an event did (`op`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `r`: a row read by the snapshot.
    Read,
    /// `c`: an insert.
    Create,
    /// `u`: an update.
    Update,
    /// `d`: a delete.
    Delete,
}

impl Op {
    fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
        }
    }
}

/// The `source` block of an event.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SourceInfo {
    /// `topicPrefix` (`source.name`).
    pub server: String,
    /// Database name.
    pub db: String,
    /// Commit time (streaming) or read time (snapshot), ms since the epoch.
    pub ts_ms: i64,
    /// `true`, `last` (the snapshot's last row) or `false` (streaming).
    pub snapshot: &'static str,
    /// Transaction id.
    pub tx_id: Option<i64>,
    /// LSN of the change (streaming) or of the slot's start (snapshot).
    pub lsn: Option<u64>,
    /// `["<last commit LSN>","<LSN>"]`, as Debezium's `sequence`.
    pub sequence: Option<String>,
}

/// A row value that does not fit its column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {table}.{column}: {message}")]
pub struct RowError {
    /// `<schema>.<table>`.
    pub table: String,
    /// Column name.
    pub column: String,
    /// What is wrong.
    pub message: String,
}

/// The zero value of a column kind (Debezium's stand-in for a required column whose value
/// a change does not carry).
fn zero(kind: &Kind) -> Value {
    match kind {
        Kind::Int16 => Value::Int16(0),
        Kind::Int32 | Kind::Date | Kind::Time { micros: false } => Value::Int32(0),
        Kind::Int64 | Kind::Time { micros: true } | Kind::Timestamp { .. } => Value::Int64(0),
        Kind::Float32 => Value::Float32(0.0),
        Kind::Float64 => Value::Float64(0.0),
        Kind::Boolean => Value::Boolean(false),
        Kind::Bytes => Value::Bytes(Vec::new()),
        Kind::Array(_) => Value::Array(Vec::new()),
        // Optional schemas: null is valid.
        Kind::Decimal { .. } | Kind::VariableDecimal | Kind::ZonedTimestamp => Value::Null,
        Kind::Text(_) | Kind::Enum(_) | Kind::ZonedTime => Value::String(String::new()),
    }
}

fn source_schema() -> Schema {
    let s = |t| Schema::new(t);
    let o = |t| Schema::new(t).into_optional();
    let mut snapshot = Schema::new(SchemaType::String)
        .with_name("io.debezium.data.Enum")
        .into_optional()
        .with_default(Value::String("false".into()));
    snapshot.version = Some(1);
    snapshot
        .parameters
        .push(("allowed".into(), "true,last,false,incremental".into()));
    Schema::structure(vec![
        ("version", s(SchemaType::String)),
        ("connector", s(SchemaType::String)),
        ("name", s(SchemaType::String)),
        ("ts_ms", s(SchemaType::Int64)),
        ("snapshot", snapshot),
        ("db", s(SchemaType::String)),
        ("sequence", o(SchemaType::String)),
        ("schema", s(SchemaType::String)),
        ("table", s(SchemaType::String)),
        ("txId", o(SchemaType::Int64)),
        ("lsn", o(SchemaType::Int64)),
        ("xmin", o(SchemaType::Int64)),
    ])
    .with_name(SOURCE_SCHEMA_NAME)
}

impl Table {
    /// A table whose events go to `<prefix>.<schema>.<name>`.
    pub fn new(
        prefix: &str,
        schema: &str,
        name: &str,
        columns: Vec<Column>,
        key_columns: Vec<usize>,
    ) -> Self {
        let topic = format!("{prefix}.{schema}.{name}");
        let key_schema = (!key_columns.is_empty()).then(|| {
            Schema::structure(
                key_columns
                    .iter()
                    .filter_map(|i| columns.get(*i))
                    .map(|c| (c.name.as_str(), schema_of(&c.kind, false)))
                    .collect(),
            )
            .with_name(format!("{topic}.Key"))
        });
        let row_schema = Schema::structure(
            columns
                .iter()
                .map(|c| (c.name.as_str(), schema_of(&c.kind, c.optional)))
                .collect(),
        )
        .with_name(format!("{topic}.Value"))
        .into_optional();
        let mut envelope_schema = Schema::structure(vec![
            ("before", row_schema.clone()),
            ("after", row_schema.clone()),
            ("source", source_schema()),
            ("op", Schema::new(SchemaType::String)),
            ("ts_ms", Schema::new(SchemaType::Int64).into_optional()),
        ])
        .with_name(format!("{topic}.Envelope"));
        envelope_schema.version = Some(1);
        Table {
            schema: schema.to_string(),
            name: name.to_string(),
            columns,
            key_columns,
            topic,
            key_schema,
            envelope_schema,
        }
    }

    /// `<schema>.<table>`.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    /// The row struct of `cells` (one per column, in table order). In an old row holding only
    /// the key columns (`key_only`, replica identity `DEFAULT`), the other columns are null,
    /// or — for `NOT NULL` columns — the zero value of their type, as Debezium writes them.
    pub fn row(&self, cells: &[Cell], key_only: bool) -> Result<Value, RowError> {
        if cells.len() != self.columns.len() {
            return Err(RowError {
                table: self.qualified(),
                column: "*".into(),
                message: format!(
                    "the change has {} values for {} columns; the table changed while the connector was reading it",
                    cells.len(),
                    self.columns.len()
                ),
            });
        }
        let mut values = Vec::with_capacity(cells.len());
        for (column, cell) in self.columns.iter().zip(cells) {
            values.push(match cell {
                Cell::Null if key_only && !column.optional => zero(&column.kind),
                Cell::Null => Value::Null,
                Cell::Unchanged => match column.kind {
                    Kind::Text(_) | Kind::Enum(_) => Value::String(UNAVAILABLE_VALUE.into()),
                    Kind::Bytes => Value::Bytes(UNAVAILABLE_VALUE.as_bytes().to_vec()),
                    _ => Value::Null,
                },
                Cell::Text(text) => parse(&column.kind, text).map_err(|message| RowError {
                    table: self.qualified(),
                    column: column.name.clone(),
                    message,
                })?,
            });
        }
        Ok(Value::Struct(values))
    }

    /// The key of a row (`None` for a table without a primary key).
    pub fn key(&self, row: &Value) -> SchemaAndValue {
        match (&self.key_schema, row) {
            (Some(schema), Value::Struct(values)) => SchemaAndValue::new(
                schema.clone(),
                Value::Struct(
                    self.key_columns
                        .iter()
                        .map(|i| values.get(*i).cloned().unwrap_or(Value::Null))
                        .collect(),
                ),
            ),
            _ => SchemaAndValue::null(),
        }
    }

    /// A change event record.
    pub fn event(
        &self,
        op: Op,
        before: Option<Value>,
        after: Option<Value>,
        source: &SourceInfo,
        now_ms: i64,
    ) -> Record {
        let key_row = after.as_ref().or(before.as_ref());
        let key = key_row
            .map(|r| self.key(r))
            .unwrap_or_else(SchemaAndValue::null);
        let source_value = Value::Struct(vec![
            Value::String(env!("CARGO_PKG_VERSION").into()),
            Value::String(CONNECTOR.into()),
            Value::String(source.server.clone()),
            Value::Int64(source.ts_ms),
            Value::String(source.snapshot.into()),
            Value::String(source.db.clone()),
            source.sequence.clone().map_or(Value::Null, Value::String),
            Value::String(self.schema.clone()),
            Value::String(self.name.clone()),
            source.tx_id.map_or(Value::Null, Value::Int64),
            source.lsn.map_or(Value::Null, |l| {
                Value::Int64(i64::try_from(l).unwrap_or(i64::MAX))
            }),
            Value::Null,
        ]);
        let mut record = Record::new(self.topic.clone());
        record.key = key;
        record.value = SchemaAndValue::new(
            self.envelope_schema.clone(),
            Value::Struct(vec![
                before.unwrap_or(Value::Null),
                after.unwrap_or(Value::Null),
                source_value,
                Value::String(op.code().into()),
                Value::Int64(now_ms),
            ]),
        );
        record
    }

    /// The tombstone following a delete: the key with a null value.
    pub fn tombstone(&self, before: &Value) -> Record {
        let mut record = Record::new(self.topic.clone());
        record.key = self.key(before);
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Table {
        Table::new(
            "shop",
            "public",
            "users",
            vec![
                Column {
                    name: "id".into(),
                    kind: Kind::Int32,
                    optional: false,
                },
                Column {
                    name: "name".into(),
                    kind: Kind::Text(None),
                    optional: true,
                },
            ],
            vec![0],
        )
    }

    #[test]
    fn events_have_debezium_shape() {
        let t = users();
        let row = t
            .row(&[Cell::Text("7".into()), Cell::Text("ann".into())], false)
            .unwrap();
        let source = SourceInfo {
            server: "shop".into(),
            db: "db".into(),
            ts_ms: 5,
            snapshot: "false",
            tx_id: Some(9),
            lsn: Some(100),
            sequence: None,
        };
        let e = t.event(Op::Create, None, Some(row.clone()), &source, 6);
        assert_eq!(e.topic, "shop.public.users");
        let schema = e.value.schema.as_ref().unwrap();
        assert_eq!(schema.name.as_deref(), Some("shop.public.users.Envelope"));
        schema.validate(&e.value.value).unwrap();
        let names: Vec<&str> = schema.fields.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["before", "after", "source", "op", "ts_ms"]);
        let key = e.key.schema.as_ref().unwrap();
        assert_eq!(key.name.as_deref(), Some("shop.public.users.Key"));
        assert_eq!(e.key.value, Value::Struct(vec![Value::Int32(7)]));
        let d = t.event(Op::Delete, Some(row.clone()), None, &source, 6);
        d.value
            .schema
            .as_ref()
            .unwrap()
            .validate(&d.value.value)
            .unwrap();
        assert_eq!(d.key.value, Value::Struct(vec![Value::Int32(7)]));
        let tomb = t.tombstone(&row);
        assert!(tomb.value.value.is_null());
        assert_eq!(tomb.key, e.key);
    }

    #[test]
    fn bad_values_name_the_column() {
        let t = users();
        let e = t
            .row(&[Cell::Text("x".into()), Cell::Null], false)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "column public.users.id: \"x\" is not a valid integer"
        );
        assert!(t.row(&[Cell::Null], false).is_err());
        let r = t
            .row(&[Cell::Text("1".into()), Cell::Unchanged], false)
            .unwrap();
        assert_eq!(
            r,
            Value::Struct(vec![
                Value::Int32(1),
                Value::String(UNAVAILABLE_VALUE.into())
            ])
        );
    }
}
