//! The SQL of the two databases: identifier quoting, column types, table creation and the
//! batched insert, upsert, update and delete statements.
//!
//! PostgreSQL statements take one text array per column and `unnest` them, so a statement
//! of any number of rows has as many parameters as the table has columns and is prepared
//! once. MySQL statements list one `(?, ...)` group per row.

use ferry_crds::plugins::database_sink::InsertMode;

use super::rows::TableName;
use super::types::Kind;

/// A SQL dialect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
}

/// A column of a statement: its name and, for PostgreSQL, the type its text is cast to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementColumn {
    /// Column name.
    pub name: String,
    /// The column's type without modifiers (`character varying`, `numeric`), PostgreSQL only.
    pub cast: String,
}

/// A column of a table to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewColumn {
    /// Column name.
    pub name: String,
    /// What it holds.
    pub kind: Kind,
    /// Whether it accepts NULL.
    pub nullable: bool,
}

impl Dialect {
    /// The plugin's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
        }
    }

    /// A quoted identifier.
    pub fn quote(self, ident: &str) -> String {
        match self {
            Dialect::Postgres => format!("\"{}\"", ident.replace('"', "\"\"")),
            Dialect::Mysql => format!("`{}`", ident.replace('`', "``")),
        }
    }

    /// The quoted, qualified name of a table.
    pub fn table(self, t: &TableName) -> String {
        match &t.schema {
            Some(s) => format!("{}.{}", self.quote(s), self.quote(&t.table)),
            None => self.quote(&t.table),
        }
    }

    /// The column type created for `kind`; `key`: the column is part of the primary key
    /// (MySQL keys cannot be unbounded text).
    pub fn column_type(self, kind: Kind, key: bool) -> String {
        match self {
            Dialect::Postgres => match kind {
                Kind::Int8 | Kind::Int16 => "smallint",
                Kind::Int32 => "integer",
                Kind::Int64 => "bigint",
                Kind::Float32 => "real",
                Kind::Float64 => "double precision",
                Kind::Boolean => "boolean",
                Kind::Text => "text",
                Kind::Bytes => "bytea",
                Kind::Decimal(_) => "numeric",
                Kind::Date => "date",
                Kind::Time => "time",
                Kind::Timestamp => "timestamp",
                Kind::TimestampTz => "timestamptz",
                Kind::Json => "jsonb",
                Kind::Uuid => "uuid",
            }
            .to_string(),
            Dialect::Mysql => match kind {
                Kind::Int8 => "TINYINT".to_string(),
                Kind::Int16 => "SMALLINT".to_string(),
                Kind::Int32 => "INT".to_string(),
                Kind::Int64 => "BIGINT".to_string(),
                Kind::Float32 => "FLOAT".to_string(),
                Kind::Float64 => "DOUBLE".to_string(),
                Kind::Boolean => "BOOLEAN".to_string(),
                Kind::Text if key => "VARCHAR(255)".to_string(),
                Kind::Text => "LONGTEXT".to_string(),
                Kind::Bytes if key => "VARBINARY(255)".to_string(),
                Kind::Bytes => "LONGBLOB".to_string(),
                Kind::Decimal(Some(scale)) => format!("DECIMAL(65,{})", scale.clamp(0, 30)),
                Kind::Decimal(None) => "DECIMAL(65,30)".to_string(),
                Kind::Date => "DATE".to_string(),
                Kind::Time => "TIME(6)".to_string(),
                Kind::Timestamp | Kind::TimestampTz => "DATETIME(6)".to_string(),
                Kind::Json => "JSON".to_string(),
                Kind::Uuid => "CHAR(36)".to_string(),
            },
        }
    }

    /// `CREATE TABLE` with `columns` and the primary key `key` (may be empty).
    pub fn create_table(self, t: &TableName, columns: &[NewColumn], key: &[String]) -> String {
        let mut parts: Vec<String> = columns
            .iter()
            .map(|c| {
                let is_key = key.contains(&c.name);
                format!(
                    "{} {}{}",
                    self.quote(&c.name),
                    self.column_type(c.kind, is_key),
                    if c.nullable && !is_key {
                        " NULL"
                    } else {
                        " NOT NULL"
                    }
                )
            })
            .collect();
        if !key.is_empty() {
            parts.push(format!("PRIMARY KEY ({})", self.list(key)));
        }
        format!(
            "CREATE TABLE IF NOT EXISTS {} ({})",
            self.table(t),
            parts.join(", ")
        )
    }

    /// `ALTER TABLE .. ADD COLUMN` of a nullable column.
    pub fn add_column(self, t: &TableName, name: &str, kind: Kind) -> String {
        let exists = match self {
            Dialect::Postgres => "IF NOT EXISTS ",
            Dialect::Mysql => "",
        };
        format!(
            "ALTER TABLE {} ADD COLUMN {exists}{} {} NULL",
            self.table(t),
            self.quote(name),
            self.column_type(kind, false)
        )
    }

    fn list(self, names: &[String]) -> String {
        names
            .iter()
            .map(|n| self.quote(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// PostgreSQL: `unnest($1::text[], ..) AS u(c0, ..)` and the cast value of each column.
    fn pg_source(self, columns: &[StatementColumn]) -> (String, Vec<String>) {
        let arrays: Vec<String> = (1..=columns.len())
            .map(|i| format!("${i}::text[]"))
            .collect();
        let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
        let values = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("u.c{i}::{}", c.cast))
            .collect();
        (
            format!("unnest({}) AS u({})", arrays.join(", "), aliases.join(", ")),
            values,
        )
    }

    /// The statement writing rows of `columns` (the first `key_len` are the primary key)
    /// under `mode`; MySQL: for `rows` rows, PostgreSQL: for any number of rows. `None` when
    /// there is nothing to write (an update of a table whose only columns are the key).
    pub fn write(
        self,
        t: &TableName,
        columns: &[StatementColumn],
        key_len: usize,
        mode: InsertMode,
        rows: usize,
    ) -> Option<String> {
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let (key, rest) = names.split_at(key_len.min(names.len()));
        match (self, mode) {
            (_, InsertMode::Update) if rest.is_empty() => None,
            (Dialect::Postgres, InsertMode::Insert | InsertMode::Upsert) => {
                let (source, values) = self.pg_source(columns);
                let mut sql = format!(
                    "INSERT INTO {} ({}) SELECT {} FROM {source}",
                    self.table(t),
                    self.list(&names),
                    values.join(", ")
                );
                if mode == InsertMode::Upsert {
                    if rest.is_empty() {
                        sql.push_str(&format!(" ON CONFLICT ({}) DO NOTHING", self.list(key)));
                    } else {
                        let sets: Vec<String> = rest
                            .iter()
                            .map(|c| format!("{0} = EXCLUDED.{0}", self.quote(c)))
                            .collect();
                        sql.push_str(&format!(
                            " ON CONFLICT ({}) DO UPDATE SET {}",
                            self.list(key),
                            sets.join(", ")
                        ));
                    }
                }
                Some(sql)
            }
            (Dialect::Postgres, InsertMode::Update) => {
                let (source, values) = self.pg_source(columns);
                let sets: Vec<String> = rest
                    .iter()
                    .zip(&values[key.len()..])
                    .map(|(c, v)| format!("{} = {v}", self.quote(c)))
                    .collect();
                let matches: Vec<String> = key
                    .iter()
                    .zip(&values)
                    .map(|(c, v)| format!("t.{} = {v}", self.quote(c)))
                    .collect();
                Some(format!(
                    "UPDATE {} AS t SET {} FROM {source} WHERE {}",
                    self.table(t),
                    sets.join(", "),
                    matches.join(" AND ")
                ))
            }
            (Dialect::Mysql, InsertMode::Insert | InsertMode::Upsert) => {
                let group = format!("({})", vec!["?"; names.len()].join(", "));
                let mut sql = format!(
                    "INSERT INTO {} ({}) VALUES {}",
                    self.table(t),
                    self.list(&names),
                    vec![group; rows.max(1)].join(", ")
                );
                if mode == InsertMode::Upsert {
                    let sets: Vec<String> = if rest.is_empty() {
                        key.iter()
                            .map(|c| format!("{0} = {0}", self.quote(c)))
                            .collect()
                    } else {
                        rest.iter()
                            .map(|c| format!("{0} = VALUES({0})", self.quote(c)))
                            .collect()
                    };
                    sql.push_str(&format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", ")));
                }
                Some(sql)
            }
            (Dialect::Mysql, InsertMode::Update) => {
                let sets: Vec<String> = rest
                    .iter()
                    .map(|c| format!("{} = ?", self.quote(c)))
                    .collect();
                let matches: Vec<String> = key
                    .iter()
                    .map(|c| format!("{} = ?", self.quote(c)))
                    .collect();
                Some(format!(
                    "UPDATE {} SET {} WHERE {}",
                    self.table(t),
                    sets.join(", "),
                    matches.join(" AND ")
                ))
            }
        }
    }

    /// The statement deleting the rows with the keys of `key` columns; MySQL: for `rows`
    /// keys, PostgreSQL: for any number.
    pub fn delete(self, t: &TableName, key: &[StatementColumn], rows: usize) -> String {
        match self {
            Dialect::Postgres => {
                let (source, values) = self.pg_source(key);
                let matches: Vec<String> = key
                    .iter()
                    .zip(&values)
                    .map(|(c, v)| format!("t.{} = {v}", self.quote(&c.name)))
                    .collect();
                format!(
                    "DELETE FROM {} AS t USING {source} WHERE {}",
                    self.table(t),
                    matches.join(" AND ")
                )
            }
            Dialect::Mysql => {
                let names: Vec<String> = key.iter().map(|c| c.name.clone()).collect();
                let group = format!("({})", vec!["?"; names.len()].join(", "));
                format!(
                    "DELETE FROM {} WHERE ({}) IN ({})",
                    self.table(t),
                    self.list(&names),
                    vec![group; rows.max(1)].join(", ")
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableName {
        TableName {
            schema: Some("shop".into()),
            table: "or\"ders".into(),
        }
    }

    fn cols() -> Vec<StatementColumn> {
        [
            ("id", "bigint"),
            ("name", "text"),
            ("at", "timestamp without time zone"),
        ]
        .iter()
        .map(|(n, c)| StatementColumn {
            name: n.to_string(),
            cast: c.to_string(),
        })
        .collect()
    }

    #[test]
    fn postgres_upsert_unnests_one_array_per_column() {
        let sql = Dialect::Postgres
            .write(&table(), &cols(), 1, InsertMode::Upsert, 500)
            .unwrap();
        assert_eq!(
            sql,
            "INSERT INTO \"shop\".\"or\"\"ders\" (\"id\", \"name\", \"at\") SELECT u.c0::bigint, u.c1::text, u.c2::timestamp without time zone \
             FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c0, c1, c2) \
             ON CONFLICT (\"id\") DO UPDATE SET \"name\" = EXCLUDED.\"name\", \"at\" = EXCLUDED.\"at\""
        );
        let insert = Dialect::Postgres
            .write(&table(), &cols(), 0, InsertMode::Insert, 1)
            .unwrap();
        assert!(!insert.contains("ON CONFLICT"), "{insert}");
        let key_only = Dialect::Postgres
            .write(&table(), &cols()[..1], 1, InsertMode::Upsert, 1)
            .unwrap();
        assert!(
            key_only.ends_with("ON CONFLICT (\"id\") DO NOTHING"),
            "{key_only}"
        );
    }

    #[test]
    fn postgres_update_and_delete_join_on_the_key() {
        let sql = Dialect::Postgres
            .write(&table(), &cols(), 1, InsertMode::Update, 1)
            .unwrap();
        assert_eq!(
            sql,
            "UPDATE \"shop\".\"or\"\"ders\" AS t SET \"name\" = u.c1::text, \"at\" = u.c2::timestamp without time zone \
             FROM unnest($1::text[], $2::text[], $3::text[]) AS u(c0, c1, c2) WHERE t.\"id\" = u.c0::bigint"
        );
        assert_eq!(
            Dialect::Postgres.write(&table(), &cols()[..1], 1, InsertMode::Update, 1),
            None
        );
        assert_eq!(
            Dialect::Postgres.delete(&table(), &cols()[..1], 10),
            "DELETE FROM \"shop\".\"or\"\"ders\" AS t USING unnest($1::text[]) AS u(c0) WHERE t.\"id\" = u.c0::bigint"
        );
    }

    #[test]
    fn mysql_statements_list_one_group_per_row() {
        let t = TableName {
            schema: None,
            table: "orders".into(),
        };
        assert_eq!(
            Dialect::Mysql
                .write(&t, &cols()[..2], 1, InsertMode::Upsert, 2)
                .unwrap(),
            "INSERT INTO `orders` (`id`, `name`) VALUES (?, ?), (?, ?) ON DUPLICATE KEY UPDATE `name` = VALUES(`name`)"
        );
        assert_eq!(
            Dialect::Mysql
                .write(&t, &cols()[..2], 1, InsertMode::Update, 1)
                .unwrap(),
            "UPDATE `orders` SET `name` = ? WHERE `id` = ?"
        );
        assert_eq!(
            Dialect::Mysql.delete(&t, &cols()[..1], 3),
            "DELETE FROM `orders` WHERE (`id`) IN ((?), (?), (?))"
        );
    }

    #[test]
    fn created_tables_have_typed_columns_and_a_key() {
        let columns = vec![
            NewColumn {
                name: "id".into(),
                kind: Kind::Text,
                nullable: false,
            },
            NewColumn {
                name: "price".into(),
                kind: Kind::Decimal(Some(2)),
                nullable: true,
            },
        ];
        let t = TableName {
            schema: None,
            table: "orders".into(),
        };
        assert_eq!(
            Dialect::Mysql.create_table(&t, &columns, &["id".into()]),
            "CREATE TABLE IF NOT EXISTS `orders` (`id` VARCHAR(255) NOT NULL, `price` DECIMAL(65,2) NULL, PRIMARY KEY (`id`))"
        );
        assert_eq!(
            Dialect::Postgres.create_table(&t, &columns, &[]),
            "CREATE TABLE IF NOT EXISTS \"orders\" (\"id\" text NOT NULL, \"price\" numeric NULL)"
        );
        assert_eq!(
            Dialect::Postgres.add_column(&t, "note", Kind::Json),
            "ALTER TABLE \"orders\" ADD COLUMN IF NOT EXISTS \"note\" jsonb NULL"
        );
    }
}
