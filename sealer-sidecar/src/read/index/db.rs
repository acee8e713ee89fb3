//! The entries table: one row per entry, with the [`Fields`] a query filters on and where
//! the entry is in the store (its segment and byte range), in an SQLite file. The entries
//! themselves stay in the store: a query reads them from there. Queries are the [`Filter`]
//! in SQL, all but free text (`q`), which is matched on the entries read; the tests check
//! that both select the same entries.

use std::path::Path;

use anyhow::Context;
use auditlog::entry::EntryKind;
use auditlog::query::{Fields, Filter, StatusFilter};
use rusqlite::types::Value as Sql;
use rusqlite::{Connection, OpenFlags, params, params_from_iter};

/// Bump when the schema or the extracted fields change: the index is then rebuilt.
const SCHEMA_VERSION: &str = "2";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    time INTEGER NOT NULL,
    sealed_at INTEGER NOT NULL,
    gateway TEXT,
    method TEXT,
    host TEXT,
    path TEXT,
    status INTEGER,
    identity TEXT,
    client TEXT,
    seg_first INTEGER NOT NULL,
    seg_last INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    len INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_time ON entries (time, seq);
CREATE INDEX IF NOT EXISTS entries_identity ON entries (identity, time);
";

/// Newest or oldest first (by the entry's time, then its position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    NewestFirst,
    OldestFirst,
}

/// Where the previous page ended: the last entry's time and position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub time: i64,
    pub seq: u64,
}

impl Cursor {
    pub fn encode(self) -> String {
        format!("{}_{}", self.time, self.seq)
    }

    pub fn decode(s: &str) -> Option<Cursor> {
        let (t, q) = s.split_once('_')?;
        Some(Cursor {
            time: t.parse().ok()?,
            seq: q.parse().ok()?,
        })
    }
}

/// One page of results: the entries' canonical JSON, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<String>,
    pub next: Option<Cursor>,
}

/// Where an entry is in the store: the segment holding entries `segment.0..=segment.1`, and
/// the entry's bytes at `offset..offset + len` in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub segment: (u64, u64),
    pub offset: u64,
    pub len: u64,
}

/// A row a query selected: the entry's time and position, and where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    pub time: i64,
    pub seq: u64,
    pub at: Location,
}

fn kind_str(kind: Option<EntryKind>) -> &'static str {
    kind.map_or("unknown", EntryKind::as_str)
}

/// Open (creating) the index database for writing; `None` version means it was just made.
pub fn open_writer(path: &Path) -> anyhow::Result<Connection> {
    let conn =
        Connection::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    // WAL: readers never wait for the indexer. The file is rebuildable, but NORMAL keeps it
    // from being corrupted by a power loss.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(SCHEMA)?;
    let version: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
            r.get(0)
        })
        .ok();
    match version.as_deref() {
        Some(SCHEMA_VERSION) => {}
        Some(_) | None => {
            conn.execute_batch("DROP TABLE entries; DELETE FROM meta;")?;
            conn.execute_batch(SCHEMA)?;
            conn.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema', ?1)",
                params![SCHEMA_VERSION],
            )?;
        }
    }
    Ok(conn)
}

/// Open the index database for queries only.
pub fn open_reader(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("failed to open {}", path.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(conn)
}

/// Entries in the table: one past the highest position (positions are dense from 0).
pub fn size(conn: &Connection) -> anyhow::Result<u64> {
    let max: Option<i64> = conn.query_row("SELECT max(seq) FROM entries", [], |r| r.get(0))?;
    Ok(max.map_or(0, |m| m as u64 + 1))
}

/// Drop the entries from `size` on.
pub fn truncate(conn: &Connection, size: u64) -> anyhow::Result<()> {
    conn.execute("DELETE FROM entries WHERE seq >= ?1", params![size as i64])?;
    Ok(())
}

/// Insert entries in one transaction, and record the chain value of the last one.
pub fn insert<'a>(
    conn: &mut Connection,
    entries: impl IntoIterator<Item = (&'a Fields, Location)>,
    last_chain: &str,
) -> anyhow::Result<()> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO entries (seq, kind, time, sealed_at, gateway, method, host, path, \
             status, identity, client, seg_first, seg_last, offset, len) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?;
        for (f, at) in entries {
            stmt.execute(params![
                f.seq as i64,
                kind_str(f.kind),
                f.time,
                f.sealed_at,
                f.gateway,
                f.method,
                f.host,
                f.path,
                f.status,
                f.identity,
                f.client,
                at.segment.0 as i64,
                at.segment.1 as i64,
                at.offset as i64,
                at.len as i64,
            ])?;
        }
    }
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('chain', ?1)",
        params![last_chain],
    )?;
    tx.commit()?;
    Ok(())
}

/// The chain value (hex) of the last entry inserted, if any.
pub fn last_chain(conn: &Connection) -> anyhow::Result<Option<String>> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = 'chain'", [], |r| {
            r.get(0)
        })
        .ok())
}

/// The entries matching `filter` except its free text, `limit` at most, after `cursor`, below
/// position `size`, in order.
pub fn locate(
    conn: &Connection,
    filter: &Filter,
    order: Order,
    cursor: Option<Cursor>,
    limit: usize,
    size: u64,
) -> anyhow::Result<Vec<Located>> {
    let mut sql = String::from(
        "SELECT time, seq, seg_first, seg_last, offset, len FROM entries WHERE seq < ?",
    );
    let mut args: Vec<Sql> = vec![Sql::Integer(size as i64)];
    let mut cond = |clause: &str, values: Vec<Sql>| {
        sql.push_str(" AND ");
        sql.push_str(clause);
        args.extend(values);
    };
    let text = |s: &String| Sql::Text(s.clone());
    if let Some(from) = filter.from {
        cond("time >= ?", vec![Sql::Integer(from)]);
    }
    if let Some(to) = filter.to {
        cond("time < ?", vec![Sql::Integer(to)]);
    }
    if !filter.kinds.is_empty() {
        let marks = vec!["?"; filter.kinds.len()].join(", ");
        cond(
            &format!("kind IN ({marks})"),
            filter
                .kinds
                .iter()
                .map(|k| Sql::Text(k.as_str().into()))
                .collect(),
        );
    }
    if let Some(g) = &filter.gateway {
        cond("gateway = ?", vec![text(g)]);
    }
    if let Some(m) = &filter.method {
        cond("method = ? COLLATE NOCASE", vec![text(m)]);
    }
    if let Some(h) = &filter.host {
        cond("host = ? COLLATE NOCASE", vec![text(h)]);
    }
    if let Some(p) = &filter.path_prefix {
        // An exact, case-sensitive prefix (LIKE would fold case and treat % and _ as wildcards).
        cond("substr(path, 1, length(?)) = ?", vec![text(p), text(p)]);
    }
    match filter.status {
        Some(StatusFilter::Code(c)) => cond("status = ?", vec![Sql::Integer(c.into())]),
        Some(StatusFilter::Class(c)) => cond(
            "status BETWEEN ? AND ?",
            vec![
                Sql::Integer(i64::from(c) * 100),
                Sql::Integer(i64::from(c) * 100 + 99),
            ],
        ),
        None => {}
    }
    if let Some(i) = &filter.identity {
        cond("identity = ?", vec![text(i)]);
    }
    if let Some(c) = &filter.client {
        cond("client = ?", vec![text(c)]);
    }
    let (cmp, dir) = match order {
        Order::NewestFirst => ("<", "DESC"),
        Order::OldestFirst => (">", "ASC"),
    };
    if let Some(c) = cursor {
        cond(
            &format!("(time {cmp} ? OR (time = ? AND seq {cmp} ?))"),
            vec![
                Sql::Integer(c.time),
                Sql::Integer(c.time),
                Sql::Integer(c.seq as i64),
            ],
        );
    }
    sql.push_str(&format!(" ORDER BY time {dir}, seq {dir} LIMIT ?"));
    args.push(Sql::Integer(limit as i64));
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(args))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let int = |i: usize| row.get::<_, i64>(i);
        out.push(Located {
            time: int(0)?,
            seq: int(1)? as u64,
            at: Location {
                segment: (int(2)? as u64, int(3)? as u64),
                offset: int(4)? as u64,
                len: int(5)? as u64,
            },
        });
    }
    Ok(out)
}
