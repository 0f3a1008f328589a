//! What a spend costs PostgreSQL (issue 29, docs/scaling.md): WAL bytes, rows inserted, updated
//! and deleted per table, bytes the tables and their indexes grow, and CPU seconds of the
//! database backends serving the benchmark's database, per spend.
//!
//! Measured around a closed loop of spends over many accounts, from PostgreSQL's own counters:
//! `pg_current_wal_lsn()`, `pg_stat_user_tables`, `pg_total_relation_size`, and the CPU time of
//! the backends of `pg_stat_activity` for this database (`/proc/<pid>/stat`; the server is local),
//! beside the CPU of the service's `serve` processes and of this load generator.
//! The denominator is the journal entries written in between (one per spend; the servers run
//! with `--no-workers`, so nothing else writes). Background processes (WAL writer, checkpointer)
//! are shared by every database on the server and not counted in the CPU figure.

use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use std::collections::BTreeMap;

/// One table's counters: rows inserted, updated, deleted, and its total size in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Table {
    inserted: i64,
    updated: i64,
    deleted: i64,
    bytes: i64,
}

pub struct Snapshot {
    wal_lsn: String,
    tables: BTreeMap<String, Table>,
    journal_entries: i64,
    /// CPU ticks of each backend connected to the database now.
    backend_ticks: BTreeMap<u32, u64>,
    /// CPU ticks of the service's processes (`serve`), and of this load generator.
    server_ticks: u64,
    client_ticks: u64,
}

async fn rows(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<sea_orm::QueryResult>> {
    Ok(db.query_all_raw(Statement::from_string(db.get_database_backend(), sql)).await?)
}

/// utime + stime of a process, in clock ticks.
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (in parentheses): state is the 1st, utime the 12th, stime the 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux almost everywhere).
fn ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `servers`: the pids of the `credits serve` processes under load.
pub async fn snapshot(db: &DatabaseConnection, servers: &[u32]) -> anyhow::Result<Snapshot> {
    let wal_lsn: String = rows(db, "SELECT pg_current_wal_lsn()::text").await?[0].try_get_by_index(0)?;
    let mut tables = BTreeMap::new();
    let sql = "SELECT relname::text, n_tup_ins, n_tup_upd, n_tup_del, pg_total_relation_size(relid) FROM pg_stat_user_tables";
    for row in rows(db, sql).await? {
        let table = Table {
            inserted: row.try_get_by_index(1)?,
            updated: row.try_get_by_index(2)?,
            deleted: row.try_get_by_index(3)?,
            bytes: row.try_get_by_index(4)?,
        };
        tables.insert(row.try_get_by_index::<String>(0)?, table);
    }
    let journal_entries = rows(db, "SELECT COUNT(*) FROM journal_entries").await?[0].try_get_by_index(0)?;
    let mut backend_ticks = BTreeMap::new();
    let sql = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()";
    for row in rows(db, sql).await? {
        let pid = u32::try_from(row.try_get_by_index::<i32>(0)?)?;
        if let Some(t) = ticks(pid) {
            backend_ticks.insert(pid, t);
        }
    }
    let server_ticks = servers.iter().filter_map(|pid| ticks(*pid)).sum();
    let client_ticks = ticks(std::process::id()).unwrap_or(0);
    Ok(Snapshot { wal_lsn, tables, journal_entries, backend_ticks, server_ticks, client_ticks })
}

/// What happened between two snapshots, per spend.
pub struct Footprint {
    pub spends: i64,
    pub wal_bytes_per_spend: f64,
    /// (table, inserted, updated, deleted, bytes grown), each per spend; tables that moved only.
    pub tables: Vec<(String, f64, f64, f64, f64)>,
    /// Milliseconds of CPU of the database's backends per spend (those connected at both ends).
    pub backend_cpu_ms_per_spend: f64,
    /// Milliseconds of CPU of the service's processes per spend (HTTP, GraphQL, the ledger).
    pub server_cpu_ms_per_spend: f64,
    /// Milliseconds of CPU of this load generator per spend.
    pub client_cpu_ms_per_spend: f64,
}

pub async fn between(db: &DatabaseConnection, before: &Snapshot, after: &Snapshot) -> anyhow::Result<Footprint> {
    let spends = after.journal_entries - before.journal_entries;
    anyhow::ensure!(spends > 0, "no spend was written between the snapshots");
    let per = |n: i64| n as f64 / spends as f64;
    let sql = format!("SELECT pg_wal_lsn_diff('{}', '{}')::bigint", after.wal_lsn, before.wal_lsn);
    let wal: i64 = rows(db, &sql).await?[0].try_get_by_index(0)?;
    let mut tables = Vec::new();
    for (name, now) in &after.tables {
        let then = before.tables.get(name).copied().unwrap_or_default();
        let moved = (now.inserted - then.inserted, now.updated - then.updated, now.deleted - then.deleted, now.bytes - then.bytes);
        if moved != (0, 0, 0, 0) {
            tables.push((name.clone(), per(moved.0), per(moved.1), per(moved.2), per(moved.3)));
        }
    }
    let ticks: u64 = after.backend_ticks.iter().filter_map(|(pid, t)| before.backend_ticks.get(pid).map(|b| t.saturating_sub(*b))).sum();
    let ms = |ticks: u64| ticks as f64 / ticks_per_second() * 1000.0 / spends as f64;
    Ok(Footprint {
        spends,
        wal_bytes_per_spend: per(wal),
        tables,
        backend_cpu_ms_per_spend: ms(ticks),
        server_cpu_ms_per_spend: ms(after.server_ticks.saturating_sub(before.server_ticks)),
        client_cpu_ms_per_spend: ms(after.client_ticks.saturating_sub(before.client_ticks)),
    })
}

pub fn print(clients: usize, footprint: &Footprint) {
    println!(
        "footprint postgres {clients:>3} clients: {} spends; WAL {:.0} bytes/spend; database backends' CPU {:.3} ms/spend ({:.0} spends/s per core)",
        footprint.spends,
        footprint.wal_bytes_per_spend,
        footprint.backend_cpu_ms_per_spend,
        1000.0 / footprint.backend_cpu_ms_per_spend
    );
    println!(
        "footprint postgres {clients:>3} clients: the service's CPU {:.3} ms/spend ({:.0} spends/s per core); the load generator's {:.3} ms/spend",
        footprint.server_cpu_ms_per_spend,
        1000.0 / footprint.server_cpu_ms_per_spend,
        footprint.client_cpu_ms_per_spend
    );
    println!("footprint   {:<28} {:>10} {:>10} {:>10} {:>12}", "table", "ins/spend", "upd/spend", "del/spend", "bytes/spend");
    let (mut ins, mut upd, mut del, mut bytes) = (0.0, 0.0, 0.0, 0.0);
    for (name, i, u, d, b) in &footprint.tables {
        println!("footprint   {name:<28} {i:>10.2} {u:>10.2} {d:>10.2} {b:>12.0}");
        (ins, upd, del, bytes) = (ins + i, upd + u, del + d, bytes + b);
    }
    println!("footprint   {:<28} {ins:>10.2} {upd:>10.2} {del:>10.2} {bytes:>12.0}", "all");
}
