//! The initial snapshot: every row of every captured table, read in pages ordered by primary
//! key (by `ctid` for a table without one), so that a snapshot cut short resumes after the
//! last row Kafka acknowledged.
//!
//! A first snapshot runs in a `REPEATABLE READ` transaction on the snapshot the replication
//! slot exported when it was created: the rows read plus the changes streamed from the slot's
//! start are then exactly the database's history. A resumed snapshot (after a restart) reads
//! the remaining rows as they are now; changes made since the slot's start are streamed
//! afterwards in any case, so the topics end in the same state (at least once).

use tokio_postgres::{Client, SimpleQueryMessage};

use super::catalog::{quote_ident, quote_literal};
use super::envelope::Table;
use super::replication::Cell;
use super::CdcError;

/// Name of the pseudo column that orders the rows of a table without a primary key.
const CTID: &str = "ctid";

/// The query reading the page of `table` after `after` (the last row's ordering values as
/// text): its columns, then the ordering columns again.
pub fn page_query(table: &Table, after: Option<&[String]>, limit: u32) -> String {
    let order: Vec<String> = if table.key_columns.is_empty() {
        vec![CTID.to_string()]
    } else {
        table
            .key_columns
            .iter()
            .filter_map(|i| table.columns.get(*i))
            .map(|c| quote_ident(&c.name))
            .collect()
    };
    let mut select: Vec<String> = table.columns.iter().map(|c| quote_ident(&c.name)).collect();
    select.extend(order.iter().cloned());
    let mut sql = format!(
        "SELECT {} FROM {}.{}",
        select.join(", "),
        quote_ident(&table.schema),
        quote_ident(&table.name)
    );
    if let Some(after) = after.filter(|a| a.len() == order.len()) {
        let values: Vec<String> = if table.key_columns.is_empty() {
            after
                .iter()
                .map(|v| format!("{}::tid", quote_literal(v)))
                .collect()
        } else {
            after.iter().map(|v| quote_literal(v)).collect()
        };
        sql.push_str(&format!(
            " WHERE ({}) > ({})",
            order.join(", "),
            values.join(", ")
        ));
        if order.len() == 1 {
            // A one-column row comparison is written without the row constructor.
            sql = sql.replace(
                &format!(" WHERE ({}) > ({})", order[0], values[0]),
                &format!(" WHERE {} > {}", order[0], values[0]),
            );
        }
    }
    sql.push_str(&format!(" ORDER BY {} LIMIT {limit}", order.join(", ")));
    sql
}

/// One row of a page: its cells and its ordering values.
#[derive(Debug)]
pub struct PageRow {
    /// The row's columns.
    pub cells: Vec<Cell>,
    /// The ordering values, to resume after this row.
    pub position: Vec<String>,
}

/// Reads one page of `table`.
pub async fn read_page(
    client: &Client,
    table: &Table,
    after: Option<&[String]>,
    limit: u32,
) -> Result<Vec<PageRow>, CdcError> {
    let sql = page_query(table, after, limit);
    let messages = client
        .simple_query(&sql)
        .await
        .map_err(|e| CdcError::query(&format!("reading the rows of {}", table.qualified()), &e))?;
    let n = table.columns.len();
    let mut rows = Vec::with_capacity(messages.len());
    for m in messages {
        let SimpleQueryMessage::Row(row) = m else {
            continue;
        };
        let mut cells = Vec::with_capacity(n);
        let mut position = Vec::new();
        for i in 0..row.len() {
            let v = row.get(i);
            if i < n {
                cells.push(v.map_or(Cell::Null, |t| Cell::Text(t.to_string())));
            } else {
                position.push(v.unwrap_or_default().to_string());
            }
        }
        rows.push(PageRow { cells, position });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::postgres_cdc::envelope::Column;
    use crate::plugins::postgres_cdc::types::Kind;

    fn table(keys: Vec<usize>) -> Table {
        let col = |name: &str| Column {
            name: name.into(),
            kind: Kind::Int32,
            optional: false,
        };
        Table::new(
            "p",
            "public",
            "Order Items",
            vec![col("a"), col("b"), col("c")],
            keys,
        )
    }

    #[test]
    fn pages_follow_the_key() {
        assert_eq!(
            page_query(&table(vec![0]), None, 10),
            "SELECT \"a\", \"b\", \"c\", \"a\" FROM \"public\".\"Order Items\" ORDER BY \"a\" LIMIT 10"
        );
        assert_eq!(
            page_query(&table(vec![1, 0]), Some(&["x'y".into(), "2".into()]), 5),
            "SELECT \"a\", \"b\", \"c\", \"b\", \"a\" FROM \"public\".\"Order Items\" WHERE (\"b\", \"a\") > ('x''y', '2') ORDER BY \"b\", \"a\" LIMIT 5"
        );
        assert_eq!(
            page_query(&table(vec![]), Some(&["(0,3)".into()]), 5),
            "SELECT \"a\", \"b\", \"c\", ctid FROM \"public\".\"Order Items\" WHERE ctid > '(0,3)'::tid ORDER BY ctid LIMIT 5"
        );
        assert_eq!(
            page_query(&table(vec![0]), Some(&["1".into()]), 5),
            "SELECT \"a\", \"b\", \"c\", \"a\" FROM \"public\".\"Order Items\" WHERE \"a\" > '1' ORDER BY \"a\" LIMIT 5"
        );
    }
}
