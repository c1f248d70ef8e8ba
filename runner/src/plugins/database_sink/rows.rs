//! Records become row changes: flat records and Debezium change events, with the primary
//! key taken from the record key, the record value or the Kafka coordinates.
//!
//! Everything here is pure: a batch of records becomes, per table, the last change of each
//! key (so a batch written in one transaction leaves what writing the records one by one
//! would leave).

use std::borrow::Cow;
use std::collections::HashMap;

use ferry_crds::plugins::database_sink::{DatabaseSink, InsertMode, PrimaryKeyMode};

use super::types::{debezium, render_key_text};
use crate::data::{Schema, SchemaType, Value};
use crate::record::Record;

/// Default name of the column of a primitive record key (`primaryKeyMode: recordKey`).
pub const DEFAULT_KEY_COLUMN: &str = "__connect_key";
/// Default names of the Kafka coordinate columns (`primaryKeyMode: kafka`).
pub const DEFAULT_KAFKA_COLUMNS: [&str; 3] =
    ["__connect_topic", "__connect_partition", "__connect_offset"];

/// One column of a row: its name, the Connect schema of its value (`None`: schemaless) and
/// the value.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell<'a> {
    /// Column name.
    pub column: Cow<'a, str>,
    /// Schema of the value, when the record has one.
    pub schema: Option<Cow<'a, Schema>>,
    /// The value.
    pub value: Cow<'a, Value>,
}

/// What one record does to its table.
#[derive(Clone, Debug, PartialEq)]
pub enum Change<'a> {
    /// Write the row (insert, upsert or update, by `insertMode`); key cells first.
    Write(Vec<Cell<'a>>),
    /// Delete the row with this key.
    Delete(Vec<Cell<'a>>),
}

/// A change and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedChange<'a> {
    /// Index of the record in the batch.
    pub record: usize,
    /// The change.
    pub change: Change<'a>,
}

/// The changes of one table, in the order of their last record.
#[derive(Clone, Debug, PartialEq)]
pub struct TableChanges<'a> {
    /// The table, as `tableNameFormat` names it.
    pub table: TableName,
    /// Number of primary key cells at the start of each change.
    pub key_len: usize,
    /// The changes.
    pub changes: Vec<PlannedChange<'a>>,
}

/// A table name: an optional schema (`postgres`) or database (`mysql`), and the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName {
    /// Schema or database, when the format names one.
    pub schema: Option<String>,
    /// The table.
    pub table: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.schema {
            Some(s) => write!(f, "{s}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

/// The table of a record on `topic`: `${topic}` in `format` becomes the topic with `.`
/// replaced by `_`; a `.` of the format itself separates schema and table.
pub fn table_name(format: &str, topic: &str) -> TableName {
    let mut schema = None;
    let mut table = format;
    if let Some((s, t)) = format.split_once('.') {
        schema = Some(s.replace("${topic}", &topic.replace('.', "_")));
        table = t;
    }
    TableName {
        schema,
        table: table.replace("${topic}", &topic.replace('.', "_")),
    }
}

/// A record the sink cannot turn into a row change, with what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// Index of the record in the batch.
    pub record: usize,
    /// What is wrong, naming the field.
    pub message: String,
}

/// The fields of a struct or schemaless map value as cells.
fn fields<'a>(
    schema: Option<&'a Schema>,
    value: &'a Value,
    what: &str,
) -> Result<Vec<Cell<'a>>, String> {
    match (schema, value) {
        (Some(s), Value::Struct(values)) if s.schema_type == SchemaType::Struct => Ok(s
            .fields
            .iter()
            .zip(values)
            .map(|(f, v)| Cell {
                column: Cow::Borrowed(f.name.as_str()),
                schema: Some(Cow::Borrowed(&f.schema)),
                value: Cow::Borrowed(v),
            })
            .collect()),
        (None, Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| match k {
                Value::String(name) => Ok(Cell {
                    column: Cow::Borrowed(name.as_str()),
                    schema: None,
                    value: Cow::Borrowed(v),
                }),
                other => Err(format!(
                    "the {what} is a map with a {} key; column names must be strings",
                    other.type_name()
                )),
            })
            .collect(),
        (_, v) => Err(format!(
            "the {what} is a {}, not a struct or a JSON object: it has no fields to write as columns",
            v.type_name()
        )),
    }
}

/// A Debezium change event: its `op` and the `before`/`after` states.
struct Envelope<'a> {
    op: &'a str,
    after: Option<(Option<&'a Schema>, &'a Value)>,
}

/// The record value as a Debezium change event, if it is one: a struct (or schemaless map)
/// with an `op` string and an `after` field.
fn envelope<'a>(schema: Option<&'a Schema>, value: &'a Value) -> Option<Envelope<'a>> {
    match (schema, value) {
        (Some(s), Value::Struct(values)) => {
            let (op_i, _) = s.field("op")?;
            let (after_i, after_f) = s.field("after")?;
            s.field("before")?;
            let Value::String(op) = values.get(op_i)? else {
                return None;
            };
            let after = values.get(after_i)?;
            Some(Envelope {
                op,
                after: (!after.is_null()).then_some((Some(&after_f.schema), after)),
            })
        }
        (None, Value::Map(_)) => {
            let Value::String(op) = value.map_get("op")? else {
                return None;
            };
            value.map_get("before")?;
            let after = value.map_get("after")?;
            Some(Envelope {
                op,
                after: (!after.is_null()).then_some((None, after)),
            })
        }
        _ => None,
    }
}

/// Builds the row changes of `records` under the settings of `spec`, grouped by table; each
/// key keeps only its last change. The first record that cannot become a change is the
/// error.
pub fn plan<'a>(
    records: &'a [Record],
    spec: &DatabaseSink,
) -> Result<Vec<TableChanges<'a>>, RowError> {
    let dedupe = spec.primary_key_mode != PrimaryKeyMode::None;
    let mut tables: Vec<TableChanges<'a>> = Vec::new();
    let mut table_index: HashMap<TableName, usize> = HashMap::new();
    // (table, rendered key) -> position in that table's changes.
    let mut by_key: HashMap<(usize, String), usize> = HashMap::new();
    for (i, record) in records.iter().enumerate() {
        let change = match record_change(record, spec) {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(message) => return Err(RowError { record: i, message }),
        };
        let (change, key_len) = change;
        let name = table_name(spec.table_name_format(), &record.topic);
        let t = *table_index.entry(name.clone()).or_insert_with(|| {
            tables.push(TableChanges {
                table: name,
                key_len,
                changes: Vec::new(),
            });
            tables.len() - 1
        });
        let planned = PlannedChange { record: i, change };
        if dedupe {
            let cells = match &planned.change {
                Change::Write(c) | Change::Delete(c) => c,
            };
            let key = render_key_text(&cells[..key_len.min(cells.len())]);
            match by_key.get(&(t, key.clone())) {
                Some(&pos) => {
                    // The later change replaces the earlier one: one change per key, so
                    // the order between keys does not matter.
                    tables[t].changes[pos] = planned;
                }
                None => {
                    by_key.insert((t, key), tables[t].changes.len());
                    tables[t].changes.push(planned);
                }
            }
        } else {
            tables[t].changes.push(planned);
        }
    }
    Ok(tables)
}

/// The change of one record and the number of key cells, or `None` for a record that
/// changes nothing (a tombstone or a Debezium delete with `deleteEnabled: false`, a
/// Debezium truncate or message event).
pub fn record_change<'a>(
    record: &'a Record,
    spec: &DatabaseSink,
) -> Result<Option<(Change<'a>, usize)>, String> {
    let value_schema = record.value.schema.as_deref();
    let value = &record.value.value;
    let mut row_value: Option<(Option<&'a Schema>, &'a Value)> = None;
    let mut delete = value.is_null();
    if !value.is_null() {
        match envelope(value_schema, value) {
            Some(env) => match env.op {
                "c" | "r" | "u" => match env.after {
                    Some(after) => row_value = Some(after),
                    None => {
                        return Err(format!(
                            "Debezium event with op {:?} has no \"after\" state",
                            env.op
                        ))
                    }
                },
                "d" => delete = true,
                // Truncate and message events change no row.
                _ => return Ok(None),
            },
            None => row_value = Some((value_schema, value)),
        }
    }
    if delete {
        if !spec.delete_enabled {
            return Ok(None);
        }
        let key = key_cells(record, spec)?;
        let n = key.len();
        return Ok(Some((Change::Delete(key), n)));
    }
    let Some((schema, value)) = row_value else {
        return Ok(None);
    };
    let mut value_cells = fields(schema, value, "record value")?;
    let key = match spec.primary_key_mode {
        PrimaryKeyMode::None => Vec::new(),
        PrimaryKeyMode::Kafka => kafka_cells(record, spec),
        PrimaryKeyMode::RecordKey => key_cells(record, spec)?,
        PrimaryKeyMode::RecordValue => {
            let mut key = Vec::with_capacity(spec.primary_key_fields.len());
            for name in &spec.primary_key_fields {
                let Some(pos) = value_cells.iter().position(|c| c.column == name.as_str()) else {
                    return Err(format!(
                        "the record value has no field {name:?} (spec.sink.*.primaryKeyFields)"
                    ));
                };
                key.push(value_cells.remove(pos));
            }
            key
        }
    };
    for k in &key {
        if k.value.is_null() {
            return Err(format!("primary key field {:?} is null", k.column));
        }
    }
    let key_len = key.len();
    // A value field named like a key column is the key column itself.
    value_cells.retain(|c| !key.iter().any(|k| k.column == c.column));
    let mut cells = key;
    cells.append(&mut value_cells);
    Ok(Some((Change::Write(cells), key_len)))
}

fn kafka_cells<'a>(record: &'a Record, spec: &DatabaseSink) -> Vec<Cell<'a>> {
    let names: [Cow<'a, str>; 3] = if spec.primary_key_fields.len() == 3 {
        [
            Cow::Owned(spec.primary_key_fields[0].clone()),
            Cow::Owned(spec.primary_key_fields[1].clone()),
            Cow::Owned(spec.primary_key_fields[2].clone()),
        ]
    } else {
        DEFAULT_KAFKA_COLUMNS.map(Cow::Borrowed)
    };
    let [topic, partition, offset] = names;
    vec![
        Cell {
            column: topic,
            schema: Some(Cow::Owned(Schema::new(SchemaType::String))),
            value: Cow::Owned(Value::String(record.topic.clone())),
        },
        Cell {
            column: partition,
            schema: Some(Cow::Owned(Schema::new(SchemaType::Int32))),
            value: Cow::Owned(Value::Int32(record.partition.unwrap_or(-1))),
        },
        Cell {
            column: offset,
            schema: Some(Cow::Owned(Schema::new(SchemaType::Int64))),
            value: Cow::Owned(Value::Int64(record.offset.unwrap_or(-1))),
        },
    ]
}

/// The primary key cells taken from the record key (`primaryKeyMode: recordKey`).
fn key_cells<'a>(record: &'a Record, spec: &DatabaseSink) -> Result<Vec<Cell<'a>>, String> {
    let schema = record.key.schema.as_deref();
    let value = &record.key.value;
    if value.is_null() {
        return Err("the record key is null, so the row has no primary key".to_string());
    }
    let structured = matches!(value, Value::Struct(_) | Value::Map(_));
    if !structured {
        let column = spec
            .primary_key_fields
            .first()
            .map_or(Cow::Borrowed(DEFAULT_KEY_COLUMN), |c| Cow::Owned(c.clone()));
        return Ok(vec![Cell {
            column,
            schema: schema.map(Cow::Borrowed),
            value: Cow::Borrowed(value),
        }]);
    }
    let all = fields(schema, value, "record key")?;
    if spec.primary_key_fields.is_empty() {
        return Ok(all);
    }
    let mut out = Vec::with_capacity(spec.primary_key_fields.len());
    for name in &spec.primary_key_fields {
        match all.iter().find(|c| c.column == name.as_str()) {
            Some(c) => out.push(c.clone()),
            None => {
                return Err(format!(
                    "the record key has no field {name:?} (spec.sink.*.primaryKeyFields)"
                ))
            }
        }
    }
    Ok(out)
}

/// Whether `insert_mode` writes rows that may already exist.
pub fn overwrites(insert_mode: InsertMode) -> bool {
    insert_mode != InsertMode::Insert
}

/// The schema of a cell, as a Debezium semantic type when it names one.
pub fn semantic(cell: &Cell<'_>) -> Option<debezium::Semantic> {
    cell.schema
        .as_deref()
        .and_then(|s| debezium::semantic(s.name.as_deref()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::SchemaAndValue;

    fn spec(yaml: &str) -> DatabaseSink {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn value_schema() -> Schema {
        Schema::structure(vec![
            ("id", Schema::new(SchemaType::Int64)),
            ("name", Schema::new(SchemaType::String).into_optional()),
        ])
    }

    fn record(key: i64, name: Option<&str>, offset: i64) -> Record {
        let mut r = Record::new("shop.orders");
        r.partition = Some(0);
        r.offset = Some(offset);
        r.key = SchemaAndValue::new(
            Schema::structure(vec![("id", Schema::new(SchemaType::Int64))]),
            Value::Struct(vec![Value::Int64(key)]),
        );
        r.value = match name {
            Some(n) => SchemaAndValue::new(
                value_schema(),
                Value::Struct(vec![Value::Int64(key), Value::String(n.into())]),
            ),
            None => SchemaAndValue::null(),
        };
        r
    }

    fn columns(c: &Change<'_>) -> Vec<String> {
        match c {
            Change::Write(cells) | Change::Delete(cells) => {
                cells.iter().map(|c| c.column.to_string()).collect()
            }
        }
    }

    #[test]
    fn table_names_replace_dots_of_the_topic_only() {
        assert_eq!(
            table_name("${topic}", "shop.public.orders").to_string(),
            "shop_public_orders"
        );
        let t = table_name("staging.${topic}_v1", "a.b");
        assert_eq!(t.schema.as_deref(), Some("staging"));
        assert_eq!(t.table, "a_b_v1");
    }

    #[test]
    fn last_change_per_key_wins_and_deletes_follow_writes() {
        let s =
            spec("{host: db, insertMode: upsert, primaryKeyMode: recordKey, deleteEnabled: true}");
        let records = vec![
            record(1, Some("a"), 0),
            record(2, Some("b"), 1),
            record(1, None, 2),
            record(2, Some("c"), 3),
            record(3, None, 4),
            record(3, Some("d"), 5),
        ];
        let plan = plan(&records, &s).unwrap();
        assert_eq!(plan.len(), 1);
        let t = &plan[0];
        assert_eq!(t.table.table, "shop_orders");
        assert_eq!(t.key_len, 1);
        let got: Vec<(usize, bool)> = t
            .changes
            .iter()
            .map(|c| (c.record, matches!(c.change, Change::Delete(_))))
            .collect();
        assert_eq!(got, vec![(2, true), (3, false), (5, false)]);
        assert_eq!(columns(&t.changes[1].change), vec!["id", "name"]);
    }

    #[test]
    fn without_a_key_every_record_is_a_row_and_tombstones_are_skipped() {
        let s = spec("{host: db}");
        let records = vec![
            record(1, Some("a"), 0),
            record(1, Some("a"), 1),
            record(1, None, 2),
        ];
        let plan = plan(&records, &s).unwrap();
        assert_eq!(plan[0].changes.len(), 2);
        assert_eq!(plan[0].key_len, 0);
    }

    #[test]
    fn kafka_coordinates_make_the_key() {
        let s = spec("{host: db, insertMode: upsert, primaryKeyMode: kafka}");
        let records = vec![record(7, Some("a"), 42)];
        let plan = plan(&records, &s).unwrap();
        let Change::Write(cells) = &plan[0].changes[0].change else {
            panic!("a write")
        };
        assert_eq!(
            columns(&plan[0].changes[0].change),
            vec![
                "__connect_topic",
                "__connect_partition",
                "__connect_offset",
                "id",
                "name"
            ]
        );
        assert_eq!(*cells[2].value, Value::Int64(42));
        assert_eq!(*cells[0].value, Value::String("shop.orders".into()));
    }

    #[test]
    fn record_value_key_fields_come_first() {
        let s = spec(
            "{host: db, insertMode: upsert, primaryKeyMode: recordValue, primaryKeyFields: [name]}",
        );
        let records = vec![record(7, Some("a"), 0)];
        let plan = plan(&records, &s).unwrap();
        assert_eq!(columns(&plan[0].changes[0].change), vec!["name", "id"]);
        let s = spec(
            "{host: db, insertMode: upsert, primaryKeyMode: recordValue, primaryKeyFields: [nope]}",
        );
        let err = super::plan(&records, &s).unwrap_err();
        assert_eq!(err.record, 0);
        assert!(err.message.contains("\"nope\""), "{}", err.message);
    }

    #[test]
    fn a_primitive_key_is_one_column() {
        let s = spec("{host: db, insertMode: upsert, primaryKeyMode: recordKey}");
        let mut r = record(1, Some("a"), 0);
        r.key = SchemaAndValue::schemaless(Value::String("k1".into()));
        let records = vec![r];
        let plan = plan(&records, &s).unwrap();
        assert_eq!(
            columns(&plan[0].changes[0].change),
            vec!["__connect_key", "id", "name"]
        );
    }

    fn debezium(op: &str, before: Option<i64>, after: Option<(i64, &str)>) -> Record {
        let row = value_schema().into_optional();
        let schema = Schema::structure(vec![
            ("before", row.clone()),
            ("after", row),
            ("op", Schema::new(SchemaType::String)),
            ("ts_ms", Schema::new(SchemaType::Int64).into_optional()),
        ]);
        let state = |id: i64, name: &str| {
            Value::Struct(vec![Value::Int64(id), Value::String(name.to_string())])
        };
        let id = before.or(after.map(|a| a.0)).unwrap();
        let mut r = record(id, None, 0);
        r.value = SchemaAndValue::new(
            schema,
            Value::Struct(vec![
                before.map_or(Value::Null, |b| state(b, "old")),
                after.map_or(Value::Null, |(i, n)| state(i, n)),
                Value::String(op.into()),
                Value::Null,
            ]),
        );
        r
    }

    #[test]
    fn debezium_events_are_unwrapped() {
        let s =
            spec("{host: db, insertMode: upsert, primaryKeyMode: recordKey, deleteEnabled: true}");
        let records = vec![
            debezium("c", None, Some((1, "a"))),
            debezium("u", Some(1), Some((1, "b"))),
            debezium("d", Some(2), None),
            debezium("r", None, Some((3, "c"))),
        ];
        let plan = plan(&records, &s).unwrap();
        let t = &plan[0];
        assert_eq!(t.changes.len(), 3);
        let Change::Write(cells) = &t.changes[0].change else {
            panic!("a write")
        };
        assert_eq!(t.changes[0].record, 1);
        assert_eq!(*cells[1].value, Value::String("b".into()));
        assert!(matches!(t.changes[1].change, Change::Delete(_)));
        // Without deleteEnabled a delete event changes nothing.
        let s = spec("{host: db, insertMode: upsert, primaryKeyMode: recordKey}");
        assert_eq!(plan_len(&records, &s), 2);
    }

    fn plan_len(records: &[Record], s: &DatabaseSink) -> usize {
        plan(records, s).unwrap()[0].changes.len()
    }

    #[test]
    fn schemaless_objects_are_rows() {
        let s = spec("{host: db}");
        let mut r = Record::new("t");
        r.value = SchemaAndValue::schemaless(Value::Map(vec![
            (Value::String("a".into()), Value::Int64(1)),
            (Value::String("b".into()), Value::Null),
        ]));
        let records = vec![r];
        let plan = plan(&records, &s).unwrap();
        assert_eq!(columns(&plan[0].changes[0].change), vec!["a", "b"]);
        let mut r = Record::new("t");
        r.value = SchemaAndValue::schemaless(Value::String("plain".into()));
        let err = super::plan(&[r], &s).unwrap_err();
        assert!(err.message.contains("not a struct"), "{}", err.message);
    }
}
