//! What the connector reads from and creates in PostgreSQL's catalog over an ordinary
//! connection: privileges, the publication, the slot, the captured tables, their columns
//! and types.

use std::collections::HashMap;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::envelope::{Column, Table};
use super::types::{kind_of, PgType};
use super::CdcError;

/// Session settings under which values are read as text the way [`super::types`] parses
/// them, on the snapshot connection and on the replication stream alike.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO"),
    ("IntervalStyle", "postgres"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
];

/// `name` quoted as an SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` quoted as an SQL string literal.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Every base, enum, domain and array type, by OID.
pub async fn load_types(client: &Client) -> Result<HashMap<u32, PgType>, CdcError> {
    let rows = client
        .query(
            "SELECT t.oid::int8, t.typname::text, n.nspname::text, t.typtype::text, \
             t.typcategory::text, t.typelem::int8, t.typbasetype::int8, t.typtypmod, \
             coalesce((SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) \
                       FROM pg_enum e WHERE e.enumtypid = t.oid), '{}') \
             FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE t.typtype IN ('b', 'e', 'd') AND t.typisdefined",
            &[],
        )
        .await
        .map_err(|e| CdcError::query("reading the types", &e))?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        let first = |s: String| s.chars().next().unwrap_or(' ');
        let oid = u32::try_from(row.get::<_, i64>(0)).unwrap_or(0);
        out.insert(
            oid,
            PgType {
                oid,
                name: row.get(1),
                schema: row.get(2),
                kind: first(row.get(3)),
                category: first(row.get(4)),
                element: u32::try_from(row.get::<_, i64>(5)).unwrap_or(0),
                base: u32::try_from(row.get::<_, i64>(6)).unwrap_or(0),
                base_modifier: row.get(7),
                labels: row.get(8),
            },
        );
    }
    Ok(out)
}

/// Checks that the user may read a replication stream.
pub async fn check_replication_role(client: &Client, user: &str) -> Result<(), CdcError> {
    let row = client
        .query_one(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(|e| CdcError::query("reading the user's attributes", &e))?;
    if row.get::<_, bool>(0) {
        Ok(())
    } else {
        Err(CdcError::config(
            "user",
            format!(
                "user {user:?} may not read a replication stream: grant it with ALTER ROLE {} REPLICATION",
                quote_ident(user)
            ),
        ))
    }
}

/// The `<schema>.<table>` names of the tables of a publication; `None` when it does not exist.
pub async fn publication_tables(
    client: &Client,
    publication: &str,
) -> Result<Option<Vec<(String, String)>>, CdcError> {
    let exists = client
        .query_opt(
            "SELECT 1 FROM pg_publication WHERE pubname = $1",
            &[&publication],
        )
        .await
        .map_err(|e| CdcError::query("reading the publications", &e))?;
    if exists.is_none() {
        return Ok(None);
    }
    let rows = client
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables \
             WHERE pubname = $1 ORDER BY 1, 2",
            &[&publication],
        )
        .await
        .map_err(|e| CdcError::query("reading the publication's tables", &e))?;
    Ok(Some(rows.iter().map(|r| (r.get(0), r.get(1))).collect()))
}

/// Every user table of the database.
pub async fn all_tables(client: &Client) -> Result<Vec<(String, String)>, CdcError> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
               AND n.nspname NOT LIKE 'pg\\_toast%' ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| CdcError::query("listing the tables", &e))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// Creates the publication for `tables`, or for all tables when `tables` is `None`.
pub async fn create_publication(
    client: &Client,
    publication: &str,
    tables: Option<&[(String, String)]>,
) -> Result<(), CdcError> {
    let target = match tables {
        None => "FOR ALL TABLES".to_string(),
        Some(list) => format!(
            "FOR TABLE {}",
            list.iter()
                .map(|(s, t)| format!("{}.{}", quote_ident(s), quote_ident(t)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let sql = format!("CREATE PUBLICATION {} {target}", quote_ident(publication));
    match client.batch_execute(&sql).await {
        Ok(()) => {
            tracing::info!(publication, "created the publication");
            Ok(())
        }
        Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => Err(CdcError::config(
            "publicationName",
            format!(
                "publication {publication:?} does not exist and the user may not create it ({}): create it as the tables' owner{} with CREATE PUBLICATION {} {target}",
                db_message(&e),
                if tables.is_none() { " (FOR ALL TABLES needs a superuser)" } else { "" },
                quote_ident(publication)
            ),
        )),
        Err(e) if e.code() == Some(&SqlState::DUPLICATE_OBJECT) => Ok(()),
        Err(e) => Err(CdcError::query("creating the publication", &e)),
    }
}

/// The slot's confirmed position (`None`: the slot does not exist); refuses a slot of
/// another plugin or database.
pub async fn slot_position(
    client: &Client,
    slot: &str,
    database: &str,
) -> Result<Option<Option<u64>>, CdcError> {
    let row = client
        .query_opt(
            "SELECT coalesce(plugin::text, ''), coalesce(database::text, ''), \
             confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| CdcError::query("reading the replication slots", &e))?;
    let Some(row) = row else { return Ok(None) };
    let plugin: String = row.get(0);
    let db: String = row.get(1);
    if plugin != "pgoutput" || db != database {
        return Err(CdcError::config(
            "slotName",
            format!(
                "slot {slot:?} exists but is not a pgoutput slot of database {database:?} (plugin {plugin:?}, database {db:?}): name another slot"
            ),
        ));
    }
    let lsn: Option<String> = row.get(2);
    Ok(Some(lsn.and_then(|l| parse_lsn(&l))))
}

/// How much WAL a replication slot holds, in bytes from the server's current position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotWal {
    /// Back to the slot's confirmed position (`confirmed_flush_lsn`): changes not yet
    /// confirmed as stored in Kafka.
    pub unconfirmed: Option<u64>,
    /// Back to the slot's `restart_lsn`: the WAL the server must keep for the slot.
    pub retained: Option<u64>,
}

/// The WAL slot `slot` holds; `None` when the slot does not exist.
pub async fn slot_wal(client: &Client, slot: &str) -> Result<Option<SlotWal>, CdcError> {
    let row = client
        .query_opt(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8, \
             pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 \
             FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .map_err(|e| CdcError::query("reading the slot's position", &e))?;
    let bytes = |b: Option<i64>| b.map(|b| u64::try_from(b).unwrap_or(0));
    Ok(row.map(|r| SlotWal {
        unconfirmed: bytes(r.get(0)),
        retained: bytes(r.get(1)),
    }))
}

/// The columns and primary key of `schema.table`, resolved against `types`.
pub async fn describe_table(
    client: &Client,
    prefix: &str,
    schema: &str,
    table: &str,
    types: &HashMap<u32, PgType>,
) -> Result<Table, CdcError> {
    let qualified = format!("{}.{}", quote_ident(schema), quote_ident(table));
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid::int8, a.atttypmod, a.attnotnull, \
             coalesce((SELECT k.n FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) \
                       WHERE k.attnum = a.attnum), 0)::int4 \
             FROM pg_attribute a \
             LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary \
             WHERE a.attrelid = ($1::text)::regclass AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&qualified],
        )
        .await
        .map_err(|e| CdcError::query(&format!("reading the columns of {schema}.{table}"), &e))?;
    let lookup = |oid: u32| types.get(&oid).cloned();
    let mut columns = Vec::with_capacity(rows.len());
    let mut keys: Vec<(i32, usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let name: String = row.get(0);
        let oid = u32::try_from(row.get::<_, i64>(1)).unwrap_or(0);
        let modifier: i32 = row.get(2);
        let kind =
            kind_of(oid, modifier, &lookup).map_err(|ty| unmappable(schema, table, &name, &ty))?;
        let position: i32 = row.get(4);
        if position > 0 {
            keys.push((position, i));
        }
        columns.push(Column {
            name,
            kind,
            optional: !row.get::<_, bool>(3),
        });
    }
    keys.sort();
    Ok(Table::new(
        prefix,
        schema,
        table,
        columns,
        keys.into_iter().map(|(_, i)| i).collect(),
    ))
}

/// The configuration error of a column whose type has no mapping.
pub fn unmappable(schema: &str, table: &str, column: &str, ty: &str) -> CdcError {
    CdcError::config(
        "tableIncludeList",
        format!(
            "column {schema}.{table}.{column} has type {ty}, which has no Kafka Connect mapping: leave the table out of tableIncludeList (or add it to tableExcludeList), or change the column's type"
        ),
    )
}

/// An LSN in PostgreSQL's text form (`16/B374D848`).
pub fn parse_lsn(text: &str) -> Option<u64> {
    let (hi, lo) = text.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// An LSN in PostgreSQL's text form.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

/// The server's message of a database error.
pub fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_lsns() {
        assert_eq!(quote_ident("Odd \"name\""), "\"Odd \"\"name\"\"\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(parse_lsn("16/B374D848"), Some(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert_eq!(parse_lsn("nope"), None);
    }
}
